//! `[users.oidc]`: sign-in through an OpenID Connect provider ([`crate::users::oidc`]).
//!
//! | TOML key | env | default | meaning |
//! |---|---|---|---|
//! | `issuer` | `MOONGATE_OIDC_ISSUER` | none: OIDC off | the provider's issuer URL (discovery at `<issuer>/.well-known/openid-configuration`) |
//! | `client_id` | `MOONGATE_OIDC_CLIENT_ID` | required with `issuer` | this gateway's client id at the provider |
//! | – | `MOONGATE_OIDC_CLIENT_SECRET` | none (a public client) | its client secret: from the environment only, never a file that may be shared |
//! | `redirect_url` | `MOONGATE_OIDC_REDIRECT_URL` | required with `issuer` | `https://<gateway>/api/auth/oidc/callback`, as registered at the provider |
//! | `name` | `MOONGATE_OIDC_NAME` | `Single sign-on` | the sign-in button's label |
//! | `username_claim` | `MOONGATE_OIDC_USERNAME_CLAIM` | `preferred_username` | the ID token claim that names the moongate user (`preferred_username`, `email` or `sub`) |
//! | `auto_create_role` | `MOONGATE_OIDC_AUTO_CREATE_ROLE` | none | `user` or `viewer`: a signed-in name with no moongate user gets one with this role; unset, an admin must add the user first |
//! | `ca_file` | `MOONGATE_OIDC_CA_FILE` | none | a PEM file of extra trusted roots (a private provider's CA), besides the public web roots |

use std::path::PathBuf;

use super::*;
use crate::users::UserRole;
use wire::Secret;

/// Which ID token claim names the user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UsernameClaim {
    PreferredUsername,
    Email,
    Subject,
}

/// The OpenID Connect provider moongate signs users in with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OidcConfig {
    pub issuer: String,
    pub client_id: String,
    pub client_secret: Option<Secret>,
    pub redirect_url: String,
    pub name: String,
    pub username_claim: UsernameClaim,
    /// `None`: only users an admin added may sign in.
    pub auto_create_role: Option<UserRole>,
    pub ca_file: Option<PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileOidc {
    issuer: Option<String>,
    client_id: Option<String>,
    redirect_url: Option<String>,
    name: Option<String>,
    username_claim: Option<String>,
    auto_create_role: Option<String>,
    ca_file: Option<PathBuf>,
}

fn invalid(key: &str, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key: format!("users.oidc.{key}"),
        message: message.into(),
    }
}

/// `[users.oidc]` overlaid with its variables; `None` when no issuer is set.
pub(super) fn oidc_config(
    file: FileOidc,
    env: &impl Fn(&str) -> Option<String>,
) -> Result<Option<OidcConfig>, ConfigError> {
    let pick = |var: &str, file: Option<String>| {
        env(var)
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
            .or(file)
    };
    let Some(issuer) = pick("MOONGATE_OIDC_ISSUER", file.issuer) else {
        return Ok(None);
    };
    let url = |key: &str, v: &str| {
        let ok = (v.starts_with("https://") || v.starts_with("http://")) && v.len() > 8;
        if ok {
            Ok(())
        } else {
            Err(invalid(key, format!("{v:?} is not an http(s) URL")))
        }
    };
    url("issuer", &issuer)?;
    let client_id = pick("MOONGATE_OIDC_CLIENT_ID", file.client_id)
        .ok_or_else(|| invalid("client_id", "required with an issuer"))?;
    let redirect_url = pick("MOONGATE_OIDC_REDIRECT_URL", file.redirect_url)
        .ok_or_else(|| invalid("redirect_url", "required with an issuer"))?;
    url("redirect_url", &redirect_url)?;
    let username_claim = match pick("MOONGATE_OIDC_USERNAME_CLAIM", file.username_claim).as_deref()
    {
        None | Some("preferred_username") => UsernameClaim::PreferredUsername,
        Some("email") => UsernameClaim::Email,
        Some("sub") => UsernameClaim::Subject,
        Some(other) => {
            return Err(invalid(
                "username_claim",
                format!("{other:?} is not preferred_username, email or sub"),
            ))
        }
    };
    let auto_create_role = match pick("MOONGATE_OIDC_AUTO_CREATE_ROLE", file.auto_create_role) {
        None => None,
        Some(r) => match UserRole::parse(&r) {
            // An identity provider never makes an administrator on its own.
            Some(UserRole::Admin) | None => {
                return Err(invalid(
                    "auto_create_role",
                    format!("{r:?} is not user or viewer"),
                ))
            }
            Some(role) => Some(role),
        },
    };
    Ok(Some(OidcConfig {
        issuer,
        client_id,
        client_secret: env("MOONGATE_OIDC_CLIENT_SECRET")
            .filter(|s| !s.is_empty())
            .map(Secret::new),
        redirect_url,
        name: pick("MOONGATE_OIDC_NAME", file.name).unwrap_or_else(|| "Single sign-on".into()),
        username_claim,
        auto_create_role,
        ca_file: env("MOONGATE_OIDC_CA_FILE")
            .filter(|s| !s.is_empty())
            .map(PathBuf::from)
            .or(file.ca_file),
    }))
}
