//! `GET /api/ws/stream`: WebSocket-only streaming, wire-compatible with the Helix frontend
//! (`helix-ws-contract.md` §1.4, §1.7, §2, §4).
//!
//! One connection = one registry entry = one `streamer` child:
//!
//! 1. binary messages before the JSON `init` are skipped (an early Ping is answered);
//!    credentials come from `Authorization: Bearer` on the upgrade or the init's `credentials`;
//! 2. key `{session}-{lobby}-{client}`; a live entry with the same key is superseded (stopped,
//!    closed with 4000, its streamer's exit awaited) before anything is launched;
//! 3. the client id's identity is paired with the host if the store does not say it is;
//! 4. the streamer is spawned and sent `Init`; `Started` becomes StreamInit (0x30) +
//!    ConnectionComplete, then video (keyframe first) and audio flow through a time-budgeted
//!    [`SendQueue`]; Pings are answered here, ahead of any media; input goes to the streamer.
//! 5. every end takes one teardown: IPC `Stop` → the streamer cancels on the host and exits →
//!    reap (kill after a grace period) → registry entry gone → close with a real code.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, Query, State};
use axum::http::HeaderMap;
use axum::response::Response;
use bytes::Bytes;
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use serde::Deserialize;
use tokio::sync::Notify;
use wire::backpressure::{QueueConfig, SendQueue};
use wire::browser::{self, ClientControl, Init, Pong};
use wire::ipc::{EndReason, FromStreamer, StreamMode, StreamerInit, ToStreamer};
use wire::Secret;

use crate::admin::observer::StreamObserver;
use crate::auth::{optional_bearer, validate_first_message, AllowedOrigin};
use crate::autopair::ensure_paired;
use crate::error::ApiError;
use crate::launch_gate::LaunchGate;
use crate::limits::Rejection;
use crate::metrics::EndLabel;
use crate::server::AppState;
use crate::sessions::{
    register_superseding, supersede_same_client, supersede_same_host, SessionGuard, SessionKey,
    SessionMeta, StopReason,
};
use crate::streamer_proc::{self, IpcRx, IpcTx, StreamerChild};
use gamestream::nvhttp::{HostAddress, NvHttpClient};

/// How long a client may take to send its `init`.
/// A browser that sent nothing (no Ping, no input, no WebSocket pong) for this long is gone.
const BROWSER_SILENCE: Duration = Duration::from_secs(10);
/// WebSocket pings to the browser, so a silent but alive client still answers.
const KEEPALIVE_EVERY: Duration = Duration::from_secs(2);
/// How often the send queue's keyframe retry is checked (see [`Running::pump`]).
const IDR_RETRY_CHECK_EVERY: Duration = Duration::from_millis(200);
/// How long a stopped streamer may take to cancel on the host and exit before it is killed.
const STREAMER_GRACE: Duration = Duration::from_secs(5);
/// How long the final messages and the close frame may take to reach the browser.
const CLOSE_FLUSH: Duration = Duration::from_secs(2);
/// How long the browser may take to answer our Close before the connection is dropped anyway.
const CLOSE_ANSWER: Duration = Duration::from_secs(1);
/// Bounds the gateway's own `/cancel` of a dead streamer's host session (the registry entry, and
/// with it a superseding stream, waits for it).
const HOST_CANCEL_LIMIT: Duration = Duration::from_secs(3);

/// Query parameters of the upgrade (all optional; the init's fields win).
#[derive(Debug, Default, Deserialize)]
pub struct WsQuery {
    /// Session id (Helix: `<ses>-hq`).
    pub session_id: Option<String>,
    /// Lobby id.
    pub lobby_id: Option<String>,
    /// Client id.
    pub client_unique_id: Option<String>,
}

/// The upgrade handler. A wrong `Authorization` header is refused before the upgrade; without
/// one, the init must carry `credentials`.
pub async fn handler(
    State(state): State<AppState>,
    _origin: AllowedOrigin,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Query(query): Query<WsQuery>,
    headers: HeaderMap,
    ws: WebSocketUpgrade,
) -> Result<Response, ApiError> {
    let bearer = optional_bearer(&headers, &state.credentials)?;
    state.allow_open(peer.ip())?;
    let max = state.config.limits.max_message_bytes;
    Ok(ws
        .max_message_size(max)
        .max_frame_size(max)
        .on_upgrade(move |socket| connection(state, socket, query, bearer, peer)))
}

/// How a connection ends toward the browser (shared with the WebRTC signaling socket and WHEP).
#[derive(Debug)]
pub(crate) struct Close {
    pub(crate) code: u16,
    pub(crate) reason: String,
    /// Sent first as `{"error": …}` (the message is what passes through Helix's proxy).
    pub(crate) error: Option<String>,
}

impl Close {
    pub(crate) fn normal(reason: &str) -> Self {
        Close {
            code: browser::CLOSE_NORMAL,
            reason: reason.into(),
            error: None,
        }
    }
    pub(crate) fn failure(error: impl Into<String>) -> Self {
        let error = error.into();
        Close {
            code: browser::CLOSE_INTERNAL_ERROR,
            reason: error.clone(),
            error: Some(error),
        }
    }
    pub(crate) fn policy(error: impl Into<String>) -> Self {
        let error = error.into();
        Close {
            code: browser::CLOSE_POLICY_VIOLATION,
            reason: error.clone(),
            error: Some(error),
        }
    }
    /// A limit refused the stream or a message: counted, and closed with `code`.
    pub(crate) fn limit(state: &AppState, why: Rejection, code: u16, error: String) -> Self {
        Self::limit_counted(&state.metrics, why, code, error)
    }
    fn limit_counted(
        metrics: &crate::metrics::Metrics,
        why: Rejection,
        code: u16,
        error: String,
    ) -> Self {
        metrics.rejected(why);
        tracing::info!(reason = why.as_str(), %error, "a limit refused a stream socket");
        Close {
            code,
            reason: error.clone(),
            error: Some(error),
        }
    }
    pub(crate) fn too_big(state: &AppState) -> Self {
        Self::too_big_counted(&state.metrics, state.config.limits.max_message_bytes)
    }
    pub(crate) fn too_big_counted(metrics: &crate::metrics::Metrics, max: usize) -> Self {
        Self::limit_counted(
            metrics,
            Rejection::MessageTooBig,
            crate::limits::CLOSE_MESSAGE_TOO_BIG,
            format!("MessageTooBig: a message is over {max} bytes"),
        )
    }
    pub(crate) fn first_message_timeout(state: &AppState, what: &str) -> Self {
        Self::limit(
            state,
            Rejection::FirstMessageTimeout,
            browser::CLOSE_POLICY_VIOLATION,
            format!("no {what} message received"),
        )
    }
    pub(crate) fn stopped(reason: StopReason) -> Self {
        Close {
            code: reason.close_code(),
            reason: reason.close_reason().into(),
            error: Some(reason.close_reason().into()),
        }
    }
}

/// A close reason is at most 123 bytes.
pub(crate) fn clip_reason(reason: &str) -> String {
    let mut end = reason.len().min(123);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    reason[..end].to_string()
}

fn unix_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

/// The browser-bound side: a [`SendQueue`] drained by one writer task.
struct Outbox {
    queue: Mutex<SendQueue<Message>>,
    wake: Notify,
    failed: AtomicBool,
    /// The browser sent its Close: the writer answers it at once, ahead of anything queued.
    peer_closed: AtomicBool,
}

impl Outbox {
    fn new() -> Self {
        Outbox {
            queue: Mutex::new(SendQueue::new(QueueConfig::default())),
            wake: Notify::new(),
            failed: AtomicBool::new(false),
            peer_closed: AtomicBool::new(false),
        }
    }
    fn queue(&self) -> MutexGuard<'_, SendQueue<Message>> {
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }
    fn control(&self, msg: Message) {
        self.queue().push_control(msg);
        self.wake.notify_one();
    }
    /// The browser's Close arrived: have the writer answer it now, before the teardown (which
    /// may take seconds: the streamer cancels on the host) rather than after it.
    fn peer_closed(&self) {
        self.peer_closed.store(true, Ordering::Release);
        self.wake.notify_one();
    }
}

/// Writes queued messages until the close frame is sent, the browser's Close is answered or the
/// socket fails.
///
/// Why the answer is a flush: when tungstenite reads the peer's Close it queues the echo itself
/// and refuses every later write (`SendAfterClosing`, our own Close included); the echo leaves
/// only with the next read, write or flush. Without this flush the echo never left, the socket
/// was dropped after the teardown and the browser saw 1006.
async fn write_loop(mut sink: SplitSink<WebSocket, Message>, outbox: Arc<Outbox>) {
    loop {
        if outbox.peer_closed.load(Ordering::Acquire) {
            let _ = tokio::time::timeout(CLOSE_FLUSH, sink.flush()).await;
            return;
        }
        let next = outbox.queue().pop(Instant::now());
        match next {
            Some(msg) => {
                let last = matches!(msg, Message::Close(_));
                if sink.send(msg).await.is_err() {
                    // The browser may have closed meanwhile: its echo still waits for a flush.
                    let _ = tokio::time::timeout(CLOSE_FLUSH, sink.flush()).await;
                    outbox.failed.store(true, Ordering::Relaxed);
                    return;
                }
                if last {
                    return;
                }
            }
            None => outbox.wake.notified().await,
        }
    }
}

/// After our own Close: reads until the browser's answer (or the end of the socket) so the
/// closing handshake completes before the connection is dropped.
async fn await_close_answer(stream: &mut SplitStream<WebSocket>) {
    let answer = async {
        while let Some(Ok(msg)) = stream.next().await {
            if matches!(msg, Message::Close(_)) {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(CLOSE_ANSWER, answer).await;
}

async fn connection(
    state: AppState,
    socket: WebSocket,
    query: WsQuery,
    bearer: bool,
    peer: SocketAddr,
) {
    let opened = Instant::now();
    let (sink, mut stream) = socket.split();
    let outbox = Arc::new(Outbox::new());
    let writer = tokio::spawn(write_loop(sink, Arc::clone(&outbox)));
    let abort_writer = writer.abort_handle();

    let close = stream_session(&state, &mut stream, &outbox, query, bearer, peer, opened).await;
    if outbox.peer_closed.load(Ordering::Acquire) {
        // Answered by the writer when the Close arrived; the teardown has run since.
        tracing::info!(code = close.code, reason = %close.reason, "the browser closed the stream socket");
        if tokio::time::timeout(CLOSE_FLUSH, writer).await.is_err() {
            abort_writer.abort();
        }
        return;
    }
    tracing::info!(code = close.code, reason = %close.reason, "closing the stream socket");
    if let Some(error) = &close.error {
        outbox.control(Message::Text(browser::error_json(error).into()));
    }
    outbox.control(Message::Close(Some(CloseFrame {
        code: close.code,
        reason: clip_reason(&close.reason).into(),
    })));
    match tokio::time::timeout(CLOSE_FLUSH, writer).await {
        Ok(_) if !outbox.failed.load(Ordering::Relaxed) => await_close_answer(&mut stream).await,
        Ok(_) => {}
        Err(_) => abort_writer.abort(),
    }
}

/// Everything from the init to the end of the stream; returns how to close the socket.
async fn stream_session(
    state: &AppState,
    stream: &mut SplitStream<WebSocket>,
    outbox: &Arc<Outbox>,
    query: WsQuery,
    bearer: bool,
    peer: SocketAddr,
    opened: Instant,
) -> Close {
    // 1. The init (binary messages before it are skipped; a Ping is answered).
    let deadline = tokio::time::Instant::now() + state.config.limits.first_message;
    let text = loop {
        match tokio::time::timeout_at(deadline, stream.next()).await {
            Err(_) => return Close::first_message_timeout(state, "init"),
            Ok(Some(Ok(Message::Close(_)))) => {
                outbox.peer_closed();
                return Close::normal("closed before init");
            }
            Ok(Some(Err(e))) if crate::limits::is_too_big(&e) => return Close::too_big(state),
            Ok(None) | Ok(Some(Err(_))) => return Close::normal("closed before init"),
            Ok(Some(Ok(Message::Text(t)))) => break t,
            Ok(Some(Ok(Message::Binary(b)))) => {
                answer_ping(&b, outbox);
            }
            Ok(Some(Ok(_))) => {}
        }
    };
    if !bearer {
        if let Err(e) = validate_first_message(text.as_str(), &state.credentials) {
            tracing::warn!(%peer, error = %e, "stream socket refused");
            return Close::policy(format!("Unauthorized: {e}"));
        }
    }
    let init = match Init::parse(text.as_str()).and_then(|i| i.validate().map(|()| i)) {
        Ok(init) => init,
        Err(e) => return Close::policy(format!("InvalidInit: {e}")),
    };

    let request = StreamRequest {
        session: init.session_id.clone().or(query.session_id),
        lobby: init.lobby_id.clone().or(query.lobby_id),
        client: init.client_unique_id.clone().or(query.client_unique_id),
        host_index: init.host_id,
        app_id: init.app_id,
        width: init.width,
        height: init.height,
        fps: init.fps,
        bitrate_kbps: init.bitrate,
        packet_size: init.packet_size,
        video_formats: init.video_supported_formats,
        play_audio_local: init.play_audio_local,
        audio_channels: init.audio_channels(),
        mode: StreamMode::Websocket,
        remote: Some(peer.to_string()),
    };
    let Launched {
        key,
        guard,
        mut child,
        mut ipc_tx,
        mut ipc_rx,
        observer,
        gate,
    } = match launch(state, request).await {
        Ok(l) => l,
        Err(close) => return close,
    };
    let mut run = Running {
        observer,
        gate,
        outbox: Arc::clone(outbox),
        error: None,
        ended: None,
        started: None,
        connection_complete_sent: false,
        video_enabled: true,
        first_keyframe_logged: false,
        helix_client: !init.supports_moongate_input(),
        opened,
        key: key.to_string(),
        metrics: Arc::clone(&state.metrics),
        max_message_bytes: state.config.limits.max_message_bytes,
    };
    let end = run.pump(stream, &guard, &mut ipc_tx, &mut ipc_rx).await;
    let mut last = LastWords {
        error: run.error.take(),
        ended: run.ended.take(),
        started: run.started.is_some(),
    };
    let mut observer = run.observer;
    let ends = Ends {
        guard,
        child: &mut child,
        observer: &mut observer,
    };
    teardown(&run.key, &mut last, end, ends, ipc_tx, ipc_rx).await
}

/// What a stream asks for, whatever the browser transport (WebSocket, WebRTC signaling, WHEP).
#[derive(Debug)]
pub(crate) struct StreamRequest {
    pub(crate) session: Option<String>,
    pub(crate) lobby: Option<String>,
    pub(crate) client: Option<String>,
    /// Index into the host list (Helix sends 0).
    pub(crate) host_index: u32,
    pub(crate) app_id: u32,
    pub(crate) width: u32,
    pub(crate) height: u32,
    pub(crate) fps: u32,
    pub(crate) bitrate_kbps: u32,
    pub(crate) packet_size: u32,
    pub(crate) video_formats: u32,
    pub(crate) play_audio_local: bool,
    /// 2, 6 or 8. WebRTC carries stereo only (the streamer enforces it).
    pub(crate) audio_channels: u8,
    pub(crate) mode: StreamMode,
    pub(crate) remote: Option<String>,
}

/// A launched stream: its registry entry, its streamer and the IPC channel (`Init` sent).
pub(crate) struct Launched {
    pub(crate) key: SessionKey,
    pub(crate) guard: SessionGuard,
    pub(crate) child: StreamerChild,
    pub(crate) ipc_tx: IpcTx,
    pub(crate) ipc_rx: IpcRx,
    /// Feeds the admin view's live row and the metrics, whatever the mode.
    pub(crate) observer: StreamObserver,
    /// This launch's turn on the host; each mode opens it at `Started`.
    pub(crate) gate: LaunchGate,
}

/// The shared launch path of every mode: key → host → registry entry (superseding the same key
/// and older keys of the same client identity) → identity and pairing → streamer spawned and sent
/// `Init`. Any failure is the close to send; nothing is left behind.
pub(crate) async fn launch(state: &AppState, req: StreamRequest) -> Result<Launched, Close> {
    let mode = req.mode;
    // The key.
    let session = req
        .session
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "default".into());
    let lobby = req.lobby.unwrap_or_default();
    let client = req
        .client
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| format!("moongate-{}", uuid::Uuid::new_v4()));
    if [&session, &lobby, &client]
        .iter()
        .any(|s| s.len() > browser::MAX_ID_LEN || s.chars().any(char::is_control))
    {
        return Err(Close::policy(
            "InvalidInit: bad session, lobby or client id",
        ));
    }
    let key = SessionKey::new(session, lobby.clone(), client.clone())
        .map_err(|e| Close::policy(format!("InvalidInit: {e}")))?;

    // The host: `host_id` is an index into the host list (Helix sends 0).
    let hosts = state
        .store
        .list_hosts()
        .await
        .map_err(|e| Close::failure(format!("InternalServerError: {e}")))?;
    let Some(host) = hosts.into_iter().nth(req.host_index as usize) else {
        return Err(Close::failure(format!(
            "HostNotFound: no host with index {}",
            req.host_index
        )));
    };

    stream_caps(state, &key, host.id).await?;

    // Register, superseding (and awaiting the end of) a live stream with this key.
    let meta = SessionMeta {
        host_id: host.id,
        app_id: req.app_id,
        mode: match mode {
            StreamMode::Websocket => "websocket".into(),
            StreamMode::Webrtc => "webrtc".into(),
        },
        remote: req.remote,
    };
    let mut guard = register_superseding(
        state.sessions.as_ref(),
        key.clone(),
        meta,
        state.config.timeouts.supersede,
    )
    .await
    .map_err(|e| Close::failure(format!("InternalServerError: {e}")))?;
    // Across the cluster: claim the key, then stop and await its stream on another node.
    let claimed = match &state.cluster {
        Some(cluster) => {
            let claimed = cluster
                .claim(&mut guard)
                .await
                .map_err(|e| Close::failure(format!("ClusterUnavailable: {e}")))?;
            tokio::select! {
                r = cluster.supersede_previous(&claimed, state.config.timeouts.supersede) => if let Err(e) = r {
                    return Err(Close::failure(format!("InternalServerError: {e}")));
                },
                reason = guard.stopped() => return Err(stopped_before_launch(state, reason)),
            }
            Some(claimed)
        }
        None => None,
    };
    // Which identity streams: a per-client one where the gateway can pair it itself (a pairing
    // API: the embedded host, a Wolf API), else the one the user paired with a PIN, shared by
    // every browser client of this host.
    let shared_identity = state.pin_submitter_for_host(&host).is_none();
    // One stream per client identity on a host: an older stream of this identity under another
    // key (another lobby, or another browser client on a shared identity) ends before this one
    // launches (lesson 4) — a supersede, never "AlreadyStreaming".
    let limit = state.config.timeouts.supersede;
    let same_identity = async {
        if shared_identity {
            supersede_same_host(state.sessions.as_ref(), &guard, limit).await
        } else {
            supersede_same_client(state.sessions.as_ref(), &guard, limit).await
        }
    };
    tokio::select! {
        r = same_identity => if let Err(e) = r {
            return Err(Close::failure(format!("InternalServerError: {e}")));
        },
        reason = guard.stopped() => return Err(stopped_before_launch(state, reason)),
    }
    if let (Some(cluster), Some(claimed)) = (&state.cluster, &claimed) {
        tokio::select! {
            r = cluster.supersede_identity(&guard, claimed.gen, shared_identity, limit) => if let Err(e) = r {
                return Err(Close::failure(format!("InternalServerError: {e}")));
            },
            reason = guard.stopped() => return Err(stopped_before_launch(state, reason)),
        }
    }
    let client = if shared_identity {
        crate::api::GATEWAY_CLIENT_ID.to_string()
    } else {
        client
    };

    // Identity and pairing, abandoned if this stream is stopped meanwhile.
    let prepared = async {
        if shared_identity {
            return shared_gateway_identity(state, &host).await;
        }
        seed_identity_from_store(state, host.id, &client).await;
        let identity = state
            .certs
            .get_or_create(&client)
            .await
            .map_err(|e| format!("InternalServerError: client identity: {e}"))?;
        if let Some(cluster) = &state.cluster {
            cluster.touch_client(&client).await;
        }
        let started = Instant::now();
        let paired = ensure_paired(state, &host, &client, &identity)
            .await
            .map_err(|e| e.to_string())?;
        if paired.paired_now {
            tracing::info!(session = %key, ms = started.elapsed().as_millis() as u64, "paired a new client identity");
        }
        let key_pem = identity
            .key_pem()
            .map_err(|e| format!("InternalServerError: client key: {e}"))?;
        Ok::<_, String>((identity, key_pem, paired.host_cert_der))
    };
    let (identity, key_pem, host_cert_der) = tokio::select! {
        r = prepared => r.map_err(Close::failure)?,
        reason = guard.stopped() => return Err(stopped_before_launch(state, reason)),
    };
    let cancel_cert = host_cert_der.clone();
    let https_port = match host.https_port {
        Some(p) => p,
        None => learn_https_port(state, &host, &identity).await,
    };
    let streamer_init = StreamerInit {
        session_key: key.to_string(),
        mode,
        host: wire::ipc::HostAddress {
            address: host.address.clone(),
            http_port: host.http_port,
            https_port,
        },
        host_cert_der,
        client_unique_id: client.clone(),
        client_cert_pem: identity.cert_pem.clone(),
        client_key_pem: Secret::new(key_pem),
        app_id: req.app_id,
        width: req.width,
        height: req.height,
        fps: req.fps,
        bitrate_kbps: req.bitrate_kbps,
        packet_size: req.packet_size,
        video_formats: req.video_formats,
        audio_channels: req.audio_channels,
        play_audio_local: req.play_audio_local,
        lobby_id: (!lobby.is_empty()).then_some(lobby),
        wolf_api: state
            .pin_submitter_for_host(&host)
            .and_then(|p| p.wolf_api()),
        webrtc: (mode == StreamMode::Webrtc).then(|| webrtc_settings(&state.config.webrtc)),
    };

    // A /cancel still waiting for a dead streamer of this identity would end this stream: this
    // stream owns the host session from here on, and its own teardown ends it.
    state.host_cleanups.take_over(host.id, &client);

    // 6. The streamer, on this launch's turn on the host.
    let gate = tokio::select! {
        gate = state.launch_gates.acquire(&host.address, host.http_port) => gate,
        reason = guard.stopped() => return Err(stopped_before_launch(state, reason)),
    };
    let (mut child, mut ipc_tx, ipc_rx) =
        match streamer_proc::spawn(&state.config.streamer_path, &key.to_string()) {
            Ok(c) => c,
            Err(e) => {
                return Err(Close::failure(format!(
                    "InternalServerError: cannot start the streamer {}: {e}",
                    state.config.streamer_path.display()
                )))
            }
        };
    tracing::info!(session = %key, pid = ?child.id(), ?mode, "streamer spawned");
    if let (Some(cluster), Some(claimed), Some(pid)) = (&state.cluster, &claimed, child.id()) {
        cluster.record_streamer(claimed, pid).await;
    }
    child.attach_host_session(
        streamer_proc::HostSession::new(
            NvHttpClient::new(
                HostAddress::with_ports(host.address.clone(), host.http_port, Some(https_port)),
                identity,
                Some(cancel_cert),
            )
            .with_unique_id(client.clone())
            .with_timeout(HOST_CANCEL_LIMIT),
            HOST_CANCEL_LIMIT,
        )
        .with_cleanup(
            Arc::clone(&state.host_cleanups),
            state.config.timeouts.host_cleanup,
            host.id,
            client.clone(),
        ),
    );
    let mut observer = StreamObserver::launched(state, &guard, child.id());
    if ipc_tx
        .send(ToStreamer::Init(Box::new(streamer_init)))
        .await
        .is_err()
    {
        let mut last = LastWords::default();
        let ends = Ends {
            guard,
            child: &mut child,
            observer: &mut observer,
        };
        let close = teardown(
            &key.to_string(),
            &mut last,
            End::StreamerLost,
            ends,
            ipc_tx,
            ipc_rx,
        )
        .await;
        return Err(close);
    }
    Ok(Launched {
        key,
        guard,
        child,
        ipc_tx,
        ipc_rx,
        observer,
        gate,
    })
}

/// The identity of a host without a pairing API: the gateway's, paired once with a PIN
/// (`POST /api/hosts/{id}/pair`). Not paired yet: a clear error naming the way out.
async fn shared_gateway_identity(
    state: &AppState,
    host: &crate::store::HostRecord,
) -> Result<(gamestream::identity::Identity, String, Vec<u8>), String> {
    let not_paired = || {
        format!(
            "HostNotPaired: pair this host first: {} has no pairing API, so moongate streams \
             through the identity you pair with a PIN (POST /api/hosts/{}/pair)",
            host.name, host.id
        )
    };
    let (identity, pairing) = super::hosts::gateway_identity(state, host.id)
        .await
        .map_err(|e| format!("InternalServerError: gateway identity: {}", e.message))?;
    let Some(server_pem) = host.server_cert_pem.as_deref() else {
        return Err(not_paired());
    };
    if pairing != crate::store::PairingState::Paired {
        return Err(not_paired());
    }
    let host_cert_der = gamestream::identity::cert_der_from_pem(server_pem.as_bytes())
        .map_err(|e| format!("InternalServerError: stored host certificate: {e}"))?;
    let key_pem = identity
        .key_pem()
        .map_err(|e| format!("InternalServerError: client key: {e}"))?;
    Ok((identity, key_pem, host_cert_der))
}

/// Why the streaming loop ended.
#[derive(Debug)]
pub(crate) enum End {
    BrowserClosed,
    BrowserGone,
    Stopped(StopReason),
    /// The streamer sent `Ended` (and maybe `Error`).
    StreamerEnded,
    /// IPC broke or ended without `Ended`: the streamer crashed or was killed.
    StreamerLost,
    /// The browser sent something unusable (bad signaling JSON): close with this.
    Refused(Close),
}

struct Running {
    /// Feeds the admin view's live row and the metrics.
    observer: StreamObserver,
    /// Opened at `Started`.
    gate: LaunchGate,
    outbox: Arc<Outbox>,
    error: Option<String>,
    ended: Option<wire::ipc::Ended>,
    started: Option<wire::ipc::Started>,
    connection_complete_sent: bool,
    video_enabled: bool,
    first_keyframe_logged: bool,
    /// A Helix-protocol client: it gets the core 13-byte StreamInit (without moongate's Opus
    /// layout) and no ControllerEvent, which it would throw on.
    helix_client: bool,
    opened: Instant,
    key: String,
    /// For a close 1009 counted in the metrics.
    metrics: Arc<crate::metrics::Metrics>,
    max_message_bytes: usize,
}

/// A stream stopped before its streamer was launched (superseded meanwhile, shutdown, admin).
fn stopped_before_launch(state: &AppState, reason: StopReason) -> Close {
    if reason == StopReason::Superseded {
        state.metrics.superseded_before_launch();
    }
    Close::stopped(reason)
}

/// Answers a Ping (0x40) at once, ahead of all media. Not a Ping: ignored.
fn answer_ping(data: &[u8], outbox: &Outbox) -> bool {
    if let Ok(browser::Message::Ping(ping)) = browser::Message::decode(data) {
        if let Ok(pong) = browser::Message::Pong(Pong::answer(ping, unix_us())).to_vec() {
            outbox.control(Message::Binary(pong.into()));
        }
        return true;
    }
    false
}

impl Running {
    async fn pump(
        &mut self,
        stream: &mut SplitStream<WebSocket>,
        guard: &SessionGuard,
        ipc_tx: &mut IpcTx,
        ipc_rx: &mut IpcRx,
    ) -> End {
        let mut last_heard = Instant::now();
        let mut tick = tokio::time::interval_at(
            tokio::time::Instant::now() + KEEPALIVE_EVERY,
            KEEPALIVE_EVERY,
        );
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // The queue's keyframe retry (`QueueConfig::idr_retry`, 1 s) is due between keepalives:
        // checked on its own, a lost first keyframe is asked for again after about 1 s, not at
        // the next keepalive 2 s after the open (the chaos suite saw a first keyframe after 2.4 s
        // during a loss burst).
        let mut idr_tick = tokio::time::interval(IDR_RETRY_CHECK_EVERY);
        idr_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let mut keyframe = false;
            tokio::select! {
                reason = guard.stopped() => return End::Stopped(reason),
                msg = stream.next() => {
                    last_heard = Instant::now();
                    match msg {
                        Some(Ok(Message::Close(_))) => {
                            self.outbox.peer_closed();
                            return End::BrowserClosed;
                        }
                        Some(Err(e)) if crate::limits::is_too_big(&e) => {
                            return End::Refused(Close::too_big_counted(&self.metrics, self.max_message_bytes));
                        }
                        None | Some(Err(_)) => return End::BrowserClosed,
                        Some(Ok(Message::Binary(b))) => {
                            if answer_ping(&b, &self.outbox) {
                                continue;
                            }
                            let Some(&ty) = b.first() else { continue };
                            if !browser::msg_type::is_forwarded_input(ty) {
                                continue;
                            }
                            if ty == browser::msg_type::CONTROL_MESSAGE {
                                keyframe |= self.control(&b);
                            }
                            if ipc_tx.send(ToStreamer::Input(b)).await.is_err() {
                                return End::StreamerLost;
                            }
                        }
                        Some(Ok(_)) => {}
                    }
                }
                frame = ipc_rx.next() => match frame {
                    None => return End::StreamerLost,
                    Some(Err(e)) => {
                        ipc_broken(&self.key, &e);
                        return End::StreamerLost;
                    }
                    Some(Ok(f)) => {
                        if let Some(end) = self.on_streamer_frame(f, &mut keyframe) {
                            return end;
                        }
                    }
                },
                _ = idr_tick.tick() => {
                    keyframe |= self.outbox.queue().take_keyframe_request(Instant::now());
                }
                _ = tick.tick() => {
                    if last_heard.elapsed() > BROWSER_SILENCE {
                        tracing::info!(session = %self.key, "browser silent for 10 s: treating it as gone");
                        return End::BrowserGone;
                    }
                    self.outbox.control(Message::Ping(Bytes::new()));
                    keyframe |= self.outbox.queue().take_keyframe_request(Instant::now());
                }
            }
            if self.outbox.failed.load(Ordering::Relaxed) {
                return End::BrowserClosed;
            }
            if keyframe && ipc_tx.send(ToStreamer::RequestKeyframe).await.is_err() {
                return End::StreamerLost;
            }
        }
    }

    /// A ControlMessage the server also acts on; true if a keyframe is needed.
    fn control(&mut self, data: &[u8]) -> bool {
        let Ok(browser::Message::Control(json)) = browser::Message::decode(data) else {
            return false;
        };
        match ClientControl::parse(json) {
            Ok(ClientControl::SetVideoEnabled(on)) => {
                let was = std::mem::replace(&mut self.video_enabled, on);
                if on && !was {
                    // The queue waits for a keyframe and asks for one itself.
                    self.outbox.queue().reset_video(Instant::now());
                    return true;
                }
                false
            }
            _ => false,
        }
    }

    /// One streamer frame; `Some` when the stream is over.
    fn on_streamer_frame(&mut self, frame: FromStreamer, keyframe: &mut bool) -> Option<End> {
        let now = Instant::now();
        match frame {
            FromStreamer::Started(s) => {
                self.gate.open();
                let mut init = s.stream_init();
                if self.helix_client {
                    init.opus = None;
                }
                if let Ok(si) = browser::Message::StreamInit(init).to_vec() {
                    self.outbox.control(Message::Binary(si.into()));
                }
                if !self.connection_complete_sent {
                    self.connection_complete_sent = true;
                    let json = browser::connection_complete_json(
                        s.touch_supported,
                        u32::from(s.width),
                        u32::from(s.height),
                    );
                    self.outbox.control(Message::Text(json.into()));
                }
                self.started = Some(s);
                // A new viewer: its decoder is configured asynchronously and may miss the first
                // IDR, so another keyframe follows soon (contract §4.1).
                self.outbox.queue().reset_video(now);
                *keyframe = true;
            }
            FromStreamer::Video(v) => {
                let Some(s) = &self.started else { return None };
                if !self.video_enabled {
                    return None;
                }
                if v.keyframe && !self.first_keyframe_logged {
                    self.first_keyframe_logged = true;
                    self.observer.first_keyframe(self.opened.elapsed());
                    tracing::info!(
                        session = %self.key,
                        ms = self.opened.elapsed().as_millis() as u64,
                        "first keyframe to the browser"
                    );
                }
                let msg = v.browser_message(s.width, s.height);
                let len = msg.len();
                let mut q = self.outbox.queue();
                q.push_video(Message::Binary(msg.into()), len, v.keyframe, now);
                self.observer.video_queued();
                *keyframe |= q.take_keyframe_request(now);
                drop(q);
                self.outbox.wake.notify_one();
            }
            FromStreamer::Audio(a) => {
                let Some(s) = &self.started else { return None };
                let msg = a.browser_message(s.audio_channels);
                let len = msg.len();
                self.outbox
                    .queue()
                    .push_audio(Message::Binary(msg.into()), len, now);
                self.outbox.wake.notify_one();
            }
            FromStreamer::Stats(st) => {
                tracing::debug!(session = %self.key, frames = st.video_frames, dropped = st.video_frames_dropped, "streamer stats");
                let q = self.outbox.queue().stats(now);
                self.observer.stats(&st, Some(q));
            }
            FromStreamer::Log(l) => {
                tracing::info!(session = %self.key, level = ?l.level, "streamer: {}", l.message);
            }
            FromStreamer::Error(e) => {
                tracing::warn!(session = %self.key, code = ?e.code, message = %e.message, "streamer error");
                self.error = Some(e.browser_text());
            }
            FromStreamer::Ended(e) => {
                self.ended = Some(e);
                return Some(End::StreamerEnded);
            }
            // WebRTC signaling does not occur in WebSocket mode.
            FromStreamer::Signal(_) => {}
            FromStreamer::Rumble(r) if !self.helix_client => {
                if let Ok(msg) = browser::Message::Controller(r.browser_event()).to_vec() {
                    self.outbox.control(Message::Binary(msg.into()));
                }
            }
            FromStreamer::Rumble(_) => {}
        }
        None
    }
}

/// The streamer's output did not decode as IPC (a corrupted or foreign process, or a frame over
/// the size limit): the decoder's error goes to the log, and the stream ends as a lost streamer
/// (killed after the grace period if it does not exit, close 1011).
pub(crate) fn ipc_broken(key: &str, error: &wire::ipc::IpcError) {
    tracing::warn!(session = %key, %error, "the streamer's IPC output is corrupt; ending the stream");
}

/// The streamer's last words: its `Error` and `Ended`, collected until it closes its stdout.
#[derive(Debug, Default)]
pub(crate) struct LastWords {
    pub(crate) error: Option<String>,
    pub(crate) ended: Option<wire::ipc::Ended>,
    /// The streamer reported `Started`: its control (ENet) peer is connected on the host.
    pub(crate) started: bool,
}

/// The streamer settings of WebRTC mode, from `[webrtc]`.
pub(crate) fn webrtc_settings(c: &crate::config::WebRtc) -> wire::ipc::WebRtcSettings {
    use crate::config::{NatCandidateType as C, NetworkType as N};
    wire::ipc::WebRtcSettings {
        udp_port_min: c.udp_port_min,
        udp_port_max: c.udp_port_max,
        bind_address: c.bind_address.to_string(),
        nat_1to1_ips: c.nat_1to1_ips.iter().map(ToString::to_string).collect(),
        nat_1to1_candidate_type: match c.nat_candidate_type {
            C::Host => wire::ipc::NatCandidateType::Host,
            C::Srflx => wire::ipc::NatCandidateType::Srflx,
        },
        network_types: c
            .network_types
            .iter()
            .map(|t| match t {
                N::Udp4 => wire::ipc::NetworkType::Udp4,
                N::Udp6 => wire::ipc::NetworkType::Udp6,
            })
            .collect(),
        disconnect_timeout_ms: u32::try_from(c.disconnect_timeout.as_millis()).unwrap_or(u32::MAX),
    }
}

/// The `reason` label of `moongate_stream_ends_total`.
fn end_label(end: &End, last: &LastWords) -> EndLabel {
    match end {
        End::BrowserClosed => EndLabel::BrowserClosed,
        End::BrowserGone => EndLabel::BrowserGone,
        End::Refused(_) => EndLabel::Refused,
        End::Stopped(StopReason::Superseded) => EndLabel::Superseded,
        End::Stopped(StopReason::AdminKill) => EndLabel::AdminKill,
        End::Stopped(StopReason::Shutdown) => EndLabel::Shutdown,
        End::StreamerEnded | End::StreamerLost => {
            if last.error.is_some() {
                return EndLabel::StreamerError;
            }
            match &last.ended {
                Some(e) if e.reason == EndReason::HostEnded => EndLabel::HostEnded,
                Some(e) if e.reason == EndReason::Stopped => EndLabel::Stopped,
                Some(e) if e.reason == EndReason::PeerGone => EndLabel::BrowserGone,
                Some(_) => EndLabel::StreamerError,
                None => EndLabel::StreamerCrash,
            }
        }
    }
}

/// What a stream's end releases: its registry entry, its process, its admin/metrics row.
pub(crate) struct Ends<'a> {
    pub(crate) guard: SessionGuard,
    pub(crate) child: &'a mut StreamerChild,
    pub(crate) observer: &'a mut StreamObserver,
}

/// The operator's caps on streams at once: in all (the whole cluster in Redis mode) and per
/// client id ([`crate::limits::check_caps`]).
async fn stream_caps(state: &AppState, key: &SessionKey, host_id: i64) -> Result<(), Close> {
    let limits = state.config.limits;
    if limits.max_streams == 0 && limits.max_streams_per_client == 0 {
        return Ok(());
    }
    let infos: Vec<crate::sessions::SessionInfo> = match &state.cluster {
        Some(cluster) => match cluster.list().await {
            Ok(all) => all.into_iter().map(|s| s.info).collect(),
            // The claim reports Redis trouble with its own close; count this node meanwhile.
            Err(_) => state.sessions.list(),
        },
        None => state.sessions.list(),
    };
    let texts: Vec<String> = infos.iter().map(|s| s.key.to_string()).collect();
    let live: Vec<crate::limits::LiveStream<'_>> = infos
        .iter()
        .zip(&texts)
        .map(|(s, text)| crate::limits::LiveStream {
            key: text,
            client: &s.client_id,
            host_id: s.meta.host_id,
        })
        .collect();
    let text = key.to_string();
    let new = crate::limits::LiveStream {
        key: &text,
        client: &key.client,
        host_id,
    };
    match crate::limits::check_caps(&limits, &live, &new) {
        Ok(()) => Ok(()),
        Err(why) => {
            let error = match why {
                Rejection::MaxStreamsPerClient => format!(
                    "TooManyStreams: this client runs its maximum of {} streams",
                    limits.max_streams_per_client
                ),
                _ => format!(
                    "TooManyStreams: the gateway runs its maximum of {} streams; try again later",
                    limits.max_streams
                ),
            };
            Err(Close::limit(
                state,
                why,
                crate::limits::CLOSE_TRY_AGAIN_LATER,
                error,
            ))
        }
    }
}

/// A client id not in the certificate cache whose identity for `host_id` is in the store (paired
/// through another gateway of the cluster, or before this gateway restarted) gets that identity
/// back, so it streams without pairing again. A stored key that does not open is left alone:
/// the client gets a fresh identity and pairs, as before.
async fn seed_identity_from_store(state: &AppState, host_id: i64, client: &str) {
    if state.certs.lookup(client).is_some() {
        return;
    }
    let record = match state.store.get_identity(host_id, client).await {
        Ok(Some(r)) => r,
        Ok(None) => return,
        Err(e) => {
            tracing::warn!(host = host_id, error = %e, "cannot read a stored client identity; a new one will pair");
            return;
        }
    };
    match gamestream::identity::Identity::from_pem(&record.cert_pem, &record.key_pem) {
        Ok(identity) => {
            state.certs.insert_if_absent(client, identity);
        }
        Err(e) => {
            tracing::warn!(host = host_id, error = %e, "a stored client identity does not load; a new one will pair")
        }
    }
}

/// The HTTPS port of a host stored without one (added by address and HTTP port only): what its
/// `/serverinfo` says (`HttpsPort`), as every Moonlight client learns it. Sunshine and Wolf on
/// non-default ports do not serve HTTPS on 47984; the default is only the last resort.
async fn learn_https_port(
    state: &AppState,
    host: &crate::store::HostRecord,
    identity: &gamestream::identity::Identity,
) -> u16 {
    let client = NvHttpClient::new(
        HostAddress::with_ports(host.address.clone(), host.http_port, None),
        identity.clone(),
        None,
    )
    .with_timeout(state.config.timeouts.host_request);
    match client.server_info_http().await {
        Ok(info) => info.https_port,
        Err(e) => {
            tracing::warn!(host = host.id, error = %e, "cannot read the host's HTTPS port from /serverinfo; trying the default");
            gamestream::nvhttp::DEFAULT_HTTPS_PORT
        }
    }
}

/// The streamer is gone without its own teardown (killed, crashed, or exited before `Ended`):
/// the gateway `/cancel`s the host session itself, with the stream's identity, so the host is not
/// left busy (Sunshine and Wolf keep a launched session until told).
///
/// Before `Started` at once. After it, the streamer's ENet control peer is connected on the host,
/// and a `/cancel` before that peer's DISCONNECT (which a dead process never sends; the host's
/// ENet timeout stands in for it) is the order that crashes a real Wolf: the `/cancel` then waits
/// out that timeout ([`crate::host_cleanup`]), unless a new stream of the same identity takes the
/// host session over first.
async fn cancel_after_death(key: &str, last: &LastWords, child: &mut StreamerChild) {
    let Some(host_session) = child.take_host_session() else {
        return;
    };
    if last.started {
        match host_session.cancel_later() {
            Some(after) => tracing::warn!(session = %key, after_secs = after.as_secs(),
                "the streamer died mid-stream: its host session is cancelled once the host's ENet peer has timed out"),
            None => {
                tracing::warn!(session = %key, "the streamer died mid-stream; its host session is left to the host")
            }
        }
        return;
    }
    match host_session.cancel().await {
        Ok(()) => tracing::info!(session = %key, "the streamer died: cancelled its host session"),
        Err(e) => {
            tracing::info!(session = %key, error = %e, "the streamer died: /cancel on the host failed")
        }
    }
}

/// The streamer said, by its exit code, that the host did not answer its teardown's `/cancel`
/// (`streamer::session::exit::HOST_UNANSWERED`).
fn left_on_host(status: &std::io::Result<std::process::ExitStatus>) -> bool {
    const HOST_UNANSWERED: i32 = 5;
    matches!(status, Ok(s) if s.code() == Some(HOST_UNANSWERED))
}

/// The host did not answer the streamer's `/cancel` (it hung, crashed or lost its network, which
/// usually ended the stream with `ConnectionLost`; or it did so while the stream was being
/// stopped), and a host that comes back still holds the session — real Wolf
/// keeps a session whose ENet peer timed out paused, and busy, until cancelled, and the strict demo
/// host does the same. Left alone, that session stays until the same identity streams again (or
/// the host's idle timeout, if it has one). So the gateway cancels it once the host answers again
/// and its ENet timeout has passed ([`crate::host_cleanup`]); a new stream of the same identity
/// takes over first, as after a streamer's death. A `/cancel` of a session the host no longer has
/// (it restarted) is answered with an error and ends nothing. Only on the streamer's word: a
/// stream whose `/cancel` was answered leaves nothing, and a later `/cancel` could end a new
/// stream of the same identity opened through another gateway node.
fn cancel_left_session(key: &str, child: &mut StreamerChild) {
    if let Some(after) = child.take_host_session().and_then(|s| s.cancel_later()) {
        tracing::info!(session = %key, after_secs = after.as_secs(),
            "the host did not answer the streamer's /cancel: its session is cancelled once it answers again");
    }
}

/// The one teardown path of every mode: `Stop` → the streamer cancels on the host and exits →
/// reap → the registry entry goes → the close to send.
pub(crate) async fn teardown(
    key: &str,
    last: &mut LastWords,
    end: End,
    ends: Ends<'_>,
    mut ipc_tx: IpcTx,
    mut ipc_rx: IpcRx,
) -> Close {
    let Ends {
        guard,
        child,
        observer,
    } = ends;
    let t0 = Instant::now();
    if !matches!(end, End::StreamerEnded | End::StreamerLost) {
        let _ = tokio::time::timeout(Duration::from_secs(1), ipc_tx.send(ToStreamer::Stop)).await;
    }
    drop(ipc_tx);
    // Collect the streamer's last words (Error, Ended) until it closes stdout.
    let drain = async {
        while let Some(Ok(frame)) = ipc_rx.next().await {
            match frame {
                FromStreamer::Error(e) => last.error = Some(e.browser_text()),
                FromStreamer::Ended(e) => last.ended = Some(e),
                _ => {}
            }
        }
    };
    // One grace period for both: the streamer's last frames and its exit (then it is killed), so
    // a superseding connection waits at most about this long.
    let deadline = tokio::time::Instant::now() + STREAMER_GRACE;
    let _ = tokio::time::timeout_at(deadline, drain).await;
    drop(ipc_rx);
    let left = deadline.saturating_duration_since(tokio::time::Instant::now());
    let status = child.reap(left).await;
    let exit_ms = t0.elapsed().as_millis() as u64;
    if last.ended.is_none() {
        cancel_after_death(key, last, child).await;
    } else if last.started && left_on_host(&status) {
        cancel_left_session(key, child);
    }
    // The entry goes the moment the streamer is gone (and, if it died, its host session was
    // cancelled), whatever ended it: a superseding stream of the same identity launches after.
    drop(guard);
    tracing::info!(session = %key, ?end, ?status, exit_ms, "stream ended; streamer reaped");
    observer.ended(end_label(&end, last));
    let status_text = match &status {
        Ok(s) => s.to_string(),
        Err(e) => e.to_string(),
    };
    match end {
        End::Stopped(reason) => Close::stopped(reason),
        End::BrowserClosed => Close::normal("stream ended"),
        End::BrowserGone => Close::normal("browser unresponsive"),
        End::Refused(close) => close,
        End::StreamerEnded | End::StreamerLost => {
            if let Some(error) = last.error.take() {
                return Close::failure(error);
            }
            match last.ended.take() {
                Some(e) if e.reason == EndReason::HostEnded => {
                    Close::normal("host ended the stream")
                }
                Some(e) if e.reason == EndReason::Stopped => Close::normal("stream ended"),
                Some(e) if e.reason == EndReason::PeerGone => Close::normal("PeerDisconnect"),
                Some(e) => Close::failure(format!(
                    "InternalServerError: stream ended: {}",
                    e.message.unwrap_or_else(|| format!("{:?}", e.reason))
                )),
                None => Close::failure(format!(
                    "InternalServerError: the streamer exited unexpectedly ({status_text})"
                )),
            }
        }
    }
}
