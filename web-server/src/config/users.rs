//! The `[users]` section: how long a sign-in lasts, and which reverse proxies may name the user
//! in a header ([`crate::users`]). Overlaid with `MOONGATE_SESSION_HOURS`,
//! `MOONGATE_TRUSTED_PROXIES` (comma-separated addresses) and `MOONGATE_PROXY_USER_HEADER`.

use std::net::IpAddr;

use super::*;

/// Sign-in settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsersConfig {
    /// How long a sign-in session lasts.
    pub session: Duration,
    /// Peers whose user header is believed; empty: the header is never read.
    pub trusted_proxies: Vec<IpAddr>,
    /// The header naming the signed-in user (lower case).
    pub proxy_user_header: String,
    /// Sign-in through an OpenID Connect provider (`[users.oidc]`); `None`: off.
    pub oidc: Option<super::oidc::OidcConfig>,
}

/// Default [`UsersConfig::session`]: 12 hours.
pub const DEFAULT_SESSION_HOURS: u64 = 12;

impl Default for UsersConfig {
    fn default() -> Self {
        UsersConfig {
            session: Duration::from_secs(DEFAULT_SESSION_HOURS * 3600),
            trusted_proxies: Vec::new(),
            proxy_user_header: "x-forwarded-user".into(),
            oidc: None,
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileUsers {
    session_hours: Option<u64>,
    trusted_proxies: Option<Vec<String>>,
    proxy_user_header: Option<String>,
    #[serde(default)]
    oidc: super::oidc::FileOidc,
}

/// `[users]` overlaid with its variables, checked.
pub(super) fn users_config(
    file: FileUsers,
    env: &impl Fn(&str) -> Option<String>,
) -> Result<UsersConfig, ConfigError> {
    let mut u = UsersConfig::default();
    let hours = match env("MOONGATE_SESSION_HOURS").filter(|v| !v.trim().is_empty()) {
        Some(v) => Some(parse_as("MOONGATE_SESSION_HOURS", &v, "a number of hours")?),
        None => file.session_hours,
    };
    if let Some(h) = hours {
        if h == 0 || h > 24 * 366 {
            return Err(ConfigError::Invalid {
                key: "users.session_hours".into(),
                message: format!("{h} is not 1-8784 hours"),
            });
        }
        u.session = Duration::from_secs(h * 3600);
    }
    let proxies = match env("MOONGATE_TRUSTED_PROXIES") {
        Some(v) => Some(
            v.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(String::from)
                .collect(),
        ),
        None => file.trusted_proxies,
    };
    for p in proxies.unwrap_or_default() {
        let ip = p.parse().map_err(|_| ConfigError::Invalid {
            key: "users.trusted_proxies".into(),
            message: format!("{p:?} is not an IP address"),
        })?;
        u.trusted_proxies.push(ip);
    }
    if let Some(h) = env("MOONGATE_PROXY_USER_HEADER").or(file.proxy_user_header) {
        let h = h.trim().to_ascii_lowercase();
        if axum::http::HeaderName::from_bytes(h.as_bytes()).is_err() {
            return Err(ConfigError::Invalid {
                key: "users.proxy_user_header".into(),
                message: format!("{h:?} is not a header name"),
            });
        }
        u.proxy_user_header = h;
    }
    u.oidc = super::oidc::oidc_config(file.oidc, env)?;
    Ok(u)
}
