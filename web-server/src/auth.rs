//! Authentication.
//!
//! * One bearer credential guards every REST endpoint (`Authorization: Bearer <c>`; compared in
//!   constant time). It comes from `MOONGATE_CREDENTIALS`, or is generated at first start and kept
//!   in `<data_dir>/credentials` (mode 0600). It never reaches a log or `Debug` output.
//! * Roles: a second, admin credential (`MOONGATE_ADMIN_CREDENTIALS`, or generated at first start
//!   into `<data_dir>/admin-credentials`, 0600) guards `/api/admin/*` and `/metrics`
//!   ([`require_admin`]): no or a wrong credential → 401, the user credential → 403. The admin
//!   credential is also accepted wherever the user credential is.
//! * WebSocket upgrades: [`check_origin`] (and the [`AllowedOrigin`] extractor) refuse a browser
//!   page from a foreign origin; [`first_message_principal`] resolves the `credentials` field of
//!   the first WS message (Helix's proxy rewrites `AuthenticateAndInit.credentials` to the secret).
//! * Named users ([`crate::users`]): a sign-in token is accepted wherever the user credential is,
//!   with the user's role (admin, user, viewer-only) and host list ([`Principal`]); a trusted
//!   reverse proxy may name the user in a header instead ([`resolve`]).

use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};

use axum::extract::{FromRequestParts, Request, State};
use axum::http::header::{AUTHORIZATION, HOST, ORIGIN};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use rand::RngCore;
use subtle::ConstantTimeEq;

use crate::error::ApiError;
use crate::state::AppState;

mod principal;
pub use principal::{resolve, resolve_token, Principal};

/// File name of a generated credential inside the data dir.
pub const CREDENTIALS_FILE: &str = "credentials";
/// File name of a generated admin credential inside the data dir.
pub const ADMIN_CREDENTIALS_FILE: &str = "admin-credentials";

/// Who a valid bearer credential belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The user credential: the REST API and streaming.
    User,
    /// The admin credential: everything, plus `/api/admin/*` and `/metrics`.
    Admin,
    /// A viewer-only named user: reads, never changes or starts anything.
    Viewer,
}

/// The shared secret. `Debug` is redacted.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials(String);

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Credentials(<redacted>)")
    }
}

/// Where the credential came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CredentialSource {
    /// `MOONGATE_CREDENTIALS`.
    Configured,
    /// Read from a file generated at an earlier start.
    Stored(PathBuf),
    /// Generated now and stored in this file: print it once.
    Generated(PathBuf),
}

/// Credential file problems.
#[derive(Debug, thiserror::Error)]
pub enum CredentialError {
    /// Reading or writing the credential file failed.
    #[error("credential file {path}: {source}")]
    Io {
        /// Path.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// The stored file is empty.
    #[error("credential file {0} is empty")]
    Empty(PathBuf),
}

impl Credentials {
    /// A credential from its text.
    pub fn new(secret: impl Into<String>) -> Self {
        Credentials(secret.into())
    }

    /// A random credential: 32 bytes from the OS RNG, hex.
    pub fn generate() -> Self {
        let mut bytes = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        Credentials(bytes.iter().map(|b| format!("{b:02x}")).collect())
    }

    /// The secret itself (to print it once at first start, or to send it from a test client).
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Constant-time comparison with `candidate`.
    pub fn matches(&self, candidate: &str) -> bool {
        self.0.as_bytes().ct_eq(candidate.as_bytes()).into()
    }

    /// The configured credential, else the stored one, else a new one written to
    /// `<data_dir>/credentials` with mode 0600.
    pub fn load_or_generate(
        configured: Option<&str>,
        data_dir: &Path,
    ) -> Result<(Credentials, CredentialSource), CredentialError> {
        Self::load_or_generate_file(configured, data_dir, CREDENTIALS_FILE)
    }

    /// [`Credentials::load_or_generate`] with another file name (the admin credential uses
    /// [`ADMIN_CREDENTIALS_FILE`]).
    pub fn load_or_generate_file(
        configured: Option<&str>,
        data_dir: &Path,
        file_name: &str,
    ) -> Result<(Credentials, CredentialSource), CredentialError> {
        if let Some(c) = configured {
            return Ok((Credentials::new(c), CredentialSource::Configured));
        }
        let path = data_dir.join(file_name);
        let io = |source| CredentialError::Io {
            path: path.clone(),
            source,
        };
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                let text = text.trim();
                if text.is_empty() {
                    return Err(CredentialError::Empty(path));
                }
                return Ok((Credentials::new(text), CredentialSource::Stored(path)));
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io(e)),
        }
        std::fs::create_dir_all(data_dir).map_err(io)?;
        let creds = Credentials::generate();
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let mut file = options.open(&path).map_err(io)?;
        file.write_all(creds.0.as_bytes()).map_err(io)?;
        file.write_all(b"\n").map_err(io)?;
        file.sync_all().map_err(io)?;
        tracing::info!(path = %path.display(), "generated a credential, stored in the data dir");
        Ok((creds, CredentialSource::Generated(path)))
    }
}

/// Checks `Authorization: Bearer <c>`: malformed → 400 `bad_authorization_header`, missing or
/// wrong → 401 `unauthorized`.
pub fn check_bearer(headers: &HeaderMap, creds: &Credentials) -> Result<(), ApiError> {
    bearer_token(headers).and_then(|token| {
        if creds.matches(token) {
            Ok(())
        } else {
            Err(ApiError::unauthorized())
        }
    })
}

/// For the stream sockets, whose credential may come in the first message instead: with an
/// `Authorization` header (or a trusted proxy's user header) it must be right, else the socket is
/// refused before the upgrade, and the caller is known; without either, `None`.
pub async fn optional_principal(
    state: &AppState,
    headers: &HeaderMap,
    peer: std::net::SocketAddr,
) -> Result<Option<Principal>, ApiError> {
    let proxied = state.config.users.trusted_proxies.contains(&peer.ip())
        && headers.contains_key(state.config.users.proxy_user_header.as_str());
    if !proxied && !headers.contains_key(AUTHORIZATION) {
        return Ok(None);
    }
    resolve(state, headers, Some(peer)).await.map(Some)
}

/// The role of the bearer credential in `headers` (both compared in constant time): malformed →
/// 400, missing or matching neither → 401.
pub fn check_role(
    headers: &HeaderMap,
    user: &Credentials,
    admin: &Credentials,
) -> Result<Role, ApiError> {
    let token = bearer_token(headers)?;
    let is_admin = admin.matches(token);
    let is_user = user.matches(token);
    match (is_admin, is_user) {
        (true, _) => Ok(Role::Admin),
        (false, true) => Ok(Role::User),
        (false, false) => Err(ApiError::unauthorized()),
    }
}

pub(crate) fn bearer_token(headers: &HeaderMap) -> Result<&str, ApiError> {
    let Some(value) = headers.get(AUTHORIZATION) else {
        return Err(ApiError::unauthorized());
    };
    let malformed = || {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_authorization_header",
            "expected `Authorization: Bearer <credentials>`",
        )
    };
    let text = value.to_str().map_err(|_| malformed())?;
    let (scheme, token) = text.split_once(' ').ok_or_else(malformed)?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(malformed());
    }
    Ok(token.trim())
}

/// The peer address axum recorded for the connection, if any (tests without it trust no proxy).
fn peer(request: &Request) -> Option<std::net::SocketAddr> {
    request
        .extensions()
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|c| c.0)
}

/// Middleware for the REST routes: any valid caller ([`resolve`]); a viewer-only account may only
/// read, and a request naming a host (`/api/hosts/{id}/…`) needs that host in the caller's list.
/// The [`Principal`] goes into the request's extensions for the handlers.
pub async fn require_bearer(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let who = resolve(&state, request.headers(), peer(&request)).await?;
    let method = request.method();
    if !(method == axum::http::Method::GET || method == axum::http::Method::HEAD) {
        who.check_may_change()?;
    }
    let path = request.uri().path();
    if let Some(rest) = path.strip_prefix("/api/hosts/") {
        let id = rest.split('/').next().unwrap_or_default();
        if let Ok(id) = id.parse::<i64>() {
            who.check_host(id)?;
        }
    } else if path == "/api/hosts" && method == axum::http::Method::POST && who.hosts.is_some() {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "host_not_permitted",
            "an account limited to some hosts may not add hosts",
        ));
    }
    request.extensions_mut().insert(who);
    Ok(next.run(request).await)
}

/// Middleware for `/api/admin/*` and `/metrics`: the admin credential or an admin user; any other
/// valid caller gets 403 `forbidden`, none or a wrong credential 401.
pub async fn require_admin(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let who = resolve(&state, request.headers(), peer(&request)).await?;
    if who.role != Role::Admin {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "this needs the admin credential",
        ));
    }
    request.extensions_mut().insert(who);
    Ok(next.run(request).await)
}

/// Checks the `Origin` of a WebSocket upgrade. No `Origin` (a non-browser client such as the
/// Helix proxy or a CLI) passes: the bearer or first-message credential guards those. A browser
/// always sends `Origin`; it must be in `allowed` (`"*"` = any), or, with `allowed` empty, equal
/// the page's own origin (`http(s)://<Host>`).
pub fn check_origin(headers: &HeaderMap, allowed: &[String]) -> Result<(), ApiError> {
    let Some(origin) = headers.get(ORIGIN) else {
        return Ok(());
    };
    let forbidden = || {
        ApiError::new(
            StatusCode::FORBIDDEN,
            "origin_not_allowed",
            "this page's origin may not open moongate WebSockets",
        )
    };
    let origin = origin
        .to_str()
        .map_err(|_| forbidden())?
        .trim_end_matches('/');
    let ok = if allowed.is_empty() {
        headers
            .get(HOST)
            .and_then(|h| h.to_str().ok())
            .is_some_and(|host| {
                origin == format!("http://{host}") || origin == format!("https://{host}")
            })
    } else {
        allowed
            .iter()
            .any(|a| a == "*" || a.trim_end_matches('/').eq_ignore_ascii_case(origin))
    };
    if ok {
        Ok(())
    } else {
        Err(forbidden())
    }
}

/// Extractor for WebSocket routes: rejects (403 `origin_not_allowed`) an upgrade whose `Origin`
/// is not allowed by the configuration.
#[derive(Debug, Clone, Copy)]
pub struct AllowedOrigin;

impl FromRequestParts<AppState> for AllowedOrigin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        check_origin(&parts.headers, &state.config.allowed_origins)?;
        Ok(AllowedOrigin)
    }
}

/// Why a first WebSocket message failed authentication.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WsAuthError {
    /// Not a JSON object.
    #[error("the first message is not a JSON object")]
    NotJson,
    /// No `credentials` string field.
    #[error("the first message has no credentials")]
    Missing,
    /// Wrong credentials.
    #[error("wrong credentials")]
    Mismatch,
}

/// The `credentials` of a first WebSocket text message: either
/// `{"AuthenticateAndInit": {"credentials": "…", …}}` (moonlight-web's signaling socket, which
/// Helix's proxy rewrites) or a top-level `"credentials"` field.
pub fn first_message_credentials(text: &str) -> Result<String, WsAuthError> {
    let value: serde_json::Value = serde_json::from_str(text).map_err(|_| WsAuthError::NotJson)?;
    let object = value.as_object().ok_or(WsAuthError::NotJson)?;
    object
        .get("AuthenticateAndInit")
        .and_then(|inner| inner.get("credentials"))
        .or_else(|| object.get("credentials"))
        .and_then(|c| c.as_str())
        .map(String::from)
        .ok_or(WsAuthError::Missing)
}

/// The caller named by a first WebSocket message's `credentials`: a shared credential or a
/// sign-in token ([`resolve_token`]).
pub async fn first_message_principal(
    state: &AppState,
    text: &str,
) -> Result<Principal, WsAuthError> {
    let credential = first_message_credentials(text)?;
    resolve_token(state, &credential)
        .await
        .map_err(|_| WsAuthError::Mismatch)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn generated_once_stored_0600_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let (a, src) = Credentials::load_or_generate(None, dir.path()).unwrap();
        let path = dir.path().join(CREDENTIALS_FILE);
        assert_eq!(src, CredentialSource::Generated(path.clone()));
        assert_eq!(a.expose().len(), 64);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let (b, src) = Credentials::load_or_generate(None, dir.path()).unwrap();
        assert_eq!(src, CredentialSource::Stored(path));
        assert_eq!(a, b);
        let (c, src) = Credentials::load_or_generate(Some("env"), dir.path()).unwrap();
        assert_eq!(src, CredentialSource::Configured);
        assert_eq!(c.expose(), "env");
        assert!(!format!("{a:?}").contains(a.expose()));
        // The admin credential: its own file, also 0600, different from the user's.
        let (admin, src) =
            Credentials::load_or_generate_file(None, dir.path(), ADMIN_CREDENTIALS_FILE).unwrap();
        let admin_path = dir.path().join(ADMIN_CREDENTIALS_FILE);
        assert_eq!(src, CredentialSource::Generated(admin_path.clone()));
        assert_ne!(admin, a);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&admin_path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let (again, src) =
            Credentials::load_or_generate_file(None, dir.path(), ADMIN_CREDENTIALS_FILE).unwrap();
        assert_eq!(src, CredentialSource::Stored(admin_path));
        assert_eq!(again, admin);
    }

    #[test]
    fn bearer_rules() {
        let creds = Credentials::new("abc");
        let mut h = HeaderMap::new();
        assert_eq!(check_bearer(&h, &creds).unwrap_err().status, 401);
        h.insert(AUTHORIZATION, HeaderValue::from_static("Bearer abd"));
        assert_eq!(check_bearer(&h, &creds).unwrap_err().status, 401);
        h.insert(AUTHORIZATION, HeaderValue::from_static("Bearer ab"));
        assert_eq!(check_bearer(&h, &creds).unwrap_err().status, 401);
        h.insert(AUTHORIZATION, HeaderValue::from_static("Basic abc"));
        assert_eq!(check_bearer(&h, &creds).unwrap_err().status, 400);
        h.insert(AUTHORIZATION, HeaderValue::from_static("Bearer abc"));
        assert!(check_bearer(&h, &creds).is_ok());
        let admin = Credentials::new("root");
        assert_eq!(check_role(&h, &creds, &admin).unwrap(), Role::User);
        h.insert(AUTHORIZATION, HeaderValue::from_static("Bearer root"));
        assert_eq!(check_role(&h, &creds, &admin).unwrap(), Role::Admin);
        h.insert(AUTHORIZATION, HeaderValue::from_static("Bearer nope"));
        assert_eq!(check_role(&h, &creds, &admin).unwrap_err().status, 401);
    }

    #[test]
    fn origin_rules() {
        let mut h = HeaderMap::new();
        assert!(check_origin(&h, &[]).is_ok(), "no Origin: not a browser");
        h.insert(HOST, HeaderValue::from_static("gate:8080"));
        h.insert(ORIGIN, HeaderValue::from_static("http://gate:8080"));
        assert!(check_origin(&h, &[]).is_ok(), "same origin");
        h.insert(ORIGIN, HeaderValue::from_static("http://evil.example"));
        assert_eq!(
            check_origin(&h, &[]).unwrap_err().code,
            "origin_not_allowed"
        );
        let allowed = vec!["http://evil.example".to_string()];
        assert!(check_origin(&h, &allowed).is_ok());
        let other = vec!["https://ok.example".to_string()];
        assert!(check_origin(&h, &other).is_err());
        assert!(check_origin(&h, &["*".to_string()]).is_ok());
    }

    #[test]
    fn first_message_credentials_are_found_in_either_place() {
        let ok = r#"{"AuthenticateAndInit":{"credentials":"helix","host_id":0}}"#;
        assert_eq!(first_message_credentials(ok).as_deref(), Ok("helix"));
        assert_eq!(
            first_message_credentials(r#"{"credentials":"helix"}"#).as_deref(),
            Ok("helix")
        );
        assert_eq!(
            first_message_credentials(r#"{"type":"init"}"#),
            Err(WsAuthError::Missing)
        );
        assert_eq!(
            first_message_credentials(r#"{"credentials":7}"#),
            Err(WsAuthError::Missing)
        );
        assert_eq!(
            first_message_credentials("not json"),
            Err(WsAuthError::NotJson)
        );
    }
}
