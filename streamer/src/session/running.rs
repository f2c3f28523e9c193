//! The running session: one `select!` over the IPC input, the host stream's events, the WebRTC
//! peer's socket and timers, the IPC pipe (written here, [`Writer`]) and the stats tick.
//!
//! This is the only place that waits once the stream is up, so it stays a dispatcher: media goes
//! through [`Forwarder`] to the mode's [`MediaSink`], browser input through the
//! [`InputMapper`] to the host, and whatever ends the session comes back as an [`End`] for the
//! teardown.

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use gamestream::client::{ClientStream, SessionEvent};
use gamestream::control::HostMessage;
use tokio::io::AsyncRead;
use tokio_util::codec::FramedRead;
use wire::ipc::{FromStreamer, Rung, Stats, StreamerCodec, ToStreamer};

use super::end::end_of;
use super::forward::{Forwarded, Forwarder, MediaSink};
use super::End;
use crate::input::{InputMapper, Mapped};
use crate::webrtc::{self, Peer, PeerOut};
use crate::writer::{Refused, Writer};

/// Stats period.
const STATS_PERIOD: Duration = Duration::from_secs(1);

/// Why the loop returned.
pub(super) enum Exit {
    /// The session is over.
    End(End),
    /// The web-server asked for the stream at another rung ([`super::restream`]).
    Restream(Rung),
}

/// A started stream and everything its loop drives.
pub(super) struct Running {
    /// WebRTC mode: the browser's peer; media goes there instead of the IPC channel.
    pub(super) peer: Option<Peer>,
    /// The host stream, driven in place by this loop (its `next_event` branch).
    pub(super) session: ClientStream,
    /// WebSocket mode's sink, and in both modes the way to the web-server (stdout).
    pub(super) writer: Writer,
    pub(super) mapper: InputMapper,
    pub(super) forward: Forwarder,
    pub(super) started_at: Instant,
}

impl Running {
    /// Runs the stream until something ends it.
    pub(super) async fn main_loop<R: AsyncRead + Unpin>(
        &mut self,
        rx: &mut FramedRead<R, StreamerCodec>,
    ) -> Exit {
        let mut stats_tick = tokio::time::interval(STATS_PERIOD);
        stats_tick.tick().await;
        let mut last_log = (Instant::now(), 0u64, 0u64);
        loop {
            tokio::select! {
                biased;
                msg = rx.next() => match msg {
                    None => return Exit::End(End::stopped("IPC input closed")),
                    Some(Ok(ToStreamer::Stop)) => return Exit::End(End::stopped("Stop from the web-server")),
                    Some(Ok(ToStreamer::RequestKeyframe)) => self.request_idr("web-server"),
                    Some(Ok(ToStreamer::Input(bytes))) => self.input(&bytes),
                    Some(Ok(ToStreamer::Init(_))) => tracing::warn!("second Init ignored"),
                    Some(Ok(ToStreamer::Restream(rung))) => return Exit::Restream(rung),
                    // The turn ended at Started; a grant still on its way has nothing to start.
                    Some(Ok(ToStreamer::LaunchTurn)) => {}
                    Some(Ok(ToStreamer::Signal(s))) => match self.peer.as_mut() {
                        Some(peer) => peer.signal(s),
                        None => tracing::debug!("WebRTC signal ignored in WebSocket mode"),
                    },
                    Some(Err(e)) => return Exit::End(End::ipc(e)),
                },
                io = peer_wait(&mut self.peer) => {
                    if let Some(peer) = self.peer.as_mut() {
                        peer.handle(io);
                    }
                }
                // The gateway read again: the unwritten tail of a frame went into the pipe.
                drained = self.writer.drained() => match drained {
                    Ok(()) => match self.forward.sink_drained() {
                        Forwarded::RequestKeyframe(why) => self.request_idr(why),
                        Forwarded::Done | Forwarded::SinkClosed => {}
                    },
                    Err(_) => return Exit::End(End::stopped("IPC output closed")),
                },
                event = self.session.next_event() => match event {
                    Some(event) => if let Some(end) = self.event(event) { return Exit::End(end) },
                    None => return Exit::End(End::host_ended("the host stream ended".into())),
                },
                _ = self.writer.closed() => return Exit::End(End::stopped("IPC output closed")),
                _ = stats_tick.tick() => {
                    let stats = self.stats();
                    let secs = last_log.0.elapsed().as_secs_f64().max(0.001);
                    tracing::debug!(
                        fps_in = format_args!("{:.1}", (self.forward.counters.frames_in - last_log.1) as f64 / secs),
                        fps_out = format_args!("{:.1}", (stats.video_frames - last_log.2) as f64 / secs),
                        kbps = stats.video_bytes * 8 / 1000 / (stats.uptime_ms / 1000).max(1),
                        dropped = stats.video_frames_dropped, lost = stats.video_frames_lost,
                        idr = stats.idr_requests, fec = stats.fec_recovered,
                        "stats"
                    );
                    last_log = (Instant::now(), self.forward.counters.frames_in, stats.video_frames);
                    let _ = self.writer.media(FromStreamer::Stats(stats));
                }
            }
            if let Some(end) = self.drain_peer() {
                return Exit::End(end);
            }
        }
    }

    /// Acts on what the WebRTC peer produced; `Some` ends the session.
    pub(super) fn drain_peer(&mut self) -> Option<End> {
        while let Some(out) = self.peer.as_mut()?.poll_out() {
            match out {
                PeerOut::Signal(s) => {
                    // Never dropped: the negotiation would hang without it.
                    if self.writer.control_now(FromStreamer::Signal(s)) == Err(Refused::Closed) {
                        return Some(End::stopped("IPC output closed"));
                    }
                }
                PeerOut::Input(bytes) => {
                    self.input(&bytes);
                    let pads = self.mapper.active_pads();
                    if let Some(peer) = self.peer.as_mut() {
                        peer.set_active_pads(pads);
                    }
                }
                PeerOut::KeyframeRequest(why) => self.request_idr(why),
                PeerOut::Mic(opus, samples) => self.mic(&opus, samples),
                PeerOut::End(end) => return Some(End::peer(end)),
            }
        }
        None
    }

    fn request_idr(&mut self, why: &str) {
        tracing::debug!(why, "requesting an IDR");
        if let Err(e) = self.session.request_idr() {
            tracing::warn!(error = %e, "IDR request failed");
        }
    }

    fn input(&mut self, bytes: &[u8]) {
        match self.mapper.map(bytes) {
            Ok(Mapped::Input(events)) => {
                for event in events {
                    self.forward.counters.input_events += 1;
                    if let Err(e) = self.session.send_input(&event) {
                        tracing::debug!(error = %e, "input not sent");
                    }
                }
            }
            Ok(Mapped::RequestKeyframe) => self.request_idr("video re-enabled"),
            Ok(Mapped::Mic(opus, samples)) => self.mic(&opus, samples),
            Ok(Mapped::Ignored) => {}
            Err(e) => tracing::debug!(error = %e, "browser input dropped"),
        }
    }

    /// One microphone packet (a MicOpus in WebSocket mode, the upward audio track's in WebRTC
    /// mode) → the host's mic stream, if it has one.
    fn mic(&mut self, opus: &[u8], samples: u32) {
        match self.session.send_mic(opus, samples) {
            Ok(true) => self.forward.counters.input_events += 1,
            Ok(false) => {
                tracing::debug!("microphone packet dropped: the host has no microphone stream")
            }
            Err(e) => tracing::debug!(error = %e, "microphone packet not sent"),
        }
    }

    /// Handles one stream event; `Some` ends the session.
    fn event(&mut self, event: SessionEvent) -> Option<End> {
        let sink = media_sink(&mut self.peer, &mut self.writer);
        match event {
            SessionEvent::Video(frame) => {
                match self
                    .forward
                    .video(frame.data, frame.is_idr, frame.rtp_timestamp, sink)
                {
                    Forwarded::Done => {}
                    Forwarded::RequestKeyframe(why) => self.request_idr(why),
                    Forwarded::SinkClosed => return Some(End::stopped("IPC output closed")),
                }
            }
            SessionEvent::VideoLost { first, last } => self.forward.video_lost(first, last),
            SessionEvent::Audio {
                timestamp, opus, ..
            } => self.forward.audio(opus, timestamp, sink),
            SessionEvent::Ended(cause) => return Some(end_of(cause)),
            SessionEvent::Rumble {
                controller,
                low_freq,
                high_freq,
            } => sink.rumble(controller, false, low_freq, high_freq),
            SessionEvent::Host(HostMessage::RumbleTriggers {
                controller,
                left,
                right,
            }) => sink.rumble(controller, true, left, right),
            SessionEvent::AudioLost { .. } | SessionEvent::Hdr { .. } | SessionEvent::Host(_) => {}
        }
        None
    }

    fn stats(&self) -> Stats {
        let sink = match &self.peer {
            Some(p) => MediaSink::stats(p),
            None => MediaSink::stats(&self.writer),
        };
        self.forward
            .stats(self.session.stats(), sink, self.started_at.elapsed())
    }
}

/// Where media goes: the peer in WebRTC mode, else the IPC writer.
fn media_sink<'a>(peer: &'a mut Option<Peer>, writer: &'a mut Writer) -> &'a mut dyn MediaSink {
    match peer {
        Some(p) => p,
        None => writer,
    }
}

/// The peer's next I/O, or never in WebSocket mode (a `select!` branch).
async fn peer_wait(peer: &mut Option<Peer>) -> webrtc::peer::PeerIo {
    match peer.as_mut() {
        Some(p) => p.wait().await,
        None => std::future::pending().await,
    }
}
