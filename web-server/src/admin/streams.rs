//! `POST /api/admin/streams/{key}/controller`: an administrator decides who of a shared stream's
//! viewers controls it (docs/browser-protocol.md §8.3), overriding the hand-over rules, e.g.
//! to take control from a viewer who will not give it back; and
//! `POST /api/admin/streams/{key}/quality`: the administrator moves an adaptive stream to a rung
//! of its quality ladder (docs/adaptive-quality.md).

use axum::extract::rejection::{JsonRejection, PathRejection};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;

use crate::api::Hub;
use crate::error::ApiError;
use crate::state::AppState;
use crate::stream::adapt::RungError;

/// `{"viewer": N}` gives member N control; `{"viewer": null}` takes it from everyone.
#[derive(Debug, Deserialize)]
pub struct SetController {
    pub viewer: Option<u64>,
}

/// `{"rung": N}`: move an adaptive stream to rung N of its quality ladder (0 = what its client
/// asked for); adaptation goes on from there.
#[derive(Debug, Deserialize)]
pub struct SetQuality {
    pub rung: usize,
}

/// `POST /api/admin/streams/{key}/quality`: 204; 404 for a stream not on this node; 409 for a
/// stream that does not adapt; 400 for a rung its ladder does not have.
pub async fn set_quality(
    State(state): State<AppState>,
    key: Result<Path<String>, PathRejection>,
    body: Result<Json<SetQuality>, JsonRejection>,
) -> Result<StatusCode, ApiError> {
    let key = crate::api::path(key)?;
    let body = crate::api::body(body)?;
    // A WebSocket-mode stream through its hub; a WebRTC one through its registered control.
    let forced = match state.watches.get(&key) {
        Some(hub) => hub.force_rung(body.rung),
        None => match state.rung_controls.get(&key) {
            Some(control) => control.force(body.rung),
            None => {
                return Err(ApiError::new(
                    StatusCode::NOT_FOUND,
                    "no_such_stream",
                    "no stream with that key on this gateway",
                ))
            }
        },
    };
    forced.map_err(|e| match e {
        RungError::NotAdaptive => {
            ApiError::new(StatusCode::CONFLICT, "not_adaptive", e.to_string())
        }
        RungError::NoSuchRung(_) => {
            ApiError::new(StatusCode::BAD_REQUEST, "no_such_rung", e.to_string())
        }
    })?;
    Ok(StatusCode::NO_CONTENT)
}

/// The shared WebSocket-mode stream `key` on this gateway.
fn find(state: &AppState, key: &str) -> Result<std::sync::Arc<Hub>, ApiError> {
    state.watches.get(key).ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "no_such_stream",
            "no shared WebSocket-mode stream with that key on this gateway",
        )
    })
}

/// 204, or 404 for a stream not on this node or a member not on it.
pub async fn set_controller(
    State(state): State<AppState>,
    key: Result<Path<String>, PathRejection>,
    body: Result<Json<SetController>, JsonRejection>,
) -> Result<StatusCode, ApiError> {
    let key = crate::api::path(key)?;
    let body = crate::api::body(body)?;
    let hub = find(&state, &key)?;
    hub.force_control(body.viewer)
        .map_err(|e| ApiError::new(StatusCode::NOT_FOUND, "no_such_viewer", e.to_string()))?;
    Ok(StatusCode::NO_CONTENT)
}
