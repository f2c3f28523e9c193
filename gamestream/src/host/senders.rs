//! What the application holds of a session's media: a [`VideoSender`] and an [`AudioSender`],
//! handles on the session's media driver (`host::media_driver`), which owns the sockets and the
//! sans-IO [`HostMediaCore`]. The handles only pass frames and Opus packets to the driver and
//! wait for it, so a producer is paced by its sends exactly as when it sent on the socket itself.
//!
//! The host makes both at RTSP ANNOUNCE with [`spawn_session`]; a lone sender
//! ([`VideoSender::bind`], [`AudioSender::bind`]) runs the same driver with one stream.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::UdpSocket;
use tokio::sync::oneshot;

use super::faults::{LossInjection, MediaFaults};
use super::media_core::{HostMediaCore, HostMediaParams, PingRule};
use super::media_driver::{self, AudioJob, Command, Link, StreamSetup, VideoJob};
use crate::audio::{AudioError, AudioPacketizerConfig};
use crate::ping::PingMatcher;
use crate::video::{FrameInfo, PacketizerConfig, VideoError};

/// Settings of a [`VideoSender`].
#[derive(Debug, Clone)]
pub struct VideoSenderConfig {
    /// Where to bind the video port (port 0 = ephemeral).
    pub bind: SocketAddr,
    /// `X-SS-Ping-Payload` given to the client; when set, a datagram of 20+ bytes is a ping only if
    /// its first 16 bytes match. `None` accepts any datagram of 20+ bytes (as Wolf does).
    pub ping_payload: Option<[u8; 16]>,
    /// Accept legacy 4-byte pings (Sunshine refuses them when the client set `ML_FF_SESSION_ID_V1`).
    pub accept_legacy_ping: bool,
    /// Packetizer settings.
    pub packetizer: PacketizerConfig,
    /// Test knob: probability (0..1) of silently dropping each datagram (applied by the host
    /// half's sending wrapper, `host::faults`).
    pub drop_probability: f64,
}

impl VideoSenderConfig {
    fn pings(&self) -> PingRule {
        PingRule {
            matcher: PingMatcher {
                payload: self.ping_payload,
                accept_legacy: self.accept_legacy_ping,
                any_datagram_is_ping: false,
            },
            client_ip: None,
            any_ss_ping_without_payload: true,
        }
    }

    fn setup(&self, socket: UdpSocket) -> StreamSetup {
        StreamSetup {
            socket,
            loss: LossInjection {
                probability: self.drop_probability,
                drop_data_sequences: Vec::new(),
            },
        }
    }
}

/// Settings of an [`AudioSender`].
#[derive(Debug, Clone)]
pub struct AudioSenderConfig {
    /// Local address to bind (port 0 = ephemeral; report [`AudioSender::local_addr`] in SETUP).
    pub bind: SocketAddr,
    /// Packetizer settings.
    pub packetizer: AudioPacketizerConfig,
    /// Which pings bind the client address.
    pub pings: PingMatcher,
    /// Accept pings only from this IP (the client that launched the session), if set.
    pub expected_client_ip: Option<IpAddr>,
    /// Deliberate loss, for tests.
    pub loss: LossInjection,
}

impl AudioSenderConfig {
    fn pings(&self) -> PingRule {
        PingRule {
            client_ip: self.expected_client_ip,
            ..PingRule::from(self.pings)
        }
    }
}

/// Starts a session's media driver on its two sockets (bound at `/launch`, because SETUP must
/// report their ports before the stream's settings are known).
pub(crate) fn spawn_session(
    video_socket: UdpSocket,
    video: &VideoSenderConfig,
    audio_socket: UdpSocket,
    audio: AudioSenderConfig,
    faults: Option<Arc<MediaFaults>>,
) -> Result<(VideoSender, AudioSender), VideoError> {
    let core = HostMediaCore::new(HostMediaParams {
        video_pings: video.pings(),
        audio_pings: audio.pings(),
        video: video.packetizer.clone(),
        audio: audio.packetizer,
    })?;
    let video_setup = video.setup(video_socket);
    let audio_setup = StreamSetup {
        socket: audio_socket,
        loss: audio.loss,
    };
    match media_driver::spawn(core, Some(video_setup), Some(audio_setup), faults)? {
        (Some(v), Some(a)) => Ok((MediaSender(v), MediaSender(a))),
        _ => Err(io::Error::other("media driver without its streams").into()),
    }
}

fn stopped() -> io::Error {
    io::Error::new(io::ErrorKind::BrokenPipe, "media driver stopped")
}

impl<J> std::fmt::Debug for Link<J> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Link")
            .field("local_addr", &self.local_addr)
            .field("client", &*self.client.borrow())
            .finish()
    }
}

/// One stream of a session's media driver, as the application holds it: a [`VideoSender`] or
/// an [`AudioSender`].
#[derive(Debug)]
pub struct MediaSender<J>(Link<J>);

/// The host's video sender for one session.
pub type VideoSender = MediaSender<VideoJob>;

/// The host's audio sender for one session.
pub type AudioSender = MediaSender<AudioJob>;

impl<J> MediaSender<J> {
    /// The client's media address, once a valid ping arrived.
    pub fn client_addr(&self) -> Option<SocketAddr> {
        *self.0.client.borrow()
    }

    /// Test knob: live-adjustable drop/reorder/delay of this stream's datagrams (audio is never
    /// reordered).
    pub fn set_faults(&mut self, faults: Option<Arc<MediaFaults>>) {
        let _ = self.0.cmds.send(Command::Faults(faults));
    }

    /// Closes this stream's socket (the session's other stream goes on).
    pub async fn close(self) {
        let (done, closed) = oneshot::channel();
        if self.0.cmds.send(Command::Close(done)).is_ok() {
            let _ = closed.await;
        }
    }

    async fn client_within(&self, timeout: Duration) -> Option<SocketAddr> {
        let mut rx = self.0.client.clone();
        let result = tokio::time::timeout(timeout, rx.wait_for(Option::is_some)).await;
        match result {
            Ok(Ok(addr)) => *addr,
            _ => None,
        }
    }

    /// Hands `make(reply)` to the driver and waits for its answer.
    async fn ask<R>(&self, make: impl FnOnce(oneshot::Sender<R>) -> J) -> io::Result<R> {
        let (reply, answer) = oneshot::channel();
        self.0
            .cmds
            .send(Command::Send(make(reply)))
            .map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())
    }
}

impl VideoSender {
    /// Binds the socket and starts listening for the client's ping.
    pub async fn bind(config: VideoSenderConfig) -> Result<Self, VideoError> {
        let socket = UdpSocket::bind(config.bind).await?;
        Self::with_socket(socket, config)
    }

    /// Uses an already bound socket (`config.bind` is ignored).
    pub fn with_socket(socket: UdpSocket, config: VideoSenderConfig) -> Result<Self, VideoError> {
        let core = HostMediaCore::new(HostMediaParams {
            video_pings: config.pings(),
            audio_pings: PingRule::default(),
            video: config.packetizer.clone(),
            audio: AudioPacketizerConfig {
                packet_duration_ms: 5,
                encryption: None,
            },
        })?;
        let (link, _) = media_driver::spawn(core, Some(config.setup(socket)), None, None)?;
        link.map(MediaSender)
            .ok_or_else(|| io::Error::other("no video stream").into())
    }

    /// The bound address (give its port to the client in RTSP SETUP).
    pub fn local_addr(&self) -> Result<SocketAddr, VideoError> {
        Ok(self.0.local_addr)
    }

    /// Waits up to `timeout` for the first valid ping (Wolf waits 4 s).
    pub async fn wait_for_client(&mut self, timeout: Duration) -> Result<SocketAddr, VideoError> {
        self.client_within(timeout)
            .await
            .ok_or(VideoError::NoClient)
    }

    /// Packetizes one access unit and sends its datagrams to the client; returns how many were
    /// sent. Fails with [`VideoError::NoClient`] before the first ping.
    pub async fn send_frame(&mut self, au: &[u8], info: FrameInfo) -> Result<usize, VideoError> {
        if self.client_addr().is_none() {
            return Err(VideoError::NoClient);
        }
        self.ask(|reply| VideoJob {
            access_unit: au.to_vec(),
            info,
            reply,
        })
        .await?
    }
}

impl AudioSender {
    /// Binds the socket and starts listening for pings.
    pub async fn bind(config: AudioSenderConfig) -> Result<Self, AudioError> {
        let socket = UdpSocket::bind(config.bind).await?;
        Self::with_socket(socket, config)
    }

    /// Uses an already bound socket (`config.bind` is ignored).
    pub fn with_socket(socket: UdpSocket, config: AudioSenderConfig) -> Result<Self, AudioError> {
        let video = PacketizerConfig::default();
        let core = HostMediaCore::new(HostMediaParams {
            video_pings: PingRule::default(),
            audio_pings: config.pings(),
            video,
            audio: config.packetizer,
        })
        .map_err(|e| io::Error::other(e.to_string()))?;
        let setup = StreamSetup {
            socket,
            loss: config.loss,
        };
        let (_, link) = media_driver::spawn(core, None, Some(setup), None)?;
        link.map(MediaSender)
            .ok_or_else(|| io::Error::other("no audio stream").into())
    }

    /// The bound address (the audio `server_port` to announce).
    pub fn local_addr(&self) -> SocketAddr {
        self.0.local_addr
    }

    /// Waits up to `timeout` for the first matching ping (Wolf waits 4 s).
    pub async fn wait_for_client(&self, timeout: Duration) -> Option<SocketAddr> {
        self.client_within(timeout).await
    }

    /// Packetizes and sends one Opus packet. Returns `false` (and consumes no sequence number) while
    /// no client has pinged yet, so the client's first datagram is sequence 0.
    pub async fn send_opus(&self, opus: &[u8]) -> Result<bool, AudioError> {
        if self.client_addr().is_none() {
            return Ok(false);
        }
        self.ask(|reply| AudioJob {
            opus: opus.to_vec(),
            reply,
        })
        .await?
    }
}

#[cfg(test)]
mod tests;
