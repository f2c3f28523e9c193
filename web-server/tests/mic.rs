//! The browser's microphone through the whole gateway (docs/browser-protocol.md MicOpus 0x18):
//! a WebSocket-mode stream from the embedded demo host with its microphone stream on (the
//! Sunshine forks' `streamid=mic`, docs/microphone.md), 2 s of a tone sent as MicOpus messages
//! encoded with opus-rs, through the gateway and a real streamer process to the host's sink,
//! which finds the pitch. With the host's microphone off (a Wolf), the same messages go nowhere
//! and the stream runs on.

mod common;

use std::time::{Duration, Instant};

use common::*;
use futures_util::SinkExt;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use wire::browser::{Message, MicOpus};

const FRAME: usize = 960;
const PACKETS: u64 = 100;

/// 2 s of `hz` as MicOpus messages, sent at a microphone's pace.
async fn send_tone(ws: &mut Ws, hz: f64) {
    let packets = demo_host::mic::opus_tone(hz, PACKETS as usize).expect("tone");
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    for (p, packet) in packets.iter().enumerate() {
        let msg = Message::MicOpus(MicOpus {
            timestamp: (p * FRAME) as u32,
            data: packet,
        })
        .to_vec()
        .unwrap();
        tick.tick().await;
        ws.send(WsMessage::Binary(msg.into())).await.unwrap();
    }
}

async fn streaming(gw: &Gateway, session: &str) -> (Ws, u64) {
    let mut ws = connect(gw, session, &format!("{session}-client"), 640, 360, 30).await;
    handshake(&mut ws).await;
    first_keyframe(&mut ws, Instant::now()).await;
    let sessions = gw.host.sessions();
    assert_eq!(sessions.len(), 1);
    (ws, sessions[0].session_id)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tone_from_the_browser_reaches_the_host_at_its_pitch() {
    let _serial = SERIAL.lock().await;
    let gw = gateway_configured(None, |c| c.demo_host_microphone = true).await;
    for hz in [440.0, 880.0] {
        let (mut ws, id) = streaming(&gw, &format!("mic{}", hz as u32)).await;
        // Nothing reads the socket meanwhile: the gateway's queue drops video for it alone.
        send_tone(&mut ws, hz).await;
        let deadline = Instant::now() + Duration::from_secs(10);
        let report = loop {
            let r = gw.host.mic(id);
            if r.as_ref().is_some_and(|r| r.packets >= PACKETS) || Instant::now() > deadline {
                break r;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        let report = report.expect("the host has a microphone sink for the session");
        assert_eq!(report.packets, PACKETS, "{report:?}");
        assert_eq!(report.undecodable, 0, "{report:?}");
        assert!(
            (report.pitch_hz - hz).abs() < hz * 0.03,
            "pitch {} Hz for a {hz} Hz tone",
            report.pitch_hz
        );
        close_until_registry_empty(&gw, &mut ws).await;
    }
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_host_microphone_the_packets_go_nowhere_and_the_stream_runs_on() {
    let _serial = SERIAL.lock().await;
    let gw = gateway().await;
    let (mut ws, id) = streaming(&gw, "nomic").await;
    send_tone(&mut ws, 440.0).await;
    assert!(
        gw.host.mic(id).is_none(),
        "a Wolf-like host has no microphone"
    );
    assert!(frames_for(&mut ws, Duration::from_secs(1)).await > 10);
    close_until_registry_empty(&gw, &mut ws).await;
    gw.stop().await;
}
