//! Helpers shared by the end-to-end tests: the server (in the test process) with the embedded
//! demo host, a WebSocket client speaking the Helix contract, and `/proc` probes.
//!
//! Needs the streamer binary next to the test's target dir (`cargo build -p streamer`), or
//! `MOONGATE_STREAMER` pointing at one.

// Each test binary uses a different subset.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use demo_host::DemoHost;
use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio::time::timeout;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use web_server::auth::Credentials;
use web_server::autopair::{PinSubmitter, SubmitFuture};
use web_server::server::{serve, ProvidedHost};
use web_server::store::SqliteStore;
use web_server::{embedded, AppState, Config};
use wire::browser::{formats, Message};

mod gateway_config;
mod host_proc;
mod inputs;
mod loopback;
mod padded;
mod resources;
mod sockets;
// Each test binary uses a different subset of these too.
#[allow(unused_imports)]
pub use {
    gateway_config::*, host_proc::*, inputs::*, loopback::*, padded::*, resources::*, sockets::*,
};

/// Prints one line of a suite's figures straight to stdout. libtest captures `println!` of
/// passing tests, but the test command is meant to show what the chaos, fault and hostile-input
/// suites measured on every run, not only when one fails.
#[macro_export]
macro_rules! figure {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout().lock(), $($arg)*);
    }};
}

pub type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

pub const SECRET: &str = "ws-stream-test-secret";

/// The tests count child processes and host sessions: one at a time.
pub static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

pub fn streamer_exe() -> PathBuf {
    if let Some(p) = std::env::var_os("MOONGATE_STREAMER") {
        return PathBuf::from(p);
    }
    // target/<profile>/deps/<test> → target/<profile>/streamer
    let exe = std::env::current_exe().expect("current exe");
    let dir = exe.parent().and_then(|d| d.parent()).expect("target dir");
    let path = dir.join("streamer");
    assert!(
        path.exists(),
        "{} missing: run `cargo build -p streamer` first",
        path.display()
    );
    path
}

pub struct Gateway {
    pub addr: SocketAddr,
    pub state: AppState,
    pub host: Arc<DemoHost>,
    pub shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    pub server: tokio::task::JoinHandle<()>,
    pub _dir: tempfile::TempDir,
}

pub async fn gateway() -> Gateway {
    test_log();
    gateway_counting_pins(None).await
}

/// With `MOONGATE_TEST_LOG` set (an env filter such as `info`), the in-process gateway's and
/// host's logs go to stderr: what a flaky run needs to be understood.
pub fn test_log() {
    if let Ok(filter) = std::env::var("MOONGATE_TEST_LOG") {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
            .with_writer(std::io::stderr)
            .try_init();
    }
}

/// Counts the PINs entered on the host (pairings that ran).
pub struct CountingPins {
    inner: Arc<dyn PinSubmitter>,
    entered: Arc<AtomicUsize>,
}

impl PinSubmitter for CountingPins {
    fn serves(&self, address: &str, http_port: u16) -> bool {
        self.inner.serves(address, http_port)
    }
    fn submit<'a>(&'a self, device_name: &'a str, pin: &'a str) -> SubmitFuture<'a> {
        Box::pin(async move {
            let ok = self.inner.submit(device_name, pin).await;
            if ok {
                self.entered.fetch_add(1, Ordering::SeqCst);
            }
            ok
        })
    }
}

pub async fn gateway_counting_pins(entered: Option<Arc<AtomicUsize>>) -> Gateway {
    gateway_configured(entered, |_| {}).await
}

/// [`gateway_counting_pins`] with the test configuration changed by `change` first.
pub async fn gateway_configured(
    entered: Option<Arc<AtomicUsize>>,
    change: impl FnOnce(&mut Config),
) -> Gateway {
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::load_with_env(None, |_| None).unwrap();
    config.data_dir = dir.path().to_path_buf();
    config.streamer_path = streamer_exe();
    config.bind = "127.0.0.1:0".parse().unwrap();
    // The demo host's ENet peer timeout on loopback is about 5.7 s; the default (32 s) covers
    // ENet's longest, which a loopback peer never reaches.
    config.timeouts.host_cleanup = Duration::from_secs(10);
    change(&mut config);
    let (host, mut provided) = embedded::start_demo_host(&config).await.unwrap();
    if let Some(entered) = entered {
        let inner = provided.pins.take().expect("the demo host enters PINs");
        provided.pins = Some(Arc::new(CountingPins { inner, entered }));
    }
    serve_gateway(config, host, provided, dir).await
}

/// Installs `provided` (the host a gateway streams from) into a fresh gateway state with an
/// in-memory store and serves it on 127.0.0.1:0.
pub async fn serve_gateway(
    config: Config,
    host: Arc<DemoHost>,
    provided: ProvidedHost,
    dir: tempfile::TempDir,
) -> Gateway {
    let state = AppState::new(
        config,
        Credentials::new(SECRET),
        Arc::new(SqliteStore::in_memory().unwrap()),
    );
    embedded::install(&state, &provided).await.unwrap();
    serve_state(state, host, dir).await
}

/// Serves `state` on 127.0.0.1:0 until [`Gateway::stop`]; `host` is the demo host it streams from.
pub async fn serve_state(state: AppState, host: Arc<DemoHost>, dir: tempfile::TempDir) -> Gateway {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn({
        let state = state.clone();
        async move {
            serve(listener, state, async move {
                let _ = rx.await;
            })
            .await
            .unwrap();
        }
    });
    Gateway {
        addr,
        state,
        host,
        shutdown: Some(tx),
        server,
        _dir: dir,
    }
}

/// Serves `config` with a demo host that replays pre-encoded H.264 (2 s encoded when the stream
/// opens, then looped) instead of live-encoding: a 1080p60 window then measures the streaming
/// path, not whether a 2-core machine shared with the host's live encoder keeps up (a CI run saw
/// 253 frames in 5 s with the live encoder competing for the cores).
pub async fn serve_replay_gateway(config: Config, dir: tempfile::TempDir) -> Gateway {
    let host = demo_host::DemoHostConfig {
        source_kind: demo_host::media::SourceKind::Replay,
        ..demo_host::DemoHostConfig::default()
    };
    serve_own_host_gateway(config, dir, host, "replay demo host").await
}

/// Serves `config` with a demo host started from `host` (ephemeral ports, no Wolf API socket,
/// Wolf-strict like every host the tests stream from), installed as the gateway's paired host under
/// `name`.
pub async fn serve_own_host_gateway(
    config: Config,
    dir: tempfile::TempDir,
    host: demo_host::DemoHostConfig,
    name: &str,
) -> Gateway {
    let host = Arc::new(
        DemoHost::start(demo_host::DemoHostConfig {
            ports: demo_host::PortPlan::Ephemeral,
            wolf_api: demo_host::WolfApiConfig {
                socket: demo_host::WolfApiSocket::Off,
                ..Default::default()
            },
            wolf_strict: true,
            ..host
        })
        .await
        .unwrap(),
    );
    let ports = host.ports();
    let provided = ProvidedHost {
        seed: web_server::config::HostSeed {
            name: Some(name.into()),
            address: "127.0.0.1".into(),
            http_port: Some(ports.http),
            https_port: Some(ports.https),
            mac: None,
            wolf_api: None,
        },
        keepalive: Box::new(Arc::clone(&host)),
        pins: Some(Arc::new(web_server::autopair::DemoHostPins::new(
            Arc::clone(&host),
            "127.0.0.1",
            None,
        ))),
    };
    serve_gateway(config, host, provided, dir).await
}

/// Every end-to-end test streams from a Wolf-strict demo host (the embedded one is strict by
/// default, [`serve_own_host_gateway`] makes its host strict), and a teardown that would crash a
/// real Wolf — `/cancel` while the control stream is still connected — fails the test that caused
/// it, whichever assertions it makes itself.
impl Drop for Gateway {
    fn drop(&mut self) {
        if std::thread::panicking() {
            return;
        }
        assert_eq!(
            self.host.disconnects_after_cancel(),
            0,
            "a /cancel reached the host before the ENet disconnect: real Wolf crashes there"
        );
    }
}

impl Gateway {
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        let _ = timeout(Duration::from_secs(10), &mut self.server).await;
    }

    /// Waits (bounded) until the registry is empty.
    pub async fn registry_empty(&self, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if self.state.sessions.list().is_empty() {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        self.state.sessions.list().is_empty()
    }
}

/// Live `streamer` children of this process.
pub fn streamer_children() -> Vec<u32> {
    let mut pids = Vec::new();
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return pids;
    };
    for task in tasks.flatten() {
        let Ok(text) = std::fs::read_to_string(task.path().join("children")) else {
            continue;
        };
        for pid in text
            .split_whitespace()
            .filter_map(|p| p.parse::<u32>().ok())
        {
            let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
            let state = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            let zombie = state.split_whitespace().nth(2) == Some("Z");
            if comm.trim() == "streamer" && !zombie {
                pids.push(pid);
            }
        }
    }
    pids
}

pub fn init_json(session: &str, client: &str, width: u32, height: u32, fps: u32) -> String {
    serde_json::json!({
        "type": "init",
        "host_id": 0,
        "app_id": 1,
        "session_id": session,
        "width": width,
        "height": height,
        "fps": fps,
        "bitrate": 20000,
        "packet_size": 1024,
        "play_audio_local": false,
        "video_supported_formats": formats::H264,
        "client_unique_id": client,
    })
    .to_string()
}

pub fn ping(seq: u32) -> Vec<u8> {
    let mut v = vec![0x40];
    v.extend_from_slice(&seq.to_be_bytes());
    v.extend_from_slice(&12345u64.to_be_bytes());
    v
}

/// Connects as Helix does: a Ping first (skipped or answered), then the text init.
pub async fn connect(gw: &Gateway, session: &str, client: &str, w: u32, h: u32, fps: u32) -> Ws {
    connect_init(gw, session, init_json(session, client, w, h, fps)).await
}

/// [`connect`] with a given init text.
pub async fn connect_init(gw: &Gateway, session: &str, init: String) -> Ws {
    connect_at(
        &gw.addr.to_string(),
        &format!("?session_id={session}"),
        init,
    )
    .await
}

/// Opens `/api/ws/stream{query}` on the gateway at `addr` with the test credential, then sends a
/// Ping and the text `init`, as Helix does.
pub async fn connect_at(addr: &str, query: &str, init: String) -> Ws {
    let url = format!("ws://{addr}/api/ws/stream{query}");
    let mut ws = upgrade(&url, Some(SECRET), Duration::from_secs(5)).await;
    send_ping_and_init(&mut ws, init).await;
    ws
}

/// Opens `/api/ws/stream{query}` on the gateway at `addr` with the test credential and sends the
/// text `init` alone (no Ping first).
pub async fn connect_init_only(addr: &str, query: &str, init: String) -> Ws {
    let url = format!("ws://{addr}/api/ws/stream{query}");
    let mut ws = upgrade(&url, Some(SECRET), Duration::from_secs(5)).await;
    ws.send(WsMessage::Text(init.into())).await.unwrap();
    ws
}

/// Opens a 640×360@30 stream of client `{session}-client` on the gateway at `addr` and reads it
/// to its first keyframe: the socket and the time that took.
pub async fn stream_at(addr: &str, session: &str) -> (Ws, Duration) {
    let t0 = Instant::now();
    let mut ws = connect_at(
        addr,
        &format!("?session_id={session}"),
        init_json(session, &format!("{session}-client"), 640, 360, 30),
    )
    .await;
    handshake(&mut ws).await;
    let first = first_keyframe(&mut ws, t0).await;
    (ws, first)
}

/// Sends a Ping, then the text `init`, as Helix opens a stream.
pub async fn send_ping_and_init(ws: &mut Ws, init: String) {
    ws.send(WsMessage::Binary(ping(0).into())).await.unwrap();
    ws.send(WsMessage::Text(init.into())).await.unwrap();
}

/// One raw HTTP/1.x request on a fresh connection to `addr` (no client-side normalisation of the
/// path; read until the server closes): the status and the body.
pub async fn raw_http(addr: &str, request: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(request.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    let _ = timeout(Duration::from_secs(5), s.read_to_end(&mut out)).await;
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

/// A binary built next to the streamer (`cargo build --workspace --bins`): `demo-host`, `moongate`.
/// The `streamer` and `demo-host` that suites with a time bound under load (`chaos.rs`) run:
/// those in `MOONGATE_CHAOS_BIN_DIR` when it is set (the test command builds the release ones and
/// points it at `target/release`), else the debug ones beside the test, with a note. Release is
/// what is deployed: debug streamers spend several times the CPU (FEC, SRTP and log formatting
/// unoptimised), and 20 of them with a debug host saturate a 2-core machine, so a bound met in
/// production would be missed for the test's own sake.
pub fn load_test_exes() -> (PathBuf, PathBuf) {
    match std::env::var_os("MOONGATE_CHAOS_BIN_DIR") {
        Some(dir) => {
            let dir = PathBuf::from(dir);
            let (streamer, host) = (dir.join("streamer"), dir.join("demo-host"));
            for p in [&streamer, &host] {
                assert!(
                    p.exists(),
                    "{} missing: `cargo build --release --bins -p streamer -p demo-host`",
                    p.display()
                );
            }
            (streamer, host)
        }
        None => {
            eprintln!(
                "note: debug streamer and demo-host (MOONGATE_CHAOS_BIN_DIR=target/release runs \
                 the release ones, as the test command does)"
            );
            (streamer_exe(), sibling_exe("demo-host"))
        }
    }
}

pub fn sibling_exe(name: &str) -> PathBuf {
    let path = streamer_exe().with_file_name(name);
    assert!(
        path.exists(),
        "{} missing: run `cargo build --workspace --bins` first",
        path.display()
    );
    path
}

/// A `demo-host` process (`--strict`: Wolf's timestamps, padding and teardown checks; its Wolf API on `dir/wolf.sock`) on ephemeral loopback
/// ports, stdin piped for its commands: the child, its HTTP and HTTPS ports, and its stdout lines
/// after the start (drained, so the host never blocks on a full pipe).
pub async fn spawn_demo_host(
    dir: &std::path::Path,
) -> (
    tokio::process::Child,
    u16,
    u16,
    tokio::sync::mpsc::UnboundedReceiver<String>,
) {
    let (child, mut lines) = spawn_strict_demo_host(dir, &["--ephemeral-ports"]);
    let (mut http, mut https) = (None, None);
    let port = |line: &str| line.split_whitespace().nth(1).and_then(|p| p.parse().ok());
    timeout(Duration::from_secs(20), async {
        while let Some(line) = lines.recv().await {
            let line = line.trim_start();
            if line.starts_with("HTTP ") {
                http = port(line);
            } else if line.starts_with("HTTPS ") {
                https = port(line);
            } else if line.starts_with("apps:") {
                break;
            }
        }
    })
    .await
    .expect("demo-host did not print its ports");
    (
        child,
        http.expect("HTTP port printed"),
        https.expect("HTTPS port printed"),
        lines,
    )
}

/// Reads until StreamInit + ConnectionComplete; returns the StreamInit's size.
pub async fn handshake(ws: &mut Ws) -> (u16, u16) {
    let mut dims = None;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match next_before(ws, deadline, "handshake timed out").await {
            WsMessage::Binary(b) => match Message::decode(&b).unwrap() {
                Message::StreamInit(si) => dims = Some((si.width, si.height)),
                Message::VideoFrame(_) => panic!("video before ConnectionComplete"),
                _ => {}
            },
            WsMessage::Text(t) => {
                assert!(!t.contains("\"error\""), "server error: {t}");
                if t.contains("ConnectionComplete") {
                    return dims.expect("StreamInit before ConnectionComplete");
                }
            }
            WsMessage::Close(c) => panic!("closed during handshake: {c:?}"),
            _ => {}
        }
    }
}

/// The close a superseded socket gets: 4000 "superseded", with an error message saying so.
pub fn assert_superseded(close: Option<(u16, String)>, error: Option<String>) {
    assert_eq!(close, Some((4000, "superseded".to_string())));
    assert!(error.is_some_and(|e| e.contains("superseded")));
}

/// Closes `ws` normally and waits (10 s at most) for the gateway's registry to be empty.
pub async fn close_until_registry_empty(gw: &Gateway, ws: &mut Ws) {
    ws.close(None).await.unwrap();
    assert!(gw.registry_empty(Duration::from_secs(10)).await);
}

/// The close frame (code, reason) and any `{"error"}` text seen before it.
pub async fn read_until_close(
    ws: &mut Ws,
    within: Duration,
) -> (Option<(u16, String)>, Option<String>) {
    let deadline = Instant::now() + within;
    let mut error = None;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match timeout(left, ws.next()).await {
            Err(_) => panic!("no close within {within:?}"),
            Ok(None) | Ok(Some(Err(_))) => return (None, error),
            Ok(Some(Ok(WsMessage::Close(c)))) => {
                return (c.map(|c| (u16::from(c.code), c.reason.to_string())), error)
            }
            Ok(Some(Ok(WsMessage::Text(t)))) if t.contains("\"error\"") => {
                error = Some(t.to_string())
            }
            Ok(Some(Ok(_))) => {}
        }
    }
}

/// Decodes H.264 access units in order with openh264 (on the blocking pool, so the decoder does
/// not hold a runtime thread); panics on a decode error. (Access units decoded, pictures out.)
pub async fn decode_h264(frames: Vec<Vec<u8>>) -> (usize, usize) {
    let (ok, pictures) = tokio::task::spawn_blocking(move || {
        let mut dec = openh264::decoder::Decoder::new().unwrap();
        let (mut ok, mut pictures) = (0usize, 0usize);
        for au in &frames {
            match dec.decode(au) {
                Ok(Some(_)) => {
                    ok += 1;
                    pictures += 1;
                }
                Ok(None) => ok += 1,
                Err(e) => panic!("decode error: {e}"),
            }
        }
        (ok, pictures)
    })
    .await
    .unwrap();
    println!("decoded {ok} access units ({pictures} pictures)");
    (ok, pictures)
}

/// The next message on a streaming socket: panics if none comes within `within` ("stalled"), or
/// the socket ends or fails.
pub async fn next_within(ws: &mut Ws, within: Duration) -> WsMessage {
    timeout(within, ws.next())
        .await
        .expect("stalled")
        .expect("ended")
        .expect("socket error")
}

/// The next message before `end`; `None` once it has passed. A socket that ends first fails the
/// test: the stream was to go on.
pub async fn next_until(ws: &mut Ws, end: Instant) -> Option<WsMessage> {
    match timeout(end.saturating_duration_since(Instant::now()), ws.next()).await {
        Err(_) => None,
        Ok(Some(Ok(msg))) => Some(msg),
        Ok(other) => panic!("the stream socket ended: {other:?}"),
    }
}

/// A config whose gateway binds 127.0.0.1 and whose WebRTC peers use loopback UDP only, with a
/// fresh data directory.
pub fn loopback_config() -> (Config, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::load_with_env(None, |_| None).unwrap();
    config.data_dir = dir.path().to_path_buf();
    config.streamer_path = streamer_exe();
    config.bind = "127.0.0.1:0".parse().unwrap();
    config.webrtc.bind_address = "127.0.0.1".parse().unwrap();
    config.webrtc.network_types = vec![web_server::config::NetworkType::Udp4];
    (config, dir)
}

/// Reads until the first keyframe; returns the time since `from`.
pub async fn first_keyframe(ws: &mut Ws, from: Instant) -> Duration {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        assert!(Instant::now() < deadline, "no keyframe");
        let msg = next_within(ws, Duration::from_secs(10)).await;
        if let WsMessage::Binary(b) = msg {
            if let Ok(Message::VideoFrame(f)) = Message::decode(&b) {
                assert!(f.keyframe, "first frame is a keyframe");
                return from.elapsed();
            }
        }
    }
}

pub fn fd_count() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .map(|d| d.count())
        .unwrap_or(0)
}

pub fn thread_count() -> usize {
    std::fs::read_dir("/proc/self/task")
        .map(|d| d.count())
        .unwrap_or(0)
}

// ---- Admin API helpers (tests/admin.rs, tests/metrics.rs) ----

/// The admin credential of [`admin_gateway`].
pub const ADMIN_SECRET: &str = "admin-test-secret";

/// A gateway (embedded demo host) whose admin credential is [`ADMIN_SECRET`].
pub async fn admin_gateway() -> Gateway {
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::load_with_env(None, |_| None).unwrap();
    config.data_dir = dir.path().to_path_buf();
    config.streamer_path = streamer_exe();
    config.bind = "127.0.0.1:0".parse().unwrap();
    config.admin_credentials = Some(ADMIN_SECRET.into());
    let (host, provided) = embedded::start_demo_host(&config).await.unwrap();
    serve_gateway(config, host, provided, dir).await
}

/// An HTTP answer.
#[derive(Debug)]
pub struct HttpResp {
    pub status: u16,
    pub content_type: Option<String>,
    pub body: String,
}

impl HttpResp {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
}

/// One request on a fresh connection (30 s bound); the response with its body unread.
pub async fn http_send(
    addr: SocketAddr,
    method: &str,
    path: &str,
    bearer: Option<&str>,
    body: Option<serde_json::Value>,
) -> hyper::Response<hyper::body::Incoming> {
    use http_body_util::Full;
    use hyper_util::rt::TokioIo;
    let stream = TcpStream::connect(addr).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(conn);
    let mut req = hyper::Request::builder()
        .method(method)
        .uri(path)
        .header("host", addr.to_string());
    if let Some(b) = bearer {
        req = req.header("authorization", format!("Bearer {b}"));
    }
    let body = match body {
        Some(v) => {
            req = req.header("content-type", "application/json");
            Full::new(bytes::Bytes::from(v.to_string()))
        }
        None => Full::new(bytes::Bytes::new()),
    };
    timeout(
        Duration::from_secs(30),
        sender.send_request(req.body(body).unwrap()),
    )
    .await
    .expect("request timed out")
    .unwrap()
}

/// One request on a fresh connection; the whole body read (bounded).
pub async fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    bearer: Option<&str>,
    body: Option<serde_json::Value>,
) -> HttpResp {
    use http_body_util::BodyExt;
    let resp = http_send(addr, method, path, bearer, body).await;
    let status = resp.status().as_u16();
    let content_type = resp
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string());
    let body = timeout(Duration::from_secs(30), resp.into_body().collect())
        .await
        .expect("body timed out")
        .unwrap()
        .to_bytes();
    HttpResp {
        status,
        content_type,
        body: String::from_utf8_lossy(&body).into_owned(),
    }
}

/// `GET path` with the admin credential, as JSON (asserts 200).
pub async fn admin_get(gw: &Gateway, path: &str) -> serde_json::Value {
    let r = http(gw.addr, "GET", path, Some(ADMIN_SECRET), None).await;
    assert_eq!(r.status, 200, "GET {path}: {}", r.body);
    r.json()
}

/// Opens an SSE stream (admin credential); returns the status and the body to read from.
pub async fn admin_sse(gw: &Gateway, path: &str) -> (u16, hyper::body::Incoming) {
    let resp = http_send(gw.addr, "GET", path, Some(ADMIN_SECRET), None).await;
    (resp.status().as_u16(), resp.into_body())
}

/// Reads SSE text until `pred` holds for the text read so far (bounded).
pub async fn sse_read_until(
    body: &mut hyper::body::Incoming,
    within: Duration,
    pred: impl Fn(&str) -> bool,
) -> String {
    use http_body_util::BodyExt;
    let deadline = Instant::now() + within;
    let mut text = String::new();
    while !pred(&text) {
        let left = deadline.saturating_duration_since(Instant::now());
        let frame = timeout(left, body.frame())
            .await
            .unwrap_or_else(|_| panic!("SSE: condition not met within {within:?}; got:\n{text}"))
            .expect("SSE stream ended")
            .unwrap();
        if let Ok(data) = frame.into_data() {
            text.push_str(&String::from_utf8_lossy(&data));
        }
    }
    text
}

/// A session key's text form as one URL path segment.
pub fn key_path_segment(key: &str) -> String {
    key.replace('%', "%25")
}

/// Polls `f` every 10 ms until it returns `Some` or `within` passes.
pub async fn poll_until<T, F, Fut>(within: Duration, mut f: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + within;
    loop {
        if let Some(v) = f().await {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Child processes of this process (any state, zombies included: an unreaped child is a leak).
pub fn children() -> Vec<u32> {
    let me = std::process::id();
    let mut out = Vec::new();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return out;
    };
    for e in dir.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // `pid (comm) state ppid …`: comm may hold spaces, so split after the last ')'.
        let ppid = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1))
            .and_then(|p| p.parse::<u32>().ok());
        if ppid == Some(me) {
            out.push(pid);
        }
    }
    out
}

/// Polls `cond` every 10 ms until true or `within` passes; returns whether it held.
pub async fn eventually(within: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + within;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// After stream `n` ended: the host has no session left, its `/serverinfo` says free, and the
/// Wolf-strict host saw no `/cancel` before an ENet disconnect.
pub async fn assert_host_free_after(gw: &Gateway, n: usize) {
    assert!(
        eventually(Duration::from_secs(5), || gw.host.sessions().is_empty()).await,
        "stream {n}: host sessions left: {:?}",
        gw.host.sessions()
    );
    assert_eq!(
        host_state(gw).await,
        "SUNSHINE_SERVER_FREE",
        "stream {n}: the host is free"
    );
    assert_eq!(
        gw.host.disconnects_after_cancel(),
        0,
        "stream {n}: /cancel reached the host before the ENet disconnect"
    );
}

/// The host's `/serverinfo` state, as any Moonlight client reads it (plain HTTP).
pub async fn host_state(gw: &Gateway) -> String {
    let port = gw.host.ports().http;
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let r = http(
        addr,
        "GET",
        "/serverinfo?uniqueid=0123456789ABCDEF&uuid=00000000-0000-0000-0000-000000000000",
        None,
        None,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let start = r.body.find("<state>").map(|i| i + 7).unwrap_or(0);
    let end = r.body[start..].find("</state>").map(|i| start + i);
    end.map(|e| r.body[start..e].to_string())
        .unwrap_or_else(|| panic!("no <state> in {}", r.body))
}

// ---- Host faults (tests/faults.rs, tests/host_loss.rs): a demo-host process on fixed ports ----

/// A `demo-host` process (`--strict`, Wolf API on `dir/wolf.sock`, state in `dir/host-data`) on
/// fixed ports (the standard ones plus an offset), so that it can be SIGKILLed and started again on
/// the same ports and state, as a host machine that reboots; or SIGSTOPped and SIGCONTed, as a
/// host that hangs. Driven through its stdin (`stats`).
pub struct FixedHost {
    pub child: tokio::process::Child,
    console: HostConsole,
    pub dir: PathBuf,
    pub offset: u16,
    pub http: u16,
    pub https: u16,
    pub socket: PathBuf,
}

/// Whether TCP `port` and UDP `udp` are free on loopback now.
fn ports_free(tcp: &[u16], udp: u16) -> bool {
    tcp.iter()
        .all(|p| std::net::TcpListener::bind(("127.0.0.1", *p)).is_ok())
        && std::net::UdpSocket::bind(("127.0.0.1", udp)).is_ok()
}

impl FixedHost {
    /// Starts a host on an offset whose ports are all free. The offsets used put every port above
    /// Linux's ephemeral range (32768-60999), so no outgoing connection takes one between a kill
    /// and the restart.
    pub async fn start(dir: &std::path::Path) -> FixedHost {
        let seed = std::process::id() as u64
            ^ (std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.subsec_nanos() as u64)
                .unwrap_or(0));
        for i in 0..200u64 {
            let offset = 13_100 + ((seed + i * 37) % 4_400) as u16;
            let p = |base: u16| base + offset;
            if ports_free(&[p(47989), p(47984), p(48010)], p(47999)) {
                return Self::spawn(dir, offset).await;
            }
        }
        panic!("no free port offset for the demo host");
    }

    async fn spawn(dir: &std::path::Path, offset: u16) -> FixedHost {
        // No idle timeout to speak of: a session the host keeps must be ended by the gateway, as
        // with a real Wolf, not by the demo host's idle monitor.
        let offset_arg = offset.to_string();
        let args = ["--idle-timeout-secs", "3600", "--port-offset", &offset_arg];
        let (mut child, mut lines) = spawn_strict_demo_host(dir, &args);
        timeout(Duration::from_secs(20), async {
            while let Some(line) = lines.recv().await {
                if line.trim_start().starts_with("apps:") {
                    return;
                }
            }
            panic!("demo-host exited before listening");
        })
        .await
        .expect("demo-host did not start");
        let console = HostConsole::new(&mut child, lines, dir);
        FixedHost {
            child,
            console,
            dir: dir.to_path_buf(),
            offset,
            http: 47989 + offset,
            https: 47984 + offset,
            socket: dir.join("wolf.sock"),
        }
    }

    pub fn pid(&self) -> i32 {
        self.child.id().expect("host running") as i32
    }

    /// Sends `sig` (SIGSTOP, SIGCONT, …) to the host process.
    pub fn signal(&self, sig: i32) {
        // SAFETY: kill(2) on our own child's pid, no memory involved.
        let rc = unsafe { libc::kill(self.pid(), sig) };
        assert_eq!(rc, 0, "kill({}, {sig})", self.pid());
    }

    /// SIGKILL, reaped (bounded).
    pub async fn kill(&mut self) {
        self.child.start_kill().unwrap();
        let _ = timeout(Duration::from_secs(5), self.child.wait()).await;
    }

    /// A new host process on the same ports and state directory (after [`FixedHost::kill`]).
    pub async fn restart(&mut self) {
        let dir = self.dir.clone();
        *self = Self::spawn(&dir, self.offset).await;
    }

    /// `stats`: (strict violations, sessions open now). Asserts Wolf-strict mode is on.
    pub async fn stats(&mut self) -> (u64, usize) {
        let stats = self.console.stats().await;
        (stats.get("violations"), stats.get("sessions") as usize)
    }

    /// Polls `stats` until the host holds `n` sessions (bounded); the last count seen otherwise.
    pub async fn wait_sessions(&mut self, n: usize, within: Duration) -> Result<(), usize> {
        let deadline = Instant::now() + within;
        loop {
            let (_, now) = self.stats().await;
            if now == n {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(now);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Clients paired with the host, as its Wolf API lists them (`/api/v1/clients`).
    pub async fn paired_clients(&self) -> usize {
        self.console.paired_clients().await
    }
}

impl CountingPins {
    /// Counts the PINs `inner` enters successfully into `entered`.
    pub fn new(inner: Arc<dyn PinSubmitter>, entered: Arc<AtomicUsize>) -> CountingPins {
        CountingPins { inner, entered }
    }
}

/// The suites' one-at-a-time lock, a gateway with the embedded host, and a [`FixedHost`] (state
/// in the returned directory) added to it as host index 1, with the PIN counter of
/// [`add_fixed_host`].
pub async fn gateway_with_fixed_host() -> (
    tokio::sync::MutexGuard<'static, ()>,
    Gateway,
    tempfile::TempDir,
    FixedHost,
    Arc<AtomicUsize>,
) {
    let serial = SERIAL.lock().await;
    let gw = gateway().await;
    let dir = tempfile::tempdir().unwrap();
    // Fixed ports and a state directory, so the host can come back as the same host.
    let host = FixedHost::start(dir.path()).await;
    let pins = add_fixed_host(&gw, &host).await;
    (serial, gw, dir, host, pins)
}

/// Adds `host` to `gw`'s store (it is host index 1: the embedded host is index 0), paired through
/// its Wolf API socket; returns the counter of PINs entered for it (pairings that ran).
pub async fn add_fixed_host(gw: &Gateway, host: &FixedHost) -> Arc<AtomicUsize> {
    gw.state
        .store
        .add_host(web_server::store::NewHost {
            name: "external demo host".into(),
            address: "127.0.0.1".into(),
            http_port: host.http,
            https_port: Some(host.https),
            mac: None,
            wolf_api: None,
        })
        .await
        .unwrap();
    let entered = Arc::new(AtomicUsize::new(0));
    let pins = web_server::autopair::WolfApiPins::new(
        "127.0.0.1",
        host.http,
        host.socket.to_str().unwrap(),
    )
    .unwrap();
    gw.state.add_pin_submitter(Arc::new(CountingPins::new(
        Arc::new(pins),
        Arc::clone(&entered),
    )));
    entered
}

/// Opens a stream of `client` from host index `host_id` on the in-process gateway.
pub async fn connect_host(gw: &Gateway, host_id: u32, session: &str, client: &str) -> Ws {
    let mut init: serde_json::Value =
        serde_json::from_str(&init_json(session, client, 640, 360, 30)).unwrap();
    init["host_id"] = host_id.into();
    connect_init(gw, session, init.to_string()).await
}
