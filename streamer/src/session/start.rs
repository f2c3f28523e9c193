//! Starting the host stream: `Init` → a running [`ClientStream`], or the [`End`] that says why not.
//!
//! Everything that can fail before media flows is here, because it all ends the same way — an
//! `Error` whose [`ErrorCode`] tells the browser what to fix — and because the start is the part
//! that must stay answerable: `Stop` and EOF are handled while it runs, launch turns are taken and
//! given back ([`LaunchTurns`]), a 503 from a host still stopping our previous stream is retried,
//! and a `Stop` that comes mid-launch lets the launch finish so nothing is left on the host.
//!
//! * [`bind_socket`]: WebRTC's UDP socket and candidates, before the host launches anything.
//! * [`start`]: `Init` validation, the launch loop, `Started`.
//! * [`start_error`]: start failures → IPC error codes.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use gamestream::client::{ClientError, ClientSession, ClientStream, SessionConfig};
use gamestream::identity::Identity;
use gamestream::nvhttp::{HostAddress, NvHttpClient, NvHttpError};
use gamestream::rtsp::StreamSettings;
use tokio::io::AsyncRead;
use tokio::net::UdpSocket;
use tokio_util::codec::FramedRead;
use wire::browser::{formats, OpusLayout, StreamInit, VideoCodec};
use wire::ipc::{
    ErrorCode, FromStreamer, RemoteSignal, StreamMode, StreamerCodec, StreamerInit, ToStreamer,
};

use super::early::hold_early_signal;
use super::end::STOP_TIMEOUT;
use super::End;
use crate::launch_turn::LaunchTurns;
use crate::webrtc;
use crate::writer::Writer;

/// NVHTTP request timeout.
const HTTP_TIMEOUT: Duration = Duration::from_secs(8);
/// How long a launch refused with 503 (the host still stopping this client's previous stream)
/// is retried before the failure reaches the browser.
const LAUNCH_RETRY_BUDGET: Duration = Duration::from_secs(5);

/// WebRTC mode: binds the peer's socket, before the host launches anything, so that a full port
/// range fails early; `None` in WebSocket mode.
pub(super) async fn bind_socket(init: &StreamerInit) -> Result<Option<UdpSocket>, End> {
    if init.mode != StreamMode::Webrtc {
        return Ok(None);
    }
    let rtc_settings = init.webrtc.clone().unwrap_or_default();
    let bound = webrtc::net::bind(&rtc_settings).await.and_then(|s| {
        // The candidates are checked now too (bad NAT IP, no allowed family).
        let addr = s
            .local_addr()
            .map_err(|e| webrtc::net::NetError::Settings(format!("socket address: {e}")))?;
        webrtc::net::Candidates::new(addr, &rtc_settings)?;
        Ok(s)
    });
    bound.map(Some).map_err(|e| {
        let code = match e {
            webrtc::net::NetError::NoPort { .. } | webrtc::net::NetError::Bind { .. } => {
                ErrorCode::NoIcePort
            }
            webrtc::net::NetError::Settings(_) => ErrorCode::BadInit,
        };
        End::error(code, e.to_string())
    })
}

/// A stream that started: `Started` was written.
pub(super) struct StartedSession {
    pub(super) session: ClientStream,
    pub(super) started: StreamInit,
}

/// Builds the client from `Init` and starts the stream, answering `Stop`/EOF meanwhile.
/// WebRTC signals that arrive meanwhile are kept in `signals` for the peer.
pub(super) async fn start<R: AsyncRead + Unpin>(
    init: &StreamerInit,
    rx: &mut FramedRead<R, StreamerCodec>,
    writer: &Writer,
    signals: &mut Vec<RemoteSignal>,
) -> Result<StartedSession, (Option<Arc<NvHttpClient>>, End)> {
    let (http, config, formats) = client_config(init).map_err(|end| (None, end))?;
    tracing::info!(
        host = %init.host.address, app = init.app_id, width = init.width, height = init.height,
        fps = init.fps, bitrate_kbps = init.bitrate_kbps, formats = format_args!("{formats:#x}"),
        "starting stream"
    );
    let started_at = Instant::now();
    let turns = LaunchTurns::new(writer, init.launch_turns);
    let starting = start_retrying_while_stopping(Arc::clone(&http), config, &turns);
    tokio::pin!(starting);
    let session = loop {
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
    let started = StreamInit {
        codec,
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
    Ok(StartedSession { session, started })
}

/// Checks `Init` and builds the host client and the stream's settings from it; also returns the
/// video formats asked of the host.
pub(super) fn client_config(
    init: &StreamerInit,
) -> Result<(Arc<NvHttpClient>, SessionConfig, u32), End> {
    let formats = init.video_formats & formats::ALL;
    if formats == 0 {
        return Err(End::error(
            ErrorCode::UnsupportedCodec,
            format!(
                "the browser decodes none of our codecs (formats {:#x})",
                init.video_formats
            ),
        ));
    }
    if init.width == 0
        || init.height == 0
        || init.fps == 0
        || init.width > 8192
        || init.height > 8192
    {
        return Err(End::error(
            ErrorCode::BadInit,
            format!(
                "bad stream size {}x{}@{}",
                init.width, init.height, init.fps
            ),
        ));
    }
    // The key is secret: the error names the problem, never the PEM.
    let identity = Identity::from_pem(&init.client_cert_pem, init.client_key_pem.expose())
        .map_err(|e| End::error(ErrorCode::BadInit, format!("client identity: {e}")))?;
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
        // Taken whenever the host offers it (only the Sunshine forks do): it costs one socket,
        // and the browser's microphone then has somewhere to go (MicOpus in WebSocket mode, the
        // upward audio track in WebRTC mode).
        microphone: true,
        ..StreamSettings::default()
    };
    let mut config = SessionConfig::new(init.app_id, settings);
    config.local_audio = init.play_audio_local;
    Ok((http, config, formats))
}

/// [`ClientSession::prepare`] and [`PreparedLaunch::launch_in_place`], retried while the host
/// answers 503 to the launch.
///
/// [`PreparedLaunch::launch_in_place`]: gamestream::client::PreparedLaunch::launch_in_place
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
) -> Result<ClientStream, ClientError> {
    let deadline = Instant::now() + LAUNCH_RETRY_BUDGET;
    let mut delay = Duration::from_millis(25);
    let mut attempt = 1u32;
    loop {
        // `/serverinfo` before the turn: only `/launch` onwards must not overlap on the host.
        let prepared = ClientSession::prepare(Arc::clone(&http), config.clone()).await?;
        turns.take().await;
        match prepared.launch_in_place().await {
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

/// Maps a start failure to the IPC error code the browser will see.
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
    F: std::future::Future<Output = Result<ClientStream, ClientError>>,
{
    let end = End::stopped("stopped while starting");
    match tokio::time::timeout(FINISH_START_LIMIT, starting.as_mut()).await {
        Ok(Ok(session)) => {
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
pub(super) async fn cancel_after_aborted_start(http: &NvHttpClient) {
    match tokio::time::timeout(STOP_TIMEOUT, http.cancel()).await {
        Ok(Ok(())) => tracing::info!("cancelled on the host"),
        Ok(Err(e)) => tracing::info!(error = %e, "cancel after an aborted start"),
        Err(_) => tracing::warn!("cancel after an aborted start timed out"),
    }
}
