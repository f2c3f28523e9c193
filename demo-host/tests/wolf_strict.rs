//! Wolf-strict mode over real sockets: video RTP timestamp 0, frames padded to Wolf's 1000 bytes,
//! and the teardown-order trap (`/cancel` while the ENet peer is connected is counted and would
//! crash a real Wolf; ENet disconnect first, `/cancel` second is not).

mod common;

use std::time::Duration;

use demo_host::strict::WOLF_MIN_FRAME_BYTES;
use demo_host::{DemoEvent, DemoHost, DemoHostConfig};
use tokio::time::timeout;

const WAIT: Duration = Duration::from_secs(15);

fn strict_config() -> DemoHostConfig {
    DemoHostConfig {
        wolf_strict: true,
        ..common::test_config()
    }
}

/// A stream with 256-byte packets: a client receives a frame as whole shards (the last one
/// zero-filled, as Sunshine and Wolf send it), so only frames spanning several small shards show
/// whether the host padded them.
async fn small_packet_stream(
    http: &std::sync::Arc<gamestream::nvhttp::NvHttpClient>,
) -> (
    gamestream::client::ClientSession,
    tokio::sync::mpsc::Receiver<gamestream::client::SessionEvent>,
) {
    let mut settings = common::settings();
    settings.packet_size = 256;
    timeout(
        WAIT,
        gamestream::client::ClientSession::start(
            std::sync::Arc::clone(http),
            gamestream::client::SessionConfig::new(1, settings),
        ),
    )
    .await
    .expect("stream start timed out")
    .expect("stream start")
}

async fn stopped(events: &mut tokio::sync::broadcast::Receiver<DemoEvent>) {
    common::wait_event(events, WAIT, |e| {
        matches!(e, DemoEvent::SessionStopped { .. })
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strict_frames_have_timestamp_zero_and_wolfs_size() {
    timeout(Duration::from_secs(90), async {
        let host = DemoHost::start(strict_config()).await.unwrap();
        assert!(host.wolf_strict());
        let http = common::paired_client(&host).await;
        let (session, mut media) = small_packet_stream(&http).await;
        // Synthetic frames are 3 kB keyframes and ~330-byte P frames: the small ones are padded.
        let mut small = 0;
        for _ in 0..12 {
            let f = common::wait_frame(&mut media, WAIT, |_| true).await;
            assert_eq!(f.rtp_timestamp, 0, "frame {}", f.frame_index);
            assert!(f.data.len() >= WOLF_MIN_FRAME_BYTES, "{}", f.data.len());
            if !f.is_idr {
                small += 1;
                // The access unit itself, then only zeros up to Wolf's size (and the last
                // shard's fill after it).
                let label_end = 6 + usize::from(f.data[5]) + 3 + 4 + 300;
                assert!(f.data[label_end..].iter().all(|&b| b == 0));
            }
        }
        assert!(small > 0);
        // The client's stop disconnects ENet first, then cancels: safe for Wolf.
        let mut events = host.subscribe();
        session.stop().await.unwrap();
        stopped(&mut events).await;
        assert_eq!(host.disconnects_after_cancel(), 0);
        assert_eq!(host.strict_violations(), 0);
        host.close().await;
    })
    .await
    .expect("test timed out");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lenient_mode_keeps_real_timestamps_and_sizes() {
    timeout(Duration::from_secs(90), async {
        let host = DemoHost::start(common::test_config()).await.unwrap();
        let http = common::paired_client(&host).await;
        let (session, mut media) = small_packet_stream(&http).await;
        let mut stamps = Vec::new();
        for _ in 0..6 {
            let f = common::wait_frame(&mut media, WAIT, |_| true).await;
            if !f.is_idr {
                assert!(f.data.len() < WOLF_MIN_FRAME_BYTES, "{}", f.data.len());
            }
            stamps.push(f.rtp_timestamp);
        }
        assert!(stamps.windows(2).any(|w| w[1] > w[0]), "{stamps:?}");
        // Off: a cancel while connected is not counted.
        http.cancel().await.unwrap();
        assert_eq!(host.disconnects_after_cancel(), 0);
        drop(session);
        host.close().await;
    })
    .await
    .expect("test timed out");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_while_enet_is_connected_is_a_loud_violation() {
    timeout(Duration::from_secs(90), async {
        let host = DemoHost::start(DemoHostConfig {
            wolf_api: demo_host::WolfApiConfig {
                tcp: Some("127.0.0.1:0".parse().unwrap()),
                ..Default::default()
            },
            ..strict_config()
        })
        .await
        .unwrap();
        let http = common::paired_client(&host).await;

        // Wrong order: /cancel while the control stream is up (what crashed Wolf).
        let mut events = host.subscribe();
        let (session, mut media) = common::stream(&http, 1).await;
        common::wait_frame(&mut media, WAIT, |_| true).await;
        assert!(host.gamestream().sessions()[0].control_connected);
        http.cancel().await.unwrap();
        // Counted at the cancel itself, before its reply.
        assert_eq!(host.disconnects_after_cancel(), 1);
        stopped(&mut events).await;
        drop(session);

        // An API stop while connected is the same trap (Wolf's sessions/stop fires the same
        // stop event).
        let (session, mut media) = common::stream(&http, 1).await;
        common::wait_frame(&mut media, WAIT, |_| true).await;
        let id = host.sessions()[0].session_id;
        host.stop_session(id).unwrap();
        assert_eq!(host.disconnects_after_cancel(), 2);
        stopped(&mut events).await;
        drop(session);

        // Right order: ENet disconnect, then /cancel (Wolf: "Unable to find enet client").
        let (session, mut media) = common::stream(&http, 1).await;
        common::wait_frame(&mut media, WAIT, |_| true).await;
        session.stop().await.unwrap();
        stopped(&mut events).await;
        assert_eq!(host.disconnects_after_cancel(), 2);

        // A killed streamer whose gateway cancels on its behalf before ENet timed the peer out:
        // no DISCONNECT was sent, the peer is still connected at the cancel, and the timeout
        // that follows is a disconnect to Wolf all the same: counted.
        let (session, mut media) = common::stream(&http, 1).await;
        common::wait_frame(&mut media, WAIT, |_| true).await;
        std::mem::forget(session); // like a killed process: nothing is closed
        http.cancel().await.unwrap();
        assert_eq!(host.disconnects_after_cancel(), 3);
        assert_eq!(host.strict_violations(), 3);

        // The same counter through the Wolf API's moongate extension.
        let api = host.wolf_api_tcp().expect("API on TCP");
        let mut c = tokio::net::TcpStream::connect(api).await.unwrap();
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        c.write_all(b"GET /api/v1/moongate/strict HTTP/1.0\r\nHost: localhost\r\n\r\n")
            .await
            .unwrap();
        let mut reply = String::new();
        timeout(WAIT, c.read_to_string(&mut reply))
            .await
            .unwrap()
            .unwrap();
        assert!(reply.starts_with("HTTP/1.0 200"), "{reply}");
        let body: serde_json::Value =
            serde_json::from_str(reply.split_once("\r\n\r\n").unwrap().1).unwrap();
        assert_eq!(body["success"], true);
        assert_eq!(body["strict"]["wolf_strict"], true);
        assert_eq!(body["strict"]["disconnects_after_cancel"], 3);
        host.close().await;
    })
    .await
    .expect("test timed out");
}

/// openh264 writes High profile when asked (CAVLC-coded; High allows it), and the result decodes.
#[test]
fn high_profile_h264_is_written_and_decodes() {
    use demo_host::media::sei::nal_units;
    use demo_host::media::{
        open_video_profiled, H264Profile, PatternStyle, SourceKind, VideoCodec, VideoFormat,
        VideoOptions,
    };
    let format = VideoFormat {
        codec: VideoCodec::H264,
        width: 320,
        height: 240,
        fps: 5,
        bitrate_kbps: 1000,
    };
    for kind in [SourceKind::Live, SourceKind::Replay] {
        for (profile, idc) in [(H264Profile::Baseline, 66), (H264Profile::High, 100)] {
            let style = PatternStyle {
                label: "p".into(),
                color: [200, 10, 10],
            };
            let mut src =
                open_video_profiled(kind, format, style, VideoOptions::default(), profile).unwrap();
            let key = src.next_frame(false).unwrap();
            let sps = nal_units(&key.data)
                .find(|(_, n)| n.first().is_some_and(|b| b & 0x1F == 7))
                .map(|(_, n)| n.to_vec())
                .expect("SPS");
            assert_eq!(sps[1], idc, "{kind:?} {profile:?}");
            let mut decoder = openh264::decoder::Decoder::new().unwrap();
            let mut pictures = usize::from(decoder.decode(&key.data).unwrap().is_some());
            for _ in 0..4 {
                let f = src.next_frame(false).unwrap();
                pictures += usize::from(decoder.decode(&f.data).unwrap().is_some());
            }
            assert!(pictures >= 4, "{kind:?} {profile:?}: {pictures} pictures");
        }
    }
}
