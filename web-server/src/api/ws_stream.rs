//! `GET /api/ws/stream`: WebSocket-only streaming, wire-compatible with the Helix frontend
//! (`helix-ws-contract.md` §1.4, §1.7, §2, §4).
//!
//! One connection opens a stream = one registry entry = one `streamer` child; other connections
//! may watch it (`ws_watch`, docs/browser-protocol.md §8):
//!
//! 1. binary messages before the JSON `init` are skipped (an early Ping is answered);
//!    credentials come from `Authorization: Bearer` on the upgrade or the init's `credentials`;
//! 2. the shared launch ([`crate::stream::launch`]): key `{session}-{lobby}-{client}`, supersede,
//!    pairing, the streamer spawned and sent `Init`;
//! 3. `Started` becomes StreamInit (0x30) + ConnectionComplete, then video (keyframe first) and
//!    audio go to every member's time-budgeted queue ([`Hub`]); Pings are answered by each
//!    member's reader, ahead of any media; the controller's input goes to the streamer;
//! 4. with `"adaptive": true`, the owner's link is sampled once a second and a change of rung
//!    restreams (`ToStreamer::Restream`; docs/browser-protocol.md §10, docs/adaptive-quality.md);
//! 5. the stream ends when the last member leaves (or the host, a supersede or an admin ends
//!    it); every end takes the shared teardown ([`crate::stream::teardown`]) and closes every
//!    member with a real code.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::ws::WebSocket;
use axum::extract::WebSocketUpgrade;
use axum::extract::{ConnectInfo, Query, State};
use axum::http::HeaderMap;
use axum::response::Response;
use futures_util::{SinkExt, StreamExt};
use serde::Deserialize;
use wire::browser::{self, BrowserError, ErrorCode, Init};
use wire::ipc::{FromStreamer, StreamMode, ToStreamer};

use super::ws_hub::{Hub, Inputs};
use super::ws_member::{read_member, Leave, Socket};
use crate::admin::observer::StreamObserver;
use crate::auth::{first_message_principal, AllowedOrigin, Principal};
use crate::error::ApiError;
use crate::launch_gate::LaunchTurn;
use crate::sessions::SessionGuard;
use crate::state::AppState;
use crate::stream::adapt::{adapt_from, log_change, quality_notice, Adaptation, Change, Rung};
use crate::stream::{
    ipc_broken, launch, teardown, Close, End, Ends, LastWords, Launched, StreamRequest,
};
use crate::streamer_proc::{IpcRx, IpcTx};

/// How often the members' keyframe retry is checked (see [`Running::pump`]); the quality
/// controller's worst queue depth is watched on the same tick.
const IDR_RETRY_CHECK_EVERY: Duration = Duration::from_millis(200);
/// How often the owner's link is sampled for the quality controller.
const ADAPT_SAMPLE_EVERY: Duration = Duration::from_secs(1);

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

async fn connection(
    state: AppState,
    socket: WebSocket,
    query: WsQuery,
    who: Option<Principal>,
    peer: SocketAddr,
) {
    let opened = Instant::now();
    let mut socket = Socket::open(socket);
    let close = stream_session(&state, &mut socket, query, who, peer, opened).await;
    socket.finish(Some(&close)).await;
}

/// Everything from the init to the end of the stream; returns how to close the socket.
async fn stream_session(
    state: &AppState,
    socket: &mut Socket,
    query: WsQuery,
    who: Option<Principal>,
    peer: SocketAddr,
    opened: Instant,
) -> Close {
    // 1. The init (binary messages before it are skipped; a Ping is answered).
    let text = match socket.first_text(state, "init").await {
        Ok(text) => text,
        Err(close) => return close,
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
    let owner_name = who.user.clone().unwrap_or_else(|| "guest".into());
    let lobby = init.lobby_id.is_some() || query.lobby_id.is_some();
    let adapt_to = adapt_from(
        init.adaptive,
        lobby,
        (init.width, init.height, init.fps, init.bitrate),
    );

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
    let helix_client = !init.supports_moongate_input();
    let (hub, owner, inputs) = Hub::open(
        state,
        &key.to_string(),
        &owner_name,
        Arc::clone(&socket.outbox),
        helix_client,
    );
    let mut run = Running {
        observer,
        turn,
        hub: Arc::clone(&hub),
        error: None,
        ended: None,
        started: None,
        first_keyframe_logged: false,
        opened,
        key: key.to_string(),
        adapt_to,
        adapt: None,
    };
    // The owner is a member like any viewer: its reader runs beside the stream, which goes on
    // while anyone watches.
    let (stream, outbox) = (&mut socket.stream, &socket.outbox);
    let reader = async {
        if let Some(why) = read_member(stream, outbox, &hub, owner, hub.ended()).await {
            if let Leave::Refused(close) = &why {
                outbox.close(close);
            }
            hub.leave(owner, why);
        }
    };
    let session = async {
        let end = run.pump(&guard, inputs, &mut ipc_tx, &mut ipc_rx).await;
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
        let close = teardown(&run.key, &mut last, end, ends, ipc_tx, ipc_rx).await;
        hub.close_all(&close);
        close
    };
    let ((), close) = tokio::join!(reader, session);
    close
}

struct Running {
    /// Feeds the admin view's live row and the metrics.
    observer: StreamObserver,
    /// The streamer's turn on the host, ended at `Started`.
    turn: LaunchTurn,
    /// The members watching; media goes to each one's queue.
    hub: Arc<Hub>,
    error: Option<BrowserError>,
    ended: Option<wire::ipc::Ended>,
    started: Option<wire::browser::StreamInit>,
    first_keyframe_logged: bool,
    opened: Instant,
    key: String,
    /// The rung the browser asked for, if it wants the quality to follow its link.
    adapt_to: Option<Rung>,
    /// The controller, from the first `Started` on.
    adapt: Option<Adaptation>,
}

impl Running {
    async fn pump(
        &mut self,
        guard: &SessionGuard,
        mut inputs: Inputs,
        ipc_tx: &mut IpcTx,
        ipc_rx: &mut IpcRx,
    ) -> End {
        // The queues' keyframe retry (`QueueConfig::idr_retry`, 1 s) is checked on its own
        // tick: a lost first keyframe is asked for again after about 1 s (the chaos suite saw
        // a first keyframe after 2.4 s during a loss burst when it waited for a keepalive).
        let mut idr_tick = tokio::time::interval(IDR_RETRY_CHECK_EVERY);
        idr_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut adapt_tick = tokio::time::interval(ADAPT_SAMPLE_EVERY);
        adapt_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let mut keyframe = false;
            tokio::select! {
                reason = guard.stopped() => return End::Stopped(reason),
                Some(input) = inputs.recv() => {
                    if ipc_tx.send(ToStreamer::Input(input)).await.is_err() {
                        return End::StreamerLost;
                    }
                }
                () = self.hub.wake.notified() => {
                    if let Some(why) = self.hub.take_all_left() {
                        return match why {
                            Leave::Closed => End::BrowserClosed,
                            Leave::Gone => End::BrowserGone,
                            Leave::Refused(close) => End::Refused(close),
                        };
                    }
                    keyframe |= self.hub.take_keyframe();
                    if let Some(rung) = self.forced_rung() {
                        if ipc_tx.send(ToStreamer::Restream(rung)).await.is_err() {
                            return End::StreamerLost;
                        }
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
                    let now = Instant::now();
                    keyframe |= self.hub.keyframe_retry_due(now);
                    self.adapt_watch(now);
                }
                _ = adapt_tick.tick() => {
                    if let Some(rung) = self.adapt_sample() {
                        if ipc_tx.send(ToStreamer::Restream(rung)).await.is_err() {
                            return End::StreamerLost;
                        }
                    }
                }
            }
            if keyframe && ipc_tx.send(ToStreamer::RequestKeyframe).await.is_err() {
                return End::StreamerLost;
            }
        }
    }

    /// The owner's queue between samples: its worst depth counts.
    fn adapt_watch(&mut self, now: Instant) {
        if let Some(adapt) = self.adapt.as_mut() {
            if let Some((queue, _)) = self.hub.owner_link(now, false) {
                adapt.watch(&queue);
            }
        }
    }

    /// One second of the owner's link for the quality controller; the new rung, if it changes.
    fn adapt_sample(&mut self) -> Option<Rung> {
        let now = Instant::now();
        let adapt = self.adapt.as_mut()?;
        let (queue, rtt) = self.hub.owner_link(now, true)?;
        let from = adapt.current();
        let change = adapt.sample(now, queue, rtt)?;
        Some(self.announce(from, change))
    }

    /// The rung an administrator asked for, if it changes the stream's.
    fn forced_rung(&mut self) -> Option<Rung> {
        let index = self.hub.take_forced_rung()?;
        let adapt = self.adapt.as_mut()?;
        let from = adapt.current();
        let change = adapt.force(Instant::now(), index)?;
        Some(self.announce(from, change))
    }

    /// Logs and counts a rung change and tells the members; returns the rung to restream at.
    fn announce(&mut self, from: Rung, change: Change) -> Rung {
        log_change(&self.key, from, &change);
        self.observer.restream();
        if let Some(adapt) = self.adapt.as_ref() {
            self.hub
                .quality(&quality_notice(&change, adapt.rungs().len()).to_json());
        }
        change.rung
    }

    /// One streamer frame; `Some` when the stream is over.
    fn on_streamer_frame(&mut self, frame: FromStreamer, keyframe: &mut bool) -> Option<End> {
        let now = Instant::now();
        match frame {
            FromStreamer::LaunchTurn(request) => self.turn.on_request(request),
            FromStreamer::Started(s) => {
                self.turn.release();
                if self.adapt.is_none() {
                    self.adapt = self
                        .adapt_to
                        .and_then(|rung| Adaptation::new(rung, now).ok());
                    if let Some(adapt) = &self.adapt {
                        self.hub.set_rungs(adapt.rungs().len());
                    }
                }
                self.hub.started(s);
                self.started = Some(s);
                *keyframe = true;
            }
            FromStreamer::Video(v) => {
                self.started.as_ref()?;
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
                *keyframe |= self.hub.video(&msg, v.keyframe, now);
                self.observer.video_queued();
            }
            FromStreamer::Audio(a) => {
                // Nothing before Started.
                self.started.as_ref()?;
                self.hub.audio(&a.browser_message(), now);
            }
            FromStreamer::Stats(st) => {
                tracing::debug!(session = %self.key, frames = st.video_frames, dropped = st.video_frames_dropped, "streamer stats");
                self.observer.stats(&st, self.hub.queue_stats(now));
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
            FromStreamer::Rumble(r) => {
                if let Ok(msg) = browser::Message::Controller(r.browser_event()).to_vec() {
                    self.hub.rumble(&msg.into());
                }
            }
        }
        None
    }
}
