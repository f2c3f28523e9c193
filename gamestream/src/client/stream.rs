//! A launched stream driven in place: [`ClientStream`] owns the stream's three UDP sockets and its
//! [`ClientCore`], and its owner's loop awaits [`ClientStream::next_event`].
//!
//! The streamer's session loop holds it directly, so a video datagram goes from the socket
//! through the core to the browser-bound sink in one task, with no channel in between. Before
//! this there were four tasks here (video receiver, audio receiver, ENet driver, and a pump joining
//! them) and the atomics they shared. [`super::ClientSession`] wraps the same object in a task
//! with an event channel, for tools and tests that want one.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;

use tokio::net::UdpSocket;

use super::core::{ClientCore, StreamSocket};
use super::{ClientError, SessionEvent, SessionStats, DISCONNECT_SETTLE};
use crate::control::ControlError;
use crate::input::InputEvent;
use crate::mic::{MicError, MicPacketizer};
use crate::nvhttp::NvHttpClient;
use crate::rtsp::RtspOutcome;
use crate::video::{enlarge_buffers, BatchReceiver};
use crate::AppVersion;

/// Room for one audio or control datagram.
const DATAGRAM_BYTES: usize = 2048;

/// The local address for a socket that talks to `host`: loopback for a loopback host (so a
/// stream on one machine never leaves it), else the wildcard address of its family.
fn bind_address(host: IpAddr) -> SocketAddr {
    match host {
        IpAddr::V4(ip) if ip.is_loopback() => (Ipv4Addr::LOCALHOST, 0).into(),
        IpAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
        IpAddr::V6(ip) if ip.is_loopback() => (Ipv6Addr::LOCALHOST, 0).into(),
        IpAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
    }
}

#[derive(Debug)]
struct VideoSocket {
    socket: UdpSocket,
    batch: BatchReceiver,
}

/// A running stream, driven by whoever awaits [`ClientStream::next_event`].
///
/// Between calls nothing is serviced, so the owner's loop must keep a `next_event` branch
/// pending while the stream lives (every other branch of a `select!` returns quickly). Dropped
/// without [`ClientStream::stop`], it sends one ENet disconnect and nothing else.
#[derive(Debug)]
pub struct ClientStream {
    http: Arc<NvHttpClient>,
    version: AppVersion,
    outcome: RtspOutcome,
    core: ClientCore,
    host_ip: IpAddr,
    video: Option<VideoSocket>,
    audio: Option<UdpSocket>,
    control: UdpSocket,
    mic: Option<MicUplink>,
}

/// The microphone's socket, the host's mic port and the packetizer (client → host only).
#[derive(Debug)]
struct MicUplink {
    socket: UdpSocket,
    to: SocketAddr,
    packetizer: MicPacketizer,
}

/// What woke the stream.
enum Wake {
    Video,
    Audio(usize, SocketAddr),
    Control(usize, SocketAddr),
    Timeout,
    Nothing,
}

impl ClientStream {
    /// Binds the sockets and brings the control stream up (the core's connect deadline bounds
    /// it). Fails like the ENet connect does.
    pub(super) async fn connect(
        http: Arc<NvHttpClient>,
        outcome: RtspOutcome,
        core: ClientCore,
        host_ip: IpAddr,
        mic: Option<MicPacketizer>,
    ) -> Result<Self, ClientError> {
        let bind = bind_address(host_ip);
        let mic = match (mic, outcome.mic_port) {
            (Some(packetizer), Some(port)) => Some(MicUplink {
                socket: UdpSocket::bind(bind).await?,
                to: SocketAddr::new(host_ip, port),
                packetizer,
            }),
            _ => None,
        };
        let video = UdpSocket::bind(bind).await?;
        enlarge_buffers(&video);
        let batch = BatchReceiver::new(&video)?;
        let mut stream = ClientStream {
            http,
            version: core.app_version(),
            outcome,
            core,
            host_ip,
            video: Some(VideoSocket {
                socket: video,
                batch,
            }),
            audio: Some(UdpSocket::bind(bind).await?),
            control: UdpSocket::bind(bind).await?,
            mic,
        };
        stream.transmit();
        while !stream.core.is_connected() {
            if stream.core.is_ended() {
                return Err(ClientError::Control(ControlError::ConnectTimeout));
            }
            stream.step().await;
        }
        if stream.version.at_least(7, 1, 0) {
            // moonlight-common-c enables haptics when input starts; GFE sends no rumble without it.
            stream.send_input(&InputEvent::EnableHaptics)?;
        }
        Ok(stream)
    }

    /// The host's appversion.
    pub fn app_version(&self) -> AppVersion {
        self.version
    }

    /// What RTSP negotiated (ports, codec, encryption, audio layout).
    pub fn outcome(&self) -> &RtspOutcome {
        &self.outcome
    }

    /// The next event; [`SessionEvent::Ended`] is the last, then `None`. Cancel-safe: a
    /// `select!` may drop it at any await without losing a datagram or an event.
    pub async fn next_event(&mut self) -> Option<SessionEvent> {
        loop {
            if let Some(event) = self.core.poll_event() {
                return Some(event);
            }
            if self.core.is_ended() {
                return None;
            }
            self.step().await;
        }
    }

    /// Sends one input event, encoded and wrapped for this host's generation.
    pub fn send_input(&mut self, event: &InputEvent) -> Result<(), ClientError> {
        let result = self.core.send_input(event);
        self.transmit();
        result
    }

    /// True if the host took the microphone stream (see [`crate::mic`]).
    pub fn has_mic(&self) -> bool {
        self.mic.is_some()
    }

    /// Sends one Opus packet of `samples` samples (48 kHz, mono) to the host's microphone port,
    /// without waiting: `Ok(false)` when there is no microphone stream (not offered, not asked
    /// for, or the stream is closing) or the socket refused the datagram (a full buffer drops
    /// it, as the network would).
    pub fn send_mic(&mut self, opus: &[u8], samples: u32) -> Result<bool, MicError> {
        if !self.core.media_open() {
            self.mic = None;
        }
        let Some(mic) = self.mic.as_mut() else {
            return Ok(false);
        };
        let datagram = mic.packetizer.push(opus, samples)?;
        match socket2::SockRef::from(&mic.socket).send_to(&datagram, &mic.to.into()) {
            Ok(_) => Ok(true),
            Err(e) => {
                tracing::debug!("mic datagram not sent: {e}");
                Ok(false)
            }
        }
    }

    /// Whether [`ClientStream::set_bitrate`] can reach the host's encoder.
    pub fn has_live_bitrate(&self) -> bool {
        self.core.has_live_bitrate()
    }

    /// Asks the host's encoder for `kbps` from now on, the stream kept; `Ok(false)` from a host
    /// without live bitrate control ([`crate::nvhttp::ServerInfo::has_live_bitrate`]).
    pub fn set_bitrate(&mut self, kbps: u32) -> Result<bool, ClientError> {
        let result = self.core.set_bitrate(kbps);
        self.transmit();
        result
    }

    /// Asks the host for a keyframe (e.g. after a decoder reset).
    pub fn request_idr(&mut self) -> Result<(), ClientError> {
        let result = self.core.request_idr();
        self.transmit();
        result
    }

    /// Counters so far.
    pub fn stats(&self) -> SessionStats {
        self.core.stats()
    }

    /// Ends the stream: the media sockets close, the control stream disconnects and awaits the
    /// host's acknowledgement (at most the control linger time), and only then is `/cancel` sent
    /// and its answer awaited; its error, if any, is returned. See the module doc of
    /// [`super`] for why this order and no other.
    pub async fn stop(mut self) -> Result<(), ClientError> {
        self.close().await;
        // A host's ENet layer acknowledges the disconnect before its control loop has handled it
        // (ENet sends the acknowledgement inside the service call that then returns the event): a
        // `/cancel` that overtakes that handling ends a session whose peer the host still counts
        // as connected, upstream Wolf's crash. The chaos suite (web-server/tests/chaos.rs) saw the
        // Wolf-strict demo host count this about once in 5 000 operations on a loaded machine.
        tokio::time::sleep(DISCONNECT_SETTLE).await;
        self.http.cancel().await.map_err(ClientError::from)
    }

    /// Ends the stream but not the host's app, as a Moonlight client leaving a game running does:
    /// media stops and the control stream disconnects (awaited, as in [`ClientStream::stop`]),
    /// and no `/cancel` is sent. Hosts keep the app (Wolf pauses the session, Sunshine keeps the
    /// app), so a new stream of the same client, perhaps at another size or bitrate, follows
    /// with `/resume` and a new ANNOUNCE: how a stream changes quality on a host that has no
    /// runtime bitrate control.
    pub async fn end_stream(mut self) {
        self.close().await;
        // The same settle as `stop`: the next request (`/resume`) must find the disconnect
        // handled by the host's control loop.
        tokio::time::sleep(DISCONNECT_SETTLE).await;
    }

    /// The graceful end of the stream without `/cancel`: media stops, the ENet disconnect is
    /// acknowledged or the linger time passes.
    pub(super) async fn close(&mut self) {
        self.core.close(Instant::now());
        self.transmit();
        while !self.core.is_ended() {
            self.step().await;
        }
    }

    /// Waits for a datagram or the core's deadline, feeds it, and sends what the core queued.
    /// Only the wait can be cancelled; what follows it is synchronous.
    async fn step(&mut self) {
        let deadline = self.core.poll_timeout().unwrap_or_else(Instant::now);
        let mut buf = [0u8; DATAGRAM_BYTES];
        let mut audio_buf = [0u8; DATAGRAM_BYTES];
        let wake = tokio::select! {
            ready = readable(self.video.as_ref()) => match ready {
                Ok(()) => Wake::Video,
                Err(_) => Wake::Nothing,
            },
            received = recv(self.audio.as_ref(), &mut audio_buf) => match received {
                Ok((n, from)) => Wake::Audio(n, from),
                Err(_) => Wake::Nothing,
            },
            received = self.control.recv_from(&mut buf) => match received {
                Ok((n, from)) => Wake::Control(n, from),
                Err(_) => Wake::Nothing,
            },
            () = tokio::time::sleep_until(deadline.into()) => Wake::Timeout,
        };
        let now = Instant::now();
        match wake {
            Wake::Video => self.read_video(now),
            Wake::Audio(n, from) => {
                self.core
                    .handle_input(now, StreamSocket::Audio, from, &audio_buf[..n]);
            }
            Wake::Control(n, from) => {
                self.core
                    .handle_input(now, StreamSocket::Control, from, &buf[..n]);
            }
            Wake::Timeout => self.core.handle_timeout(now),
            Wake::Nothing => {}
        }
        self.transmit();
        if !self.core.media_open() {
            // Closing or ended: the media sockets go now, as a stopped client's would.
            self.video = None;
            self.audio = None;
            self.mic = None;
        }
    }

    fn read_video(&mut self, now: Instant) {
        let Some(video) = self.video.as_mut() else {
            return;
        };
        // `WouldBlock` (a spurious wake-up) and transient errors (ICMP) alike: nothing to feed.
        if video.batch.try_recv(&video.socket).is_err() {
            return;
        }
        // Batched reads do not say where each datagram came from; the core checks video by its
        // framing and keys, not by its source, so the host's address stands in.
        let from = SocketAddr::new(self.host_ip, 0);
        for datagram in video.batch.datagrams() {
            self.core
                .handle_input(now, StreamSocket::Video, from, datagram);
        }
    }

    /// Sends what the core queued, without waiting: a full socket buffer drops the datagram, as
    /// a congested network would (ENet retransmits, pings repeat), and keeps this cancel-safe.
    fn transmit(&mut self) {
        while let Some(t) = self.core.poll_transmit() {
            let socket = match t.socket {
                StreamSocket::Video => self.video.as_ref().map(|v| &v.socket),
                StreamSocket::Audio => self.audio.as_ref(),
                StreamSocket::Control => Some(&self.control),
            };
            // Straight to the (non-blocking) socket: tokio's `try_send_to` refuses until its
            // reactor has seen the socket writable, which would drop a fresh socket's first
            // datagram (the ENet connect). Pings before the host has bound (ICMP) and late pings
            // after close are not fatal.
            let send = |s: &UdpSocket| socket2::SockRef::from(s).send_to(&t.payload, &t.to.into());
            if let Some(Err(e)) = socket.map(send) {
                tracing::debug!("{:?} datagram not sent: {e}", t.socket);
            }
        }
    }
}

impl Drop for ClientStream {
    fn drop(&mut self) {
        self.core.abort();
        self.transmit();
    }
}

async fn readable(video: Option<&VideoSocket>) -> std::io::Result<()> {
    match video {
        Some(v) => v.socket.readable().await,
        None => std::future::pending().await,
    }
}

async fn recv(socket: Option<&UdpSocket>, buf: &mut [u8]) -> std::io::Result<(usize, SocketAddr)> {
    match socket {
        Some(s) => s.recv_from(buf).await,
        None => std::future::pending().await,
    }
}
