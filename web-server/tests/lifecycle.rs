//! The incidents of `lifecycle-lessons.md`, each as a test: the server (in this process) with a
//! demo host, real `streamer` children and a Helix-contract WebSocket client on 127.0.0.1.
//!
//! Needs the streamer binary (`cargo build -p streamer`). Every test prints its figures.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use futures_util::StreamExt;
use tokio::time::timeout;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use web_server::Config;
use wire::browser::Message;

/// Within this a (re)connect must show its first keyframe (a reconnect takes ~60 ms here).
const FIRST_FRAME_BUDGET: Duration = Duration::from_secs(5);

/// The 200-cycle batch's per-cycle limit to the first keyframe (it runs long on a shared
/// machine: a stall, not a slow moment, is the failure it looks for).
const CYCLE_FIRST_FRAME_LIMIT: Duration = Duration::from_secs(10);

/// Every heap allocation of this test process is counted, so that lesson 6 is checked on the bytes
/// the gateway's code still holds rather than on RSS alone: RSS also moves with what the allocator
/// keeps for reuse and with the other tests' threads, which made an RSS-only bound flaky on CI.
#[global_allocator]
static HEAP: &stats_alloc::StatsAlloc<std::alloc::System> = &stats_alloc::INSTRUMENTED_SYSTEM;

/// Bytes the process holds on the Rust heap now (`StatsAlloc` already books a reallocation's
/// growth or shrink in these two counters).
fn live_heap() -> i64 {
    let s = HEAP.stats();
    s.bytes_allocated as i64 - s.bytes_deallocated as i64
}

/// Resident set size of this process in kB.
fn rss_kb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// Opens a stream with an explicit lobby id (init field, as Helix sends it).
/// Samples the host's live sessions of one client every millisecond in the background: the most
/// seen at once tells whether two of them ever overlapped.
struct OverlapWatch {
    most: Arc<std::sync::atomic::AtomicUsize>,
    watching: Arc<std::sync::atomic::AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl OverlapWatch {
    fn start(gw: &Gateway, client: &'static str) -> OverlapWatch {
        use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
        let most = Arc::new(AtomicUsize::new(0));
        let watching = Arc::new(AtomicBool::new(true));
        let task = tokio::spawn({
            let host = Arc::clone(&gw.host);
            let (most, watching) = (Arc::clone(&most), Arc::clone(&watching));
            async move {
                while watching.load(Ordering::Relaxed) {
                    let n = host
                        .sessions()
                        .iter()
                        .filter(|s| s.client_unique_id == client)
                        .count();
                    most.fetch_max(n, Ordering::Relaxed);
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
            }
        });
        OverlapWatch {
            most,
            watching,
            task,
        }
    }

    /// Stops sampling; the most sessions of the client seen at once.
    async fn stop(self) -> usize {
        use std::sync::atomic::Ordering;
        self.watching.store(false, Ordering::Relaxed);
        self.task.await.unwrap();
        self.most.load(Ordering::Relaxed)
    }
}

async fn connect_lobby(
    gw: &Gateway,
    session: &str,
    lobby: &str,
    client: &str,
    w: u32,
    h: u32,
    fps: u32,
) -> Ws {
    let mut init: serde_json::Value =
        serde_json::from_str(&init_json(session, client, w, h, fps)).unwrap();
    init["lobby_id"] = lobby.into();
    connect_with_init(gw, init).await
}

/// Opens `/api/ws/stream` (no query) with the test credential and sends `init` (no Ping first).
async fn connect_with_init(gw: &Gateway, init: serde_json::Value) -> Ws {
    connect_init_only(&gw.addr.to_string(), "", init.to_string()).await
}

/// Handshake then first keyframe; fails on any `{"error"}` (e.g. "AlreadyStreaming").
async fn streams(ws: &mut Ws, opened: Instant) -> Duration {
    handshake(ws).await;
    first_keyframe(ws, opened).await
}

/// The mean YUV of a decoded picture's label band (the demo host's pattern names its producer
/// by that colour), or `None` if `data` gave no picture.
fn band_of(decoder: &mut openh264::decoder::Decoder, data: &[u8]) -> Option<[f64; 3]> {
    let yuv = decoder.decode(data).ok()??;
    Some(demo_host::media::pattern::band_mean(&yuv))
}

/// Handshake, first keyframe (its delay is returned), then decodes until a picture's label band
/// shows `rgb` (returns how many pictures that took) or `within` passes (panics).
async fn streams_picture(
    ws: &mut Ws,
    opened: Instant,
    rgb: [u8; 3],
    within: Duration,
) -> (Duration, u32) {
    handshake(ws).await;
    let want = demo_host::media::pattern::rgb_to_yuv(rgb);
    let mut decoder = openh264::decoder::Decoder::new().unwrap();
    let (mut first, mut pictures, mut last) = (None, 0u32, None);
    let deadline = Instant::now() + within;
    loop {
        assert!(
            Instant::now() < deadline,
            "no picture of colour {rgb:?} (last band {last:?}, {pictures} pictures)"
        );
        let msg = timeout(Duration::from_secs(5), ws.next())
            .await
            .expect("stalled")
            .expect("ended")
            .expect("socket error");
        match msg {
            WsMessage::Binary(b) => {
                let Ok(Message::VideoFrame(f)) = Message::decode(&b) else {
                    continue;
                };
                if first.is_none() {
                    assert!(f.keyframe, "the first frame is a keyframe");
                    first = Some(opened.elapsed());
                }
                if let Some(band) = band_of(&mut decoder, f.data) {
                    pictures += 1;
                    last = Some(band);
                    if (0..3).all(|c| (band[c] - f64::from(want[c])).abs() < 10.0) {
                        return (first.unwrap_or_default(), pictures);
                    }
                }
            }
            WsMessage::Text(t) => assert!(!t.contains("error"), "{t}"),
            WsMessage::Close(c) => panic!("closed: {c:?}"),
            _ => {}
        }
    }
}

/// Lesson 1: 200 open/close cycles, half closed cleanly and half by a vanished client (TCP
/// dropped, no close frame), each streaming to its first keyframe; then fds, threads, children,
/// host sessions and the registry are back at the baseline and RSS growth is bounded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_cycles_clean_and_vanished_return_everything_to_baseline() {
    let _serial = SERIAL.lock().await;
    if std::env::var_os("RUST_LOG").is_some() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_test_writer()
            .try_init();
    }
    let gw = gateway().await;
    let cycle = |n: u32| {
        let gw = &gw;
        async move {
            let t = Instant::now();
            let mut ws = connect(gw, "ses_cyc-hq", "helix-agent-cyc", 320, 240, 30).await;
            let took = streams(&mut ws, t).await;
            if n % 2 == 0 {
                ws.close(None).await.unwrap();
                // (tungstenite keeps the echo of a close it started: only errors are visible.)
                let (_, error) = read_until_close(&mut ws, Duration::from_secs(10)).await;
                assert!(error.is_none(), "cycle {n}: {error:?}");
            }
            // Odd cycles: the client vanishes — the TCP connection is dropped, no close frame.
            drop(ws);
            assert!(
                gw.registry_empty(Duration::from_secs(10)).await,
                "cycle {n}: entry left"
            );
            took
        }
    };
    const N: u32 = 200;
    let mut rss = 0;
    let run = run_cycles(&gw, N, || rss = rss_kb(), cycle).await;
    let CycleRun {
        base,
        elapsed,
        worst,
        total: total_first,
    } = run;
    let Baseline { fds, threads, kids } = base;
    let settled = base.settle(&gw).await;
    let rss_after = rss_kb();
    println!(
        "{N} cycles (half clean close, half vanished) in {} ms; first keyframe avg {} ms, worst {} ms; \
         fds {fds} → {}, threads {threads} → {}, children {kids} → {}, RSS {} kB → {} kB ({:+} kB), \
         host sessions {}, registry {}",
        elapsed.as_millis(),
        (total_first / N).as_millis(),
        worst.as_millis(),
        fd_count(),
        thread_count(),
        children().len(),
        rss,
        rss_after,
        rss_after as i64 - rss as i64,
        gw.host.sessions().len(),
        gw.state.sessions.list().len()
    );
    settled.assert(&gw);
    assert!(
        rss_after < rss + 50 * 1024,
        "RSS grew by {} kB",
        rss_after - rss
    );
    // Typically < 200 ms; once a ~6 s outlier was seen while other builds saturated both cores
    // (slow cycles are printed; set RUST_LOG=info for the server's and streamers' logs).
    assert!(
        worst <= CYCLE_FIRST_FRAME_LIMIT,
        "a cycle took {worst:?} to its first keyframe"
    );
    gw.stop().await;
}

/// Lesson 3: a lobby restarted 4 times under the same session id, the browser reconnecting each
/// time with the same client id: every reconnect streams within the budget, never
/// "AlreadyStreaming", and the old lobby's stream is gone (one host session while streaming).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lobby_restarted_four_times_under_one_session_id_reconnects_every_time() {
    let _serial = SERIAL.lock().await;
    let gw = gateway().await;
    let (session, client) = (
        "ses_01k9cz4hxwbj8vjhjz40vc1kns-hq",
        "ef28c5dc-helix-browser",
    );
    let mut previous: Option<(Ws, String)> = None;
    for round in 0..5 {
        let lobby = gw
            .host
            .create_lobby(demo_host::LobbySettings::new(format!("restart {round}")));
        if let Some((mut old, old_lobby)) = previous.take() {
            // The lobby restarts: the old one stops, the browser reconnects at once.
            gw.host.stop_lobby(&old_lobby, None).unwrap();
            old.close(None).await.unwrap();
            drop(old);
        }
        let t = Instant::now();
        let mut ws = connect_lobby(&gw, session, &lobby, client, 640, 360, 30).await;
        let color = gw
            .host
            .lobbies()
            .into_iter()
            .find(|l| l.id == lobby)
            .map(|l| l.color)
            .expect("the round's lobby");
        // The picture turns to this round's lobby's (its label band colour), not black, not the
        // old lobby's.
        let (took, pictures) = streams_picture(&mut ws, t, color, Duration::from_secs(10)).await;
        // The streamer joins the round's lobby; the host holds exactly this one session.
        let joined = eventually(Duration::from_secs(10), || {
            let s = gw.host.sessions();
            s.len() == 1 && s[0].lobby.as_deref() == Some(lobby.as_str())
        })
        .await;
        let sessions = gw.host.sessions();
        let keys: Vec<String> = gw
            .state
            .sessions
            .list()
            .iter()
            .map(|s| s.key.to_string())
            .collect();
        println!(
            "round {round}: lobby {lobby}: first keyframe after {} ms, its picture after {pictures} pictures; host sessions {}; keys {keys:?}",
            took.as_millis(),
            sessions.len()
        );
        assert!(took <= FIRST_FRAME_BUDGET, "round {round}: {took:?}");
        assert!(joined, "round {round}: host sessions {sessions:?}");
        assert_eq!(keys.len(), 1, "round {round}: stale entries {keys:?}");
        assert!(keys[0].contains(&lobby.replace('-', "%2D")), "{keys:?}");
        // Still streaming, no error text (e.g. "AlreadyStreaming") on the socket.
        for _ in 0..10 {
            match timeout(Duration::from_secs(5), ws.next()).await {
                Ok(Some(Ok(WsMessage::Text(t)))) => {
                    assert!(!t.contains("error"), "round {round}: {t}")
                }
                Ok(Some(Ok(WsMessage::Close(c)))) => panic!("round {round}: closed {c:?}"),
                Ok(Some(Ok(_))) => {}
                other => panic!("round {round}: {other:?}"),
            }
        }
        previous = Some((ws, lobby));
    }
    let (mut ws, lobby) = previous.take().unwrap();
    ws.close(None).await.unwrap();
    let (_, error) = read_until_close(&mut ws, Duration::from_secs(10)).await;
    assert!(error.is_none(), "{error:?}");
    gw.host.stop_lobby(&lobby, None).unwrap();
    assert!(gw.registry_empty(Duration::from_secs(10)).await);
    assert!(eventually(Duration::from_secs(5), || gw.host.sessions().is_empty()).await);
    gw.stop().await;
}

/// Lesson 4: the same identity reconnects 100 times right after each stop against a host whose
/// teardown takes 150 ms (it answers the client's launches with 503 meanwhile): every
/// connection streams, and the host never holds two sessions for that client.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn same_identity_reconnects_100_times_against_a_slow_teardown() {
    let _serial = SERIAL.lock().await;
    let gw = gateway().await;
    gw.host
        .faults()
        .set_teardown_delay(Duration::from_millis(150));
    // Watches the host for overlap: two live sessions of one client at any instant.
    let watch = OverlapWatch::start(&gw, "helix-agent-same");
    const N: u32 = 100;
    let t = Instant::now();
    let mut worst = Duration::ZERO;
    // Reconnects made while the previous stream was still ending — in the gateway (the browser's
    // Close is answered before the teardown runs, so its registry entry is still there and the
    // new stream must await it) or on the host (which answers a launch with 503 meanwhile): the
    // window this test is about.
    let mut into_teardown = 0u32;
    for n in 0..N {
        let opened = Instant::now();
        into_teardown +=
            u32::from(gw.host.tearing_down() > 0 || !gw.state.sessions.list().is_empty());
        let mut ws = connect(&gw, "ses_same-hq", "helix-agent-same", 320, 240, 30).await;
        let took = streams(&mut ws, opened).await;
        worst = worst.max(took);
        assert!(took <= FIRST_FRAME_BUDGET, "reconnect {n}: {took:?}");
        // Stop, and reconnect the moment the server has closed (the host is still tearing down).
        ws.close(None).await.unwrap();
        let (_, error) = read_until_close(&mut ws, Duration::from_secs(10)).await;
        assert!(error.is_none(), "reconnect {n}: {error:?}");
    }
    let most = watch.stop().await;
    println!(
        "{N} reconnects of one identity with a 150 ms host teardown in {} ms; worst first keyframe {} ms; \
         {into_teardown} reconnected while the previous stream was still ending; \
         most host sessions of that client at once: {most}",
        t.elapsed().as_millis(),
        worst.as_millis()
    );
    assert!(
        into_teardown >= N / 2,
        "the slowed teardown was not hit ({into_teardown} of {N})"
    );
    assert_eq!(most, 1, "the host saw overlapping sessions of one client");
    assert!(gw.registry_empty(Duration::from_secs(10)).await);
    assert!(eventually(Duration::from_secs(5), || gw.host.sessions().is_empty()).await);
    gw.stop().await;
}

/// What became of one of several connections with the same key.
enum Fate {
    /// It streams (a keyframe arrived).
    Streaming(Box<Ws>),
    /// It was closed: (close frame, `{"error"}` text).
    Closed(Option<(u16, String)>, Option<String>),
}

async fn fate(mut ws: Ws) -> Fate {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut error = None;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match timeout(left, ws.next()).await {
            Err(_) => panic!("neither streaming nor closed within 30 s"),
            Ok(None) | Ok(Some(Err(_))) => return Fate::Closed(None, error),
            Ok(Some(Ok(WsMessage::Close(c)))) => {
                return Fate::Closed(c.map(|c| (u16::from(c.code), c.reason.to_string())), error)
            }
            Ok(Some(Ok(WsMessage::Text(t)))) if t.contains("\"error\"") => {
                error = Some(t.to_string())
            }
            Ok(Some(Ok(WsMessage::Binary(b)))) => {
                if let Ok(Message::VideoFrame(f)) = Message::decode(&b) {
                    assert!(f.keyframe, "the first frame is a keyframe");
                    return Fate::Streaming(Box::new(ws));
                }
            }
            Ok(Some(Ok(_))) => {}
        }
    }
}

/// Lesson 3 (supersede): 10 rapid connections with one key; every superseded one is closed with
/// 4000 "superseded" (after `{"error":"superseded"}`), and exactly one stream is live at the end.
/// (Which one survives is the one the server registered last; the client cannot order them.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_rapid_supersedes_leave_exactly_one_live_stream() {
    let _serial = SERIAL.lock().await;
    let gw = gateway().await;
    let t = Instant::now();
    let mut sockets = Vec::new();
    for _ in 0..10 {
        sockets.push(connect(&gw, "ses_sup-hq", "helix-agent-sup", 320, 240, 30).await);
    }
    let fates = futures_util::future::join_all(sockets.into_iter().map(fate)).await;
    let took = t.elapsed();
    let mut live = Vec::new();
    let mut superseded = 0;
    for f in fates {
        match f {
            Fate::Streaming(ws) => live.push(ws),
            Fate::Closed(close, error) => {
                assert_superseded(close, error);
                superseded += 1;
            }
        }
    }
    println!(
        "10 rapid connects of one key: {superseded} superseded with 4000, {} streaming after {} ms",
        live.len(),
        took.as_millis()
    );
    assert_eq!(live.len(), 1, "exactly one live stream");
    assert_eq!(gw.state.sessions.list().len(), 1);
    assert!(eventually(Duration::from_secs(5), || streamer_children().len() == 1).await);
    assert!(eventually(Duration::from_secs(5), || gw.host.sessions().len() == 1).await);
    let mut last = *live.pop().unwrap();
    close_until_registry_empty(&gw, &mut last).await;
    assert!(eventually(Duration::from_secs(5), || gw.host.sessions().is_empty()).await);
    gw.stop().await;
}

/// A gateway whose embedded-style demo host pads its video to the bitrate.
async fn gateway_padded() -> Gateway {
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::load_with_env(None, |_| None).unwrap();
    config.data_dir = dir.path().to_path_buf();
    config.streamer_path = streamer_exe();
    padded_host_gateway(config, dir, "padded demo host").await
}

/// One 1080p30 session at 40 Mbit/s until `target` bytes arrived; closed, and everything of it
/// gone. Returns (bytes, video frames, seconds, peak RSS kB).
async fn heavy_session(gw: &Gateway, target: usize) -> (usize, u32, f64, u64) {
    let mut init: serde_json::Value = serde_json::from_str(&init_json(
        "ses_heavy-hq",
        "helix-agent-heavy",
        1920,
        1080,
        30,
    ))
    .unwrap();
    init["bitrate"] = 40_000.into();
    let mut ws = connect_with_init(gw, init).await;
    let t = Instant::now();
    assert_eq!(handshake(&mut ws).await, (1920, 1080));
    let (mut bytes, mut frames, mut peak) = (0usize, 0u32, 0u64);
    while bytes < target {
        assert!(t.elapsed() < Duration::from_secs(60), "only {bytes} bytes");
        let msg = next_within(&mut ws, Duration::from_secs(10)).await;
        if let WsMessage::Binary(b) = msg {
            if let Ok(Message::VideoFrame(_)) = Message::decode(&b) {
                frames += 1;
                if frames % 10 == 0 {
                    peak = peak.max(rss_kb());
                }
            }
            bytes += b.len();
        }
    }
    let secs = t.elapsed().as_secs_f64();
    ws.close(None).await.unwrap();
    let _ = read_until_close(&mut ws, Duration::from_secs(10)).await;
    drop(ws);
    assert!(gw.registry_empty(Duration::from_secs(10)).await);
    assert!(
        eventually(Duration::from_secs(5), || gw.host.sessions().is_empty()
            && gw.host.tearing_down() == 0)
        .await
    );
    assert!(streamer_children().is_empty());
    (bytes, frames, secs, peak)
}

/// Lesson 6: ≥ 10 MB through one session (1080p, padded to 40 Mbit/s), closed: the bytes the
/// gateway holds on the heap come back to within 2 MB of where they were, and a second such
/// session leaves < 1 MB more. The incident leaked 12.7 MB per closed session, so a per-session
/// leak of the buffers that carried 10 MB shows in either figure. RSS is printed beside it (it also
/// counts what the allocator keeps for reuse, so it is a figure here, not the bound).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heavy_output_10_mb_then_memory_returns() {
    let _serial = SERIAL.lock().await;
    let gw = gateway_padded().await;
    // Warm-up stream: pairing and lazily allocated state are not counted as growth.
    let mut ws = connect(&gw, "ses_heavy-hq", "helix-agent-heavy", 640, 360, 30).await;
    streams(&mut ws, Instant::now()).await;
    close_until_registry_empty(&gw, &mut ws).await;
    assert!(eventually(Duration::from_secs(5), || gw.host.sessions().is_empty()).await);
    let (rss_before, heap_before) = (rss_kb(), live_heap());

    const TARGET: usize = 10 * 1024 * 1024;
    const BOUND: i64 = 2 * 1024 * 1024;
    const PER_SESSION: i64 = 1024 * 1024;
    let (bytes, frames, secs, peak) = heavy_session(&gw, TARGET).await;
    let back = eventually(Duration::from_secs(5), || live_heap() < heap_before + BOUND).await;
    let (rss_one, heap_one) = (rss_kb(), live_heap());
    let (bytes2, _, _, peak2) = heavy_session(&gw, TARGET).await;
    eventually(Duration::from_secs(5), || {
        live_heap() < heap_one + PER_SESSION
    })
    .await;
    let (rss_two, heap_two) = (rss_kb(), live_heap());
    println!(
        "heavy output: {:.1} MB in {frames} video frames over {secs:.1} s ({:.1} Mbit/s), then {:.1} MB more; \
         live heap {:.1} MB → {:+} kB after the first session (bound {} kB) → {:+} kB after the second (bound {} kB); \
         RSS {rss_before} kB → peak {peak} kB → {rss_one} kB → peak {peak2} kB → {rss_two} kB",
        bytes as f64 / 1e6,
        bytes as f64 * 8.0 / 1e6 / secs,
        bytes2 as f64 / 1e6,
        heap_before as f64 / 1e6,
        (heap_one - heap_before) / 1024,
        BOUND / 1024,
        (heap_two - heap_one) / 1024,
        PER_SESSION / 1024,
    );
    assert!(bytes >= TARGET && bytes2 >= TARGET);
    assert!(back, "live heap {heap_before} → {heap_one} bytes");
    assert!(
        heap_two < heap_one + PER_SESSION,
        "the second session kept {} bytes",
        heap_two - heap_one
    );
    gw.stop().await;
}

/// Lesson 4 across lobbies: the browser opens the next lobby's stream before closing the old
/// one (a different key, the same client id and so the same host identity). The old stream must
/// end before the new one launches on that identity; the new one streams, the old socket gets a
/// real close, and the host never holds two sessions of that client.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn next_lobby_opened_before_the_old_socket_closes_replaces_the_old_stream() {
    let _serial = SERIAL.lock().await;
    let gw = gateway().await;
    let client = "helix-agent-overlap";
    let a = gw.host.create_lobby(demo_host::LobbySettings::new("a"));
    let b = gw.host.create_lobby(demo_host::LobbySettings::new("b"));
    let mut old = connect_lobby(&gw, "ses_ov-hq", &a, client, 320, 240, 30).await;
    streams(&mut old, Instant::now()).await;
    let watch = OverlapWatch::start(&gw, "helix-agent-overlap");
    let t = Instant::now();
    let mut new = connect_lobby(&gw, "ses_ov-hq", &b, client, 320, 240, 30).await;
    let (took, (close, error)) = tokio::join!(
        streams(&mut new, t),
        read_until_close(&mut old, Duration::from_secs(15))
    );
    let most = watch.stop().await;
    println!(
        "next lobby before the old close: new stream's first keyframe after {} ms; old socket closed {close:?} ({error:?}); \
         most host sessions of that client at once: {most}",
        took.as_millis()
    );
    assert_superseded(close, error);
    assert_eq!(most, 1, "two host sessions of one client at once");
    assert_eq!(gw.state.sessions.list().len(), 1);
    assert!(eventually(Duration::from_secs(5), || gw.host.sessions().len() == 1).await);
    close_until_registry_empty(&gw, &mut new).await;
    gw.stop().await;
}

/// The launch retry behind lesson 4, end to end: while the host answers every launch with 503,
/// the connection waits (no error reaches the browser) and streams once the host accepts; a host
/// that keeps refusing past the streamer's retry budget (5 s) gives a real failure, 1011 with
/// "AlreadyStreaming", never a hang.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn launches_refused_with_503_are_retried_within_a_bounded_budget() {
    let _serial = SERIAL.lock().await;
    let gw = gateway().await;
    // Pair this client first, so the refusals below hit the launch only.
    let mut ws = connect(&gw, "ses_busy-hq", "helix-agent-busy", 320, 240, 30).await;
    streams(&mut ws, Instant::now()).await;
    close_until_registry_empty(&gw, &mut ws).await;
    assert!(eventually(Duration::from_secs(5), || gw.host.sessions().is_empty()).await);

    gw.host.faults().set_refuse_launches(true);
    let t = Instant::now();
    let mut ws = connect(&gw, "ses_busy-hq", "helix-agent-busy", 320, 240, 30).await;
    let lift = tokio::spawn({
        let host = Arc::clone(&gw.host);
        async move {
            tokio::time::sleep(Duration::from_millis(800)).await;
            host.faults().set_refuse_launches(false);
        }
    });
    let took = streams(&mut ws, t).await;
    lift.await.unwrap();
    println!(
        "refused for 800 ms, then accepted: first keyframe after {} ms",
        took.as_millis()
    );
    assert!(took >= Duration::from_millis(800));
    close_until_registry_empty(&gw, &mut ws).await;

    gw.host.faults().set_refuse_launches(true);
    let t = Instant::now();
    let mut ws = connect(&gw, "ses_busy-hq", "helix-agent-busy", 320, 240, 30).await;
    let (close, error) = read_until_close(&mut ws, Duration::from_secs(15)).await;
    let failed_after = t.elapsed();
    println!(
        "refused throughout: closed {close:?} after {} ms with {error:?}",
        failed_after.as_millis()
    );
    assert_eq!(close.map(|c| c.0), Some(1011));
    assert!(error.is_some_and(|e| e.contains("AlreadyStreaming")));
    assert!(failed_after >= Duration::from_secs(4) && failed_after < Duration::from_secs(10));
    assert!(gw.registry_empty(Duration::from_secs(5)).await);
    assert!(streamer_children().is_empty());
    gw.host.faults().set_refuse_launches(false);
    gw.stop().await;
}
