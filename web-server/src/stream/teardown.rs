//! The one teardown path of every mode ([`teardown`]), what a stream's end releases, and what the
//! gateway does for a host session a streamer could not end itself.

use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use wire::browser::{BrowserError, ErrorCode};
use wire::ipc::{EndReason, FromStreamer, ToStreamer};

use super::close::Close;
use crate::admin::observer::StreamObserver;
use crate::metrics::EndLabel;
use crate::sessions::{SessionGuard, StopReason};
use crate::streamer_proc::{IpcRx, IpcTx, StreamerChild};

/// How long a stopped streamer may take to cancel on the host and exit before it is killed.
const STREAMER_GRACE: Duration = Duration::from_secs(5);

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

/// The streamer's last words: its `Error` and `Ended`, collected until it closes its stdout.
#[derive(Debug, Default)]
pub(crate) struct LastWords {
    /// The streamer's `Error`, as the browser is told it.
    pub(crate) error: Option<BrowserError>,
    pub(crate) ended: Option<wire::ipc::Ended>,
    /// The streamer reported `Started`: its control (ENet) peer is connected on the host.
    pub(crate) started: bool,
}

/// What a stream's end releases: its registry entry, its process, its admin/metrics row.
pub(crate) struct Ends<'a> {
    pub(crate) guard: SessionGuard,
    pub(crate) child: &'a mut StreamerChild,
    pub(crate) observer: &'a mut StreamObserver,
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
                FromStreamer::Error(e) => last.error = Some(BrowserError::from(&e)),
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
                return Close::failed(error);
            }
            match last.ended.take() {
                Some(e) if e.reason == EndReason::HostEnded => {
                    Close::normal("host ended the stream")
                }
                Some(e) if e.reason == EndReason::Stopped => Close::normal("stream ended"),
                Some(e) if e.reason == EndReason::PeerGone => Close::peer_gone(),
                Some(e) => Close::failure(
                    ErrorCode::InternalServerError,
                    format!(
                        "stream ended: {}",
                        e.message.unwrap_or_else(|| format!("{:?}", e.reason))
                    ),
                ),
                None => Close::failure(
                    ErrorCode::InternalServerError,
                    format!("the streamer exited unexpectedly ({status_text})"),
                ),
            }
        }
    }
}

/// The streamer's output did not decode as IPC (a corrupted or foreign process, or a frame over
/// the size limit): the decoder's error goes to the log, and the stream ends as a lost streamer
/// (killed after the grace period if it does not exit, close 1011).
pub(crate) fn ipc_broken(key: &str, error: &wire::ipc::IpcError) {
    tracing::warn!(session = %key, %error, "the streamer's IPC output is corrupt; ending the stream");
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
