//! A demo host whose video has the volume a CBR host sends: every frame padded to the requested
//! bitrate (the test pattern alone compresses to a small fraction of it). Tests of memory under
//! load and of links that cannot carry a stream need the bytes, not the picture.

use std::sync::Arc;

use demo_host::media::{
    AudioFormat, AudioSource, MediaError, PatternStyle, SourceKind, VideoFormat, VideoOptions,
    VideoSource,
};
use demo_host::{DemoHostConfig, MediaFactory, RealMedia};
use web_server::Config;

use super::{serve_own_host_gateway, Gateway};

/// The real media layer, padding every frame to the requested bitrate.
pub struct PaddedMedia;

impl MediaFactory for PaddedMedia {
    fn open_video(
        &self,
        kind: SourceKind,
        format: VideoFormat,
        style: PatternStyle,
    ) -> Result<Box<dyn VideoSource>, MediaError> {
        demo_host::media::open_video_with(
            kind,
            format,
            style,
            VideoOptions {
                fill_to_bitrate: true,
            },
        )
    }
    fn open_audio(
        &self,
        format: AudioFormat,
        tone_hz: f32,
    ) -> Result<Box<dyn AudioSource>, MediaError> {
        RealMedia.open_audio(format, tone_hz)
    }
}

/// A gateway with its own Wolf-strict demo host whose video is padded to the bitrate.
pub async fn padded_host_gateway(config: Config, dir: tempfile::TempDir, name: &str) -> Gateway {
    let host = DemoHostConfig {
        media: Arc::new(PaddedMedia),
        ..DemoHostConfig::default()
    };
    serve_own_host_gateway(config, dir, host, name).await
}
