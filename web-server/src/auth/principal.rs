//! Who is asking: a [`Principal`] resolved from a request's credential.
//!
//! In order: a trusted reverse proxy's user header (only from a peer address listed in
//! `[users] trusted_proxies`; from anywhere else the header is ignored, so a browser cannot name
//! itself), then the bearer token: the admin credential, the shared user credential, or a named
//! user's sign-in token ([`crate::users`]).

use std::net::SocketAddr;

use axum::http::{HeaderMap, StatusCode};

use super::{bearer_token, Role};
use crate::error::ApiError;
use crate::state::AppState;
use crate::store::now_unix;
use crate::users::{token_hash, valid_name, UserRecord, UserRole};

/// The authenticated caller of a request or stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// What they may do.
    pub role: Role,
    /// The named user; `None` for the shared credentials.
    pub user: Option<String>,
    /// The hosts they may use; `None`: every host.
    pub hosts: Option<Vec<i64>>,
}

impl Principal {
    /// A holder of a shared credential: every host.
    pub fn shared(role: Role) -> Self {
        Principal {
            role,
            user: None,
            hosts: None,
        }
    }

    fn of(user: UserRecord) -> Self {
        Principal {
            role: match user.role {
                UserRole::Admin => Role::Admin,
                UserRole::User => Role::User,
                UserRole::Viewer => Role::Viewer,
            },
            hosts: user.hosts,
            user: Some(user.name),
        }
    }

    /// Whether they may see and use the host `id`.
    pub fn may_use_host(&self, id: i64) -> bool {
        self.hosts.as_ref().is_none_or(|h| h.contains(&id))
    }

    /// 403 `host_not_permitted` unless they may use the host `id`.
    pub fn check_host(&self, id: i64) -> Result<(), ApiError> {
        if self.may_use_host(id) {
            Ok(())
        } else {
            Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "host_not_permitted",
                format!("this account may not use host {id}"),
            ))
        }
    }

    /// 403 `read_only` for a viewer-only account.
    pub fn check_may_change(&self) -> Result<(), ApiError> {
        if self.role == Role::Viewer {
            Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "read_only",
                "a viewer-only account may not change or start anything",
            ))
        } else {
            Ok(())
        }
    }
}

/// The caller of a request from `peer` (`None`: unknown, so no proxy is trusted).
pub async fn resolve(
    state: &AppState,
    headers: &HeaderMap,
    peer: Option<SocketAddr>,
) -> Result<Principal, ApiError> {
    let users = &state.config.users;
    if peer.is_some_and(|p| users.trusted_proxies.contains(&p.ip())) {
        if let Some(value) = headers.get(users.proxy_user_header.as_str()) {
            let name = value.to_str().map_err(|_| ApiError::unauthorized())?.trim();
            return named_user(state, name).await;
        }
    }
    resolve_token(state, bearer_token(headers)?).await
}

/// The caller holding `token` (a bearer header's, or a stream's first message's credential).
pub async fn resolve_token(state: &AppState, token: &str) -> Result<Principal, ApiError> {
    if state.admin_credentials.matches(token) {
        return Ok(Principal::shared(Role::Admin));
    }
    if state.credentials.matches(token) {
        return Ok(Principal::shared(Role::User));
    }
    // A sign-in token is 64 hex digits; anything else is not looked up.
    if token.len() != 64 || !token.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(ApiError::unauthorized());
    }
    let user = state
        .store
        .session_user(&token_hash(token), now_unix())
        .await
        .map_err(ApiError::internal)?
        .ok_or_else(ApiError::unauthorized)?;
    named_user(state, &user).await
}

async fn named_user(state: &AppState, name: &str) -> Result<Principal, ApiError> {
    if !valid_name(name) {
        return Err(ApiError::unauthorized());
    }
    let user = state
        .store
        .get_user(name)
        .await
        .map_err(ApiError::internal)?
        .ok_or_else(ApiError::unauthorized)?;
    Ok(Principal::of(user))
}
