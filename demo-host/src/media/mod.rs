//! What the demo host streams: a live test pattern encoded to H.264, replays of pre-encoded frames
//! (H.264 for load tests without encoding cost; HEVC and AV1 from clips the repo ships), and an Opus
//! tone. Producers (sessions and lobbies) own one source each and pull frames at their frame rate.
//!
//! This module is the only place that touches codecs; the rest of the host sees [`VideoSource`] and
//! [`AudioSource`].
//!
//! Submodules: [`pattern`] draws the picture, [`h264`] encodes it live or once for replay,
//! [`clip`] holds the shipped HEVC/AV1 clips, [`sei`] stamps send times into frames, [`opus`]
//! makes the tone.

pub mod clip;
pub mod h264;
pub mod opus;
pub mod pad;
pub mod pattern;
pub mod sei;

pub use h264::{H264Profile, LiveH264, LoopSource};
pub use opus::{opus_layout, OpusLayout, OpusTone, MAX_TONE_HZ, SPEAKER_PITCH};
pub use pattern::PatternRenderer;

/// Errors of the media layer.
#[derive(Debug, thiserror::Error)]
pub enum MediaError {
    /// The encoder or decoder library failed.
    #[error("codec: {0}")]
    Codec(String),
    /// A format the source cannot produce (e.g. HEVC live, 5 channels).
    #[error("unsupported format: {0}")]
    Unsupported(String),
    /// A shipped clip is missing or malformed.
    #[error("clip: {0}")]
    Clip(String),
}

/// Video codecs a source can produce.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum VideoCodec {
    /// H.264 (Annex B).
    H264,
    /// HEVC (Annex B).
    Hevc,
    /// AV1 (OBU stream, low-overhead format).
    Av1,
}

/// What the client asked for (from the ANNOUNCE of its stream).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VideoFormat {
    /// Codec.
    pub codec: VideoCodec,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Frames per second.
    pub fps: u32,
    /// Target bitrate in kbit/s.
    pub bitrate_kbps: u32,
}

/// How a producer's picture identifies it: tests decode a frame and check both.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PatternStyle {
    /// Drawn in the picture: the lobby or session name.
    pub label: String,
    /// Background colour (RGB) of the label band; unique per producer.
    pub color: [u8; 3],
}

/// Live encoding of the pattern, or replay of frames encoded once up front.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceKind {
    /// Render and encode every frame (H.264 only; HEVC/AV1 fall back to their clips).
    Live,
    /// Loop over pre-encoded frames: no encoding cost, for load tests.
    Replay,
}

/// One encoded access unit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodedFrame {
    /// Annex B (H.264/HEVC) or OBUs (AV1); keyframes carry their parameter sets.
    pub data: Vec<u8>,
    /// An IDR / key frame.
    pub keyframe: bool,
}

/// A source of video frames, pulled by its producer once per frame interval.
pub trait VideoSource: Send {
    /// The format it produces.
    fn format(&self) -> VideoFormat;
    /// The next frame; `force_keyframe` makes it an IDR (client IDR request, new viewer).
    fn next_frame(&mut self, force_keyframe: bool) -> Result<EncodedFrame, MediaError>;
    /// Encodes at `kbps` from the next frame on (Foundation Sunshine's live bitrate);
    /// `Ok(false)` from a source that cannot (replayed frames, the shipped clips).
    fn set_bitrate(&mut self, _kbps: u32) -> Result<bool, MediaError> {
        Ok(false)
    }
}

/// Audio the client asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AudioFormat {
    /// 2, 6 or 8 channels.
    pub channels: u8,
    /// Packet duration in ms (5 or 10).
    pub packet_duration_ms: u32,
}

/// A source of Opus packets (constant size per stream, as the audio FEC wants).
pub trait AudioSource: Send {
    /// The format it produces.
    fn format(&self) -> AudioFormat;
    /// The next packet (one packet duration of audio).
    fn next_packet(&mut self) -> Result<Vec<u8>, MediaError>;
}

/// Seconds of H.264 that [`SourceKind::Replay`] encodes up front (then loops).
pub const REPLAY_SECONDS: u32 = 2;

/// Extra choices for [`open_video_with`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct VideoOptions {
    /// Pad every frame shorter than `bitrate / fps` with filler (see [`pad`]) so the stream has
    /// the volume a CBR host would send; for load tests. Off in [`open_video`].
    pub fill_to_bitrate: bool,
}

/// Opens a video source drawing `style`.
///
/// - H.264 [`SourceKind::Live`]: renders and encodes every frame ([`LiveH264`]).
/// - H.264 [`SourceKind::Replay`]: encodes [`REPLAY_SECONDS`] of frames now, then loops them
///   ([`LoopSource`]); this call takes as long as that encode (about 1 s at 1080p60).
/// - HEVC and AV1 (either kind): loop the shipped clip ([`clip`]); its picture is the clip's
///   (640×360 test source, no `style`), and [`VideoSource::format`] reports the clip's size
///   with the requested fps and bitrate.
///
/// The size is clamped to even values within 320×240..=3840×2160; `format()` tells the result.
pub fn open_video(
    kind: SourceKind,
    format: VideoFormat,
    style: PatternStyle,
) -> Result<Box<dyn VideoSource>, MediaError> {
    open_video_with(kind, format, style, VideoOptions::default())
}

/// [`open_video`] with [`VideoOptions`].
pub fn open_video_with(
    kind: SourceKind,
    format: VideoFormat,
    style: PatternStyle,
    options: VideoOptions,
) -> Result<Box<dyn VideoSource>, MediaError> {
    open_video_profiled(kind, format, style, options, H264Profile::Baseline)
}

/// [`open_video_with`] whose H.264 (live or replay) is written in `profile` (Wolf-strict mode
/// asks for [`H264Profile::High`]); HEVC and AV1 clips are what they are.
pub fn open_video_profiled(
    kind: SourceKind,
    format: VideoFormat,
    style: PatternStyle,
    options: VideoOptions,
    profile: H264Profile,
) -> Result<Box<dyn VideoSource>, MediaError> {
    match (format.codec, kind) {
        (VideoCodec::H264, SourceKind::Live) => {
            let mut live = LiveH264::with_profile(format, style, profile)?;
            live.set_fill_to_bitrate(options.fill_to_bitrate);
            Ok(Box::new(live))
        }
        (VideoCodec::H264, SourceKind::Replay) => {
            let count = (format.fps.clamp(1, 240) * REPLAY_SECONDS) as usize;
            let (actual, mut frames) = h264::encode_frames_with(format, style, count, profile)?;
            if options.fill_to_bitrate {
                frames = pad::pad_frames(actual.codec, &frames, pad::frame_budget(&actual));
            }
            Ok(Box::new(LoopSource::new(actual, frames.into())?))
        }
        (VideoCodec::Hevc | VideoCodec::Av1, _) => {
            let clip = clip::shipped(format.codec)?;
            let actual = VideoFormat {
                width: clip.width,
                height: clip.height,
                fps: format.fps.max(1),
                ..format
            };
            let frames = if options.fill_to_bitrate {
                pad::pad_frames(actual.codec, &clip.frames, pad::frame_budget(&actual)).into()
            } else {
                clip.frames
            };
            Ok(Box::new(LoopSource::new(actual, frames)?))
        }
    }
}

/// Opens an Opus tone at `tone_hz` (2, 6 or 8 channels; 5 or 10 ms packets; CBR).
pub fn open_audio(format: AudioFormat, tone_hz: f32) -> Result<Box<dyn AudioSource>, MediaError> {
    Ok(Box::new(OpusTone::new(format, tone_hz)?))
}

/// Inserts an SEI user-data NAL (H.264, HEVC) or a metadata OBU (AV1) carrying `send_time_us`
/// (µs since the Unix epoch) in front of the first picture NAL/OBU, so a receiver can measure
/// latency. One allocation and copy, no parsing beyond start codes; see [`sei`].
pub fn stamp_send_time(codec: VideoCodec, data: &[u8], send_time_us: u64) -> Vec<u8> {
    sei::stamp(codec, data, send_time_us)
}

/// Reads the send time stamped by [`stamp_send_time`], if any.
pub fn read_send_time(codec: VideoCodec, data: &[u8]) -> Option<u64> {
    sei::read(codec, data)
}
