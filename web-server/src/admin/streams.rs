//! `POST /api/admin/streams/{key}/controller`: an administrator decides who of a shared stream's
//! viewers controls it (docs/browser-protocol.md §8.3), overriding the hand-over rules, e.g.
//! to take control from a viewer who will not give it back.

use axum::extract::rejection::{JsonRejection, PathRejection};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;

use crate::error::ApiError;
use crate::state::AppState;

/// `{"viewer": N}` gives member N control; `{"viewer": null}` takes it from everyone.
#[derive(Debug, Deserialize)]
pub struct SetController {
    pub viewer: Option<u64>,
}

/// 204, or 404 for a stream not on this node or a member not on it.
pub async fn set_controller(
    State(state): State<AppState>,
    key: Result<Path<String>, PathRejection>,
    body: Result<Json<SetController>, JsonRejection>,
) -> Result<StatusCode, ApiError> {
    let key = crate::api::path(key)?;
    let body = crate::api::body(body)?;
    let hub = state.watches.get(&key).ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "no_such_stream",
            "no shared WebSocket-mode stream with that key on this gateway",
        )
    })?;
    hub.force_control(body.viewer)
        .map_err(|e| ApiError::new(StatusCode::NOT_FOUND, "no_such_viewer", e.to_string()))?;
    Ok(StatusCode::NO_CONTENT)
}
