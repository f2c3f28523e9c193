//! The host half of one launched stream as a plain state machine: the client's ENet peer with the
//! session's codec, plus the session's media half ([`crate::host::HostMediaCore`]: the media
//! destinations learned from pings and the video and audio packetizers). No sockets, no tasks, no
//! clock.
//!
//! It mirrors [`crate::client::ClientCore`]: [`HostSessionCore::handle_input`] and
//! [`HostSessionCore::handle_timeout`] in, [`HostSessionCore::poll_transmit`],
//! [`HostSessionCore::poll_event`] and [`HostSessionCore::poll_timeout`] out; frames and audio
//! are pushed with [`HostSessionCore::send_video`] and [`HostSessionCore::send_audio`]. The two
//! cores meet in the in-memory pair test, where a whole session runs on a virtual clock with
//! seeded loss. The tokio host (`host::Host`) runs the same media half in one driver per session,
//! and one ENet server for all sessions, as Wolf and Sunshine do.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::Instant;

use rusty_enet::{EventNoRef, Host, PeerID};

use super::media_core::{HostMediaCore, HostMediaParams};
use crate::audio::AudioPacketizerConfig;
use crate::client::{StreamSocket, Transmit};
use crate::control::enet_mem::{queue_host, EnetClock, QueueSocket};
use crate::control::server::classify_client_packet;
use crate::control::{
    ControlCodec, ControlError, HostEvent, HostMessage, IvStyle, Route, Side, Termination,
};
use crate::ping::PingMatcher;
use crate::video::{FrameInfo, PacketizerConfig, VideoError};
use crate::AppVersion;

/// ENet is serviced at least this often while a client is connected (its own timers).
const SERVICE_TICK: std::time::Duration = std::time::Duration::from_millis(10);

/// What the host half of a session is set up with at launch and SETUP.
#[derive(Debug, Clone)]
pub struct HostSessionParams {
    /// The host's appversion (decides the control generation).
    pub version: AppVersion,
    /// The launch's `rikey`.
    pub key: [u8; 16],
    /// The control stream's IV style.
    pub iv_style: IvStyle,
    /// The connect data handed out in SETUP; `None` accepts any (Wolf matches by IP).
    pub connect_data: Option<u32>,
    /// Which datagrams on the video port are pings for this session.
    pub video_pings: PingMatcher,
    /// Which datagrams on the audio port are pings for this session.
    pub audio_pings: PingMatcher,
    /// Video framing, FEC and encryption.
    pub video: PacketizerConfig,
    /// Audio framing and encryption.
    pub audio: AudioPacketizerConfig,
    /// Fixes ENet's random choices (tests).
    pub seed: Option<u32>,
}

/// What a session's media and control are set up with once the client has ANNOUNCEd: the rules
/// the production host applies at ANNOUNCE (`handlers::prepare`) and the in-memory pair test
/// builds its [`HostSessionCore`] from, so that the two cannot drift apart.
#[derive(Debug, Clone)]
pub struct Announced {
    /// The SS_PING payload the session expects (`None`: Wolf-style, any ping).
    pub ping_payload: Option<[u8; crate::ping::SS_PING_PAYLOAD_LEN]>,
    /// Which datagrams are pings (the same rule on the video and the audio port).
    pub pings: PingMatcher,
    /// Video framing, FEC and encryption.
    pub video: PacketizerConfig,
    /// Audio framing and encryption.
    pub audio: AudioPacketizerConfig,
    /// The control stream's IV style.
    pub iv_style: IvStyle,
}

impl Announced {
    /// From the launch (`rikey`, `rikeyid`, the ping payload handed out in its SETUP answer) and
    /// the client's ANNOUNCE; `fec_percent` is the host's own choice.
    pub fn new(
        key: [u8; 16],
        rikeyid: i32,
        ping_payload_header: Option<&str>,
        config: &crate::rtsp::sdp::StreamConfig,
        fec_percent: u8,
    ) -> Self {
        let ping_payload = ping_payload_header.and_then(crate::ping::ss_ping_payload_from_header);
        // A client that announced session-id pings (ML_FF_SESSION_ID_V1) must send SS_PINGs.
        let accept_legacy = ping_payload.is_none() || config.ml_feature_flags & 0x02 == 0;
        Announced {
            ping_payload,
            pings: PingMatcher {
                payload: ping_payload,
                accept_legacy,
                any_datagram_is_ping: ping_payload.is_none(),
            },
            video: PacketizerConfig {
                packet_size: config.packet_size as usize,
                fec_percent,
                min_required_fec_packets: config.fec_min_required_packets.min(255) as u8,
                key: config.video_encryption().then_some(key),
                initial_sequence: 0,
            },
            audio: AudioPacketizerConfig {
                packet_duration_ms: config.audio_packet_duration_ms.max(1),
                encryption: config
                    .audio_encryption()
                    .then(|| crate::audio::AudioEncryption::new(key, rikeyid as u32)),
            },
            iv_style: if config.control_v2() {
                IvStyle::V2
            } else {
                IvStyle::Nvidia
            },
        }
    }
}

impl HostSessionParams {
    /// The parameters of a session whose client ANNOUNCEd what [`Announced`] holds.
    pub fn announced(
        version: AppVersion,
        key: [u8; 16],
        connect_data: Option<u32>,
        announced: Announced,
        seed: Option<u32>,
    ) -> Self {
        HostSessionParams {
            version,
            key,
            iv_style: announced.iv_style,
            connect_data,
            video_pings: announced.pings,
            audio_pings: announced.pings,
            video: announced.video,
            audio: announced.audio,
            seed,
        }
    }
}

/// Why a session core could not be made.
#[derive(Debug, thiserror::Error)]
pub enum HostSessionError {
    /// The ENet host could not be created.
    #[error("control: {0}")]
    Control(#[from] ControlError),
    /// The video packetizer settings are invalid.
    #[error("video: {0}")]
    Video(#[from] VideoError),
}

/// What happened on the host side of a session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostSessionEvent {
    /// A media path opened: the first valid ping on `socket` came from `client`.
    MediaClient {
        /// Video or audio.
        socket: StreamSocket,
        /// Where that stream's datagrams now go.
        client: SocketAddr,
    },
    /// Something on the control stream (connect, IDR request, input, disconnect...).
    Control(HostEvent),
}

/// One session's host half, sans I/O. See the module doc.
#[derive(Debug)]
pub struct HostSessionCore {
    enet: Host<QueueSocket>,
    clock: EnetClock,
    codec: ControlCodec,
    connect_data: Option<u32>,
    peer: Option<PeerID>,
    last_now: Instant,
    media: HostMediaCore,
    events: VecDeque<HostSessionEvent>,
}

impl HostSessionCore {
    /// A session waiting for its client's pings and ENet connect.
    pub fn new(params: HostSessionParams, now: Instant) -> Result<Self, HostSessionError> {
        let (enet, clock) = queue_host(1, now, params.seed)?;
        Ok(Self {
            enet,
            clock,
            codec: ControlCodec::new(&params.key, params.iv_style, Side::Host, params.version),
            connect_data: params.connect_data,
            peer: None,
            last_now: now,
            media: HostMediaCore::new(HostMediaParams {
                video_pings: params.video_pings.into(),
                audio_pings: params.audio_pings.into(),
                video: params.video,
                audio: params.audio,
            })?,
            events: VecDeque::new(),
        })
    }

    /// True while the client's control peer is connected.
    pub fn is_connected(&self) -> bool {
        self.peer.is_some()
    }

    /// One datagram that arrived on the session's `socket`.
    pub fn handle_input(
        &mut self,
        now: Instant,
        socket: StreamSocket,
        from: SocketAddr,
        datagram: &[u8],
    ) {
        if socket == StreamSocket::Control {
            self.enet.socket_mut().deliver(from, datagram);
            self.service(now);
        } else if let Some(client) = self.media.handle_input(socket, from, datagram) {
            self.events
                .push_back(HostSessionEvent::MediaClient { socket, client });
        }
    }

    /// Time has passed: ENet's retransmissions, acknowledgements and timeouts.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.service(now);
    }

    /// The next datagram to send.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        let enet = &mut self.enet;
        self.media
            .poll_transmit()
            .or_else(|| enet.socket_mut().take_sent().map(Transmit::control))
    }

    /// The next event.
    pub fn poll_event(&mut self) -> Option<HostSessionEvent> {
        self.events.pop_front()
    }

    /// When [`HostSessionCore::handle_timeout`] must run next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        Some(self.last_now + SERVICE_TICK)
    }

    /// Packetizes one access unit for the video client; returns the datagrams queued (0 before
    /// the client's first ping).
    pub fn send_video(&mut self, access_unit: &[u8], info: FrameInfo) -> Result<usize, VideoError> {
        self.media.send_video(access_unit, info)
    }

    /// Packetizes one Opus packet (and, at the end of a block, its FEC) for the audio client;
    /// returns the datagrams queued.
    pub fn send_audio(&mut self, opus: &[u8]) -> usize {
        self.media.send_audio(opus)
    }

    /// Sends a host message (rumble, HDR, termination...) to the connected client.
    pub fn send_control(&mut self, msg: &HostMessage) -> Result<(), ControlError> {
        let peer = self.peer.ok_or(ControlError::Closed)?;
        let bytes = self.codec.encode_host(msg)?;
        let route = Route::GENERIC_RELIABLE;
        self.enet
            .peer_mut(peer)
            .send(
                route.channel,
                &crate::control::enet_io::packet(bytes, route),
            )
            .map_err(|e| ControlError::Enet(e.to_string()))?;
        self.enet.flush();
        Ok(())
    }

    /// The host ends the stream: the termination message, then a graceful ENet disconnect.
    pub fn terminate(&mut self, now: Instant) -> Result<(), ControlError> {
        self.clock.set(now);
        self.send_control(&HostMessage::Termination(Termination::server_closed()))?;
        if let Some(peer) = self.peer {
            self.enet.peer_mut(peer).disconnect_later(0);
            self.enet.flush();
        }
        Ok(())
    }

    fn service(&mut self, now: Instant) {
        self.last_now = self.last_now.max(now);
        self.clock.set(now);
        while let Ok(Some(ev)) = self.enet.service() {
            match ev.no_ref() {
                EventNoRef::Connect { peer, data } => {
                    let wanted = self.connect_data.is_none_or(|d| d == data);
                    match self.enet.peer(peer).address() {
                        Some(addr) if wanted && self.peer.is_none() => {
                            self.peer = Some(peer);
                            self.event(HostEvent::Connected { peer: addr });
                        }
                        _ => self.enet.peer_mut(peer).disconnect(0),
                    }
                }
                EventNoRef::Disconnect { peer, .. } if Some(peer) == self.peer => {
                    self.peer = None;
                    self.event(HostEvent::Disconnected);
                }
                EventNoRef::Receive { peer, packet, .. } if Some(peer) == self.peer => {
                    match classify_client_packet(&self.codec, packet.data()) {
                        Ok(ev) => self.event(ev),
                        Err(e) => tracing::debug!("host session: dropping control packet: {e}"),
                    }
                }
                _ => {}
            }
        }
        self.enet.flush();
    }

    fn event(&mut self, event: HostEvent) {
        self.events.push_back(HostSessionEvent::Control(event));
    }
}
