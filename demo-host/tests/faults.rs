//! Fault knobs and modes for tests: media loss/reorder while streaming, crash on command, and the
//! replay source mode reaching the media layer.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use demo_host::media::{
    AudioFormat, AudioSource, MediaError, PatternStyle, SourceKind, VideoFormat, VideoSource,
};
use demo_host::{DemoHost, DemoHostConfig, MediaFactory};
use gamestream::client::SessionEvent;
use tokio::time::timeout;

const WAIT: Duration = Duration::from_secs(15);

/// Synthetic media that remembers which source kinds were asked for.
struct Recording(Mutex<Vec<SourceKind>>);

impl MediaFactory for Recording {
    fn open_video(
        &self,
        kind: SourceKind,
        format: VideoFormat,
        style: PatternStyle,
    ) -> Result<Box<dyn VideoSource>, MediaError> {
        self.0.lock().unwrap().push(kind);
        common::SyntheticMedia.open_video(kind, format, style)
    }
    fn open_audio(
        &self,
        format: AudioFormat,
        tone_hz: f32,
    ) -> Result<Box<dyn AudioSource>, MediaError> {
        common::SyntheticMedia.open_audio(format, tone_hz)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_mode_reaches_the_media_layer() {
    timeout(Duration::from_secs(60), async {
        let media = Arc::new(Recording(Mutex::new(Vec::new())));
        let host = DemoHost::start(DemoHostConfig {
            source_kind: SourceKind::Replay,
            media: Arc::clone(&media) as Arc<dyn MediaFactory>,
            ..common::test_config()
        })
        .await
        .unwrap();
        let http = common::paired_client(&host).await;
        let (_s, mut m) = common::stream(&http, 1).await;
        common::wait_frame(&mut m, WAIT, |_| true).await;
        assert_eq!(*media.0.lock().unwrap(), vec![SourceKind::Replay]);
        host.close().await;
    })
    .await
    .expect("test timed out");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loss_and_reorder_knobs_apply_live_and_streams_recover() {
    timeout(Duration::from_secs(60), async {
        let host = DemoHost::start(common::test_config()).await.unwrap();
        let http = common::paired_client(&host).await;
        let (session, mut m) = common::stream(&http, 1).await;
        common::wait_frame(&mut m, WAIT, |_| true).await;
        host.faults().set_drop_percent(20);
        host.faults().set_reorder_percent(20);
        // Loss shows up as FEC-rebuilt shards or lost frames (answered with a keyframe request).
        let mut lost = 0;
        timeout(WAIT, async {
            loop {
                let stats = session.stats();
                if stats.video.shards_recovered > 0 || lost > 0 {
                    break;
                }
                if let SessionEvent::VideoLost { .. } = m.recv().await.expect("stream ended") {
                    lost += 1;
                }
            }
        })
        .await
        .expect("the drop knob applies to a running stream");
        host.faults().set_drop_percent(0);
        host.faults().set_reorder_percent(0);
        // Without faults the stream is whole again: a requested keyframe arrives.
        session.request_idr().unwrap();
        common::wait_frame(&mut m, WAIT, |f| f.is_idr).await;
        host.close().await;
    })
    .await
    .expect("test timed out");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_drops_every_listener() {
    timeout(Duration::from_secs(60), async {
        let host = DemoHost::start(common::test_config()).await.unwrap();
        let http = common::paired_client(&host).await;
        assert!(http.server_info_http().await.is_ok());
        host.crash();
        // Listeners go with the process: nothing answers any more.
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            if http.server_info_http().await.is_err() {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "still answering after crash"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("test timed out");
}
