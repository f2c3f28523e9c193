//! `/api/admin/users`: named users managed by an admin ([`crate::users`]).
//!
//! | route | what |
//! |---|---|
//! | `GET /api/admin/users` | every user (no password hashes) |
//! | `POST /api/admin/users` | `{"name", "password", "role", "hosts"}` → 201; 409 if the name is taken |
//! | `PUT /api/admin/users/{name}` | any of `password`, `role`, `hosts` (`null`: every host); ends the user's sign-ins |
//! | `DELETE /api/admin/users/{name}` | removes the user and their sign-ins |

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;

use crate::error::ApiError;
use crate::state::AppState;
use crate::users::{password, valid_name, UserRecord, UserRole, NAME_RULE};

/// `POST /api/admin/users`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewUser {
    name: String,
    password: String,
    role: UserRole,
    #[serde(default)]
    hosts: Option<Vec<i64>>,
}

/// `PUT /api/admin/users/{name}`: absent fields stay; `"hosts": null` means every host.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserChange {
    password: Option<String>,
    role: Option<UserRole>,
    #[serde(default, deserialize_with = "present")]
    hosts: Option<Option<Vec<i64>>>,
}

/// A present field (even `null`) is `Some`.
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Option<Vec<i64>>>, D::Error> {
    Option::<Vec<i64>>::deserialize(d).map(Some)
}

const MAX_HOSTS: usize = 1000;

fn check_hosts(hosts: &Option<Vec<i64>>) -> Result<(), ApiError> {
    if hosts.as_ref().is_some_and(|h| h.len() > MAX_HOSTS) {
        return Err(ApiError::bad_request(format!(
            "at most {MAX_HOSTS} hosts per user"
        )));
    }
    Ok(())
}

async fn hash(password: String) -> Result<String, ApiError> {
    tokio::task::spawn_blocking(move || password::hash(&password))
        .await
        .map_err(ApiError::internal)?
        .map_err(|e| ApiError::bad_request(e.to_string()))
}

/// `GET /api/admin/users`.
pub async fn list(State(state): State<AppState>) -> Result<Json<Vec<UserRecord>>, ApiError> {
    Ok(Json(
        state.store.list_users().await.map_err(ApiError::internal)?,
    ))
}

/// `POST /api/admin/users`.
pub async fn create(
    State(state): State<AppState>,
    Json(body): Json<NewUser>,
) -> Result<(StatusCode, Json<UserRecord>), ApiError> {
    if !valid_name(&body.name) {
        return Err(ApiError::bad_request(format!(
            "a user name has {NAME_RULE}"
        )));
    }
    check_hosts(&body.hosts)?;
    if state
        .store
        .get_user(&body.name)
        .await
        .map_err(ApiError::internal)?
        .is_some()
    {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "user_exists",
            format!("a user {} exists", body.name),
        ));
    }
    let user = UserRecord::new(body.name, body.role, body.hosts, hash(body.password).await?);
    state
        .store
        .put_user(user.clone())
        .await
        .map_err(ApiError::internal)?;
    tracing::info!(user = %user.name, role = user.role.as_str(), "user added");
    Ok((StatusCode::CREATED, Json(user)))
}

/// `PUT /api/admin/users/{name}`.
pub async fn update(
    State(state): State<AppState>,
    Path(name): Path<String>,
    Json(change): Json<UserChange>,
) -> Result<Json<UserRecord>, ApiError> {
    let mut user = state
        .store
        .get_user(&name)
        .await
        .map_err(ApiError::internal)?
        .ok_or_else(|| no_user(&name))?;
    if let Some(p) = change.password {
        user.password_hash = hash(p).await?;
    }
    if let Some(r) = change.role {
        user.role = r;
    }
    if let Some(h) = change.hosts {
        check_hosts(&h)?;
        user.hosts = h;
    }
    state
        .store
        .put_user(user.clone())
        .await
        .map_err(ApiError::internal)?;
    // What a sign-in was given no longer holds: sign in again.
    state
        .store
        .remove_user_sessions(&name)
        .await
        .map_err(ApiError::internal)?;
    tracing::info!(user = %name, "user changed; their sign-ins ended");
    Ok(Json(user))
}

/// `DELETE /api/admin/users/{name}`.
pub async fn remove(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    if state
        .store
        .remove_user(&name)
        .await
        .map_err(ApiError::internal)?
    {
        tracing::info!(user = %name, "user removed");
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(no_user(&name))
    }
}

fn no_user(name: &str) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "user_not_found",
        format!("no user {name}"),
    )
}
