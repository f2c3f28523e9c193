//! The `[redis]` section: several gateways sharing one Redis, and the overlay of its
//! `MOONGATE_REDIS_*` variables. Kept apart from `config.rs` because it is the one section whose
//! defaults depend on others (the lease follows the supersede timeout) and that carries a secret.

use super::*;

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

pub(super) fn default_node_id() -> String {
    let host = std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "moongate".into());
    format!("{host}-{}", std::process::id())
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileRedis {
    url: Option<String>,
    prefix: Option<String>,
    node_id: Option<String>,
    lease_secs: Option<u64>,
}

/// `[redis]` overlaid with `MOONGATE_REDIS_URL`, `MOONGATE_REDIS_PREFIX`, `MOONGATE_NODE_ID` and
/// `MOONGATE_REDIS_LEASE_SECS`; `None` without a URL.
pub(super) fn redis_config(
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
        Some(v) => parse_as("MOONGATE_REDIS_LEASE_SECS", &v, "a number of seconds")?,
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
mod tests;
