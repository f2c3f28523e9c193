//! How a demo host is set up: ports, identity storage, apps, lifecycle timings and fault knobs.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::media::SourceKind;

/// Ports of a real GameStream host; a base-port offset is added to each.
pub mod default_ports {
    /// NVHTTP.
    pub const HTTP: u16 = 47989;
    /// HTTPS.
    pub const HTTPS: u16 = 47984;
    /// RTSP.
    pub const RTSP: u16 = 48010;
    /// ENet control.
    pub const CONTROL: u16 = 47999;
}

/// Where the listeners go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PortPlan {
    /// Every listener on an ephemeral port (tests).
    Ephemeral,
    /// The standard ports plus this offset, so several hosts can run side by side.
    Offset(u16),
}

impl PortPlan {
    /// `(http, https, rtsp, control)`.
    pub fn ports(self) -> (u16, u16, u16, u16) {
        match self {
            PortPlan::Ephemeral => (0, 0, 0, 0),
            PortPlan::Offset(o) => (
                default_ports::HTTP.saturating_add(o),
                default_ports::HTTPS.saturating_add(o),
                default_ports::RTSP.saturating_add(o),
                default_ports::CONTROL.saturating_add(o),
            ),
        }
    }
}

/// One app of the catalogue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppConfig {
    /// `ID`.
    pub id: u32,
    /// `AppTitle`.
    pub title: String,
    /// PNG served by `/appasset` (None = a generated one).
    pub box_art: Option<Vec<u8>>,
    /// Launching this app joins the named lobby (created on first use, stopped when everyone
    /// left): a shared desktop. None = the session's own test pattern.
    pub lobby: Option<String>,
}

/// The default catalogue: "Test Pattern" (1) and "Lobby Desktop" (2, a shared lobby).
pub fn default_apps() -> Vec<AppConfig> {
    vec![
        AppConfig {
            id: 1,
            title: "Test Pattern".into(),
            box_art: None,
            lobby: None,
        },
        AppConfig {
            id: 2,
            title: "Lobby Desktop".into(),
            box_art: None,
            lobby: Some("Lobby Desktop".into()),
        },
    ]
}

/// Fault injection for tests, changeable while the host runs. All off by default.
#[derive(Debug, Default)]
pub struct Faults {
    refuse_launches: AtomicBool,
    teardown_delay_ms: AtomicU64,
    /// Drop/reorder/delay of media datagrams, shared with every sender (live).
    media: Arc<gamestream::host::MediaFaults>,
}

impl Faults {
    /// Refuse every `/launch` and `/resume` with 503.
    pub fn set_refuse_launches(&self, on: bool) {
        self.refuse_launches.store(on, Ordering::Relaxed);
    }
    /// See [`Faults::set_refuse_launches`].
    pub fn refuse_launches(&self) -> bool {
        self.refuse_launches.load(Ordering::Relaxed)
    }
    /// A stopping session takes this long to tear down (its producer and ports stay busy).
    pub fn set_teardown_delay(&self, delay: Duration) {
        self.teardown_delay_ms
            .store(delay.as_millis() as u64, Ordering::Relaxed);
    }
    /// See [`Faults::set_teardown_delay`].
    pub fn teardown_delay(&self) -> Duration {
        Duration::from_millis(self.teardown_delay_ms.load(Ordering::Relaxed))
    }
    /// Drops this percentage of media datagrams (every stream, at once).
    pub fn set_drop_percent(&self, percent: u32) {
        self.media.set_drop_percent(percent);
    }
    /// Swaps this percentage of video datagrams with their successor.
    pub fn set_reorder_percent(&self, percent: u32) {
        self.media.set_reorder_percent(percent);
    }
    /// Replaces this percentage of media datagrams (video and audio) with random bytes of a
    /// random length (a hostile or broken host).
    pub fn set_corrupt_percent(&self, percent: u32) {
        self.media.set_corrupt_percent(percent);
    }
    /// Delays this percentage of media datagrams by `delay`.
    pub fn set_delay(&self, percent: u32, delay: Duration) {
        self.media.set_delay(percent, delay);
    }
    /// The media faults, as the host half applies them.
    pub fn media(&self) -> &Arc<gamestream::host::MediaFaults> {
        &self.media
    }
}

/// Where the Wolf API's Unix socket goes.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum WolfApiSocket {
    /// `<data_dir>/wolf.sock` when there is a data dir, no socket otherwise.
    #[default]
    InDataDir,
    /// This path (Wolf's own default is `/tmp/wolf.sock`, `$WOLF_SOCKET_PATH`).
    Path(PathBuf),
    /// No Unix socket.
    Off,
}

/// Where and how the Wolf API ([`crate::wolf_api`]) is served.
#[derive(Debug, Clone, Default)]
pub struct WolfApiConfig {
    /// The Unix socket (mode 0600).
    pub socket: WolfApiSocket,
    /// Also on TCP (tests, remote drivers). Unauthenticated: bind it to loopback.
    pub tcp: Option<SocketAddr>,
    /// Keep-alive, error statuses, close grace.
    pub options: crate::wolf_api::ApiOptions,
}

impl WolfApiConfig {
    /// No Wolf API at all (no Unix socket, no TCP): Sunshine-style "no pairing API" mode, where
    /// pairing only takes a PIN typed by hand ([`crate::HostHandle::submit_pin`], the binary's
    /// `pin <digits>` command) or a fixed PIN ([`DemoHostConfig::fixed_pin`]). A gateway facing
    /// such a host must fall back to asking its user for the PIN.
    pub fn none() -> Self {
        Self {
            socket: WolfApiSocket::Off,
            tcp: None,
            options: crate::wolf_api::ApiOptions::default(),
        }
    }

    /// True when this serves the API nowhere ([`WolfApiConfig::none`], or `InDataDir` without a
    /// data dir and no TCP).
    pub fn is_none(&self, data_dir: Option<&std::path::Path>) -> bool {
        self.socket.path_in(data_dir).is_none() && self.tcp.is_none()
    }
}

impl WolfApiSocket {
    /// The socket's path for a host whose data dir is `data_dir` (None = no Unix socket).
    fn path_in(&self, data_dir: Option<&std::path::Path>) -> Option<PathBuf> {
        match self {
            WolfApiSocket::InDataDir => data_dir.map(|d| d.join(WOLF_API_SOCKET_NAME)),
            WolfApiSocket::Path(p) => Some(p.clone()),
            WolfApiSocket::Off => None,
        }
    }
}

/// Video codecs the host offers: `ServerCodecModeSupport` and `MaxLumaPixelsHEVC` in
/// `/serverinfo`, the HEVC and AV1 markers of the RTSP DESCRIBE reply. H.264 is always offered.
///
/// A stock Moonlight client (moonlight-common-c) only streams HEVC when DESCRIBE carries
/// `sprop-parameter-sets=AAAAAU`, and AV1 when it carries `AV1/90000`; without them it silently
/// falls back to H.264 whatever it asked for. The demo host can send HEVC and AV1 (the shipped
/// clips, [`crate::media::clip`]), so it offers both by default; within each codec it offers only
/// the 8-bit 4:2:0 profile its clips are in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OfferedCodecs {
    /// HEVC Main.
    pub hevc: bool,
    /// AV1 Main 8-bit.
    pub av1: bool,
}

impl OfferedCodecs {
    /// H.264, HEVC Main and AV1 Main 8-bit: everything the demo host can send.
    pub const ALL: Self = Self {
        hevc: true,
        av1: true,
    };
    /// H.264 only (what the demo host offered before it advertised its clips).
    pub const H264_ONLY: Self = Self {
        hevc: false,
        av1: false,
    };

    /// The `ServerCodecModeSupport` bits (moonlight-common-c's `SCM_*`).
    pub fn server_codec_mode_support(self) -> u32 {
        use gamestream::nvhttp::codec_mode;
        let mut bits = codec_mode::H264;
        if self.hevc {
            bits |= codec_mode::HEVC;
        }
        if self.av1 {
            bits |= codec_mode::AV1_MAIN8;
        }
        bits
    }
}

impl Default for OfferedCodecs {
    fn default() -> Self {
        Self::ALL
    }
}

/// File name of the API socket inside the data dir.
pub const WOLF_API_SOCKET_NAME: &str = "wolf.sock";

/// Everything [`crate::DemoHost::start`] needs.
#[derive(Clone)]
pub struct DemoHostConfig {
    /// Address every listener binds.
    pub bind_ip: IpAddr,
    /// Ports.
    pub ports: PortPlan,
    /// `hostname` in `/serverinfo`.
    pub hostname: String,
    /// Host identity and paired clients live here (None = in memory, new identity each start).
    pub data_dir: Option<PathBuf>,
    /// A fixed pairing PIN (Sunshine-style, given on the command line); None = wait for a PIN
    /// through [`crate::HostHandle::submit_pin`] or [`crate::HostHandle::submit_pair_pin`].
    pub fixed_pin: Option<String>,
    /// The app catalogue.
    pub apps: Vec<AppConfig>,
    /// Live encoding or replay of pre-encoded frames (load tests).
    pub source_kind: SourceKind,
    /// Stop a session whose client was not heard for this long (Wolf: 60 s), on tokio's clock (a
    /// test pauses and advances it instead of waiting a minute).
    pub idle_timeout: Duration,
    /// How often the idle monitor looks (Wolf: 10 s).
    pub idle_check_interval: Duration,
    /// Decoded input events kept per session.
    pub input_log_capacity: usize,
    /// Fault knobs (shared: change them while the host runs).
    pub faults: Arc<Faults>,
    /// Where producers get their media (the real encoder by default; tests may substitute).
    pub media: Arc<dyn crate::producer::MediaFactory>,
    /// Send Sunshine's ping payload / connect data so many clients on one IP are told apart
    /// (on for tests on loopback; off = pure Wolf, sessions matched by client IP).
    pub sunshine_extensions: bool,
    /// Answer `rtspenc://` to clients that ask for encrypted RTSP (Sunshine); off = Wolf, which
    /// never encrypts RTSP.
    pub encrypted_rtsp: bool,
    /// Video FEC percentage.
    pub video_fec_percent: u8,
    /// The Wolf API. [`WolfApiConfig::none`] = no pairing API (Sunshine style: PIN by hand only).
    pub wolf_api: WolfApiConfig,
    /// Wolf-strict mode (off by default): behave like an unmodified Wolf where a gateway could
    /// otherwise get away with something a real Wolf punishes — video RTP timestamp 0, frames
    /// padded to 1000 bytes, High-profile H.264, Wolf's lowered bitrate, and the teardown-order
    /// trap (a `/cancel` or API stop while the client's ENet peer is still connected is logged as
    /// an error and counted in [`crate::HostHandle::disconnects_after_cancel`]). See
    /// [`crate::strict`]. Independent of [`DemoHostConfig::sunshine_extensions`].
    pub wolf_strict: bool,
    /// Video codecs offered to clients (default: everything the host can send).
    pub offered_codecs: OfferedCodecs,
    /// Fork mode (off by default): offer the Sunshine forks' microphone stream in DESCRIBE, with
    /// its encryption bit, and decode what clients send into a per-session sink
    /// ([`crate::HostHandle::mic`]). Off, the host offers no microphone, as Wolf and Sunshine.
    pub microphone: bool,
    /// Foundation Sunshine's live bitrate (off by default): `/serverinfo` carries its
    /// `SunshineVersion`, and a client's dynamic-parameter bitrate (`0x5506`) re-targets the
    /// session's encoder while it streams ([`crate::SessionInfo::bitrate_kbps`] tells the
    /// bitrate in force). Off, the message is ignored, as Wolf and upstream Sunshine ignore it.
    pub live_bitrate: bool,
}

impl DemoHostConfig {
    /// The Unix socket the Wolf API is served on, if any.
    pub fn wolf_api_socket_path(&self) -> Option<PathBuf> {
        self.wolf_api.socket.path_in(self.data_dir.as_deref())
    }
}

impl std::fmt::Debug for DemoHostConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DemoHostConfig")
            .field("bind_ip", &self.bind_ip)
            .field("ports", &self.ports)
            .field("hostname", &self.hostname)
            .field("data_dir", &self.data_dir)
            .field("fixed_pin", &self.fixed_pin.as_ref().map(|_| "<set>"))
            .field("apps", &self.apps.len())
            .field("source_kind", &self.source_kind)
            .field("idle_timeout", &self.idle_timeout)
            .field("idle_check_interval", &self.idle_check_interval)
            .field("faults", &self.faults)
            .field("wolf_api", &self.wolf_api)
            .field("wolf_strict", &self.wolf_strict)
            .field("offered_codecs", &self.offered_codecs)
            .field("microphone", &self.microphone)
            .field("live_bitrate", &self.live_bitrate)
            .finish_non_exhaustive()
    }
}

impl Default for DemoHostConfig {
    fn default() -> Self {
        Self {
            bind_ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
            ports: PortPlan::Ephemeral,
            hostname: "moongate-demo".into(),
            data_dir: None,
            fixed_pin: None,
            apps: default_apps(),
            source_kind: SourceKind::Live,
            idle_timeout: Duration::from_secs(60),
            idle_check_interval: Duration::from_secs(10),
            input_log_capacity: 1024,
            faults: Arc::new(Faults::default()),
            media: Arc::new(crate::producer::RealMedia::default()),
            sunshine_extensions: true,
            encrypted_rtsp: false,
            video_fec_percent: 20,
            wolf_api: WolfApiConfig::default(),
            wolf_strict: false,
            offered_codecs: OfferedCodecs::default(),
            microphone: false,
            live_bitrate: false,
        }
    }
}
