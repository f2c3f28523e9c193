//! The operator's API: everything under `/api/admin/` plus `/metrics`, behind the admin
//! credential ([`crate::auth::require_admin`]: none → 401, the user credential → 403).
//!
//! Every view reads the state the streams live in — the session registry
//! ([`crate::sessions`]), decorated by the per-node [`live::LiveTable`] — never a copy kept
//! elsewhere (a dashboard that read state the streaming path never updated showed "0 clients"
//! while clients streamed).
//!
//! | route | what |
//! |---|---|
//! | `GET /api/admin/sessions` | every live stream: key parts, mode, host, app, start, streamer pid/threads/RSS, fps in/out, bitrate, queue delay, drops, IDR requests, RTT |
//! | `DELETE /api/admin/sessions/{key}` | end it through the one teardown path (browser: 4001 "stopped by an administrator"); answers once it has ended |
//! | `POST /api/admin/streams/{key}/controller` | `{"viewer":N}` or `{"viewer":null}`: who of a shared stream's viewers controls it ([`streams`]) |
//! | `POST /api/admin/streams/{key}/quality` | `{"rung":N}`: an adaptive stream moves to rung N of its quality ladder ([`streams`]) |
//! | `GET /api/admin/clients` | the client-certificate cache |
//! | `GET /api/admin/hosts` | hosts: status, paired, apps; with a Wolf API: its sessions, lobbies, pending pair requests |
//! | `POST /api/admin/hosts/{id}/wolf/{action}` | Wolf API actions: `sessions/stop`, `lobbies/stop`, `lobbies/join` (body passed through) |
//! | `GET /api/admin/identities` | client identities in the store: host, client id, pairing, created, last use, expiry (never the key) |
//! | `DELETE /api/admin/identities/{host_id}/{client_id}` | revoke: unpair on the host (Wolf API, else NVHTTP `/unpair`), remove from the store and the certificate cache |
//! | `GET /api/admin/logs?session=&tail=` | live log lines (SSE `event: log`), the last `tail` (default 200) first |
//! | `GET /api/admin/logs/recent?session=&tail=` | the same lines as JSON, no stream |
//! | `GET /metrics` | Prometheus text format ([`crate::metrics`]) |

pub mod hosts;
pub mod identities;
pub mod live;
pub mod logs;
pub mod observer;
pub mod streams;
pub mod users;

use std::convert::Infallible;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::extract::rejection::PathRejection;
use axum::extract::{Query, State};
use axum::http::{header, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{middleware, Json, Router};
use futures_util::Stream;
use serde::{Deserialize, Serialize};

use crate::error::ApiError;
use crate::sessions::{SessionInfo, SessionKey, StopReason};
use crate::state::AppState;

/// How long `DELETE /api/admin/sessions/{key}` waits for the stream to end.
const KILL_WAIT: Duration = Duration::from_secs(10);

/// The admin routes (with their middleware), merged into the main router.
pub fn routes(state: &AppState) -> Router<AppState> {
    Router::new()
        .route("/api/admin/sessions", get(sessions))
        .route("/api/admin/sessions/{key}", delete(kill))
        .route(
            "/api/admin/streams/{key}/controller",
            post(streams::set_controller),
        )
        .route(
            "/api/admin/streams/{key}/quality",
            post(streams::set_quality),
        )
        .route("/api/admin/clients", get(hosts::clients))
        .route("/api/admin/hosts", get(hosts::hosts))
        .route(
            "/api/admin/hosts/{id}/wolf/{kind}/{action}",
            post(hosts::wolf_action),
        )
        .route("/api/admin/users", get(users::list).post(users::create))
        .route(
            "/api/admin/users/{name}",
            axum::routing::put(users::update).delete(users::remove),
        )
        .route("/api/admin/identities", get(identities::list))
        .route(
            "/api/admin/identities/{host_id}/{client_id}",
            delete(identities::revoke),
        )
        .route("/api/admin/logs", get(logs_sse))
        .route("/api/admin/logs/recent", get(logs_recent))
        .route("/metrics", get(metrics))
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            crate::auth::require_admin,
        ))
}

/// A live stream as the admin view shows it.
#[derive(Debug, Clone, Serialize)]
pub struct AdminSession {
    /// `{session}-{lobby}-{client}`.
    pub key: String,
    /// Session id.
    pub session_id: String,
    /// Lobby id (may be empty).
    pub lobby_id: String,
    /// Client id.
    pub client_id: String,
    /// Registry entry id (unique on its node).
    pub entry_id: u64,
    /// The gateway node that runs it.
    pub node: String,
    /// `websocket` or `webrtc`.
    pub mode: String,
    /// Host id in the store.
    pub host_id: i64,
    /// Host name (if the host is still in the store).
    pub host_name: Option<String>,
    /// App id.
    pub app_id: u32,
    /// Unix seconds.
    pub started_at: u64,
    /// Seconds since start.
    pub uptime_secs: u64,
    /// The browser's address.
    pub remote: Option<String>,
    /// A stop was requested (it is ending).
    pub stopping: bool,
    /// Streamer threads (from `/proc/<pid>/status`).
    pub threads: Option<u32>,
    /// Streamer resident memory, KiB.
    pub rss_kb: Option<u64>,
    /// Browser connections watching a WebSocket-mode stream of this node, owner included
    /// (docs/browser-protocol.md §8).
    pub viewers: Option<usize>,
    /// Pid, rates and counters (absent when the stream runs on another node).
    #[serde(flatten)]
    pub live: live::LiveStats,
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// `GET /api/admin/sessions`.
pub async fn sessions(State(state): State<AppState>) -> Result<Json<Vec<AdminSession>>, ApiError> {
    let names: std::collections::HashMap<i64, String> = state
        .store
        .list_hosts()
        .await
        .map_err(ApiError::internal)?
        .into_iter()
        .map(|h| (h.id, h.name))
        .collect();
    let now = unix_now();
    let mut list: Vec<AdminSession> = state
        .sessions
        .list()
        .into_iter()
        .map(|s| {
            let live = state.live.get(s.entry_id).unwrap_or_default();
            let usage = live.pid.and_then(live::proc_usage);
            let stopping = state
                .sessions
                .handle(&s.key)
                .is_some_and(|h| h.stop_requested().is_some());
            let viewers = state
                .watches
                .get(&s.key.to_string())
                .map(|h| h.member_count());
            let mut row = admin_session(s, &names, now, stopping, usage, live);
            row.viewers = viewers;
            row
        })
        .collect();
    // The other nodes' streams (a pid and rates are per node: only the entry is shown).
    if let Some(cluster) = &state.cluster {
        let remote = cluster.list().await.map_err(|e| {
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "cluster_unavailable",
                e.to_string(),
            )
        })?;
        list.extend(
            remote
                .into_iter()
                .filter(|s| s.info.node != cluster.node())
                .map(|s| {
                    let live = live::LiveStats {
                        pid: s.streamer_pid,
                        ..Default::default()
                    };
                    admin_session(s.info, &names, now, false, None, live)
                }),
        );
        list.sort_by(|a, b| a.key.cmp(&b.key).then(a.node.cmp(&b.node)));
    }
    Ok(Json(list))
}

fn admin_session(
    s: SessionInfo,
    names: &std::collections::HashMap<i64, String>,
    now: u64,
    stopping: bool,
    usage: Option<live::ProcUsage>,
    live: live::LiveStats,
) -> AdminSession {
    AdminSession {
        key: s.key.to_string(),
        host_name: names.get(&s.meta.host_id).cloned(),
        session_id: s.session_id,
        lobby_id: s.lobby_id,
        client_id: s.client_id,
        entry_id: s.entry_id,
        node: s.node,
        mode: s.meta.mode,
        host_id: s.meta.host_id,
        app_id: s.meta.app_id,
        uptime_secs: now.saturating_sub(s.started_at),
        started_at: s.started_at,
        remote: s.meta.remote,
        stopping,
        threads: usage.map(|u| u.threads),
        rss_kb: usage.map(|u| u.rss_kb),
        viewers: None,
        live,
    }
}

/// `DELETE /api/admin/sessions/{key}` answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Killed {
    /// The key.
    pub key: String,
    /// The stream has ended (false: asked to stop, still ending after the wait).
    pub ended: bool,
    /// Milliseconds until it ended (or the wait gave up).
    pub ms: u64,
}

/// `DELETE /api/admin/sessions/{key}`: asks the stream to stop (the registry's stop signal, so
/// it ends through its one teardown path) and waits for its end.
pub async fn kill(
    State(state): State<AppState>,
    key: Result<axum::extract::Path<String>, PathRejection>,
) -> Result<Json<Killed>, ApiError> {
    let text = crate::api::path(key)?;
    let key: SessionKey = text
        .parse()
        .map_err(|e| ApiError::bad_request(format!("bad session key: {e}")))?;
    let Some(handle) = state.sessions.handle(&key) else {
        // Another node's stream: asked through the cluster, and awaited the same way.
        if let Some(cluster) = &state.cluster {
            let t0 = std::time::Instant::now();
            let asked = cluster
                .stop_remote(&key, StopReason::AdminKill, KILL_WAIT)
                .await
                .map_err(|e| {
                    ApiError::new(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "cluster_unavailable",
                        e.to_string(),
                    )
                })?;
            if let Some(ended) = asked {
                tracing::info!(session = %key, "an administrator ends a stream of another node");
                return Ok(Json(Killed {
                    key: key.to_string(),
                    ended,
                    ms: t0.elapsed().as_millis() as u64,
                }));
            }
        }
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "session_not_found",
            format!("no live stream {key}"),
        ));
    };
    tracing::info!(session = %key, "an administrator ends the stream");
    let t0 = std::time::Instant::now();
    handle.stop(StopReason::AdminKill);
    let ended = tokio::time::timeout(KILL_WAIT, handle.closed())
        .await
        .is_ok();
    Ok(Json(Killed {
        key: key.to_string(),
        ended,
        ms: t0.elapsed().as_millis() as u64,
    }))
}

/// `?session=&tail=` of the log routes.
#[derive(Debug, Default, Deserialize)]
pub struct LogQuery {
    /// Only lines of this session key.
    pub session: Option<String>,
    /// How many recent lines first (default 200).
    pub tail: Option<usize>,
}

async fn logs_recent(
    State(state): State<AppState>,
    Query(q): Query<LogQuery>,
) -> Json<Vec<logs::LogLine>> {
    Json(
        state
            .logs
            .tail(q.tail.unwrap_or(200), q.session.as_deref())
            .into_iter()
            .map(|l| (*l).clone())
            .collect(),
    )
}

async fn logs_sse(
    State(state): State<AppState>,
    Query(q): Query<LogQuery>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    use futures_util::stream::{self, StreamExt};
    use tokio::sync::broadcast::error::RecvError;
    // Subscribe before reading the backlog; live lines the backlog already had are skipped by
    // sequence number. The stream (and its receiver) ends when the client goes away.
    let rx = state.logs.subscribe();
    let backlog = state.logs.tail(q.tail.unwrap_or(200), q.session.as_deref());
    let last_seq = backlog.last().map(|l| l.seq).unwrap_or(0);
    let first = stream::iter(backlog.into_iter().map(|l| Ok(event(&l))));
    let live = stream::unfold(
        (rx, q.session, last_seq),
        |(mut rx, session, last_seq)| async move {
            loop {
                match rx.recv().await {
                    Ok(line) => {
                        if line.seq <= last_seq || !logs::matches_session(&line, session.as_deref())
                        {
                            continue;
                        }
                        return Some((Ok(event(&line)), (rx, session, last_seq)));
                    }
                    // A slow reader skipped lines: say how many and go on.
                    Err(RecvError::Lagged(n)) => {
                        let e = Event::default().event("lagged").data(n.to_string());
                        return Some((Ok(e), (rx, session, last_seq)));
                    }
                    Err(RecvError::Closed) => return None,
                }
            }
        },
    );
    Sse::new(first.chain(live)).keep_alive(KeepAlive::default())
}

fn event(line: &logs::LogLine) -> Event {
    Event::default()
        .event("log")
        .id(line.seq.to_string())
        .json_data(line)
        .unwrap_or_else(|_| Event::default().event("log"))
}

async fn metrics(State(state): State<AppState>) -> Response {
    if let Some(cluster) = &state.cluster {
        match cluster.list().await {
            Ok(all) => {
                let infos: Vec<SessionInfo> = all.into_iter().map(|s| s.info).collect();
                state.metrics.set_cluster(&infos, cluster.stats());
            }
            Err(e) => tracing::warn!(error = %e, "metrics: the cluster's streams are unavailable"),
        }
    }
    let text = state.metrics.render(
        &state.sessions.list(),
        state.certs.stats(),
        state.host_cleanups.pending(),
    );
    ([(header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)], text).into_response()
}

/// `GET /readyz`: 200 when the store answers and a streamer can be spawned (the executable
/// exists and is executable), else 503 with what is wrong. No credential (like `/healthz`).
pub async fn readyz(State(state): State<AppState>) -> Response {
    let store = match state.store.list_hosts().await {
        Ok(_) => None,
        Err(e) => Some(format!("store: {e}")),
    };
    let path = &state.config.streamer_path;
    let streamer = match std::fs::metadata(path) {
        Ok(m) if m.is_file() && is_executable(&m) => None,
        Ok(_) => Some(format!(
            "streamer {} is not an executable file",
            path.display()
        )),
        Err(e) => Some(format!("streamer {}: {e}", path.display())),
    };
    let cluster = match &state.cluster {
        Some(c) => c.ping().await.err().map(|e| format!("cluster: {e}")),
        None => None,
    };
    let problems: Vec<String> = [store, streamer, cluster].into_iter().flatten().collect();
    let status = if problems.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        Json(serde_json::json!({ "ready": problems.is_empty(), "problems": problems })),
    )
        .into_response()
}

#[cfg(unix)]
fn is_executable(m: &std::fs::Metadata) -> bool {
    use std::os::unix::fs::PermissionsExt;
    m.permissions().mode() & 0o111 != 0
}

#[cfg(not(unix))]
fn is_executable(_m: &std::fs::Metadata) -> bool {
    true
}
