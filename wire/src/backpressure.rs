//! The per-connection send-queue policy for media toward one browser (sans-IO).
//!
//! TCP already buffers; a queue in front of it only adds latency. So the queue is bounded in
//! **time**: what matters to a viewer is how old the oldest queued frame is, not how many frames
//! wait. When the oldest queued video frame is older than the budget (or the queue holds more
//! bytes than the byte cap), whole frames are dropped from the head up to the next queued keyframe;
//! if none is queued, everything queued goes and every later delta frame is dropped until a
//! keyframe arrives, because a frame whose reference was dropped must never be released (the
//! browser would decode garbage until the next keyframe). Each such episode asks for one IDR
//! (repeated if no keyframe comes within [`QueueConfig::idr_retry`]).
//!
//! Audio has its own, smaller budget and its own queue, and is popped before video, so video
//! never blocks audio; Opus packets are independent, so overflowing audio drops its oldest packets.
//! Control messages (Pong, ControlMessage, StreamInit, errors) bypass media entirely.
//!
//! The caller supplies the clock (`now`), so tests drive it with a synthetic one; it wraps its own
//! message type `T` and tells the queue each item's size in bytes.
//!
//! ```
//! use std::time::{Duration, Instant};
//! use wire::backpressure::{QueueConfig, SendQueue};
//!
//! let t0 = Instant::now();
//! let mut q: SendQueue<&str> = SendQueue::new(QueueConfig::default());
//! q.push_video("key", 50_000, true, t0);
//! q.push_video("p1", 5_000, false, t0 + Duration::from_millis(16));
//! q.push_control("pong");
//! assert_eq!(q.pop(t0 + Duration::from_millis(20)), Some("pong"));
//! // The writer stalled: 150 ms later the queued frames are over the 100 ms budget.
//! let late = t0 + Duration::from_millis(150);
//! q.push_video("p2", 5_000, false, late);
//! assert_eq!(q.pop(late), None); // all dropped, waiting for a keyframe
//! assert!(q.take_keyframe_request(late));
//! ```

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Budgets of a [`SendQueue`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueConfig {
    /// Maximum age of the oldest queued video frame (default 100 ms: about 6 frames at 60 fps,
    /// within the 5–120-frame range Helix's design notes propose).
    pub video_budget: Duration,
    /// Maximum age of the oldest queued audio packet (default 60 ms).
    pub audio_budget: Duration,
    /// Hard cap on queued video bytes (default 8 MiB), for bursts of huge keyframes.
    pub max_video_bytes: usize,
    /// While waiting for a keyframe, ask again after this long (default 1 s).
    pub idr_retry: Duration,
}

impl Default for QueueConfig {
    fn default() -> Self {
        QueueConfig {
            video_budget: Duration::from_millis(100),
            audio_budget: Duration::from_millis(60),
            max_video_bytes: 8 << 20,
            idr_retry: Duration::from_secs(1),
        }
    }
}

/// Counters and depth of a [`SendQueue`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueueStats {
    /// Age of the oldest queued video frame, ms.
    pub video_depth_ms: u64,
    /// Age of the oldest queued audio packet, ms.
    pub audio_depth_ms: u64,
    /// Bytes of queued video.
    pub video_bytes: usize,
    /// Bytes of queued audio.
    pub audio_bytes: usize,
    /// Queued video frames.
    pub video_frames: usize,
    /// Queued control messages.
    pub control_messages: usize,
    /// Video frames dropped (overflow, or waiting for a keyframe), cumulative.
    pub frames_dropped: u64,
    /// Audio packets dropped, cumulative.
    pub audio_dropped: u64,
    /// Video frames taken out to be sent, cumulative.
    pub video_sent: u64,
    /// Their bytes, cumulative: what the link carried, which during congestion is about what
    /// it can carry (the quality controller's measure).
    pub video_sent_bytes: u64,
    /// Keyframe requests raised, cumulative.
    pub idr_requests: u64,
}

/// What happened to a pushed video frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VideoPush {
    /// Queued.
    Queued,
    /// Dropped at once: its reference is gone (waiting for a keyframe).
    Dropped,
}

struct Entry<T> {
    item: T,
    bytes: usize,
    keyframe: bool,
    at: Instant,
}

/// A bounded, time-budgeted send queue for one connection. See the module docs.
pub struct SendQueue<T> {
    config: QueueConfig,
    control: VecDeque<T>,
    audio: VecDeque<Entry<T>>,
    video: VecDeque<Entry<T>>,
    video_bytes: usize,
    audio_bytes: usize,
    /// Delta frames are refused until a keyframe arrives.
    awaiting_keyframe: bool,
    /// A keyframe request the caller has not collected yet.
    pending_request: bool,
    last_request: Option<Instant>,
    frames_dropped: u64,
    audio_dropped: u64,
    idr_requests: u64,
    video_sent: u64,
    video_sent_bytes: u64,
}

impl<T> std::fmt::Debug for SendQueue<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SendQueue")
            .field("control", &self.control.len())
            .field("audio", &self.audio.len())
            .field("video", &self.video.len())
            .field("awaiting_keyframe", &self.awaiting_keyframe)
            .finish_non_exhaustive()
    }
}

impl<T> SendQueue<T> {
    /// An empty queue. The first video frame must be a keyframe: a new viewer has no reference.
    pub fn new(config: QueueConfig) -> Self {
        SendQueue {
            config,
            control: VecDeque::new(),
            audio: VecDeque::new(),
            video: VecDeque::new(),
            video_bytes: 0,
            audio_bytes: 0,
            awaiting_keyframe: true,
            pending_request: false,
            last_request: None,
            frames_dropped: 0,
            audio_dropped: 0,
            idr_requests: 0,
            video_sent: 0,
            video_sent_bytes: 0,
        }
    }

    /// Queues a control message (Pong, ControlMessage, StreamInit, error): never dropped, always
    /// popped before media.
    pub fn push_control(&mut self, item: T) {
        self.control.push_back(item);
    }

    /// Queues one Opus packet; drops the oldest audio beyond the audio budget.
    pub fn push_audio(&mut self, item: T, bytes: usize, now: Instant) {
        self.audio.push_back(Entry {
            item,
            bytes,
            keyframe: false,
            at: now,
        });
        self.audio_bytes += bytes;
        self.expire_audio(now);
    }

    /// Queues one video access unit. A delta frame is dropped at once while no keyframe has been
    /// queued since the last drop; an overflow drops queued frames (see the module docs).
    pub fn push_video(&mut self, item: T, bytes: usize, keyframe: bool, now: Instant) -> VideoPush {
        self.expire_video(now);
        if keyframe {
            self.awaiting_keyframe = false;
        } else if self.awaiting_keyframe {
            self.frames_dropped += 1;
            self.maybe_retry_request(now);
            return VideoPush::Dropped;
        }
        self.video.push_back(Entry {
            item,
            bytes,
            keyframe,
            at: now,
        });
        self.video_bytes += bytes;
        // A single frame over the byte cap is still sent: it is the only way forward.
        if self.video_bytes > self.config.max_video_bytes && self.video.len() > 1 {
            self.drop_video_to_next_keyframe(now);
        }
        VideoPush::Queued
    }

    /// The next message to write: control first, then audio, then video. Media over budget is
    /// dropped on the way, so a writer that stalled does not send stale frames once it resumes.
    pub fn pop(&mut self, now: Instant) -> Option<T> {
        if let Some(c) = self.control.pop_front() {
            return Some(c);
        }
        self.expire_audio(now);
        if let Some(a) = self.audio.pop_front() {
            self.audio_bytes -= a.bytes;
            return Some(a.item);
        }
        self.expire_video(now);
        let v = self.video.pop_front()?;
        self.video_bytes -= v.bytes;
        self.video_sent += 1;
        self.video_sent_bytes += v.bytes as u64;
        Some(v.item)
    }

    /// True once per keyframe request the queue has raised (an overflow dropped frames, or the
    /// queue has been waiting for a keyframe longer than [`QueueConfig::idr_retry`]). The caller
    /// asks the host for an IDR.
    pub fn take_keyframe_request(&mut self, now: Instant) -> bool {
        if !self.pending_request && self.awaiting_keyframe {
            self.maybe_retry_request(now);
        }
        std::mem::take(&mut self.pending_request)
    }

    /// Forget everything queued and wait for a keyframe (e.g. the viewer disabled video).
    pub fn reset_video(&mut self, now: Instant) {
        self.frames_dropped += self.video.len() as u64;
        self.video.clear();
        self.video_bytes = 0;
        self.awaiting_keyframe = true;
        self.raise_request(now);
    }

    /// True while delta frames are being refused.
    pub fn awaiting_keyframe(&self) -> bool {
        self.awaiting_keyframe
    }

    /// True if nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.control.is_empty() && self.audio.is_empty() && self.video.is_empty()
    }

    /// Depth and counters at `now`.
    pub fn stats(&self, now: Instant) -> QueueStats {
        let age = |q: &VecDeque<Entry<T>>| {
            q.front()
                .map(|e| now.saturating_duration_since(e.at).as_millis() as u64)
                .unwrap_or(0)
        };
        QueueStats {
            video_depth_ms: age(&self.video),
            audio_depth_ms: age(&self.audio),
            video_bytes: self.video_bytes,
            audio_bytes: self.audio_bytes,
            video_frames: self.video.len(),
            control_messages: self.control.len(),
            frames_dropped: self.frames_dropped,
            audio_dropped: self.audio_dropped,
            idr_requests: self.idr_requests,
            video_sent: self.video_sent,
            video_sent_bytes: self.video_sent_bytes,
        }
    }

    fn over_budget(&self, at: Instant, now: Instant, budget: Duration) -> bool {
        now.saturating_duration_since(at) > budget
    }

    fn expire_audio(&mut self, now: Instant) {
        while let Some(front) = self.audio.front() {
            if !self.over_budget(front.at, now, self.config.audio_budget) {
                break;
            }
            if let Some(a) = self.audio.pop_front() {
                self.audio_bytes -= a.bytes;
                self.audio_dropped += 1;
            }
        }
    }

    fn expire_video(&mut self, now: Instant) {
        while let Some(front) = self.video.front() {
            if !self.over_budget(front.at, now, self.config.video_budget) {
                break;
            }
            self.drop_video_to_next_keyframe(now);
        }
    }

    /// Drops the head frame and every frame after it up to (not including) the next queued
    /// keyframe. With no keyframe queued the queue empties and delta frames are refused until
    /// one arrives; an IDR is requested.
    fn drop_video_to_next_keyframe(&mut self, now: Instant) {
        let Some(head) = self.video.pop_front() else {
            return;
        };
        self.video_bytes -= head.bytes;
        self.frames_dropped += 1;
        while let Some(front) = self.video.front() {
            if front.keyframe {
                return;
            }
            if let Some(e) = self.video.pop_front() {
                self.video_bytes -= e.bytes;
                self.frames_dropped += 1;
            }
        }
        if !self.awaiting_keyframe {
            self.awaiting_keyframe = true;
            self.raise_request(now);
        }
    }

    fn raise_request(&mut self, now: Instant) {
        self.pending_request = true;
        self.last_request = Some(now);
        self.idr_requests += 1;
    }

    fn maybe_retry_request(&mut self, now: Instant) {
        // The initial wait of a new viewer is the caller's to answer; only our own requests repeat.
        let due = matches!(self.last_request,
            Some(t) if now.saturating_duration_since(t) >= self.config.idr_retry);
        if due {
            self.raise_request(now);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    /// Video at 60 fps, frame i at t0 + i * 16 ms; keyframe every `gop` frames.
    fn drain(q: &mut SendQueue<u32>, now: Instant) -> Vec<u32> {
        std::iter::from_fn(|| q.pop(now)).collect()
    }

    #[test]
    fn a_keeping_up_writer_loses_nothing() {
        let t0 = Instant::now();
        let mut q = SendQueue::new(QueueConfig::default());
        for i in 0..600u32 {
            let now = t0 + ms(i as u64 * 16);
            assert_eq!(
                q.push_video(i, 10_000, i % 120 == 0, now),
                VideoPush::Queued
            );
            q.push_audio(10_000 + i, 100, now);
            assert_eq!(drain(&mut q, now + ms(2)), vec![10_000 + i, i]);
        }
        let s = q.stats(t0 + ms(10_000));
        assert_eq!(
            (s.frames_dropped, s.audio_dropped, s.idr_requests),
            (0, 0, 0)
        );
        assert!(!q.take_keyframe_request(t0 + ms(10_000)));
    }

    #[test]
    fn the_first_frame_must_be_a_keyframe() {
        let t0 = Instant::now();
        let mut q = SendQueue::new(QueueConfig::default());
        assert_eq!(q.push_video(1, 10, false, t0), VideoPush::Dropped);
        assert_eq!(q.push_video(2, 10, true, t0), VideoPush::Queued);
        assert_eq!(q.push_video(3, 10, false, t0), VideoPush::Queued);
        assert_eq!(drain(&mut q, t0), vec![2, 3]);
        assert_eq!(q.stats(t0).frames_dropped, 1);
    }

    #[test]
    fn a_stalled_writer_drops_to_the_next_keyframe_and_asks_for_one() {
        let t0 = Instant::now();
        let mut q = SendQueue::new(QueueConfig::default());
        // Keyframe then deltas; the writer does not pop.
        q.push_video(0, 50_000, true, t0);
        for i in 1..=6u32 {
            q.push_video(i, 5_000, false, t0 + ms(i as u64 * 16));
        }
        let s = q.stats(t0 + ms(96));
        assert_eq!((s.video_depth_ms, s.video_frames), (96, 7));
        assert_eq!(s.video_bytes, 80_000);
        // Frame 7 at 112 ms: the head (0 ms) is over 100 ms, no keyframe queued -> all dropped,
        // and frame 7 (a delta) is refused.
        let now = t0 + ms(112);
        assert_eq!(q.push_video(7, 5_000, false, now), VideoPush::Dropped);
        assert!(q.take_keyframe_request(now));
        assert!(!q.take_keyframe_request(now), "one request per episode");
        assert_eq!(q.pop(now), None);
        assert_eq!(
            q.push_video(8, 5_000, false, now + ms(16)),
            VideoPush::Dropped
        );
        // The keyframe comes back: it and what follows flow again.
        assert_eq!(
            q.push_video(9, 50_000, true, now + ms(32)),
            VideoPush::Queued
        );
        assert_eq!(
            q.push_video(10, 5_000, false, now + ms(48)),
            VideoPush::Queued
        );
        assert_eq!(drain(&mut q, now + ms(50)), vec![9, 10]);
        let s = q.stats(now + ms(50));
        assert_eq!((s.frames_dropped, s.idr_requests), (9, 1));
    }

    #[test]
    fn overflow_keeps_a_queued_keyframe_and_what_follows() {
        let t0 = Instant::now();
        let mut q = SendQueue::new(QueueConfig::default());
        q.push_video(0, 1000, true, t0);
        q.push_video(1, 1000, false, t0 + ms(16));
        q.push_video(2, 1000, true, t0 + ms(32));
        q.push_video(3, 1000, false, t0 + ms(48));
        // At 110 ms frame 0 is too old: 0 and 1 go, 2 (a keyframe) and 3 stay; no IDR needed.
        assert_eq!(drain(&mut q, t0 + ms(110)), vec![2, 3]);
        assert!(!q.take_keyframe_request(t0 + ms(110)));
        assert_eq!(q.stats(t0 + ms(110)).frames_dropped, 2);
    }

    #[test]
    fn never_releases_a_frame_whose_reference_was_dropped() {
        // Random-ish pops against a steady producer: every released delta frame follows, without a
        // gap, the frame it references (its predecessor) or is a keyframe.
        let t0 = Instant::now();
        let mut q = SendQueue::new(QueueConfig::default());
        let mut released: Vec<(u32, bool)> = Vec::new();
        for i in 0..2000u32 {
            let now = t0 + ms(i as u64 * 16);
            q.push_video(i, 8_000, i % 90 == 0, now);
            // The writer stalls for 300 ms every ~2 s.
            if (i / 20) % 6 != 5 && i % 3 != 0 {
                while let Some(f) = q.pop(now) {
                    released.push((f, f % 90 == 0));
                }
            }
        }
        let mut dropped_any = false;
        for w in released.windows(2) {
            let ((a, _), (b, key)) = (w[0], w[1]);
            if b != a + 1 {
                dropped_any = true;
                assert!(
                    key,
                    "frame {b} released after {a}: its reference was dropped"
                );
            }
        }
        assert!(dropped_any, "the stalls must have caused drops");
        assert!(q.stats(t0).idr_requests > 0);
    }

    #[test]
    fn audio_has_its_own_budget_and_is_never_behind_video() {
        let t0 = Instant::now();
        let mut q = SendQueue::new(QueueConfig::default());
        q.push_video(1, 100_000, true, t0);
        for i in 0..20u32 {
            q.push_audio(100 + i, 200, t0 + ms(i as u64 * 5));
        }
        // At 95 ms: audio older than 60 ms (0..=30 ms -> 7 packets) is gone; audio pops first.
        let now = t0 + ms(95);
        let out = drain(&mut q, now);
        assert_eq!(out[0], 107);
        assert_eq!(*out.last().unwrap_or(&0), 1, "video comes after audio");
        assert_eq!(out.len(), 14);
        assert_eq!(q.stats(now).audio_dropped, 7);
        assert_eq!(q.stats(now).frames_dropped, 0);
    }

    #[test]
    fn control_bypasses_media() {
        let t0 = Instant::now();
        let mut q = SendQueue::new(QueueConfig::default());
        q.push_video(1, 100, true, t0);
        q.push_audio(2, 100, t0);
        q.push_control(3);
        assert_eq!(q.stats(t0).control_messages, 1);
        // Even long after the media expired, control is delivered.
        assert_eq!(drain(&mut q, t0 + ms(5_000)), vec![3]);
        assert!(q.is_empty());
    }

    #[test]
    fn byte_cap_drops_like_a_time_overflow() {
        let t0 = Instant::now();
        let cfg = QueueConfig {
            max_video_bytes: 100_000,
            ..QueueConfig::default()
        };
        let mut q = SendQueue::new(cfg);
        q.push_video(0, 60_000, true, t0);
        q.push_video(1, 30_000, false, t0);
        q.push_video(2, 30_000, false, t0); // 120 000 > cap: everything goes
        assert!(q.take_keyframe_request(t0));
        assert_eq!(q.pop(t0), None);
        assert_eq!(q.stats(t0).frames_dropped, 3);
        // A lone keyframe bigger than the cap still goes out.
        q.push_video(3, 500_000, true, t0);
        assert_eq!(q.pop(t0), Some(3));
    }

    #[test]
    fn waiting_too_long_repeats_the_request() {
        let t0 = Instant::now();
        let mut q = SendQueue::new(QueueConfig::default());
        q.reset_video(t0);
        assert!(q.take_keyframe_request(t0));
        q.push_video(1, 10, false, t0 + ms(500));
        assert!(!q.take_keyframe_request(t0 + ms(500)));
        assert!(q.take_keyframe_request(t0 + ms(1_000)));
        assert_eq!(q.stats(t0).idr_requests, 2);
        q.push_video(2, 10, true, t0 + ms(1_100));
        assert!(!q.take_keyframe_request(t0 + ms(3_000)));
    }

    mod schedules {
        use super::*;
        use proptest::prelude::*;

        #[derive(Debug, Clone)]
        enum Op {
            Video { keyframe: bool, bytes: usize },
            Audio,
            Control,
            Pop(u8),
            Advance(u16),
        }

        fn op() -> impl Strategy<Value = Op> {
            prop_oneof![
                4 => (prop::bool::weighted(0.1), 100usize..400_000).prop_map(|(keyframe, bytes)| Op::Video { keyframe, bytes }),
                2 => Just(Op::Audio),
                1 => Just(Op::Control),
                3 => (0u8..8).prop_map(Op::Pop),
                3 => (0u16..150).prop_map(Op::Advance),
            ]
        }

        #[derive(Debug, Clone, Copy, PartialEq)]
        enum Item {
            Video(u32, bool),
            Audio(Instant),
            Control,
        }

        proptest! {
            /// Whatever the schedule: released video is in order and every gap is followed by a
            /// keyframe; no audio is released past its budget; control is never behind media.
            #[test]
            fn schedules_never_break_references(ops in prop::collection::vec(op(), 1..400)) {
                let config = QueueConfig { max_video_bytes: 1 << 20, ..QueueConfig::default() };
                let t0 = Instant::now();
                let mut now = t0;
                let mut q = SendQueue::new(config);
                let mut next_frame = 0u32;
                let mut last_released: Option<u32> = None;
                let mut pending_control = 0usize;
                for op in ops {
                    match op {
                        Op::Video { keyframe, bytes } => {
                            q.push_video(Item::Video(next_frame, keyframe), bytes, keyframe, now);
                            next_frame += 1;
                        }
                        Op::Audio => q.push_audio(Item::Audio(now), 200, now),
                        Op::Control => {
                            q.push_control(Item::Control);
                            pending_control += 1;
                        }
                        Op::Advance(ms) => now += Duration::from_millis(u64::from(ms)),
                        Op::Pop(n) => {
                            for _ in 0..n {
                                let Some(item) = q.pop(now) else { break };
                                match item {
                                    Item::Control => pending_control -= 1,
                                    _ => prop_assert_eq!(pending_control, 0, "media before control"),
                                }
                                match item {
                                    Item::Video(i, key) => {
                                        if let Some(prev) = last_released {
                                            prop_assert!(i > prev);
                                            prop_assert!(i == prev + 1 || key, "frame {} after {} is not a keyframe", i, prev);
                                        } else {
                                            prop_assert!(key, "the first frame released is a keyframe");
                                        }
                                        last_released = Some(i);
                                    }
                                    Item::Audio(at) => prop_assert!(now - at <= config.audio_budget),
                                    Item::Control => {}
                                }
                            }
                        }
                    }
                    let s = q.stats(now);
                    prop_assert!(s.video_depth_ms <= now.duration_since(t0).as_millis() as u64);
                }
            }
        }
    }
}
