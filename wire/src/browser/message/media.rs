//! The server → client media and session messages (contract §2.3, §2.4, §2.13, §2.15, §2.16),
//! and the media helpers that write a frame with one header write plus one payload copy.

use super::{msg_type, AUDIO_HEADER_LEN, FLAG_KEYFRAME, VIDEO_HEADER_LEN};
use crate::browser::opus::OpusLayout;
use crate::browser::VideoCodec;

/// VideoFrame 0x01: one complete access unit (§2.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VideoFrame<'a> {
    /// Codec byte ([`crate::browser::VideoCodec`]); informational for the client.
    pub codec: u8,
    /// Flag bit 0. Other flag bits are ignored on decode and written as 0.
    pub keyframe: bool,
    /// Presentation time, µs, real-time and monotonic within a connection.
    pub pts_us: u64,
    /// Coded width (informational).
    pub width: u16,
    /// Coded height (informational).
    pub height: u16,
    /// The access unit (Annex B for H.264/HEVC, a temporal unit for AV1).
    pub data: &'a [u8],
}

/// AudioFrame 0x02: one raw Opus packet (§2.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AudioFrame<'a> {
    /// Channel count (the client uses StreamInit's).
    pub channels: u8,
    /// Presentation time, µs.
    pub pts_us: u64,
    /// The Opus packet.
    pub data: &'a [u8],
}

/// StreamInit 0x30 (§2.13).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamInit {
    /// The negotiated codec (one byte on the wire).
    pub codec: VideoCodec,
    /// Width in pixels.
    pub width: u16,
    /// Height in pixels.
    pub height: u16,
    /// Frames per second.
    pub fps: u8,
    /// 0 = no audio.
    pub audio_channels: u8,
    /// Hz; 0 = no audio.
    pub sample_rate: u32,
    /// Touch input is accepted.
    pub touch_supported: bool,
    /// moongate extension after the 13 core bytes: how the Opus packets split into streams, which
    /// a browser needs to decode 5.1 and 7.1 (the gateway leaves it out for Helix clients).
    pub opus: Option<OpusLayout>,
}

/// Ping 0x40 (§2.15).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ping {
    /// Sequence number.
    pub seq: u32,
    /// Opaque client time, µs.
    pub client_time_us: u64,
}

/// Pong 0x41 (§2.16, the 21-byte core form; longer HEAD forms decode with the extras ignored).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pong {
    /// Echoed sequence number.
    pub seq: u32,
    /// Echoed client time.
    pub client_time_us: u64,
    /// Server time, µs since the Unix epoch.
    pub server_time_us: u64,
}

impl Pong {
    /// The answer to `ping` at `server_time_us`.
    pub fn answer(ping: Ping, server_time_us: u64) -> Self {
        Pong {
            seq: ping.seq,
            client_time_us: ping.client_time_us,
            server_time_us,
        }
    }
}

/// The 15-byte VideoFrame header (type byte included) for `frame`; `frame.data` is not read.
/// Send it followed by the payload, or use [`video_frame_message`].
pub fn encode_video_header(frame: &VideoFrame<'_>) -> [u8; VIDEO_HEADER_LEN] {
    let mut h = [0u8; VIDEO_HEADER_LEN];
    h[0] = msg_type::VIDEO_FRAME;
    h[1] = frame.codec;
    h[2] = if frame.keyframe { FLAG_KEYFRAME } else { 0 };
    h[3..11].copy_from_slice(&frame.pts_us.to_be_bytes());
    h[11..13].copy_from_slice(&frame.width.to_be_bytes());
    h[13..15].copy_from_slice(&frame.height.to_be_bytes());
    h
}

/// The 10-byte AudioFrame header (type byte included).
pub fn encode_audio_header(channels: u8, pts_us: u64) -> [u8; AUDIO_HEADER_LEN] {
    let mut h = [0u8; AUDIO_HEADER_LEN];
    h[0] = msg_type::AUDIO_FRAME;
    h[1] = channels;
    h[2..10].copy_from_slice(&pts_us.to_be_bytes());
    h
}

/// A complete VideoFrame message in one exactly sized allocation: header, then one copy of the
/// payload. This is the only copy the media path needs between the IPC frame and the WebSocket.
pub fn video_frame_message(frame: &VideoFrame<'_>) -> Vec<u8> {
    let mut v = Vec::with_capacity(VIDEO_HEADER_LEN + frame.data.len());
    v.extend_from_slice(&encode_video_header(frame));
    v.extend_from_slice(frame.data);
    v
}

/// A complete AudioFrame message in one exactly sized allocation.
pub fn audio_frame_message(channels: u8, pts_us: u64, opus: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(AUDIO_HEADER_LEN + opus.len());
    v.extend_from_slice(&encode_audio_header(channels, pts_us));
    v.extend_from_slice(opus);
    v
}
