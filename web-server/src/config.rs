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
//! | `[[hosts]]` | – | none | hosts added to the store at start if absent (`name`, `address`, `http_port`, `https_port`, `mac`) |
//! | – | `MOONGATE_CREDENTIALS` | generated | the bearer credential (kept out of files on purpose) |
//! | – | `MOONGATE_ADMIN_CREDENTIALS` | generated (`<data_dir>/admin-credentials`) | the admin credential: `/api/admin/*`, `/metrics`, the dashboard |
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
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            host_request: Duration::from_secs(10),
            pairing: Duration::from_secs(120),
            supersede: Duration::from_secs(10),
            cert_idle: Duration::from_secs(3600),
            cert_sweep: Duration::from_secs(300),
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
}

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
        let t = parsed.timeouts;
        let slots: [(&str, Option<u64>, &mut Duration); 5] = [
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
        let env_slots: [(&str, &mut Duration); 5] = [
            (
                "MOONGATE_HOST_REQUEST_TIMEOUT_SECS",
                &mut c.timeouts.host_request,
            ),
            ("MOONGATE_PAIRING_TIMEOUT_SECS", &mut c.timeouts.pairing),
            ("MOONGATE_SUPERSEDE_TIMEOUT_SECS", &mut c.timeouts.supersede),
            ("MOONGATE_CERT_IDLE_SECS", &mut c.timeouts.cert_idle),
            ("MOONGATE_CERT_SWEEP_SECS", &mut c.timeouts.cert_sweep),
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
}
