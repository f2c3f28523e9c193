//! Host media → the browser, written once for both modes.
//!
//! WebSocket mode sends media to the web-server over IPC ([`crate::writer::Writer`]); WebRTC mode
//! sends it straight to the browser ([`crate::webrtc::Peer`]). What happens before the sink is the
//! same for both — the counters behind `Stats`, the timestamps ([`MediaClock`]), the parameter-set
//! cache that completes keyframes, and "drop deltas until a keyframe" after the sink refused a
//! frame — so it lives here, once, and each mode is a [`MediaSink`]. The only thing the modes
//! disagree on is who recovers from a refused frame: the IPC writer reports "full" and this
//! module asks the host for a keyframe; the peer applies its own policy and says so
//! ([`Sent::Skipped`]).
//!
//! In WebSocket mode this is the streamer's one keyframe gate. The writer has no queue: a full
//! pipe means the gateway is stalled, and the frame is refused before it is begun. Dropping from
//! there up to the next keyframe, here at the source, keeps every written frame whole and
//! decodable; the gateway's `Outbox` is the one send queue, at the browser's side. A keyframe
//! refused too (the host answered while the pipe was still full) is asked for again once the
//! pipe has drained ([`Forwarder::sink_drained`]).

use std::time::{Duration, Instant};

use bytes::Bytes;
use gamestream::client::SessionStats;
use wire::backpressure::QueueStats;
use wire::browser::VideoCodec;
use wire::ipc::Stats;

use crate::annexb::{KeyframeFix, ParamSetCache};
use crate::media_clock::MediaClock;
use crate::webrtc::PeerLink;

/// One access unit for a sink.
#[derive(Debug, Clone)]
pub struct VideoUnit {
    /// Browser codec byte.
    pub codec: u8,
    /// Keyframe (parameter sets in-band).
    pub keyframe: bool,
    /// Presentation time, µs.
    pub pts_us: u64,
    /// The access unit (Annex B for H.264/HEVC).
    pub data: Bytes,
}

/// What a sink did with a media unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sent {
    /// Queued for the browser.
    Queued,
    /// Dropped by the sink's own policy, which counts it and recovers by itself.
    Skipped,
    /// No room: drop deltas until a keyframe, and ask the host for one.
    Full,
    /// The sink is gone.
    Closed,
}

/// The sink's queue counters, for `Stats`.
#[derive(Debug, Clone, Copy, Default)]
pub struct SinkStats {
    /// The sink's queue: the WebRTC peer's send queue (drops, depth); for the IPC writer, the
    /// unwritten tail of a frame and how long it has waited for the pipe.
    pub queue: QueueStats,
    /// Video frames the sink dropped before its queue.
    pub frames_dropped: u64,
    /// WebRTC mode: what the browser's receiver reports said about the link.
    pub link: PeerLink,
}

/// Where host media goes: the IPC writer (WebSocket mode) or the browser's peer (WebRTC mode).
pub trait MediaSink {
    /// One access unit.
    fn video(&mut self, unit: VideoUnit) -> Sent;
    /// One Opus packet.
    fn audio(&mut self, data: Bytes, pts_us: u64) -> Sent;
    /// Rumble from the host: motors, or (`triggers`) the trigger motors.
    fn rumble(&mut self, controller: u16, triggers: bool, low: u16, high: u16);
    /// Queue counters.
    fn stats(&self) -> SinkStats;
}

/// What the session must do after a forward.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub enum Forwarded {
    /// Nothing.
    Done,
    /// Ask the host for an IDR.
    RequestKeyframe(&'static str),
    /// The sink is gone: end the session.
    SinkClosed,
}

/// The session's own counters (the sinks keep their queue counters).
#[derive(Debug, Default)]
pub struct Counters {
    pub frames_in: u64,
    pub video_frames: u64,
    pub video_bytes: u64,
    pub keyframes: u64,
    pub frames_lost: u64,
    pub frames_dropped: u64,
    pub audio_packets: u64,
    pub audio_bytes: u64,
    pub input_events: u64,
    pub keyframes_completed: u64,
}

/// The forwarding state of one stream.
#[derive(Debug)]
pub struct Forwarder {
    /// Browser codec byte of the stream.
    codec: u8,
    params: ParamSetCache,
    video_clock: MediaClock,
    audio_clock: MediaClock,
    /// A frame was refused on the way to the sink: drop deltas until a keyframe.
    need_keyframe: bool,
    /// A keyframe was refused while deltas were being dropped: ask again once the sink drains.
    keyframe_refused: bool,
    /// Counters for `Stats`.
    pub counters: Counters,
    /// When the last video frame went to the sink.
    last_video_at: Option<Instant>,
    /// A restream is under way since the old host stream's last frame (this instant): its gap
    /// ends at the new stream's first keyframe.
    restream_from: Option<Instant>,
    restreams: u64,
    restream_gap: Duration,
}

impl Forwarder {
    /// Forwarding for a stream of the browser codec byte `codec`.
    pub fn new(codec: u8) -> Self {
        Forwarder {
            codec,
            params: ParamSetCache::new(VideoCodec::from_byte(codec).unwrap_or(VideoCodec::H264)),
            video_clock: MediaClock::video(),
            audio_clock: MediaClock::audio(),
            need_keyframe: true,
            keyframe_refused: false,
            counters: Counters::default(),
            last_video_at: None,
            restream_from: None,
            restreams: 0,
            restream_gap: Duration::ZERO,
        }
    }

    /// The host stream is being started again at a new rung (a new encoder, perhaps a new size):
    /// its parameter sets are forgotten, deltas wait for its first keyframe, and the time from
    /// the old stream's last frame to that keyframe is the restream's gap (`Stats`).
    pub fn restarting(&mut self, now: Instant) {
        let codec = VideoCodec::from_byte(self.codec).unwrap_or(VideoCodec::H264);
        self.params = ParamSetCache::new(codec);
        self.need_keyframe = true;
        self.keyframe_refused = false;
        self.restream_from = Some(self.last_video_at.unwrap_or(now));
    }

    /// The last restream's gap, once its first keyframe went out.
    #[cfg(test)]
    pub fn last_restream_gap(&self) -> Option<Duration> {
        (self.restreams > 0 && self.restream_from.is_none()).then_some(self.restream_gap)
    }

    /// One video frame from the host (`rtp_timestamp`: its 90 kHz timestamp).
    pub fn video(
        &mut self,
        data: Vec<u8>,
        keyframe: bool,
        rtp_timestamp: u32,
        sink: &mut dyn MediaSink,
    ) -> Forwarded {
        self.counters.frames_in += 1;
        if self.need_keyframe && !keyframe {
            self.counters.frames_dropped += 1;
            return Forwarded::Done;
        }
        let (data, fix) = self.params.process(data, keyframe);
        match fix {
            KeyframeFix::Prepended => self.counters.keyframes_completed += 1,
            KeyframeFix::Missing if self.counters.keyframes == 0 => {
                tracing::warn!("keyframe without parameter sets, none cached")
            }
            _ => {}
        }
        let bytes = data.len() as u64;
        let pts_us = self.video_clock.stamp(Instant::now(), rtp_timestamp);
        let unit = VideoUnit {
            codec: self.codec,
            keyframe,
            pts_us,
            data: data.into(),
        };
        match sink.video(unit) {
            Sent::Queued => {
                let now = Instant::now();
                if let Some(from) = self.restream_from.take_if(|_| keyframe) {
                    self.restream_gap = now.saturating_duration_since(from);
                    self.restreams += 1;
                }
                self.last_video_at = Some(now);
                self.need_keyframe = false;
                self.keyframe_refused = false;
                self.counters.video_frames += 1;
                self.counters.video_bytes += bytes;
                self.counters.keyframes += u64::from(keyframe);
            }
            Sent::Skipped => self.need_keyframe = false,
            Sent::Full => {
                self.counters.frames_dropped += 1;
                self.keyframe_refused |= keyframe && self.need_keyframe;
                if !self.need_keyframe {
                    self.need_keyframe = true;
                    return Forwarded::RequestKeyframe("IPC channel full");
                }
            }
            Sent::Closed => return Forwarded::SinkClosed,
        }
        Forwarded::Done
    }

    /// The sink took everything it had left unwritten: if a keyframe was refused meanwhile, the
    /// one asked for when the sink first refused is gone, so ask again (once per refused
    /// keyframe, not once per frame, while the pipe is full).
    pub fn sink_drained(&mut self) -> Forwarded {
        if self.need_keyframe && std::mem::take(&mut self.keyframe_refused) {
            return Forwarded::RequestKeyframe("a keyframe was refused");
        }
        Forwarded::Done
    }

    /// Frames `first..=last` were lost on the way from the host.
    pub fn video_lost(&mut self, first: u32, last: u32) {
        self.counters.frames_lost += u64::from(last.wrapping_sub(first)) + 1;
    }

    /// One Opus packet from the host (`timestamp`: its ms timestamp). Refused packets are lost.
    pub fn audio(&mut self, opus: Vec<u8>, timestamp: u32, sink: &mut dyn MediaSink) {
        let bytes = opus.len() as u64;
        let pts_us = self.audio_clock.stamp(Instant::now(), timestamp);
        if sink.audio(opus.into(), pts_us) == Sent::Queued {
            self.counters.audio_packets += 1;
            self.counters.audio_bytes += bytes;
        }
    }

    /// The `Stats` frame: these counters, the host stream's and the sink's.
    pub fn stats(&self, host: SessionStats, sink: SinkStats, uptime: Duration) -> Stats {
        let (s, q, c) = (host, sink.queue, &self.counters);
        Stats {
            uptime_ms: uptime.as_millis() as u64,
            video_frames: c.video_frames.saturating_sub(q.frames_dropped),
            video_bytes: c.video_bytes,
            keyframes: c.keyframes,
            video_frames_lost: c.frames_lost,
            video_frames_dropped: c.frames_dropped + q.frames_dropped + sink.frames_dropped,
            packets_lost: s.video.packets_dropped + s.audio.lost,
            fec_recovered: s.video.shards_recovered + s.audio.recovered,
            audio_packets: c.audio_packets,
            audio_bytes: c.audio_bytes,
            input_events: c.input_events,
            idr_requests: s.idr_requests,
            host_rtt_ms: s.host_rtt.map_or(0, |d| {
                u32::try_from(d.as_millis()).unwrap_or(u32::MAX).max(1)
            }),
            send_queue_ms: q.video_depth_ms,
            restreams: self.restreams,
            restream_gap_ms: self.restream_gap.as_millis() as u64,
            peer_rtt_ms: sink.link.rtt_ms,
            peer_loss_permille: sink.link.loss_permille,
            peer_reports: sink.link.reports,
            peer_nacks: sink.link.nacks,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A sink that answers what it is told and records what it got.
    struct FakeSink {
        answer: Sent,
        video: Vec<VideoUnit>,
        audio: Vec<u64>,
    }

    impl MediaSink for FakeSink {
        fn video(&mut self, unit: VideoUnit) -> Sent {
            self.video.push(unit);
            self.answer
        }
        fn audio(&mut self, _data: Bytes, pts_us: u64) -> Sent {
            self.audio.push(pts_us);
            self.answer
        }
        fn rumble(&mut self, _: u16, _: bool, _: u16, _: u16) {}
        fn stats(&self) -> SinkStats {
            SinkStats::default()
        }
    }

    fn sink(answer: Sent) -> FakeSink {
        FakeSink {
            answer,
            video: Vec::new(),
            audio: Vec::new(),
        }
    }

    #[test]
    fn deltas_wait_for_a_keyframe_and_a_full_sink_asks_for_one_once() {
        let codec = VideoCodec::Av1Main8.to_byte();
        let mut f = Forwarder::new(codec);
        let mut s = sink(Sent::Queued);
        assert_eq!(f.video(vec![1], false, 0, &mut s), Forwarded::Done);
        assert!(
            s.video.is_empty(),
            "a delta before the first keyframe is dropped"
        );
        assert_eq!(f.video(vec![2, 2], true, 3000, &mut s), Forwarded::Done);
        assert_eq!(f.video(vec![3], false, 6000, &mut s), Forwarded::Done);
        assert_eq!(s.video.len(), 2);
        assert!(s.video[0].keyframe && s.video[0].codec == codec);
        assert!(s.video[1].pts_us > s.video[0].pts_us);
        s.answer = Sent::Full;
        let full = f.video(vec![4], false, 9000, &mut s);
        assert_eq!(full, Forwarded::RequestKeyframe("IPC channel full"));
        assert_eq!(f.video(vec![5], true, 12000, &mut s), Forwarded::Done);
        s.answer = Sent::Closed;
        assert_eq!(f.video(vec![6], true, 15000, &mut s), Forwarded::SinkClosed);
        let c = &f.counters;
        assert_eq!((c.frames_in, c.video_frames, c.keyframes), (6, 2, 1));
        assert_eq!((c.video_bytes, c.frames_dropped), (3, 3));
    }

    #[test]
    fn a_keyframe_refused_while_the_sink_is_full_is_asked_for_again_once_it_drains() {
        let mut f = Forwarder::new(VideoCodec::Av1Main8.to_byte());
        let mut s = sink(Sent::Queued);
        assert_eq!(f.video(vec![1], true, 0, &mut s), Forwarded::Done);
        assert_eq!(f.sink_drained(), Forwarded::Done, "nothing was refused");
        s.answer = Sent::Full;
        let full = f.video(vec![2], false, 3000, &mut s);
        assert_eq!(full, Forwarded::RequestKeyframe("IPC channel full"));
        // Drained before the host answered: its keyframe is still to come, no second request.
        assert_eq!(f.sink_drained(), Forwarded::Done);
        // The host's keyframe finds the pipe full again; deltas meanwhile are dropped silently.
        assert_eq!(f.video(vec![3], true, 6000, &mut s), Forwarded::Done);
        assert_eq!(f.video(vec![4], false, 9000, &mut s), Forwarded::Done);
        assert_eq!(f.video(vec![5], true, 12000, &mut s), Forwarded::Done);
        s.answer = Sent::Queued;
        assert_eq!(f.video(vec![6], false, 15000, &mut s), Forwarded::Done);
        let ask = f.sink_drained();
        assert_eq!(ask, Forwarded::RequestKeyframe("a keyframe was refused"));
        assert_eq!(f.sink_drained(), Forwarded::Done, "asked once per drain");
        assert_eq!(f.video(vec![7], true, 18000, &mut s), Forwarded::Done);
        assert_eq!(f.video(vec![8], false, 21000, &mut s), Forwarded::Done);
        let c = &f.counters;
        assert_eq!((c.frames_in, c.video_frames, c.frames_dropped), (8, 3, 5));
        assert_eq!(s.video.iter().filter(|u| u.keyframe).count(), 4);
    }

    #[test]
    fn a_restream_waits_for_the_new_keyframe_and_measures_its_gap() {
        let mut f = Forwarder::new(VideoCodec::Av1Main8.to_byte());
        let mut s = sink(Sent::Queued);
        assert_eq!(f.video(vec![1], true, 0, &mut s), Forwarded::Done);
        assert_eq!(f.last_restream_gap(), None);
        f.restarting(Instant::now());
        std::thread::sleep(Duration::from_millis(20));
        // The new stream's deltas before its keyframe are dropped; its keyframe ends the gap.
        assert_eq!(f.video(vec![2], false, 0, &mut s), Forwarded::Done);
        assert_eq!(f.last_restream_gap(), None, "no keyframe yet");
        assert_eq!(f.video(vec![3], true, 0, &mut s), Forwarded::Done);
        let gap = f.last_restream_gap().expect("the gap is measured");
        assert!(gap >= Duration::from_millis(20), "{gap:?}");
        assert_eq!(s.video.len(), 2);
        let st = f.stats(
            SessionStats::default(),
            SinkStats::default(),
            Duration::ZERO,
        );
        assert_eq!(
            (st.restreams, st.restream_gap_ms),
            (1, gap.as_millis() as u64)
        );
    }

    #[test]
    fn a_sink_that_skips_recovers_by_itself() {
        let mut f = Forwarder::new(VideoCodec::Av1Main8.to_byte());
        let mut s = sink(Sent::Skipped);
        assert_eq!(f.video(vec![1], true, 0, &mut s), Forwarded::Done);
        // The peer skipped the keyframe; deltas still go to it (its own policy drops them).
        assert_eq!(f.video(vec![2], false, 3000, &mut s), Forwarded::Done);
        assert_eq!(s.video.len(), 2);
        let c = &f.counters;
        assert_eq!((c.video_frames, c.frames_dropped), (0, 0));
        f.audio(vec![0; 10], 5, &mut s);
        s.answer = Sent::Queued;
        f.audio(vec![0; 10], 10, &mut s);
        assert_eq!((f.counters.audio_packets, f.counters.audio_bytes), (1, 10));
        f.video_lost(u32::MAX, 1);
        assert_eq!(f.counters.frames_lost, 3);
    }
}
