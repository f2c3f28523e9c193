//! One launched stream as one state object: the control stream, the video and audio receivers
//! and the input cipher, with no sockets, no tasks and no clock of its own.
//!
//! [`ClientCore`] is driven like str0m's `Rtc` or quinn-proto's `Connection`. The caller owns the
//! three UDP sockets and the timer and:
//! - hands it every datagram with the socket it came in on ([`ClientCore::handle_input`]),
//! - tells it when its deadline has passed ([`ClientCore::handle_timeout`]),
//! - sends what [`ClientCore::poll_transmit`] gives, forwards what [`ClientCore::poll_event`]
//!   gives, and sleeps until [`ClientCore::poll_timeout`].
//!
//! The decisions a stream makes live here, once: pings that open the media paths, IDR requests on
//! video loss, FEC status reports to Sunshine, frame bookkeeping for the control stream, and how
//! the stream ends. The tokio driver (`client::driver`) is a loop around it, and the in-memory
//! pair test (`gamestream/tests/session_pair.rs`) runs it against the host half on a virtual
//! clock.

use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use super::{ClientError, EndCause, SessionEvent, SessionStats};
use crate::audio::{AudioDepacketizer, AudioDepacketizerConfig, AudioEvent};
use crate::control::{ClientEvent, ClientMessage, ControlConfig, ControlCore, DisconnectReason};
use crate::input::{InputEvent, InputWrapper};
use crate::ping::{PingSender, SS_PING_PAYLOAD_LEN};
use crate::video::{DepacketizerConfig, VideoDepacketizer, VideoEvent};
use crate::AppVersion;

/// Which of the stream's three sockets a datagram came in on or must leave by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum StreamSocket {
    /// The video RTP socket (also sends the video pings).
    Video,
    /// The audio RTP socket (also sends the audio pings).
    Audio,
    /// The ENet control socket.
    Control,
}

/// A datagram the core wants sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    /// The socket to send it from.
    pub socket: StreamSocket,
    /// Where to.
    pub to: SocketAddr,
    /// The bytes.
    pub payload: Vec<u8>,
}

impl Transmit {
    /// An ENet datagram (destination and bytes) as a transmit of the control socket.
    pub(crate) fn control((to, payload): (SocketAddr, Vec<u8>)) -> Self {
        Self {
            socket: StreamSocket::Control,
            to,
            payload,
        }
    }
}

/// What a launch negotiated, as the core needs it: where the host's ports are and how each
/// stream is framed and encrypted (from `/launch` and the RTSP handshake).
#[derive(Debug, Clone)]
pub struct StreamParams {
    /// The host's address (media and control ports are on it).
    pub host_ip: IpAddr,
    /// RTSP SETUP's video port.
    pub video_port: u16,
    /// RTSP SETUP's audio port.
    pub audio_port: u16,
    /// RTSP SETUP's control port.
    pub control_port: u16,
    /// `X-SS-Ping-Payload` of the video SETUP reply; `None` = legacy `PING`.
    pub video_ping_payload: Option<[u8; SS_PING_PAYLOAD_LEN]>,
    /// `X-SS-Ping-Payload` of the audio SETUP reply; `None` = legacy `PING`.
    pub audio_ping_payload: Option<[u8; SS_PING_PAYLOAD_LEN]>,
    /// How often both media ports are pinged (500 ms in moonlight-common-c).
    pub ping_interval: Duration,
    /// Video framing, codec and key.
    pub video: DepacketizerConfig,
    /// Audio framing and key.
    pub audio: AudioDepacketizerConfig,
    /// Control stream key, connect data and timings.
    pub control: ControlConfig,
    /// The launch's `rikeyid` (input encryption of hosts before 7.1.431).
    pub ri_key_id: u32,
    /// The host changes its bitrate while streaming ([`crate::nvhttp::ServerInfo::has_live_bitrate`]).
    pub live_bitrate: bool,
    /// Fixes ENet's random choices (tests); `None` in production.
    pub seed: Option<u32>,
}

/// One running stream, sans I/O. See the module doc.
#[derive(Debug)]
pub struct ClientCore {
    version: AppVersion,
    host_ip: IpAddr,
    control: ControlCore,
    video: VideoDepacketizer,
    audio: AudioDepacketizer,
    video_to: SocketAddr,
    audio_to: SocketAddr,
    video_pings: PingSender,
    audio_pings: PingSender,
    ping_interval: Duration,
    /// `None` once the stream is closing: media is neither pinged for nor accepted.
    next_ping: Option<Instant>,
    input: InputWrapper,
    fec_status: bool,
    live_bitrate: bool,
    idr_requests: u64,
    transmits: VecDeque<Transmit>,
    events: VecDeque<SessionEvent>,
    ended: bool,
}

impl ClientCore {
    /// Starts the stream at `now`: the ENet connect and the first media pings are queued.
    pub fn new(params: StreamParams, now: Instant) -> Result<Self, ClientError> {
        let version = params.control.app_version;
        let host_ip = params.host_ip;
        let control = ControlCore::new(
            SocketAddr::new(host_ip, params.control_port),
            &params.control,
            now,
            params.seed,
        )?;
        Ok(Self {
            version,
            host_ip,
            control,
            video: VideoDepacketizer::new(params.video)?,
            audio: AudioDepacketizer::new(params.audio),
            video_to: SocketAddr::new(host_ip, params.video_port),
            audio_to: SocketAddr::new(host_ip, params.audio_port),
            video_pings: PingSender::new(params.video_ping_payload),
            audio_pings: PingSender::new(params.audio_ping_payload),
            ping_interval: params.ping_interval.max(Duration::from_millis(1)),
            next_ping: Some(now),
            input: InputWrapper::for_host(version, &params.control.key, params.ri_key_id),
            fec_status: version.is_sunshine(),
            live_bitrate: params.live_bitrate,
            idr_requests: 0,
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            ended: false,
        })
    }

    /// The host's appversion.
    pub fn app_version(&self) -> AppVersion {
        self.version
    }

    /// True once the control stream is up (the ENet connect was answered).
    pub fn is_connected(&self) -> bool {
        self.control.is_connected()
    }

    /// True once the control stream came up at some point.
    pub fn was_connected(&self) -> bool {
        self.control.was_connected()
    }

    /// True while media is accepted (until [`ClientCore::close`] or the end).
    pub fn media_open(&self) -> bool {
        self.next_ping.is_some()
    }

    /// True once the stream is over and [`SessionEvent::Ended`] has been queued. Datagrams may
    /// still wait in [`ClientCore::poll_transmit`] (the disconnect).
    pub fn is_ended(&self) -> bool {
        self.ended
    }

    /// One datagram received on `socket` from `from`.
    pub fn handle_input(
        &mut self,
        now: Instant,
        socket: StreamSocket,
        from: SocketAddr,
        datagram: &[u8],
    ) {
        match socket {
            StreamSocket::Video if self.media_open() => {
                for event in self.video.push(datagram, now) {
                    self.on_video(event);
                }
            }
            // Audio is taken only from the host (the video path has its own checks: RTP framing,
            // encryption, sequence windows).
            StreamSocket::Audio if self.media_open() && from.ip() == self.host_ip => {
                for event in self.audio.push(datagram) {
                    self.on_audio(event);
                }
            }
            StreamSocket::Control => {
                self.control.handle_input(now, from, datagram);
                self.drain_control();
            }
            _ => {}
        }
    }

    /// Time has passed: media pings, and the control stream's timers.
    pub fn handle_timeout(&mut self, now: Instant) {
        if let Some(at) = self.next_ping.filter(|at| now >= *at) {
            for (socket, to, pings) in [
                (StreamSocket::Video, self.video_to, &mut self.video_pings),
                (StreamSocket::Audio, self.audio_to, &mut self.audio_pings),
            ] {
                let payload = pings.next_ping();
                self.transmits.push_back(Transmit {
                    socket,
                    to,
                    payload,
                });
            }
            // Fixed cadence like a tokio interval in delay mode: a late wake-up does not burst.
            self.next_ping = Some(now.max(at) + self.ping_interval);
        }
        self.control.handle_timeout(now);
        self.drain_control();
    }

    /// The next datagram to send.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        let control = &mut self.control;
        self.transmits
            .pop_front()
            .or_else(|| control.poll_transmit().map(Transmit::control))
    }

    /// The next event for the consumer; [`SessionEvent::Ended`] is the last one.
    pub fn poll_event(&mut self) -> Option<SessionEvent> {
        self.events.pop_front()
    }

    /// When [`ClientCore::handle_timeout`] must be called next; `None` once ended.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.ended {
            return None;
        }
        match (self.control.poll_timeout(), self.next_ping) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Encodes, wraps and sends one input event.
    pub fn send_input(&mut self, event: &InputEvent) -> Result<(), ClientError> {
        if !event.supported_by(self.version) {
            return Err(ClientError::UnsupportedInput(self.version));
        }
        let packet = event.encode(self.version);
        let bytes = self.input.wrap(&packet);
        self.control
            .send_input(bytes, event.route(self.version))
            .map_err(ClientError::from)
    }

    /// Whether [`ClientCore::set_bitrate`] can reach the host's encoder.
    pub fn has_live_bitrate(&self) -> bool {
        self.live_bitrate
    }

    /// Asks the host's encoder for `kbps` from now on, without restarting the stream; `Ok(false)`
    /// from a host that has no such control (then only a new stream changes the bitrate).
    pub fn set_bitrate(&mut self, kbps: u32) -> Result<bool, ClientError> {
        if !self.live_bitrate {
            return Ok(false);
        }
        self.control.send(ClientMessage::Bitrate { kbps })?;
        Ok(true)
    }

    /// Asks the host for a keyframe (counted in [`SessionStats::idr_requests`]).
    pub fn request_idr(&mut self) -> Result<(), ClientError> {
        self.idr_requests += 1;
        self.control.request_idr().map_err(ClientError::from)
    }

    /// Counters so far.
    pub fn stats(&self) -> SessionStats {
        SessionStats {
            video: self.video.stats(),
            audio: self.audio.stats(),
            idr_requests: self.idr_requests,
            host_rtt: self.control.rtt(),
        }
    }

    /// Our end of the stream: media stops at once; the control stream disconnects and waits for
    /// the host's acknowledgement (at most the linger time), then [`EndCause::Stopped`].
    pub fn close(&mut self, now: Instant) {
        self.next_ping = None;
        self.control.close(now);
        self.drain_control();
    }

    /// The owner went away: one disconnect datagram, nothing awaited.
    pub fn abort(&mut self) {
        self.next_ping = None;
        self.control.abort();
        self.drain_control();
    }

    fn on_video(&mut self, event: VideoEvent) {
        match event {
            VideoEvent::Frame(frame) => {
                self.control
                    .note_frames(frame.frame_index, frame.frame_index);
                self.events.push_back(SessionEvent::Video(frame));
            }
            VideoEvent::FrameLost { first, last } => {
                self.idr_after_loss();
                self.events
                    .push_back(SessionEvent::VideoLost { first, last });
            }
            VideoEvent::RequestIdr => self.idr_after_loss(),
            VideoEvent::FecStatus(status) => {
                if self.fec_status {
                    // Best effort, like the IDR request: only while the control stream is up.
                    let _ = self.control.send(ClientMessage::FecStatus(status));
                }
            }
        }
    }

    fn idr_after_loss(&mut self) {
        if let Err(e) = self.request_idr() {
            tracing::debug!("IDR request not sent: {e}");
        }
    }

    fn on_audio(&mut self, event: AudioEvent) {
        self.events.push_back(match event {
            AudioEvent::Packet {
                sequence,
                timestamp,
                opus,
                recovered,
            } => SessionEvent::Audio {
                sequence,
                timestamp,
                opus,
                recovered,
            },
            AudioEvent::Lost { sequence } => SessionEvent::AudioLost { sequence },
        });
    }

    fn drain_control(&mut self) {
        while let Some(event) = self.control.poll_event() {
            let session_event = match event {
                ClientEvent::Connected => continue,
                ClientEvent::Rumble {
                    controller,
                    low_freq,
                    high_freq,
                } => SessionEvent::Rumble {
                    controller,
                    low_freq,
                    high_freq,
                },
                ClientEvent::Hdr { enabled, .. } => SessionEvent::Hdr { enabled },
                ClientEvent::Message(m) => SessionEvent::Host(m),
                ClientEvent::Termination { reason, .. } => {
                    SessionEvent::Ended(EndCause::HostTerminated {
                        reason,
                        code: reason.error_code(),
                    })
                }
                ClientEvent::Disconnected { reason } => {
                    self.next_ping = None;
                    if self.ended {
                        continue;
                    }
                    match reason {
                        DisconnectReason::Closed => SessionEvent::Ended(EndCause::Stopped),
                        other => SessionEvent::Ended(EndCause::Disconnected(other)),
                    }
                }
            };
            if self.ended {
                continue;
            }
            if matches!(session_event, SessionEvent::Ended(_)) {
                self.ended = true;
                self.next_ping = None;
            }
            self.events.push_back(session_event);
        }
    }
}
