//! The gateway benchmark: figures for WebSocket and WebRTC modes at 1080p60 20 Mbps (not a
//! pass/fail test).
//!
//! `cargo bench -p web-server --bench gateway` (release; builds the release `streamer` first if it
//! is missing). Runs in about 1–3 minutes on a 2-core machine and prints a goal / measured / met
//! table.
//!
//! Layout, chosen so each process's CPU figure is only its own work:
//! - this process: the demo host (replay of pre-encoded 1080p60 frames padded to 20 Mbps, so the
//!   host spends no time encoding) and the WebSocket clients (Helix contract);
//! - a `moongate` child process: the gateway, configured with the demo host as an external
//!   "Wolf" (NVHTTP + its Wolf API over TCP, so browser identities are paired automatically);
//! - one `streamer` per stream, children of `moongate`.
//!
//! WebRTC mode gets its own single-stream window and first-keyframe rounds: the browser is the
//! str0m test peer of the web-server tests (`tests/common/rtc_peer.rs`) negotiating over
//! `/api/host/stream`; its latency is host send → access unit depacketized by the peer.
//!
//! Per-stream accounting: every frame the host produces carries a bench tag (an extra
//! user-data SEI: source id + sequence number) next to the host's send-time SEI
//! (`media::stamp_send_time`, stamped when the producer hands the frame to its sender), so the
//! client knows which host stream a frame came from, how many the host sent in a window, and
//! when it was sent (same machine, same clock).
//!
//! Files: `host_media.rs` (tagged replay media), `procs.rs` (the processes and their `/proc`
//! figures), `clients.rs` (WebSocket and WebRTC clients); this file measures and prints.

use std::collections::{BTreeSet, HashMap};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use demo_host::media::{
    self, h264, pad, sei, AudioFormat, AudioSource, EncodedFrame, MediaError, PatternStyle,
    SourceKind, VideoCodec, VideoFormat, VideoSource,
};
use demo_host::{DemoHost, DemoHostConfig, MediaFactory, WolfApiConfig, WolfApiSocket};
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::time::timeout;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use wire::browser::{formats, Message};

#[path = "../../tests/common/rtc_peer.rs"]
mod rtc_peer;

mod clients;
mod host_media;
mod procs;
mod viewers;

use clients::*;
use host_media::*;
use procs::*;

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

const SECRET: &str = "gateway-bench-secret";
const WIDTH: u32 = 1920;
const HEIGHT: u32 = 1080;
const FPS: u32 = 60;
const BITRATE_KBPS: u32 = 20_000;
/// The single-stream measurement window.
const WINDOW: Duration = Duration::from_secs(6);
/// Each capacity step: settle, then count over this window.
const STEP_SETTLE: Duration = Duration::from_secs(1);
const STEP_WINDOW: Duration = Duration::from_secs(4);
const MAX_STREAMS: usize = 64;
/// Reconnect + new-identity rounds for the first-keyframe figures.
const FIRST_KEY_ROUNDS: usize = 5;
/// Stop stepping up once the run is this old (the whole bench stays within ~3 minutes).
const BUDGET: Duration = Duration::from_secs(150);
/// Identifies the bench tag SEI (16 ASCII bytes, no zeros).
const TAG_UUID: [u8; 16] = *b"moongate-benchtg";

fn now_unix_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

// ---------------------------------------------------------------------------------------------
// Measurements.

fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// A window over a set of streams: CPU of the gateway and the streamers, frames sent/received.
struct WindowResult {
    server_cpu_pct: f64,
    streamer_cpu_pct: Vec<f64>,
    server_rss_kb: u64,
    streamer_rss_kb: Vec<u64>,
    streamer_anon_kb: Vec<u64>,
    latencies_us: Vec<u64>,
    /// Per stream: (sent by the host in the window, received of those).
    counts: Vec<(u64, u64)>,
    host_missed: bool,
    errors: Vec<String>,
}

async fn measure(
    gw: &Gateway,
    media: &BenchMedia,
    clients: &[Client],
    window: Duration,
    tck: f64,
) -> WindowResult {
    let sources: Vec<Option<u32>> = clients.iter().map(Client::source).collect();
    let streamers: Vec<Option<u32>> = clients.iter().map(|c| c.streamer).collect();
    let s0: Vec<u64> = sources
        .iter()
        .map(|s| s.map_or(0, |id| media.sent(id)))
        .collect();
    let server0 = cpu_ticks(gw.pid).unwrap_or(0);
    let st0: Vec<u64> = streamers
        .iter()
        .map(|p| p.and_then(cpu_ticks).unwrap_or(0))
        .collect();
    let t0 = Instant::now();
    tokio::time::sleep(window).await;
    let secs = t0.elapsed().as_secs_f64();
    let s1: Vec<u64> = sources
        .iter()
        .map(|s| s.map_or(0, |id| media.sent(id)))
        .collect();
    let server1 = cpu_ticks(gw.pid).unwrap_or(0);
    let st1: Vec<u64> = streamers
        .iter()
        .map(|p| p.and_then(cpu_ticks).unwrap_or(0))
        .collect();
    let server_rss_kb = rss_kb(gw.pid).unwrap_or(0);
    let streamer_rss_kb = streamers
        .iter()
        .map(|p| p.and_then(rss_kb).unwrap_or(0))
        .collect();
    let streamer_anon_kb = streamers
        .iter()
        .map(|p| p.and_then(anon_kb).unwrap_or(0))
        .collect();
    // Frames sent at the end of the window may still be in flight.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let pct = |a: u64, b: u64| (b.saturating_sub(a)) as f64 / tck / secs * 100.0;
    let mut latencies = Vec::new();
    let mut counts = Vec::new();
    let mut errors = Vec::new();
    let mut host_missed = false;
    for (i, c) in clients.iter().enumerate() {
        let s = c.seen.lock().unwrap();
        if let Some(e) = &s.error {
            errors.push(e.clone());
        }
        let Some(src) = sources[i] else {
            counts.push((0, 0));
            continue;
        };
        let (lo, hi) = (s0[i], s1[i]);
        let mut got = BTreeSet::new();
        for &(id, seq, lat) in &s.frames {
            let seq = u64::from(seq);
            if id == src && seq >= lo && seq < hi {
                got.insert(seq);
                latencies.push(lat);
            }
        }
        let sent = hi - lo;
        if (sent as f64) < f64::from(FPS) * secs * 0.99 {
            host_missed = true;
        }
        counts.push((sent, got.len() as u64));
    }
    latencies.sort_unstable();
    WindowResult {
        server_cpu_pct: pct(server0, server1),
        streamer_cpu_pct: st0.iter().zip(&st1).map(|(&a, &b)| pct(a, b)).collect(),
        server_rss_kb,
        streamer_rss_kb,
        streamer_anon_kb,
        latencies_us: latencies,
        counts,
        host_missed,
        errors,
    }
}

fn worst_drop_pct(counts: &[(u64, u64)]) -> f64 {
    counts
        .iter()
        .map(|&(sent, got)| {
            if sent == 0 {
                100.0
            } else {
                (sent.saturating_sub(got)) as f64 * 100.0 / sent as f64
            }
        })
        .fold(0.0, f64::max)
}

fn mean(v: &[f64]) -> f64 {
    if v.is_empty() {
        0.0
    } else {
        v.iter().sum::<f64>() / v.len() as f64
    }
}

async fn wait_no_streamers(gw: &Gateway, within: Duration) {
    let deadline = Instant::now() + within;
    while !streamer_children(gw.pid).is_empty() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

#[tokio::main]
async fn main() {
    // `cargo bench` passes `--bench`; nothing to parse. The streamer build is not bench time.
    let streamer = streamer_exe();
    let started = Instant::now();
    let tck = clock_ticks_per_sec();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!("gateway bench: WS and WebRTC modes, {WIDTH}x{HEIGHT}@{FPS} {BITRATE_KBPS} kbps, demo host replay (filled to bitrate), {cores} cores");

    let media = Arc::new(BenchMedia::default());
    let host = DemoHost::start(DemoHostConfig {
        source_kind: SourceKind::Replay,
        media: Arc::clone(&media) as Arc<dyn MediaFactory>,
        wolf_api: WolfApiConfig {
            socket: WolfApiSocket::Off,
            tcp: Some(SocketAddr::from(([127, 0, 0, 1], 0))),
            ..WolfApiConfig::default()
        },
        ..DemoHostConfig::default()
    })
    .await
    .expect("demo host");
    // Encode the replay clip now (about a second), not during a stream's start.
    let t = Instant::now();
    let fmt = VideoFormat {
        codec: VideoCodec::H264,
        width: WIDTH,
        height: HEIGHT,
        fps: FPS,
        bitrate_kbps: BITRATE_KBPS,
    };
    media
        .clip(
            fmt,
            PatternStyle {
                label: "bench".into(),
                color: [40, 90, 160],
            },
        )
        .expect("replay clip");
    println!("replay clip encoded in {} ms", t.elapsed().as_millis());
    let mut gw = start_gateway(&host, &streamer).await;
    println!("moongate pid {} on {}", gw.pid, gw.addr);

    // 1. A stream with a new client identity (paired on the way), then the single-stream window.
    let mut new_id_first_key = Vec::new();
    let mut paired_first_key = Vec::new();
    let mut close_to_exit = Vec::new();
    let a = open_client(&gw, "bench-a", "bench-client-a")
        .await
        .expect("first stream");
    new_id_first_key.push(ms(a.first_keyframe_after_open().unwrap_or_default()));
    tokio::time::sleep(Duration::from_secs(1)).await;
    let single = measure(&gw, &media, std::slice::from_ref(&a), WINDOW, tck).await;
    let p50 = percentile(&single.latencies_us, 0.50);
    let p99 = percentile(&single.latencies_us, 0.99);
    let pmax = single.latencies_us.last().copied().unwrap_or(0);
    println!(
        "1 stream, {:.0} s: latency p50 {:.3} ms, p99 {:.3} ms, max {:.3} ms over {} frames; sent/received {:?}",
        WINDOW.as_secs_f64(),
        p50 as f64 / 1000.0,
        p99 as f64 / 1000.0,
        pmax as f64 / 1000.0,
        single.latencies_us.len(),
        single.counts
    );
    println!(
        "  CPU: moongate {:.2} % of a core, streamer {:.2} %; RSS: moongate {} kB, streamer {} kB ({} kB of it private)",
        single.server_cpu_pct,
        mean(&single.streamer_cpu_pct),
        single.server_rss_kb,
        single.streamer_rss_kb.first().copied().unwrap_or(0),
        single.streamer_anon_kb.first().copied().unwrap_or(0)
    );
    if let Some(d) = a.close().await {
        close_to_exit.push(ms(d));
    }
    wait_no_streamers(&gw, Duration::from_secs(5)).await;

    // 2. First keyframe: reconnects of a paired identity, and more new identities.
    for i in 0..FIRST_KEY_ROUNDS {
        let c = open_client(&gw, "bench-a", "bench-client-a")
            .await
            .expect("reconnect");
        paired_first_key.push(ms(c.first_keyframe_after_open().unwrap_or_default()));
        if let Some(d) = c.close().await {
            close_to_exit.push(ms(d));
        }
        wait_no_streamers(&gw, Duration::from_secs(5)).await;
        let c = open_client(&gw, &format!("bench-n{i}"), &format!("bench-client-n{i}"))
            .await
            .expect("new identity");
        new_id_first_key.push(ms(c.first_keyframe_after_open().unwrap_or_default()));
        if let Some(d) = c.close().await {
            close_to_exit.push(ms(d));
        }
        wait_no_streamers(&gw, Duration::from_secs(5)).await;
    }
    println!("WS open → first keyframe, paired identity: {paired_first_key:.1?} ms");
    println!("WS open → first keyframe, new identity:    {new_id_first_key:.1?} ms (the first is the run's cold start)");
    println!("close → streamer exit: {close_to_exit:.1?} ms");

    // 2b. WebRTC mode: a single-stream window, then first-keyframe rounds (paired identity).
    let r = open_rtc_client(&gw, "bench-rtc", "bench-client-rtc")
        .await
        .expect("WebRTC stream");
    let mut rtc_first_key = vec![ms(r.first_keyframe_after_open().unwrap_or_default())];
    tokio::time::sleep(Duration::from_secs(1)).await;
    let rtc = measure(&gw, &media, std::slice::from_ref(&r), WINDOW, tck).await;
    let rtc_p50 = percentile(&rtc.latencies_us, 0.50);
    let rtc_p99 = percentile(&rtc.latencies_us, 0.99);
    println!(
        "WebRTC 1 stream, {:.0} s: latency p50 {:.3} ms, p99 {:.3} ms over {} frames; sent/received {:?}; errors {:?}",
        WINDOW.as_secs_f64(),
        rtc_p50 as f64 / 1000.0,
        rtc_p99 as f64 / 1000.0,
        rtc.latencies_us.len(),
        rtc.counts,
        rtc.errors
    );
    println!(
        "  CPU: moongate {:.2} % of a core, streamer {:.2} %; RSS: moongate {} kB, streamer {} kB ({} kB of it private)",
        rtc.server_cpu_pct,
        mean(&rtc.streamer_cpu_pct),
        rtc.server_rss_kb,
        rtc.streamer_rss_kb.first().copied().unwrap_or(0),
        rtc.streamer_anon_kb.first().copied().unwrap_or(0)
    );
    let mut rtc_close_to_exit = Vec::new();
    if let Some(d) = r.close().await {
        rtc_close_to_exit.push(ms(d));
    }
    wait_no_streamers(&gw, Duration::from_secs(5)).await;
    for _ in 0..FIRST_KEY_ROUNDS {
        let c = open_rtc_client(&gw, "bench-rtc", "bench-client-rtc")
            .await
            .expect("WebRTC reconnect");
        rtc_first_key.push(ms(c.first_keyframe_after_open().unwrap_or_default()));
        if let Some(d) = c.close().await {
            rtc_close_to_exit.push(ms(d));
        }
        wait_no_streamers(&gw, Duration::from_secs(5)).await;
    }
    println!("WebRTC signaling open → first keyframe: {rtc_first_key:.1?} ms");
    println!("WebRTC close → streamer exit: {rtc_close_to_exit:.1?} ms");

    // 3. Capacity: 1, 2, 4, … streams until one drops ≥ 1 % or the host misses frames.
    let mut best = 0usize;
    let mut best_window: Option<WindowResult> = None;
    let mut stop_reason = String::from("reached the step limit");
    let mut n = 1usize;
    while n <= MAX_STREAMS {
        if started.elapsed() > BUDGET {
            stop_reason = format!("time budget ({} s) used", BUDGET.as_secs());
            break;
        }
        let mut clients = Vec::new();
        let mut open_error = None;
        for i in 0..n {
            match open_client(&gw, &format!("cap-{i}"), &format!("bench-cap-{i}")).await {
                Ok(c) => clients.push(c),
                Err(e) => {
                    open_error = Some(format!("stream {} of {n} did not start: {e}", i + 1));
                    break;
                }
            }
        }
        let result = if open_error.is_none() {
            tokio::time::sleep(STEP_SETTLE).await;
            Some(measure(&gw, &media, &clients, STEP_WINDOW, tck).await)
        } else {
            None
        };
        for c in clients {
            c.close().await;
        }
        wait_no_streamers(&gw, Duration::from_secs(10)).await;
        let Some(r) = result else {
            stop_reason = open_error.unwrap_or_default();
            println!("{n} streams: {stop_reason}");
            break;
        };
        let drop = worst_drop_pct(&r.counts);
        let sent: u64 = r.counts.iter().map(|c| c.0).sum();
        let got: u64 = r.counts.iter().map(|c| c.1).sum();
        println!(
            "{n:>2} streams: worst stream dropped {drop:.2} %, total {got}/{sent} frames; moongate {:.1} % ({:.2} %/stream), streamers {:.2} % each, host sent ≥ 99 % of {FPS} fps: {}, latency p50 {:.2} ms p99 {:.2} ms",
            r.server_cpu_pct,
            r.server_cpu_pct / n as f64,
            mean(&r.streamer_cpu_pct),
            !r.host_missed,
            percentile(&r.latencies_us, 0.5) as f64 / 1000.0,
            percentile(&r.latencies_us, 0.99) as f64 / 1000.0,
        );
        if !r.errors.is_empty() {
            stop_reason = format!("{n} streams: stream error: {}", r.errors[0]);
            break;
        }
        if drop >= 1.0 {
            stop_reason = format!("{n} streams: a stream dropped {drop:.1} %");
            break;
        }
        if r.host_missed {
            stop_reason = format!("{n} streams: the host (same machine) could not send {FPS} fps");
            break;
        }
        best = n;
        best_window = Some(r);
        n *= 2;
    }
    println!("capacity stopped: {stop_reason}");

    // 4. Several viewers of one stream.
    let viewer_steps = viewers::viewers_section(&gw, &media, tck)
        .await
        .unwrap_or_default();

    // Summary.
    let pk = median(paired_first_key.clone());
    // The very first stream of the run is cold (first streamer start, first pairing); it is
    // printed above and left out of the median.
    let nk = median(new_id_first_key[1..].to_vec());
    let cte = close_to_exit.iter().copied().fold(0.0, f64::max);
    let st_cpu = mean(&single.streamer_cpu_pct);
    let st_rss_mb = single.streamer_rss_kb.first().copied().unwrap_or(0) as f64 / 1024.0;
    let st_anon_mb = single.streamer_anon_kb.first().copied().unwrap_or(0) as f64 / 1024.0;
    let mut rows: Vec<(String, String, String, bool)> = vec![
        (
            "latency host→WS p50".into(),
            "≤ 0.3 ms".into(),
            format!("{:.3} ms", p50 as f64 / 1000.0),
            p50 <= 300,
        ),
        (
            "latency host→WS p99".into(),
            "≤ 1 ms".into(),
            format!("{:.3} ms", p99 as f64 / 1000.0),
            p99 <= 1000,
        ),
        (
            "CPU per stream, moongate".into(),
            "≤ 2 % of a core".into(),
            format!("{:.2} %", single.server_cpu_pct),
            single.server_cpu_pct <= 2.0,
        ),
        (
            "CPU per stream, streamer".into(),
            "≤ 2 % of a core".into(),
            format!("{st_cpu:.2} %"),
            st_cpu <= 2.0,
        ),
        (
            "RSS per streamer".into(),
            "≤ 12 MB".into(),
            format!("{st_rss_mb:.1} MB ({st_anon_mb:.1} MB private)"),
            st_rss_mb <= 12.0,
        ),
        (
            "RSS moongate (1 stream)".into(),
            "–".into(),
            format!("{:.1} MB", single.server_rss_kb as f64 / 1024.0),
            true,
        ),
        (
            "first keyframe, paired id (median)".into(),
            "≤ 250 ms".into(),
            format!("{pk:.1} ms"),
            pk <= 250.0,
        ),
        (
            "first keyframe, new id (median, warm)".into(),
            "≤ 250 ms".into(),
            format!("{nk:.1} ms"),
            nk <= 250.0,
        ),
        (
            "close → streamer exit (worst)".into(),
            "≤ 100 ms".into(),
            format!("{cte:.1} ms"),
            cte <= 100.0 && close_to_exit.len() == 1 + 2 * FIRST_KEY_ROUNDS,
        ),
        (
            "concurrent streams < 1 % dropped".into(),
            "≥ 60".into(),
            format!("{best}"),
            best >= 60,
        ),
    ];
    let rtc_cpu = mean(&rtc.streamer_cpu_pct);
    let rtc_fk = median(rtc_first_key[1..].to_vec());
    let rtc_cte = rtc_close_to_exit.iter().copied().fold(0.0, f64::max);
    rows.extend([
        (
            "WebRTC latency host→peer p50 (added vs WS)".into(),
            "–".into(),
            format!(
                "{:.3} ms ({:+.3} ms)",
                rtc_p50 as f64 / 1000.0,
                (rtc_p50 as f64 - p50 as f64) / 1000.0
            ),
            true,
        ),
        (
            "WebRTC latency host→peer p99".into(),
            "–".into(),
            format!("{:.3} ms", rtc_p99 as f64 / 1000.0),
            true,
        ),
        (
            "WebRTC frames received / sent (1 stream)".into(),
            "≥ 99 %".into(),
            format!("{:?}", rtc.counts),
            worst_drop_pct(&rtc.counts) < 1.0,
        ),
        (
            "WebRTC CPU per stream (moongate / streamer)".into(),
            "–".into(),
            format!("{:.2} % / {rtc_cpu:.2} %", rtc.server_cpu_pct),
            true,
        ),
        (
            "WebRTC RSS per streamer".into(),
            "–".into(),
            format!(
                "{:.1} MB ({:.1} MB private)",
                rtc.streamer_rss_kb.first().copied().unwrap_or(0) as f64 / 1024.0,
                rtc.streamer_anon_kb.first().copied().unwrap_or(0) as f64 / 1024.0
            ),
            true,
        ),
        (
            "WebRTC first keyframe (median, warm)".into(),
            "–".into(),
            format!("{rtc_fk:.1} ms"),
            true,
        ),
        (
            "WebRTC close → streamer exit (worst)".into(),
            "≤ 100 ms".into(),
            format!("{rtc_cte:.1} ms"),
            rtc_cte <= 100.0 && rtc_close_to_exit.len() == 1 + FIRST_KEY_ROUNDS,
        ),
    ]);
    if let Some(r) = &best_window {
        rows.push((
            format!("CPU per stream at {best} streams (moongate / streamer)"),
            "≤ 2 %".into(),
            format!(
                "{:.2} % / {:.2} %",
                r.server_cpu_pct / best as f64,
                mean(&r.streamer_cpu_pct)
            ),
            r.server_cpu_pct / best as f64 <= 2.0 && mean(&r.streamer_cpu_pct) <= 2.0,
        ));
    }
    rows.extend(viewers::summary_rows(&viewer_steps));
    println!();
    println!("| metric | goal | measured | met |");
    println!("|---|---|---|---|");
    for (name, goal, got, met) in &rows {
        let met = if goal == "–" {
            "–"
        } else if *met {
            "yes"
        } else {
            "no"
        };
        println!("| {name} | {goal} | {got} | {met} |");
    }
    println!(
        "\ntotal bench time {:.0} s",
        started.elapsed().as_secs_f64()
    );

    let _ = gw.child.start_kill();
    let _ = timeout(Duration::from_secs(5), gw.child.wait()).await;
    drop(host);
}
