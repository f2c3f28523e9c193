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
//!
//! A rung that changes only the bitrate, on a host that takes a new bitrate while it streams
//! (Foundation Sunshine), is asked of the host's encoder instead ([`live_bitrate`]): no new
//! stream at all.

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

/// Changes the bitrate without a new stream where that is all `rung` changes and the host can
/// (Foundation Sunshine's live bitrate, `gamestream::nvhttp::ServerInfo::has_live_bitrate`):
/// the browser sees no gap and waits for no keyframe. False when the rung needs [`restream`].
pub(super) fn live_bitrate(run: &mut Running, init: &mut StreamerInit, rung: &Rung) -> bool {
    let same_picture = (rung.width, rung.height, rung.fps) == (init.width, init.height, init.fps);
    if !same_picture || !run.session.has_live_bitrate() {
        return false;
    }
    match run.session.set_bitrate(rung.bitrate_kbps) {
        Ok(true) => {
            tracing::info!(
                from_kbps = init.bitrate_kbps,
                to_kbps = rung.bitrate_kbps,
                "bitrate changed live, the stream kept"
            );
            init.bitrate_kbps = rung.bitrate_kbps;
            true
        }
        Ok(false) => false,
        Err(e) => {
            tracing::warn!("live bitrate change not sent ({e}): restreaming instead");
            false
        }
    }
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
