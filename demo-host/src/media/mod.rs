//! What the demo host streams: a live test pattern encoded to H.264, replays of pre-encoded frames
//! (H.264 for load tests without encoding cost; HEVC and AV1 from clips the repo ships), and an Opus
//! tone. Producers (sessions and lobbies) own one source each and pull frames at their frame rate.
//!
//! This module is the only place that touches codecs; the rest of the host sees [`VideoSource`] and
//! [`AudioSource`].

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

/// Opens a video source drawing `style` (placeholder until the media layer lands).
pub fn open_video(kind: SourceKind, format: VideoFormat, style: PatternStyle) -> Result<Box<dyn VideoSource>, MediaError> {
    let _ = (kind, style);
    Err(MediaError::Unsupported(format!("{format:?}: media layer not built yet")))
}

/// Opens an Opus tone at `tone_hz` (placeholder until the media layer lands).
pub fn open_audio(format: AudioFormat, tone_hz: f32) -> Result<Box<dyn AudioSource>, MediaError> {
    let _ = tone_hz;
    Err(MediaError::Unsupported(format!("{format:?}: media layer not built yet")))
}

/// Inserts an SEI user-data NAL carrying `send_time_us` (µs since the Unix epoch) in front of the
/// first picture NAL, so a receiver can measure latency (placeholder: returns the frame unchanged).
pub fn stamp_send_time(codec: VideoCodec, data: &[u8], send_time_us: u64) -> Vec<u8> {
    let _ = (codec, send_time_us);
    data.to_vec()
}

/// Reads the send time stamped by [`stamp_send_time`] (placeholder).
pub fn read_send_time(codec: VideoCodec, data: &[u8]) -> Option<u64> {
    let _ = (codec, data);
    None
}
