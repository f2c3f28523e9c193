//! `/metrics` end to end: the exposition parses with a Prometheus text-format parser
//! (`prometheus-parse`), every line is a comment or a sample, and the counters move as a real
//! stream starts, relays media and ends.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::*;
use futures_util::{SinkExt, StreamExt};
use prometheus_parse::{LineInfo, Scrape, Value};
use tokio_tungstenite::tungstenite::Message as WsMessage;

/// Scrapes `/metrics` (admin credential), checks the format, returns `name{labels}` → value
/// (histograms: `name_count`).
async fn scrape(gw: &Gateway) -> HashMap<String, f64> {
    let r = http(gw.addr, "GET", "/metrics", Some(ADMIN_SECRET), None).await;
    assert_eq!(r.status, 200);
    assert_eq!(
        r.content_type.as_deref(),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    for line in r.body.lines() {
        let ok = matches!(
            LineInfo::parse(line),
            LineInfo::Doc { .. }
                | LineInfo::Type { .. }
                | LineInfo::Sample { .. }
                | LineInfo::Empty
        );
        assert!(ok, "not a Prometheus text line: {line:?}");
    }
    let scrape = Scrape::parse(r.body.lines().map(|l| Ok(l.to_string()))).expect("parses");
    let mut out = HashMap::new();
    for s in scrape.samples {
        let mut labels: Vec<String> = s.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
        labels.sort();
        let key = if labels.is_empty() {
            s.metric.clone()
        } else {
            format!("{}{{{}}}", s.metric, labels.join(","))
        };
        match s.value {
            Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => {
                out.insert(key, v);
            }
            Value::Histogram(buckets) => {
                let count = buckets
                    .iter()
                    .find(|b| b.less_than.is_infinite())
                    .map(|b| b.count)
                    .unwrap_or(0.0);
                out.insert(format!("{key}_count"), count);
            }
            Value::Summary(_) => {}
        }
    }
    out
}

fn get(m: &HashMap<String, f64>, key: &str) -> f64 {
    *m.get(key)
        .unwrap_or_else(|| panic!("{key} missing; have {:?}", m.keys().collect::<Vec<_>>()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_parse_and_counters_move_as_streams_start_and_end() {
    let _serial = SERIAL.lock().await;
    let gw = admin_gateway().await;
    let before = scrape(&gw).await;
    for key in [
        "moongate_streams{mode=websocket}",
        "moongate_streams{mode=webrtc}",
        "moongate_stream_starts_total{mode=websocket}",
        "moongate_stream_supersedes_total",
        "moongate_streamer_crashes_total",
        "moongate_video_frames_relayed_total",
        "moongate_video_frames_dropped_total",
        "moongate_idr_requests_total",
        "moongate_send_queue_delay_seconds_count",
        "moongate_first_frame_seconds_count",
        "moongate_cert_cache_size",
        "moongate_cert_cache_evictions_total",
    ] {
        get(&before, key);
    }
    assert_eq!(get(&before, "moongate_streams{mode=websocket}"), 0.0);
    assert_eq!(
        get(&before, "moongate_stream_starts_total{mode=websocket}"),
        0.0
    );

    // A stream: live gauge 1, one start, frames relayed, first-frame time observed.
    let mut ws = connect(&gw, "ses_m", "client_m", 640, 360, 30).await;
    handshake(&mut ws).await;
    let pump = tokio::spawn(async move {
        while let Some(Ok(m)) = ws.next().await {
            if matches!(m, WsMessage::Close(_)) {
                break;
            }
        }
    });
    let during = poll_until(Duration::from_secs(6), || async {
        let m = scrape(&gw).await;
        (m.get("moongate_video_frames_relayed_total").copied() > Some(0.0)
            && m.get("moongate_send_queue_delay_seconds_count").copied() > Some(0.0))
        .then_some(m)
    })
    .await
    .expect("no frames counted within 6 s");
    println!(
        "during: streams {} starts {} frames {} video bytes {} first-frame count {}",
        get(&during, "moongate_streams{mode=websocket}"),
        get(&during, "moongate_stream_starts_total{mode=websocket}"),
        get(&during, "moongate_video_frames_relayed_total"),
        get(&during, "moongate_relayed_bytes_total{kind=video}"),
        get(&during, "moongate_first_frame_seconds_count"),
    );
    assert_eq!(get(&during, "moongate_streams{mode=websocket}"), 1.0);
    assert_eq!(
        get(&during, "moongate_stream_starts_total{mode=websocket}"),
        1.0
    );
    assert!(get(&during, "moongate_relayed_bytes_total{kind=video}") > 0.0);
    assert_eq!(get(&during, "moongate_first_frame_seconds_count"), 1.0);
    assert_eq!(get(&during, "moongate_cert_cache_size"), 1.0);

    // Superseded by the same key: one supersede, one end by that reason, still one live.
    let mut second = connect(&gw, "ses_m", "client_m", 640, 360, 30).await;
    handshake(&mut second).await;
    // The first socket was closed by the server (4000); its reader ends.
    tokio::time::timeout(Duration::from_secs(10), pump)
        .await
        .expect("the superseded socket was not closed")
        .unwrap();
    let after_sup = scrape(&gw).await;
    assert_eq!(get(&after_sup, "moongate_stream_supersedes_total"), 1.0);
    assert_eq!(
        get(&after_sup, "moongate_stream_ends_total{reason=superseded}"),
        1.0
    );
    assert_eq!(get(&after_sup, "moongate_streams{mode=websocket}"), 1.0);
    assert_eq!(
        get(&after_sup, "moongate_stream_starts_total{mode=websocket}"),
        2.0
    );

    // The browser closes: the gauge drops to 0 and the end is counted by reason.
    second.send(WsMessage::Close(None)).await.unwrap();
    assert!(gw.registry_empty(Duration::from_secs(10)).await);
    let after = scrape(&gw).await;
    assert_eq!(get(&after, "moongate_streams{mode=websocket}"), 0.0);
    assert_eq!(
        get(&after, "moongate_stream_ends_total{reason=browser_closed}"),
        1.0
    );
    assert_eq!(get(&after, "moongate_streamer_crashes_total"), 0.0);
    assert!(
        get(&after, "moongate_video_frames_relayed_total")
            >= get(&during, "moongate_video_frames_relayed_total")
    );
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_streamer_counts_as_a_crash() {
    let _serial = SERIAL.lock().await;
    let gw = admin_gateway().await;
    let mut ws = connect(&gw, "ses_crash", "client_crash", 640, 360, 30).await;
    handshake(&mut ws).await;
    kill_the_streamer();
    let (close, _) = read_until_close(&mut ws, Duration::from_secs(10)).await;
    assert_eq!(close.map(|c| c.0), Some(1011));
    assert!(gw.registry_empty(Duration::from_secs(10)).await);
    let m = scrape(&gw).await;
    assert_eq!(get(&m, "moongate_streamer_crashes_total"), 1.0);
    assert_eq!(
        get(&m, "moongate_stream_ends_total{reason=streamer_crash}"),
        1.0
    );
    assert_eq!(get(&m, "moongate_streams{mode=websocket}"), 0.0);
    // Its host session waits out the host's ENet timeout before the gateway's /cancel.
    assert_eq!(get(&m, "moongate_host_cleanups_pending"), 1.0);
    gw.stop().await;
}
