//! The limits an operator sets, each against a real gateway, streamer and host: a stream over the
//! cap is closed 1013, an address over its open rate gets HTTP 429 before the upgrade, an
//! over-size browser message closes the socket 1009 (before and during a stream), and a socket
//! silent past the first-message time is closed 1008. Each is counted in
//! `moongate_rejections_total{reason}`, and nothing is left behind.

mod common;

use std::time::{Duration, Instant};

use common::*;
use futures_util::SinkExt;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use web_server::limits::Limits;
use web_server::Config;

async fn limited_gateway(limits: Limits) -> Gateway {
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::load_with_env(None, |_| None).unwrap();
    config.data_dir = dir.path().to_path_buf();
    config.streamer_path = streamer_exe();
    config.limits = limits;
    serve_replay_gateway(config, dir).await
}

fn rejections(gw: &Gateway, reason: &str) -> u64 {
    let text = gw.state.metrics.render(&[], Default::default(), 0);
    let prefix = format!("moongate_rejections_total{{reason=\"{reason}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {prefix} in the metrics"))
}

async fn upgrade(gw: &Gateway) -> Result<Ws, u16> {
    let mut req = format!("ws://{}/api/ws/stream", gw.addr)
        .into_client_request()
        .unwrap();
    req.headers_mut()
        .insert("authorization", format!("Bearer {SECRET}").parse().unwrap());
    match tokio_tungstenite::connect_async(req).await {
        Ok((ws, _)) => Ok(ws),
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => Err(resp.status().as_u16()),
        Err(e) => panic!("upgrade: {e}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_over_the_cap_is_closed_1013_and_fits_again_once_one_ends() {
    let _serial = SERIAL.lock().await;
    let gw = limited_gateway(Limits {
        max_streams: 1,
        ..Limits::default()
    })
    .await;
    let mut first = connect(&gw, "capa", "client1", 640, 360, 30).await;
    handshake(&mut first).await;
    first_keyframe(&mut first, Instant::now()).await;

    let mut second = connect(&gw, "capb", "client2", 640, 360, 30).await;
    let (close, error) = read_until_close(&mut second, Duration::from_secs(10)).await;
    let (code, reason) = close.expect("a close frame");
    assert_eq!(code, 1013, "{reason}");
    assert!(reason.starts_with("TooManyStreams"), "{reason}");
    assert!(error.is_some_and(|e| e.contains("TooManyStreams")));
    assert_eq!(rejections(&gw, "max_streams"), 1);
    // The same key again is a supersede, not an extra stream: it fits.
    let mut again = connect(&gw, "capa", "client1", 640, 360, 30).await;
    handshake(&mut again).await;
    let (close, _) = read_until_close(&mut first, Duration::from_secs(10)).await;
    assert_eq!(close.map(|c| c.0), Some(4000));
    drop(again);
    assert!(gw.registry_empty(Duration::from_secs(10)).await);
    let mut third = connect(&gw, "capb", "client2", 640, 360, 30).await;
    handshake(&mut third).await;
    first_keyframe(&mut third, Instant::now()).await;
    drop(third);
    assert!(gw.registry_empty(Duration::from_secs(10)).await);
    assert_host_free_after(&gw, 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_address_over_its_open_rate_gets_429_before_the_upgrade() {
    let _serial = SERIAL.lock().await;
    let gw = limited_gateway(Limits {
        opens_per_minute_per_ip: 3,
        ..Limits::default()
    })
    .await;
    for _ in 0..3 {
        let mut ws = upgrade(&gw).await.expect("within the rate");
        ws.close(None).await.unwrap();
    }
    assert_eq!(upgrade(&gw).await.err(), Some(429));
    assert_eq!(upgrade(&gw).await.err(), Some(429));
    assert_eq!(rejections(&gw, "open_rate"), 2);
    assert!(gw.registry_empty(Duration::from_secs(5)).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_message_closes_1009_before_and_during_a_stream() {
    let _serial = SERIAL.lock().await;
    let gw = limited_gateway(Limits {
        max_message_bytes: 8192,
        ..Limits::default()
    })
    .await;
    // Before the init.
    let mut ws = upgrade(&gw).await.unwrap();
    ws.send(WsMessage::Binary(vec![0x10; 9000].into()))
        .await
        .unwrap();
    let (close, _) = read_until_close(&mut ws, Duration::from_secs(5)).await;
    let (code, reason) = close.expect("a close frame");
    assert_eq!(code, 1009, "{reason}");
    // During a stream: the stream ends through its teardown.
    let mut ws = connect(&gw, "big", "client-big", 640, 360, 30).await;
    handshake(&mut ws).await;
    first_keyframe(&mut ws, Instant::now()).await;
    let _ = ws.send(WsMessage::Binary(vec![0x10; 9000].into())).await;
    let (close, _) = read_until_close(&mut ws, Duration::from_secs(10)).await;
    let (code, reason) = close.expect("a close frame");
    assert_eq!(code, 1009, "{reason}");
    assert_eq!(rejections(&gw, "message_too_big"), 2);
    assert!(gw.registry_empty(Duration::from_secs(10)).await);
    assert_host_free_after(&gw, 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_socket_is_closed_1008_after_the_first_message_time() {
    let _serial = SERIAL.lock().await;
    let gw = limited_gateway(Limits {
        first_message: Duration::from_secs(1),
        ..Limits::default()
    })
    .await;
    let mut ws = upgrade(&gw).await.unwrap();
    let t0 = Instant::now();
    let (close, _) = read_until_close(&mut ws, Duration::from_secs(5)).await;
    let waited = t0.elapsed();
    let (code, reason) = close.expect("a close frame");
    assert_eq!(code, 1008, "{reason}");
    assert!(reason.contains("no init message"), "{reason}");
    assert!(
        waited >= Duration::from_millis(900) && waited < Duration::from_secs(3),
        "{waited:?}"
    );
    assert_eq!(rejections(&gw, "first_message_timeout"), 1);
}
