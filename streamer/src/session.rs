//! One streamer session: `Init` → launch → media and input → the one teardown path.
//!
//! Every end — `Stop`, EOF on stdin (the web-server is gone), the host ending the stream, the host
//! becoming unreachable, a fatal error — leaves the main loop as an [`End`] and goes through
//! [`teardown`]: input stops (the loop is gone), `ClientSession::stop` closes the media, disconnects
//! the control stream and awaits the host's acknowledgement, then awaits `/cancel` on the host (the
//! order upstream Wolf survives), then `Error` (if any) and `Ended` are written and flushed.
//! `main` exits the process right after, so nothing can linger.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use gamestream::client::{ClientError, ClientSession, EndCause, SessionConfig, SessionEvent};
use gamestream::control::{DisconnectReason, HostMessage, TerminationReason};
use gamestream::identity::Identity;
use gamestream::nvhttp::{HostAddress, NvHttpClient, NvHttpError};
use gamestream::rtsp::StreamSettings;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_util::codec::FramedRead;
use wire::backpressure::QueueConfig;
use wire::browser::{formats, OpusLayout, VideoCodec};
use wire::ipc::{
    Audio, EndReason, Ended, ErrorCode, FromStreamer, RemoteSignal, Rumble, Started, Stats,
    StreamMode, StreamerCodec, StreamerError, StreamerInit, ToStreamer, Video,
};

use crate::annexb::{KeyframeFix, ParamSetCache};
use crate::input::{InputMapper, Mapped};
use crate::launch_turn::LaunchTurns;
use crate::media_clock::MediaClock;
use crate::webrtc::{self, Peer, PeerEnd, PeerOut, StreamInfo};
use crate::writer::{Refused, Writer};

/// How long the web-server has to send `Init`.
const INIT_TIMEOUT: Duration = Duration::from_secs(10);
/// Upper bound on `/cancel` + closing (the host may be unreachable).
const STOP_TIMEOUT: Duration = Duration::from_secs(5);
/// Upper bound on writing the last frames.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(1);
/// NVHTTP request timeout.
const HTTP_TIMEOUT: Duration = Duration::from_secs(8);
/// How long a launch refused with 503 (the host still stopping this client's previous stream)
/// is retried before the failure reaches the browser.
const LAUNCH_RETRY_BUDGET: Duration = Duration::from_secs(5);
/// Stats period.
const STATS_PERIOD: Duration = Duration::from_secs(1);
/// Trickled candidates held while the host stream starts.
const MAX_EARLY_CANDIDATES: usize = 256;
/// Descriptions (and offer requests) held while the host stream starts: a browser sends one.
const MAX_EARLY_DESCRIPTIONS: usize = 4;

/// Process exit codes: they say why the streamer ended.
pub mod exit {
    /// `Stop` or EOF on stdin.
    pub const STOPPED: i32 = 0;
    /// The session failed (`Error` was sent).
    pub const ERROR: i32 = 1;
    /// The IPC channel broke or `Init` was missing or invalid.
    pub const BAD_IPC: i32 = 2;
    /// The host ended the stream.
    pub const HOST_ENDED: i32 = 3;
    /// WebRTC: the browser's peer failed, stayed disconnected or closed.
    pub const PEER_GONE: i32 = 4;
    /// The stream had started and, whatever ended it, the host did not answer the teardown's
    /// `/cancel` (down, hung, unreachable): its session may be left on the host (Wolf keeps a
    /// session whose ENet peer timed out paused, and busy). The web-server then cancels it once
    /// the host answers again (`web-server/src/host_cleanup.rs`). `Error`/`Ended` say why the
    /// stream ended, as for any other code.
    pub const HOST_UNANSWERED: i32 = 5;
}

/// How a session ends.
#[derive(Debug)]
struct End {
    reason: EndReason,
    error: Option<StreamerError>,
    message: Option<String>,
    exit: i32,
}

impl End {
    fn stopped(why: &str) -> Self {
        End {
            reason: EndReason::Stopped,
            error: None,
            message: Some(why.to_string()),
            exit: exit::STOPPED,
        }
    }
    fn host_ended(why: String) -> Self {
        End {
            reason: EndReason::HostEnded,
            error: None,
            message: Some(why),
            exit: exit::HOST_ENDED,
        }
    }
    fn peer(end: PeerEnd) -> Self {
        match end {
            PeerEnd::Gone(why) => End {
                reason: EndReason::PeerGone,
                error: None,
                message: Some(why),
                exit: exit::PEER_GONE,
            },
            PeerEnd::Error(code, message) => End::error(code, message),
        }
    }
    fn ipc(e: wire::ipc::IpcError) -> Self {
        End {
            exit: exit::BAD_IPC,
            ..End::error(ErrorCode::Internal, format!("IPC: {e}"))
        }
    }
    fn error(code: ErrorCode, message: impl Into<String>) -> Self {
        let message = message.into();
        End {
            reason: EndReason::Error,
            exit: if code == ErrorCode::BadInit {
                exit::BAD_IPC
            } else {
                exit::ERROR
            },
            message: Some(message.clone()),
            error: Some(StreamerError { code, message }),
        }
    }
}

/// Runs one session over `input`/`output` (stdin/stdout in the binary) and returns the exit code.
pub async fn run<R, W>(input: R, output: W) -> i32
where
    R: AsyncRead + Unpin + Send + 'static,
    W: AsyncWrite + Unpin + Send + 'static,
{
    let mut rx = FramedRead::new(input, StreamerCodec::new());
    let (writer, keyframe_requests) = Writer::spawn(output, QueueConfig::default());
    let init = match tokio::time::timeout(INIT_TIMEOUT, rx.next()).await {
        Ok(Some(Ok(ToStreamer::Init(init)))) => *init,
        Ok(Some(Ok(ToStreamer::Stop))) | Ok(None) => {
            return finish(writer, End::stopped("stopped before Init")).await
        }
        Ok(Some(Ok(other))) => {
            return finish(
                writer,
                End::error(
                    ErrorCode::BadInit,
                    format!("first frame was {other:?}, not Init"),
                ),
            )
            .await
        }
        Ok(Some(Err(e))) => {
            return finish(writer, End::error(ErrorCode::BadInit, e.to_string())).await
        }
        Err(_) => return finish(writer, End::error(ErrorCode::BadInit, "no Init in time")).await,
    };
    // The web-server tags each stderr line with the session key; it is logged once here.
    tracing::info!(
        session_key = %init.session_key, client = %init.client_unique_id, mode = ?init.mode,
        lobby = ?init.lobby_id, "Init received"
    );
    // WebRTC: the socket first, so a full port range fails before the host launches anything.
    let rtc_settings = init.webrtc.clone().unwrap_or_default();
    let socket = if init.mode == StreamMode::Webrtc {
        let bound = webrtc::net::bind(&rtc_settings).await.and_then(|s| {
            // The candidates are checked now too (bad NAT IP, no allowed family).
            let addr = s
                .local_addr()
                .map_err(|e| webrtc::net::NetError::Settings(format!("socket address: {e}")))?;
            webrtc::net::Candidates::new(addr, &rtc_settings)?;
            Ok(s)
        });
        match bound {
            Ok(s) => Some(s),
            Err(e) => {
                let code = match e {
                    webrtc::net::NetError::NoPort { .. } | webrtc::net::NetError::Bind { .. } => {
                        ErrorCode::NoIcePort
                    }
                    webrtc::net::NetError::Settings(_) => ErrorCode::BadInit,
                };
                return finish(writer, End::error(code, e.to_string())).await;
            }
        }
    } else {
        None
    };
    let mut early_signals = Vec::new();
    let (session, events, started) = match start(&init, &mut rx, &writer, &mut early_signals).await
    {
        Ok(s) => (s.session, s.events, s.started),
        Err((http, end)) => {
            if let Some(http) = http {
                cancel_after_aborted_start(&http).await;
            }
            return finish(writer, end).await;
        }
    };
    let peer = match socket {
        Some(socket) => {
            let info = StreamInfo {
                codec: VideoCodec::from_byte(started.codec).unwrap_or(VideoCodec::H264),
                audio: started.audio_channels > 0,
                touch_supported: started.touch_supported,
            };
            match Peer::new(socket, &rtc_settings, info, QueueConfig::default()) {
                Ok(p) => Some(p),
                Err(e) => {
                    let end = End::error(ErrorCode::BadInit, e.to_string());
                    return teardown(session, writer, end, None).await;
                }
            }
        }
        None => None,
    };
    let mut run = Running {
        peer,
        init: &init,
        session,
        writer,
        keyframe_requests,
        mapper: InputMapper::new(),
        params: ParamSetCache::new(
            VideoCodec::from_byte(started.codec).unwrap_or(VideoCodec::H264),
        ),
        codec: started.codec,
        counters: Counters::default(),
        video_clock: MediaClock::video(),
        audio_clock: MediaClock::audio(),
        need_keyframe: true,
        started_at: Instant::now(),
    };
    // The join races Stop/EOF like the start does; input before it completes is dropped.
    let joined = {
        let join = run.join_lobby();
        tokio::pin!(join);
        loop {
            tokio::select! {
                result = &mut join => break result,
                msg = rx.next() => match msg {
                    None | Some(Ok(ToStreamer::Stop)) => break Err(End::stopped("stopped while joining the lobby")),
                    Some(Ok(ToStreamer::Signal(s))) => hold_early_signal(&mut early_signals, s),
                    Some(Ok(_)) => {}
                    Some(Err(e)) => break Err(End::ipc(e)),
                },
            }
        }
    };
    if let Err(end) = joined {
        return teardown(run.session, run.writer, end, run.peer).await;
    }
    // Signals that came while the host stream started, in order.
    let mut early = None;
    for signal in early_signals {
        if let Some(peer) = run.peer.as_mut() {
            peer.signal(signal);
        }
        early = early.or_else(|| run.drain_peer());
    }
    let end = match early {
        Some(end) => end,
        None => run.main_loop(&mut rx, events).await,
    };
    drop(rx);
    tracing::info!(reason = ?end.reason, message = ?end.message, "session ending");
    teardown(run.session, run.writer, end, run.peer).await
}

struct StartedSession {
    session: ClientSession,
    events: tokio::sync::mpsc::Receiver<SessionEvent>,
    started: Started,
}

/// Keeps a signal that came before the peer exists, in order. Candidates and descriptions are
/// bounded apart: a flood of candidates (a hostile or broken browser) must not push out the offer
/// that follows it, which would leave the negotiation hanging with no error.
fn hold_early_signal(held: &mut Vec<RemoteSignal>, signal: RemoteSignal) {
    let is_candidate = matches!(signal, RemoteSignal::Candidate(_));
    let count = held
        .iter()
        .filter(|s| matches!(s, RemoteSignal::Candidate(_)) == is_candidate)
        .count();
    let limit = if is_candidate {
        MAX_EARLY_CANDIDATES
    } else {
        MAX_EARLY_DESCRIPTIONS
    };
    if count < limit {
        held.push(signal);
    } else {
        tracing::debug!(
            is_candidate,
            "early signal dropped: too many before the stream started"
        );
    }
}

/// Builds the client from `Init` and starts the stream, answering `Stop`/EOF meanwhile.
/// WebRTC signals that arrive meanwhile are kept in `signals` for the peer.
async fn start<R: AsyncRead + Unpin>(
    init: &StreamerInit,
    rx: &mut FramedRead<R, StreamerCodec>,
    writer: &Writer,
    signals: &mut Vec<RemoteSignal>,
) -> Result<StartedSession, (Option<Arc<NvHttpClient>>, End)> {
    let formats = init.video_formats & formats::ALL;
    if formats == 0 {
        return Err((
            None,
            End::error(
                ErrorCode::UnsupportedCodec,
                format!(
                    "the browser decodes none of our codecs (formats {:#x})",
                    init.video_formats
                ),
            ),
        ));
    }
    if init.width == 0
        || init.height == 0
        || init.fps == 0
        || init.width > 8192
        || init.height > 8192
    {
        return Err((
            None,
            End::error(
                ErrorCode::BadInit,
                format!(
                    "bad stream size {}x{}@{}",
                    init.width, init.height, init.fps
                ),
            ),
        ));
    }
    // The key is secret: the error names the problem, never the PEM.
    let identity = Identity::from_pem(&init.client_cert_pem, init.client_key_pem.expose())
        .map_err(|e| {
            (
                None,
                End::error(ErrorCode::BadInit, format!("client identity: {e}")),
            )
        })?;
    let address = HostAddress::with_ports(
        init.host.address.clone(),
        init.host.http_port,
        Some(init.host.https_port),
    );
    let http = Arc::new(
        NvHttpClient::new(address, identity, Some(init.host_cert_der.clone()))
            .with_timeout(HTTP_TIMEOUT)
            .with_unique_id(init.client_unique_id.clone()),
    );
    // WebRTC carries stereo Opus (RFC 7587); surround would need Chromium's non-standard
    // "multiopus", which str0m does not negotiate. WebSocket mode carries 5.1 and 7.1.
    let channels = match init.audio_channels {
        6 if init.mode == StreamMode::Websocket => 6,
        8 if init.mode == StreamMode::Websocket => 8,
        _ => 2,
    };
    let settings = StreamSettings {
        width: init.width,
        height: init.height,
        fps: init.fps,
        packet_size: if init.packet_size == 0 {
            1392
        } else {
            init.packet_size
        },
        bitrate_kbps: init.bitrate_kbps.max(500),
        supported_formats: formats,
        refresh_rate_x100: init.fps.saturating_mul(100),
        audio_channels: channels,
        audio_channel_mask: match channels {
            6 => 0x3F,
            8 => 0x63F,
            _ => 0x3,
        },
        ..StreamSettings::default()
    };
    let mut config = SessionConfig::new(init.app_id, settings);
    config.local_audio = init.play_audio_local;
    tracing::info!(
        host = %init.host.address, app = init.app_id, width = init.width, height = init.height,
        fps = init.fps, bitrate_kbps = init.bitrate_kbps, formats = format_args!("{formats:#x}"),
        "starting stream"
    );
    let started_at = Instant::now();
    let turns = LaunchTurns::new(writer, init.launch_turns);
    let starting = start_retrying_while_stopping(Arc::clone(&http), config, &turns);
    tokio::pin!(starting);
    let (session, events) = loop {
        tokio::select! {
            result = &mut starting => match result {
                Ok(s) => break s,
                Err(e) => {
                    // A host that was never reached or refused the launch holds no session for
                    // us; anything later (RTSP, control, media) follows a successful launch.
                    let launched = !matches!(
                        e,
                        ClientError::Resolve(_)
                            | ClientError::NvHttp(NvHttpError::Io(_) | NvHttpError::Status { .. } | NvHttpError::Tls(_))
                    );
                    return Err((launched.then(|| Arc::clone(&http)), start_error(e)));
                }
            },
            msg = rx.next() => match msg {
                None | Some(Ok(ToStreamer::Stop)) => {
                    if !turns.launching() {
                        // Waiting for a turn or for a retry: nothing of ours is on the host.
                        return Err((None, End::stopped("stopped before the launch")));
                    }
                    return Err(stop_while_starting(&mut starting, &http).await);
                }
                Some(Ok(ToStreamer::LaunchTurn)) => turns.granted(),
                Some(Ok(ToStreamer::Signal(s))) => hold_early_signal(signals, s),
                Some(Ok(_)) => {} // input before the stream exists has nowhere to go
                Some(Err(e)) => return Err((Some(Arc::clone(&http)), End::ipc(e))),
            },
            _ = writer.closed() => return Err((Some(Arc::clone(&http)), End::stopped("IPC output closed"))),
        }
    };
    let outcome = session.outcome();
    let codec = VideoCodec::from_format_bit(outcome.video_format)
        .or_else(|| VideoCodec::preferred_in(outcome.video_format))
        .unwrap_or(VideoCodec::H264);
    let started = Started {
        codec: codec.to_byte(),
        width: init.width.min(u16::MAX as u32) as u16,
        height: init.height.min(u16::MAX as u32) as u16,
        fps: init.fps.min(255) as u8,
        audio_channels: outcome.opus.channels,
        sample_rate: outcome.opus.sample_rate,
        opus: opus_layout(&outcome.opus),
        // Sunshine's featureFlags bit 0: pen and touch events.
        touch_supported: outcome.host.feature_flags & 0x01 != 0,
    };
    tracing::info!(
        elapsed_ms = started_at.elapsed().as_millis() as u64,
        codec = ?codec, version = %session.app_version(),
        "stream up"
    );
    if writer
        .control(FromStreamer::Started(started))
        .await
        .is_err()
    {
        let end = End::stopped("IPC output closed");
        let _ = tokio::time::timeout(STOP_TIMEOUT, session.stop()).await;
        return Err((None, end));
    }
    Ok(StartedSession {
        session,
        events,
        started,
    })
}

/// [`ClientSession::start`], retried while the host answers 503 to the launch.
///
/// A host allows one stream per client certificate and refuses a launch with 503 while the same
/// client's previous stream is still tearing down (Wolf's lifecycle; the demo host's "previous
/// session is still stopping; retry"). A browser that reconnects at once — a page reload, a lobby
/// restart — hits that window right after its previous streamer exited: the web-server awaited
/// the old streamer, whose `/cancel` was answered, but the host frees the session a little later.
/// Retrying here, within [`LAUNCH_RETRY_BUDGET`], means the browser never sees that transient
/// 503 as a failure; a host that keeps refusing still fails (as `AlreadyStreaming`) once the
/// budget is spent. Dropping this future (Stop meanwhile) abandons it between attempts.
///
/// Each attempt's `/launch` runs on this streamer's turn on the host ([`LaunchTurns`]); its
/// `/serverinfo` runs before, outside the turn; a refused attempt gives the turn back before it
/// waits, so that other browsers' launches go meanwhile.
async fn start_retrying_while_stopping(
    http: Arc<NvHttpClient>,
    config: SessionConfig,
    turns: &LaunchTurns<'_>,
) -> Result<(ClientSession, tokio::sync::mpsc::Receiver<SessionEvent>), ClientError> {
    let deadline = Instant::now() + LAUNCH_RETRY_BUDGET;
    let mut delay = Duration::from_millis(25);
    let mut attempt = 1u32;
    loop {
        // `/serverinfo` before the turn: only `/launch` onwards must not overlap on the host.
        let prepared = ClientSession::prepare(Arc::clone(&http), config.clone()).await?;
        turns.take().await;
        match prepared.launch().await {
            Err(e) if host_busy(&e) && Instant::now() + delay < deadline => {
                tracing::info!(attempt, error = %e, retry_in_ms = delay.as_millis() as u64,
                    "the host is still stopping this client's previous stream; retrying the launch");
                turns.give_back().await;
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_millis(250));
                attempt += 1;
            }
            other => return other,
        }
    }
}

/// The host refused the launch with 503 (busy: the client's previous stream is still stopping).
fn host_busy(e: &ClientError) -> bool {
    matches!(
        e,
        ClientError::NvHttp(
            NvHttpError::Status { code: 503, .. } | NvHttpError::Http { status: 503, .. }
        )
    )
}

/// Maps a start failure to the IPC error code the browser will see.
/// The browser's view of the host's Opus layout; `None` when no audio is streamed. A layout that
/// no decoder could use is logged and left out, so the browser decodes stereo as before.
fn opus_layout(o: &gamestream::rtsp::OpusConfig) -> Option<OpusLayout> {
    if o.channels == 0 || o.sample_rate == 0 {
        return None;
    }
    let mapping = o.mapping.get(..usize::from(o.channels))?;
    OpusLayout::new(o.streams, o.coupled_streams, mapping)
        .inspect_err(|e| tracing::warn!(channels = o.channels, "host audio layout: {e}"))
        .ok()
}

fn start_error(e: ClientError) -> End {
    let code = match &e {
        ClientError::Resolve(_) => ErrorCode::HostUnreachable,
        ClientError::NvHttp(n) => match n {
            NvHttpError::Io(_) | NvHttpError::Timeout | NvHttpError::Address(_) => {
                ErrorCode::HostUnreachable
            }
            NvHttpError::Tls(_) | NvHttpError::NotPaired | NvHttpError::TlsConfig(_) => {
                ErrorCode::HostNotPaired
            }
            NvHttpError::Status { code: 401, .. } | NvHttpError::Http { status: 401, .. } => {
                ErrorCode::HostNotPaired
            }
            NvHttpError::Status { code: 404, .. } => ErrorCode::AppNotFound,
            NvHttpError::Status { code: 503, .. } => ErrorCode::AlreadyStreaming,
            NvHttpError::Status { message, .. } if message.to_lowercase().contains("already") => {
                ErrorCode::AlreadyStreaming
            }
            _ => ErrorCode::LaunchFailed,
        },
        _ => ErrorCode::StreamSetupFailed,
    };
    End::error(code, e.to_string())
}

/// How long a `Stop` during the start lets the start finish before abandoning it.
const FINISH_START_LIMIT: Duration = Duration::from_secs(2);

/// `Stop` (or EOF) while the stream is starting. Abandoning the start mid-request would leave the
/// host to finish a `/launch` (or an RTSP setup, or an ENet connect) after our `/cancel`: a
/// session nobody owns, which a host keeps and which then collides with the next stream of the
/// same identity (seen with racing opens of one key). So the start may finish, within
/// [`FINISH_START_LIMIT`], and a started stream ends through its normal stop (ENet disconnect,
/// then `/cancel`); only a start that does not finish in time is abandoned and `/cancel`led.
async fn stop_while_starting<F>(
    starting: &mut std::pin::Pin<&mut F>,
    http: &Arc<NvHttpClient>,
) -> (Option<Arc<NvHttpClient>>, End)
where
    F: std::future::Future<
        Output = Result<(ClientSession, tokio::sync::mpsc::Receiver<SessionEvent>), ClientError>,
    >,
{
    let end = End::stopped("stopped while starting");
    match tokio::time::timeout(FINISH_START_LIMIT, starting.as_mut()).await {
        Ok(Ok((session, _events))) => {
            match tokio::time::timeout(STOP_TIMEOUT, session.stop()).await {
                Ok(Ok(())) => tracing::info!(
                    "stopped while starting: the started stream was stopped on the host"
                ),
                Ok(Err(e)) => {
                    tracing::info!(error = %e, "stopped while starting: the host's stop answered with an error")
                }
                Err(_) => tracing::warn!("stopped while starting: the host's stop timed out"),
            }
            (None, end)
        }
        // A failed start may still have launched: `/cancel`, as for any failed start.
        Ok(Err(_)) | Err(_) => (Some(Arc::clone(http)), end),
    }
}

/// `Stop` arrived (or setup failed) after `/launch` may have succeeded: the host may hold a
/// session for us, so `/cancel` it; harmless if there is none.
async fn cancel_after_aborted_start(http: &NvHttpClient) {
    match tokio::time::timeout(STOP_TIMEOUT, http.cancel()).await {
        Ok(Ok(())) => tracing::info!("cancelled on the host"),
        Ok(Err(e)) => tracing::info!(error = %e, "cancel after an aborted start"),
        Err(_) => tracing::warn!("cancel after an aborted start timed out"),
    }
}

/// The one teardown path: `/cancel` (awaited) and close, then the WebRTC peer (if any) says
/// `"ConnectionTerminated"` on `general` and closes, then `Error`? + `Ended`, flushed.
async fn teardown(session: ClientSession, writer: Writer, end: End, peer: Option<Peer>) -> i32 {
    let t = Instant::now();
    // Bounded whatever the host does: a hung host answers neither the ENet disconnect nor the
    // `/cancel`, and the streamer must still exit (and say so: `HOST_UNANSWERED`).
    let answered = match tokio::time::timeout(STOP_TIMEOUT, session.stop()).await {
        Ok(Ok(())) => {
            tracing::info!(
                elapsed_ms = t.elapsed().as_millis() as u64,
                "host stream cancelled"
            );
            true
        }
        Ok(Err(e)) => {
            tracing::info!(error = %e, "cancel answered with an error (stream already gone?)");
            host_answered(&e)
        }
        Err(_) => {
            tracing::warn!("cancel timed out; closed anyway");
            false
        }
    };
    if let Some(mut peer) = peer {
        peer.close();
    }
    let code = finish(writer, end).await;
    if answered {
        code
    } else {
        tracing::warn!("the host did not answer the /cancel: its session may be left there");
        exit::HOST_UNANSWERED
    }
}

/// The host answered the `/cancel` (with an error status or an unusable body); false when it could
/// not be reached or did not answer in time.
fn host_answered(e: &ClientError) -> bool {
    !matches!(
        e,
        ClientError::NvHttp(
            NvHttpError::Io(_)
                | NvHttpError::Tls(_)
                | NvHttpError::TlsConfig(_)
                | NvHttpError::Timeout
        )
    )
}

/// Writes `Error` (if any) and `Ended`, flushes, returns the exit code.
async fn finish(writer: Writer, end: End) -> i32 {
    if let Some(error) = end.error.clone() {
        tracing::error!(code = ?error.code, message = %error.message, "session failed");
        let _ =
            tokio::time::timeout(FLUSH_TIMEOUT, writer.control(FromStreamer::Error(error))).await;
    }
    let ended = FromStreamer::Ended(Ended {
        reason: end.reason,
        message: end.message,
    });
    writer.finish(ended, FLUSH_TIMEOUT).await;
    end.exit
}

#[derive(Debug, Default)]
struct Counters {
    frames_in: u64,
    video_frames: u64,
    video_bytes: u64,
    keyframes: u64,
    frames_lost: u64,
    frames_dropped: u64,
    audio_packets: u64,
    audio_bytes: u64,
    input_events: u64,
    keyframes_completed: u64,
}

struct Running<'a> {
    /// WebRTC mode: the browser's peer; media goes there instead of the IPC channel.
    peer: Option<Peer>,
    init: &'a StreamerInit,
    session: ClientSession,
    writer: Writer,
    keyframe_requests: tokio::sync::mpsc::Receiver<()>,
    mapper: InputMapper,
    params: ParamSetCache,
    codec: u8,
    counters: Counters,
    video_clock: MediaClock,
    audio_clock: MediaClock,
    /// A frame was refused on the way to the writer: drop deltas until a keyframe.
    need_keyframe: bool,
    started_at: Instant,
}

impl Running<'_> {
    async fn join_lobby(&self) -> Result<(), End> {
        let (Some(lobby), Some(api)) = (&self.init.lobby_id, &self.init.wolf_api) else {
            return Ok(());
        };
        let api = gamestream::wolf_api::WolfApiClient::parse(api)
            .map_err(|e| End::error(ErrorCode::BadInit, e.to_string()))?;
        let mut last = None;
        // The session exists from /launch on; a few tries absorb a slow API.
        for attempt in 0..5 {
            match api.join_lobby(lobby, &self.init.client_unique_id).await {
                Ok(session_id) => {
                    tracing::info!(lobby = %lobby, session_id = %session_id, "joined the lobby");
                    return Ok(());
                }
                Err(e @ gamestream::wolf_api::WolfApiError::SessionNotFound(_)) => last = Some(e),
                Err(e) => {
                    return Err(End::error(
                        ErrorCode::StreamSetupFailed,
                        format!("lobby join: {e}"),
                    ))
                }
            }
            tokio::time::sleep(Duration::from_millis(100 * (attempt + 1))).await;
        }
        Err(End::error(
            ErrorCode::StreamSetupFailed,
            format!(
                "lobby join: {}",
                last.map(|e| e.to_string()).unwrap_or_default()
            ),
        ))
    }

    async fn main_loop<R: AsyncRead + Unpin>(
        &mut self,
        rx: &mut FramedRead<R, StreamerCodec>,
        mut events: tokio::sync::mpsc::Receiver<SessionEvent>,
    ) -> End {
        let mut stats_tick = tokio::time::interval(STATS_PERIOD);
        stats_tick.tick().await;
        let mut last_log = (Instant::now(), 0u64, 0u64);
        loop {
            tokio::select! {
                biased;
                msg = rx.next() => match msg {
                    None => return End::stopped("IPC input closed"),
                    Some(Ok(ToStreamer::Stop)) => return End::stopped("Stop from the web-server"),
                    Some(Ok(ToStreamer::RequestKeyframe)) => self.request_idr("web-server"),
                    Some(Ok(ToStreamer::Input(bytes))) => self.input(&bytes),
                    Some(Ok(ToStreamer::Init(_))) => tracing::warn!("second Init ignored"),
                    // The turn ended at Started; a grant still on its way has nothing to start.
                    Some(Ok(ToStreamer::LaunchTurn)) => {}
                    Some(Ok(ToStreamer::Signal(s))) => match self.peer.as_mut() {
                        Some(peer) => peer.signal(s),
                        None => tracing::debug!("WebRTC signal ignored in WebSocket mode"),
                    },
                    Some(Err(e)) => return End::ipc(e),
                },
                io = peer_wait(&mut self.peer) => {
                    if let Some(peer) = self.peer.as_mut() {
                        peer.handle(io);
                    }
                }
                event = events.recv() => match event {
                    Some(event) => if let Some(end) = self.event(event) { return end },
                    None => return End::host_ended("the stream's event pump ended".into()),
                },
                Some(()) = self.keyframe_requests.recv() => self.request_idr("send queue overflow"),
                _ = self.writer.closed() => return End::stopped("IPC output closed"),
                _ = stats_tick.tick() => {
                    let stats = self.stats();
                    let secs = last_log.0.elapsed().as_secs_f64().max(0.001);
                    tracing::debug!(
                        fps_in = format_args!("{:.1}", (self.counters.frames_in - last_log.1) as f64 / secs),
                        fps_out = format_args!("{:.1}", (stats.video_frames - last_log.2) as f64 / secs),
                        kbps = stats.video_bytes * 8 / 1000 / (stats.uptime_ms / 1000).max(1),
                        dropped = stats.video_frames_dropped, lost = stats.video_frames_lost,
                        idr = stats.idr_requests, fec = stats.fec_recovered,
                        "stats"
                    );
                    last_log = (Instant::now(), self.counters.frames_in, stats.video_frames);
                    let _ = self.writer.media(FromStreamer::Stats(stats));
                }
            }
            if let Some(end) = self.drain_peer() {
                return end;
            }
        }
    }

    /// Acts on what the WebRTC peer produced; `Some` ends the session.
    fn drain_peer(&mut self) -> Option<End> {
        while let Some(out) = self.peer.as_mut()?.poll_out() {
            match out {
                PeerOut::Signal(s) => {
                    if self.writer.media(FromStreamer::Signal(s)).is_err() {
                        return Some(End::stopped("IPC output closed"));
                    }
                }
                PeerOut::Input(bytes) => {
                    self.input(&bytes);
                    let pads = self.mapper.active_pads();
                    if let Some(peer) = self.peer.as_mut() {
                        peer.set_active_pads(pads);
                    }
                }
                PeerOut::KeyframeRequest(why) => self.request_idr(why),
                PeerOut::End(end) => return Some(End::peer(end)),
            }
        }
        None
    }

    fn request_idr(&self, why: &str) {
        tracing::debug!(why, "requesting an IDR");
        if let Err(e) = self.session.request_idr() {
            tracing::warn!(error = %e, "IDR request failed");
        }
    }

    fn input(&mut self, bytes: &[u8]) {
        match self.mapper.map(bytes) {
            Ok(Mapped::Input(events)) => {
                for event in events {
                    self.counters.input_events += 1;
                    if let Err(e) = self.session.send_input(&event) {
                        tracing::debug!(error = %e, "input not sent");
                    }
                }
            }
            Ok(Mapped::RequestKeyframe) => self.request_idr("video re-enabled"),
            Ok(Mapped::Ignored) => {}
            Err(e) => tracing::debug!(error = %e, "browser input dropped"),
        }
    }

    /// Handles one stream event; `Some` ends the session.
    fn event(&mut self, event: SessionEvent) -> Option<End> {
        match event {
            SessionEvent::Video(frame) => {
                self.counters.frames_in += 1;
                let keyframe = frame.is_idr;
                if self.need_keyframe && !keyframe {
                    self.counters.frames_dropped += 1;
                    return None;
                }
                let (data, fix) = self.params.process(frame.data, keyframe);
                match fix {
                    KeyframeFix::Prepended => self.counters.keyframes_completed += 1,
                    KeyframeFix::Missing if self.counters.keyframes == 0 => {
                        tracing::warn!("keyframe without parameter sets, none cached")
                    }
                    _ => {}
                }
                let bytes = data.len() as u64;
                let pts_us = self.video_clock.stamp(Instant::now(), frame.rtp_timestamp);
                if let Some(peer) = self.peer.as_mut() {
                    // The peer applies the send policy itself (its own SendQueue).
                    if peer.push_video(data.into(), keyframe, pts_us) {
                        self.counters.video_frames += 1;
                        self.counters.video_bytes += bytes;
                        self.counters.keyframes += u64::from(keyframe);
                    }
                    self.need_keyframe = false;
                    return None;
                }
                let video = FromStreamer::Video(Video {
                    keyframe,
                    pts_us,
                    codec: self.codec,
                    data: data.into(),
                });
                match self.writer.media(video) {
                    Ok(()) => {
                        self.need_keyframe = false;
                        self.counters.video_frames += 1;
                        self.counters.video_bytes += bytes;
                        self.counters.keyframes += u64::from(keyframe);
                    }
                    Err(Refused::Full) => {
                        self.counters.frames_dropped += 1;
                        if !self.need_keyframe {
                            self.need_keyframe = true;
                            self.request_idr("IPC channel full");
                        }
                    }
                    Err(Refused::Closed) => return Some(End::stopped("IPC output closed")),
                }
            }
            SessionEvent::VideoLost { first, last } => {
                self.counters.frames_lost += u64::from(last.wrapping_sub(first)) + 1;
            }
            SessionEvent::Audio {
                timestamp, opus, ..
            } => {
                let bytes = opus.len() as u64;
                if let Some(peer) = self.peer.as_mut() {
                    let pts_us = self.audio_clock.stamp(Instant::now(), timestamp);
                    if peer.push_audio(opus.into(), pts_us) {
                        self.counters.audio_packets += 1;
                        self.counters.audio_bytes += bytes;
                    }
                    return None;
                }
                let audio = FromStreamer::Audio(Audio {
                    pts_us: self.audio_clock.stamp(Instant::now(), timestamp),
                    data: opus.into(),
                });
                if self.writer.media(audio).is_ok() {
                    self.counters.audio_packets += 1;
                    self.counters.audio_bytes += bytes;
                }
            }
            SessionEvent::Ended(cause) => return Some(end_of(cause)),
            SessionEvent::Rumble {
                controller,
                low_freq,
                high_freq,
            } => match self.peer.as_mut() {
                Some(peer) => peer.rumble(controller, low_freq, high_freq),
                None => self.forward_rumble(controller, false, low_freq, high_freq),
            },
            SessionEvent::Host(HostMessage::RumbleTriggers {
                controller,
                left,
                right,
            }) if self.peer.is_none() => self.forward_rumble(controller, true, left, right),
            SessionEvent::AudioLost { .. } | SessionEvent::Hdr { .. } | SessionEvent::Host(_) => {}
        }
        None
    }

    /// WebSocket mode: rumble goes to the web-server, which sends it to the browser.
    fn forward_rumble(&self, controller: u16, triggers: bool, low: u16, high: u16) {
        // The browser numbers pads 0..15; anything else has no pad to shake.
        let Ok(controller) = u8::try_from(controller) else {
            return;
        };
        let rumble = FromStreamer::Rumble(Rumble {
            controller,
            triggers,
            low,
            high,
        });
        if self.writer.media(rumble).is_err() {
            tracing::debug!(controller, "rumble not forwarded: IPC queue full or closed");
        }
    }

    fn stats(&self) -> Stats {
        let s = self.session.stats();
        let (q, peer_dropped) = match &self.peer {
            Some(p) => (p.queue_stats(), p.counters().frames_dropped),
            None => (self.writer.stats(), 0),
        };
        let c = &self.counters;
        Stats {
            uptime_ms: self.started_at.elapsed().as_millis() as u64,
            video_frames: c.video_frames.saturating_sub(q.frames_dropped),
            video_bytes: c.video_bytes,
            keyframes: c.keyframes,
            video_frames_lost: c.frames_lost,
            video_frames_dropped: c.frames_dropped + q.frames_dropped + peer_dropped,
            packets_lost: s.video.packets_dropped + s.audio.lost,
            fec_recovered: s.video.shards_recovered + s.audio.recovered,
            audio_packets: c.audio_packets,
            audio_bytes: c.audio_bytes,
            input_events: c.input_events,
            idr_requests: s.idr_requests,
            host_rtt_ms: s.host_rtt.map_or(0, |d| {
                u32::try_from(d.as_millis()).unwrap_or(u32::MAX).max(1)
            }),
            send_queue_ms: q.video_depth_ms,
        }
    }
}

/// The peer's next I/O, or never in WebSocket mode (a `select!` branch).
async fn peer_wait(peer: &mut Option<Peer>) -> webrtc::peer::PeerIo {
    match peer.as_mut() {
        Some(p) => p.wait().await,
        None => std::future::pending().await,
    }
}

fn end_of(cause: EndCause) -> End {
    match cause {
        EndCause::HostTerminated { reason, code } => match reason {
            TerminationReason::Graceful => End::host_ended("the host ended the stream".into()),
            other => End::error(
                ErrorCode::ConnectionLost,
                format!("the host terminated the stream: {other:?} (code {code:#x})"),
            ),
        },
        EndCause::Disconnected(DisconnectReason::Error(e)) => End::error(
            ErrorCode::ConnectionLost,
            format!("control stream lost: {e}"),
        ),
        // A host that ends a stream says so first (a termination message); a bare ENet disconnect
        // is a host that crashed or vanished (ENet reports a timeout the same way), which
        // moonlight-common-c also reports as an error, not as a normal end.
        EndCause::Disconnected(DisconnectReason::Peer { .. }) => End::error(
            ErrorCode::ConnectionLost,
            "the host went away without ending the stream (no answer on the control stream)",
        ),
        EndCause::Disconnected(reason) => {
            End::host_ended(format!("control stream closed: {reason:?}"))
        }
        EndCause::Stopped => End::host_ended("control stream ended".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flood_of_early_candidates_never_pushes_out_the_offer() {
        let candidate = |i: u32| {
            RemoteSignal::Candidate(wire::ipc::IceCandidate {
                candidate: format!("candidate:{i} 1 UDP 2122252543 192.0.2.1 {i} typ host"),
                sdp_mid: Some("0".into()),
                sdp_mline_index: Some(0),
                username_fragment: None,
            })
        };
        let offer = |n: usize| {
            RemoteSignal::Description(wire::ipc::SessionDescription {
                ty: wire::ipc::SdpType::Offer,
                sdp: format!("v=0 {n}"),
            })
        };
        let mut held = Vec::new();
        for i in 0..1000 {
            hold_early_signal(&mut held, candidate(i));
        }
        hold_early_signal(&mut held, offer(0));
        hold_early_signal(&mut held, candidate(5000));
        assert_eq!(held.len(), MAX_EARLY_CANDIDATES + 1);
        assert_eq!(
            held[MAX_EARLY_CANDIDATES],
            offer(0),
            "the offer is kept, in order"
        );
        // Descriptions are bounded too.
        for n in 1..10 {
            hold_early_signal(&mut held, offer(n));
        }
        let descriptions = held
            .iter()
            .filter(|s| matches!(s, RemoteSignal::Description(_)))
            .count();
        assert_eq!(descriptions, MAX_EARLY_DESCRIPTIONS);
        hold_early_signal(&mut held, RemoteSignal::CreateOffer);
        assert_eq!(held.len(), MAX_EARLY_CANDIDATES + MAX_EARLY_DESCRIPTIONS);
    }

    #[test]
    fn end_causes() {
        let e = end_of(EndCause::HostTerminated {
            reason: TerminationReason::Graceful,
            code: 0,
        });
        assert_eq!((e.reason, e.exit), (EndReason::HostEnded, exit::HOST_ENDED));
        let e = end_of(EndCause::Disconnected(DisconnectReason::Error(
            "timeout".into(),
        )));
        assert_eq!(e.error.map(|e| e.code), Some(ErrorCode::ConnectionLost));
        assert_eq!(e.exit, exit::ERROR);
        let e = end_of(EndCause::Disconnected(DisconnectReason::Peer { data: 0 }));
        assert_eq!(e.error.map(|e| e.code), Some(ErrorCode::ConnectionLost));
        assert_eq!(e.exit, exit::ERROR);
    }
}
