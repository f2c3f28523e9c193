//! The `[limits]` section: gateway-wide stream and message limits, overlaid with their
//! `MOONGATE_*` variables. Kept apart from `config.rs` because it builds
//! [`crate::limits::Limits`], a type owned by the limits module.

use super::*;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileLimits {
    max_streams: Option<usize>,
    max_streams_per_client: Option<usize>,
    opens_per_minute_per_ip: Option<u32>,
    max_message_bytes: Option<usize>,
    first_message_secs: Option<u64>,
    upgrade_timeout_secs: Option<u64>,
}

/// `[limits]` overlaid with `MOONGATE_MAX_STREAMS`, `MOONGATE_MAX_STREAMS_PER_CLIENT`,
/// `MOONGATE_OPENS_PER_MINUTE_PER_IP`, `MOONGATE_MAX_MESSAGE_BYTES`,
/// `MOONGATE_FIRST_MESSAGE_TIMEOUT_SECS` and `MOONGATE_UPGRADE_TIMEOUT_SECS`.
pub(super) fn limits_config(
    file: FileLimits,
    env: &impl Fn(&str) -> Option<String>,
) -> Result<crate::limits::Limits, ConfigError> {
    fn number<T: std::str::FromStr>(
        env: &impl Fn(&str) -> Option<String>,
        key: &str,
        file: Option<T>,
    ) -> Result<Option<T>, ConfigError> {
        match env(key).filter(|v| !v.trim().is_empty()) {
            Some(v) => parse_as(key, &v, "a whole number").map(Some),
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
mod tests;
