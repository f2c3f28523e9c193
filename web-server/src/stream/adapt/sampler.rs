//! The per-second [`LinkSample`] of one browser's link, built from cumulative counters (in
//! WebSocket mode its send queue's and the keepalive's round trip, in WebRTC mode the streamer's
//! `Stats`: the peer's queue and the browser's receiver reports), and fed to the stream's
//! [`Ladder`].
//!
//! Kept apart from the transports so that its arithmetic (deltas of cumulative counters, the
//! worst queue depth between samples, the hold after the start) is tested with plain values.

use std::time::{Duration, Instant};

use wire::backpressure::QueueStats;
use wire::ipc::Stats;

use super::{Change, Ladder, LadderError, LinkSample, Rung, VideoSent};

/// One stream's controller and what it remembers between samples.
#[derive(Debug)]
pub(crate) struct Adaptation {
    ladder: Ladder,
    last_at: Instant,
    last: QueueStats,
    worst_queue_ms: u64,
    /// WebRTC mode: the last `Stats` sampled.
    last_peer: Stats,
}

impl Adaptation {
    /// The controller of a stream that asked for `requested` and (re)started at `now`.
    pub(crate) fn new(requested: Rung, now: Instant) -> Result<Self, LadderError> {
        let mut ladder = Ladder::new(requested)?;
        ladder.hold(now);
        Ok(Adaptation {
            ladder,
            last_at: now,
            last: QueueStats::default(),
            worst_queue_ms: 0,
            last_peer: Stats::default(),
        })
    }

    /// The rung in use.
    pub(crate) fn current(&self) -> Rung {
        self.ladder.current()
    }

    /// The ladder's rungs, the requested first.
    pub(crate) fn rungs(&self) -> &[Rung] {
        self.ladder.rungs()
    }

    /// An administrator's choice of rung (see [`Ladder::force`]).
    pub(crate) fn force(&mut self, now: Instant, index: usize) -> Option<Change> {
        self.ladder.force(now, index)
    }

    /// The queue between samples (the worst depth counts, not the one at the sample).
    pub(crate) fn watch(&mut self, queue: &QueueStats) {
        self.worst_queue_ms = self.worst_queue_ms.max(queue.video_depth_ms);
    }

    /// The sample ending at `now`, from the queue's counters and the round trip measured since
    /// the last one; `Some` when the rung should change.
    pub(crate) fn sample(
        &mut self,
        now: Instant,
        queue: QueueStats,
        rtt_ms: Option<u32>,
    ) -> Option<Change> {
        self.watch(&queue);
        let interval = now.saturating_duration_since(self.last_at);
        if interval < Duration::from_millis(100) {
            return None;
        }
        let sample = LinkSample {
            interval,
            queue_delay_ms: u32::try_from(self.worst_queue_ms).unwrap_or(u32::MAX),
            rtt_ms,
            capacity_kbps: None,
            loss_permille: None,
            video: VideoSent {
                frames: delta(queue.video_sent, self.last.video_sent) as u32,
                dropped: delta(queue.frames_dropped, self.last.frames_dropped) as u32,
                bytes: delta(queue.video_sent_bytes, self.last.video_sent_bytes),
            },
        };
        self.last_at = now;
        self.last = queue;
        self.worst_queue_ms = queue.video_depth_ms;
        self.ladder.observe(now, sample)
    }
}

impl Adaptation {
    /// WebRTC mode: the sample ending at `now` from the streamer's `Stats` (sent once a second;
    /// media does not pass the gateway in this mode). The round trip and loss count only when a
    /// receiver report came since the last `Stats`.
    pub(crate) fn sample_peer(&mut self, now: Instant, stats: &Stats) -> Option<Change> {
        let interval = now.saturating_duration_since(self.last_at);
        if interval < Duration::from_millis(100) {
            return None;
        }
        let last = self.last_peer;
        let fresh = stats.peer_reports != last.peer_reports;
        let sample = LinkSample {
            interval,
            queue_delay_ms: u32::try_from(stats.send_queue_ms).unwrap_or(u32::MAX),
            rtt_ms: (fresh && stats.peer_rtt_ms > 0).then_some(stats.peer_rtt_ms),
            capacity_kbps: None,
            loss_permille: fresh.then_some(stats.peer_loss_permille),
            video: VideoSent {
                frames: delta(stats.video_frames, last.video_frames) as u32,
                dropped: delta(stats.video_frames_dropped, last.video_frames_dropped) as u32,
                bytes: delta(stats.video_bytes, last.video_bytes),
            },
        };
        self.last_at = now;
        self.last_peer = *stats;
        self.ladder.observe(now, sample)
    }
}

/// The growth of a cumulative counter (a queue that was replaced restarts at 0).
fn delta(now: u64, before: u64) -> u64 {
    now.checked_sub(before).unwrap_or(now)
}

#[cfg(test)]
mod tests {
    use super::*;

    const R720: Rung = Rung {
        width: 1280,
        height: 720,
        fps: 30,
        bitrate_kbps: 12_000,
    };

    fn queue(depth: u64, sent: u64, bytes: u64, dropped: u64) -> QueueStats {
        QueueStats {
            video_depth_ms: depth,
            video_sent: sent,
            video_sent_bytes: bytes,
            frames_dropped: dropped,
            ..QueueStats::default()
        }
    }

    #[test]
    fn nothing_changes_in_the_first_hold_and_sustained_drops_step_down_to_what_got_through() {
        let t0 = Instant::now();
        let mut a = Adaptation::new(R720, t0).unwrap();
        let s = Duration::from_secs(1);
        // Drops right after the start (a decoder waiting for its keyframe) count for nothing.
        assert_eq!(a.sample(t0 + s, queue(90, 20, 1_000_000, 10), None), None);
        assert_eq!(
            a.sample(t0 + 2 * s, queue(90, 40, 2_000_000, 20), None),
            None
        );
        // Clean seconds, then a link that carries 4 Mbit/s (500 kB/s) and drops frames.
        let mut at = t0 + 2 * s;
        let (mut sent, mut bytes, mut dropped) = (40, 2_000_000, 20);
        for _ in 0..6 {
            at += s;
            sent += 30;
            bytes += 1_500_000;
            assert_eq!(a.sample(at, queue(5, sent, bytes, dropped), Some(2)), None);
        }
        at += s;
        sent += 10;
        bytes += 500_000;
        dropped += 20;
        // A slow moment between samples shows in the next one even if the queue emptied.
        a.watch(&queue(98, sent, bytes, dropped));
        assert_eq!(a.sample(at, queue(3, sent, bytes, dropped), None), None);
        at += s;
        sent += 10;
        bytes += 500_000;
        dropped += 20;
        let change = a
            .sample(at, queue(95, sent, bytes, dropped), None)
            .expect("two congested seconds step down");
        // 4 Mbit/s got through: the rung must fit 90 % of it.
        assert!(change.rung.bitrate_kbps <= 3_600, "{change:?}");
        assert_eq!(a.current(), change.rung);
        assert!(a.rungs().len() >= 3, "{:?}", a.rungs());
    }

    #[test]
    fn peer_stats_count_loss_only_from_fresh_reports() {
        let t0 = Instant::now();
        let mut a = Adaptation::new(R720, t0).unwrap();
        let s = Duration::from_secs(1);
        let mut st = Stats::default();
        let mut at = t0;
        // Past the hold: clean seconds with a report each.
        for _ in 0..7 {
            at += s;
            st.video_frames += 30;
            st.video_bytes += 1_500_000;
            st.peer_reports += 1;
            st.peer_rtt_ms = 2;
            assert_eq!(a.sample_peer(at, &st), None);
        }
        // Heavy loss reported once, then seconds without a new report: one congested sample
        // and no more (a stale report is not read again).
        st.peer_loss_permille = 400;
        st.peer_reports += 1;
        at += s;
        assert_eq!(a.sample_peer(at, &st), None);
        for _ in 0..3 {
            at += s;
            st.video_frames += 30;
            st.video_bytes += 1_500_000;
            assert_eq!(a.sample_peer(at, &st), None);
        }
        // Two fresh reports in a row step down to what got through (60 % of 12 Mbit/s).
        let mut change = None;
        for _ in 0..2 {
            at += s;
            st.video_frames += 30;
            st.video_bytes += 1_500_000;
            st.peer_reports += 1;
            change = a.sample_peer(at, &st);
        }
        let change = change.expect("two lossy seconds step down");
        assert!(change.rung.bitrate_kbps <= 6_480, "{change:?}");
    }

    #[test]
    fn counters_of_a_replaced_queue_restart() {
        assert_eq!(delta(10, 4), 6);
        assert_eq!(delta(3, 40), 3);
    }
}
