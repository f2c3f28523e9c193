//! One streamer session: `Init` → launch → media and input → the one teardown path.
//!
//! Every end — `Stop`, EOF on stdin (the web-server is gone), the host ending the stream, the host
//! becoming unreachable, a fatal error — leaves the main loop as an [`End`] and goes through
//! [`teardown`]: input stops (the loop is gone), `ClientStream::stop` closes the media, disconnects
//! the control stream and awaits the host's acknowledgement, then awaits `/cancel` on the host (the
//! order upstream Wolf survives), then `Error` (if any) and `Ended` are written and flushed.
//! `main` exits the process right after, so nothing can linger.
//!
//! The jobs are split by why they change:
//!
//! * [`start`]: `Init` → a running host stream (validation, launch turns and retries, start
//!   errors → IPC error codes); [`lobby`] joins a Wolf lobby after it.
//! * [`forward`]: host media → the browser, written once for both modes behind
//!   [`forward::MediaSink`] (counters, timestamps, parameter sets).
//! * [`running`]: the session loop that dispatches between them.
//! * [`restream`]: the host stream ended and started again at another rung, the browser's side
//!   kept.
//! * [`end`]: the one teardown; [`early`]: signals held before the peer exists.
//!
//! This file keeps what they all share — the exit codes and [`End`] — and [`run`], which strings
//! the steps together.

mod early;
mod end;
pub mod forward;
mod lobby;
mod restream;
mod running;
mod start;

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use tokio::io::AsyncRead;
use tokio::net::unix::pipe;
use tokio_util::codec::FramedRead;
use wire::backpressure::QueueConfig;
use wire::ipc::{EndReason, ErrorCode, StreamerCodec, StreamerError, ToStreamer};

use self::end::{finish, teardown};
use self::forward::Forwarder;
use self::running::{Exit, Running};
use crate::input::InputMapper;
use crate::webrtc::{Peer, PeerEnd, StreamInfo};
use crate::writer::Writer;

/// How long the web-server has to send `Init`.
const INIT_TIMEOUT: Duration = Duration::from_secs(10);

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

/// Runs one session over `input` and the pipe `output` (stdin/stdout in the binary) and returns
/// the exit code.
pub async fn run<R>(input: R, output: pipe::Sender) -> i32
where
    R: AsyncRead + Unpin + Send + 'static,
{
    let mut rx = FramedRead::new(input, StreamerCodec::new());
    let writer = Writer::new(output);
    let mut init = match tokio::time::timeout(INIT_TIMEOUT, rx.next()).await {
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
    let socket = match start::bind_socket(&init).await {
        Ok(socket) => socket,
        Err(end) => return finish(writer, end).await,
    };
    let mut early_signals = Vec::new();
    let (session, started) = match start::start(&init, &mut rx, &writer, &mut early_signals).await {
        Ok(s) => (s.session, s.started),
        Err((http, end)) => {
            if let Some(http) = http {
                start::cancel_after_aborted_start(&http).await;
            }
            return finish(writer, end).await;
        }
    };
    let peer = match socket {
        Some(socket) => {
            let info = StreamInfo {
                codec: started.codec,
                audio: started.audio_channels > 0,
                touch_supported: started.touch_supported,
            };
            let rtc_settings = init.webrtc.clone().unwrap_or_default();
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
        session,
        writer: writer.for_stream(&started),
        mapper: InputMapper::new(),
        forward: Forwarder::new(started.codec.to_byte()),
        started_at: Instant::now(),
    };
    // The join races Stop/EOF like the start does; input before it completes is dropped.
    if let Err(end) = lobby::join(&init, &mut rx, &mut early_signals).await {
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
        None => loop {
            match run.main_loop(&mut rx).await {
                Exit::End(end) => break end,
                Exit::Restream(rung) if !restream::allowed(&init) => {
                    tracing::warn!(?rung, "restream refused: the stream is in a lobby");
                }
                Exit::Restream(rung) if restream::live_bitrate(&mut run, &mut init, &rung) => {}
                Exit::Restream(rung) => {
                    match restream::restream(run, &mut init, rung, &mut rx).await {
                        Ok(restarted) => run = restarted,
                        Err(code) => return code,
                    }
                }
            }
        },
    };
    drop(rx);
    tracing::info!(reason = ?end.reason, message = ?end.message, "session ending");
    teardown(run.session, run.writer, end, run.peer).await
}
