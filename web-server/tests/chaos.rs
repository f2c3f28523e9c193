//! Seeded chaos (issue 14): the gateway in this process (its threads, descriptors and live heap
//! counted), real `streamer` children, and a `demo-host` process in Wolf-strict mode driven
//! through its Wolf API. 20 session slots run concurrently; each slot works through its share of
//! a random operation list drawn from one printed seed:
//!
//! open (WebSocket mode, WebRTC mode with a str0m peer), close, vanish (TCP dropped without a
//! close), supersede (same key), lobby join (open in a lobby) and leave (the host's API), admin
//! kill, host-side stop, streamer SIGKILL, browser stall (the socket not read), and host fault
//! windows: `refuse` launches, slow teardown (`teardown-ms`), loss bursts (`drop-percent`).
//!
//! Every open must be answered (first keyframe, or a close with a code and reason) within 2 s.
//! At the end: no registry entry, streamer, host session or Wolf-strict teardown-order violation
//! of the gateway's making is left; threads, descriptors, children and live heap are back at the
//! baseline; no log line (gateway at TRACE, the streamers' relayed stderr, the host's output)
//! holds a secret of the run; every secret file in the data directory is 0600.
//!
//! `MOONGATE_CHAOS_SEED` (default: from the clock; printed), `MOONGATE_CHAOS_OPS` (default
//! 10 000, the count: about 4 to 5 minutes on the project's 2-core machine),
//! `MOONGATE_CHAOS_SLOTS` (default 20), `MOONGATE_CHAOS_KEEP` (keep the
//! logs and the data directory, and print where). The op list of each slot is a function of the
//! seed; timing (and so what an op meets, e.g. a refusal window) varies from run to run.
//!
//! Logs captured: the in-process gateway at TRACE (its dependencies' chatty packet-level targets —
//! tokio, mio, h2, the test peers' str0m/ICE/SCTP — at INFO, hyper/rustls/tungstenite at DEBUG);
//! the streamers (relayed by the gateway) at TRACE for `streamer`, `gamestream`, `wire` and DEBUG
//! for their dependencies (str0m, ICE, SCTP and DTLS at INFO: per-packet lines); the demo host at
//! TRACE for `demo_host`, `gamestream` and DEBUG for the rest.
//!
//! The test command runs it with the release `streamer` and `demo-host`
//! (`MOONGATE_CHAOS_BIN_DIR=target/release`, see `common::load_test_exes`): the 2 s bound is about
//! the gateway as deployed, and 20 debug streamers with a debug host saturate a 2-core machine on
//! their own (`tests/README.md`, "Seeded chaos"). Without it, the debug binaries
//! (`cargo build --bins -p streamer -p demo-host`).

mod common;
#[path = "common/rtc_peer.rs"]
mod rtc_peer;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{children, fd_count, http, streamer_children, thread_count};
use futures_util::{SinkExt, StreamExt};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rtc_peer::{PeerEvent, RtcPeer};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};
use tokio::sync::{mpsc, watch};
use tokio::time::timeout;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use web_server::auth::{Credentials, ADMIN_CREDENTIALS_FILE};
use web_server::autopair::{PinSubmitter, SubmitFuture, WolfApiPins};
use web_server::server::{serve, AppState};
use web_server::sessions::SessionKey;
use web_server::store::{HostStore, NewHost, SqliteStore};
use web_server::Config;
use wire::browser::signaling::{
    ClientMessage, RtcIceCandidate, RtcSdpType, RtcSessionDescription, ServerMessage, Signaling,
};
use wire::browser::Message;

#[global_allocator]
static HEAP: &stats_alloc::StatsAlloc<std::alloc::System> = &stats_alloc::INSTRUMENTED_SYSTEM;

fn live_heap() -> i64 {
    let s = HEAP.stats();
    s.bytes_allocated as i64 - s.bytes_deallocated as i64
}

/// What a connection that we closed, and whose close the server answered, is booked as.
const OUR_CLOSE_ANSWERED: &str = "our close answered by the server's close frame";

/// The bound: an open is answered (keyframe or a clear close) within this.
const ANSWER_BOUND: Duration = Duration::from_secs(2);
/// How long an op may take to end a stream it ends (admin kill, host stop, SIGKILL, close).
const END_BOUND: Duration = Duration::from_secs(5);
/// The gateway's default: after this the host's ENet peer timeout (5 to 30 s: about 5.7 s on an
/// idle loopback, but it grows with the round-trip time, and a run with 8 s saw a peer still
/// connected 8 s after its streamer's SIGKILL) has passed, so the delayed `/cancel` of a killed
/// streamer's session finds no connected peer.
const HOST_CLEANUP: Duration = Duration::from_secs(32);
/// Live-heap growth allowed over the whole run (what the gateway keeps per op would be
/// 10 000 × its size).
const HEAP_BOUND: i64 = 2 * 1024 * 1024;
const WIDTH: u32 = 320;
const HEIGHT: u32 = 240;
const FPS: u32 = 30;

// ---------------------------------------------------------------------------------------------
// Operations

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Op {
    OpenWs,
    OpenRtc,
    Close,
    Vanish,
    Supersede,
    LobbyJoin,
    LobbyLeave,
    AdminKill,
    HostStop,
    StreamerKill,
    Stall,
    Refuse,
    TeardownMs,
    LossBurst,
}

impl Op {
    fn name(self) -> &'static str {
        match self {
            Op::OpenWs => "open (WebSocket)",
            Op::OpenRtc => "open (WebRTC)",
            Op::Close => "close",
            Op::Vanish => "vanish",
            Op::Supersede => "supersede (same key)",
            Op::LobbyJoin => "lobby join (open in a lobby)",
            Op::LobbyLeave => "lobby leave (host API)",
            Op::AdminKill => "admin kill",
            Op::HostStop => "host-side stop",
            Op::StreamerKill => "streamer SIGKILL",
            Op::Stall => "browser stall",
            Op::Refuse => "host refuse window",
            Op::TeardownMs => "host teardown-ms window",
            Op::LossBurst => "loss burst (drop-percent)",
        }
    }
}

/// One drawn operation: its kind and the random numbers it uses (mode, lobby, durations).
#[derive(Debug, Clone, Copy)]
struct Draw {
    op: Op,
    rtc: bool,
    lobby: usize,
    ms: u64,
    pct: u32,
}

/// The op list of every slot, from `seed`. The generator follows the state each slot should be
/// in if every op does what it is meant to (idle, live, live in a lobby), so ops that need a live
/// stream are drawn where one should be; the runner opens one first where it is not.
fn draw_ops(seed: u64, ops: usize, slots: usize) -> Vec<Vec<Draw>> {
    let mut rng = StdRng::seed_from_u64(seed);
    #[derive(Clone, Copy, PartialEq)]
    enum S {
        Idle,
        Live,
        InLobby,
    }
    let mut state = vec![S::Idle; slots];
    let mut out = vec![Vec::new(); slots];
    for _ in 0..ops {
        let slot = rng.gen_range(0..slots);
        let table: &[(Op, u32)] = match state[slot] {
            S::Idle => &[
                (Op::OpenWs, 34),
                (Op::OpenRtc, 24),
                (Op::LobbyJoin, 14),
                (Op::Refuse, 3),
                (Op::TeardownMs, 3),
                (Op::LossBurst, 3),
            ],
            S::Live | S::InLobby => &[
                (Op::Close, 12),
                (Op::Vanish, 10),
                (Op::Supersede, 12),
                (Op::LobbyJoin, 5),
                (
                    Op::LobbyLeave,
                    if state[slot] == S::InLobby { 10 } else { 0 },
                ),
                (Op::AdminKill, 8),
                (Op::HostStop, 6),
                (Op::StreamerKill, 4),
                (Op::Stall, 8),
                (Op::Refuse, 2),
                (Op::TeardownMs, 2),
                (Op::LossBurst, 2),
            ],
        };
        let total: u32 = table.iter().map(|(_, w)| w).sum();
        let mut pick = rng.gen_range(0..total);
        let mut op = table[0].0;
        for (o, w) in table {
            if pick < *w {
                op = *o;
                break;
            }
            pick -= w;
        }
        let draw = Draw {
            op,
            rtc: rng.gen_bool(0.4),
            lobby: rng.gen_range(0..2),
            ms: rng.gen_range(0..1000),
            pct: rng.gen_range(5..=30),
        };
        state[slot] = match op {
            Op::OpenWs | Op::OpenRtc => S::Live,
            Op::LobbyJoin => S::InLobby,
            Op::LobbyLeave => S::Live,
            Op::Close | Op::Vanish | Op::AdminKill | Op::HostStop | Op::StreamerKill => S::Idle,
            Op::Supersede | Op::Stall | Op::Refuse | Op::TeardownMs | Op::LossBurst => state[slot],
        };
        out[slot].push(draw);
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Figures

#[derive(Default)]
struct Tally {
    ops: BTreeMap<Op, u64>,
    /// How opens were answered ("keyframe", "close 4000 superseded", …).
    answers: BTreeMap<String, u64>,
    /// How streams ended, per the op that ended them.
    ends: BTreeMap<String, u64>,
    answer_ms: Vec<f64>,
    opens: u64,
    implicit_opens: u64,
    host_stops_sent: u64,
    failures: Vec<String>,
}

impl Tally {
    fn fail(&mut self, what: String) {
        if self.failures.len() < 200 {
            self.failures.push(what);
        }
    }
}

type Shared = Arc<Mutex<Tally>>;

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// "close 1011 AlreadyStreaming" from a close frame: the code and the reason's first word.
fn class(close: &Option<(u16, String)>) -> String {
    match close {
        None => "socket dropped without a close frame".into(),
        Some((code, reason)) => {
            let word: String = reason
                .split([':', ',', '('])
                .next()
                .unwrap_or("")
                .chars()
                .take(40)
                .collect();
            format!("close {code} {}", word.trim())
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The demo host (a process) and its Wolf API

struct Host {
    child: tokio::process::Child,
    http: u16,
    https: u16,
    socket: PathBuf,
    data: PathBuf,
    /// Its stdout (its log goes there too), written to a file as it comes.
    stdout_path: PathBuf,
    reader: tokio::task::JoinHandle<()>,
    stderr_path: PathBuf,
}

/// One request to the Wolf API on its Unix socket: (status, body).
async fn wolf(
    socket: &Path,
    method: &str,
    path: &str,
    body: Option<serde_json::Value>,
) -> (u16, String) {
    let go = async {
        let mut s = tokio::net::UnixStream::connect(socket).await.ok()?;
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        let req = format!(
            "{method} {path} HTTP/1.0\r\nHost: wolf\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        s.write_all(req.as_bytes()).await.ok()?;
        let mut text = String::new();
        s.read_to_string(&mut text).await.ok()?;
        let status = text.split_whitespace().nth(1)?.parse().ok()?;
        let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_string())?;
        Some((status, body))
    };
    timeout(Duration::from_secs(5), go)
        .await
        .ok()
        .flatten()
        .unwrap_or((0, String::new()))
}

async fn wolf_json(socket: &Path, path: &str) -> serde_json::Value {
    let (status, body) = wolf(socket, "GET", path, None).await;
    assert_eq!(status, 200, "GET {path}: {body}");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("GET {path}: {e}: {body}"))
}

impl Host {
    async fn spawn(dir: &Path, exe: &Path) -> Host {
        let data = dir.join("host-data");
        let socket = dir.join("wolf.sock");
        let stderr_path = dir.join("demo-host.stderr");
        let stderr = std::fs::File::create(&stderr_path).unwrap();
        let mut child = tokio::process::Command::new(exe)
            .args([
                "--bind",
                "127.0.0.1",
                "--ephemeral-ports",
                "--strict",
                "--data-dir",
            ])
            .arg(&data)
            .arg("--wolf-socket")
            .arg(&socket)
            .env(
                "RUST_LOG",
                "debug,demo_host=trace,gamestream=trace,h2=info,tokio=info",
            )
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::from(stderr))
            .kill_on_drop(true)
            .spawn()
            .expect("spawn demo-host");
        let mut out = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
        let stdout_path = dir.join("demo-host.stdout");
        let mut file = std::io::BufWriter::new(std::fs::File::create(&stdout_path).unwrap());
        let (tx, mut rx) = mpsc::unbounded_channel::<String>();
        let reader = tokio::spawn({
            async move {
                while let Ok(Some(line)) = out.next_line().await {
                    let _ = writeln!(file, "{line}");
                    if !tx.is_closed() {
                        let _ = tx.send(line);
                    }
                }
                let _ = file.flush();
            }
        });
        let (mut http, mut https) = (None, None);
        let port = |l: &str| l.split_whitespace().nth(1).and_then(|p| p.parse().ok());
        timeout(Duration::from_secs(20), async {
            while let Some(line) = rx.recv().await {
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
        drop(rx);
        Host {
            child,
            http: http.expect("HTTP port"),
            https: https.expect("HTTPS port"),
            socket,
            data,
            stdout_path,
            reader,
            stderr_path,
        }
    }

    async fn faults(&self, patch: serde_json::Value) {
        let (status, body) =
            wolf(&self.socket, "POST", "/api/v1/moongate/faults", Some(patch)).await;
        assert_eq!(status, 200, "faults: {body}");
    }

    /// The host's session id of `client` (its `client_unique_id`), if it runs one.
    async fn session_of(&self, client: &str) -> Option<String> {
        let v = wolf_json(&self.socket, "/api/v1/sessions").await;
        v["sessions"]
            .as_array()?
            .iter()
            .find(|s| s["client_unique_id"] == client)
            .and_then(|s| s["client_id"].as_str().map(String::from))
    }

    async fn session_count(&self) -> usize {
        let v = wolf_json(&self.socket, "/api/v1/sessions").await;
        v["sessions"].as_array().map(Vec::len).unwrap_or(usize::MAX)
    }

    async fn strict_count(&self) -> u64 {
        let v = wolf_json(&self.socket, "/api/v1/moongate/strict").await;
        assert_eq!(
            v["strict"]["wolf_strict"], true,
            "the host runs Wolf-strict: {v}"
        );
        v["strict"]["disconnects_after_cancel"].as_u64().unwrap()
    }

    async fn create_lobby(&self, name: &str) -> String {
        let body = serde_json::json!({
            "profile_id": "chaos",
            "name": name,
            "multi_user": true,
            "stop_when_everyone_leaves": false,
            "video_settings": {"width": WIDTH, "height": HEIGHT, "refresh_rate": FPS,
                "wayland_render_node": "", "runner_render_node": "", "video_producer_buffer_caps": ""},
            "audio_settings": {"channel_count": 2},
            "runner_state_folder": "",
            "runner": {"type": "process", "run_cmd": "sleep infinity"}
        });
        let (status, body) = wolf(&self.socket, "POST", "/api/v1/lobbies/create", Some(body)).await;
        assert_eq!(status, 200, "lobby: {body}");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        v["lobby_id"].as_str().unwrap().to_string()
    }
}

/// Enters pairing PINs through the host's Wolf API (as the gateway does) and keeps every PIN and
/// pair secret it saw, so the logs can be searched for them.
struct RecordingPins {
    inner: WolfApiPins,
    socket: PathBuf,
    pins: Arc<Mutex<Vec<String>>>,
    pair_secrets: Arc<Mutex<Vec<String>>>,
}

impl PinSubmitter for RecordingPins {
    fn serves(&self, address: &str, http_port: u16) -> bool {
        self.inner.serves(address, http_port)
    }
    fn submit<'a>(&'a self, device_name: &'a str, pin: &'a str) -> SubmitFuture<'a> {
        Box::pin(async move {
            lock(&self.pins).push(pin.to_string());
            let (_, body) = wolf(&self.socket, "GET", "/api/v1/pair/pending", None).await;
            if let Ok(v) = serde_json::from_str::<serde_json::Value>(&body) {
                for p in v["requests"].as_array().into_iter().flatten() {
                    if let Some(s) = p["pair_secret"].as_str() {
                        lock(&self.pair_secrets).push(s.to_string());
                    }
                }
            }
            self.inner.submit(device_name, pin).await
        })
    }
    fn wolf_api(&self) -> Option<String> {
        self.inner.wolf_api()
    }
    fn pairing_turn(&self) -> Option<&tokio::sync::Mutex<()>> {
        self.inner.pairing_turn()
    }
}

// ---------------------------------------------------------------------------------------------
// The gateway (in this process), its log and its data directory

#[derive(Clone)]
struct LogFile(Arc<Mutex<std::io::BufWriter<std::fs::File>>>);

impl Write for LogFile {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        lock(&self.0).write(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        lock(&self.0).flush()
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogFile {
    type Writer = LogFile;
    fn make_writer(&'a self) -> LogFile {
        self.clone()
    }
}

struct Gw {
    addr: std::net::SocketAddr,
    state: AppState,
    user: String,
    admin: String,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    server: tokio::task::JoinHandle<()>,
}

// ---------------------------------------------------------------------------------------------
// Browser connections

#[derive(Default, Clone, Debug)]
struct Status {
    /// Time from the open to the first keyframe, or to the close that came first.
    answer: Option<(Duration, String)>,
    /// How the socket ended: `Some(close frame or None)`.
    ended: Option<Option<(u16, String)>>,
    frames: u64,
}

enum Cmd {
    Close,
    Stall(Duration),
}

struct Conn {
    rtc: bool,
    lobby: Option<String>,
    cmds: mpsc::UnboundedSender<Cmd>,
    status: watch::Receiver<Status>,
    task: tokio::task::JoinHandle<()>,
}

impl Conn {
    fn now(&self) -> Status {
        self.status.borrow().clone()
    }

    async fn wait(&mut self, within: Duration, f: impl Fn(&Status) -> bool) -> bool {
        timeout(within, self.status.wait_for(|s| f(s)))
            .await
            .is_ok_and(|r| r.is_ok())
            || f(&self.status.borrow())
    }

    /// Drops the socket (and the peer) without a close: the browser vanished.
    async fn vanish(self, tally: &Shared) {
        drop(self.cmds);
        if let Err(e) = self.task.await {
            lock(tally).fail(format!("connection task: {e}"));
        }
    }

    async fn finish(self, tally: &Shared) {
        drop(self.cmds);
        if timeout(Duration::from_secs(5), self.task).await.is_err() {
            lock(tally).fail("connection task did not end".into());
        }
    }
}

struct Slot {
    index: usize,
    session: String,
    client: String,
}

fn ws_init(slot: &Slot, lobby: Option<&str>) -> String {
    let mut v: serde_json::Value = serde_json::from_str(&common::init_json(
        &slot.session,
        &slot.client,
        WIDTH,
        HEIGHT,
        FPS,
    ))
    .unwrap();
    v["bitrate"] = 2000.into();
    if let Some(l) = lobby {
        v["lobby_id"] = l.into();
    }
    v.to_string()
}

fn rtc_init(slot: &Slot, lobby: Option<&str>, credential: &str) -> String {
    let mut v = serde_json::json!({"AuthenticateAndInit": {
        "credentials": credential,
        "session_id": slot.session,
        "mode": "create",
        "client_unique_id": slot.client,
        "host_id": 0, "app_id": 1, "bitrate": 2000, "packet_size": 1024,
        "fps": FPS, "width": WIDTH, "height": HEIGHT,
        "video_sample_queue_size": 50, "play_audio_local": false, "audio_sample_queue_size": 20,
        "video_supported_formats": 1, "video_colorspace": "Rec709", "video_color_range_full": true
    }});
    if let Some(l) = lobby {
        v["AuthenticateAndInit"]["lobby_id"] = l.into();
    }
    v.to_string()
}

fn signal(s: Signaling) -> WsMessage {
    WsMessage::Text(
        serde_json::to_string(&ClientMessage::Signaling(s))
            .unwrap()
            .into(),
    )
}

/// Opens a stream of `slot` (WebSocket or WebRTC mode, in `lobby` if given); the returned
/// connection is driven by its own task, which reads the socket (and the peer) until it ends.
async fn open(gw: &Gw, slot: &Slot, rtc: bool, lobby: Option<&str>) -> Conn {
    let opened = Instant::now();
    let (cmds, rx) = mpsc::unbounded_channel();
    let (tx, status) = watch::channel(Status::default());
    let path = if rtc { "host/stream" } else { "ws/stream" };
    let mut req = format!("ws://{}/api/{path}?session_id={}", gw.addr, slot.session)
        .into_client_request()
        .unwrap();
    if !rtc {
        req.headers_mut().insert(
            "authorization",
            format!("Bearer {}", gw.user).parse().unwrap(),
        );
    }
    let init = if rtc {
        rtc_init(slot, lobby, &gw.user)
    } else {
        ws_init(slot, lobby)
    };
    let task = tokio::spawn(async move {
        let ws = match timeout(ANSWER_BOUND * 2, tokio_tungstenite::connect_async(req)).await {
            Ok(Ok((ws, _))) => ws,
            other => {
                let why = match other {
                    Ok(Err(e)) => format!("connect failed: {e}"),
                    _ => "connect timed out".into(),
                };
                tx.send_modify(|s| {
                    s.answer = Some((opened.elapsed(), why));
                    s.ended = Some(None);
                });
                return;
            }
        };
        drive(ws, init, rtc, opened, tx, rx).await;
    });
    Conn {
        rtc,
        lobby: lobby.map(String::from),
        cmds,
        status,
        task,
    }
}

/// Reads the socket (and, in WebRTC mode, negotiates and reads the peer) until it ends, the
/// owner asks for a close, or the owner goes (vanish: everything dropped, no close frame).
async fn drive(
    mut ws: common::Ws,
    init: String,
    rtc: bool,
    opened: Instant,
    tx: watch::Sender<Status>,
    mut cmds: mpsc::UnboundedReceiver<Cmd>,
) {
    if !rtc
        && ws
            .send(WsMessage::Binary(common::ping(0).into()))
            .await
            .is_err()
    {
        tx.send_modify(|s| s.ended = Some(None));
        return;
    }
    if ws.send(WsMessage::Text(init.into())).await.is_err() {
        tx.send_modify(|s| s.ended = Some(None));
        return;
    }
    let mut peer = rtc.then(RtcPeer::start);
    let mut offered = false;
    let mut stall: Option<tokio::time::Instant> = None;
    let mut closing = false;
    let answer = |tx: &watch::Sender<Status>, what: String| {
        tx.send_if_modified(|s| {
            if s.answer.is_none() {
                s.answer = Some((opened.elapsed(), what));
                true
            } else {
                false
            }
        });
    };
    loop {
        let stalled = stall.is_some();
        tokio::select! {
            cmd = cmds.recv(), if !closing => match cmd {
                Some(Cmd::Close) => {
                    closing = true;
                    stall = None;
                    if let Err(e) = ws.close(None).await {
                        tx.send_modify(|s| if s.ended.is_none() { s.ended = Some(Some((0, format!("our close failed: {e}")))) });
                        break;
                    }
                }
                Some(Cmd::Stall(d)) => stall = Some(tokio::time::Instant::now() + d),
                // The owner went: the browser vanishes (TCP dropped without a close).
                None => return,
            },
            _ = tokio::time::sleep_until(stall.unwrap_or_else(tokio::time::Instant::now)), if stalled => stall = None,
            ev = async {
                match peer.as_mut() {
                    Some(p) => p.events.recv().await,
                    None => std::future::pending().await,
                }
            }, if !stalled => match ev {
                Some(PeerEvent::Video(_, idr, _)) => {
                    if idr {
                        answer(&tx, "keyframe".into());
                    }
                    tx.send_modify(|s| s.frames += 1);
                }
                Some(_) => {}
                None => peer = None,
            },
            msg = ws.next(), if !stalled => match msg {
                Some(Ok(WsMessage::Binary(b))) if !rtc => {
                    if let Ok(Message::VideoFrame(f)) = Message::decode(&b) {
                        answer(&tx, if f.keyframe { "keyframe".into() } else { "first frame not a keyframe".into() });
                        tx.send_modify(|s| s.frames += 1);
                    }
                }
                Some(Ok(WsMessage::Text(t))) if rtc => {
                    let Some(p) = peer.as_ref() else { continue };
                    match ServerMessage::parse(&t) {
                        Ok(ServerMessage::WebRtcConfig { .. }) if !offered => {
                            offered = true;
                            let offer = signal(Signaling::Description(RtcSessionDescription {
                                ty: RtcSdpType::Offer,
                                sdp: p.offer.clone(),
                            }));
                            let cand = signal(Signaling::AddIceCandidate(RtcIceCandidate {
                                candidate: p.local_candidate.clone(),
                                sdp_mid: Some("0".into()),
                                sdp_mline_index: Some(0),
                                username_fragment: None,
                            }));
                            let _ = ws.send(offer).await;
                            let _ = ws.send(cand).await;
                        }
                        Ok(ServerMessage::Signaling(Signaling::Description(d))) if d.ty == RtcSdpType::Answer => {
                            p.accept_answer(&d.sdp)
                        }
                        Ok(ServerMessage::Signaling(Signaling::AddIceCandidate(c))) => {
                            p.add_remote_candidate(&c.candidate)
                        }
                        _ => {}
                    }
                }
                Some(Ok(WsMessage::Close(c))) => {
                    // A close frame without a code reads as 1005 ("no status received", RFC 6455).
                    let c = Some(c.map_or((1005, "close frame without a code".to_string()), |c| (u16::from(c.code), c.reason.to_string())));
                    answer(&tx, class(&c));
                    tx.send_modify(|s| if s.ended.is_none() { s.ended = Some(c) });
                    // tungstenite answers it; read on until the server drops the connection.
                }
                Some(Ok(_)) => {}
                // tokio-tungstenite ends the stream (None) once a closing handshake completed; an
                // error is a connection that ended without one.
                Some(Err(e)) if closing => {
                    tx.send_modify(|s| if s.ended.is_none() { s.ended = Some(Some((1000, format!("our close, then {e}")))) });
                    break;
                }
                None if closing => {
                    tx.send_modify(|s| if s.ended.is_none() { s.ended = Some(Some((1000, OUR_CLOSE_ANSWERED.into()))) });
                    break;
                }
                None | Some(Err(_)) => {
                    answer(&tx, class(&None));
                    tx.send_modify(|s| if s.ended.is_none() { s.ended = Some(None) });
                    break;
                }
            },
        }
    }
    if let Some(p) = peer {
        p.close();
    }
}

// ---------------------------------------------------------------------------------------------
// Host fault windows: one window of each kind at a time, with a pause after it, so that no
// refusal (or slow teardown, or loss) lasts longer than one window.

#[derive(Default)]
struct Windows {
    refuse: tokio::sync::Mutex<()>,
    teardown: tokio::sync::Mutex<()>,
    loss: tokio::sync::Mutex<()>,
}

// ---------------------------------------------------------------------------------------------
// One slot's worker

struct Ctx {
    gw: Gw,
    host: Host,
    lobbies: Vec<String>,
    tally: Shared,
    windows: Windows,
}

async fn record_answer(ctx: &Ctx, conn: &mut Conn, what: &str) {
    conn.wait(ANSWER_BOUND + Duration::from_secs(8), |s| {
        s.answer.is_some()
    })
    .await;
    let st = conn.now();
    let mut t = lock(&ctx.tally);
    t.opens += 1;
    match st.answer {
        Some((took, outcome)) => {
            t.answer_ms.push(took.as_secs_f64() * 1e3);
            if took > ANSWER_BOUND {
                t.fail(format!("{what}: answered after {took:?} ({outcome})"));
            }
            if outcome.contains("not a keyframe") {
                t.fail(format!("{what}: {outcome}"));
            }
            let mode = if conn.rtc { "WebRTC" } else { "WebSocket" };
            *t.answers.entry(format!("{mode}: {outcome}")).or_default() += 1;
        }
        None => {
            t.fail(format!("{what}: no answer within 10 s"));
            *t.answers.entry("no answer within 10 s".into()).or_default() += 1;
        }
    }
}

/// Waits for `conn` to end (bounded) and books how it ended under `label`; false if it did not.
async fn record_end(ctx: &Ctx, mut conn: Conn, label: &str, expect: Option<u16>) {
    conn.wait(END_BOUND, |s| s.ended.is_some()).await;
    let st = conn.now();
    {
        let mut t = lock(&ctx.tally);
        match &st.ended {
            Some(close) => {
                *t.ends
                    .entry(format!("{label}: {}", class(close)))
                    .or_default() += 1;
                if let Some(code) = expect {
                    if close.as_ref().map(|c| c.0) != Some(code) {
                        t.fail(format!("{label}: expected close {code}, got {close:?}"));
                    }
                }
            }
            None => {
                t.fail(format!(
                    "{label}: the stream did not end within {END_BOUND:?}"
                ));
                *t.ends.entry(format!("{label}: not ended")).or_default() += 1;
            }
        }
    }
    conn.finish(&ctx.tally).await;
}

async fn run_slot(ctx: Arc<Ctx>, slot: Slot, draws: Vec<Draw>) {
    let mut cur: Option<Conn> = None;
    for d in draws {
        // The browser watches a live stream for a moment (50-250 ms) before its next op: without
        // it 20 slots reopen back to back and the launches' turns on the host (see
        // `web-server/src/launch_gate.rs`) queue longer than any browser population would make
        // them.
        if cur.is_some() {
            tokio::time::sleep(Duration::from_millis(50 + d.ms / 5)).await;
        }
        // A stream that ended by itself meanwhile (a fault window, a lost host) is booked first.
        if let Some(c) = cur.take() {
            if c.now().ended.is_some() {
                record_end(&ctx, c, "ended by itself", None).await;
            } else {
                cur = Some(c);
            }
        }
        *lock(&ctx.tally).ops.entry(d.op).or_default() += 1;
        let lobby = ctx.lobbies[d.lobby].clone();
        let needs_live = matches!(
            d.op,
            Op::Close
                | Op::Vanish
                | Op::Supersede
                | Op::LobbyLeave
                | Op::AdminKill
                | Op::HostStop
                | Op::StreamerKill
                | Op::Stall
        );
        if needs_live && cur.is_none() {
            let in_lobby = (d.op == Op::LobbyLeave).then_some(lobby.as_str());
            let mut c = open(&ctx.gw, &slot, d.rtc, in_lobby).await;
            record_answer(&ctx, &mut c, "implicit open").await;
            lock(&ctx.tally).implicit_opens += 1;
            if c.now().answer.as_ref().is_some_and(|a| a.1 != "keyframe") {
                record_end(&ctx, c, "implicit open refused", None).await;
                continue;
            }
            cur = Some(c);
        }
        match d.op {
            Op::OpenWs | Op::OpenRtc | Op::LobbyJoin => {
                let in_lobby = (d.op == Op::LobbyJoin).then_some(lobby.as_str());
                let rtc = match d.op {
                    Op::OpenWs => false,
                    Op::OpenRtc => true,
                    _ => d.rtc,
                };
                let same_key = cur.as_ref().is_some_and(|c| c.lobby.as_deref() == in_lobby);
                if same_key {
                    // Reopening the key the slot streams is a supersede; an open means a new one.
                    if let Some(old) = cur.take() {
                        let _ = old.cmds.send(Cmd::Close);
                        record_end(&ctx, old, "closed before a reopen", None).await;
                    }
                }
                let mut c = open(&ctx.gw, &slot, rtc, in_lobby).await;
                record_answer(&ctx, &mut c, d.op.name()).await;
                if let Some(old) = cur.take() {
                    // Another lobby's key of the same client: the old stream is replaced (4000).
                    record_end(&ctx, old, "replaced by a lobby change", Some(4000)).await;
                }
                cur = Some(c);
            }
            Op::Supersede => {
                let old = cur.take().unwrap();
                let mut c = open(&ctx.gw, &slot, d.rtc, old.lobby.as_deref()).await;
                record_answer(&ctx, &mut c, "supersede").await;
                record_end(&ctx, old, "superseded", Some(4000)).await;
                cur = Some(c);
            }
            Op::Close => {
                let c = cur.take().unwrap();
                let _ = c.cmds.send(Cmd::Close);
                record_end(&ctx, c, "closed by the browser", None).await;
            }
            Op::Vanish => {
                let c = cur.take().unwrap();
                c.vanish(&ctx.tally).await;
                *lock(&ctx.tally)
                    .ends
                    .entry("vanished (no close sent)".into())
                    .or_default() += 1;
            }
            Op::AdminKill => {
                let c = cur.take().unwrap();
                let key = SessionKey::new(
                    slot.session.clone(),
                    c.lobby.clone().unwrap_or_default(),
                    slot.client.clone(),
                )
                .unwrap()
                .to_string();
                let path = format!("/api/admin/sessions/{}", common::key_path_segment(&key));
                let r = http(ctx.gw.addr, "DELETE", &path, Some(&ctx.gw.admin), None).await;
                match r.status {
                    200 => record_end(&ctx, c, "admin kill", Some(4001)).await,
                    404 => record_end(&ctx, c, "admin kill (already gone: 404)", None).await,
                    s => {
                        lock(&ctx.tally).fail(format!("admin kill: {s} {}", r.body));
                        record_end(&ctx, c, "admin kill (refused)", None).await;
                    }
                }
            }
            Op::HostStop => {
                let c = cur.take().unwrap();
                match ctx.host.session_of(&slot.client).await {
                    Some(id) => {
                        let body = serde_json::json!({ "session_id": id });
                        let (status, _) = wolf(
                            &ctx.host.socket,
                            "POST",
                            "/api/v1/sessions/stop",
                            Some(body),
                        )
                        .await;
                        if status == 200 {
                            lock(&ctx.tally).host_stops_sent += 1;
                        }
                        record_end(&ctx, c, "host-side stop", None).await;
                    }
                    None => {
                        // No host session of this client (it is between launches): close.
                        let _ = c.cmds.send(Cmd::Close);
                        record_end(&ctx, c, "host-side stop (no host session; closed)", None).await;
                    }
                }
            }
            Op::StreamerKill => {
                let c = cur.take().unwrap();
                let key = SessionKey::new(
                    slot.session.clone(),
                    c.lobby.clone().unwrap_or_default(),
                    slot.client.clone(),
                )
                .unwrap()
                .to_string();
                let rows = http(
                    ctx.gw.addr,
                    "GET",
                    "/api/admin/sessions",
                    Some(&ctx.gw.admin),
                    None,
                )
                .await;
                let pid = serde_json::from_str::<serde_json::Value>(&rows.body)
                    .ok()
                    .and_then(|v| {
                        v.as_array().and_then(|a| {
                            a.iter()
                                .find(|s| s["key"] == key.as_str())
                                .and_then(|s| s["pid"].as_u64())
                        })
                    });
                match pid {
                    Some(pid) => {
                        // SAFETY: kill(2) on a pid of our own streamer child; no memory involved.
                        unsafe { libc::kill(pid as i32, libc::SIGKILL) };
                        record_end(&ctx, c, "streamer SIGKILL", None).await;
                    }
                    None => {
                        let _ = c.cmds.send(Cmd::Close);
                        record_end(&ctx, c, "streamer SIGKILL (no pid listed; closed)", None).await;
                    }
                }
            }
            Op::Stall => {
                let mut c = cur.take().unwrap();
                let d = Duration::from_millis(300 + d.ms);
                let _ = c.cmds.send(Cmd::Stall(d));
                tokio::time::sleep(d).await;
                let before = c.now().frames;
                let alive = c
                    .wait(ANSWER_BOUND, |s| s.frames > before || s.ended.is_some())
                    .await;
                let st = c.now();
                if st.ended.is_some() {
                    record_end(&ctx, c, "stalled browser", None).await;
                } else if alive {
                    *lock(&ctx.tally)
                        .ends
                        .entry("stalled browser: streams on after the stall".into())
                        .or_default() += 1;
                    cur = Some(c);
                } else {
                    lock(&ctx.tally).fail(format!(
                        "slot {}: no frame within 2 s after a stall",
                        slot.index
                    ));
                    let _ = c.cmds.send(Cmd::Close);
                    record_end(&ctx, c, "stalled browser (no frames after)", None).await;
                }
            }
            Op::LobbyLeave => {
                let mut c = cur.take().unwrap();
                let id = ctx.host.session_of(&slot.client).await;
                let lobby = c.lobby.clone();
                let left = match (id, lobby) {
                    (Some(id), Some(lobby)) => {
                        let body =
                            serde_json::json!({"lobby_id": lobby, "moonlight_session_id": id});
                        wolf(
                            &ctx.host.socket,
                            "POST",
                            "/api/v1/lobbies/leave",
                            Some(body),
                        )
                        .await
                        .0
                    }
                    _ => 0,
                };
                let before = c.now().frames;
                let alive = c
                    .wait(ANSWER_BOUND, |s| s.frames > before || s.ended.is_some())
                    .await;
                let label = format!(
                    "lobby leave ({})",
                    if left == 200 {
                        "left"
                    } else {
                        "not in the lobby"
                    }
                );
                if c.now().ended.is_some() {
                    record_end(&ctx, c, &label, None).await;
                } else if alive {
                    *lock(&ctx.tally)
                        .ends
                        .entry(format!("{label}: streams on"))
                        .or_default() += 1;
                    cur = Some(c);
                } else {
                    lock(&ctx.tally).fail(format!(
                        "slot {}: no frame within 2 s after a lobby leave",
                        slot.index
                    ));
                    let _ = c.cmds.send(Cmd::Close);
                    record_end(&ctx, c, &label, None).await;
                }
            }
            Op::Refuse => {
                let Ok(_w) = ctx.windows.refuse.try_lock() else {
                    let mut t = lock(&ctx.tally);
                    *t.ends
                        .entry("host refuse window: one already running (joined it)".into())
                        .or_default() += 1;
                    continue;
                };
                ctx.host
                    .faults(serde_json::json!({"refuse_launches": true}))
                    .await;
                tokio::time::sleep(Duration::from_millis(80 + d.ms / 5)).await;
                ctx.host
                    .faults(serde_json::json!({"refuse_launches": false}))
                    .await;
                tokio::time::sleep(Duration::from_millis(1500)).await;
            }
            Op::TeardownMs => {
                let Ok(_w) = ctx.windows.teardown.try_lock() else {
                    let mut t = lock(&ctx.tally);
                    *t.ends
                        .entry("host teardown-ms window: one already running (joined it)".into())
                        .or_default() += 1;
                    continue;
                };
                let ms = 50 + d.ms / 5;
                ctx.host
                    .faults(serde_json::json!({"slow_teardown_ms": ms}))
                    .await;
                tokio::time::sleep(Duration::from_millis(300 + d.ms / 2)).await;
                ctx.host
                    .faults(serde_json::json!({"slow_teardown_ms": 0}))
                    .await;
            }
            Op::LossBurst => {
                let Ok(_w) = ctx.windows.loss.try_lock() else {
                    let mut t = lock(&ctx.tally);
                    *t.ends
                        .entry("loss burst: one already running (joined it)".into())
                        .or_default() += 1;
                    continue;
                };
                ctx.host
                    .faults(serde_json::json!({"drop_pct": d.pct}))
                    .await;
                tokio::time::sleep(Duration::from_millis(200 + d.ms)).await;
                ctx.host.faults(serde_json::json!({"drop_pct": 0})).await;
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    }
    if let Some(c) = cur.take() {
        let _ = c.cmds.send(Cmd::Close);
        record_end(&ctx, c, "closed at the end of the run", None).await;
    }
}

// ---------------------------------------------------------------------------------------------
// Secrets

/// Lines of `text` holding any of `needles` (each with a name for the report).
fn leaks(text: &str, needles: &[(String, String)], source: &str, out: &mut Vec<String>) {
    for line in text.lines() {
        for (name, needle) in needles {
            if line.contains(needle.as_str()) {
                out.push(format!(
                    "{source}: {name} in: {}",
                    line.chars().take(300).collect::<String>()
                ));
            }
        }
        // A pairing PIN is 4 digits: only where a line speaks of a PIN.
        let lower = line.to_ascii_lowercase();
        if lower.contains("rikey=")
            || lower.contains("aes_key\":\"") && !lower.contains("aes_key\":\"\"")
        {
            out.push(format!(
                "{source}: a session AES key in: {}",
                line.chars().take(300).collect::<String>()
            ));
        }
    }
}

fn pin_leaks(text: &str, pins: &[String], source: &str, out: &mut Vec<String>) {
    for line in text.lines() {
        let lower = line.to_ascii_lowercase();
        // "pin" as a word (pin=, PIN:, "the pin"), not inside "stopping" or "ping".
        let b = lower.as_bytes();
        let speaks_of_a_pin = lower.match_indices("pin").any(|(i, _)| {
            (i == 0 || !b[i - 1].is_ascii_alphabetic())
                && b.get(i + 3).is_none_or(|c| !c.is_ascii_alphabetic())
        });
        if !speaks_of_a_pin {
            continue;
        }
        for pin in pins {
            let digits_at = lower.match_indices(pin.as_str()).any(|(i, _)| {
                let b = lower.as_bytes();
                let before = i == 0 || !b[i - 1].is_ascii_digit();
                let after = i + pin.len() >= b.len() || !b[i + pin.len()].is_ascii_digit();
                before && after
            });
            if digits_at {
                out.push(format!("{source}: pairing PIN {pin} in: {line}"));
            }
        }
    }
}

/// The base64 lines of every PEM private key in `pem`.
fn pem_body_lines(pem: &str) -> Vec<String> {
    pem.lines()
        .filter(|l| !l.starts_with("-----") && l.len() >= 40)
        .map(String::from)
        .collect()
}

/// Every file under `dir` and its mode.
fn walk(dir: &Path, out: &mut Vec<(PathBuf, u32)>) {
    use std::os::unix::fs::PermissionsExt;
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        let Ok(meta) = std::fs::symlink_metadata(&p) else {
            continue;
        };
        if meta.is_dir() {
            walk(&p, out);
        } else {
            out.push((p, meta.permissions().mode() & 0o777));
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The run

struct DirPath(PathBuf);

impl DirPath {
    fn path(&self) -> &Path {
        &self.0
    }
}

fn env_num(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.trim().parse().ok())
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seeded_chaos_leaves_nothing_behind_and_answers_every_open() {
    let seed = env_num("MOONGATE_CHAOS_SEED").unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(14)
    });
    let n_ops = env_num("MOONGATE_CHAOS_OPS").unwrap_or(10_000) as usize;
    let n_slots = env_num("MOONGATE_CHAOS_SLOTS").unwrap_or(20).clamp(1, 64) as usize;
    figure!(
        "chaos: seed {seed} (MOONGATE_CHAOS_SEED={seed} reruns this op sequence), {n_ops} ops, {n_slots} slots"
    );

    let dir = tempfile::tempdir().unwrap();
    let dir_path = dir.path().to_path_buf();
    let _dir = if std::env::var_os("MOONGATE_CHAOS_KEEP").is_some() {
        figure!("keeping {} (logs, data dir)", dir_path.display());
        let _ = dir.keep();
        None
    } else {
        Some(dir)
    };
    let dir = DirPath(dir_path);
    let data_dir = dir.path().join("data");
    // The gateway's log at TRACE, the streamers' stderr (relayed into it) at TRACE for our crates.
    let log_path = dir.path().join("gateway.log");
    let mut log = LogFile(Arc::new(Mutex::new(std::io::BufWriter::with_capacity(
        1 << 16,
        std::fs::File::create(&log_path).unwrap(),
    ))));
    {
        use tracing_subscriber::layer::SubscriberExt;
        let filter = tracing_subscriber::EnvFilter::new("trace,tokio=info,runtime=info,tungstenite=debug,tokio_tungstenite=debug,str0m=info,is=info,sctp_proto=info,dimpl=info,rustls=debug,hyper=debug,hyper_util=debug,h2=info,mio=info");
        let sub = tracing_subscriber::registry().with(
            tracing_subscriber::fmt::layer()
                .with_ansi(false)
                .with_writer(log.clone())
                .with_filter(filter),
        );
        use tracing_subscriber::Layer as _;
        let _ = tracing::subscriber::set_global_default(sub);
    }
    // Inherited by every streamer.
    std::env::set_var(
        "RUST_LOG",
        "debug,streamer=trace,gamestream=trace,wire=trace,tokio=info,runtime=info,str0m=info,is=info,sctp_proto=info,dimpl=info,mio=info",
    );

    // The data directory as the binary sets it up: owner-only, generated credentials, a store key
    // and an encrypted SQLite store.
    web_server::datadir::restrict_umask();
    std::fs::create_dir_all(&data_dir).unwrap();
    web_server::datadir::secure_tree(&data_dir).unwrap();
    let (user, _) = Credentials::load_or_generate(None, &data_dir).unwrap();
    let (admin, _) =
        Credentials::load_or_generate_file(None, &data_dir, ADMIN_CREDENTIALS_FILE).unwrap();
    let (store_key, store_key_path) =
        web_server::store_key::StoreKey::load_or_generate(None, &data_dir).unwrap();
    let store =
        Arc::new(SqliteStore::open_with_key(&data_dir.join("moongate.db"), store_key).unwrap());

    // The streamers and the host as deployed, in the test command (`common::load_test_exes`).
    let (streamer, host_exe) = common::load_test_exes();
    figure!(
        "binaries: {} and {}",
        streamer.display(),
        host_exe.display()
    );
    let host = Host::spawn(dir.path(), &host_exe).await;
    let mut config = Config::load_with_env(None, |_| None).unwrap();
    config.data_dir = data_dir.clone();
    config.streamer_path = streamer;
    config.bind = "127.0.0.1:0".parse().unwrap();
    config.timeouts.host_cleanup = HOST_CLEANUP;
    config.webrtc.bind_address = "127.0.0.1".parse().unwrap();
    config.webrtc.network_types = vec![web_server::config::NetworkType::Udp4];
    store
        .add_host(NewHost {
            name: "chaos demo host".into(),
            address: "127.0.0.1".into(),
            http_port: host.http,
            https_port: Some(host.https),
            mac: None,
            wolf_api: Some(host.socket.to_string_lossy().into_owned()),
        })
        .await
        .unwrap();
    let state = AppState::new(config, user.clone(), store.clone() as Arc<dyn HostStore>)
        .with_admin_credentials(admin.clone());
    let pins = Arc::new(Mutex::new(Vec::new()));
    let pair_secrets = Arc::new(Mutex::new(Vec::new()));
    state.add_pin_submitter(Arc::new(RecordingPins {
        inner: WolfApiPins::new("127.0.0.1", host.http, host.socket.to_str().unwrap()).unwrap(),
        socket: host.socket.clone(),
        pins: Arc::clone(&pins),
        pair_secrets: Arc::clone(&pair_secrets),
    }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn({
        let state = state.clone();
        async move {
            serve(listener, state, async move {
                let _ = stop_rx.await;
            })
            .await
            .unwrap();
        }
    });
    let gw = Gw {
        addr,
        state,
        user: user.expose().to_string(),
        admin: admin.expose().to_string(),
        shutdown: Some(stop_tx),
        server,
    };
    let lobbies = vec![
        host.create_lobby("chaos lobby A").await,
        host.create_lobby("chaos lobby B").await,
    ];
    let tally: Shared = Arc::new(Mutex::new(Tally::default()));
    let ctx = Arc::new(Ctx {
        gw,
        host,
        lobbies,
        tally: Arc::clone(&tally),
        windows: Windows::default(),
    });
    let slots: Vec<Slot> = (0..n_slots)
        .map(|i| Slot {
            index: i,
            session: format!("ses_chaos{i:02}-hq"),
            client: format!("chaos-browser-{i:02}"),
        })
        .collect();

    // Warm-up (not counted): every slot's identity is paired and streams once in each mode, so
    // the baseline holds the certificate cache and the lazily created state.
    let warm = Instant::now();
    // All 20 identities pair at the same moment: Wolf's pending-pair list names no device, and
    // the gateway's pairings with one host take turns (`PinSubmitter::pairing_turn`) so that
    // their PINs never cross (they did, as "wrong PIN", before it).
    futures_util::future::join_all(slots.iter().map(|slot| {
        let ctx = Arc::clone(&ctx);
        async move {
            for rtc in [false, true] {
                let mut c = open(&ctx.gw, slot, rtc, None).await;
                let ok = c
                    .wait(Duration::from_secs(30), |s| s.answer.is_some())
                    .await;
                let st = c.now();
                assert!(
                    ok && st.answer.as_ref().is_some_and(|a| a.1 == "keyframe"),
                    "warm-up of slot {}: {st:?}",
                    slot.index
                );
                let _ = c.cmds.send(Cmd::Close);
                assert!(
                    c.wait(END_BOUND, |s| s.ended.is_some()).await,
                    "warm-up close"
                );
                c.finish(&ctx.tally).await;
            }
        }
    }))
    .await;
    assert!(
        common::eventually(Duration::from_secs(10), || ctx
            .gw
            .state
            .sessions
            .list()
            .is_empty()
            && streamer_children().is_empty())
        .await,
        "warm-up left streams"
    );
    let settled = common::poll_until(Duration::from_secs(10), || {
        let ctx = Arc::clone(&ctx);
        async move { (ctx.host.session_count().await == 0).then_some(()) }
    })
    .await;
    assert!(settled.is_some(), "warm-up left host sessions");
    figure!(
        "warm-up: {} identities paired, each streamed in both modes, in {} ms",
        n_slots,
        warm.elapsed().as_millis()
    );
    // The tally's buffers are allocated before the baseline.
    lock(&tally).answer_ms.reserve(n_ops * 2 + 64);
    // tokio's blocking pool keeps idle threads for 10 s: let the warm-up's go (bounded).
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (fds0, threads0, kids0, heap0) =
        (fd_count(), thread_count(), children().len(), live_heap());
    let strict0 = ctx.host.strict_count().await;

    let draws = draw_ops(seed, n_ops, n_slots);
    let t0 = Instant::now();
    let workers: Vec<_> = slots
        .into_iter()
        .zip(draws)
        .map(|(slot, d)| tokio::spawn(run_slot(Arc::clone(&ctx), slot, d)))
        .collect();
    let mut panics = Vec::new();
    for w in workers {
        if let Err(e) = w.await {
            panics.push(format!("worker: {e}"));
        }
    }
    let ran = t0.elapsed();
    ctx.host
        .faults(serde_json::json!({"refuse_launches": false, "slow_teardown_ms": 0, "drop_pct": 0}))
        .await;

    // Everything must come back.
    let registry = common::eventually(Duration::from_secs(10), || {
        ctx.gw.state.sessions.list().is_empty()
    })
    .await;
    let streamers =
        common::eventually(Duration::from_secs(10), || streamer_children().is_empty()).await;
    // A SIGKILLed streamer's host session is cancelled HOST_CLEANUP after the kill.
    let host_free = common::poll_until(HOST_CLEANUP + Duration::from_secs(8), || {
        let ctx = Arc::clone(&ctx);
        async move { (ctx.host.session_count().await == 0).then_some(()) }
    })
    .await
    .is_some();
    let fds_back = common::eventually(Duration::from_secs(5), || fd_count() <= fds0).await;
    let kids_back = common::eventually(Duration::from_secs(5), || children().len() <= kids0).await;
    let threads_back =
        common::eventually(Duration::from_secs(12), || thread_count() <= threads0).await;
    let heap_back =
        common::eventually(Duration::from_secs(5), || live_heap() <= heap0 + HEAP_BOUND).await;
    let (fds1, threads1, kids1, heap1) =
        (fd_count(), thread_count(), children().len(), live_heap());
    let strict1 = ctx.host.strict_count().await;
    let host_sessions = ctx.host.session_count().await;
    let registry_left = ctx.gw.state.sessions.list().len();
    let streamers_left = streamer_children().len();

    // The figures.
    let (failures, host_stops, total_ops) = {
        let t = lock(&tally);
        let total_ops: u64 = t.ops.values().sum();
        figure!(
            "\nchaos run: seed {seed}, {total_ops} ops over {n_slots} slots in {:.1} s ({:.0} ops/s)",
            ran.as_secs_f64(),
            total_ops as f64 / ran.as_secs_f64()
        );
        figure!("\n| operation | count |\n|---|---|");
        for (op, n) in &t.ops {
            figure!("| {} | {n} |", op.name());
        }
        figure!(
            "| (opens made first for an op that needs a stream) | {} |",
            t.implicit_opens
        );
        figure!("\n| open answered with | count |\n|---|---|");
        for (k, n) in &t.answers {
            figure!("| {k} | {n} |");
        }
        figure!("\n| stream ended | count |\n|---|---|");
        for (k, n) in &t.ends {
            figure!("| {k} | {n} |");
        }
        let mut ms = t.answer_ms.clone();
        ms.sort_by(|a, b| a.total_cmp(b));
        figure!(
            "\nanswer time of {} opens (first keyframe or close): p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms (bound {} ms)",
            ms.len(),
            percentile(&ms, 0.5),
            percentile(&ms, 0.99),
            ms.last().copied().unwrap_or(0.0),
            ANSWER_BOUND.as_millis()
        );
        figure!(
            "\n| resource | baseline | end |\n|---|---|---|\n| threads | {threads0} | {threads1} |\n| fds | {fds0} | {fds1} |\n| children (demo-host + streamers) | {kids0} | {kids1} |\n| live heap | {:.2} MB | {:.2} MB ({:+} kB, bound {} kB) |\n| registry entries | 0 | {registry_left} |\n| streamer processes | 0 | {streamers_left} |\n| host sessions | 0 | {host_sessions} |",
            heap0 as f64 / 1e6,
            heap1 as f64 / 1e6,
            (heap1 - heap0) / 1024,
            HEAP_BOUND / 1024
        );

        (
            t.failures.clone(),
            t.host_stops_sent,
            t.ops.values().sum::<u64>(),
        )
    };
    // Stop the gateway, then the host; then read every log of the run.
    let ctx = Arc::into_inner(ctx).expect("workers ended");
    let Ctx { gw, mut host, .. } = ctx;
    let Gw {
        shutdown,
        server,
        state,
        ..
    } = gw;
    if let Some(tx) = shutdown {
        let _ = tx.send(());
    }
    let _ = timeout(Duration::from_secs(10), server).await;
    drop(state);
    let _ = host.child.start_kill();
    let _ = timeout(Duration::from_secs(5), host.child.wait()).await;
    let _ = timeout(Duration::from_secs(5), &mut host.reader).await;
    log.flush().unwrap();

    let gateway_log = std::fs::read_to_string(&log_path).unwrap_or_default();
    let host_err = std::fs::read_to_string(&host.stderr_path).unwrap_or_default();
    let host_out = std::fs::read_to_string(&host.stdout_path).unwrap_or_default();
    // Teardown-order violations by cause: an API stop is the host's own act (a real Wolf crashes
    // on it too, whatever the client does); a `/cancel` before the ENet disconnect is ours.
    let by_cancel = host_out
        .lines()
        .filter(|l| {
            l.contains("wolf-strict: ENet disconnect after /cancel")
                && l.contains("ended by /cancel")
        })
        .count();
    let by_api_stop = host_out
        .lines()
        .filter(|l| {
            l.contains("wolf-strict: ENet disconnect after /cancel")
                && l.contains("ended by API stop")
        })
        .count();
    let strict_run = strict1 - strict0;
    figure!(
        "\nWolf-strict: {strict_run} teardown-order events in the run: {by_api_stop} from the host's own API stops ({host_stops} stops sent), {by_cancel} from a /cancel before the ENet disconnect (the gateway's)"
    );

    let mut needles: Vec<(String, String)> = vec![
        ("the user credential".into(), user.expose().to_string()),
        ("the admin credential".into(), admin.expose().to_string()),
    ];
    let key_text = std::fs::read_to_string(&store_key_path).unwrap_or_default();
    needles.push(("the store key".into(), key_text.trim().to_string()));
    let mut identities = 0;
    for summary in store.list_identities().await.unwrap() {
        if let Some(rec) = store
            .get_identity(summary.host_id, &summary.client_id)
            .await
            .unwrap()
        {
            identities += 1;
            for l in pem_body_lines(&rec.key_pem) {
                needles.push((
                    format!("the private key of identity {}", summary.client_id),
                    l,
                ));
            }
        }
    }
    let mut host_keys = Vec::new();
    walk(&host.data, &mut host_keys);
    for (p, _) in &host_keys {
        let text = std::fs::read_to_string(p).unwrap_or_default();
        if text.contains("PRIVATE KEY") {
            for l in pem_body_lines(&text) {
                needles.push((format!("the host's private key ({})", p.display()), l));
            }
        }
    }
    for s in lock(&pair_secrets).iter() {
        needles.push(("a pair secret".into(), s.clone()));
    }
    needles.retain(|(_, n)| n.len() >= 8);
    let pins = lock(&pins).clone();
    let mut leaked = Vec::new();
    for (text, source) in [
        (&gateway_log, "gateway log"),
        (&host_err, "demo-host stderr"),
        (&host_out, "demo-host stdout"),
    ] {
        leaks(text, &needles, source, &mut leaked);
        pin_leaks(text, &pins, source, &mut leaked);
    }
    let panicked: Vec<&str> = gateway_log
        .lines()
        .chain(host_err.lines())
        .filter(|l| l.contains("panicked"))
        .take(10)
        .collect();
    let streamer_lines = gateway_log
        .lines()
        .filter(|l| {
            l.contains(" streamer:") || l.contains("target=streamer") || l.contains("streamer{")
        })
        .count();
    figure!(
        "\nlogs searched: gateway {:.1} MB ({} lines, {streamer_lines} relayed from streamers), demo-host {:.1} MB; secrets searched: 2 credentials, the store key, {identities} client private keys ({} PEM lines), the host's key, {} pair secrets, {} PINs; found {}",
        gateway_log.len() as f64 / 1e6,
        gateway_log.lines().count(),
        (host_err.len() + host_out.len()) as f64 / 1e6,
        needles.iter().filter(|(n, _)| n.starts_with("the private key")).count(),
        lock(&pair_secrets).len(),
        pins.len(),
        leaked.len()
    );
    let mut files = Vec::new();
    walk(&data_dir, &mut files);
    let wide: Vec<String> = files
        .iter()
        .filter(|(_, m)| m & 0o077 != 0)
        .map(|(p, m)| format!("{} {:o}", p.display(), m))
        .collect();
    figure!(
        "data dir: {} files, modes {:?}",
        files.len(),
        files
            .iter()
            .map(|(p, m)| format!(
                "{} {:o}",
                p.file_name().unwrap_or_default().to_string_lossy(),
                m
            ))
            .collect::<Vec<_>>()
    );

    for f in &failures {
        figure!("FAILURE: {f}");
    }
    for l in &leaked {
        figure!("LEAK: {}", l.chars().take(400).collect::<String>());
    }
    assert!(panics.is_empty(), "{panics:?}");
    assert!(panicked.is_empty(), "panics in the logs: {panicked:?}");
    assert!(
        failures.is_empty(),
        "{} failures (first: {:?})",
        failures.len(),
        failures.first()
    );
    assert!(registry, "registry entries left: {registry_left}");
    assert!(streamers, "streamers left: {streamers_left}");
    assert!(host_free, "host sessions left: {host_sessions}");
    assert_eq!(
        by_cancel, 0,
        "a /cancel reached the host before the ENet disconnect"
    );
    assert_eq!(
        strict_run as usize,
        by_cancel + by_api_stop,
        "Wolf-strict events not accounted for"
    );
    assert!(by_api_stop as u64 <= host_stops);
    assert!(fds_back, "fds {fds0} → {fds1}");
    assert!(kids_back, "children {kids0} → {kids1}");
    assert!(threads_back, "threads {threads0} → {threads1}");
    assert!(heap_back, "live heap {heap0} → {heap1}");
    assert!(leaked.is_empty(), "{} secrets in the logs", leaked.len());
    assert!(
        wide.is_empty(),
        "files wider than 0600 in the data dir: {wide:?}"
    );
    assert!(total_ops as usize == n_ops);
}
