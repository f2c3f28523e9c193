//! Starting the host stream again at another rung (`Restream`, docs/adaptive-quality.md): the
//! gateway's quality controller found the browser's link too narrow for the stream (or wide
//! enough again for a better one).
//!
//! Upstream Sunshine and Wolf take a new size, frame rate and bitrate only from a new RTSP
//! ANNOUNCE, so the stream (not the app) is ended as a Moonlight client leaving a game running
//! ends it, and started again through the same [`start`] as the first one, which chooses
//! `/resume` because the app still runs. Everything on the browser's side stays: the WebRTC peer,
//! the IPC writer, the input mapper and the [`Forwarder`]'s counters; `Started` goes out again
//! with the new size (the browser reconfigures its decoder), and the forwarder holds video back
//! until the new stream's first keyframe and measures the gap.

use std::time::Instant;

use tokio::io::AsyncRead;
use tokio_util::codec::FramedRead;
use wire::ipc::{Rung, StreamerCodec, StreamerInit};

use super::end::{finish, STOP_TIMEOUT};
use super::running::Running;
use super::start;

/// Whether the session can change rung at all: a stream that joined a Wolf lobby shares the
/// lobby's encoder, whose settings the lobby owns.
pub(super) fn allowed(init: &StreamerInit) -> bool {
    init.lobby_id.is_none()
}

/// Ends the running host stream and starts it again at `rung`. `Err` is the exit code of a
/// session whose new start failed: it has been ended (the host's app cancelled, `Error` and
/// `Ended` written) as a failed first start is.
pub(super) async fn restream<R: AsyncRead + Unpin>(
    run: Running,
    init: &mut StreamerInit,
    rung: Rung,
    rx: &mut FramedRead<R, StreamerCodec>,
) -> Result<Running, i32> {
    let Running {
        mut peer,
        session,
        writer,
        mapper,
        mut forward,
        started_at,
    } = run;
    let t = Instant::now();
    tracing::info!(
        from = format_args!(
            "{}x{}@{} {} kbit/s",
            init.width, init.height, init.fps, init.bitrate_kbps
        ),
        to = format_args!(
            "{}x{}@{} {} kbit/s",
            rung.width, rung.height, rung.fps, rung.bitrate_kbps
        ),
        "restreaming at a new rung"
    );
    forward.restarting(t);
    // Bounded like every stop: a host that does not acknowledge the disconnect is left after
    // the control stream's linger time anyway.
    if tokio::time::timeout(STOP_TIMEOUT, session.end_stream())
        .await
        .is_err()
    {
        tracing::warn!("the old host stream did not close in time");
    }
    init.width = rung.width;
    init.height = rung.height;
    init.fps = rung.fps;
    init.bitrate_kbps = rung.bitrate_kbps;
    let mut signals = Vec::new();
    match start::start(init, rx, &writer, &mut signals).await {
        Ok(started) => {
            tracing::info!(
                elapsed_ms = t.elapsed().as_millis() as u64,
                "the host stream restarted at the new rung"
            );
            if let Some(peer) = peer.as_mut() {
                for signal in signals {
                    peer.signal(signal);
                }
            }
            Ok(Running {
                peer,
                session: started.session,
                writer: writer.for_stream(&started.started),
                mapper,
                forward,
                started_at,
            })
        }
        Err((http, end)) => {
            // The old stream was left without `/cancel` so that it could be resumed: whatever
            // failed, the host's app is ended now, as after any failed start.
            let http = http.or_else(|| start::client_config(init).ok().map(|(h, _, _)| h));
            if let Some(http) = http {
                start::cancel_after_aborted_start(&http).await;
            }
            if let Some(mut peer) = peer {
                peer.close();
            }
            Err(finish(writer, end).await)
        }
    }
}
