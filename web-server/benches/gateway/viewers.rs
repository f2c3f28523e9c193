//! Several viewers of one stream (docs/browser-protocol.md §8): one 1080p60 stream watched by 1
//! (its owner alone), 4 and 16 browser connections. The gateway copies each message into every
//! member's queue, so its CPU grows with the viewers while the streamer's (one host stream)
//! should not; the latency printed is host send → receipt, over every member's frames, and what
//! each step adds is read against the 1-viewer line.

use super::*;

/// The member counts measured.
const STEPS: [usize; 3] = [1, 4, 16];

/// One step's figures.
pub(crate) struct ViewerStep {
    pub(crate) members: usize,
    pub(crate) result: WindowResult,
}

/// Opens one stream, adds viewers up to each step and measures a window at each; every
/// connection is closed at the end. `None` if the owner's stream did not start.
pub(crate) async fn viewers_section(
    gw: &Gateway,
    media: &BenchMedia,
    tck: f64,
) -> Option<Vec<ViewerStep>> {
    let owner = match open_client(gw, "bench-share", "bench-client-share").await {
        Ok(c) => c,
        Err(e) => {
            println!("viewers: the owner's stream did not start: {e}");
            return None;
        }
    };
    let share = owner.seen.lock().unwrap().share.clone();
    let Some((stream, token)) = share else {
        println!("viewers: the owner got no share (stream id, join token)");
        owner.close().await;
        return None;
    };
    let streamer = owner.streamer;
    let mut members = vec![owner];
    let mut steps = Vec::new();
    for target in STEPS {
        while members.len() < target {
            match open_viewer(gw, &stream, &token).await {
                Ok(mut v) => {
                    // The viewer's CPU is the stream's one streamer (counted once, by the owner).
                    v.streamer = None;
                    members.push(v);
                }
                Err(e) => {
                    println!("viewers: viewer {} did not start: {e}", members.len() + 1);
                    break;
                }
            }
        }
        if members.len() < target {
            break;
        }
        tokio::time::sleep(STEP_SETTLE).await;
        let result = measure(gw, media, &members, STEP_WINDOW, tck).await;
        let drop = worst_drop_pct(&result.counts);
        println!(
            "{target:>2} viewers of one stream: latency p50 {:.2} ms, p99 {:.2} ms over {} frames; worst viewer dropped {drop:.2} %; moongate {:.1} % of a core, the one streamer {:.2} %",
            percentile(&result.latencies_us, 0.5) as f64 / 1000.0,
            percentile(&result.latencies_us, 0.99) as f64 / 1000.0,
            result.latencies_us.len(),
            result.server_cpu_pct,
            result.streamer_cpu_pct.first().copied().unwrap_or(0.0),
        );
        steps.push(ViewerStep {
            members: target,
            result,
        });
    }
    for m in members {
        m.close().await;
    }
    if streamer.is_some() {
        wait_no_streamers(gw, Duration::from_secs(10)).await;
    }
    Some(steps)
}

/// The summary rows: what 16 viewers add to one stream's p99 latency and the gateway's CPU.
pub(crate) fn summary_rows(steps: &[ViewerStep]) -> Vec<(String, String, String, bool)> {
    let (Some(one), Some(most)) = (steps.first(), steps.last()) else {
        return Vec::new();
    };
    if most.members == one.members {
        return Vec::new();
    }
    let p99 = |s: &ViewerStep| percentile(&s.result.latencies_us, 0.99) as f64 / 1000.0;
    let added = p99(most) - p99(one);
    let per_viewer = (most.result.server_cpu_pct - one.result.server_cpu_pct)
        / (most.members - one.members) as f64;
    let drop = worst_drop_pct(&most.result.counts);
    vec![
        (
            format!(
                "{} viewers of one stream: p99 latency added to 1 viewer's",
                most.members
            ),
            "≤ 2 ms".into(),
            format!("{added:+.2} ms ({:.2} → {:.2} ms)", p99(one), p99(most)),
            added <= 2.0,
        ),
        (
            format!(
                "{} viewers: moongate CPU per added viewer, worst viewer's drops",
                most.members
            ),
            "≤ 2 %, < 1 %".into(),
            format!("{per_viewer:.2} %, {drop:.2} %"),
            per_viewer <= 2.0 && drop < 1.0,
        ),
    ]
}
