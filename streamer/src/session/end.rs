//! The one teardown path every end of a session goes through.
//!
//! An [`End`] carries what the web-server and the browser are told (`Error`? + `Ended`) and the
//! process exit code. Whatever ended the session — `Stop`, EOF, the host, the peer, a fatal
//! error — [`teardown`] stops the host stream (awaited, bounded), closes the WebRTC peer, and
//! [`finish`] writes the last frames; keeping this in one place is what guarantees that no end
//! skips the host's `/cancel` or the `Ended` frame.

use std::time::{Duration, Instant};

use gamestream::client::{ClientError, ClientStream, EndCause};
use gamestream::control::{DisconnectReason, TerminationReason};
use gamestream::nvhttp::NvHttpError;
use wire::ipc::{Ended, ErrorCode, FromStreamer};

use super::{exit, End};
use crate::webrtc::Peer;
use crate::writer::Writer;

/// Upper bound on `/cancel` + closing (the host may be unreachable).
pub(super) const STOP_TIMEOUT: Duration = Duration::from_secs(5);
/// Upper bound on writing the last frames.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(1);

/// The end a host stream event means.
pub(super) fn end_of(cause: EndCause) -> End {
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

/// The one teardown path: `/cancel` (awaited) and close, then the WebRTC peer (if any) says
/// `"ConnectionTerminated"` on `general` and closes, then `Error`? + `Ended`, flushed.
pub(super) async fn teardown(
    session: ClientStream,
    writer: Writer,
    end: End,
    peer: Option<Peer>,
) -> i32 {
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
pub(super) async fn finish(writer: Writer, end: End) -> i32 {
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

#[cfg(test)]
mod tests {
    use super::*;
    use wire::ipc::EndReason;

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
