//! `GET /api/ws/stream`: WebSocket-only streaming, wire-compatible with the Helix frontend
//! (`helix-ws-contract.md` §1.4, §1.7, §2, §4).
//!
//! One connection = one registry entry = one `streamer` child:
//!
//! 1. binary messages before the JSON `init` are skipped (an early Ping is answered);
//!    credentials come from `Authorization: Bearer` on the upgrade or the init's `credentials`;
//! 2. the shared launch ([`crate::stream::launch`]): key `{session}-{lobby}-{client}`, supersede,
//!    pairing, the streamer spawned and sent `Init`;
//! 3. `Started` becomes StreamInit (0x30) + ConnectionComplete, then video (keyframe first) and
//!    audio flow through a time-budgeted [`SendQueue`]; Pings are answered here, ahead of any
//!    media; input goes to the streamer;
//! 4. every end takes the shared teardown ([`crate::stream::teardown`]) and closes with a real
//!    code.

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
use wire::browser::{self, BrowserError, ClientControl, ErrorCode, Init, Pong};
use wire::ipc::{FromStreamer, StreamMode, ToStreamer};

use super::socket::{answer_close, await_close_answer, CLOSE_FLUSH};
use crate::admin::observer::StreamObserver;
use crate::auth::{first_message_principal, AllowedOrigin, Principal};
use crate::error::ApiError;
use crate::launch_gate::LaunchTurn;
use crate::sessions::SessionGuard;
use crate::state::AppState;
use crate::stream::{
    clip_reason, ipc_broken, launch, teardown, Close, End, Ends, LastWords, Launched, StreamRequest,
};
use crate::streamer_proc::{IpcRx, IpcTx};

/// A browser that sent nothing (no Ping, no input, no WebSocket pong) for this long is gone.
const BROWSER_SILENCE: Duration = Duration::from_secs(10);
/// WebSocket pings to the browser, so a silent but alive client still answers.
const KEEPALIVE_EVERY: Duration = Duration::from_secs(2);
/// How often the send queue's keyframe retry is checked (see [`Running::pump`]).
const IDR_RETRY_CHECK_EVERY: Duration = Duration::from_millis(200);

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
    super::socket::upgrade(state, peer, &headers, ws, move |state, socket, who| {
        connection(state, socket, query, who, peer)
    })
    .await
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

/// Writes queued messages until the close frame is sent, the browser's Close is answered (see
/// [`answer_close`]) or the socket fails.
async fn write_loop(mut sink: SplitSink<WebSocket, Message>, outbox: Arc<Outbox>) {
    loop {
        if outbox.peer_closed.load(Ordering::Acquire) {
            answer_close(&mut sink).await;
            return;
        }
        let next = outbox.queue().pop(Instant::now());
        match next {
            Some(msg) => {
                let last = matches!(msg, Message::Close(_));
                if sink.send(msg).await.is_err() {
                    // The browser may have closed meanwhile: its echo still waits for a flush.
                    answer_close(&mut sink).await;
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

async fn connection(
    state: AppState,
    socket: WebSocket,
    query: WsQuery,
    who: Option<Principal>,
    peer: SocketAddr,
) {
    let opened = Instant::now();
    let (sink, mut stream) = socket.split();
    let outbox = Arc::new(Outbox::new());
    let writer = tokio::spawn(write_loop(sink, Arc::clone(&outbox)));
    let abort_writer = writer.abort_handle();

    let close = stream_session(&state, &mut stream, &outbox, query, who, peer, opened).await;
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
        outbox.control(Message::Text(error.to_json().into()));
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
    who: Option<Principal>,
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
    let who = match who {
        Some(who) => who,
        None => match first_message_principal(state, text.as_str()).await {
            Ok(who) => who,
            Err(e) => {
                tracing::warn!(%peer, error = %e, "stream socket refused");
                return Close::policy(ErrorCode::Unauthorized, e);
            }
        },
    };
    let init = match Init::parse(text.as_str()).and_then(|i| i.validate().map(|()| i)) {
        Ok(init) => init,
        Err(e) => return Close::policy(ErrorCode::InvalidInit, e),
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
        principal: who,
    };
    let Launched {
        key,
        guard,
        mut child,
        mut ipc_tx,
        mut ipc_rx,
        observer,
        turn,
    } = match launch(state, request).await {
        Ok(l) => l,
        Err(close) => return close,
    };
    let mut run = Running {
        observer,
        turn,
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
    // Nothing polls for a turn during the teardown: one sent now goes on to the next launch.
    run.turn.stop_waiting();
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

struct Running {
    /// Feeds the admin view's live row and the metrics.
    observer: StreamObserver,
    /// The streamer's turn on the host, ended at `Started`.
    turn: LaunchTurn,
    outbox: Arc<Outbox>,
    error: Option<BrowserError>,
    ended: Option<wire::ipc::Ended>,
    started: Option<wire::browser::StreamInit>,
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
                            // Control messages (set_video_enabled) are the gateway's: its queue
                            // gates video and asks for the one keyframe; the streamer never sees
                            // them in this mode, so one toggle is one IDR request.
                            if ty == browser::msg_type::CONTROL_MESSAGE {
                                keyframe |= self.control(&b);
                            } else if ipc_tx.send(ToStreamer::Input(b)).await.is_err() {
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
                () = self.turn.granted() => {
                    if ipc_tx.send(ToStreamer::LaunchTurn).await.is_err() {
                        return End::StreamerLost;
                    }
                }
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
            FromStreamer::LaunchTurn(request) => self.turn.on_request(request),
            FromStreamer::Started(s) => {
                self.turn.release();
                let mut init = s;
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
                if self.started.is_none() || !self.video_enabled {
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
                // The streamer wrote the browser's message; its bytes go on as they were read.
                let msg = v.browser_message();
                let len = msg.len();
                let mut q = self.outbox.queue();
                q.push_video(Message::Binary(msg), len, v.keyframe, now);
                self.observer.video_queued();
                *keyframe |= q.take_keyframe_request(now);
                drop(q);
                self.outbox.wake.notify_one();
            }
            FromStreamer::Audio(a) => {
                // Nothing before Started.
                self.started.as_ref()?;
                let msg = a.browser_message();
                let len = msg.len();
                self.outbox
                    .queue()
                    .push_audio(Message::Binary(msg), len, now);
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
                self.error = Some(BrowserError::from(&e));
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
