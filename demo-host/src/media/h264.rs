//! Live H.264 of the test pattern with openh264, and replay of frames encoded once up front.
//!
//! GOP: like Wolf's encoder pipelines (x264enc `keyint=infinite`, nvenc HEVC/AV1 `gop-size=-1`,
//! VA-API `key-int-max=1024`) and other Moonlight hosts, there is no periodic IDR: the first frame
//! is an IDR and later IDRs only come on request (a client's IDR request or a new viewer).
//! openh264 writes SPS and PPS in front of every IDR, so each keyframe decodes standalone.
//! Rate control is openh264's bitrate mode at the client's bitrate, frame skipping off (Moonlight
//! wants one frame per interval).

use std::sync::Arc;

use openh264::encoder::{
    BitRate, Complexity, Encoder, EncoderConfig, FrameRate, FrameType, IntraFramePeriod, Profile,
    RateControlMode, UsageType,
};
use openh264::{OpenH264API, Timestamp};

use super::pattern::PatternRenderer;
use super::{EncodedFrame, MediaError, PatternStyle, VideoCodec, VideoFormat, VideoSource};

/// The H.264 profile the encoder writes in its SPS.
///
/// openh264 leaves the profile to its entropy coder when none is set: CAVLC, hence Constrained
/// Baseline (`profile_idc` 66). Asked for High, it writes a High-profile SPS (`profile_idc` 100,
/// with the `chroma_format_idc` / bit-depth fields High adds) and keeps CAVLC, which High allows.
/// It cannot do CABAC through the `openh264` crate (the crate sets no entropy-coding flag), so
/// the High stream of [`H264Profile::High`] is CAVLC-coded, unlike a hardware encoder's — a
/// decoder must still take it as High, which is what Wolf-strict mode wants to prove.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum H264Profile {
    /// openh264's default: Constrained Baseline.
    #[default]
    Baseline,
    /// High profile (what Wolf's x264/nvenc/VA-API pipelines produce).
    High,
}

/// Renders and encodes one frame per [`VideoSource::next_frame`].
pub struct LiveH264 {
    format: VideoFormat,
    profile: H264Profile,
    renderer: PatternRenderer,
    encoder: Encoder,
    index: u64,
    fill_to: Option<usize>,
}

impl std::fmt::Debug for LiveH264 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveH264")
            .field("format", &self.format)
            .field("index", &self.index)
            .finish()
    }
}

impl LiveH264 {
    /// An encoder for `format` (size clamped to even values within 320×240..=3840×2160, fps at
    /// 1..=240, bitrate 100 kbit/s..=1 Gbit/s).
    pub fn new(format: VideoFormat, style: PatternStyle) -> Result<Self, MediaError> {
        Self::with_profile(format, style, H264Profile::Baseline)
    }

    /// [`LiveH264::new`] writing `profile`.
    pub fn with_profile(
        format: VideoFormat,
        style: PatternStyle,
        profile: H264Profile,
    ) -> Result<Self, MediaError> {
        let renderer = PatternRenderer::new(format.width, format.height, style);
        let (width, height) = renderer.size();
        let format = VideoFormat {
            codec: VideoCodec::H264,
            width,
            height,
            fps: format.fps.clamp(1, 240),
            bitrate_kbps: clamp_kbps(format.bitrate_kbps),
        };
        Ok(LiveH264 {
            format,
            profile,
            renderer,
            encoder: encoder(format, profile)?,
            index: 0,
            fill_to: None,
        })
    }
}

/// The bitrates the encoder takes, kbit/s.
fn clamp_kbps(kbps: u32) -> u32 {
    kbps.clamp(100, 1_000_000)
}

/// An openh264 encoder for `format`: bitrate mode, no frame skipping, no periodic IDR.
fn encoder(format: VideoFormat, profile: H264Profile) -> Result<Encoder, MediaError> {
    let VideoFormat { width, height, .. } = format;
    // Threads: one per 1080p-ish worth of pixels; the host runs many encoders at once.
    let threads = if width * height > 1280 * 720 { 2 } else { 1 };
    let config = EncoderConfig::new()
        .bitrate(BitRate::from_bps(format.bitrate_kbps.saturating_mul(1000)))
        .max_frame_rate(FrameRate::from_hz(format.fps as f32))
        .rate_control_mode(RateControlMode::Bitrate)
        .skip_frames(false)
        .usage_type(UsageType::CameraVideoRealTime)
        .complexity(Complexity::Low)
        .intra_frame_period(IntraFramePeriod::from_num_frames(0))
        .scene_change_detect(false)
        .background_detection(false)
        .adaptive_quantization(false)
        .num_threads(threads);
    let config = match profile {
        H264Profile::Baseline => config,
        H264Profile::High => config.profile(Profile::High),
    };
    Encoder::with_api_config(OpenH264API::from_source(), config)
        .map_err(|e| MediaError::Codec(format!("openh264 encoder: {e}")))
}

impl LiveH264 {
    /// Pads every frame up to `bitrate / fps` bytes with filler NAL units ([`super::pad`]).
    pub fn set_fill_to_bitrate(&mut self, on: bool) {
        self.fill_to = on.then(|| super::pad::frame_budget(&self.format));
    }
}

impl VideoSource for LiveH264 {
    fn format(&self) -> VideoFormat {
        self.format
    }

    fn next_frame(&mut self, force_keyframe: bool) -> Result<EncodedFrame, MediaError> {
        if force_keyframe && self.index > 0 {
            self.encoder.force_intra_frame();
        }
        let ts = Timestamp::from_millis(self.index * 1000 / u64::from(self.format.fps));
        let picture = self.renderer.render(self.index);
        let bits = self
            .encoder
            .encode_at(picture, ts)
            .map_err(|e| MediaError::Codec(format!("openh264 encode: {e}")))?;
        let keyframe = bits.frame_type() == FrameType::IDR;
        let mut data = bits.to_vec();
        if data.is_empty() {
            return Err(MediaError::Codec(format!(
                "openh264 produced no data ({:?})",
                bits.frame_type()
            )));
        }
        if let Some(min_len) = self.fill_to {
            super::pad::pad_to(VideoCodec::H264, &mut data, min_len);
        }
        self.index += 1;
        Ok(EncodedFrame { data, keyframe })
    }

    /// The `openh264` crate offers no safe way to re-target a running encoder, so a new one is
    /// built at the new bitrate; its first frame is an IDR, as a hardware encoder's
    /// reconfiguration often gives too. The picture goes on from the same frame index.
    fn set_bitrate(&mut self, kbps: u32) -> Result<bool, MediaError> {
        let format = VideoFormat {
            bitrate_kbps: clamp_kbps(kbps),
            ..self.format
        };
        self.encoder = encoder(format, self.profile)?;
        self.format = format;
        if self.fill_to.is_some() {
            self.fill_to = Some(super::pad::frame_budget(&self.format));
        }
        Ok(true)
    }
}

/// Encodes `count` frames of the pattern once (the first is an IDR), for [`LoopSource`].
pub fn encode_frames(
    format: VideoFormat,
    style: PatternStyle,
    count: usize,
) -> Result<(VideoFormat, Vec<EncodedFrame>), MediaError> {
    encode_frames_with(format, style, count, H264Profile::Baseline)
}

/// [`encode_frames`] writing `profile`.
pub fn encode_frames_with(
    format: VideoFormat,
    style: PatternStyle,
    count: usize,
    profile: H264Profile,
) -> Result<(VideoFormat, Vec<EncodedFrame>), MediaError> {
    let mut live = LiveH264::with_profile(format, style, profile)?;
    let frames = (0..count.max(1))
        .map(|_| live.next_frame(false))
        .collect::<Result<Vec<_>, _>>()?;
    Ok((live.format, frames))
}

/// Loops over pre-encoded frames: costs a clone per frame and no encoding. The first frame must
/// be a keyframe; a forced keyframe restarts at it, and so does every wrap-around, so the loop
/// never references a picture the decoder has not seen.
#[derive(Debug, Clone)]
pub struct LoopSource {
    format: VideoFormat,
    frames: Arc<[EncodedFrame]>,
    next: usize,
}

impl LoopSource {
    /// A loop over `frames` (shared: many producers can replay the same encode).
    pub fn new(format: VideoFormat, frames: Arc<[EncodedFrame]>) -> Result<Self, MediaError> {
        match frames.first() {
            Some(f) if f.keyframe => Ok(LoopSource {
                format,
                frames,
                next: 0,
            }),
            Some(_) => Err(MediaError::Clip(
                "first frame of a loop is not a keyframe".into(),
            )),
            None => Err(MediaError::Clip("no frames to loop".into())),
        }
    }

    /// Number of frames in the loop.
    pub fn len(&self) -> usize {
        self.frames.len()
    }

    /// Never true (a loop has at least its keyframe).
    pub fn is_empty(&self) -> bool {
        self.frames.is_empty()
    }
}

impl VideoSource for LoopSource {
    fn format(&self) -> VideoFormat {
        self.format
    }

    fn next_frame(&mut self, force_keyframe: bool) -> Result<EncodedFrame, MediaError> {
        if force_keyframe || self.next >= self.frames.len() {
            self.next = 0;
        }
        let frame = self.frames[self.next].clone();
        self.next += 1;
        Ok(frame)
    }
}
