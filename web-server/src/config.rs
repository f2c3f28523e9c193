//! Configuration: a TOML file (optional) overlaid by environment variables (env wins).
//!
//! | TOML key | env | default | meaning |
//! |---|---|---|---|
//! | `bind` | `MOONGATE_BIND` | `127.0.0.1:8080` | listen address |
//! | `data_dir` | `MOONGATE_DATA_DIR` | `./moongate-data` | SQLite database, generated credential |
//! | `allowed_origins` | `MOONGATE_ALLOWED_ORIGINS` (comma-separated) | `[]` = same origin only | WebSocket `Origin`s accepted; `"*"` = any |
//! | `streamer_path` | `MOONGATE_STREAMER` | `streamer` next to this binary | the streamer executable |
//! | `web_root` | `MOONGATE_WEB_ROOT` | `web-client/dist` (relative to the working directory) | the built web client, served at `/` |
//! | `[wol] target` | `MOONGATE_WOL_TARGET` | `255.255.255.255:9` | where Wake-on-LAN packets go |
//! | `[timeouts] host_request_secs` | `MOONGATE_HOST_REQUEST_TIMEOUT_SECS` | 10 | each NVHTTP request |
//! | `[timeouts] pairing_secs` | `MOONGATE_PAIRING_TIMEOUT_SECS` | 120 | a whole PIN pairing |
//! | `[timeouts] supersede_secs` | `MOONGATE_SUPERSEDE_TIMEOUT_SECS` | 10 | waiting for a superseded stream to end |
//! | `[timeouts] cert_idle_secs` | `MOONGATE_CERT_IDLE_SECS` | 3600 | client certificates expire after this idle time |
//! | `[timeouts] cert_sweep_secs` | `MOONGATE_CERT_SWEEP_SECS` | 300 | how often the certificate cache is swept |
//! | `[timeouts] host_cleanup_secs` | `MOONGATE_HOST_CLEANUP_SECS` | 32 | after a streamer died mid-stream, wait this long (the host's ENet timeout, at most 30 s) before `/cancel`ing its host session |
//! | `[[hosts]]` | – | none | hosts added to the store at start if absent (`name`, `address`, `http_port`, `https_port`, `mac`) |
//! | – | `MOONGATE_CREDENTIALS` | generated | the bearer credential (kept out of files on purpose) |
//! | – | `MOONGATE_ADMIN_CREDENTIALS` | generated (`<data_dir>/admin-credentials`) | the admin credential: `/api/admin/*`, `/metrics`, the dashboard |
//! | `[[webrtc.ice_servers]]` `urls`, `username`, `credential` | `MOONGATE_WEBRTC_ICE_SERVERS` (JSON array of `{urls, username, credential}`, or comma-separated URLs) | none | STUN/TURN servers handed to the browser (`WebRtcConfig`) |
//! | `[webrtc] udp_port_min`, `udp_port_max` | `MOONGATE_WEBRTC_UDP_PORT_MIN`, `_MAX` | 0, 0 = any | inclusive UDP port range of the streamers' peers (one port per stream) |
//! | `[webrtc] bind_address` | `MOONGATE_WEBRTC_BIND_ADDRESS` | `0.0.0.0` | address the peers bind |
//! | `[webrtc] nat_1to1_ips` | `MOONGATE_WEBRTC_NAT_1TO1_IPS` (comma-separated) | `[]` | public IPs advertised in addition |
//! | `[webrtc] nat_candidate_type` | `MOONGATE_WEBRTC_NAT_CANDIDATE_TYPE` | `host` | `host` or `srflx` |
//! | `[webrtc] network_types` | `MOONGATE_WEBRTC_NETWORK_TYPES` (comma-separated) | `[]` = both | `udp4`, `udp6` |
//! | `[demo_host] strict` | `MOONGATE_DEMO_HOST_STRICT` (`true`/`false`) | `true` | the embedded demo host behaves like an unmodified Wolf (RTP timestamp 0, padded frames, a `/cancel` before the ENet disconnect logged as an error): see `demo-host/README.md` |
//! | `[webrtc] disconnect_timeout_secs` | `MOONGATE_WEBRTC_DISCONNECT_TIMEOUT_SECS` | 10 | a peer disconnected this long ends the stream |
//! | `store_key` | `MOONGATE_STORE_KEY` | generated (`<data_dir>/store.key`, 0600) | the file holding the key that encrypts client private keys in the store (64 hex digits); a named file must exist |
//! | `[identities] idle_days` | `MOONGATE_IDENTITY_IDLE_DAYS` | 30 | a client identity unused this long is unpaired on its host and removed from the store |
//!
//! The config file is `MOONGATE_CONFIG` or the `--config` path given to the binary. Unknown keys
//! are an error, so a typo does not silently fall back to a default.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

/// Configuration errors.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// Path.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// The file is not valid TOML for this schema.
    #[error("invalid config file {path}: {message}")]
    Parse {
        /// Path.
        path: PathBuf,
        /// Parser message.
        message: String,
    },
    /// A value (from the file or an environment variable) is invalid.
    #[error("invalid value for {key}: {message}")]
    Invalid {
        /// Key or variable name.
        key: String,
        /// What is wrong.
        message: String,
    },
}

/// A host added to the store at start (if no host with the same address and port exists).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostSeed {
    /// Display name (default: the address).
    pub name: Option<String>,
    /// Host name or IP literal.
    pub address: String,
    /// NVHTTP port (default 47989).
    pub http_port: Option<u16>,
    /// HTTPS port (default: learnt from `/serverinfo`).
    pub https_port: Option<u16>,
    /// MAC address for Wake-on-LAN.
    pub mac: Option<String>,
    /// Wolf's HTTP API (a Unix socket path or `http://host:port`): lets the gateway pair browser
    /// identities automatically and the streamer join lobbies.
    #[serde(default)]
    pub wolf_api: Option<String>,
}

/// Timeouts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// Each NVHTTP request.
    pub host_request: Duration,
    /// A whole PIN pairing (the user has to type the PIN on the host).
    pub pairing: Duration,
    /// Waiting for a superseded stream to end before the new one launches.
    pub supersede: Duration,
    /// A cached client certificate expires after this idle time.
    pub cert_idle: Duration,
    /// Sweep period of the certificate cache.
    pub cert_sweep: Duration,
    /// After a streamer died mid-stream: how long before its host session is `/cancel`led, so
    /// that the host's ENet peer has timed out first ([`crate::host_cleanup`]).
    pub host_cleanup: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            host_request: Duration::from_secs(10),
            pairing: Duration::from_secs(120),
            supersede: Duration::from_secs(10),
            cert_idle: Duration::from_secs(3600),
            cert_sweep: Duration::from_secs(300),
            // ENet's longest peer timeout (30 s) and a margin.
            host_cleanup: Duration::from_secs(32),
        }
    }
}

/// Several gateways sharing one Redis (`[redis]`, `MOONGATE_REDIS_*`): the session registry's
/// cluster view, the host store and the certificate cache's index live there. Without it the
/// gateway is a single node on SQLite. The URL may hold a password: redacted in `Debug`.
#[derive(Clone, PartialEq, Eq)]
pub struct RedisConfig {
    /// `redis://[user:password@]host:port/db` (`MOONGATE_REDIS_URL`).
    pub url: String,
    /// Prefix of every key and channel, so several deployments can share one Redis.
    pub prefix: String,
    /// This gateway's id in the cluster (`MOONGATE_NODE_ID`); unique per running instance.
    pub node_id: String,
    /// A node that stops renewing its lease this long is dead: its streams' keys are free again.
    pub lease: Duration,
}

impl fmt::Debug for RedisConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisConfig")
            .field("url", &redact_url(&self.url))
            .field("prefix", &self.prefix)
            .field("node_id", &self.node_id)
            .field("lease", &self.lease)
            .finish()
    }
}

/// `redis://user:secret@host` → `redis://<redacted>@host` (a URL's credentials never reach a log).
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            format!("{}<redacted>{}", &url[..scheme + 3], &url[at..])
        }
        _ => url.to_string(),
    }
}

/// Default [`RedisConfig::lease`].
pub const DEFAULT_LEASE_SECS: u64 = 6;

fn default_node_id() -> String {
    let host = std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "moongate".into());
    format!("{host}-{}", std::process::id())
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileRedis {
    url: Option<String>,
    prefix: Option<String>,
    node_id: Option<String>,
    lease_secs: Option<u64>,
}

/// A STUN/TURN server for the browser. The credential is redacted in `Debug`.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IceServer {
    /// `stun:`, `turn:` or `turns:` URLs.
    pub urls: Vec<String>,
    /// TURN user name.
    #[serde(default)]
    pub username: String,
    /// TURN credential.
    #[serde(default)]
    pub credential: String,
}

impl fmt::Debug for IceServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IceServer")
            .field("urls", &self.urls)
            .field("username", &self.username)
            .field("credential", &"<redacted>")
            .finish()
    }
}

/// How NAT 1:1 addresses are advertised.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NatCandidateType {
    /// As host candidates.
    #[default]
    Host,
    /// As server-reflexive candidates.
    Srflx,
}

/// An ICE network type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NetworkType {
    /// UDP over IPv4.
    Udp4,
    /// UDP over IPv6.
    Udp6,
}

/// WebRTC mode: what the browser is told (ICE servers) and how the streamers' peers bind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebRtc {
    /// STUN/TURN servers for the browser.
    pub ice_servers: Vec<IceServer>,
    /// Lowest UDP port (inclusive); 0 with `udp_port_max` 0 = any.
    pub udp_port_min: u16,
    /// Highest UDP port (inclusive).
    pub udp_port_max: u16,
    /// Address the peers bind.
    pub bind_address: std::net::IpAddr,
    /// Public IPs advertised in addition (NAT 1:1).
    pub nat_1to1_ips: Vec<std::net::IpAddr>,
    /// How they are advertised.
    pub nat_candidate_type: NatCandidateType,
    /// Address families used (empty = both).
    pub network_types: Vec<NetworkType>,
    /// A peer disconnected this long ends the stream.
    pub disconnect_timeout: Duration,
}

impl Default for WebRtc {
    fn default() -> Self {
        WebRtc {
            ice_servers: Vec::new(),
            udp_port_min: 0,
            udp_port_max: 0,
            bind_address: std::net::IpAddr::from([0, 0, 0, 0]),
            nat_1to1_ips: Vec::new(),
            nat_candidate_type: NatCandidateType::Host,
            network_types: Vec::new(),
            disconnect_timeout: Duration::from_secs(10),
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileWebRtc {
    #[serde(default)]
    ice_servers: Option<Vec<IceServer>>,
    udp_port_min: Option<u16>,
    udp_port_max: Option<u16>,
    bind_address: Option<String>,
    nat_1to1_ips: Option<Vec<String>>,
    nat_candidate_type: Option<NatCandidateType>,
    network_types: Option<Vec<NetworkType>>,
    disconnect_timeout_secs: Option<u64>,
}

fn parse_ip(key: &str, value: &str) -> Result<std::net::IpAddr, ConfigError> {
    value.trim().parse().map_err(|_| ConfigError::Invalid {
        key: key.into(),
        message: format!("{value:?} is not an IP address"),
    })
}

fn parse_port(key: &str, value: &str) -> Result<u16, ConfigError> {
    value.trim().parse().map_err(|_| ConfigError::Invalid {
        key: key.into(),
        message: format!("{value:?} is not a port number"),
    })
}

fn comma_list(value: &str) -> impl Iterator<Item = &str> {
    value.split(',').map(str::trim).filter(|s| !s.is_empty())
}

impl WebRtc {
    fn overlay(&mut self, f: FileWebRtc) -> Result<(), ConfigError> {
        if let Some(v) = f.ice_servers {
            self.ice_servers = v;
        }
        if let Some(v) = f.udp_port_min {
            self.udp_port_min = v;
        }
        if let Some(v) = f.udp_port_max {
            self.udp_port_max = v;
        }
        if let Some(v) = f.bind_address {
            self.bind_address = parse_ip("webrtc.bind_address", &v)?;
        }
        if let Some(v) = f.nat_1to1_ips {
            self.nat_1to1_ips = v
                .iter()
                .map(|ip| parse_ip("webrtc.nat_1to1_ips", ip))
                .collect::<Result<_, _>>()?;
        }
        if let Some(v) = f.nat_candidate_type {
            self.nat_candidate_type = v;
        }
        if let Some(v) = f.network_types {
            self.network_types = v;
        }
        if let Some(v) = f.disconnect_timeout_secs {
            self.disconnect_timeout = secs("webrtc.disconnect_timeout_secs", v)?;
        }
        Ok(())
    }

    fn overlay_env(&mut self, env: &impl Fn(&str) -> Option<String>) -> Result<(), ConfigError> {
        if let Some(v) = env("MOONGATE_WEBRTC_ICE_SERVERS") {
            let v = v.trim();
            self.ice_servers = if v.starts_with('[') {
                serde_json::from_str(v).map_err(|e| ConfigError::Invalid {
                    key: "MOONGATE_WEBRTC_ICE_SERVERS".into(),
                    message: format!("not a JSON array of {{urls, username, credential}}: {e}"),
                })?
            } else {
                comma_list(v)
                    .map(|u| IceServer {
                        urls: vec![u.to_string()],
                        username: String::new(),
                        credential: String::new(),
                    })
                    .collect()
            };
        }
        if let Some(v) = env("MOONGATE_WEBRTC_UDP_PORT_MIN") {
            self.udp_port_min = parse_port("MOONGATE_WEBRTC_UDP_PORT_MIN", &v)?;
        }
        if let Some(v) = env("MOONGATE_WEBRTC_UDP_PORT_MAX") {
            self.udp_port_max = parse_port("MOONGATE_WEBRTC_UDP_PORT_MAX", &v)?;
        }
        if let Some(v) = env("MOONGATE_WEBRTC_BIND_ADDRESS") {
            self.bind_address = parse_ip("MOONGATE_WEBRTC_BIND_ADDRESS", &v)?;
        }
        if let Some(v) = env("MOONGATE_WEBRTC_NAT_1TO1_IPS") {
            self.nat_1to1_ips = comma_list(&v)
                .map(|ip| parse_ip("MOONGATE_WEBRTC_NAT_1TO1_IPS", ip))
                .collect::<Result<_, _>>()?;
        }
        if let Some(v) = env("MOONGATE_WEBRTC_NAT_CANDIDATE_TYPE") {
            self.nat_candidate_type = match v.trim() {
                "host" => NatCandidateType::Host,
                "srflx" => NatCandidateType::Srflx,
                other => {
                    return Err(ConfigError::Invalid {
                        key: "MOONGATE_WEBRTC_NAT_CANDIDATE_TYPE".into(),
                        message: format!("{other:?} is not host or srflx"),
                    })
                }
            };
        }
        if let Some(v) = env("MOONGATE_WEBRTC_NETWORK_TYPES") {
            self.network_types = comma_list(&v)
                .map(|t| match t {
                    "udp4" => Ok(NetworkType::Udp4),
                    "udp6" => Ok(NetworkType::Udp6),
                    other => Err(ConfigError::Invalid {
                        key: "MOONGATE_WEBRTC_NETWORK_TYPES".into(),
                        message: format!("{other:?} is not udp4 or udp6"),
                    }),
                })
                .collect::<Result<_, _>>()?;
        }
        if let Some(v) = env("MOONGATE_WEBRTC_DISCONNECT_TIMEOUT_SECS") {
            let n: u64 = v.trim().parse().map_err(|_| ConfigError::Invalid {
                key: "MOONGATE_WEBRTC_DISCONNECT_TIMEOUT_SECS".into(),
                message: format!("{v:?} is not a number of seconds"),
            })?;
            self.disconnect_timeout = secs("MOONGATE_WEBRTC_DISCONNECT_TIMEOUT_SECS", n)?;
        }
        Ok(())
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let (lo, hi) = (self.udp_port_min, self.udp_port_max);
        if (lo == 0) != (hi == 0) || lo > hi {
            return Err(ConfigError::Invalid {
                key: "webrtc.udp_port_min/udp_port_max".into(),
                message: format!("{lo}-{hi} is not a range (both 0 = any port, else min <= max)"),
            });
        }
        for s in &self.ice_servers {
            let ok = !s.urls.is_empty()
                && s.urls.iter().all(|u| {
                    u.starts_with("stun:") || u.starts_with("turn:") || u.starts_with("turns:")
                });
            if !ok {
                return Err(ConfigError::Invalid {
                    key: "webrtc.ice_servers".into(),
                    message: format!("{:?}: URLs must start with stun:, turn: or turns:", s.urls),
                });
            }
        }
        Ok(())
    }
}

/// The effective configuration.
#[derive(Clone, PartialEq, Eq)]
pub struct Config {
    /// Listen address.
    pub bind: SocketAddr,
    /// Where the database and a generated credential live.
    pub data_dir: PathBuf,
    /// WebSocket origins accepted (`*` = any; empty = same origin as the `Host` header).
    pub allowed_origins: Vec<String>,
    /// The streamer executable.
    pub streamer_path: PathBuf,
    /// The built web client, served at `/`.
    pub web_root: PathBuf,
    /// Hosts to preload.
    pub hosts: Vec<HostSeed>,
    /// Wake-on-LAN destination.
    pub wol_target: SocketAddr,
    /// Timeouts.
    pub timeouts: Timeouts,
    /// `MOONGATE_CREDENTIALS`, if set (redacted in `Debug`).
    pub credentials: Option<String>,
    /// `MOONGATE_ADMIN_CREDENTIALS`, if set (redacted in `Debug`).
    pub admin_credentials: Option<String>,
    /// WebRTC mode.
    pub webrtc: WebRtc,
    /// The embedded demo host runs in Wolf-strict mode (`demo_host::DemoHostConfig::wolf_strict`):
    /// on by default, so what a newcomer sees and what the tests stream from behave like the real
    /// host users have.
    pub demo_host_strict: bool,
    /// The store key file (`MOONGATE_STORE_KEY`); `None` = `<data_dir>/store.key`.
    pub store_key: Option<PathBuf>,
    /// A client identity unused this long is unpaired and removed from the store.
    pub identity_idle: Duration,
    /// Shared state of several gateways; `None` = one node on SQLite.
    pub redis: Option<RedisConfig>,
    /// Streams, opens, message sizes and first-message time an operator allows.
    pub limits: crate::limits::Limits,
}

/// Default [`Config::identity_idle`]: 30 days.
pub const DEFAULT_IDENTITY_IDLE_DAYS: u64 = 30;

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("bind", &self.bind)
            .field("data_dir", &self.data_dir)
            .field("allowed_origins", &self.allowed_origins)
            .field("streamer_path", &self.streamer_path)
            .field("web_root", &self.web_root)
            .field("hosts", &self.hosts)
            .field("wol_target", &self.wol_target)
            .field("timeouts", &self.timeouts)
            .field("webrtc", &self.webrtc)
            .field("demo_host_strict", &self.demo_host_strict)
            .field("store_key", &self.store_key)
            .field("identity_idle", &self.identity_idle)
            .field("redis", &self.redis)
            .field("limits", &self.limits)
            .field(
                "credentials",
                &self.credentials.as_ref().map(|_| "<redacted>"),
            )
            .field(
                "admin_credentials",
                &self.admin_credentials.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    bind: Option<String>,
    data_dir: Option<PathBuf>,
    allowed_origins: Option<Vec<String>>,
    streamer_path: Option<PathBuf>,
    web_root: Option<PathBuf>,
    #[serde(default)]
    hosts: Vec<HostSeed>,
    #[serde(default)]
    wol: FileWol,
    #[serde(default)]
    timeouts: FileTimeouts,
    #[serde(default)]
    webrtc: FileWebRtc,
    #[serde(default)]
    demo_host: FileDemoHost,
    store_key: Option<PathBuf>,
    #[serde(default)]
    identities: FileIdentities,
    #[serde(default)]
    redis: FileRedis,
    #[serde(default)]
    limits: FileLimits,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileLimits {
    max_streams: Option<usize>,
    max_streams_per_client: Option<usize>,
    opens_per_minute_per_ip: Option<u32>,
    max_message_bytes: Option<usize>,
    first_message_secs: Option<u64>,
    upgrade_timeout_secs: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileIdentities {
    idle_days: Option<u64>,
}

fn idle_days(key: &str, days: u64) -> Result<Duration, ConfigError> {
    if days == 0 || days > 36_500 {
        return Err(ConfigError::Invalid {
            key: key.into(),
            message: format!("{days} is not 1-36500 days"),
        });
    }
    Ok(Duration::from_secs(days * 86_400))
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileDemoHost {
    strict: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileWol {
    target: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileTimeouts {
    host_request_secs: Option<u64>,
    pairing_secs: Option<u64>,
    supersede_secs: Option<u64>,
    cert_idle_secs: Option<u64>,
    cert_sweep_secs: Option<u64>,
    host_cleanup_secs: Option<u64>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            bind: SocketAddr::from(([127, 0, 0, 1], 8080)),
            data_dir: PathBuf::from("moongate-data"),
            allowed_origins: Vec::new(),
            streamer_path: default_streamer_path(),
            web_root: PathBuf::from("web-client/dist"),
            hosts: Vec::new(),
            wol_target: SocketAddr::from(([255, 255, 255, 255], 9)),
            timeouts: Timeouts::default(),
            credentials: None,
            admin_credentials: None,
            webrtc: WebRtc::default(),
            demo_host_strict: true,
            store_key: None,
            identity_idle: Duration::from_secs(DEFAULT_IDENTITY_IDLE_DAYS * 86_400),
            redis: None,
            limits: crate::limits::Limits::default(),
        }
    }
}

fn default_streamer_path() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(|d| d.join("streamer")))
        .unwrap_or_else(|| PathBuf::from("streamer"))
}

fn parse_addr(key: &str, value: &str) -> Result<SocketAddr, ConfigError> {
    value.trim().parse().map_err(|_| ConfigError::Invalid {
        key: key.into(),
        message: format!("{value:?} is not an address like 127.0.0.1:8080"),
    })
}

fn secs(key: &str, value: u64) -> Result<Duration, ConfigError> {
    if value == 0 {
        return Err(ConfigError::Invalid {
            key: key.into(),
            message: "must be at least 1 second".into(),
        });
    }
    Ok(Duration::from_secs(value))
}

impl Config {
    /// Loads `file` (if given) and overlays the process environment.
    pub fn load(file: Option<&Path>) -> Result<Config, ConfigError> {
        Self::load_with_env(file, |k| std::env::var(k).ok())
    }

    /// Loads `file` (if given) and overlays the variables `env` returns (tests pass a map).
    pub fn load_with_env(
        file: Option<&Path>,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        let parsed = match file {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                    path: path.to_path_buf(),
                    source,
                })?;
                Self::parse_toml(&text).map_err(|message| ConfigError::Parse {
                    path: path.to_path_buf(),
                    message,
                })?
            }
            None => FileConfig::default(),
        };
        let mut c = Config::default();
        if let Some(b) = parsed.bind {
            c.bind = parse_addr("bind", &b)?;
        }
        if let Some(d) = parsed.data_dir {
            c.data_dir = d;
        }
        if let Some(o) = parsed.allowed_origins {
            c.allowed_origins = o;
        }
        if let Some(s) = parsed.streamer_path {
            c.streamer_path = s;
        }
        if let Some(w) = parsed.web_root {
            c.web_root = w;
        }
        c.hosts = parsed.hosts;
        if let Some(t) = parsed.wol.target {
            c.wol_target = parse_addr("wol.target", &t)?;
        }
        c.webrtc.overlay(parsed.webrtc)?;
        if let Some(strict) = parsed.demo_host.strict {
            c.demo_host_strict = strict;
        }
        if let Some(k) = parsed.store_key {
            c.store_key = Some(k);
        }
        if let Some(d) = parsed.identities.idle_days {
            c.identity_idle = idle_days("identities.idle_days", d)?;
        }
        let t = parsed.timeouts;
        let slots: [(&str, Option<u64>, &mut Duration); 6] = [
            (
                "timeouts.host_request_secs",
                t.host_request_secs,
                &mut c.timeouts.host_request,
            ),
            (
                "timeouts.pairing_secs",
                t.pairing_secs,
                &mut c.timeouts.pairing,
            ),
            (
                "timeouts.supersede_secs",
                t.supersede_secs,
                &mut c.timeouts.supersede,
            ),
            (
                "timeouts.cert_idle_secs",
                t.cert_idle_secs,
                &mut c.timeouts.cert_idle,
            ),
            (
                "timeouts.cert_sweep_secs",
                t.cert_sweep_secs,
                &mut c.timeouts.cert_sweep,
            ),
            (
                "timeouts.host_cleanup_secs",
                t.host_cleanup_secs,
                &mut c.timeouts.host_cleanup,
            ),
        ];
        for (key, value, slot) in slots {
            if let Some(v) = value {
                *slot = secs(key, v)?;
            }
        }

        // Environment overlay.
        if let Some(v) = env("MOONGATE_BIND") {
            c.bind = parse_addr("MOONGATE_BIND", &v)?;
        }
        if let Some(v) = env("MOONGATE_DATA_DIR") {
            c.data_dir = PathBuf::from(v);
        }
        if let Some(v) = env("MOONGATE_DEMO_HOST_STRICT") {
            c.demo_host_strict = match v.trim() {
                "1" | "true" | "on" | "yes" => true,
                "0" | "false" | "off" | "no" => false,
                other => {
                    return Err(ConfigError::Invalid {
                        key: "MOONGATE_DEMO_HOST_STRICT".into(),
                        message: format!("{other:?} is not true or false"),
                    })
                }
            };
        }
        if let Some(v) = env("MOONGATE_ALLOWED_ORIGINS") {
            c.allowed_origins = v
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(String::from)
                .collect();
        }
        if let Some(v) = env("MOONGATE_STREAMER") {
            c.streamer_path = PathBuf::from(v);
        }
        if let Some(v) = env("MOONGATE_WEB_ROOT") {
            c.web_root = PathBuf::from(v);
        }
        if let Some(v) = env("MOONGATE_WOL_TARGET") {
            c.wol_target = parse_addr("MOONGATE_WOL_TARGET", &v)?;
        }
        let env_slots: [(&str, &mut Duration); 6] = [
            (
                "MOONGATE_HOST_REQUEST_TIMEOUT_SECS",
                &mut c.timeouts.host_request,
            ),
            ("MOONGATE_PAIRING_TIMEOUT_SECS", &mut c.timeouts.pairing),
            ("MOONGATE_SUPERSEDE_TIMEOUT_SECS", &mut c.timeouts.supersede),
            ("MOONGATE_CERT_IDLE_SECS", &mut c.timeouts.cert_idle),
            ("MOONGATE_CERT_SWEEP_SECS", &mut c.timeouts.cert_sweep),
            ("MOONGATE_HOST_CLEANUP_SECS", &mut c.timeouts.host_cleanup),
        ];
        for (key, slot) in env_slots {
            if let Some(v) = env(key) {
                let n: u64 = v.trim().parse().map_err(|_| ConfigError::Invalid {
                    key: key.into(),
                    message: format!("{v:?} is not a number of seconds"),
                })?;
                *slot = secs(key, n)?;
            }
        }
        if let Some(v) = env("MOONGATE_CREDENTIALS") {
            if !v.is_empty() {
                c.credentials = Some(v);
            }
        }
        if let Some(v) = env("MOONGATE_ADMIN_CREDENTIALS") {
            if !v.is_empty() {
                c.admin_credentials = Some(v);
            }
        }
        if let Some(v) = env("MOONGATE_STORE_KEY") {
            if !v.is_empty() {
                c.store_key = Some(PathBuf::from(v));
            }
        }
        if let Some(v) = env("MOONGATE_IDENTITY_IDLE_DAYS") {
            let n: u64 = v.trim().parse().map_err(|_| ConfigError::Invalid {
                key: "MOONGATE_IDENTITY_IDLE_DAYS".into(),
                message: format!("{v:?} is not a number of days"),
            })?;
            c.identity_idle = idle_days("MOONGATE_IDENTITY_IDLE_DAYS", n)?;
        }
        c.webrtc.overlay_env(&env)?;
        c.redis = redis_config(parsed.redis, &env, c.timeouts.supersede)?;
        c.limits = limits_config(parsed.limits, &env)?;
        c.webrtc.validate()?;
        Ok(c)
    }

    fn parse_toml(text: &str) -> Result<FileConfig, String> {
        toml::from_str(text).map_err(|e| e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn defaults_without_file_or_env() {
        let c = Config::load_with_env(None, env_of(&[])).unwrap();
        assert_eq!(c.bind, "127.0.0.1:8080".parse().unwrap());
        assert_eq!(c.timeouts.cert_idle, Duration::from_secs(3600));
        assert_eq!(c.timeouts.cert_sweep, Duration::from_secs(300));
        assert!(c.credentials.is_none());
    }

    #[test]
    fn example_file_parses_and_env_wins() {
        let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("moongate.example.toml");
        let c = Config::load_with_env(Some(&example), env_of(&[])).unwrap();
        assert_eq!(c.bind, "127.0.0.1:8080".parse().unwrap());
        assert_eq!(c.hosts.len(), 1);
        assert_eq!(c.allowed_origins, vec!["http://localhost:8080".to_string()]);

        let c = Config::load_with_env(
            Some(&example),
            env_of(&[
                ("MOONGATE_BIND", "0.0.0.0:9000"),
                (
                    "MOONGATE_ALLOWED_ORIGINS",
                    "https://a.example, https://b.example",
                ),
                ("MOONGATE_PAIRING_TIMEOUT_SECS", "7"),
                ("MOONGATE_CREDENTIALS", "s3cret"),
                ("MOONGATE_ADMIN_CREDENTIALS", "adm1n"),
            ]),
        )
        .unwrap();
        assert_eq!(c.bind, "0.0.0.0:9000".parse().unwrap());
        assert_eq!(c.allowed_origins.len(), 2);
        assert_eq!(c.timeouts.pairing, Duration::from_secs(7));
        assert!(!format!("{c:?}").contains("s3cret"), "credential in Debug");
        assert_eq!(c.admin_credentials.as_deref(), Some("adm1n"));
        assert!(
            !format!("{c:?}").contains("adm1n"),
            "admin credential in Debug"
        );
    }

    #[test]
    fn webrtc_section_and_env() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.toml");
        std::fs::write(
            &p,
            r#"
[webrtc]
udp_port_min = 40000
udp_port_max = 40009
bind_address = "127.0.0.1"
nat_1to1_ips = ["203.0.113.7"]
nat_candidate_type = "srflx"
network_types = ["udp4"]
disconnect_timeout_secs = 5

[[webrtc.ice_servers]]
urls = ["turn:turn.example:3478"]
username = "u"
credential = "turn-secret"
"#,
        )
        .unwrap();
        let c = Config::load_with_env(Some(&p), env_of(&[])).unwrap();
        let w = &c.webrtc;
        assert_eq!((w.udp_port_min, w.udp_port_max), (40000, 40009));
        assert_eq!(
            w.bind_address,
            "127.0.0.1".parse::<std::net::IpAddr>().unwrap()
        );
        assert_eq!(w.nat_1to1_ips.len(), 1);
        assert_eq!(w.nat_candidate_type, NatCandidateType::Srflx);
        assert_eq!(w.network_types, vec![NetworkType::Udp4]);
        assert_eq!(w.disconnect_timeout, Duration::from_secs(5));
        assert_eq!(w.ice_servers[0].username, "u");
        assert!(
            !format!("{c:?}").contains("turn-secret"),
            "TURN credential in Debug"
        );

        let c = Config::load_with_env(
            Some(&p),
            env_of(&[
                ("MOONGATE_WEBRTC_UDP_PORT_MIN", "50000"),
                ("MOONGATE_WEBRTC_UDP_PORT_MAX", "50010"),
                ("MOONGATE_WEBRTC_NAT_1TO1_IPS", "198.51.100.1, 198.51.100.2"),
                ("MOONGATE_WEBRTC_NAT_CANDIDATE_TYPE", "host"),
                ("MOONGATE_WEBRTC_NETWORK_TYPES", "udp4,udp6"),
                ("MOONGATE_WEBRTC_BIND_ADDRESS", "0.0.0.0"),
                ("MOONGATE_WEBRTC_DISCONNECT_TIMEOUT_SECS", "3"),
                (
                    "MOONGATE_WEBRTC_ICE_SERVERS",
                    r#"[{"urls":["stun:s.example:3478"]},{"urls":["turn:t.example"],"username":"a","credential":"b"}]"#,
                ),
            ]),
        )
        .unwrap();
        let w = &c.webrtc;
        assert_eq!((w.udp_port_min, w.udp_port_max), (50000, 50010));
        assert_eq!(w.nat_1to1_ips.len(), 2);
        assert_eq!(w.nat_candidate_type, NatCandidateType::Host);
        assert_eq!(w.network_types.len(), 2);
        assert_eq!(w.disconnect_timeout, Duration::from_secs(3));
        assert_eq!(w.ice_servers.len(), 2);
        assert_eq!(w.ice_servers[1].credential, "b");

        let c = Config::load_with_env(
            None,
            env_of(&[("MOONGATE_WEBRTC_ICE_SERVERS", "stun:a:1, stun:b:2")]),
        )
        .unwrap();
        assert_eq!(c.webrtc.ice_servers.len(), 2);

        let bad: [&[(&str, &str)]; 7] = [
            &[
                ("MOONGATE_WEBRTC_UDP_PORT_MIN", "40010"),
                ("MOONGATE_WEBRTC_UDP_PORT_MAX", "40009"),
            ],
            &[("MOONGATE_WEBRTC_UDP_PORT_MAX", "40009")],
            &[("MOONGATE_WEBRTC_NAT_CANDIDATE_TYPE", "relay")],
            &[("MOONGATE_WEBRTC_NETWORK_TYPES", "tcp4")],
            &[("MOONGATE_WEBRTC_ICE_SERVERS", "http://x")],
            &[("MOONGATE_WEBRTC_ICE_SERVERS", "[{]")],
            &[("MOONGATE_WEBRTC_BIND_ADDRESS", "nope")],
        ];
        for vars in bad {
            let r = Config::load_with_env(None, env_of(vars));
            assert!(matches!(r, Err(ConfigError::Invalid { .. })), "{vars:?}");
        }
    }

    #[test]
    fn bad_values_are_clear_errors() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.toml");
        std::fs::write(&p, "bnid = \"x\"\n").unwrap();
        assert!(matches!(
            Config::load_with_env(Some(&p), env_of(&[])),
            Err(ConfigError::Parse { .. })
        ));
        assert!(matches!(
            Config::load_with_env(None, env_of(&[("MOONGATE_BIND", "nope")])),
            Err(ConfigError::Invalid { .. })
        ));
        assert!(matches!(
            Config::load_with_env(None, env_of(&[("MOONGATE_CERT_SWEEP_SECS", "0")])),
            Err(ConfigError::Invalid { .. })
        ));
    }

    #[test]
    fn the_embedded_host_is_wolf_strict_unless_turned_off() {
        assert!(
            Config::load_with_env(None, env_of(&[]))
                .unwrap()
                .demo_host_strict
        );
        let off = Config::load_with_env(None, env_of(&[("MOONGATE_DEMO_HOST_STRICT", "false")]));
        assert!(!off.unwrap().demo_host_strict);
        let file = Config::parse_toml("[demo_host]\nstrict = false\n").unwrap();
        assert_eq!(file.demo_host.strict, Some(false));
        assert!(matches!(
            Config::load_with_env(None, env_of(&[("MOONGATE_DEMO_HOST_STRICT", "maybe")])),
            Err(ConfigError::Invalid { .. })
        ));
    }
}

/// `[redis]` overlaid with `MOONGATE_REDIS_URL`, `MOONGATE_REDIS_PREFIX`, `MOONGATE_NODE_ID` and
/// `MOONGATE_REDIS_LEASE_SECS`; `None` without a URL.
fn redis_config(
    file: FileRedis,
    env: &impl Fn(&str) -> Option<String>,
    supersede: Duration,
) -> Result<Option<RedisConfig>, ConfigError> {
    let non_empty = |k: &str| env(k).filter(|v| !v.trim().is_empty());
    let Some(url) = non_empty("MOONGATE_REDIS_URL").or(file.url) else {
        return Ok(None);
    };
    if !(url.starts_with("redis://") || url.starts_with("unix://")) {
        return Err(ConfigError::Invalid {
            key: "redis.url".into(),
            message: format!("{} is not a redis:// or unix:// URL", redact_url(&url)),
        });
    }
    let prefix = non_empty("MOONGATE_REDIS_PREFIX")
        .or(file.prefix)
        .unwrap_or_else(|| "moongate".into());
    let node_id = non_empty("MOONGATE_NODE_ID")
        .or(file.node_id)
        .unwrap_or_else(default_node_id);
    if node_id.len() > 64
        || node_id
            .chars()
            .any(|c| c.is_control() || c == ' ' || c == ':')
    {
        return Err(ConfigError::Invalid {
            key: "redis.node_id".into(),
            message: format!("{node_id:?}: 1-64 characters, no spaces, colons, bars or controls"),
        });
    }
    let lease_secs = match non_empty("MOONGATE_REDIS_LEASE_SECS") {
        Some(v) => v.trim().parse().map_err(|_| ConfigError::Invalid {
            key: "MOONGATE_REDIS_LEASE_SECS".into(),
            message: format!("{v:?} is not a number of seconds"),
        })?,
        None => file.lease_secs.unwrap_or(DEFAULT_LEASE_SECS),
    };
    let lease = secs("redis.lease_secs", lease_secs)?;
    // A superseding open waits for a dead node's lease to run out: it must be able to.
    if lease >= supersede {
        return Err(ConfigError::Invalid {
            key: "redis.lease_secs".into(),
            message: format!(
                "{lease_secs} s must be shorter than the supersede timeout ({} s)",
                supersede.as_secs()
            ),
        });
    }
    Ok(Some(RedisConfig {
        url,
        prefix,
        node_id,
        lease,
    }))
}

#[cfg(test)]
mod redis_config_tests {
    use super::*;

    fn load(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map: std::collections::HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::load_with_env(None, |k| map.get(k).cloned())
    }

    #[test]
    fn no_url_is_one_node() {
        assert!(load(&[]).unwrap().redis.is_none());
    }

    #[test]
    fn env_selects_redis_and_the_password_never_prints() {
        let c = load(&[
            (
                "MOONGATE_REDIS_URL",
                "redis://user:hunter2@127.0.0.1:6390/0",
            ),
            ("MOONGATE_NODE_ID", "node-a"),
            ("MOONGATE_REDIS_LEASE_SECS", "4"),
        ])
        .unwrap();
        let r = c.redis.clone().unwrap();
        assert_eq!(r.node_id, "node-a");
        assert_eq!(r.prefix, "moongate");
        assert_eq!(r.lease, Duration::from_secs(4));
        let printed = format!("{c:?}");
        assert!(!printed.contains("hunter2"), "{printed}");
        assert!(
            printed.contains("redis://<redacted>@127.0.0.1:6390/0"),
            "{printed}"
        );
    }

    #[test]
    fn bad_values_are_clear_errors() {
        for (k, v) in [
            ("MOONGATE_REDIS_URL", "http://x"),
            ("MOONGATE_REDIS_LEASE_SECS", "abc"),
            ("MOONGATE_REDIS_LEASE_SECS", "60"),
            ("MOONGATE_NODE_ID", "a b"),
        ] {
            let mut pairs = vec![("MOONGATE_REDIS_URL", "redis://127.0.0.1/")];
            pairs.retain(|(key, _)| *key != k);
            pairs.push((k, v));
            let e = load(&pairs).unwrap_err().to_string();
            assert!(!e.is_empty(), "{k}={v}");
        }
    }
}

/// `[limits]` overlaid with `MOONGATE_MAX_STREAMS`, `MOONGATE_MAX_STREAMS_PER_CLIENT`,
/// `MOONGATE_OPENS_PER_MINUTE_PER_IP`, `MOONGATE_MAX_MESSAGE_BYTES`,
/// `MOONGATE_FIRST_MESSAGE_TIMEOUT_SECS` and `MOONGATE_UPGRADE_TIMEOUT_SECS`.
fn limits_config(
    file: FileLimits,
    env: &impl Fn(&str) -> Option<String>,
) -> Result<crate::limits::Limits, ConfigError> {
    fn number<T: std::str::FromStr>(
        env: &impl Fn(&str) -> Option<String>,
        key: &str,
        file: Option<T>,
    ) -> Result<Option<T>, ConfigError> {
        match env(key).filter(|v| !v.trim().is_empty()) {
            Some(v) => v
                .trim()
                .parse()
                .map(Some)
                .map_err(|_| ConfigError::Invalid {
                    key: key.into(),
                    message: format!("{v:?} is not a whole number"),
                }),
            None => Ok(file),
        }
    }
    let mut l = crate::limits::Limits::default();
    if let Some(v) = number(env, "MOONGATE_MAX_STREAMS", file.max_streams)? {
        l.max_streams = v;
    }
    if let Some(v) = number(
        env,
        "MOONGATE_MAX_STREAMS_PER_CLIENT",
        file.max_streams_per_client,
    )? {
        l.max_streams_per_client = v;
    }
    if let Some(v) = number(
        env,
        "MOONGATE_OPENS_PER_MINUTE_PER_IP",
        file.opens_per_minute_per_ip,
    )? {
        l.opens_per_minute_per_ip = v;
    }
    if let Some(v) = number(env, "MOONGATE_MAX_MESSAGE_BYTES", file.max_message_bytes)? {
        // Below 4 kB an init or an SDP offer no longer fits.
        if v < 4096 {
            return Err(ConfigError::Invalid {
                key: "limits.max_message_bytes".into(),
                message: format!("{v} is below 4096 bytes"),
            });
        }
        l.max_message_bytes = v;
    }
    if let Some(v) = number(
        env,
        "MOONGATE_FIRST_MESSAGE_TIMEOUT_SECS",
        file.first_message_secs,
    )? {
        l.first_message = secs("limits.first_message_secs", v)?;
    }
    if let Some(v) = number(
        env,
        "MOONGATE_UPGRADE_TIMEOUT_SECS",
        file.upgrade_timeout_secs,
    )? {
        l.upgrade_timeout = secs("limits.upgrade_timeout_secs", v)?;
    }
    Ok(l)
}

#[cfg(test)]
mod limits_config_tests {
    use super::*;

    #[test]
    fn env_and_file_set_limits_and_bad_values_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.toml");
        std::fs::write(
            &path,
            "[limits]\nmax_streams = 8\nfirst_message_secs = 3\nupgrade_timeout_secs = 4\n",
        )
        .unwrap();
        let c = Config::load_with_env(Some(&path), |k| {
            (k == "MOONGATE_MAX_STREAMS_PER_CLIENT").then(|| "2".to_string())
        })
        .unwrap();
        assert_eq!(c.limits.max_streams, 8);
        assert_eq!(c.limits.max_streams_per_client, 2);
        assert_eq!(c.limits.first_message, Duration::from_secs(3));
        assert_eq!(c.limits.upgrade_timeout, Duration::from_secs(4));
        for (k, v) in [
            ("MOONGATE_MAX_STREAMS", "-1"),
            ("MOONGATE_MAX_MESSAGE_BYTES", "100"),
            ("MOONGATE_FIRST_MESSAGE_TIMEOUT_SECS", "0"),
            ("MOONGATE_UPGRADE_TIMEOUT_SECS", "0"),
            ("MOONGATE_UPGRADE_TIMEOUT_SECS", "ten"),
        ] {
            assert!(
                Config::load_with_env(None, |key| (key == k).then(|| v.to_string())).is_err(),
                "{k}={v}"
            );
        }
    }
}
