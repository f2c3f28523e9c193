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
//! | `[demo_host] microphone` | `MOONGATE_DEMO_HOST_MICROPHONE` (`true`/`false`) | `false` | the embedded demo host also offers the Sunshine forks' microphone stream (`docs/microphone.md`), which no Wolf has |
//! | `[demo_host] live_bitrate` | `MOONGATE_DEMO_HOST_LIVE_BITRATE` (`true`/`false`) | `false` | the embedded demo host also takes a new bitrate while streaming, as Foundation Sunshine does (`0x5506`, `docs/adaptive-quality.md`), which no Wolf does |
//! | `[webrtc] disconnect_timeout_secs` | `MOONGATE_WEBRTC_DISCONNECT_TIMEOUT_SECS` | 10 | a peer disconnected this long ends the stream |
//! | `store_key` | `MOONGATE_STORE_KEY` | generated (`<data_dir>/store.key`, 0600) | the file holding the key that encrypts client private keys in the store (64 hex digits); a named file must exist |
//! | `[identities] idle_days` | `MOONGATE_IDENTITY_IDLE_DAYS` | 30 | a client identity unused this long is unpaired on its host and removed from the store |
//!
//! The config file is `MOONGATE_CONFIG` or the `--config` path given to the binary. Unknown keys
//! are an error, so a typo does not silently fall back to a default.
//!
//! This file holds the top-level keys and the loader; the `[webrtc]`, `[redis]`, `[limits]`,
//! `[users]` and `[users.oidc]` sections, each with its own overlay and checks, are in
//! `config/webrtc.rs`, `config/redis.rs`, `config/limits.rs`, `config/users.rs` and
//! `config/oidc.rs`.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

mod limits;
mod oidc;
mod redis;
mod users;
mod webrtc;

use limits::{limits_config, FileLimits};
pub use oidc::{OidcConfig, UsernameClaim};
pub use redis::{redact_url, RedisConfig, DEFAULT_LEASE_SECS};
use redis::{redis_config, FileRedis};
use users::{users_config, FileUsers};
pub use users::{UsersConfig, DEFAULT_SESSION_HOURS};
use webrtc::FileWebRtc;
pub use webrtc::{IceServer, NatCandidateType, NetworkType, WebRtc};

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
    /// The embedded demo host also offers the Sunshine forks' microphone stream
    /// (`demo_host::DemoHostConfig::microphone`), which no Wolf has: off by default.
    pub demo_host_microphone: bool,
    /// The embedded demo host also takes a new bitrate while streaming, as Foundation Sunshine
    /// does (`demo_host::DemoHostConfig::live_bitrate`): off by default.
    pub demo_host_live_bitrate: bool,
    /// The store key file (`MOONGATE_STORE_KEY`); `None` = `<data_dir>/store.key`.
    pub store_key: Option<PathBuf>,
    /// A client identity unused this long is unpaired and removed from the store.
    pub identity_idle: Duration,
    /// Shared state of several gateways; `None` = one node on SQLite.
    pub redis: Option<RedisConfig>,
    /// Streams, opens, message sizes and first-message time an operator allows.
    pub limits: crate::limits::Limits,
    /// Sign-in sessions and trusted proxies (`[users]`).
    pub users: UsersConfig,
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
            .field("demo_host_microphone", &self.demo_host_microphone)
            .field("demo_host_live_bitrate", &self.demo_host_live_bitrate)
            .field("store_key", &self.store_key)
            .field("identity_idle", &self.identity_idle)
            .field("redis", &self.redis)
            .field("limits", &self.limits)
            .field("users", &self.users)
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
    #[serde(default)]
    users: FileUsers,
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
    microphone: Option<bool>,
    live_bitrate: Option<bool>,
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
            demo_host_microphone: false,
            demo_host_live_bitrate: false,
            store_key: None,
            identity_idle: Duration::from_secs(DEFAULT_IDENTITY_IDLE_DAYS * 86_400),
            redis: None,
            limits: crate::limits::Limits::default(),
            users: UsersConfig::default(),
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

/// `value` (trimmed) as a `T`, or "`value` is not `what`" for `key`.
fn parse_as<T: std::str::FromStr>(key: &str, value: &str, what: &str) -> Result<T, ConfigError> {
    value.trim().parse().map_err(|_| ConfigError::Invalid {
        key: key.into(),
        message: format!("{value:?} is not {what}"),
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
        if let Some(mic) = parsed.demo_host.microphone {
            c.demo_host_microphone = mic;
        }
        if let Some(live) = parsed.demo_host.live_bitrate {
            c.demo_host_live_bitrate = live;
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
            c.demo_host_strict = switch("MOONGATE_DEMO_HOST_STRICT", &v)?;
        }
        if let Some(v) = env("MOONGATE_DEMO_HOST_MICROPHONE") {
            c.demo_host_microphone = switch("MOONGATE_DEMO_HOST_MICROPHONE", &v)?;
        }
        if let Some(v) = env("MOONGATE_DEMO_HOST_LIVE_BITRATE") {
            c.demo_host_live_bitrate = switch("MOONGATE_DEMO_HOST_LIVE_BITRATE", &v)?;
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
                *slot = secs(key, parse_as(key, &v, "a number of seconds")?)?;
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
            let key = "MOONGATE_IDENTITY_IDLE_DAYS";
            c.identity_idle = idle_days(key, parse_as(key, &v, "a number of days")?)?;
        }
        c.webrtc.overlay_env(&env)?;
        c.redis = redis_config(parsed.redis, &env, c.timeouts.supersede)?;
        c.limits = limits_config(parsed.limits, &env)?;
        c.users = users_config(parsed.users, &env)?;
        c.webrtc.validate()?;
        Ok(c)
    }

    fn parse_toml(text: &str) -> Result<FileConfig, String> {
        toml::from_str(text).map_err(|e| e.to_string())
    }
}

/// A `true`/`false` variable (also 1/0, on/off, yes/no).
fn switch(key: &str, v: &str) -> Result<bool, ConfigError> {
    match v.trim() {
        "1" | "true" | "on" | "yes" => Ok(true),
        "0" | "false" | "off" | "no" => Ok(false),
        other => Err(ConfigError::Invalid {
            key: key.into(),
            message: format!("{other:?} is not true or false"),
        }),
    }
}

#[cfg(test)]
mod tests;
