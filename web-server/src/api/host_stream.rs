//! `GET /api/host/stream`: WebRTC mode's signaling socket, wire-compatible with the Helix
//! frontend (`helix-ws-contract.md` §1.5, §3).
//!
//! The streamer owns the peer connection (media and input data channels never pass through this
//! process); this socket only relays signaling between the browser and the streamer's IPC:
//!
//! 1. the first text message is `AuthenticateAndInit`; its `credentials` are checked unless the
//!    upgrade carried a valid `Authorization: Bearer` (mismatch: `StageFailed{Authentication}`);
//! 2. `StageStarting{Launch Streamer}` → the shared launch path of WebSocket mode (same registry
//!    key `{session}-{lobby}-{client}`, same supersede, same pairing, one streamer) →
//!    `StageComplete{Launch Streamer}`, `WebRtcConfig{ice_servers}`,
//!    `StageComplete{Setup WebRTC Peer}`, `StageStarting{WebRTC Peer Negotiation}`;
//! 3. the browser offers (`create`/`keepalive`); in `join` the streamer offers. Descriptions and
//!    candidates are translated one to one to `ToStreamer::Signal` / from `FromStreamer::Signal`;
//! 4. `Started` → `StageStarting{Moonlight Stream}`; once the peer is also connected,
//!    `ConnectionComplete`;
//! 5. with the moongate extra `"adaptive": true`, each `Stats` from the streamer (the peer's
//!    send queue and the browser's RTCP loss and round trip) feeds the quality controller; a
//!    change of rung is told to the browser (`Quality`) and restreams (`ToStreamer::Restream`;
//!    the peer and its track stay; docs/adaptive-quality.md);
//! 6. every end takes the shared teardown (closing this socket ends the stream); the browser is
//!    told why with a contract message before the close frame (`PeerDisconnect`,
//!    `ClientKicked` + 4000 "superseded", a bare error string, `ConnectionTerminated`).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, Query, State};
use axum::http::HeaderMap;
use axum::response::Response;
use bytes::Bytes;
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use serde::Deserialize;
use wire::browser::signaling::{
    stage, AuthenticateAndInit, Capabilities, ClientMessage, RtcIceServer, ServerMessage,
    SessionMode, Signaling,
};
use wire::browser::{BrowserError, ErrorCode, CLOSE_SUPERSEDED};
use wire::ipc::{FromStreamer, LocalSignal, PeerState, RemoteSignal, StreamMode, ToStreamer};

use super::socket::{answer_close, await_close_answer, CLOSE_ANSWER, CLOSE_FLUSH};
use crate::auth::{resolve_token, AllowedOrigin, Principal};
use crate::error::ApiError;
use crate::sessions::SessionGuard;
use crate::state::AppState;
use crate::stream::adapt::{
    adapt_from, log_change, quality_notice, Adaptation, Change, Rung, RungControl,
};
use crate::stream::{
    clip_reason, ipc_broken, launch, teardown, Close, End, Ends, LastWords, StreamRequest,
};
use crate::streamer_proc::{IpcRx, IpcTx};

/// WebSocket pings, so a dead TCP connection is noticed (the peer has its own timeout).
const KEEPALIVE_EVERY: Duration = Duration::from_secs(5);

/// Query parameters of the upgrade (Helix: `session_id=agent-<ses>-<instance>`).
#[derive(Debug, Default, Deserialize)]
pub struct HostStreamQuery {
    /// Session id; `AuthenticateAndInit.session_id` wins.
    pub session_id: Option<String>,
    /// Lobby id (moongate extra).
    pub lobby_id: Option<String>,
}

/// The upgrade handler. A wrong `Authorization` header is refused before the upgrade; without
/// one, `AuthenticateAndInit.credentials` must match (contract §1.3).
pub async fn handler(
    State(state): State<AppState>,
    _origin: AllowedOrigin,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Query(query): Query<HostStreamQuery>,
    headers: HeaderMap,
    ws: WebSocketUpgrade,
) -> Result<Response, ApiError> {
    super::socket::upgrade(state, peer, &headers, ws, move |state, socket, who| {
        connection(state, socket, query, who, peer)
    })
    .await
}

type Sink = SplitSink<WebSocket, Message>;

async fn send(sink: &mut Sink, msg: &ServerMessage) -> bool {
    sink.send(Message::Text(msg.to_json().into())).await.is_ok()
}

async fn connection(
    state: AppState,
    socket: WebSocket,
    query: HostStreamQuery,
    who: Option<Principal>,
    peer: SocketAddr,
) {
    let (mut sink, mut stream) = socket.split();
    let mut stage_now = stage::LAUNCH_STREAMER;
    let close = signaling_session(
        &state,
        &mut sink,
        &mut stream,
        query,
        who,
        peer,
        &mut stage_now,
    )
    .await;
    tracing::info!(code = close.code, reason = %close.reason, "closing the signaling socket");
    let finish = async {
        if close.code == CLOSE_SUPERSEDED {
            send(&mut sink, &ServerMessage::ClientKicked).await;
        } else if close.peer_gone {
            send(&mut sink, &ServerMessage::PeerDisconnect).await;
        } else if let Some(error) = &close.error {
            let stage = if error.code == ErrorCode::Unauthorized {
                stage::AUTHENTICATION
            } else {
                stage_now
            };
            send(
                &mut sink,
                &ServerMessage::StageFailed {
                    stage: stage.into(),
                    error_code: -1,
                },
            )
            .await;
            // The contract's bare string for the code (§3.3); unnamed codes are
            // `InternalServerError`.
            send(&mut sink, &ServerMessage::error(error.code)).await;
        } else if close.reason != "closed by the browser" {
            send(
                &mut sink,
                &ServerMessage::ConnectionTerminated { error_code: 0 },
            )
            .await;
        }
        let ours = sink
            .send(Message::Close(Some(CloseFrame {
                code: close.code,
                reason: clip_reason(&close.reason).into(),
            })))
            .await;
        match ours {
            // Our Close is out: read until the browser's answer so the handshake completes.
            Ok(()) => await_close_answer(&mut stream).await,
            // The browser closed first (`SendAfterClosing`): its echo may still wait for a flush.
            Err(_) => answer_close(&mut sink).await,
        }
    };
    let _ = tokio::time::timeout(CLOSE_FLUSH + CLOSE_ANSWER, finish).await;
}

/// Reads `AuthenticateAndInit` (binary messages before it are skipped).
async fn read_init(
    state: &AppState,
    stream: &mut SplitStream<WebSocket>,
    who: Option<Principal>,
) -> Result<(AuthenticateAndInit, Principal), Close> {
    let deadline = tokio::time::Instant::now() + state.config.limits.first_message;
    let text = loop {
        match tokio::time::timeout_at(deadline, stream.next()).await {
            Err(_) => return Err(Close::first_message_timeout(state, "AuthenticateAndInit")),
            Ok(Some(Err(e))) if crate::limits::is_too_big(&e) => return Err(Close::too_big(state)),
            Ok(None) | Ok(Some(Err(_))) | Ok(Some(Ok(Message::Close(_)))) => {
                return Err(Close::normal("closed by the browser"))
            }
            Ok(Some(Ok(Message::Text(t)))) => break t,
            Ok(Some(Ok(_))) => {}
        }
    };
    let init = match ClientMessage::parse(text.as_str()) {
        Ok(ClientMessage::AuthenticateAndInit(init)) => init,
        Ok(ClientMessage::Signaling(_)) => {
            return Err(Close::policy(
                ErrorCode::InvalidMessage,
                "the first message must be AuthenticateAndInit",
            ))
        }
        Err(e) => return Err(Close::policy(ErrorCode::InvalidMessage, e)),
    };
    let who = match who {
        Some(who) => who,
        None => {
            let credential = init.credentials.as_deref().unwrap_or_default();
            resolve_token(state, credential).await.map_err(|_| {
                Close::policy(ErrorCode::Unauthorized, "wrong or missing credentials")
            })?
        }
    };
    Ok((init, who))
}

async fn signaling_session(
    state: &AppState,
    sink: &mut Sink,
    stream: &mut SplitStream<WebSocket>,
    query: HostStreamQuery,
    who: Option<Principal>,
    peer: SocketAddr,
    stage_now: &mut &'static str,
) -> Close {
    let (init, who) = match read_init(state, stream, who).await {
        Ok(i) => i,
        Err(close) => return close,
    };
    let session = Some(init.session_id.clone())
        .filter(|s| !s.is_empty())
        .or(query.session_id);
    let lobby = init.lobby_id.clone().or(query.lobby_id);
    let mut client = init.client_unique_id.clone();
    let adapt_to = adapt_from(
        init.adaptive,
        lobby.is_some(),
        (init.width, init.height, init.fps, init.bitrate),
    );

    // `join` attaches to a live session of this session id (superseding its socket: the old one
    // gets `ClientKicked`); the streamer then offers. `keepalive` is served like `create`.
    let server_offers = init.mode == SessionMode::Join;
    if server_offers {
        let live = state.sessions.list().into_iter().find(|e| {
            Some(&e.session_id) == session.as_ref()
                && lobby.as_ref().is_none_or(|l| *l == e.lobby_id)
                && client.as_ref().is_none_or(|c| *c == e.client_id)
        });
        match live {
            Some(e) => client = Some(e.client_id),
            None => return Close::failure(ErrorCode::SessionNotFound, "no live stream to join"),
        }
    }

    if !send(
        sink,
        &ServerMessage::StageStarting {
            stage: stage::LAUNCH_STREAMER.into(),
        },
    )
    .await
    {
        return Close::normal("closed by the browser");
    }
    let request = StreamRequest {
        session,
        lobby,
        client,
        host_index: init.host_id,
        app_id: init.app_id,
        width: init.width,
        height: init.height,
        fps: init.fps,
        bitrate_kbps: init.bitrate,
        packet_size: init.packet_size,
        video_formats: init.video_supported_formats,
        play_audio_local: init.play_audio_local,
        audio_channels: 2,
        mode: StreamMode::Webrtc,
        remote: Some(peer.to_string()),
        principal: who,
    };
    let launched = match launch(state, request).await {
        Ok(l) => l,
        Err(close) => return close,
    };
    let key = launched.key.to_string();
    // The administrator's hand on this stream's ladder, while it runs.
    let rungs = state.rung_controls.register(&key);
    let guard = launched.guard;
    let mut child = launched.child;
    let mut ipc_tx = launched.ipc_tx;
    let mut ipc_rx = launched.ipc_rx;
    let mut observer = launched.observer;
    let mut turn = launched.turn;
    *stage_now = stage::SETUP_WEBRTC_PEER;

    let ice_servers = state
        .config
        .webrtc
        .ice_servers
        .iter()
        .map(|s| RtcIceServer {
            urls: s.urls.clone(),
            username: s.username.clone(),
            credential: s.credential.clone(),
        })
        .collect();
    let hello = [
        ServerMessage::StageComplete {
            stage: stage::LAUNCH_STREAMER.into(),
        },
        ServerMessage::WebRtcConfig { ice_servers },
        ServerMessage::StageComplete {
            stage: stage::SETUP_WEBRTC_PEER.into(),
        },
        ServerMessage::StageStarting {
            stage: stage::WEBRTC_PEER_NEGOTIATION.into(),
        },
    ];
    let mut end = None;
    for m in &hello {
        if !send(sink, m).await {
            end = Some(End::BrowserClosed);
            break;
        }
    }
    *stage_now = stage::WEBRTC_PEER_NEGOTIATION;
    if end.is_none()
        && server_offers
        && ipc_tx
            .send(ToStreamer::Signal(RemoteSignal::CreateOffer))
            .await
            .is_err()
    {
        end = Some(End::StreamerLost);
    }
    let mut last = LastWords::default();
    let end = match end {
        Some(e) => e,
        None => {
            let mut relay = Relay {
                key: &key,
                started: None,
                connected: false,
                complete_sent: false,
                last: &mut last,
                stage_now,
                observer: &mut observer,
                turn: &mut turn,
                state,
                adapt_to,
                adapt: None,
                restream: None,
                rungs: &rungs,
            };
            relay
                .pump(sink, stream, &guard, &mut ipc_tx, &mut ipc_rx)
                .await
        }
    };
    // Nothing polls for a turn during the teardown: one sent now goes on to the next launch.
    turn.stop_waiting();
    let ends = Ends {
        guard,
        child: &mut child,
        observer: &mut observer,
    };
    teardown(&key, &mut last, end, ends, ipc_tx, ipc_rx).await
}

struct Relay<'a> {
    key: &'a str,
    started: Option<wire::browser::StreamInit>,
    connected: bool,
    complete_sent: bool,
    last: &'a mut LastWords,
    stage_now: &'a mut &'static str,
    observer: &'a mut crate::admin::observer::StreamObserver,
    /// The streamer's turn on the host, ended at `Started`.
    turn: &'a mut crate::launch_gate::LaunchTurn,
    state: &'a AppState,
    /// The rung the browser asked for, if it wants the quality to follow its link.
    adapt_to: Option<Rung>,
    /// The controller, from the first `Started` on, fed with the streamer's `Stats`.
    adapt: Option<Adaptation>,
    /// A rung change for the streamer, sent after the browser's notice.
    restream: Option<Rung>,
    /// An administrator's rung for this stream.
    rungs: &'a RungControl,
}

impl Relay<'_> {
    async fn pump(
        &mut self,
        sink: &mut Sink,
        stream: &mut SplitStream<WebSocket>,
        guard: &SessionGuard,
        ipc_tx: &mut IpcTx,
        ipc_rx: &mut IpcRx,
    ) -> End {
        let mut tick = tokio::time::interval_at(
            tokio::time::Instant::now() + KEEPALIVE_EVERY,
            KEEPALIVE_EVERY,
        );
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let out: Vec<ServerMessage> = tokio::select! {
                reason = guard.stopped() => return End::Stopped(reason),
                msg = stream.next() => match msg {
                    Some(Ok(Message::Close(_))) => {
                        answer_close(sink).await;
                        return End::BrowserClosed;
                    }
                    Some(Err(e)) if crate::limits::is_too_big(&e) => {
                        return End::Refused(Close::too_big(self.state));
                    }
                    None | Some(Err(_)) => return End::BrowserClosed,
                    Some(Ok(Message::Text(t))) => {
                        match self.on_browser_text(t.as_str()) {
                            Ok(Some(signal)) => {
                                if ipc_tx.send(ToStreamer::Signal(signal)).await.is_err() {
                                    return End::StreamerLost;
                                }
                            }
                            Ok(None) => {}
                            Err(close) => return End::Refused(close),
                        }
                        Vec::new()
                    }
                    Some(Ok(_)) => Vec::new(),
                },
                frame = ipc_rx.next() => match frame {
                    None => return End::StreamerLost,
                    Some(Err(e)) => {
                        ipc_broken(self.key, &e);
                        return End::StreamerLost;
                    }
                    Some(Ok(FromStreamer::Ended(e))) => {
                        self.last.ended = Some(e);
                        return End::StreamerEnded;
                    }
                    Some(Ok(f)) => self.on_streamer_frame(f),
                },
                () = self.turn.granted() => {
                    if ipc_tx.send(ToStreamer::LaunchTurn).await.is_err() {
                        return End::StreamerLost;
                    }
                    Vec::new()
                }
                () = self.rungs.asked() => self.forced_rung().into_iter().collect(),
                _ = tick.tick() => {
                    if sink.send(Message::Ping(Bytes::new())).await.is_err() {
                        return End::BrowserClosed;
                    }
                    Vec::new()
                }
            };
            for m in &out {
                if !send(sink, m).await {
                    return End::BrowserClosed;
                }
            }
            if let Some(rung) = self.restream.take() {
                if ipc_tx.send(ToStreamer::Restream(rung)).await.is_err() {
                    return End::StreamerLost;
                }
            }
        }
    }

    /// One second of the peer's link for the quality controller: on a change, the browser's
    /// notice (and the streamer's `Restream`, sent after it).
    fn adapt_sample(&mut self, stats: &wire::ipc::Stats) -> Option<ServerMessage> {
        let adapt = self.adapt.as_mut()?;
        let from = adapt.current();
        let change = adapt.sample_peer(Instant::now(), stats)?;
        Some(self.announce(from, change))
    }

    /// The rung an administrator asked for, if it changes the stream's.
    fn forced_rung(&mut self) -> Option<ServerMessage> {
        let index = self.rungs.take()?;
        let adapt = self.adapt.as_mut()?;
        let from = adapt.current();
        let change = adapt.force(Instant::now(), index)?;
        Some(self.announce(from, change))
    }

    /// Logs and counts a rung change and schedules the restream; the browser's notice.
    fn announce(&mut self, from: Rung, change: Change) -> ServerMessage {
        log_change(self.key, from, &change);
        self.observer.restream();
        self.restream = Some(change.rung);
        let rungs = self.adapt.as_ref().map_or(0, |a| a.rungs().len());
        ServerMessage::Quality(quality_notice(&change, rungs))
    }

    /// A browser text message → a signal for the streamer (`None`: nothing to forward).
    fn on_browser_text(&mut self, text: &str) -> Result<Option<RemoteSignal>, Close> {
        match ClientMessage::parse(text) {
            Err(e) => Err(Close::policy(ErrorCode::InvalidMessage, e)),
            Ok(ClientMessage::AuthenticateAndInit(_)) => {
                tracing::warn!(session = %self.key, "second AuthenticateAndInit ignored");
                Ok(None)
            }
            Ok(ClientMessage::Signaling(Signaling::Description(d))) => {
                if d.sdp.len() > 256 * 1024 {
                    return Err(Close::policy(
                        ErrorCode::InvalidMessage,
                        "SDP larger than 256 KiB",
                    ));
                }
                Ok(Some(RemoteSignal::Description(d)))
            }
            Ok(ClientMessage::Signaling(Signaling::AddIceCandidate(c))) => {
                if c.candidate.is_empty() {
                    return Ok(None);
                }
                Ok(Some(RemoteSignal::Candidate(c)))
            }
        }
    }

    /// A streamer frame → messages for the browser.
    fn on_streamer_frame(&mut self, frame: FromStreamer) -> Vec<ServerMessage> {
        let mut out = Vec::new();
        match frame {
            FromStreamer::Signal(LocalSignal::Description(d)) => {
                out.push(ServerMessage::Signaling(Signaling::Description(d)));
            }
            FromStreamer::Signal(LocalSignal::Candidate(c)) => {
                out.push(ServerMessage::Signaling(Signaling::AddIceCandidate(c)));
            }
            FromStreamer::Signal(LocalSignal::State(s)) => {
                tracing::info!(session = %self.key, state = ?s, "peer state");
                if s == PeerState::Connected {
                    self.connected = true;
                }
            }
            FromStreamer::LaunchTurn(request) => self.turn.on_request(request),
            FromStreamer::Started(s) => {
                self.turn.release();
                // A restream's `Started`: the browser's peer and track stay, nothing to say.
                if self.started.is_none() {
                    *self.stage_now = stage::MOONLIGHT_STREAM;
                    out.push(ServerMessage::StageStarting {
                        stage: stage::MOONLIGHT_STREAM.into(),
                    });
                }
                if self.adapt.is_none() {
                    self.adapt = self
                        .adapt_to
                        .and_then(|rung| Adaptation::new(rung, Instant::now()).ok());
                    if let Some(adapt) = &self.adapt {
                        self.rungs.set_rungs(adapt.rungs().len());
                    }
                }
                self.last.started = true;
                self.started = Some(s);
            }
            FromStreamer::Error(e) => {
                tracing::warn!(session = %self.key, code = ?e.code, message = %e.message, "streamer error");
                self.last.error = Some(BrowserError::from(&e));
            }
            FromStreamer::Log(l) => {
                tracing::info!(session = %self.key, level = ?l.level, "streamer: {}", l.message);
            }
            FromStreamer::Stats(st) => {
                tracing::debug!(session = %self.key, frames = st.video_frames, dropped = st.video_frames_dropped, "streamer stats");
                // Media bypasses the gateway in this mode: the streamer's counters are the rates.
                self.observer.stats(&st, None);
                out.extend(self.adapt_sample(&st));
            }
            // Media and rumble flow over the peer connection in this mode.
            FromStreamer::Video(_)
            | FromStreamer::Audio(_)
            | FromStreamer::Rumble(_)
            | FromStreamer::Ended(_) => {}
        }
        if !self.complete_sent && self.connected {
            if let Some(s) = &self.started {
                self.complete_sent = true;
                out.push(ServerMessage::ConnectionComplete {
                    capabilities: Capabilities {
                        touch: s.touch_supported,
                    },
                    width: u32::from(s.width),
                    height: u32::from(s.height),
                    client_id: None,
                });
            }
        }
        out
    }
}
