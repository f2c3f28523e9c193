//! The "host unreachable mid-stream" end of the one teardown path, against a real host process:
//! a `demo-host` binary (an external, Wolf-like host paired through its Wolf API socket) streams
//! through the gateway and is then killed with SIGKILL — no termination message, no `/cancel`
//! answer, sockets gone. The browser must get a real close with a reason it can show, the streamer
//! must exit (its `/cancel` to a dead host fails fast instead of hanging), and the registry must
//! be empty, so the same browser can stream again at once from another host.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use futures_util::{SinkExt, StreamExt};
use tokio::time::timeout;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use web_server::autopair::WolfApiPins;
use web_server::store::NewHost;

/// moonlight-common-c and our control stream give a silent peer 10 s (ENet peer timeout); the
/// close must follow that within a few seconds of teardown.
const LOSS_DETECTED_WITHIN: Duration = Duration::from_secs(25);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_killed_mid_stream_closes_the_browser_socket_and_frees_everything() {
    let _serial = SERIAL.lock().await;
    let gw = gateway().await;
    let dir = tempfile::tempdir().unwrap();
    let (mut host, http, https, _lines) = spawn_demo_host(dir.path()).await;
    let socket = dir.path().join("wolf.sock");
    gw.state
        .store
        .add_host(NewHost {
            name: "external demo host".into(),
            address: "127.0.0.1".into(),
            http_port: http,
            https_port: Some(https),
            mac: None,
            wolf_api: None,
        })
        .await
        .unwrap();
    gw.state.add_pin_submitter(Arc::new(
        WolfApiPins::new("127.0.0.1", http, socket.to_str().unwrap()).unwrap(),
    ));
    let baseline_children = streamer_children().len();

    // Host index 1: the embedded host is the first in the list.
    let mut req = format!("ws://{}/api/ws/stream", gw.addr)
        .into_client_request()
        .unwrap();
    req.headers_mut()
        .insert("authorization", format!("Bearer {SECRET}").parse().unwrap());
    let (mut ws, _) = tokio_tungstenite::connect_async(req).await.unwrap();
    let mut init: serde_json::Value =
        serde_json::from_str(&init_json("ses_loss-hq", "helix-agent-loss", 640, 360, 30)).unwrap();
    init["host_id"] = 1.into();
    ws.send(WsMessage::Text(init.to_string().into()))
        .await
        .unwrap();
    let started = Instant::now();
    handshake(&mut ws).await;
    let first = first_keyframe(&mut ws, started).await;
    assert_eq!(gw.state.sessions.list().len(), 1);
    assert_eq!(streamer_children().len(), baseline_children + 1);

    // The host dies without a word.
    host.start_kill().unwrap();
    let killed = Instant::now();
    let _ = timeout(Duration::from_secs(5), host.wait()).await;
    let (close, error) = read_until_close(&mut ws, LOSS_DETECTED_WITHIN).await;
    let noticed = killed.elapsed();
    let registry_empty = gw.registry_empty(Duration::from_secs(5)).await;
    let children_gone = eventually(Duration::from_secs(5), || {
        streamer_children().len() == baseline_children
    })
    .await;
    println!(
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
    gw.stop().await;
    while ws.next().await.is_some() {}
}
