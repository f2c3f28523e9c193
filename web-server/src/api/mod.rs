//! The REST API. Every `/api` route requires `Authorization: Bearer <credentials>`; `/healthz`
//! does not. Errors are `{"code", "message"}` ([`ApiError`]).
//!
//! | route | what |
//! |---|---|
//! | `GET/POST /api/hosts` | list / add hosts |
//! | `DELETE /api/hosts/{id}` | remove a host (and stop its running pairing) |
//! | `GET /api/hosts/{id}/status` | `/serverinfo`: online, paired, busy, current app, app version |
//! | `POST /api/hosts/{id}/wake` | Wake-on-LAN to the configured target |
//! | `POST /api/hosts/{id}/pair` | generate a PIN, pair in the background ([`pair`]) |
//! | `GET /api/hosts/{id}/pair/events` | pairing progress (SSE) |
//! | `GET /api/hosts/{id}/apps` | `/applist` |
//! | `GET /api/hosts/{id}/apps/{app}/boxart` | `/appasset` (PNG) |
//! | `POST /api/hosts/{id}/cancel` | `/cancel` (quit the running app) |
//! | `GET /api/sessions` | the session registry |
//! | `GET /api/ws/stream` | WebSocket-only streaming (Helix-compatible; [`ws_stream`]) |
//! | `GET /api/ws/watch` | watch a WebSocket-mode stream with its join token ([`ws_watch`]) |
//! | `GET /api/host/stream` | WebRTC-mode signaling socket (Helix-compatible; [`host_stream`]) |
//! | `POST /api/whep`, `PATCH/DELETE /api/whep/{id}` | WHEP-style WebRTC playback ([`whep`]) |
//! | `POST /api/auth/login`, `POST /api/auth/logout`, `GET /api/auth/me` | named users' sign-in ([`auth`]; login needs no credential) |
//! | `GET /api/auth/providers`, `GET /api/auth/oidc/start`, `GET /api/auth/oidc/callback` | sign-in through an OpenID Connect provider ([`oidc`]; no credential needed) |
//! | `GET /healthz` | liveness |
//! | `GET /readyz` | readiness: store open, streamer executable ([`crate::admin::readyz`]) |
//! | `/api/admin/*`, `GET /metrics` | admin credential only ([`crate::admin`]) |
//! | `GET /*` (not `/api`) | the built web client ([`crate::web_ui`]) |

pub mod auth;
pub mod host_stream;
pub mod hosts;
pub mod oidc;
pub mod pair;
mod socket;
pub mod whep;
mod ws_hub;
mod ws_member;
pub mod ws_stream;
pub mod ws_watch;

pub(crate) use ws_hub::Hub;
pub use ws_hub::Watches;

use axum::extract::rejection::{JsonRejection, PathRejection};
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{any, delete, get, patch, post};
use axum::{middleware, Json, Router};

use crate::error::ApiError;
use crate::sessions::SessionInfo;
use crate::state::AppState;

/// The client id under which the gateway's own identity (used by the REST API) is stored per host.
pub const GATEWAY_CLIENT_ID: &str = "moongate";

/// The authenticated REST routes (without state), for the integrator to extend.
pub fn rest_routes(state: &AppState) -> Router<AppState> {
    Router::new()
        .route("/api/hosts", get(hosts::list).post(hosts::add))
        .route("/api/hosts/{id}", delete(hosts::remove))
        .route("/api/hosts/{id}/status", get(hosts::status))
        .route("/api/hosts/{id}/wake", post(hosts::wake))
        .route("/api/hosts/{id}/pair", post(pair::start))
        .route("/api/hosts/{id}/pair/events", get(pair::events))
        .route("/api/hosts/{id}/apps", get(hosts::apps))
        .route("/api/hosts/{id}/apps/{app}/boxart", get(hosts::boxart))
        .route("/api/hosts/{id}/cancel", post(hosts::cancel))
        .route("/api/sessions", get(sessions))
        .route("/api/auth/logout", post(auth::logout))
        .route("/api/auth/me", get(auth::me))
        .route("/api/whep", post(whep::offer))
        .route("/api/whep/{id}", patch(whep::patch).delete(whep::delete))
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            crate::auth::require_bearer,
        ))
}

/// The whole router. WebSocket routes (with their own authentication: [`crate::auth::AllowedOrigin`]
/// and [`crate::auth::validate_first_message`]) are merged in by the integrator.
pub fn router(state: AppState) -> Router {
    let web_ui = crate::web_ui::routes(&state.config.web_root);
    rest_routes(&state)
        .merge(crate::admin::routes(&state))
        .route("/api/ws/stream", get(ws_stream::handler))
        .route("/api/ws/watch", get(ws_watch::handler))
        .route("/api/host/stream", get(host_stream::handler))
        .route("/api/auth/login", post(auth::login))
        .route("/api/auth/providers", get(oidc::providers))
        .route("/api/auth/oidc/start", get(oidc::start))
        .route("/api/auth/oidc/callback", get(oidc::callback))
        .route("/healthz", get(healthz))
        .route("/readyz", get(crate::admin::readyz))
        .route("/api", any(not_found))
        .route("/api/{*rest}", any(not_found))
        .merge(web_ui)
        .with_state(state)
}

async fn healthz() -> &'static str {
    "ok"
}

async fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such route")
}

/// This node's streams, and in a cluster every node's (each entry names its node).
/// The live streams, on the hosts the caller may use.
async fn sessions(
    State(state): State<AppState>,
    axum::Extension(who): axum::Extension<crate::auth::Principal>,
) -> Result<Json<Vec<SessionInfo>>, ApiError> {
    let all = match &state.cluster {
        None => state.sessions.list(),
        Some(cluster) => cluster
            .list()
            .await
            .map_err(|e| {
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "cluster_unavailable",
                    e.to_string(),
                )
            })?
            .into_iter()
            .map(|s| s.info)
            .collect(),
    };
    Ok(Json(
        all.into_iter()
            .filter(|s| who.may_use_host(s.meta.host_id))
            .collect(),
    ))
}

/// A path parameter rejection as a JSON error.
pub(crate) fn path<T>(p: Result<axum::extract::Path<T>, PathRejection>) -> Result<T, ApiError> {
    p.map(|axum::extract::Path(v)| v)
        .map_err(|e| ApiError::bad_request(e.body_text()))
}

/// A JSON body rejection as a JSON error.
pub(crate) fn body<T>(b: Result<Json<T>, JsonRejection>) -> Result<T, ApiError> {
    b.map(|Json(v)| v)
        .map_err(|e| ApiError::bad_request(e.body_text()))
}
