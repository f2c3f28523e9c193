//! Quality that adapts (issue 15, docs/adaptive-quality.md), measured on a shaped link.
//!
//! Two gateways, each with its own Wolf-strict demo host whose video is padded to the bitrate
//! (a CBR host's volume), stream 1280×720 at 30 fps and 12 Mbit/s to a WebSocket client over a
//! loopback link shaped to 20, then 5, then 20 Mbit/s again (`tc` htb on the gateway's port, in a
//! network namespace of the test's own). One client asks for adaptation, the other does not. Per
//! second, both print the frames delivered, the stall time (gaps of more than 100 ms without a
//! frame) and the size streamed; then the rung changes and the restream gaps.
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

use std::process::Command;
use std::time::{Duration, Instant};

use common::*;
use futures_util::StreamExt;
use tokio::time::timeout;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use wire::browser::Message;

/// Set in the environment of the run inside the namespace.
const INSIDE: &str = "MOONGATE_ADAPT_IN_NETNS";
const TEST: &str = "adaptive_quality_beats_a_fixed_rung_on_a_shaped_link";

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
    if std::env::var_os(INSIDE).is_some() {
        return tokio::runtime::Builder::new_multi_thread()
            .worker_threads(4)
            .enable_all()
            .build()
            .unwrap()
            .block_on(shaped_runs());
    }
    let exe = std::env::current_exe().unwrap();
    let status = Command::new("unshare")
        .arg("-rn")
        .arg(&exe)
        .args(["--exact", TEST, "--nocapture", "--test-threads=1"])
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

async fn shaped_runs() {
    // 1500-byte packets (loopback's 64 KiB would make htb's bursts coarse), then a root htb whose
    // default class is unlimited: the host's UDP media to the streamer is never shaped.
    sh("ip link set lo up");
    sh("ip link set lo mtu 1500");
    sh("tc qdisc add dev lo root handle 1: htb default 99 r2q 100");
    sh("tc class add dev lo parent 1: classid 1:99 htb rate 10gbit");
    let fixed = gateway("fixed").await;
    let adaptive = gateway("adaptive").await;
    let classes = [(10, &fixed), (20, &adaptive)];
    for (class, gw) in classes {
        shape(class, PROFILE[0].0, "add");
        // A queue of 240 ms at 5 Mbit/s: a router's, not loopback's 1000 packets.
        sh(&format!(
            "tc qdisc add dev lo parent 1:{class} bfifo limit 150000"
        ));
        sh(&format!(
            "tc filter add dev lo parent 1: protocol ip prio 1 u32 match ip sport {} 0xffff flowid 1:{class}",
            gw.addr.port()
        ));
    }
    let mut fixed_ws = open(&fixed, false).await;
    let mut adaptive_ws = open(&adaptive, true).await;
    let total = Duration::from_secs(PROFILE.iter().map(|p| p.1).sum());
    let t0 = Instant::now();
    let shaper = tokio::spawn(async move {
        let mut at = t0;
        for (mbit, secs) in PROFILE {
            tokio::time::sleep_until(at.into()).await;
            for class in [10, 20] {
                shape(class, mbit, "change");
            }
            at += Duration::from_secs(secs);
        }
    });
    let (f, a) = tokio::join!(
        watch(&mut fixed_ws, t0, total),
        watch(&mut adaptive_ws, t0, total)
    );
    shaper.await.unwrap();
    report(&f, &a);

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

    // Nothing is left running: the restreams ended their host streams.
    for (gw, mut ws) in [(&fixed, fixed_ws), (&adaptive, adaptive_ws)] {
        close_until_registry_empty(gw, &mut ws).await;
        assert!(eventually(Duration::from_secs(10), || gw.host.sessions().is_empty()).await);
    }
    assert!(eventually(Duration::from_secs(10), || streamer_children().is_empty()).await);
    fixed.stop().await;
    adaptive.stop().await;
}

async fn gateway(name: &str) -> Gateway {
    test_log();
    let (config, dir) = loopback_config();
    padded_host_gateway(config, dir, name).await
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

/// Reads the stream until `t0 + total`: video frames, StreamInits (new sizes) and the gateway's
/// Quality notices.
async fn watch(ws: &mut Ws, t0: Instant, total: Duration) -> Run {
    let end = t0 + total;
    let mut run = Run {
        seconds: vec![Second::default(); total.as_secs() as usize + 1],
        ..Run::default()
    };
    let mut size = (SIZE.0 as u16, SIZE.1 as u16);
    let mut last_frame = t0;
    let mut restream_from = None;
    // Each frame's delay on the way, up to a constant: arrival minus its timestamp (the
    // streamer's clock, which follows the host's frames); the least of the run is the baseline.
    // Per frame: its arrival since `t0` and its delay on the way up to a constant (arrival
    // minus its timestamp, the streamer's clock that follows the host's frames).
    let mut arrivals: Vec<(Duration, i64)> = Vec::new();
    loop {
        let left = end.saturating_duration_since(Instant::now());
        let msg = match timeout(left, ws.next()).await {
            Err(_) => break,
            Ok(Some(Ok(msg))) => msg,
            Ok(other) => panic!("the stream socket ended: {other:?}"),
        };
        let now = Instant::now();
        let second =
            (now.saturating_duration_since(t0).as_secs() as usize).min(run.seconds.len() - 1);
        match msg {
            WsMessage::Binary(b) => match Message::decode(&b) {
                Ok(Message::VideoFrame(f)) => {
                    last_frame = now;
                    run.frames += 1;
                    run.seconds[second].frames += 1;
                    run.seconds[second].size = size;
                    let arrival = now.saturating_duration_since(t0);
                    arrivals.push((arrival, arrival.as_micros() as i64 - f.pts_us as i64));
                    if f.keyframe {
                        if let Some(from) = restream_from.take() {
                            run.restream_gaps.push(now.saturating_duration_since(from));
                        }
                    }
                }
                Ok(Message::StreamInit(si)) => {
                    size = (si.width, si.height);
                    restream_from = Some(last_frame);
                }
                _ => {}
            },
            WsMessage::Text(t) => {
                let json: serde_json::Value = serde_json::from_str(t.as_str()).unwrap();
                assert!(json.get("error").is_none(), "server error: {t}");
                if let Some(q) = json.get("Quality") {
                    run.changes.push(Change {
                        at: now.saturating_duration_since(t0).as_secs_f64(),
                        reason: q["reason"].as_str().unwrap_or_default().to_string(),
                        rung: format!(
                            "{}x{}@{} {} kbit/s (rung {} of {})",
                            q["width"],
                            q["height"],
                            q["fps"],
                            q["bitrate_kbps"],
                            q["rung"],
                            q["rungs"]
                        ),
                    });
                }
            }
            WsMessage::Close(c) => panic!("closed: {c:?}"),
            _ => {}
        }
    }
    stalls(&mut run, &arrivals, end.saturating_duration_since(t0));
    run
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
fn report(fixed: &Run, adaptive: &Run) {
    println!(
        "shaped link {PROFILE:?} (Mbit/s, s); stream {}x{}@{FPS} at {BITRATE_KBPS} kbit/s",
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
