//! Several viewers on one WebSocket-mode stream (docs/browser-protocol.md §8), against the real
//! gateway, a real streamer process and the Wolf-strict embedded demo host:
//!
//! * a viewer joins with the owner's join token and gets StreamInit, ConnectionComplete and a
//!   keyframe of the same host stream (one host session, one streamer);
//! * a viewer's keys never reach the host's input sink, and it is told why; a wrong token is
//!   refused like an unknown stream;
//! * the owner hands control over, the viewer's keys arrive and the owner's are refused; an admin
//!   takes control back;
//! * the owner leaves and the stream goes on for the viewer; the last viewer leaving ends it all
//!   (registry empty, streamer gone, host session ended).

mod common;

use std::time::{Duration, Instant};

use common::*;
use futures_util::{SinkExt, StreamExt};
use gamestream::input::InputEvent;
use serde_json::Value;
use tokio::time::timeout;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use wire::browser::{ClientControl, KeyboardInput, Message};

const WAIT: Duration = Duration::from_secs(20);

/// Reads `ws` (media and all) until a text message whose JSON has `key`; that value.
async fn next_json(ws: &mut Ws, key: &str, pred: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + WAIT;
    loop {
        if let WsMessage::Text(t) = next_before(ws, deadline, &format!("no {key} message")).await {
            let v: Value = serde_json::from_str(t.as_str()).unwrap();
            if let Some(inner) = v.get(key) {
                if pred(inner) {
                    return inner.clone();
                }
            }
        }
    }
}

/// Reads until a video frame; whether it is a keyframe.
async fn next_video(ws: &mut Ws) -> bool {
    let deadline = Instant::now() + WAIT;
    loop {
        if let WsMessage::Binary(b) = next_before(ws, deadline, "no video").await {
            if let Ok(Message::VideoFrame(f)) = Message::decode(&b) {
                return f.keyframe;
            }
        }
    }
}

fn key(vk: u8) -> Vec<u8> {
    Message::Keyboard(KeyboardInput::Key {
        is_down: true,
        modifiers: 0,
        key: u16::from(vk),
    })
    .to_vec()
    .unwrap()
}

fn control(c: ClientControl) -> Vec<u8> {
    Message::Control(&c.to_json()).to_vec().unwrap()
}

fn pressed(log: &[demo_host::InputRecord], vk: u8) -> bool {
    log.iter().any(|r| {
        matches!(r.event, InputEvent::KeyDown { key_code, .. } if key_code & 0xff == u16::from(vk))
    })
}

/// A stream id as a path segment (its own escapes, `%2D`, escaped again).
fn in_path(stream: &str) -> String {
    stream.replace('%', "%25")
}

async fn watch(gw: &Gateway, stream: &str, token: &str) -> Ws {
    let url = format!("ws://{}/api/ws/watch", gw.addr);
    let mut ws = upgrade(&url, Some(SECRET), Duration::from_secs(5)).await;
    let msg = serde_json::json!({"watch": {"stream": stream, "token": token}});
    ws.send(WsMessage::Text(msg.to_string().into()))
        .await
        .unwrap();
    ws
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_viewer_watches_takes_control_and_outlives_the_owner() {
    let _serial = SERIAL.lock().await;
    let gw = gateway().await;
    let mut owner = connect(&gw, "share", "share-client", 640, 360, 30).await;
    let roster = next_json(&mut owner, "Viewers", |_| true).await;
    let (stream, token) = (
        roster["share"]["stream"].as_str().unwrap().to_string(),
        roster["share"]["token"].as_str().unwrap().to_string(),
    );
    assert_eq!(roster["you"], 1);
    assert_eq!(roster["controller"], 1);
    handshake(&mut owner).await;
    assert!(
        next_video(&mut owner).await,
        "the owner starts on a keyframe"
    );

    // A wrong token gets the unknown-stream answer.
    let mut bad = watch(&gw, &stream, "0123456789abcdef0123456789abcdef").await;
    let (close, error) = read_until_close(&mut bad, Duration::from_secs(5)).await;
    assert_eq!(close.map(|c| c.0), Some(1008));
    assert!(error.is_some_and(|e| e.contains("SessionNotFound")));

    // The viewer joins the same host stream, starting on a keyframe.
    let mut viewer = watch(&gw, &stream, &token).await;
    handshake(&mut viewer).await;
    let seen = next_json(&mut viewer, "Viewers", |v| v["you"] == 2).await;
    assert_eq!(seen["viewers"].as_array().unwrap().len(), 2);
    assert!(
        seen.get("share").is_none(),
        "only the owner gets the join token"
    );
    assert!(
        next_video(&mut viewer).await,
        "a joining viewer starts on a keyframe"
    );
    next_json(&mut owner, "Viewers", |v| {
        v["viewers"].as_array().unwrap().len() == 2
    })
    .await;
    assert_eq!(gw.host.sessions().len(), 1, "one host session for both");
    assert_eq!(streamer_children().len(), 1, "one streamer for both");
    let sid = gw.host.sessions()[0].session_id;

    // The viewer's key is dropped, and it is told why; the owner's arrives.
    viewer
        .send(WsMessage::Binary(key(0x42).into()))
        .await
        .unwrap();
    let refused = next_json(&mut viewer, "InputRefused", |_| true).await;
    assert!(refused["reason"].as_str().unwrap().contains("control"));
    owner
        .send(WsMessage::Binary(key(0x41).into()))
        .await
        .unwrap();
    assert!(
        gw.host
            .wait_for_inputs(sid, WAIT, |log| pressed(log, 0x41))
            .await
    );
    assert!(
        !pressed(&gw.host.inputs(sid), 0x42),
        "a viewer's key reached the host"
    );

    // Hand-over: the viewer asks, the owner grants.
    viewer
        .send(WsMessage::Binary(
            control(ClientControl::RequestControl).into(),
        ))
        .await
        .unwrap();
    next_json(&mut owner, "Viewers", |v| {
        v["requests"] == serde_json::json!([2])
    })
    .await;
    owner
        .send(WsMessage::Binary(
            control(ClientControl::GrantControl(2)).into(),
        ))
        .await
        .unwrap();
    next_json(&mut viewer, "Viewers", |v| v["controller"] == 2).await;
    viewer
        .send(WsMessage::Binary(key(0x43).into()))
        .await
        .unwrap();
    assert!(
        gw.host
            .wait_for_inputs(sid, WAIT, |log| pressed(log, 0x43))
            .await
    );
    owner
        .send(WsMessage::Binary(key(0x44).into()))
        .await
        .unwrap();
    next_json(&mut owner, "InputRefused", |_| true).await;
    assert!(
        !pressed(&gw.host.inputs(sid), 0x44),
        "the former controller's key reached the host"
    );

    // An admin takes control from everyone, then gives it to the viewer again.
    let admin = gw.state.admin_credentials.expose().to_string();
    let path = format!("/api/admin/streams/{}/controller", in_path(&stream));
    for (body, status) in [
        (serde_json::json!({"viewer": null}), 204),
        (serde_json::json!({"viewer": 9}), 404),
        (serde_json::json!({"viewer": 2}), 204),
    ] {
        let r = http(gw.addr, "POST", &path, Some(&admin), Some(body.clone())).await;
        assert_eq!(r.status, status, "{body}: {}", r.body);
    }
    next_json(&mut viewer, "Viewers", |v| v["controller"] == 2).await;

    // The owner leaves: the stream goes on for the viewer.
    owner.send(WsMessage::Close(None)).await.unwrap();
    let _ = timeout(Duration::from_secs(5), async {
        while owner.next().await.is_some() {}
    })
    .await;
    next_json(&mut viewer, "Viewers", |v| {
        v["viewers"].as_array().unwrap().len() == 1
    })
    .await;
    assert!(frames_for(&mut viewer, Duration::from_secs(1)).await > 10);
    assert_eq!(
        gw.state.sessions.list().len(),
        1,
        "the stream outlives its owner"
    );

    // The last viewer leaves: everything ends.
    close_until_registry_empty(&gw, &mut viewer).await;
    assert!(gw.registry_empty(WAIT).await);
    let deadline = Instant::now() + WAIT;
    while (!streamer_children().is_empty() || !gw.host.sessions().is_empty())
        && Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(streamer_children().is_empty(), "the streamer exited");
    assert!(gw.host.sessions().is_empty(), "the host session ended");
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_viewer_is_closed_when_the_stream_is_killed() {
    let _serial = SERIAL.lock().await;
    let gw = gateway().await;
    let mut owner = connect(&gw, "killed", "killed-client", 640, 360, 30).await;
    let roster = next_json(&mut owner, "Viewers", |_| true).await;
    let (stream, token) = (
        roster["share"]["stream"].as_str().unwrap().to_string(),
        roster["share"]["token"].as_str().unwrap().to_string(),
    );
    handshake(&mut owner).await;
    let mut viewers = Vec::new();
    for _ in 0..3 {
        let mut v = watch(&gw, &stream, &token).await;
        handshake(&mut v).await;
        assert!(next_video(&mut v).await);
        viewers.push(v);
    }
    let admin = gw.state.admin_credentials.expose().to_string();
    let path = format!("/api/admin/sessions/{}", in_path(&stream));
    let r = http(gw.addr, "DELETE", &path, Some(&admin), None).await;
    assert_eq!(r.status, 200, "{}", r.body);
    for v in viewers.iter_mut().chain(std::iter::once(&mut owner)) {
        let (close, _) = read_until_close(v, WAIT).await;
        assert_eq!(
            close.map(|c| c.0),
            Some(4001),
            "stopped by an administrator"
        );
    }
    assert!(gw.registry_empty(WAIT).await);
    // A join after the end is refused like an unknown stream.
    let mut late = watch(&gw, &stream, &token).await;
    let (close, _) = read_until_close(&mut late, Duration::from_secs(5)).await;
    assert_eq!(close.map(|c| c.0), Some(1008));
    gw.stop().await;
}
