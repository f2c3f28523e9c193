//! `GET /api/admin/clients` (the client-certificate cache) and `GET /api/admin/hosts` (each host's
//! status, pairing and apps, and — for hosts with a Wolf API — Wolf's own sessions, lobbies and
//! pending pair requests), plus the Wolf actions the dashboard offers (stop a session or lobby,
//! join a lobby).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::extract::rejection::{JsonRejection, PathRejection};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::Serialize;

use crate::api::hosts::{self as api_hosts, AppView, HostStatus, HostView};
use crate::autopair::WolfApiClient;
use crate::error::ApiError;
use crate::state::AppState;

/// A cached client identity.
#[derive(Debug, Clone, Serialize)]
pub struct ClientView {
    /// The browser's client id.
    pub client_id: String,
    /// The certificate's common name.
    pub cn: Option<String>,
    /// Unix seconds.
    pub created_at: u64,
    /// Unix seconds.
    pub last_used_at: u64,
    /// Seconds until it may be evicted (idle TTL).
    pub expires_in_secs: u64,
    /// Live streams of this client id.
    pub streams: usize,
}

fn unix_secs_ago(ago: Duration) -> u64 {
    SystemTime::now()
        .checked_sub(ago)
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn common_name(der: &[u8]) -> Option<String> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let cn = cert.subject().iter_common_name().next()?;
    cn.as_str().ok().map(str::to_string)
}

/// `GET /api/admin/clients`.
pub async fn clients(State(state): State<AppState>) -> Json<Vec<ClientView>> {
    let live = state.sessions.list();
    Json(
        state
            .certs
            .list()
            .into_iter()
            .map(|c| ClientView {
                cn: common_name(&c.cert_der),
                created_at: unix_secs_ago(c.age),
                last_used_at: unix_secs_ago(c.idle),
                expires_in_secs: c.expires_in.as_secs(),
                streams: live.iter().filter(|s| s.client_id == c.client_id).count(),
                client_id: c.client_id,
            })
            .collect(),
    )
}

/// What Wolf's API says (absent parts failed; `error` says why).
#[derive(Debug, Clone, Default, Serialize)]
pub struct WolfView {
    /// Where the API is (socket path or URL).
    pub location: String,
    /// `GET /api/v1/sessions` → `sessions`.
    pub sessions: Option<serde_json::Value>,
    /// `GET /api/v1/lobbies` → `lobbies`.
    pub lobbies: Option<serde_json::Value>,
    /// `GET /api/v1/pair/pending` → `requests`, without the pair secrets.
    pub pending_pairs: Option<serde_json::Value>,
    /// First failure.
    pub error: Option<String>,
}

/// A host in the admin view.
#[derive(Debug, Clone, Serialize)]
pub struct AdminHost {
    /// The stored host.
    #[serde(flatten)]
    pub host: HostView,
    /// `/serverinfo`.
    pub status: Option<HostStatus>,
    /// `/applist` (when online).
    pub apps: Vec<AppView>,
    /// Live streams on this host (registry).
    pub streams: usize,
    /// Wolf API view, for hosts that have one.
    pub wolf: Option<WolfView>,
}

fn wolf_location(state: &AppState, host: &HostView) -> Option<String> {
    state
        .pin_submitter_for(&host.address, host.http_port)
        .and_then(|p| p.wolf_api())
}

async fn wolf_view(location: String) -> WolfView {
    let mut view = WolfView {
        location: location.clone(),
        ..WolfView::default()
    };
    let api = match WolfApiClient::parse(&location) {
        Ok(a) => a,
        Err(e) => {
            view.error = Some(e.to_string());
            return view;
        }
    };
    let (sessions, lobbies, pending) = tokio::join!(
        api.call("GET", "/api/v1/sessions", None),
        api.call("GET", "/api/v1/lobbies", None),
        api.call("GET", "/api/v1/pair/pending", None),
    );
    let mut take = |r: Result<serde_json::Value, _>, field: &str| match r {
        Ok(mut v) => v.get_mut(field).map(serde_json::Value::take),
        Err(e) => {
            let e: crate::autopair::WolfApiError = e;
            view.error.get_or_insert_with(|| e.to_string());
            None
        }
    };
    let mut sessions = take(sessions, "sessions");
    let lobbies = take(lobbies, "lobbies");
    let mut pending = take(pending, "requests");
    // Secrets stay out of the view: a session's stream keys, a pairing's secret (it lets anyone
    // answer the pairing).
    redact(&mut sessions, &["aes_key", "aes_iv"]);
    redact(&mut pending, &["pair_secret"]);
    view.sessions = sessions;
    view.lobbies = lobbies;
    view.pending_pairs = pending;
    view
}

fn redact(list: &mut Option<serde_json::Value>, fields: &[&str]) {
    if let Some(serde_json::Value::Array(items)) = list {
        for item in items.iter_mut() {
            if let Some(o) = item.as_object_mut() {
                for f in fields {
                    o.remove(*f);
                }
            }
        }
    }
}

async fn admin_host(state: &AppState, host: HostView) -> AdminHost {
    let id = host.id;
    let status = api_hosts::status(State(state.clone()), Ok(Path(id)))
        .await
        .ok()
        .map(|Json(s)| s);
    let apps = if status.as_ref().is_some_and(|s| s.online) {
        api_hosts::apps(State(state.clone()), Ok(Path(id)))
            .await
            .map(|Json(a)| a)
            .unwrap_or_default()
    } else {
        Vec::new()
    };
    let wolf = match wolf_location(state, &host) {
        Some(location) => Some(wolf_view(location).await),
        None => None,
    };
    let streams = state
        .sessions
        .list()
        .iter()
        .filter(|s| s.meta.host_id == id)
        .count();
    AdminHost {
        host,
        status,
        apps,
        streams,
        wolf,
    }
}

/// `GET /api/admin/hosts` (hosts are asked in parallel; each request is bounded by the host
/// request timeout).
pub async fn hosts(State(state): State<AppState>) -> Result<Json<Vec<AdminHost>>, ApiError> {
    let admin = crate::auth::Principal::shared(crate::auth::Role::Admin);
    let Json(list) = api_hosts::list(State(state.clone()), axum::Extension(admin)).await?;
    let views =
        futures_util::future::join_all(list.into_iter().map(|h| admin_host(&state, h))).await;
    Ok(Json(views))
}

/// `POST /api/admin/hosts/{id}/wolf/{kind}/{action}`: `sessions/stop` (`{"session_id"}`),
/// `lobbies/stop` (`{"lobby_id"}`), `lobbies/join` / `lobbies/leave`
/// (`{"lobby_id","moonlight_session_id"}`); the body goes to Wolf unchanged.
pub async fn wolf_action(
    State(state): State<AppState>,
    p: Result<Path<(i64, String, String)>, PathRejection>,
    body: Result<Json<serde_json::Value>, JsonRejection>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let (id, kind, action) = crate::api::path(p)?;
    let body = crate::api::body(body)?;
    let allowed = matches!(
        (kind.as_str(), action.as_str()),
        ("sessions", "stop") | ("lobbies", "stop" | "join" | "leave")
    );
    if !allowed {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "unknown_action",
            "actions: sessions/stop, lobbies/stop, lobbies/join, lobbies/leave",
        ));
    }
    let host = api_hosts::load_host(&state, id).await?;
    let location = state
        .pin_submitter_for(&host.address, host.http_port)
        .and_then(|p| p.wolf_api())
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::CONFLICT,
                "no_wolf_api",
                "this host has no Wolf API configured",
            )
        })?;
    let api = WolfApiClient::parse(&location).map_err(ApiError::internal)?;
    tracing::info!(host = id, kind = %kind, action = %action, "admin Wolf action");
    api.call("POST", &format!("/api/v1/{kind}/{action}"), Some(&body))
        .await
        .map(Json)
        .map_err(|e| ApiError::new(StatusCode::BAD_GATEWAY, "wolf_api_failed", e.to_string()))
}
