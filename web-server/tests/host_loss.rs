//! The "host unreachable mid-stream" end of the one teardown path, against a real host process:
//! a `demo-host` binary (an external, Wolf-like host paired through its Wolf API socket) streams
//! through the gateway and is then killed with SIGKILL — no termination message, no `/cancel`
//! answer, sockets gone. The browser must get a real close with a reason it can show, the streamer
//! must exit (its `/cancel` to a dead host fails fast instead of hanging), and the registry must
//! be empty, so the same browser can stream again at once from another host; and once the host is
//! back (a new process on the same ports and state directory), from it, without a new pairing.

mod common;

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use common::*;
use futures_util::StreamExt;

/// moonlight-common-c and our control stream give a silent peer 10 s (ENet peer timeout); the
/// close must follow that within a few seconds of teardown.
const LOSS_DETECTED_WITHIN: Duration = Duration::from_secs(25);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_killed_mid_stream_closes_the_browser_socket_and_frees_everything() {
    // Fixed ports and a state directory, so the host can come back as the same host.
    let (_serial, gw, _dir, mut host, pins) = gateway_with_fixed_host().await;
    let baseline_children = streamer_children().len();

    // Host index 1: the embedded host is the first in the list.
    let started = Instant::now();
    let mut ws = connect_host(&gw, 1, "ses_loss-hq", "helix-agent-loss").await;
    handshake(&mut ws).await;
    let first = first_keyframe(&mut ws, started).await;
    assert_eq!(gw.state.sessions.list().len(), 1);
    assert_eq!(streamer_children().len(), baseline_children + 1);
    assert_eq!(pins.load(Ordering::SeqCst), 1, "the first stream paired");

    // The host dies without a word.
    host.kill().await;
    let killed = Instant::now();
    let (close, error) = read_until_close(&mut ws, LOSS_DETECTED_WITHIN).await;
    let noticed = killed.elapsed();
    let registry_empty = gw.registry_empty(Duration::from_secs(5)).await;
    let children_gone = eventually(Duration::from_secs(5), || {
        streamer_children().len() == baseline_children
    })
    .await;
    figure!(
        "host killed mid-stream: first keyframe after {} ms; browser closed {} ms after the kill \
         with {close:?} ({error:?})",
        first.as_millis(),
        noticed.as_millis()
    );
    let (code, reason) = close.expect("a close frame, not a dropped socket");
    assert_eq!(code, 1011, "an internal-error close, not a normal one");
    assert!(
        reason.contains("ConnectionLost") || reason.to_lowercase().contains("host"),
        "a reason that names the lost host: {reason}"
    );
    assert!(registry_empty, "the registry entry is gone");
    assert!(children_gone, "the streamer exited and was reaped");

    // The same browser identity streams again at once, from the embedded host.
    let mut again = connect(&gw, "ses_loss-hq", "helix-agent-loss", 320, 240, 30).await;
    handshake(&mut again).await;
    first_keyframe(&mut again, Instant::now()).await;
    again.close(None).await.unwrap();
    let _ = read_until_close(&mut again, Duration::from_secs(10)).await;
    assert!(gw.registry_empty(Duration::from_secs(10)).await);
    assert!(
        eventually(Duration::from_secs(5), || gw.host.sessions().is_empty()).await,
        "the embedded host holds no session"
    );

    // The crashed host comes back (same ports, same state directory): the same client streams
    // from it again with no new pairing — the host kept its paired clients on disk, the gateway
    // its identity — and without a restart of the gateway.
    host.restart().await;
    let back = Instant::now();
    let mut again = connect_host(&gw, 1, "ses_loss-hq", "helix-agent-loss").await;
    handshake(&mut again).await;
    let first_back = first_keyframe(&mut again, back).await;
    assert_eq!(
        pins.load(Ordering::SeqCst),
        1,
        "no new pairing after the crash"
    );
    assert_eq!(
        host.paired_clients().await,
        1,
        "the host kept its paired client"
    );
    figure!(
        "crashed host restarted: the same client's first keyframe {} ms after the host was back, no pairing",
        first_back.as_millis()
    );
    again.close(None).await.unwrap();
    let _ = read_until_close(&mut again, Duration::from_secs(10)).await;
    assert!(gw.registry_empty(Duration::from_secs(10)).await);
    assert_eq!(
        host.wait_sessions(0, Duration::from_secs(10)).await,
        Ok(()),
        "the restarted host holds no session"
    );
    assert_eq!(host.stats().await.0, 0, "0 Wolf-strict violations");
    gw.stop().await;
    while ws.next().await.is_some() {}
}
