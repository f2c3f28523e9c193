//! The closing handshake of both browser sockets (`/api/ws/stream` and `/api/host/stream`)
//! completes for every close reason, in both directions, against real `streamer` processes and
//! the demo host on 127.0.0.1.
//!
//! The client is tokio-tungstenite, read as a browser reads it: after its own Close it reads until
//! the server's Close arrives or the stream ends; a stream end (or an error) without the server's
//! Close frame is 1006 (abnormal), which must never happen. The time from the client's Close to
//! the server's is measured over 30+ closes while media flows (p99 ≤ 100 ms, the bound).
//!
//! Needs the streamer binary (`cargo build -p streamer`).

mod common;

use common::*;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use tokio::time::timeout;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use web_server::embedded;
use web_server::sessions::{SessionKey, StopReason};

/// What the browser saw of a close.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Seen {
    /// The server's Close frame (code, reason).
    Closed(u16, String),
    /// The stream ended without the server's Close: a browser reports 1006.
    Abnormal,
}

/// Sends the client's Close (1000) and reads until the server's Close; returns what was seen and
/// the time from our Close to theirs.
async fn client_close(ws: &mut Ws) -> (Seen, Duration) {
    let t0 = Instant::now();
    let sent = ws
        .send(WsMessage::Close(Some(CloseFrame {
            code: CloseCode::Normal,
            reason: "bye".into(),
        })))
        .await;
    assert!(sent.is_ok(), "could not send the client's Close: {sent:?}");
    let seen = server_close_within(ws, Duration::from_secs(10)).await;
    (seen, t0.elapsed())
}

/// Reads (media, texts) until the server's Close frame or the end of the stream.
async fn server_close_within(ws: &mut Ws, within: Duration) -> Seen {
    let deadline = Instant::now() + within;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match timeout(left, ws.next()).await {
            // The close timeout passed: a browser gives up with 1006.
            Err(_) => return Seen::Abnormal,
            Ok(None) | Ok(Some(Err(_))) => return Seen::Abnormal,
            Ok(Some(Ok(WsMessage::Close(Some(c))))) => {
                return Seen::Closed(u16::from(c.code), c.reason.to_string())
            }
            Ok(Some(Ok(WsMessage::Close(None)))) => return Seen::Closed(1005, String::new()),
            Ok(Some(Ok(_))) => {}
        }
    }
}

/// After the server's Close the client's answer goes out (tungstenite answers on the next read);
/// the stream then ends cleanly.
async fn finish(mut ws: Ws) {
    let _ = timeout(Duration::from_secs(2), async {
        while let Some(Ok(_)) = ws.next().await {}
    })
    .await;
}

fn code(seen: &Seen) -> Option<u16> {
    match seen {
        Seen::Closed(c, _) => Some(*c),
        Seen::Abnormal => None,
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn signaling_init(session: &str, client: &str, host_id: u32) -> String {
    AuthInit {
        session,
        client,
        host_id,
        bitrate: 5000,
        size: (640, 360),
        fps: 30,
    }
    .json()
}

/// Opens the signaling socket and sends `first` (no Authorization header: the credentials travel
/// in the init, as Helix's viewer does it).
async fn open_signaling_with(gw: &Gateway, session: &str, first: String) -> Ws {
    open_signaling_socket(&gw.addr.to_string(), session, first, Duration::from_secs(5)).await
}

/// Reads the signaling socket until the streamer is launched (the server starts the WebRTC
/// negotiation stage).
async fn signaling_launched(ws: &mut Ws) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match next_before(ws, deadline, "no launch on the signaling socket").await {
            WsMessage::Text(t) if t.contains("WebRtcConfig") => return,
            WsMessage::Close(c) => panic!("closed during launch: {c:?}"),
            _ => {}
        }
    }
}

async fn open_signaling(gw: &Gateway, session: &str, client: &str) -> Ws {
    let mut ws = open_signaling_with(gw, session, signaling_init(session, client, 0)).await;
    signaling_launched(&mut ws).await;
    ws
}

/// A WebSocket-mode stream with its first keyframe delivered.
async fn streaming(gw: &Gateway, session: &str, client: &str) -> Ws {
    let mut ws = connect(gw, session, client, 640, 360, 30).await;
    handshake(&mut ws).await;
    first_keyframe(&mut ws, Instant::now()).await;
    ws
}

async fn assert_clean(gw: &Gateway) {
    assert_stream_gone(gw, Duration::from_secs(10), Duration::from_secs(10)).await;
}

/// An administrator's kill of `key` closes `ws` with 4001 and leaves nothing behind.
async fn admin_kill_closes_4001(gw: &Gateway, key: &str, mut ws: Ws) {
    let key: SessionKey = key.parse().unwrap();
    assert!(gw.state.sessions.stop(&key, StopReason::AdminKill));
    let seen = server_close_within(&mut ws, Duration::from_secs(15)).await;
    assert_eq!(
        seen,
        Seen::Closed(4001, "stopped by an administrator".into())
    );
    finish(ws).await;
    assert_clean(gw).await;
}

/// The case: stream 2 s from the embedded host, send Close: answered at once with 1000,
/// and the teardown still runs completely. Then 30 more closes on both sockets for the figures.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_close_is_answered_at_once_on_both_sockets() {
    let _serial = SERIAL.lock().await;
    let gw = gateway().await;
    let mut ws_times = Vec::new();
    let mut rtc_times = Vec::new();

    // The reproduction: 2 s of streaming, then the browser's Close.
    let mut ws = streaming(&gw, "ses_close", "close-client").await;
    let until = Instant::now() + Duration::from_secs(2);
    while Instant::now() < until {
        let _ = timeout(Duration::from_millis(200), ws.next()).await;
    }
    let (seen, took) = client_close(&mut ws).await;
    assert_eq!(seen, Seen::Closed(1000, "bye".into()), "after {took:?}");
    ws_times.push(took);
    finish(ws).await;
    assert_clean(&gw).await;

    // Before the init: answered too.
    for path in ["/api/ws/stream", "/api/host/stream"] {
        let url = format!("ws://{}{path}", gw.addr);
        let mut ws = upgrade(&url, None, Duration::from_secs(5)).await;
        let (seen, _) = client_close(&mut ws).await;
        assert_eq!(code(&seen), Some(1000), "{path}: {seen:?}");
        finish(ws).await;
    }

    // WebSocket mode while media flows.
    for i in 0..24 {
        let mut ws = streaming(&gw, &format!("ses_close{i}"), "close-client").await;
        let (seen, took) = client_close(&mut ws).await;
        assert_eq!(
            seen,
            Seen::Closed(1000, "bye".into()),
            "close {i} after {took:?}"
        );
        ws_times.push(took);
        finish(ws).await;
    }
    assert_clean(&gw).await;

    // The signaling socket with its streamer launched.
    for i in 0..8 {
        let mut ws = open_signaling(&gw, &format!("ses_rtc_close{i}"), "close-rtc").await;
        let (seen, took) = client_close(&mut ws).await;
        assert_eq!(
            seen,
            Seen::Closed(1000, "bye".into()),
            "close {i} after {took:?}"
        );
        rtc_times.push(took);
        finish(ws).await;
    }
    assert_clean(&gw).await;

    let mut all: Vec<Duration> = ws_times.iter().chain(&rtc_times).copied().collect();
    all.sort();
    ws_times.sort();
    rtc_times.sort();
    println!(
        "client Close → server Close: websocket n={} p50={:?} p99={:?}; signaling n={} p50={:?} p99={:?}; all n={} p50={:?} p99={:?} max={:?}",
        ws_times.len(),
        percentile(&ws_times, 0.5),
        percentile(&ws_times, 0.99),
        rtc_times.len(),
        percentile(&rtc_times, 0.5),
        percentile(&rtc_times, 0.99),
        all.len(),
        percentile(&all, 0.5),
        percentile(&all, 0.99),
        all.last().unwrap(),
    );
    assert!(
        percentile(&all, 0.99) <= Duration::from_millis(100),
        "p99 of the close answer above 100 ms"
    );
    gw.stop().await;
}

/// Every server-initiated close of the WebSocket-mode socket carries its code in a real Close
/// frame (never 1006).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_server_close_of_the_stream_socket_completes() {
    let _serial = SERIAL.lock().await;
    let gw = gateway().await;

    // Policy (1008): an unusable init.
    let mut ws = connect_init(&gw, "ses_p", "{\"type\":\"init\"".into()).await;
    let seen = server_close_within(&mut ws, Duration::from_secs(10)).await;
    assert_eq!(code(&seen), Some(1008), "{seen:?}");
    finish(ws).await;

    // Error (1011): no such host.
    let init = init_json("ses_h", "c-h", 640, 360, 30).replace("\"host_id\":0", "\"host_id\":7");
    let mut ws = connect_init(&gw, "ses_h", init).await;
    let seen = server_close_within(&mut ws, Duration::from_secs(10)).await;
    assert_eq!(code(&seen), Some(1011), "{seen:?}");
    finish(ws).await;

    // Superseded (4000).
    let mut old = streaming(&gw, "ses_s", "c-s").await;
    let new = connect(&gw, "ses_s", "c-s", 640, 360, 30).await;
    let seen = server_close_within(&mut old, Duration::from_secs(15)).await;
    assert_eq!(seen, Seen::Closed(4000, "superseded".into()));
    finish(old).await;
    let mut new = new;
    handshake(&mut new).await;

    // Admin kill (4001).
    admin_kill_closes_4001(&gw, "ses_s--c%2Ds", new).await;

    // The host ended the stream (1000).
    let mut ws = streaming(&gw, "ses_e", "c-e").await;
    // The host half's own stop (as an idle timeout or a lobby stop ends a session).
    let sid = gw.host.sessions()[0].session_id;
    assert!(gw
        .host
        .gamestream()
        .stop_session(sid, gamestream::host::EndReason::Stopped));
    let seen = server_close_within(&mut ws, Duration::from_secs(15)).await;
    assert_eq!(code(&seen), Some(1000), "{seen:?}");
    finish(ws).await;
    assert_clean(&gw).await;

    // Shutdown (1001).
    let mut ws = streaming(&gw, "ses_d", "c-d").await;
    let stopping = tokio::spawn(gw.stop());
    let seen = server_close_within(&mut ws, Duration::from_secs(15)).await;
    assert_eq!(seen, Seen::Closed(1001, "server shutting down".into()));
    finish(ws).await;
    stopping.await.unwrap();
}

/// Every server-initiated close of the signaling socket carries its code in a real Close frame.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_server_close_of_the_signaling_socket_completes() {
    let _serial = SERIAL.lock().await;
    let (config, dir) = loopback_config();
    let (host, provided) = embedded::start_demo_host(&config).await.unwrap();
    let gw = serve_gateway(config, host, provided, dir).await;

    // Policy (1008): not an AuthenticateAndInit.
    let mut ws = open_signaling_with(&gw, "r_p", "{\"nope\":1}".into()).await;
    let seen = server_close_within(&mut ws, Duration::from_secs(10)).await;
    assert_eq!(code(&seen), Some(1008), "{seen:?}");
    finish(ws).await;

    // Policy (1008): wrong credentials.
    let bad = signaling_init("r_u", "c-u", 0).replace(SECRET, "wrong");
    let mut ws = open_signaling_with(&gw, "r_u", bad).await;
    let seen = server_close_within(&mut ws, Duration::from_secs(10)).await;
    assert_eq!(code(&seen), Some(1008), "{seen:?}");
    finish(ws).await;

    // Error (1011): no such host.
    let mut ws = open_signaling_with(&gw, "r_h", signaling_init("r_h", "c-h", 7)).await;
    let seen = server_close_within(&mut ws, Duration::from_secs(10)).await;
    assert_eq!(code(&seen), Some(1011), "{seen:?}");
    finish(ws).await;

    // Superseded (4000).
    let mut old = open_signaling(&gw, "r_s", "c-s").await;
    let mut new = open_signaling_with(&gw, "r_s", signaling_init("r_s", "c-s", 0)).await;
    let seen = server_close_within(&mut old, Duration::from_secs(15)).await;
    assert_eq!(seen, Seen::Closed(4000, "superseded".into()));
    finish(old).await;
    signaling_launched(&mut new).await;

    // Admin kill (4001).
    admin_kill_closes_4001(&gw, "r_s--c%2Ds", new).await;

    // Shutdown (1001).
    let mut ws = open_signaling(&gw, "r_d", "c-d").await;
    let stopping = tokio::spawn(gw.stop());
    let seen = server_close_within(&mut ws, Duration::from_secs(15)).await;
    assert_eq!(seen, Seen::Closed(1001, "server shutting down".into()));
    finish(ws).await;
    stopping.await.unwrap();
}

fn sigkill(pid: u32) {
    let status = std::process::Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .status()
        .expect("kill");
    assert!(status.success(), "kill -KILL {pid}");
}

/// A streamer killed mid-stream: the browser gets a real 1011 Close, the registry entry goes, the
/// same client streams again at once (its new launch takes over the dead stream's host session),
/// and the host is left with no session of it. Left alone, the dead stream's host session is
/// cancelled only after the host's ENet timeout, the order a real Wolf survives.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_streamer_closes_1011_and_the_same_client_streams_again_at_once() {
    let _serial = SERIAL.lock().await;
    let gw = gateway().await;
    let mut ws = streaming(&gw, "ses_k", "c-k").await;
    let pids = streamer_children();
    assert_eq!(pids.len(), 1, "{pids:?}");
    assert_eq!(gw.host.sessions().len(), 1);
    sigkill(pids[0]);
    let seen = server_close_within(&mut ws, Duration::from_secs(15)).await;
    assert_eq!(code(&seen), Some(1011), "{seen:?}");
    finish(ws).await;
    assert!(gw.registry_empty(Duration::from_secs(10)).await);

    let t = Instant::now();
    let mut ws = streaming(&gw, "ses_k", "c-k").await;
    println!(
        "same client streaming again {:?} after the kill's close",
        t.elapsed()
    );
    assert!(
        eventually(Duration::from_secs(5), || gw.host.sessions().len() == 1).await,
        "host sessions: {:?}",
        gw.host.sessions()
    );
    // The new stream took the host session over: no /cancel of the dead one waits to end it.
    assert_eq!(gw.state.host_cleanups.pending(), 0);
    let (seen, _) = client_close(&mut ws).await;
    assert_eq!(code(&seen), Some(1000), "{seen:?}");
    finish(ws).await;
    assert_clean(&gw).await;

    // Killed again and left alone. Like Wolf, the strict host pauses the session when the dead
    // peer's ENet timeout passes, and stays busy; the gateway /cancels it only after that timeout
    // (`timeouts.host_cleanup`), so the host never sees a /cancel before the disconnect.
    let mut ws = streaming(&gw, "ses_k", "c-k").await;
    sigkill(streamer_children()[0]);
    let t = Instant::now();
    let seen = server_close_within(&mut ws, Duration::from_secs(15)).await;
    assert_eq!(code(&seen), Some(1011), "{seen:?}");
    finish(ws).await;
    assert_eq!(gw.state.host_cleanups.pending(), 1, "a /cancel waits");
    assert_eq!(gw.host.sessions().len(), 1, "the host holds the session");
    assert!(
        eventually(Duration::from_secs(30), || gw.host.sessions().is_empty()).await,
        "host session left: {:?}",
        gw.host.sessions()
    );
    assert!(
        t.elapsed() >= gw.state.config.timeouts.host_cleanup - Duration::from_secs(1),
        "cancelled only after the host's ENet timeout ({:?})",
        t.elapsed()
    );
    assert_eq!(gw.host.disconnects_after_cancel(), 0);
    assert_eq!(host_state(&gw).await, "SUNSHINE_SERVER_FREE");
    assert!(
        eventually(Duration::from_secs(2), || gw.state.host_cleanups.pending()
            == 0)
        .await
    );
    println!(
        "host session of the killed streamer gone {:?} after the kill",
        t.elapsed()
    );
    gw.stop().await;
}
