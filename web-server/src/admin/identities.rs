//! `GET /api/admin/identities` and `DELETE /api/admin/identities/{host_id}/{client_id}`: the
//! client identities kept in the store (never their keys), and revocation.

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::Serialize;

use crate::api::hosts::store_error;
use crate::error::ApiError;
use crate::identities::{revoke as revoke_identity, HostUnpair};
use crate::state::AppState;
use crate::store::PairingState;

/// One identity as the dashboard shows it.
#[derive(Debug, Clone, Serialize)]
pub struct AdminIdentity {
    /// Host id.
    pub host_id: i64,
    /// Host name, if the host is still in the store.
    pub host_name: Option<String>,
    /// The browser's client id (or the gateway's own).
    pub client_id: String,
    /// Pairing state with the host.
    pub pairing: PairingState,
    /// First stored (Unix seconds).
    pub created_at: i64,
    /// Last used by a stream or pairing (Unix seconds).
    pub last_used: i64,
    /// When it expires if unused (Unix seconds).
    pub expires_at: i64,
}

/// `GET /api/admin/identities`.
pub async fn list(State(state): State<AppState>) -> Result<Json<Vec<AdminIdentity>>, ApiError> {
    let hosts = state.store.list_hosts().await.map_err(store_error)?;
    let idle = i64::try_from(state.config.identity_idle.as_secs()).unwrap_or(i64::MAX);
    let list = state
        .store
        .list_identities()
        .await
        .map_err(store_error)?
        .into_iter()
        .map(|i| AdminIdentity {
            host_name: hosts
                .iter()
                .find(|h| h.id == i.host_id)
                .map(|h| h.name.clone()),
            host_id: i.host_id,
            client_id: i.client_id,
            pairing: i.pairing,
            created_at: i.created_at,
            expires_at: i.last_used.saturating_add(idle),
            last_used: i.last_used,
        })
        .collect();
    Ok(Json(list))
}

/// The answer to a revocation.
#[derive(Debug, Clone, Serialize)]
pub struct Revoked {
    /// Host id.
    pub host_id: i64,
    /// Client id.
    pub client_id: String,
    /// How the host was told (`wolf_api`, `nvhttp`, `not_done`).
    pub host_unpair: HostUnpair,
}

/// `DELETE /api/admin/identities/{host_id}/{client_id}`: unpairs on the host, removes from the
/// store and from the certificate cache.
pub async fn revoke(
    State(state): State<AppState>,
    path: Result<Path<(i64, String)>, PathRejection>,
) -> Result<Json<Revoked>, ApiError> {
    let Path((host_id, client_id)) =
        path.map_err(|e| ApiError::bad_request(format!("bad identity path: {e}")))?;
    tracing::info!(
        host_id,
        client_id,
        "an administrator revokes a client identity"
    );
    match revoke_identity(&state, host_id, &client_id)
        .await
        .map_err(store_error)?
    {
        Some(host_unpair) => Ok(Json(Revoked {
            host_id,
            client_id,
            host_unpair,
        })),
        None => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "identity_not_found",
            format!("no identity of client {client_id:?} with host {host_id}"),
        )),
    }
}
