//! Quality that adapts (issue 15, docs/adaptive-quality.md), measured on a shaped link, in
//! WebSocket mode and in WebRTC mode.
//!
//! WebSocket mode: two gateways, each with its own Wolf-strict demo host whose video is padded to the bitrate
//! (a CBR host's volume), stream 1280×720 at 30 fps and 12 Mbit/s to a WebSocket client over a
//! loopback link shaped to 20, then 5, then 20 Mbit/s again (`tc` htb on the gateway's port, in a
//! network namespace of the test's own). One client asks for adaptation, the other does not. Per
//! second, both print the frames delivered, the stall time (gaps of more than 100 ms without a
//! frame) and the size streamed; then the rung changes and the restream gaps.
//!
//! WebRTC mode: the same with a str0m peer as the browser, the link being the UDP port of each
//! gateway's streamer peer; the controller reads the browser's RTCP receiver reports (loss and
//! round trip). A frame counts when it was received whole.
//!
//! What must hold: no change while the link carries the stream; a step down while it does not;
//! a step up again after it recovers; every restream's gap bounded; the adaptive run stalls less
//! than the fixed one over the narrow phase and over the whole run; and both gateways are left
//! with nothing running.
//!
//! Needs `cargo build --bins -p streamer`, `unshare` (util-linux) and `tc` (iproute2) on a kernel
//! with user namespaces, `sch_htb`, `sch_bfifo` and `cls_u32`: the test runs itself again inside
//! `unshare -rn`, where it owns the loopback device it shapes. (This kernel has no `sch_netem`;
//! htb's rate is what matters here, not delay or loss.)

mod common;
#[path = "common/rtc_peer.rs"]
mod rtc_peer;
#[path = "common/rtc_signaling.rs"]
mod rtc_signaling;

use std::future::Future;
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;
use futures_util::StreamExt;
use rtc_peer::RtcPeer;
use tokio::time::timeout;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use wire::browser::signaling::ServerMessage;
use wire::browser::Message;

/// Set in the environment of the run inside the namespace.
const INSIDE: &str = "MOONGATE_ADAPT_IN_NETNS";

/// The link toward the browser: (Mbit/s, seconds).
const PROFILE: [(u32, u64); 3] = [(20, 10), (5, 20), (20, 40)];
/// A gap between two video frames longer than this is a stall (the picture froze).
const STALL: Duration = Duration::from_millis(100);
/// A frame this much later than the run's least delay shows a stale picture: for an interactive
/// stream the time until the next frame counts as stalled too.
const LATE: Duration = Duration::from_millis(250);
/// The stream asked for.
const SIZE: (u32, u32) = (1280, 720);
const FPS: u32 = 30;
const BITRATE_KBPS: u32 = 12_000;
/// The longest a restream may leave the browser without video.
const MAX_RESTREAM_GAP: Duration = Duration::from_secs(5);

#[test]
fn adaptive_quality_beats_a_fixed_rung_on_a_shaped_link() {
    in_own_netns(
        "adaptive_quality_beats_a_fixed_rung_on_a_shaped_link",
        shaped_runs,
    );
}

#[test]
fn adaptive_quality_beats_a_fixed_rung_on_a_shaped_webrtc_link() {
    in_own_netns(
        "adaptive_quality_beats_a_fixed_rung_on_a_shaped_webrtc_link",
        shaped_webrtc_runs,
    );
}

/// One shaped run at a time: each encodes and decodes two 720p streams, and two at once on a
/// 2-core machine stall on CPU, which the controller rightly reads as a bad link.
static ONE_RUN_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Runs `body` in a user and network namespace of its own: the test binary runs itself again
/// under `unshare -rn`, with only the test `name`.
fn in_own_netns<F: Future<Output = ()>>(name: &str, body: impl FnOnce() -> F) {
    if std::env::var_os(INSIDE).is_some() {
        return tokio::runtime::Builder::new_multi_thread()
            .worker_threads(4)
            .enable_all()
            .build()
            .unwrap()
            .block_on(body());
    }
    let _one = ONE_RUN_AT_A_TIME
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let exe = std::env::current_exe().unwrap();
    let status = Command::new("unshare")
        .arg("-rn")
        .arg(&exe)
        .args(["--exact", name, "--nocapture", "--test-threads=1"])
        .env(INSIDE, "1")
        .status()
        .expect("unshare (util-linux) runs");
    assert!(
        status.success(),
        "the shaped-link run failed inside its namespace: {status}"
    );
}

/// Runs a `tc`/`ip` command line; it must succeed.
fn sh(line: &str) {
    let mut words = line.split_whitespace();
    let program = words.next().unwrap();
    let out = Command::new(program).args(words).output().unwrap();
    assert!(
        out.status.success(),
        "{line}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The htb class of a gateway's port at `mbit`.
fn shape(class: u32, mbit: u32, verb: &str) {
    sh(&format!(
        "tc class {verb} dev lo parent 1: classid 1:{class} htb rate {mbit}mbit ceil {mbit}mbit burst 32k"
    ));
}

/// The namespace's loopback up, with 1500-byte packets (its 64 KiB would make htb's bursts
/// coarse) under a root htb whose default class is unlimited: the host's UDP media to the
/// streamer is never shaped.
fn shaped_loopback() {
    sh("ip link set lo up");
    sh("ip link set lo mtu 1500");
    sh("tc qdisc add dev lo root handle 1: htb default 99 r2q 100");
    sh("tc class add dev lo parent 1: classid 1:99 htb rate 10gbit");
}

/// One htb class per source port in `ports` ([`CLASSES`]) at the profile's first rate, with a
/// router's queue.
fn shape_ports(ports: [u16; 2]) {
    for (class, port) in CLASSES.into_iter().zip(ports) {
        shape(class, PROFILE[0].0, "add");
        // A queue of 240 ms at 5 Mbit/s: a router's, not loopback's 1000 packets.
        sh(&format!(
            "tc qdisc add dev lo parent 1:{class} bfifo limit 150000"
        ));
        sh(&format!(
            "tc filter add dev lo parent 1: protocol ip prio 1 u32 match ip sport {port} 0xffff flowid 1:{class}"
        ));
    }
}

/// The htb classes of the fixed and the adaptive run.
const CLASSES: [u32; 2] = [10, 20];

/// Changes both classes' rate along [`PROFILE`] from `t0`.
fn follow_profile(t0: Instant) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut at = t0;
        for (mbit, secs) in PROFILE {
            tokio::time::sleep_until(at.into()).await;
            for class in CLASSES {
                shape(class, mbit, "change");
            }
            at += Duration::from_secs(secs);
        }
    })
}

/// The run's length.
fn profile_length() -> Duration {
    Duration::from_secs(PROFILE.iter().map(|p| p.1).sum())
}

async fn shaped_runs() {
    shaped_loopback();
    let fixed = gateway("fixed").await;
    let adaptive = gateway("adaptive").await;
    shape_ports([fixed.addr.port(), adaptive.addr.port()]);
    let mut fixed_ws = open(&fixed, false).await;
    let mut adaptive_ws = open(&adaptive, true).await;
    let total = profile_length();
    let t0 = Instant::now();
    let shaper = follow_profile(t0);
    let (f, a) = tokio::join!(
        watch(&mut fixed_ws, t0, total),
        watch(&mut adaptive_ws, t0, total)
    );
    shaper.await.unwrap();
    report("WebSocket", &f, &a);
    check_runs(&f, &a);

    // Nothing is left running: the restreams ended their host streams.
    for (gw, mut ws) in [(&fixed, fixed_ws), (&adaptive, adaptive_ws)] {
        close_until_registry_empty(gw, &mut ws).await;
        assert!(eventually(Duration::from_secs(10), || gw.host.sessions().is_empty()).await);
    }
    assert!(eventually(Duration::from_secs(10), || streamer_children().is_empty()).await);
    fixed.stop().await;
    adaptive.stop().await;
}

/// The WebRTC peers' UDP ports of the fixed and the adaptive gateway.
const RTC_PORTS: [u16; 2] = [41_000, 41_010];

async fn shaped_webrtc_runs() {
    shaped_loopback();
    let fixed = rtc_gateway("fixed", RTC_PORTS[0]).await;
    let adaptive = rtc_gateway("adaptive", RTC_PORTS[1]).await;
    shape_ports(RTC_PORTS);
    let (mut fixed_ws, mut fixed_peer) = open_rtc(&fixed, false).await;
    let (mut adaptive_ws, mut adaptive_peer) = open_rtc(&adaptive, true).await;
    let total = profile_length();
    let t0 = Instant::now();
    let shaper = follow_profile(t0);
    let (f, a) = tokio::join!(
        watch_rtc(&mut fixed_ws, &mut fixed_peer, t0, total),
        watch_rtc(&mut adaptive_ws, &mut adaptive_peer, t0, total)
    );
    shaper.await.unwrap();
    report("WebRTC", &f, &a);
    check_runs(&f, &a);

    // Nothing is left running: the restreams ended their host streams (both streams are closed
    // first: the streamers are children of this one process).
    for (ws, peer) in [(fixed_ws, fixed_peer), (adaptive_ws, adaptive_peer)] {
        peer.close();
        drop(ws);
    }
    for gw in [&fixed, &adaptive] {
        assert_stream_gone(gw, Duration::from_secs(10), Duration::from_secs(10)).await;
    }
    fixed.stop().await;
    adaptive.stop().await;
}

/// What both modes must show: hysteresis, a step down on the narrow link and up after it,
/// bounded restream gaps, and less stalling with adaptation.
fn check_runs(f: &Run, a: &Run) {
    // Hysteresis: nothing changes while the link carries the stream.
    let narrow = (PROFILE[0].1 as f64, (PROFILE[0].1 + PROFILE[1].1) as f64);
    assert!(
        f.changes.is_empty(),
        "the fixed run changed: {:?}",
        f.changes
    );
    assert!(
        a.changes.iter().all(|c| c.at >= narrow.0),
        "a change before the link narrowed: {:?}",
        a.changes
    );
    let down = a
        .changes
        .iter()
        .find(|c| c.reason == "congestion")
        .expect("the adaptive run stepped down");
    assert!(down.at < narrow.1, "stepped down only at {:.1} s", down.at);
    assert!(
        a.changes
            .iter()
            .any(|c| c.at >= narrow.1 && c.reason != "congestion"),
        "no step up after the link recovered: {:?}",
        a.changes
    );
    assert!(!a.restream_gaps.is_empty(), "no restream was seen");
    for gap in &a.restream_gaps {
        assert!(
            *gap < MAX_RESTREAM_GAP,
            "a restream left {gap:?} without video"
        );
    }
    let (f_narrow, a_narrow) = (f.stall_in(narrow), a.stall_in(narrow));
    assert!(
        a_narrow * 2 < f_narrow,
        "over the narrow link the adaptive run stalled {a_narrow:?}, the fixed one {f_narrow:?}"
    );
    assert!(a.stall < f.stall, "{:?} vs {:?}", a.stall, f.stall);
}

async fn gateway(name: &str) -> Gateway {
    test_log();
    let (config, dir) = loopback_config();
    padded_host_gateway(config, dir, name).await
}

/// [`gateway`] whose streamer's WebRTC peer binds 127.0.0.1:`port`.
async fn rtc_gateway(name: &str, port: u16) -> Gateway {
    test_log();
    let (mut config, dir) = loopback_config();
    config.webrtc.udp_port_min = port;
    config.webrtc.udp_port_max = port;
    padded_host_gateway(config, dir, name).await
}

/// A WebRTC stream of [`SIZE`]@[`FPS`] at [`BITRATE_KBPS`] on the signaling socket, negotiated
/// with a str0m peer up to its first keyframe.
async fn open_rtc(gw: &Gateway, adaptive: bool) -> (Ws, RtcPeer) {
    let name = if adaptive { "adaptive" } else { "fixed" };
    let session = format!("agent-ses_{name}-rtc");
    let mut init: serde_json::Value = serde_json::from_str(
        &AuthInit {
            session: &session,
            client: &format!("client-{name}"),
            host_id: 0,
            bitrate: BITRATE_KBPS,
            size: SIZE,
            fps: FPS,
        }
        .json(),
    )
    .unwrap();
    if adaptive {
        init["AuthenticateAndInit"]["adaptive"] = true.into();
    }
    let mut ws = open_signaling_socket(
        &gw.addr.to_string(),
        &session,
        init.to_string(),
        Duration::from_secs(5),
    )
    .await;
    let peer = rtc_signaling::first_video(&mut ws, Duration::from_secs(30)).await;
    peer.request_keyframes_on_gaps();
    (ws, peer)
}

/// A stream of [`SIZE`]@[`FPS`] at [`BITRATE_KBPS`] from the moongate client protocol (which
/// is told of quality changes), up to its ConnectionComplete.
async fn open(gw: &Gateway, adaptive: bool) -> Ws {
    let name = if adaptive { "adaptive" } else { "fixed" };
    let mut init: serde_json::Value = serde_json::from_str(&init_json(
        &format!("ses_{name}-hq"),
        &format!("client-{name}"),
        SIZE.0,
        SIZE.1,
        FPS,
    ))
    .unwrap();
    init["bitrate"] = BITRATE_KBPS.into();
    init["protocol_version"] = 2.into();
    if adaptive {
        init["adaptive"] = true.into();
    }
    let mut ws = connect_init_only(&gw.addr.to_string(), "", init.to_string()).await;
    assert_eq!(handshake(&mut ws).await, (SIZE.0 as u16, SIZE.1 as u16));
    ws
}

/// One second of a run.
#[derive(Debug, Clone, Copy, Default)]
struct Second {
    frames: u32,
    stall: Duration,
    /// The worst delay a frame had on the way, beyond the run's least (ms).
    late_ms: u64,
    size: (u16, u16),
}

/// A rung change the gateway announced.
#[derive(Debug)]
struct Change {
    /// Seconds since the start.
    at: f64,
    reason: String,
    rung: String,
}

#[derive(Debug, Default)]
struct Run {
    seconds: Vec<Second>,
    frames: u64,
    stall: Duration,
    changes: Vec<Change>,
    /// Last frame before a new StreamInit → the first keyframe after it.
    restream_gaps: Vec<Duration>,
}

impl Run {
    /// Stall time in the seconds `from..to`.
    fn stall_in(&self, (from, to): (f64, f64)) -> Duration {
        self.seconds[from as usize..(to as usize).min(self.seconds.len())]
            .iter()
            .map(|s| s.stall)
            .sum()
    }
}

/// What both watchers keep while they read: the run so far, the size in force, and each frame's
/// arrival since `t0` with its delay on the way up to a constant (arrival minus its timestamp,
/// the streamer's clock that follows the host's frames; the least of the run is the baseline).
struct Tally {
    t0: Instant,
    run: Run,
    size: (u16, u16),
    last_frame: Instant,
    /// Set by a new size: the last frame before it, until the first keyframe after it.
    restream_from: Option<Instant>,
    arrivals: Vec<(Duration, i64)>,
}

impl Tally {
    fn new(t0: Instant, total: Duration) -> Self {
        Self {
            t0,
            run: Run {
                seconds: vec![Second::default(); total.as_secs() as usize + 1],
                ..Run::default()
            },
            size: (SIZE.0 as u16, SIZE.1 as u16),
            last_frame: t0,
            restream_from: None,
            arrivals: Vec::new(),
        }
    }

    /// A frame shown at `now`, stamped `pts_us` by the streamer.
    fn frame(&mut self, now: Instant, keyframe: bool, pts_us: u64) {
        let arrival = now.saturating_duration_since(self.t0);
        let last = self.run.seconds.len() - 1;
        let second = &mut self.run.seconds[(arrival.as_secs() as usize).min(last)];
        second.frames += 1;
        second.size = self.size;
        self.run.frames += 1;
        self.last_frame = now;
        self.arrivals
            .push((arrival, arrival.as_micros() as i64 - pts_us as i64));
        if keyframe {
            if let Some(from) = self.restream_from.take() {
                self.run
                    .restream_gaps
                    .push(now.saturating_duration_since(from));
            }
        }
    }

    /// The stream restarts at `size`: its gap runs from the last frame to the next keyframe.
    fn resized(&mut self, size: (u16, u16)) {
        self.size = size;
        self.restream_from = Some(self.last_frame);
    }

    /// A `Quality` notice at `now`.
    fn notice(&mut self, now: Instant, q: &wire::browser::Quality) {
        self.run.changes.push(Change {
            at: now.saturating_duration_since(self.t0).as_secs_f64(),
            reason: q.reason.clone(),
            rung: format!(
                "{}x{}@{} {} kbit/s (rung {} of {})",
                q.width, q.height, q.fps, q.bitrate_kbps, q.rung, q.rungs
            ),
        });
    }

    /// The run, its stalls counted up to `end`.
    fn finish(mut self, end: Instant) -> Run {
        stalls(
            &mut self.run,
            &self.arrivals,
            end.saturating_duration_since(self.t0),
        );
        self.run
    }
}

/// Reads the stream until `t0 + total`: video frames, StreamInits (new sizes) and the gateway's
/// Quality notices.
async fn watch(ws: &mut Ws, t0: Instant, total: Duration) -> Run {
    let end = t0 + total;
    let mut tally = Tally::new(t0, total);
    while let Some(msg) = next_until(ws, end).await {
        let now = Instant::now();
        match msg {
            WsMessage::Binary(b) => match Message::decode(&b) {
                Ok(Message::VideoFrame(f)) => tally.frame(now, f.keyframe, f.pts_us),
                Ok(Message::StreamInit(si)) => tally.resized((si.width, si.height)),
                _ => {}
            },
            WsMessage::Text(t) => {
                let json: serde_json::Value = serde_json::from_str(t.as_str()).unwrap();
                assert!(json.get("error").is_none(), "server error: {t}");
                if let Ok(ServerMessage::Quality(q)) = ServerMessage::parse(t.as_str()) {
                    tally.notice(now, &q);
                }
            }
            WsMessage::Close(c) => panic!("closed: {c:?}"),
            _ => {}
        }
    }
    tally.finish(end)
}

/// [`watch`] for a WebRTC stream: frames a decoder could show, Quality notices (and the size
/// they announce) from the signaling socket. After video was lost no delta frame can be shown
/// until the next keyframe (the peer asks for one with a PLI, as a browser does). A frame's delay
/// on the way is its arrival less its RTP time (the streamer's clock), as in [`watch`]. A
/// restream's gap runs from the last frame before the notice to the first keyframe after it.
async fn watch_rtc(ws: &mut Ws, peer: &mut RtcPeer, t0: Instant, total: Duration) -> Run {
    let end = t0 + total;
    let mut tally = Tally::new(t0, total);
    let mut broken = false;
    loop {
        let left = end.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        tokio::select! {
            msg = timeout(left, ws.next()) => match msg {
                Err(_) => break,
                Ok(Some(Ok(WsMessage::Text(t)))) => {
                    if let Ok(ServerMessage::Quality(q)) = ServerMessage::parse(t.as_str()) {
                        tally.resized((q.width as u16, q.height as u16));
                        tally.notice(Instant::now(), &q);
                    }
                }
                Ok(Some(Ok(WsMessage::Close(c)))) => panic!("closed: {c:?}"),
                Ok(Some(Ok(_))) => {}
                Ok(other) => panic!("the signaling socket ended: {other:?}"),
            },
            ev = peer.events.recv() => match ev.expect("the peer's loop ended") {
                rtc_peer::PeerEvent::VideoGap => broken = true,
                rtc_peer::PeerEvent::Video(_, idr, rtp_us) => {
                    broken &= !idr;
                    if !broken {
                        tally.frame(Instant::now(), idr, rtp_us);
                    }
                }
                rtc_peer::PeerEvent::Closed(e) => panic!("the peer closed: {e:?}"),
                _ => {}
            },
        }
    }
    tally.finish(end)
}

/// The stall time of a run from its frames' arrivals and delays (`total`: the run's length): an
/// interval between two frames counts as stalled when it is longer than [`STALL`] or when the
/// frame that ends it is [`LATE`]; so does the time after the last frame, if longer than
/// [`STALL`].
fn stalls(run: &mut Run, arrivals: &[(Duration, i64)], total: Duration) {
    let least = arrivals.iter().map(|a| a.1).min().unwrap_or(0);
    let last = run.seconds.len() - 1;
    let mut previous = Duration::ZERO;
    let ends = arrivals.iter().map(|&(at, delay)| (at, delay - least));
    for (at, late_us) in ends.chain(std::iter::once((total, 0))) {
        let second = &mut run.seconds[(at.as_secs() as usize).min(last)];
        let gap = at.saturating_sub(previous);
        let late = Duration::from_micros(late_us.max(0) as u64);
        second.late_ms = second.late_ms.max(late.as_millis() as u64);
        if gap > STALL || late > LATE {
            run.stall += gap;
            second.stall += gap;
        }
        previous = at;
    }
}

/// Prints the two runs side by side, five seconds a row, then the changes.
fn report(mode: &str, fixed: &Run, adaptive: &Run) {
    println!(
        "{mode} mode, shaped link {PROFILE:?} (Mbit/s, s); stream {}x{}@{FPS} at {BITRATE_KBPS} kbit/s",
        SIZE.0, SIZE.1
    );
    println!("   t  link  | fixed:  frames stall_ms      size late_ms | adaptive: frames stall_ms size late_ms");
    let link_at = |t: u64| {
        let mut end = 0;
        PROFILE
            .iter()
            .find(|p| {
                end += p.1;
                t < end
            })
            .map_or(0, |p| p.0)
    };
    for start in (0..fixed.seconds.len().min(adaptive.seconds.len()) - 1).step_by(5) {
        let sum = |r: &Run| {
            let s = &r.seconds[start..(start + 5).min(r.seconds.len())];
            let frames: u32 = s.iter().map(|x| x.frames).sum();
            let stall: Duration = s.iter().map(|x| x.stall).sum();
            let size = s
                .iter()
                .rev()
                .find(|x| x.frames > 0)
                .map_or((0, 0), |x| x.size);
            let late = s.iter().map(|x| x.late_ms).max().unwrap_or(0);
            format!(
                "{frames:>6} {:>8} {:>9} {late:>7}",
                stall.as_millis(),
                format!("{}x{}", size.0, size.1)
            )
        };
        let link = link_at(start as u64);
        println!(
            "{start:>4}s {link:>3}M | {} | {}",
            sum(fixed),
            sum(adaptive)
        );
    }
    println!(
        "total: fixed {} frames, {:.1} s stalled; adaptive {} frames, {:.1} s stalled",
        fixed.frames,
        fixed.stall.as_secs_f64(),
        adaptive.frames,
        adaptive.stall.as_secs_f64()
    );
    for c in &adaptive.changes {
        println!("  {:>5.1} s  {:<10} → {}", c.at, c.reason, c.rung);
    }
    let gaps: Vec<String> = adaptive
        .restream_gaps
        .iter()
        .map(|g| format!("{} ms", g.as_millis()))
        .collect();
    println!(
        "restream gaps (last frame → first keyframe of the new stream): {}",
        gaps.join(", ")
    );
}
