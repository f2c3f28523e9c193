//! The streamer's WebRTC peer: the sans-IO [`PeerCore`] driven by its network driver, [`Peer`],
//! on the session's tokio task.
//!
//! The split follows str0m's own: str0m is sans-IO, and so is everything the peer decides
//! ([`core`], with `signaling` and `events`; tested without a network in `core_tests.rs`). This
//! file holds only what needs the OS: the one UDP socket, the tokio timer and the clock.
//! [`Peer::wait`] waits for the socket or the core's next deadline (cancel-safe, so it is a branch
//! of the session's `select!`), [`Peer::handle`] feeds what came in to the core and sends what the
//! core produced — datagrams go out with `try_send_to`; if the kernel buffer is full they wait in
//! a small bounded backlog and no new media is handed to str0m until it is written, so media piles
//! up in the core's [`SendQueue`](wire::backpressure::SendQueue) instead, whose time budget drops
//! whole frames up to the next keyframe (the WebSocket mode's policy, same counters). Results for
//! the session (signals, input, keyframe requests, the end) come out of [`Peer::poll_out`].

mod codec;
pub mod core;
#[cfg(test)]
mod core_tests;
mod events;
mod signaling;

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::Instant;

use bytes::Bytes;
use tokio::net::UdpSocket;
use wire::backpressure::{QueueConfig, QueueStats};
use wire::ipc::{RemoteSignal, WebRtcSettings};

pub use self::core::{PeerCore, PeerEnd, PeerLink, PeerOut, StreamInfo};
use super::net::{Candidates, NetError};
use crate::session::forward::{MediaSink, Sent, SinkStats, VideoUnit};

/// Datagrams held while the socket's send buffer is full; beyond this the oldest go.
const BACKLOG: usize = 1024;

/// What [`Peer::wait`] saw.
#[derive(Debug)]
pub enum PeerIo {
    /// A datagram of this length from this source is in the buffer.
    Received(usize, SocketAddr),
    /// The socket failed to read (logged; transient errors such as ICMP port unreachable).
    ReadError(std::io::Error),
    /// The backlog can be written.
    Writable,
    /// A timer is due.
    Timer,
}

/// The peer's counters, for `Stats`.
#[derive(Debug, Clone, Copy, Default)]
pub struct PeerCounters {
    /// Video frames dropped before the queue (peer not connected, waiting for a keyframe).
    pub frames_dropped: u64,
    /// Datagrams dropped because the backlog was full.
    pub datagrams_dropped: u64,
}

/// One browser's peer connection (replaceable) on one UDP socket.
pub struct Peer {
    socket: UdpSocket,
    core: PeerCore,
    backlog: VecDeque<(SocketAddr, Vec<u8>)>,
    buf: Vec<u8>,
    /// The driver's counters (the core counts the frames it dropped).
    counters: PeerCounters,
}

impl Peer {
    /// A peer on `socket` (bound by [`super::net::bind`]) for the host stream `info`.
    pub fn new(
        socket: UdpSocket,
        settings: &WebRtcSettings,
        info: StreamInfo,
        queue: QueueConfig,
    ) -> Result<Self, NetError> {
        let bound = socket
            .local_addr()
            .map_err(|e| NetError::Settings(format!("socket address: {e}")))?;
        let candidates = Candidates::new(bound, settings)?;
        tracing::info!(
            %bound,
            candidates = ?candidates.all.iter().map(|c| c.to_sdp_string()).collect::<Vec<_>>(),
            "WebRTC peer socket ready"
        );
        Ok(Peer {
            socket,
            core: PeerCore::new(candidates, settings, info, queue),
            backlog: VecDeque::new(),
            buf: vec![0; 2048],
            counters: PeerCounters::default(),
        })
    }

    /// Waits for a datagram, writability of the backlog, or the next timer. Cancel-safe.
    pub async fn wait(&mut self) -> PeerIo {
        let deadline = self.core.deadline();
        let timer = async {
            match deadline {
                Some(d) => tokio::time::sleep_until(d.into()).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            r = self.socket.recv_from(&mut self.buf) => match r {
                Ok((n, src)) => PeerIo::Received(n, src),
                Err(e) => PeerIo::ReadError(e),
            },
            r = self.socket.writable(), if !self.backlog.is_empty() => match r {
                Ok(()) => PeerIo::Writable,
                Err(e) => PeerIo::ReadError(e),
            },
            _ = timer => PeerIo::Timer,
        }
    }

    /// Handles what [`Peer::wait`] returned, then drives the peer.
    pub fn handle(&mut self, io: PeerIo) {
        let now = Instant::now();
        match io {
            PeerIo::Received(n, source) => self.core.receive(now, source, &self.buf[..n]),
            PeerIo::ReadError(e) => tracing::debug!(error = %e, "UDP socket error"),
            PeerIo::Writable => self.flush_backlog(),
            PeerIo::Timer => {}
        }
        self.drive(now);
    }

    /// The next result for the session.
    pub fn poll_out(&mut self) -> Option<PeerOut> {
        self.core.poll_out()
    }

    /// The peer's counters.
    pub fn counters(&self) -> PeerCounters {
        PeerCounters {
            frames_dropped: self.core.frames_dropped(),
            ..self.counters
        }
    }

    /// The send queue's counters.
    pub fn queue_stats(&self) -> QueueStats {
        self.core.queue_stats(Instant::now())
    }

    /// One access unit from the host. Returns whether it was accepted (else counted as dropped).
    pub fn push_video(&mut self, data: Bytes, keyframe: bool, pts_us: u64) -> bool {
        let now = Instant::now();
        let accepted = self.core.push_video(data, keyframe, pts_us, now);
        if accepted {
            self.drive(now);
        }
        accepted
    }

    /// One Opus packet from the host.
    pub fn push_audio(&mut self, data: Bytes, pts_us: u64) -> bool {
        let now = Instant::now();
        let accepted = self.core.push_audio(data, pts_us, now);
        if accepted {
            self.drive(now);
        }
        accepted
    }

    /// Rumble from the host → the `controllers` channel (contract §3.4).
    pub fn rumble(&mut self, controller: u16, low: u16, high: u16) {
        if self.core.rumble(controller, low, high) {
            self.drive(Instant::now());
        }
    }

    /// Tells the peer the session's input mapper's gamepad mask.
    pub fn set_active_pads(&mut self, mask: u16) {
        self.core.set_active_pads(mask);
    }

    /// Signaling from the browser.
    pub fn signal(&mut self, signal: RemoteSignal) {
        let now = Instant::now();
        self.core.signal(signal, now);
        self.drive(now);
    }

    /// Ends the peer: `"ConnectionTerminated"` on `general`, then close (DTLS close_notify).
    pub fn close(&mut self) {
        self.core.terminate();
        self.drive(Instant::now());
        self.core.disconnect();
        self.drive(Instant::now());
        self.flush_backlog();
    }

    /// Drives the core (media only while the backlog is empty) and sends what it produced.
    fn drive(&mut self, now: Instant) {
        self.core.drive(now, self.backlog.is_empty());
        while let Some((destination, data)) = self.core.poll_transmit() {
            self.send(destination, data);
        }
    }

    fn send(&mut self, destination: SocketAddr, data: Vec<u8>) {
        if self.backlog.is_empty() {
            match self.socket.try_send_to(&data, destination) {
                Ok(_) => return,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(e) => {
                    tracing::debug!(error = %e, %destination, "UDP send failed");
                    return;
                }
            }
        }
        if self.backlog.len() >= BACKLOG {
            self.backlog.pop_front();
            self.counters.datagrams_dropped += 1;
        }
        self.backlog.push_back((destination, data));
    }

    fn flush_backlog(&mut self) {
        while let Some((dst, data)) = self.backlog.front() {
            match self.socket.try_send_to(data, *dst) {
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return,
                Err(e) => tracing::debug!(error = %e, "UDP send failed"),
            }
            self.backlog.pop_front();
        }
    }
}

/// WebRTC mode: media goes straight to the browser; the peer applies its own send policy.
impl MediaSink for Peer {
    fn video(&mut self, unit: VideoUnit) -> Sent {
        sent(self.push_video(unit.data, unit.keyframe, unit.pts_us))
    }

    fn audio(&mut self, data: Bytes, pts_us: u64) -> Sent {
        sent(self.push_audio(data, pts_us))
    }

    /// Motor rumble goes on the `controllers` channel; the contract has no trigger rumble.
    fn rumble(&mut self, controller: u16, triggers: bool, low: u16, high: u16) {
        if !triggers {
            Peer::rumble(self, controller, low, high);
        }
    }

    fn stats(&self) -> SinkStats {
        SinkStats {
            queue: self.queue_stats(),
            frames_dropped: self.counters().frames_dropped,
            link: self.core.link(),
        }
    }
}

/// A frame the peer did not accept was dropped by its own policy (counted in [`PeerCounters`]).
fn sent(accepted: bool) -> Sent {
    if accepted {
        Sent::Queued
    } else {
        Sent::Skipped
    }
}
