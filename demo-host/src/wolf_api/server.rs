//! The axum server: routes, JSON replies, the SSE stream, Unix/TCP listeners and a graceful close.
//!
//! One spawned task runs the accept loop and owns every connection task (a `JoinSet`); it is owned
//! by [`WolfApiServer`] and ends on [`WolfApiServer::close`] (or is aborted on drop). SSE streams are plain streams polled by their
//! connection — no task per subscriber — and watch the same shutdown signal, so closing the server
//! ends them and lets the graceful shutdown finish.

use std::convert::Infallible;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{Query, State};
use axum::http::{header, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{Map, Value};
use tokio::sync::{broadcast, watch};
use tokio::task::JoinHandle;

use super::types::*;
use super::{openapi, WolfApiError, WolfBackend};

/// Which HTTP status an error gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StatusStyle {
    /// 400/403/404/409/501/503/500 by error kind (see the module docs).
    #[default]
    Moongate,
    /// 500 for every error, as Wolf does.
    Wolf,
}

/// Server options.
#[derive(Debug, Clone)]
pub struct ApiOptions {
    /// SSE keep-alive (`:keepalive`) after this long without an event. Wolf: 15 s.
    pub keepalive: Duration,
    /// Error statuses.
    pub status_style: StatusStyle,
    /// How long [`WolfApiServer::close`] waits for open requests before cutting them.
    pub close_grace: Duration,
}

impl Default for ApiOptions {
    fn default() -> Self {
        ApiOptions {
            keepalive: Duration::from_secs(15),
            status_style: StatusStyle::Moongate,
            close_grace: Duration::from_secs(5),
        }
    }
}

/// Where the server listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListenAddr {
    /// A Unix socket path.
    Unix(PathBuf),
    /// A bound TCP address (the real port when 0 was asked).
    Tcp(std::net::SocketAddr),
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// Binding or setting up the socket failed.
    #[error("wolf api socket: {0}")]
    Io(#[from] io::Error),
    /// Another process answers on this socket path.
    #[error("{0} is in use by a running server")]
    InUse(PathBuf),
    /// The path exists and is not a socket; it is left alone.
    #[error("{0} exists and is not a socket")]
    NotASocket(PathBuf),
}

/// A running Wolf API server. Close it with [`close`](Self::close); dropping it aborts it.
#[derive(Debug)]
pub struct WolfApiServer {
    addr: ListenAddr,
    shutdown: watch::Sender<bool>,
    task: Option<JoinHandle<()>>,
    grace: Duration,
}

impl WolfApiServer {
    /// Serve on a Unix socket with default options.
    pub async fn serve_unix<B: WolfBackend>(
        path: impl AsRef<Path>,
        backend: Arc<B>,
    ) -> Result<Self, ServeError> {
        Self::serve_unix_with(path, backend, ApiOptions::default()).await
    }

    /// Serve on a Unix socket. A stale socket file (nobody accepting) is removed first; the new
    /// socket gets mode 0600 (there is a short window between bind and chmod in which the process
    /// umask applies).
    pub async fn serve_unix_with<B: WolfBackend>(
        path: impl AsRef<Path>,
        backend: Arc<B>,
        opts: ApiOptions,
    ) -> Result<Self, ServeError> {
        use std::os::unix::fs::PermissionsExt;
        let path = path.as_ref().to_path_buf();
        remove_stale_socket(&path).await?;
        let listener = tokio::net::UnixListener::bind(&path)?;
        if let Err(e) = std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)) {
            let _ = std::fs::remove_file(&path);
            return Err(e.into());
        }
        let (tx, rx) = watch::channel(false);
        let app = router(backend, opts.clone(), rx.clone());
        let task = tokio::spawn(run(listener, app, rx));
        Ok(WolfApiServer {
            addr: ListenAddr::Unix(path),
            shutdown: tx,
            task: Some(task),
            grace: opts.close_grace,
        })
    }

    /// Serve on TCP with default options (port 0 picks a free port; see [`tcp_addr`](Self::tcp_addr)).
    pub async fn serve_tcp<B: WolfBackend>(
        addr: std::net::SocketAddr,
        backend: Arc<B>,
    ) -> Result<Self, ServeError> {
        Self::serve_tcp_with(addr, backend, ApiOptions::default()).await
    }

    /// Serve on TCP.
    pub async fn serve_tcp_with<B: WolfBackend>(
        addr: std::net::SocketAddr,
        backend: Arc<B>,
        opts: ApiOptions,
    ) -> Result<Self, ServeError> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let bound = listener.local_addr()?;
        let (tx, rx) = watch::channel(false);
        let app = router(backend, opts.clone(), rx.clone());
        let task = tokio::spawn(run(listener, app, rx));
        Ok(WolfApiServer {
            addr: ListenAddr::Tcp(bound),
            shutdown: tx,
            task: Some(task),
            grace: opts.close_grace,
        })
    }

    /// Where it listens.
    pub fn listen_addr(&self) -> &ListenAddr {
        &self.addr
    }

    /// The bound TCP address, if serving TCP.
    pub fn tcp_addr(&self) -> Option<std::net::SocketAddr> {
        match &self.addr {
            ListenAddr::Tcp(a) => Some(*a),
            ListenAddr::Unix(_) => None,
        }
    }

    /// The socket path, if serving on a Unix socket.
    pub fn socket_path(&self) -> Option<&Path> {
        match &self.addr {
            ListenAddr::Unix(p) => Some(p),
            ListenAddr::Tcp(_) => None,
        }
    }

    /// Stop accepting, end every SSE stream, wait up to [`ApiOptions::close_grace`] for open
    /// requests, then cut what is left and remove the socket file.
    pub async fn close(mut self) {
        let _ = self.shutdown.send(true);
        if let Some(mut task) = self.task.take() {
            if tokio::time::timeout(self.grace, &mut task).await.is_err() {
                tracing::debug!("wolf api close: grace period over, aborting open connections");
                task.abort();
                let _ = task.await;
            }
        }
        self.remove_socket_file();
    }

    fn remove_socket_file(&self) {
        if let ListenAddr::Unix(p) = &self.addr {
            let _ = std::fs::remove_file(p);
        }
    }
}

impl Drop for WolfApiServer {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            let _ = self.shutdown.send(true);
            task.abort();
            self.remove_socket_file();
        }
    }
}

async fn shutdown_signal(mut rx: watch::Receiver<bool>) {
    // Err = the sender (the server handle) is gone: shut down as well.
    let _ = rx.wait_for(|closing| *closing).await;
}

/// A client must send its request head within this (slow or stuck clients hold a task).
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// The accept loop. Every connection task lives in this task's `JoinSet`, so aborting this task
/// (close after the grace period, or drop) aborts every connection too — `axum::serve` detaches
/// its connection tasks, which would outlive an abort. HTTP/1 only: Wolf speaks HTTP/1.0.
async fn run<L>(mut listener: L, app: Router, shutdown: watch::Receiver<bool>)
where
    L: axum::serve::Listener,
{
    let mut conns = tokio::task::JoinSet::new();
    let stop = shutdown_signal(shutdown.clone());
    tokio::pin!(stop);
    loop {
        tokio::select! {
            biased;
            _ = &mut stop => break,
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
            (io, _addr) = listener.accept() => {
                let svc = hyper_util::service::TowerToHyperService::new(app.clone());
                let sd = shutdown.clone();
                conns.spawn(async move {
                    let conn = hyper::server::conn::http1::Builder::new()
                        .timer(hyper_util::rt::TokioTimer::new())
                        .header_read_timeout(HEADER_READ_TIMEOUT)
                        .serve_connection(hyper_util::rt::TokioIo::new(io), svc);
                    tokio::pin!(conn);
                    tokio::select! {
                        r = conn.as_mut() => {
                            if let Err(e) = r {
                                tracing::debug!("wolf api connection: {e}");
                            }
                            return;
                        }
                        _ = shutdown_signal(sd) => conn.as_mut().graceful_shutdown(),
                    }
                    if let Err(e) = conn.await {
                        tracing::debug!("wolf api connection at shutdown: {e}");
                    }
                });
            }
        }
    }
    drop(listener);
    while conns.join_next().await.is_some() {}
}

/// Remove `path` if it is a socket nobody accepts on (left by a crashed host).
async fn remove_stale_socket(path: &Path) -> Result<(), ServeError> {
    use std::os::unix::fs::FileTypeExt;
    let meta = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e.into()),
    };
    if !meta.file_type().is_socket() {
        return Err(ServeError::NotASocket(path.to_path_buf()));
    }
    if tokio::net::UnixStream::connect(path).await.is_ok() {
        return Err(ServeError::InUse(path.to_path_buf()));
    }
    std::fs::remove_file(path)?;
    Ok(())
}

struct Shared<B> {
    backend: Arc<B>,
    opts: ApiOptions,
    shutdown: watch::Receiver<bool>,
}

type St<B> = State<Arc<Shared<B>>>;

impl<B> Shared<B> {
    fn status(&self, e: &WolfApiError) -> StatusCode {
        match self.opts.status_style {
            StatusStyle::Wolf => StatusCode::INTERNAL_SERVER_ERROR,
            StatusStyle::Moongate => {
                StatusCode::from_u16(e.status_code()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
            }
        }
    }

    fn error(&self, e: WolfApiError) -> Response {
        let status = self.status(&e);
        tracing::debug!(status = status.as_u16(), "wolf api error reply");
        error_response(status, &e.to_string())
    }

    /// `{"success":true}` merged with `fields` (an object), or the error.
    fn reply(&self, r: Result<Value, WolfApiError>) -> Response {
        match r {
            Ok(fields) => {
                let mut m = Map::new();
                m.insert("success".into(), Value::Bool(true));
                if let Value::Object(extra) = fields {
                    m.extend(extra);
                }
                (StatusCode::OK, Json(Value::Object(m))).into_response()
            }
            Err(e) => self.error(e),
        }
    }
}

fn error_response(status: StatusCode, msg: &str) -> Response {
    let body = serde_json::json!({"success": false, "error": msg});
    (status, Json(body)).into_response()
}

fn to_fields<T: serde::Serialize>(key: &str, v: T) -> Result<Value, WolfApiError> {
    let v = serde_json::to_value(v).map_err(|e| WolfApiError::Internal(e.to_string()))?;
    let mut m = Map::new();
    m.insert(key.into(), v);
    Ok(Value::Object(m))
}

fn empty() -> Value {
    Value::Object(Map::new())
}

/// Parse a JSON body; every failure is a 400 with serde's explanation.
fn parse<T: DeserializeOwned>(body: Result<Bytes, BytesRejection>) -> Result<T, WolfApiError> {
    let body = body.map_err(|e| WolfApiError::BadRequest(format!("unreadable body: {e}")))?;
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(WolfApiError::BadRequest(
            "empty body: a JSON object is expected".into(),
        ));
    }
    serde_json::from_slice(&body)
        .map_err(|e| WolfApiError::BadRequest(format!("invalid JSON body: {e}")))
}

fn router<B: WolfBackend>(
    backend: Arc<B>,
    opts: ApiOptions,
    shutdown: watch::Receiver<bool>,
) -> Router {
    let shared = Arc::new(Shared {
        backend,
        opts,
        shutdown,
    });
    Router::new()
        .route("/api/v1/events", get(events::<B>))
        .route("/api/v1/pair/pending", get(pair_pending::<B>))
        .route("/api/v1/pair/client", post(pair_client::<B>))
        .route("/api/v1/unpair/client", post(unpair_client::<B>))
        .route("/api/v1/clients", get(clients::<B>))
        .route("/api/v1/apps", get(apps::<B>))
        .route("/api/v1/apps/add", post(apps_add::<B>))
        .route("/api/v1/apps/delete", post(apps_delete::<B>))
        .route("/api/v1/sessions", get(sessions::<B>))
        .route("/api/v1/sessions/add", post(sessions_add::<B>))
        .route("/api/v1/sessions/stop", post(sessions_stop::<B>))
        .route("/api/v1/lobbies", get(lobbies::<B>))
        .route("/api/v1/lobbies/create", post(lobbies_create::<B>))
        .route("/api/v1/lobbies/join", post(lobbies_join::<B>))
        .route("/api/v1/lobbies/leave", post(lobbies_leave::<B>))
        .route("/api/v1/lobbies/stop", post(lobbies_stop::<B>))
        .route("/api/v1/openapi-schema", get(openapi_schema))
        .route("/api/v1/moongate/input", get(input::<B>))
        .route(
            "/api/v1/moongate/faults",
            get(faults_get::<B>).post(faults_set::<B>),
        )
        .route("/api/v1/moongate/strict", get(strict_get::<B>))
        .route("/api/v1/moongate/mic", get(mic::<B>))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(shared)
}

async fn not_found(uri: Uri) -> Response {
    error_response(
        StatusCode::NOT_FOUND,
        &format!("no such endpoint: {}", uri.path()),
    )
}

async fn method_not_allowed(uri: Uri) -> Response {
    error_response(
        StatusCode::METHOD_NOT_ALLOWED,
        &format!("method not allowed on {}", uri.path()),
    )
}

async fn openapi_schema() -> Response {
    (StatusCode::OK, Json(openapi::schema())).into_response()
}

async fn pair_pending<B: WolfBackend>(State(s): St<B>) -> Response {
    let r = s.backend.pending_pairs().await;
    s.reply(r.and_then(|v| to_fields("requests", v)))
}

async fn pair_client<B: WolfBackend>(
    State(s): St<B>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let r = match parse::<PairRequest>(body) {
        Ok(req) => s.backend.pair_client(req).await.map(|()| empty()),
        Err(e) => Err(e),
    };
    s.reply(r)
}

async fn unpair_client<B: WolfBackend>(
    State(s): St<B>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let r = match parse::<UnpairRequest>(body) {
        Ok(req) => s
            .backend
            .unpair_client(req.client_id)
            .await
            .map(|()| empty()),
        Err(e) => Err(e),
    };
    s.reply(r)
}

async fn clients<B: WolfBackend>(State(s): St<B>) -> Response {
    let r = s.backend.list_clients().await;
    s.reply(r.and_then(|v| to_fields("clients", v)))
}

async fn apps<B: WolfBackend>(State(s): St<B>) -> Response {
    let r = s.backend.list_apps().await;
    s.reply(r.and_then(|v| to_fields("apps", v)))
}

async fn apps_add<B: WolfBackend>(
    State(s): St<B>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let r = match parse::<App>(body) {
        Ok(app) => s.backend.add_app(app).await.map(|()| empty()),
        Err(e) => Err(e),
    };
    s.reply(r)
}

async fn apps_delete<B: WolfBackend>(
    State(s): St<B>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let r = match parse::<AppDeleteRequest>(body) {
        Ok(req) => s.backend.delete_app(req.id).await.map(|()| empty()),
        Err(e) => Err(e),
    };
    s.reply(r)
}

async fn sessions<B: WolfBackend>(State(s): St<B>) -> Response {
    let r = s.backend.list_sessions().await;
    s.reply(r.and_then(|v| to_fields("sessions", v)))
}

async fn sessions_add<B: WolfBackend>(
    State(s): St<B>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let r = match parse::<Session>(body) {
        Ok(sess) => match s.backend.add_session(sess).await {
            Ok(id) => to_fields("session_id", id),
            Err(e) => Err(e),
        },
        Err(e) => Err(e),
    };
    s.reply(r)
}

async fn sessions_stop<B: WolfBackend>(
    State(s): St<B>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let r = match parse::<SessionStopRequest>(body) {
        Ok(req) => s
            .backend
            .stop_session(req.session_id)
            .await
            .map(|()| empty()),
        Err(e) => Err(e),
    };
    s.reply(r)
}

async fn lobbies<B: WolfBackend>(State(s): St<B>) -> Response {
    let r = s.backend.list_lobbies().await;
    s.reply(r.and_then(|v| to_fields("lobbies", v)))
}

async fn lobbies_create<B: WolfBackend>(
    State(s): St<B>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let r = match parse::<CreateLobbyRequest>(body) {
        Ok(req) => match s.backend.create_lobby(req).await {
            Ok(id) => to_fields("lobby_id", id),
            Err(e) => Err(e),
        },
        Err(e) => Err(e),
    };
    s.reply(r)
}

async fn lobbies_join<B: WolfBackend>(
    State(s): St<B>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let r = match parse::<JoinLobbyRequest>(body) {
        Ok(req) => s.backend.join_lobby(req).await.map(|()| empty()),
        Err(e) => Err(e),
    };
    s.reply(r)
}

async fn lobbies_leave<B: WolfBackend>(
    State(s): St<B>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let r = match parse::<LeaveLobbyRequest>(body) {
        Ok(req) => s.backend.leave_lobby(req).await.map(|()| empty()),
        Err(e) => Err(e),
    };
    s.reply(r)
}

async fn lobbies_stop<B: WolfBackend>(
    State(s): St<B>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let r = match parse::<StopLobbyRequest>(body) {
        Ok(req) => s.backend.stop_lobby(req).await.map(|()| empty()),
        Err(e) => Err(e),
    };
    s.reply(r)
}

#[derive(Deserialize)]
struct InputQuery {
    session_id: String,
    since: Option<u64>,
}

async fn input<B: WolfBackend>(
    State(s): St<B>,
    q: Result<Query<InputQuery>, QueryRejection>,
) -> Response {
    let q = match q {
        Ok(Query(q)) => q,
        Err(e) => {
            return s.error(WolfApiError::BadRequest(format!(
                "expected ?session_id=<decimal>[&since=<seq>]: {e}"
            )))
        }
    };
    let id: SessionId = match q.session_id.parse() {
        Ok(id) => id,
        Err(e) => return s.error(e),
    };
    let r = s.backend.input_events(id, q.since).await;
    s.reply(r.and_then(|events| {
        let mut v = to_fields("events", events)?;
        if let Value::Object(m) = &mut v {
            m.insert("session_id".into(), Value::String(id.to_string()));
        }
        Ok(v)
    }))
}

#[derive(Deserialize)]
struct MicQuery {
    session_id: String,
}

async fn mic<B: WolfBackend>(
    State(s): St<B>,
    q: Result<Query<MicQuery>, QueryRejection>,
) -> Response {
    let id: SessionId = match q.map(|Query(q)| q.session_id.parse()) {
        Ok(Ok(id)) => id,
        Ok(Err(e)) => return s.error(e),
        Err(e) => {
            return s.error(WolfApiError::BadRequest(format!(
                "expected ?session_id=<decimal>: {e}"
            )))
        }
    };
    let r = s.backend.mic_report(id).await;
    s.reply(r.and_then(|report| {
        let mut v =
            serde_json::to_value(report).map_err(|e| WolfApiError::Internal(e.to_string()))?;
        if let Value::Object(m) = &mut v {
            m.insert("session_id".into(), Value::String(id.to_string()));
        }
        Ok(v)
    }))
}

async fn faults_get<B: WolfBackend>(State(s): St<B>) -> Response {
    let r = s.backend.faults().await;
    s.reply(r.and_then(|v| to_fields("faults", v)))
}

async fn strict_get<B: WolfBackend>(State(s): St<B>) -> Response {
    let r = s.backend.strict_status().await;
    s.reply(r.and_then(|v| to_fields("strict", v)))
}

async fn faults_set<B: WolfBackend>(
    State(s): St<B>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let r = match parse::<FaultKnobsPatch>(body).and_then(|p| p.validate().map(|()| p)) {
        Ok(patch) => match s.backend.set_faults(patch).await {
            Ok(k) => to_fields("faults", k),
            Err(e) => Err(e),
        },
        Err(e) => Err(e),
    };
    s.reply(r)
}

/// `GET /api/v1/events`: one SSE event per backend event until the server closes, the backend's
/// sender goes away, or the client disconnects (the body, and with it this stream, is dropped).
///
/// Written by hand rather than with axum's `Sse` so the bytes are exactly Wolf's:
/// `event: <type>\ndata: <json>\n\n` and `:keepalive\n\n` (axum writes `: keepalive`).
async fn events<B: WolfBackend>(State(s): St<B>) -> Response {
    if *s.shutdown.borrow() {
        return s.error(WolfApiError::Unavailable("shutting down".into()));
    }
    let rx = s.backend.subscribe();
    let period = s.opts.keepalive.max(Duration::from_millis(1));
    let mut keepalive = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    keepalive.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let stream = futures_util::stream::unfold(
        (rx, s.shutdown.clone(), keepalive),
        |(mut rx, mut shutdown, mut keepalive)| async move {
            loop {
                let chunk = tokio::select! {
                    biased;
                    _ = shutdown.wait_for(|closing| *closing) => return None,
                    r = rx.recv() => match r {
                        Ok(ev) => match ev.data_json() {
                            Ok(data) => format!("event: {}\ndata: {}\n\n", ev.type_name(), data),
                            Err(e) => {
                                tracing::warn!("wolf api: event not serialisable: {e}");
                                continue;
                            }
                        },
                        Err(broadcast::error::RecvError::Lagged(n)) => format!(":lagged {n}\n\n"),
                        Err(broadcast::error::RecvError::Closed) => return None,
                    },
                    _ = keepalive.tick() => ":keepalive\n\n".to_string(),
                };
                return Some((
                    Ok::<_, Infallible>(Bytes::from(chunk)),
                    (rx, shutdown, keepalive),
                ));
            }
        },
    );
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "text/event-stream")
        .header(header::CACHE_CONTROL, "no-cache")
        .body(Body::from_stream(stream))
        .unwrap_or_else(|e| error_response(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()))
}
