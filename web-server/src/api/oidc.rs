//! Sign-in through an OpenID Connect provider ([`crate::users::oidc`]); no credential needed.
//!
//! | route | what |
//! |---|---|
//! | `GET /api/auth/providers` | `{"oidc": {"name"}}`, or `{"oidc": null}` when it is off: what the sign-in page offers |
//! | `GET /api/auth/oidc/start` | 303 to the provider's authorization page, with a cookie that binds the sign-in to this browser |
//! | `GET /api/auth/oidc/callback` | the provider's redirect: 303 to `<app>/#/sso/<token>` (the sign-in token, in the fragment so that it reaches no server log), or to `<app>/#/sso-error/<reason>` |

use axum::extract::{Query, State};
use axum::http::header::{COOKIE, LOCATION, SET_COOKIE};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use super::auth::issue_session;
use crate::error::ApiError;
use crate::state::AppState;
use crate::users::{UserRecord, SSO_ONLY_PASSWORD};

/// `GET /api/auth/providers`.
pub async fn providers(State(state): State<AppState>) -> Json<Value> {
    Json(json!({ "oidc": state.oidc.as_ref().map(|o| json!({ "name": o.name() })) }))
}

fn see_other(location: &str) -> Response {
    (StatusCode::SEE_OTHER, [(LOCATION, location.to_string())]).into_response()
}

/// The cookie that binds a sign-in to the browser that started it ([`crate::users::oidc`]).
const BROWSER_COOKIE: &str = "moongate_oidc";

fn browser_cookie(headers: &HeaderMap) -> String {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == BROWSER_COOKIE)
        .map(|(_, v)| v.to_string())
        .unwrap_or_default()
}

fn off() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "oidc_off",
        "sign-in through an identity provider is not configured",
    )
}

/// `GET /api/auth/oidc/start`.
pub async fn start(State(state): State<AppState>) -> Result<Response, ApiError> {
    let oidc = state.oidc.as_ref().ok_or_else(off)?;
    match oidc.start().await {
        Ok((url, browser)) => {
            let secure = if oidc.app_base().starts_with("https://") {
                "; Secure"
            } else {
                ""
            };
            let cookie = format!(
                "{BROWSER_COOKIE}={browser}; Path=/api/auth/oidc; Max-Age=600; HttpOnly; SameSite=Lax{secure}"
            );
            let mut r = see_other(&url);
            if let Ok(v) = cookie.parse() {
                r.headers_mut().insert(SET_COOKIE, v);
            }
            Ok(r)
        }
        Err(e) => {
            tracing::warn!("OIDC sign-in could not start: {e}");
            Ok(see_other(&format!(
                "{}/#/sso-error/{}",
                oidc.app_base(),
                urlencode(&e.to_string())
            )))
        }
    }
}

/// The provider's redirect.
#[derive(Debug, Deserialize)]
pub struct Callback {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
}

/// `GET /api/auth/oidc/callback`.
pub async fn callback(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<Callback>,
) -> Result<Response, ApiError> {
    let oidc = state.oidc.as_ref().ok_or_else(off)?;
    let base = oidc.app_base().to_string();
    let fail = |why: String| {
        tracing::info!("an OIDC sign-in failed: {why}");
        see_other(&format!("{base}/#/sso-error/{}", urlencode(&why)))
    };
    let (code, st) = match (q.code, q.state, q.error) {
        (_, _, Some(e)) => {
            let detail = q.error_description.unwrap_or_default();
            return Ok(fail(format!("the identity provider said {e}: {detail}")));
        }
        (Some(code), Some(st), None) => (code, st),
        _ => return Ok(fail("the identity provider sent no code".into())),
    };
    let name = match oidc.finish(&st, &code, &browser_cookie(&headers)).await {
        Ok(name) => name,
        Err(e) => return Ok(fail(e.to_string())),
    };
    let existing = state
        .store
        .get_user(&name)
        .await
        .map_err(ApiError::internal)?;
    let user = match (existing, oidc.auto_create_role()) {
        (Some(user), _) => user,
        (None, Some(role)) => {
            let user = UserRecord::new(name.clone(), role, None, SSO_ONLY_PASSWORD.into());
            state
                .store
                .put_user(user.clone())
                .await
                .map_err(ApiError::internal)?;
            tracing::info!(user = %name, role = role.as_str(), "user created at its first sign-in through the identity provider");
            user
        }
        (None, None) => {
            return Ok(fail(format!(
                "{name} has no moongate account; an administrator must add it first"
            )))
        }
    };
    let (token, _) = issue_session(&state, &user).await?;
    tracing::info!(user = %user.name, "signed in through the identity provider");
    Ok(see_other(&format!("{base}/#/sso/{token}")))
}

/// Percent-encodes everything but unreserved characters (RFC 3986).
fn urlencode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
