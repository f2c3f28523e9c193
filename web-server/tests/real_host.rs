//! Streams against a demo host that behaves like an unmodified Wolf (Wolf-strict mode: video RTP
//! timestamp 0, frames padded to 1000 bytes, High-profile H.264, and a `/cancel` that reaches the
//! host before the ENet disconnect counted as the crash it is on a real Wolf).
//!
//! 20 WebSocket streams back to back with one client identity: each streams with strictly
//! increasing timestamps although the host sends none, ends with a completed closing handshake,
//! and leaves the host free with no session and no teardown-order violation. (The WebRTC run of the
//! same is in `webrtc.rs`, the browser-tab run in `tests/browser/real-host.test.mjs`.)

mod common;

use std::time::{Duration, Instant};

use common::*;
use futures_util::{SinkExt, StreamExt};
use tokio::time::timeout;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use wire::browser::Message;

/// What one stream showed.
#[derive(Debug, Default)]
struct Seen {
    video: usize,
    audio: usize,
    /// Frames whose pts was not above the previous one's.
    video_out_of_order: usize,
    audio_out_of_order: usize,
    padded_frames: usize,
}

/// Reads `frames` video frames (keyframe first) and checks every timestamp.
async fn stream(ws: &mut Ws, frames: usize) -> Seen {
    let mut seen = Seen::default();
    let (mut last_video, mut last_audio) = (None::<u64>, None::<u64>);
    let deadline = Instant::now() + Duration::from_secs(15);
    while seen.video < frames {
        let left = deadline.saturating_duration_since(Instant::now());
        let msg = timeout(left, ws.next())
            .await
            .unwrap_or_else(|_| panic!("stalled after {seen:?}"))
            .expect("socket ended")
            .expect("socket error");
        let WsMessage::Binary(b) = msg else {
            assert!(!matches!(msg, WsMessage::Close(_)), "closed: {msg:?}");
            continue;
        };
        match Message::decode(&b) {
            Ok(Message::VideoFrame(f)) => {
                if seen.video == 0 {
                    assert!(f.keyframe, "the first frame is a keyframe");
                }
                if last_video.is_some_and(|l| f.pts_us <= l) {
                    seen.video_out_of_order += 1;
                }
                last_video = Some(f.pts_us);
                // Wolf pads a frame to 1000 bytes with zeros after the access unit.
                if f.data.len() == 1000 && f.data.ends_with(&[0, 0, 0, 0]) {
                    seen.padded_frames += 1;
                }
                seen.video += 1;
            }
            Ok(Message::AudioFrame(a)) => {
                if last_audio.is_some_and(|l| a.pts_us <= l) {
                    seen.audio_out_of_order += 1;
                }
                last_audio = Some(a.pts_us);
                seen.audio += 1;
            }
            _ => {}
        }
    }
    seen
}

/// Sends Close and waits for the server's Close frame; a socket that ends without one is 1006.
async fn close_cleanly(ws: &mut Ws) -> (u16, Duration) {
    let t = Instant::now();
    ws.send(WsMessage::Close(Some(CloseFrame {
        code: CloseCode::Normal,
        reason: "bye".into(),
    })))
    .await
    .unwrap();
    loop {
        match timeout(Duration::from_secs(5), ws.next()).await {
            Err(_) => return (1006, t.elapsed()),
            Ok(None) | Ok(Some(Err(_))) => return (1006, t.elapsed()),
            Ok(Some(Ok(WsMessage::Close(c)))) => {
                return (c.map(|c| u16::from(c.code)).unwrap_or(1005), t.elapsed())
            }
            Ok(Some(Ok(_))) => {}
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_websocket_streams_back_to_back_against_a_wolf_strict_host() {
    let _serial = SERIAL.lock().await;
    let gw = gateway().await;
    assert!(gw.host.wolf_strict(), "the embedded host is Wolf-strict");
    assert_eq!(host_state(&gw).await, "SUNSHINE_SERVER_FREE");
    let mut opens = Vec::new();
    let mut closes = Vec::new();
    let mut padded = 0;
    for n in 0..20 {
        let t = Instant::now();
        let mut ws = connect(&gw, "agent-ses_real", "real-host-client", 320, 240, 60).await;
        handshake(&mut ws).await;
        let seen = stream(&mut ws, 30).await;
        opens.push(t.elapsed());
        assert_eq!(seen.video_out_of_order, 0, "stream {n}: video pts {seen:?}");
        assert_eq!(seen.audio_out_of_order, 0, "stream {n}: audio pts {seen:?}");
        padded += seen.padded_frames;
        let (code, took) = close_cleanly(&mut ws).await;
        assert_eq!(
            code, 1000,
            "stream {n}: the browser's Close is answered with 1000"
        );
        closes.push(took);
        drop(ws);
        assert!(
            gw.registry_empty(Duration::from_secs(10)).await,
            "stream {n}: registry entry left"
        );
        assert_host_free_after(&gw, n).await;
    }
    opens.sort();
    closes.sort();
    println!(
        "20 streams against a Wolf-strict host: open → 30 frames p50 {} ms, worst {} ms; \
         client Close → server Close p50 {:.1} ms, worst {:.1} ms; {padded} frames arrived padded \
         to 1000 bytes; 0 teardown-order violations",
        opens[10].as_millis(),
        opens[19].as_millis(),
        closes[10].as_secs_f64() * 1e3,
        closes[19].as_secs_f64() * 1e3,
    );
    assert!(padded > 0, "Wolf-strict padding reached the browser");
    gw.stop().await;
}
