//! The host half assembled: NVHTTP/HTTPS, RTSP, the ENet control stream and, per session, one
//! media driver (its video and audio sockets around a sans-IO [`HostMediaCore`]), with the session
//! lifecycle of a modern Wolf.
//!
//! The host application (our embedded demo host, or a test) supplies the app catalogue and, for
//! each stream that reaches RTSP PLAY, receives a [`StreamHandle`]: the stream's negotiated settings,
//! its video and audio senders, and the events of its client (input, IDR requests, the end). What a
//! stream shows is the application's business; everything protocol-shaped is here.
//!
//! Lifecycle (gamestream-protocol-2-media.md §7): one stream per paired client certificate; a new
//! `/launch` or `/resume` from the same client supersedes its old stream; ENet disconnect or a client
//! termination **stops** the stream (no pause); `/cancel` stops it after telling the client.
//! Each session gets its own media ports (like Wolf) and, when [`HostConfig::sunshine_extensions`]
//! is on, its own ping payload and ENet connect data, so that many clients behind one IP (every test
//! on loopback) are told apart exactly.

mod faults;
mod handlers;
mod media_core;
mod media_driver;
mod senders;
mod session;
mod session_core;

pub(crate) use faults::MediaOut;
pub use faults::{LossInjection, MediaFaults};
pub use media_core::{HostMediaCore, HostMediaParams, MediaBurst, PingRule};
pub use senders::{AudioSender, AudioSenderConfig, MediaSender, VideoSender, VideoSenderConfig};
pub use session_core::{
    Announced, HostSessionCore, HostSessionError, HostSessionEvent, HostSessionParams,
};

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use crate::control::{ControlError, ControlServer, HostMessage};
use crate::identity::Identity;
use crate::input::InputEvent;
use crate::nvhttp::{
    App, InMemoryPairedClients, NvHttpError, NvHttpServer, NvHttpServerConfig, PairedClients,
};
use crate::rtsp::describe::DescribeParams;
use crate::rtsp::sdp::StreamConfig;
use crate::rtsp::RtspServer;
use crate::AppVersion;

use session::Session;

/// Everything that decides how the host behaves on the wire.
#[derive(Clone)]
pub struct HostConfig {
    /// Address every listener binds (and what `sessionUrl0` names).
    pub bind_ip: IpAddr,
    /// NVHTTP port (47989 on a real host; 0 = ephemeral).
    pub http_port: u16,
    /// HTTPS port (47984; 0 = ephemeral).
    pub https_port: u16,
    /// RTSP port (48010; 0 = ephemeral).
    pub rtsp_port: u16,
    /// ENet control port (47999; 0 = ephemeral).
    pub control_port: u16,
    /// The host certificate and key.
    pub identity: Identity,
    /// `hostname` in `/serverinfo`.
    pub hostname: String,
    /// `uniqueid` in `/serverinfo`.
    pub unique_id: String,
    /// `appversion`; Wolf and Sunshine report `7.1.431.-1`.
    pub app_version: AppVersion,
    /// `ServerCodecModeSupport`.
    pub codec_mode_support: u32,
    /// What DESCRIBE advertises (codecs, feature flags, encryption, surround layouts).
    pub describe: DescribeParams,
    /// Send `X-SS-Ping-Payload` / `X-SS-Connect-Data` (Sunshine); off = Wolf, matching by client IP.
    pub sunshine_extensions: bool,
    /// Answer `rtspenc://` to clients that send `corever >= 1` (Sunshine); Wolf never does.
    pub encrypted_rtsp: bool,
    /// Video FEC percentage (Sunshine's default is 20).
    pub video_fec_percent: u8,
    /// Fault injection: probability of dropping each media datagram (tests only; 0 in production).
    pub media_drop_probability: f64,
    /// Paired client certificates (persisted by the application if it wants).
    pub paired_clients: Arc<dyn PairedClients>,
    /// How long pairing phase 1 waits for the PIN.
    pub pin_timeout: Duration,
    /// Asked before every `/launch` and `/resume` (before an older stream is superseded): lets the
    /// application refuse, e.g. while the client's previous stream is still tearing down.
    pub launch_gate: Option<Arc<dyn LaunchGate>>,
    /// Fault injection shared by every media sender, adjustable live (tests only; None = off).
    pub media_faults: Option<Arc<MediaFaults>>,
    /// Told synchronously of every session end, before the client is told (see
    /// [`SessionEndObserver`]); None = nobody listens.
    pub end_observer: Option<Arc<dyn SessionEndObserver>>,
    /// A control peer that disconnects or times out **pauses** its session instead of ending it:
    /// the media stops, but the session (and the host's "busy" state) stays until `/cancel`, a
    /// new launch from the same client or [`Host::stop_session`]. This is what Wolf does (its
    /// ENet DISCONNECT fires a pause event) and, for the running app, Sunshine too; a client that
    /// vanishes without `/cancel` leaves such a host busy. False: a disconnect ends the session.
    pub disconnect_pauses: bool,
    /// Offer the Sunshine forks' microphone stream (`streamid=mic`, see [`crate::mic`]): DESCRIBE
    /// advertises it with a per-session port and SETUP answers it. Off (the default) is what
    /// Wolf and upstream Sunshine do: no offer, and SETUP `streamid=mic` is 404.
    pub microphone: bool,
    /// Change the encoder's bitrate while streaming, as Foundation Sunshine does: `/serverinfo`
    /// carries its `SunshineVersion` element (what clients tell it apart by) and a valid
    /// dynamic-parameter bitrate (`0x5506`, 1..=800 000 kbit/s: the stream's whole bitrate, as
    /// the client's `configuredBitrateKbps`) reaches the stream's producer as
    /// [`StreamEvent::Bitrate`]. Off (the default) is every other host: the message is ignored
    /// as an unknown type.
    pub live_bitrate: bool,
}

/// What a [`SessionEndObserver`] learns about a session that is ending.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionEnding {
    /// Session id.
    pub session_id: u64,
    /// Stable id of the client certificate.
    pub client_id: u64,
    /// Why it ends.
    pub reason: EndReason,
    /// The client's ENet control peer was still connected at the moment of the end. For an end
    /// the host decides (`/cancel`, a stop) this means the client's ENet disconnect necessarily
    /// comes after the session is gone — the order that makes a real Wolf crash.
    pub control_connected: bool,
}

/// Learns of session ends at the instant they happen, with the control stream's state at that
/// instant. [`HostEvent::SessionEnded`] arrives later, on a channel, when the peer may already have
/// gone: an application that must know whether the client was still connected when the session
/// ended (our demo host's Wolf-strict mode) needs this synchronous view.
pub trait SessionEndObserver: Send + Sync + 'static {
    /// Called once per ended session, from the task that ended it; must not block.
    fn session_ending(&self, ending: &SessionEnding);
}

/// The application's say on a launch, asked by the host before anything changes.
pub trait LaunchGate: Send + Sync + 'static {
    /// `Err` refuses the `/launch` or `/resume` with that status and message; nothing is changed.
    fn check(&self, client_id: u64, app_id: u32, resumed: bool) -> Result<(), NvHttpHostError>;
}

pub use crate::nvhttp::HostError as NvHttpHostError;

/// The stable id the host gives a client certificate (DER), as in [`HostEvent::Launched`].
pub fn client_id_of(cert_der: &[u8]) -> u64 {
    session::client_id_of(cert_der)
}

impl std::fmt::Debug for HostConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HostConfig")
            .field("bind_ip", &self.bind_ip)
            .field(
                "ports",
                &(
                    self.http_port,
                    self.https_port,
                    self.rtsp_port,
                    self.control_port,
                ),
            )
            .field("hostname", &self.hostname)
            .field("app_version", &self.app_version)
            .field("sunshine_extensions", &self.sunshine_extensions)
            .field("encrypted_rtsp", &self.encrypted_rtsp)
            .field("microphone", &self.microphone)
            .finish_non_exhaustive()
    }
}

impl HostConfig {
    /// A Wolf-like host on loopback with ephemeral ports and the given identity, plus the
    /// Sunshine extensions that let many loopback clients be told apart.
    pub fn loopback(identity: Identity) -> Self {
        Self {
            bind_ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
            http_port: 0,
            https_port: 0,
            rtsp_port: 0,
            control_port: 0,
            identity,
            hostname: "moongate".into(),
            unique_id: uuid::Uuid::new_v4().to_string(),
            app_version: AppVersion::SUNSHINE,
            codec_mode_support: crate::nvhttp::codec_mode::H264,
            describe: DescribeParams::wolf(false, false),
            sunshine_extensions: true,
            encrypted_rtsp: true,
            video_fec_percent: 20,
            media_drop_probability: 0.0,
            paired_clients: Arc::new(InMemoryPairedClients::default()),
            pin_timeout: Duration::from_secs(120),
            launch_gate: None,
            media_faults: None,
            end_observer: None,
            disconnect_pauses: false,
            microphone: false,
            live_bitrate: false,
        }
    }
}

/// The apps a host offers.
pub trait AppCatalog: Send + Sync + 'static {
    /// Apps listed by `/applist`.
    fn apps(&self) -> Vec<App>;
    /// PNG box art for `/appasset`.
    fn box_art(&self, app_id: u32) -> Option<Vec<u8>>;
}

/// A fixed list of apps with optional box art.
#[derive(Debug, Clone, Default)]
pub struct StaticApps {
    /// `(app, png)` pairs.
    pub apps: Vec<(App, Option<Vec<u8>>)>,
}

impl StaticApps {
    /// One SDR app, the catalog of a demo or test host.
    pub fn single(title: &str, id: u32, box_art: Option<Vec<u8>>) -> Self {
        let app = App {
            title: title.into(),
            id,
            hdr_supported: false,
        };
        StaticApps {
            apps: vec![(app, box_art)],
        }
    }
}

impl AppCatalog for StaticApps {
    fn apps(&self) -> Vec<App> {
        self.apps.iter().map(|(a, _)| a.clone()).collect()
    }
    fn box_art(&self, app_id: u32) -> Option<Vec<u8>> {
        self.apps
            .iter()
            .find(|(a, _)| a.id == app_id)
            .and_then(|(_, png)| png.clone())
    }
}

/// Why a stream ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndReason {
    /// The client's ENet peer disconnected or timed out.
    ClientDisconnected,
    /// The client sent a termination message.
    ClientTerminated,
    /// `/cancel` from the client.
    Cancelled,
    /// A new `/launch` or `/resume` from the same client certificate.
    Superseded,
    /// The application stopped it ([`Host::stop_session`]: idle timeout, lobby stop, admin).
    Stopped,
    /// The host is shutting down.
    HostShutdown,
}

/// What a host tells its application.
#[derive(Debug)]
pub enum HostEvent {
    /// `/launch` or `/resume` created a session; media starts after RTSP PLAY.
    Launched {
        /// Session id (unique per launch).
        session_id: u64,
        /// Stable id of the client certificate.
        client_id: u64,
        /// Requested app.
        app_id: u32,
        /// Came from `/resume`.
        resumed: bool,
        /// The NVHTTP `uniqueid` the client launched with (Wolf's `client_unique_id`), if sent.
        unique_id: Option<String>,
    },
    /// RTSP PLAY: the stream is negotiated; produce media through the handle.
    StreamStarted(Box<StreamHandle>),
    /// A session ended (whether or not it reached PLAY).
    SessionEnded {
        /// Session id.
        session_id: u64,
        /// Why.
        reason: EndReason,
    },
}

/// What happens on one stream, for its producer.
#[derive(Debug, Clone, PartialEq)]
pub enum StreamEvent {
    /// The client's control stream connected.
    ControlConnected,
    /// A decoded input event.
    Input(InputEvent),
    /// An input packet that could not be decoded (kept for diagnostics, never fatal).
    BadInput(String),
    /// Send a keyframe next (IDR request, or reference invalidation that we answer with an IDR).
    KeyframeRequested,
    /// Encode at this bitrate from now on, in kbit/s ([`HostConfig::live_bitrate`]): what the
    /// client asked for less the FEC share ([`HostConfig::video_fec_percent`]), as Foundation
    /// Sunshine's encoders apply it.
    Bitrate(u32),
    /// The stream is over; drop the handle (this frees the media sockets).
    Ended(EndReason),
}

/// One negotiated stream, handed to the application at RTSP PLAY.
#[derive(Debug)]
pub struct StreamHandle {
    /// Session id.
    pub session_id: u64,
    /// Stable id of the client certificate.
    pub client_id: u64,
    /// The launched app.
    pub app_id: u32,
    /// Everything the client announced (resolution, fps, bitrate, codec, audio layout...).
    pub config: StreamConfig,
    /// `surroundAudioInfo` of the launch.
    pub surround_audio_info: u32,
    /// Video sender (already waiting for the client's ping).
    pub video: VideoSender,
    /// Audio sender (already waiting for the client's ping).
    pub audio: AudioSender,
    /// The client's microphone, when the host offered it ([`HostConfig::microphone`]) and the
    /// client set it up; ends with the session. Take it to consume it.
    pub mic: Option<crate::mic::MicReceiver>,
    /// Events of this stream; ends after [`StreamEvent::Ended`].
    pub events: mpsc::UnboundedReceiver<StreamEvent>,
}

/// A summary of one live session, for APIs and tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionSummary {
    /// Session id.
    pub session_id: u64,
    /// Client certificate id.
    pub client_id: u64,
    /// Client address.
    pub client_ip: IpAddr,
    /// App id.
    pub app_id: u32,
    /// RTSP PLAY seen.
    pub streaming: bool,
    /// The control stream is connected.
    pub control_connected: bool,
    /// The NVHTTP `uniqueid` of the launch, if the client sent one.
    pub unique_id: Option<String>,
}

/// Errors of the host assembly.
#[derive(Debug, thiserror::Error)]
pub enum HostError {
    /// A listener could not bind.
    #[error("cannot bind {what}: {source}")]
    Bind {
        /// Which listener.
        what: &'static str,
        /// The OS error.
        source: std::io::Error,
    },
    /// The NVHTTP server failed to start.
    #[error(transparent)]
    NvHttp(#[from] NvHttpError),
    /// The control server failed to start.
    #[error(transparent)]
    Control(#[from] ControlError),
}

/// The ports a running host listens on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HostPorts {
    /// NVHTTP.
    pub http: u16,
    /// HTTPS.
    pub https: u16,
    /// RTSP.
    pub rtsp: u16,
    /// ENet control.
    pub control: u16,
}

/// State shared by the listeners' handlers.
pub(crate) struct Shared {
    pub(crate) config: HostConfig,
    pub(crate) catalog: Arc<dyn AppCatalog>,
    pub(crate) control: ControlServer,
    pub(crate) rtsp_port: Mutex<u16>,
    pub(crate) sessions: Mutex<HashMap<u64, Session>>,
    pub(crate) next_id: std::sync::atomic::AtomicU64,
    pub(crate) events: mpsc::UnboundedSender<HostEvent>,
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A running host. Dropping it stops the listeners; [`Host::close`] also ends every stream cleanly.
pub struct Host {
    shared: Arc<Shared>,
    nvhttp: NvHttpServer,
    rtsp: Mutex<Option<RtspServer>>,
    control_task: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for Host {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Host")
            .field("ports", &self.ports())
            .finish_non_exhaustive()
    }
}

impl Host {
    /// Binds every listener and starts serving. Events for the application arrive on the receiver.
    pub async fn start(
        config: HostConfig,
        catalog: Arc<dyn AppCatalog>,
    ) -> Result<(Host, mpsc::UnboundedReceiver<HostEvent>), HostError> {
        let ip = config.bind_ip;
        let (control, control_events) =
            ControlServer::bind(SocketAddr::new(ip, config.control_port)).await?;
        let (events, events_rx) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            config: config.clone(),
            catalog,
            control,
            rtsp_port: Mutex::new(0),
            sessions: Mutex::new(HashMap::new()),
            next_id: std::sync::atomic::AtomicU64::new(1),
            events,
        });
        let rtsp = RtspServer::bind(
            SocketAddr::new(ip, config.rtsp_port),
            Arc::new(handlers::Rtsp(Arc::clone(&shared))),
        )
        .await
        .map_err(|source| HostError::Bind {
            what: "RTSP",
            source,
        })?;
        *lock(&shared.rtsp_port) = rtsp.local_addr().port();
        let nvhttp = NvHttpServer::start(NvHttpServerConfig {
            http_addr: SocketAddr::new(ip, config.http_port),
            https_addr: SocketAddr::new(ip, config.https_port),
            identity: config.identity.clone(),
            handler: Arc::new(handlers::Http(Arc::clone(&shared))),
            paired_clients: Arc::clone(&config.paired_clients),
            pairing_signer: None,
            pin_timeout: config.pin_timeout,
        })
        .await?;
        let control_task = tokio::spawn(handlers::pump_control_events(
            Arc::downgrade(&shared),
            control_events,
        ));
        Ok((
            Host {
                shared,
                nvhttp,
                rtsp: Mutex::new(Some(rtsp)),
                control_task,
            },
            events_rx,
        ))
    }

    /// The bound ports.
    pub fn ports(&self) -> HostPorts {
        HostPorts {
            http: self.nvhttp.http_port(),
            https: self.nvhttp.https_port(),
            rtsp: *lock(&self.shared.rtsp_port),
            control: self.shared.control.local_addr().port(),
        }
    }

    /// The NVHTTP server: pending pairings, `submit_pin`, `set_fixed_pin`, paired clients.
    pub fn nvhttp(&self) -> &NvHttpServer {
        &self.nvhttp
    }

    /// Live sessions.
    pub fn sessions(&self) -> Vec<SessionSummary> {
        let mut list: Vec<SessionSummary> = lock(&self.shared.sessions)
            .values()
            .map(|s| SessionSummary {
                session_id: s.id,
                client_id: s.client_id,
                client_ip: s.client_ip,
                app_id: s.app_id,
                streaming: s.streaming,
                control_connected: self.shared.control.is_connected(s.id),
                unique_id: s.unique_id.clone(),
            })
            .collect();
        list.sort_by_key(|s| s.session_id);
        list
    }

    /// When the session's client was last heard on the control stream (for idle timeouts).
    pub fn last_activity(&self, session_id: u64) -> Option<Instant> {
        self.shared.control.last_activity(session_id)
    }

    /// Sends a control message (rumble, HDR, ...) to a session's client.
    pub fn send_control(&self, session_id: u64, msg: HostMessage) -> Result<(), ControlError> {
        self.shared.control.send(session_id, msg)
    }

    /// Ends a session: the client is told (termination), the producer gets [`StreamEvent::Ended`].
    /// Returns false if no such session exists.
    pub fn stop_session(&self, session_id: u64, reason: EndReason) -> bool {
        session::end_session(&self.shared, session_id, reason)
    }

    /// Ends every stream (clients are told), then stops all listeners and tasks.
    pub async fn close(&self) {
        let ids: Vec<u64> = lock(&self.shared.sessions).keys().copied().collect();
        for id in ids {
            session::end_session(&self.shared, id, EndReason::HostShutdown);
        }
        self.shared.control.close().await;
        self.control_task.abort();
        let rtsp = lock(&self.rtsp).take();
        if let Some(rtsp) = rtsp {
            rtsp.close().await;
        }
        self.nvhttp.close().await;
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        self.control_task.abort();
    }
}
