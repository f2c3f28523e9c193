//! Signing in as a named user ([`crate::users`]).
//!
//! | route | what |
//! |---|---|
//! | `POST /api/auth/login` | `{"username", "password"}` → `{"token", "user", "role", "hosts", "expires_at"}`; the token is then the bearer credential (and a stream's first-message credential) until it expires or is signed out |
//! | `POST /api/auth/logout` | ends the bearer's sign-in session (204) |
//! | `GET /api/auth/me` | who the bearer is: `{"user", "role", "hosts"}` |
//!
//! A wrong name and a wrong password get the same answer in the same time (the password is
//! checked against a decoy hash when the user does not exist). Failed sign-ins are throttled
//! ([`crate::users::throttle`]): 429 with `Retry-After`.

use std::net::SocketAddr;
use std::time::Instant;

use axum::extract::{ConnectInfo, State};
use axum::http::{header::RETRY_AFTER, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::{Deserialize, Serialize};

use crate::auth::{bearer_token, Principal, Role};
use crate::error::ApiError;
use crate::state::AppState;
use crate::store::now_unix;
use crate::users::{new_session_token, password, token_hash, valid_name};

/// `POST /api/auth/login`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Login {
    username: String,
    password: String,
}

/// Who the caller is.
#[derive(Debug, Serialize)]
pub struct Me {
    /// The named user; `null` for a shared credential.
    user: Option<String>,
    /// `admin`, `user` or `viewer`.
    role: &'static str,
    /// The hosts they may use; `null`: every host.
    hosts: Option<Vec<i64>>,
}

impl From<&Principal> for Me {
    fn from(p: &Principal) -> Self {
        Me {
            user: p.user.clone(),
            role: role_name(p.role),
            hosts: p.hosts.clone(),
        }
    }
}

/// The API's spelling of a role.
pub fn role_name(role: Role) -> &'static str {
    match role {
        Role::Admin => "admin",
        Role::User => "user",
        Role::Viewer => "viewer",
    }
}

/// A sign-in's answer.
#[derive(Debug, Serialize)]
struct Session {
    token: String,
    #[serde(flatten)]
    me: Me,
    /// Unix seconds.
    expires_at: i64,
}

/// `POST /api/auth/login`.
pub async fn login(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Json(body): Json<Login>,
) -> Result<Response, ApiError> {
    let address = peer.ip().to_string();
    if let Err(wait) = state
        .sign_ins
        .check(&address, &body.username, Instant::now())
    {
        let mut r = ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "too_many_sign_ins",
            "too many failed sign-ins; wait before trying again",
        )
        .into_response();
        if let Ok(v) = wait.as_secs().max(1).to_string().parse() {
            r.headers_mut().insert(RETRY_AFTER, v);
        }
        return Ok(r);
    }
    let user = if valid_name(&body.username) {
        state
            .store
            .get_user(&body.username)
            .await
            .map_err(ApiError::internal)?
    } else {
        None
    };
    // No user, or one who signs in only through the identity provider: the decoy's hash, so the
    // answer takes as long as for a wrong password.
    let hash = user
        .as_ref()
        .map(|u| u.password_hash.clone())
        .filter(|h| h != crate::users::SSO_ONLY_PASSWORD)
        .unwrap_or_else(|| password::decoy().to_string());
    let candidate = body.password;
    let matches = tokio::task::spawn_blocking(move || password::verify(&candidate, &hash))
        .await
        .map_err(ApiError::internal)?;
    let Some(user) = user.filter(|_| matches) else {
        state
            .sign_ins
            .failed(&address, &body.username, Instant::now());
        tracing::info!(%address, "a sign-in failed");
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "invalid_credentials",
            "wrong user name or password",
        ));
    };
    state.sign_ins.succeeded(&user.name);
    let (token, expires_at) = issue_session(&state, &user).await?;
    tracing::info!(user = %user.name, "signed in");
    let me = Me {
        user: Some(user.name.clone()),
        role: user.role.as_str(),
        hosts: user.hosts.clone(),
    };
    Ok(Json(Session {
        token,
        me,
        expires_at,
    })
    .into_response())
}

/// A new sign-in session for `user`: its token (kept by the browser; only its hash is stored)
/// and its expiry (Unix s).
pub(crate) async fn issue_session(
    state: &AppState,
    user: &crate::users::UserRecord,
) -> Result<(String, i64), ApiError> {
    let (token, hash) = new_session_token();
    let expires_at = now_unix() + state.config.users.session.as_secs() as i64;
    state
        .store
        .create_session(&hash, &user.name, expires_at)
        .await
        .map_err(ApiError::internal)?;
    Ok((token, expires_at))
}

/// `POST /api/auth/logout`: only a sign-in token can be signed out (the shared credentials
/// cannot: 400).
pub async fn logout(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    headers: HeaderMap,
) -> Result<StatusCode, ApiError> {
    if who.user.is_none() {
        return Err(ApiError::bad_request(
            "a shared credential has no sign-in session to end",
        ));
    }
    let token = bearer_token(&headers)?;
    state
        .store
        .remove_session(&token_hash(token))
        .await
        .map_err(ApiError::internal)?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /api/auth/me`.
pub async fn me(Extension(who): Extension<Principal>) -> Json<Me> {
    Json(Me::from(&who))
}
