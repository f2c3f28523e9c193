//! WHEP-style WebRTC playback (RFC 9725 shape) for clients that prefer plain HTTP signaling:
//!
//! | route | what |
//! |---|---|
//! | `POST /api/whep?host_id=&app_id=&width=&height=&fps=&bitrate=&session_id=&lobby_id=&client_unique_id=` | body: SDP offer (`application/sdp`) → `201 Created`, `Location: /api/whep/{id}`, body: SDP answer (with every candidate) |
//! | `PATCH /api/whep/{id}` | body: `application/trickle-ice-sdpfrag` (`a=candidate:` lines) → `204` |
//! | `DELETE /api/whep/{id}` | ends the stream (the one teardown path; returns when the streamer is gone) → `200` |
//!
//! The bearer credential is required as for every REST route. A resource is the same stream as a
//! WebSocket or signaling-socket stream: the same registry key, supersede and teardown. The
//! resource lives until DELETE, the peer going away (ICE failed or disconnected for the timeout),
//! the host ending, or a supersede.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, Query, State};
use axum::http::header::{CONTENT_TYPE, LOCATION};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use futures_util::{SinkExt, StreamExt};
use serde::Deserialize;
use tokio::sync::{mpsc, oneshot};
use wire::browser::{BrowserError, ErrorCode as C};
use wire::ipc::{
    ErrorCode, FromStreamer, IceCandidate, LocalSignal, PeerState, RemoteSignal, SdpType,
    SessionDescription, StreamMode, ToStreamer,
};

use crate::error::ApiError;
use crate::state::AppState;
use crate::stream::{
    ipc_broken, launch, teardown, Close, End, Ends, LastWords, Launched, StreamRequest,
};

/// How long the streamer may take to answer the offer.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(20);
/// How long DELETE waits for the teardown.
const DELETE_TIMEOUT: Duration = Duration::from_secs(15);
/// A resource whose peer never connects within this is ended (nothing else would: no socket).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// Largest accepted offer.
const MAX_SDP: usize = 256 * 1024;

/// Stream parameters in the query (defaults as the Helix viewer's).
#[derive(Debug, Deserialize)]
#[serde(default)]
pub struct WhepQuery {
    /// Session id (default `whep-<uuid>`).
    pub session_id: Option<String>,
    /// Lobby id.
    pub lobby_id: Option<String>,
    /// Client id (default: a fresh one).
    pub client_unique_id: Option<String>,
    /// Index into the host list.
    pub host_id: u32,
    /// Moonlight app id.
    pub app_id: u32,
    /// Width.
    pub width: u32,
    /// Height.
    pub height: u32,
    /// Frame rate.
    pub fps: u32,
    /// kbit/s.
    pub bitrate: u32,
    /// `SupportedVideoFormats` bits.
    pub video_supported_formats: u32,
    /// Audio stays on the host.
    pub play_audio_local: bool,
}

impl Default for WhepQuery {
    fn default() -> Self {
        WhepQuery {
            session_id: None,
            lobby_id: None,
            client_unique_id: None,
            host_id: 0,
            app_id: 1,
            width: 1920,
            height: 1080,
            fps: 60,
            bitrate: 10_000,
            video_supported_formats: 1,
            play_audio_local: false,
        }
    }
}

enum Command {
    Candidates(Vec<IceCandidate>),
    Stop(oneshot::Sender<()>),
}

/// Live resources by id. Each entry is removed by its own stream task when the stream ends, so
/// the map never outlives a stream; ids are random, so gateways in one process never collide.
fn resources() -> &'static Mutex<HashMap<String, mpsc::Sender<Command>>> {
    static MAP: OnceLock<Mutex<HashMap<String, mpsc::Sender<Command>>>> = OnceLock::new();
    MAP.get_or_init(Default::default)
}

fn resource(id: &str) -> Option<mpsc::Sender<Command>> {
    resources()
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .get(id)
        .cloned()
}

fn content_type_is(headers: &HeaderMap, want: &str) -> bool {
    headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case(want))
}

/// A failed launch or negotiation as an HTTP error, decided by the close's typed code.
fn close_to_error(close: Close) -> ApiError {
    let Some(error) = close.error else {
        return ApiError::new(StatusCode::BAD_GATEWAY, "stream_failed", close.reason);
    };
    let (status, code) = match error.code {
        C::HostNotFound => (StatusCode::NOT_FOUND, "host_not_found"),
        C::AppNotFound => (StatusCode::NOT_FOUND, "app_not_found"),
        C::InvalidInit => (StatusCode::BAD_REQUEST, "bad_request"),
        // An offer without the host's codec is the client's to fix, not the host's failure.
        C::BadSignal => (StatusCode::BAD_REQUEST, "bad_sdp"),
        C::UnsupportedCodec => (StatusCode::BAD_REQUEST, "unsupported_codec"),
        C::AlreadyStreaming => (StatusCode::CONFLICT, "already_streaming"),
        C::Superseded => (StatusCode::CONFLICT, "superseded"),
        C::NoIcePort => (StatusCode::SERVICE_UNAVAILABLE, "no_ice_port"),
        _ => (StatusCode::BAD_GATEWAY, "stream_failed"),
    };
    ApiError::new(status, code, error.text)
}

/// `POST /api/whep`: offer in, answer out.
pub async fn offer(
    State(state): State<AppState>,
    axum::extract::ConnectInfo(peer): axum::extract::ConnectInfo<std::net::SocketAddr>,
    Query(q): Query<WhepQuery>,
    axum::Extension(who): axum::Extension<crate::auth::Principal>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    state.allow_open(peer.ip())?;
    if !content_type_is(&headers, "application/sdp") {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "the offer must be Content-Type: application/sdp",
        ));
    }
    if body.len() > MAX_SDP {
        return Err(ApiError::bad_request("the offer is larger than 256 KiB"));
    }
    let sdp = std::str::from_utf8(&body)
        .map_err(|_| ApiError::bad_request("the offer is not UTF-8"))?
        .to_string();
    if !sdp.trim_start().starts_with("v=0") {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_sdp",
            "the body is not an SDP offer (no v=0 line)",
        ));
    }
    let request = StreamRequest {
        session: Some(
            q.session_id
                .unwrap_or_else(|| format!("whep-{}", uuid::Uuid::new_v4())),
        ),
        lobby: q.lobby_id,
        client: q.client_unique_id,
        host_index: q.host_id,
        app_id: q.app_id,
        width: q.width,
        height: q.height,
        fps: q.fps,
        bitrate_kbps: q.bitrate,
        packet_size: 1024,
        video_formats: q.video_supported_formats,
        play_audio_local: q.play_audio_local,
        audio_channels: 2,
        mode: StreamMode::Webrtc,
        remote: None,
        principal: who,
    };
    let Launched {
        key,
        guard,
        mut child,
        mut ipc_tx,
        mut ipc_rx,
        mut observer,
        mut turn,
    } = launch(&state, request).await.map_err(close_to_error)?;
    let key = key.to_string();

    // Offer → answer; anything else that ends the stream first is the error.
    let mut last = LastWords::default();
    let negotiated = async {
        if ipc_tx
            .send(ToStreamer::Signal(RemoteSignal::Description(
                SessionDescription {
                    ty: SdpType::Offer,
                    sdp,
                },
            )))
            .await
            .is_err()
        {
            return Err(End::StreamerLost);
        }
        loop {
            tokio::select! {
                reason = guard.stopped() => return Err(End::Stopped(reason)),
                frame = ipc_rx.next() => match frame {
                    None => return Err(End::StreamerLost),
                    Some(Err(e)) => {
                        ipc_broken(&key, &e);
                        return Err(End::StreamerLost);
                    }
                    Some(Ok(FromStreamer::Signal(LocalSignal::Description(d)))) if d.ty == SdpType::Answer => {
                        return Ok(d.sdp)
                    }
                    Some(Ok(FromStreamer::Error(e))) => {
                        let bad = e.code == ErrorCode::BadSignal;
                        last.error = Some(BrowserError::from(&e));
                        if bad {
                            return Err(End::StreamerEnded);
                        }
                    }
                    Some(Ok(FromStreamer::Ended(e))) => {
                        last.ended = Some(e);
                        return Err(End::StreamerEnded);
                    }
                    Some(Ok(other)) => launch_progress(other, &mut last, &mut turn),
                },
                () = turn.granted() => {
                    if ipc_tx.send(ToStreamer::LaunchTurn).await.is_err() {
                        return Err(End::StreamerLost);
                    }
                }
            }
        }
    };
    let answer = match tokio::time::timeout(ANSWER_TIMEOUT, negotiated).await {
        Ok(Ok(answer)) => answer,
        Ok(Err(end)) => {
            // Nothing polls for a turn during the teardown: one sent now goes to the next launch.
            turn.stop_waiting();
            let ends = Ends {
                guard,
                child: &mut child,
                observer: &mut observer,
            };
            let close = teardown(&key, &mut last, end, ends, ipc_tx, ipc_rx).await;
            return Err(close_to_error(close));
        }
        Err(_) => {
            turn.stop_waiting();
            let unanswered = BrowserError::new(
                C::InternalServerError,
                "the streamer did not answer the offer",
            );
            last.error = Some(unanswered.clone());
            let close = teardown(
                &key,
                &mut last,
                End::Refused(Close::failed(unanswered)),
                Ends {
                    guard,
                    child: &mut child,
                    observer: &mut observer,
                },
                ipc_tx,
                ipc_rx,
            )
            .await;
            return Err(close_to_error(close));
        }
    };

    let id = uuid::Uuid::new_v4().simple().to_string();
    let (tx, mut rx) = mpsc::channel::<Command>(16);
    resources()
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(id.clone(), tx);
    tracing::info!(session = %key, resource = %id, "WHEP stream negotiated");

    // The stream's owner from here on: it ends on DELETE, the streamer's end, or a supersede,
    // and always through the shared teardown.
    let task_id = id.clone();
    tokio::spawn(async move {
        let mut stopper: Option<oneshot::Sender<()>> = None;
        let mut connected = false;
        let connect_deadline = tokio::time::sleep(CONNECT_TIMEOUT);
        tokio::pin!(connect_deadline);
        let end = loop {
            tokio::select! {
                reason = guard.stopped() => break End::Stopped(reason),
                _ = &mut connect_deadline, if !connected => {
                    break End::Refused(Close::failure(
                        C::PeerDisconnect,
                        format!("the peer did not connect within {} s", CONNECT_TIMEOUT.as_secs()),
                    ));
                }
                cmd = rx.recv() => match cmd {
                    None => break End::BrowserClosed,
                    Some(Command::Stop(done)) => {
                        stopper = Some(done);
                        break End::BrowserClosed;
                    }
                    Some(Command::Candidates(cs)) => {
                        for c in cs {
                            if ipc_tx.send(ToStreamer::Signal(RemoteSignal::Candidate(c))).await.is_err() {
                                break;
                            }
                        }
                    }
                },
                frame = ipc_rx.next() => match frame {
                    None => break End::StreamerLost,
                    Some(Err(e)) => {
                        ipc_broken(&key, &e);
                        break End::StreamerLost;
                    }
                    Some(Ok(FromStreamer::Ended(e))) => {
                        last.ended = Some(e);
                        break End::StreamerEnded;
                    }
                    Some(Ok(FromStreamer::Error(e))) => last.error = Some(BrowserError::from(&e)),
                    Some(Ok(FromStreamer::Signal(LocalSignal::State(PeerState::Connected)))) => {
                        connected = true;
                    }
                    Some(Ok(FromStreamer::Stats(st))) => observer.stats(&st, None),
                    Some(Ok(other)) => launch_progress(other, &mut last, &mut turn),
                },
                () = turn.granted() => {
                    if ipc_tx.send(ToStreamer::LaunchTurn).await.is_err() {
                        break End::StreamerLost;
                    }
                }
            }
        };
        turn.stop_waiting();
        resources()
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&task_id);
        let ends = Ends {
            guard,
            child: &mut child,
            observer: &mut observer,
        };
        let close = teardown(&key, &mut last, end, ends, ipc_tx, ipc_rx).await;
        tracing::info!(session = %key, resource = %task_id, reason = %close.reason, "WHEP stream ended");
        if let Some(done) = stopper {
            let _ = done.send(());
        }
    });

    Ok((
        StatusCode::CREATED,
        [
            (CONTENT_TYPE, "application/sdp".to_string()),
            (LOCATION, format!("/api/whep/{id}")),
        ],
        answer,
    )
        .into_response())
}

/// The launch-turn traffic of both phases (negotiation and the running stream): `Started` means
/// the launch is done on the host, so its turn is released; a `LaunchTurn` request asks for one.
/// Other frames do not matter here.
fn launch_progress(
    frame: FromStreamer,
    last: &mut LastWords,
    turn: &mut crate::launch_gate::LaunchTurn,
) {
    match frame {
        FromStreamer::Started(_) => {
            last.started = true;
            turn.release();
        }
        FromStreamer::LaunchTurn(request) => turn.on_request(request),
        _ => {}
    }
}

fn no_resource() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such WHEP resource")
}

/// Candidates of a trickle-ICE SDP fragment (RFC 8840): `a=mid:` sets the media id of the
/// `a=candidate:` lines after it.
fn parse_sdpfrag(frag: &str) -> Vec<IceCandidate> {
    let mut mid: Option<String> = None;
    let mut ufrag: Option<String> = None;
    let mut out = Vec::new();
    for line in frag.lines().map(str::trim) {
        if let Some(m) = line.strip_prefix("a=mid:") {
            mid = Some(m.to_string());
        } else if let Some(u) = line.strip_prefix("a=ice-ufrag:") {
            ufrag = Some(u.to_string());
        } else if let Some(c) = line.strip_prefix("a=") {
            if c.starts_with("candidate:") {
                out.push(IceCandidate {
                    candidate: c.to_string(),
                    sdp_mid: mid.clone(),
                    sdp_mline_index: mid.is_none().then_some(0),
                    username_fragment: ufrag.clone(),
                });
            }
        }
    }
    out
}

/// `PATCH /api/whep/{id}`: trickled candidates.
pub async fn patch(
    id: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<StatusCode, ApiError> {
    let id = super::path(id)?;
    let tx = resource(&id).ok_or_else(no_resource)?;
    if !content_type_is(&headers, "application/trickle-ice-sdpfrag") {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "candidates must be Content-Type: application/trickle-ice-sdpfrag",
        ));
    }
    let frag = std::str::from_utf8(&body)
        .map_err(|_| ApiError::bad_request("the SDP fragment is not UTF-8"))?;
    let candidates = parse_sdpfrag(frag);
    if !candidates.is_empty() && tx.send(Command::Candidates(candidates)).await.is_err() {
        return Err(no_resource());
    }
    Ok(StatusCode::NO_CONTENT)
}

/// `DELETE /api/whep/{id}`: ends the stream and returns once the streamer is gone.
pub async fn delete(id: Result<Path<String>, PathRejection>) -> Result<StatusCode, ApiError> {
    let id = super::path(id)?;
    let tx = resource(&id).ok_or_else(no_resource)?;
    let (done_tx, done_rx) = oneshot::channel();
    if tx.send(Command::Stop(done_tx)).await.is_err() {
        return Err(no_resource());
    }
    match tokio::time::timeout(DELETE_TIMEOUT, done_rx).await {
        Ok(_) => Ok(StatusCode::OK),
        Err(_) => Err(ApiError::internal("the stream did not end in time")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sdpfrag_candidates() {
        let frag = "a=ice-ufrag:abcd\r\na=ice-pwd:x\r\nm=audio 9 UDP/TLS/RTP/SAVPF 0\r\na=mid:0\r\na=candidate:1 1 udp 2130706431 127.0.0.1 5000 typ host\r\na=end-of-candidates\r\n";
        let c = parse_sdpfrag(frag);
        assert_eq!(c.len(), 1);
        assert_eq!(
            c[0].candidate,
            "candidate:1 1 udp 2130706431 127.0.0.1 5000 typ host"
        );
        assert_eq!(c[0].sdp_mid.as_deref(), Some("0"));
        assert_eq!(c[0].username_fragment.as_deref(), Some("abcd"));
        assert!(parse_sdpfrag("garbage\n\u{0}").is_empty());
    }

    #[test]
    fn errors_map_to_statuses() {
        let e = close_to_error(Close::failure(C::NoIcePort, "no free UDP port in 1-2"));
        assert_eq!(e.status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(e.message, "NoIcePort: no free UDP port in 1-2");
        let e = close_to_error(Close::failure(C::HostNotFound, "no host with index 3"));
        assert_eq!(e.status, StatusCode::NOT_FOUND);
        let e = close_to_error(Close::failure(
            C::UnsupportedCodec,
            "the browser's offer has no video m-line accepting H264",
        ));
        assert_eq!(
            (e.status, e.code),
            (StatusCode::BAD_REQUEST, "unsupported_codec")
        );
        // Decided by the code, whatever the text says.
        let e = close_to_error(Close::failed(BrowserError::with_text(
            C::AlreadyStreaming,
            "HostNotFound: a misleading text",
        )));
        assert_eq!(
            (e.status, e.code),
            (StatusCode::CONFLICT, "already_streaming")
        );
        let e = close_to_error(Close::stopped(crate::sessions::StopReason::Superseded));
        assert_eq!((e.status, e.code), (StatusCode::CONFLICT, "superseded"));
        let e = close_to_error(Close::normal("stream ended"));
        assert_eq!(
            (e.status, e.code),
            (StatusCode::BAD_GATEWAY, "stream_failed")
        );
    }
}
