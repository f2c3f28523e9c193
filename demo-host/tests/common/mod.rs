//! Shared by the demo-host integration tests: a synthetic media factory whose frames say which
//! producer made them, pairing, and stream settings.

#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use demo_host::media::{
    AudioFormat, AudioSource, EncodedFrame, MediaError, PatternStyle, SourceKind, VideoCodec,
    VideoFormat, VideoSource,
};
use demo_host::{DemoEvent, DemoHost, DemoHostConfig, MediaFactory};
use gamestream::client::{ClientSession, SessionConfig, SessionEvent};
use gamestream::identity::Identity;
use gamestream::nvhttp::{HostAddress, NvHttpClient};
use gamestream::rtsp::StreamSettings;
use tokio::sync::{broadcast, mpsc};
use tokio::time::timeout;

pub const PIN: &str = "4721";

/// Frames: Annex B start code, NAL header (IDR 0x65 / non-IDR 0x41), label length, label, colour,
/// counter, padding. Receivers recover the label of the producer that made the frame.
pub struct SyntheticVideo {
    format: VideoFormat,
    style: PatternStyle,
    counter: u32,
}

impl VideoSource for SyntheticVideo {
    fn format(&self) -> VideoFormat {
        self.format
    }
    fn next_frame(&mut self, force_keyframe: bool) -> Result<EncodedFrame, MediaError> {
        // Keyframes only first and on request, so tests can tell that a request was honoured.
        let keyframe = force_keyframe || self.counter == 0;
        self.counter += 1;
        let mut data = vec![0, 0, 0, 1, if keyframe { 0x65 } else { 0x41 }];
        data.push(self.style.label.len() as u8);
        data.extend_from_slice(self.style.label.as_bytes());
        data.extend_from_slice(&self.style.color);
        data.extend_from_slice(&self.counter.to_be_bytes());
        data.resize(data.len() + if keyframe { 3000 } else { 300 }, 0x5A);
        Ok(EncodedFrame { data, keyframe })
    }
}

/// Reads the producer label from a synthetic frame.
pub fn label_of(data: &[u8]) -> Option<String> {
    let len = *data.get(5)? as usize;
    String::from_utf8(data.get(6..6 + len)?.to_vec()).ok()
}

pub struct SyntheticAudio(AudioFormat);

impl AudioSource for SyntheticAudio {
    fn format(&self) -> AudioFormat {
        self.0
    }
    fn next_packet(&mut self) -> Result<Vec<u8>, MediaError> {
        Ok(vec![0xA5; 40])
    }
}

/// A [`MediaFactory`] without codecs.
pub struct SyntheticMedia;

impl MediaFactory for SyntheticMedia {
    fn open_video(
        &self,
        _kind: SourceKind,
        format: VideoFormat,
        style: PatternStyle,
    ) -> Result<Box<dyn VideoSource>, MediaError> {
        Ok(Box::new(SyntheticVideo {
            format,
            style,
            counter: 0,
        }))
    }
    fn open_audio(
        &self,
        format: AudioFormat,
        _tone_hz: f32,
    ) -> Result<Box<dyn AudioSource>, MediaError> {
        Ok(Box::new(SyntheticAudio(format)))
    }
    fn stamp_send_time(&self, _codec: VideoCodec, data: &[u8], _send_time_us: u64) -> Vec<u8> {
        data.to_vec()
    }
}

/// True once the media layer encodes (its `open_video` no longer answers `Unsupported`).
pub fn real_media_present() -> bool {
    let format = VideoFormat {
        codec: VideoCodec::H264,
        width: 640,
        height: 360,
        fps: 30,
        bitrate_kbps: 2000,
    };
    let style = PatternStyle {
        label: "probe".into(),
        color: [1, 2, 3],
    };
    !matches!(
        demo_host::media::open_video(SourceKind::Live, format, style),
        Err(MediaError::Unsupported(_))
    )
}

/// A test host on loopback with ephemeral ports, synthetic media and the fixed PIN.
pub fn test_config() -> DemoHostConfig {
    DemoHostConfig {
        fixed_pin: Some(PIN.into()),
        media: Arc::new(SyntheticMedia),
        ..DemoHostConfig::default()
    }
}

/// A fresh client identity for `host` (not yet paired).
pub fn client(host: &DemoHost) -> Arc<NvHttpClient> {
    let ports = host.ports();
    Arc::new(NvHttpClient::new(
        HostAddress::with_ports("127.0.0.1", ports.http, Some(ports.https)),
        Identity::new_client().expect("client identity"),
        None,
    ))
}

/// A paired client (the host must have a fixed PIN).
pub async fn paired_client(host: &DemoHost) -> Arc<NvHttpClient> {
    let http = client(host);
    timeout(Duration::from_secs(30), http.pair(PIN, "test"))
        .await
        .expect("pairing timed out")
        .expect("pairing");
    http
}

pub fn settings() -> StreamSettings {
    StreamSettings {
        width: 640,
        height: 360,
        fps: 30,
        packet_size: 1024,
        ..StreamSettings::default()
    }
}

/// Starts a stream of `app_id`.
pub async fn stream(
    http: &Arc<NvHttpClient>,
    app_id: u32,
) -> (ClientSession, mpsc::Receiver<SessionEvent>) {
    timeout(
        Duration::from_secs(20),
        ClientSession::start(Arc::clone(http), SessionConfig::new(app_id, settings())),
    )
    .await
    .expect("stream start timed out")
    .expect("stream start")
}

/// Waits for a host event matching `pred`.
pub async fn wait_event(
    events: &mut broadcast::Receiver<DemoEvent>,
    within: Duration,
    pred: impl Fn(&DemoEvent) -> bool,
) -> DemoEvent {
    timeout(within, async {
        loop {
            match events.recv().await {
                Ok(e) if pred(&e) => return e,
                Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(broadcast::error::RecvError::Closed) => panic!("host events closed"),
            }
        }
    })
    .await
    .expect("host event did not come")
}

/// Receives video frames until one satisfies `pred`; returns it.
pub async fn wait_frame(
    events: &mut mpsc::Receiver<SessionEvent>,
    within: Duration,
    pred: impl Fn(&gamestream::video::VideoFrame) -> bool,
) -> gamestream::video::VideoFrame {
    timeout(within, async {
        loop {
            match events.recv().await.expect("stream ended") {
                SessionEvent::Video(f) if pred(&f) => return f,
                SessionEvent::Ended(cause) => panic!("stream ended: {cause:?}"),
                _ => {}
            }
        }
    })
    .await
    .expect("frame did not come")
}
