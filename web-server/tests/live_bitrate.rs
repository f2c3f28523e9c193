//! A quality rung that changes only the bitrate, on a host that takes a new bitrate while it
//! streams (Foundation Sunshine's dynamic parameter change, `0x5506`; docs/adaptive-quality.md):
//! the streamer asks the host's encoder instead of restreaming, so the browser keeps its stream,
//! its decoder and its host session. A rung of another size still restreams.
//!
//! The host is the Wolf-strict demo host with Foundation Sunshine's live bitrate on top
//! (`DemoHostConfig::live_bitrate`: `SunshineVersion` in `/serverinfo`, the encoder re-targeted
//! on `0x5506`), its frames padded to the bitrate so that the bitrate in force shows in the bytes
//! that reach the browser.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use tokio::time::timeout;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use wire::browser::Message;

const SESSION: &str = "foundation";
const CLIENT: &str = "c1";
const BITRATE_KBPS: u32 = 12_000;
/// The share of a bitrate that is video: the rest is FEC (20 %, the client's ANNOUNCE and the
/// host's encoder alike).
fn video_share(kbps: u32) -> u32 {
    kbps * 80 / 100
}
const FPS: u32 = 30;

/// What the browser saw in a window of the stream.
#[derive(Debug, Default)]
struct Seen {
    /// Video frame sizes, in order.
    sizes: Vec<usize>,
    /// The longest time between two video frames.
    longest_gap: Duration,
    /// StreamInit messages (a new host stream).
    inits: Vec<(u16, u16)>,
    /// `Quality` notices.
    notices: Vec<serde_json::Value>,
}

impl Seen {
    /// The median frame size in kbit/s at [`FPS`].
    fn median_kbps(&self) -> u32 {
        let mut sizes = self.sizes.clone();
        sizes.sort_unstable();
        let median = sizes.get(sizes.len() / 2).copied().unwrap_or(0);
        (median as u64 * 8 * u64::from(FPS) / 1000) as u32
    }
}

/// Reads the stream for `window`.
async fn read_for(ws: &mut Ws, window: Duration) -> Seen {
    let end = Instant::now() + window;
    let mut seen = Seen::default();
    let mut last = Instant::now();
    while let Some(msg) = next_until(ws, end).await {
        match msg {
            WsMessage::Binary(b) => match Message::decode(&b) {
                Ok(Message::VideoFrame(f)) => {
                    let now = Instant::now();
                    seen.longest_gap = seen.longest_gap.max(now - last);
                    last = now;
                    seen.sizes.push(f.data.len());
                }
                Ok(Message::StreamInit(si)) => seen.inits.push((si.width, si.height)),
                _ => {}
            },
            WsMessage::Text(t) => {
                let json: serde_json::Value = serde_json::from_str(t.as_str()).unwrap();
                assert!(json.get("error").is_none(), "server error: {t}");
                if let Some(q) = json.get("Quality") {
                    seen.notices.push(q.clone());
                }
            }
            _ => {}
        }
    }
    seen
}

/// Asks for rung `rung` through the admin route (204).
async fn force_rung(gw: &Gateway, rung: usize) {
    let key = format!("{SESSION}--{CLIENT}");
    let path = format!("/api/admin/streams/{}/quality", key_path_segment(&key));
    let r = http(
        gw.addr,
        "POST",
        &path,
        Some(ADMIN_SECRET),
        Some(serde_json::json!({ "rung": rung })),
    )
    .await;
    assert_eq!(r.status, 204, "POST {path}: {}", r.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bitrate_only_rung_retargets_the_host_encoder_live_and_a_smaller_size_restreams() {
    test_log();
    timeout(Duration::from_secs(120), async {
        let (mut config, dir) = loopback_config();
        config.admin_credentials = Some(ADMIN_SECRET.into());
        let host = demo_host::DemoHostConfig {
            media: Arc::new(demo_host::RealMedia::padded()),
            live_bitrate: true,
            ..demo_host::DemoHostConfig::default()
        };
        let gw = serve_own_host_gateway(config, dir, host, "foundation").await;
        let mut init: serde_json::Value =
            serde_json::from_str(&init_json(SESSION, CLIENT, 1280, 720, FPS)).unwrap();
        init["bitrate"] = BITRATE_KBPS.into();
        // The moongate client protocol, which is told of quality changes.
        init["protocol_version"] = 2.into();
        init["adaptive"] = true.into();
        let mut ws = connect_init_only(&gw.addr.to_string(), "", init.to_string()).await;
        first_keyframe(&mut ws, Instant::now()).await;
        let before = read_for(&mut ws, Duration::from_secs(2)).await;
        let sessions = gw.host.sessions();
        assert_eq!(sessions.len(), 1, "{sessions:?}");
        let session = sessions[0].session_id;
        assert_eq!(sessions[0].bitrate_kbps, video_share(BITRATE_KBPS));

        // Rung 1 is the same picture at a lower bitrate: asked of the host's encoder.
        // Watched while the browser reads: when does the host's encoder change?
        let host = Arc::clone(&gw.host);
        let t = Instant::now();
        force_rung(&gw, 1).await;
        let retargeted = tokio::spawn(async move {
            poll_until(Duration::from_secs(5), || async {
                let s = host.sessions();
                (s.len() == 1 && s[0].bitrate_kbps != video_share(BITRATE_KBPS))
                    .then(|| (s[0].clone(), t.elapsed()))
            })
            .await
        });
        let change = read_for(&mut ws, Duration::from_secs(1)).await;
        let notice = change.notices.first().expect("a Quality notice").clone();
        assert_eq!(
            (
                notice["rung"].as_u64(),
                notice["width"].as_u64(),
                notice["height"].as_u64()
            ),
            (Some(1), Some(1280), Some(720)),
            "{notice}"
        );
        let kbps = notice["bitrate_kbps"].as_u64().unwrap() as u32;
        assert!(kbps < BITRATE_KBPS, "{notice}");
        let (host_kbps, in_force) = retargeted
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("the host's encoder never changed: {:?}", gw.host.sessions()));
        assert_eq!(host_kbps.bitrate_kbps, video_share(kbps), "{host_kbps:?}");
        assert_eq!(host_kbps.session_id, session, "the same host session");
        let after = read_for(&mut ws, Duration::from_secs(3)).await;
        let (was, now) = (before.median_kbps(), after.median_kbps());
        println!(
            "live bitrate: asked {kbps} kbit/s ({} of video), in force at the host within {} ms of the admin's request; frames {was} → \
             {now} kbit/s (median); longest gap {} ms during the change, {} ms after; \
             {} StreamInit",
            video_share(kbps),
            in_force.as_millis(),
            change.longest_gap.as_millis(),
            after.longest_gap.as_millis(),
            change.inits.len() + after.inits.len()
        );
        assert!(
            change.inits.is_empty() && after.inits.is_empty(),
            "no new stream: {:?} {:?}",
            change.inits,
            after.inits
        );
        assert!(
            change.longest_gap < Duration::from_millis(500)
                && after.longest_gap < Duration::from_millis(500),
            "the stream kept going: {:?} {:?}",
            change.longest_gap,
            after.longest_gap
        );
        // Padded frames carry the encoder's bitrate: within a tenth of the video share asked.
        let video = video_share(kbps);
        assert!(
            now.abs_diff(video) * 10 <= video,
            "frames at {now} kbit/s after asking {kbps} ({video} of video; before: {was})"
        );
        assert_eq!(gw.host.sessions()[0].session_id, session);

        // The last rung is smaller: that takes a new host stream, as on every other host.
        let last = notice["rungs"].as_u64().unwrap() as usize - 1;
        force_rung(&gw, last).await;
        let restream = read_for(&mut ws, Duration::from_secs(4)).await;
        let smaller = restream.inits.last().copied().expect("a new StreamInit");
        assert!(smaller.0 < 1280 && smaller.1 < 720, "{smaller:?}");
        let sessions = gw.host.sessions();
        assert_eq!(sessions.len(), 1, "{sessions:?}");
        assert_ne!(sessions[0].session_id, session, "a new host session");
        assert!(!restream.sizes.is_empty(), "video after the restream");

        close_until_registry_empty(&gw, &mut ws).await;
        gw.stop().await;
    })
    .await
    .expect("the test timed out");
}
