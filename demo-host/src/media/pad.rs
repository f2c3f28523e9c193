//! Filler that brings frames up to the requested bitrate.
//!
//! The test pattern compresses to a small fraction of any bitrate a client asks for (1080p60 at
//! 20 Mbit/s encodes to about 1 Mbit/s), while a real host's CBR encoder (Wolf's nvenc/VA-API
//! pipelines use `rc-mode=cbr`) fills it. Load tests need the real volume of packets, FEC blocks
//! and bytes, so every frame shorter than `bitrate / fps` gets a filler unit appended: H.264
//! filler data NAL (type 12), HEVC FD_NUT (type 38), AV1 padding OBU (type 15). Decoders discard
//! them, and they come after the picture as the specs require.

use super::{EncodedFrame, VideoCodec, VideoFormat};

/// Bytes one frame should have at least for `format`'s bitrate.
pub fn frame_budget(format: &VideoFormat) -> usize {
    (u64::from(format.bitrate_kbps) * 1000 / 8 / u64::from(format.fps.max(1))) as usize
}

/// Appends a filler unit so `frame` is at least `min_len` bytes (nothing if it already is).
pub fn pad_to(codec: VideoCodec, frame: &mut Vec<u8>, min_len: usize) {
    match codec {
        VideoCodec::H264 | VideoCodec::Hevc => {
            let header: &[u8] = if codec == VideoCodec::H264 {
                &[0, 0, 0, 1, 12]
            } else {
                &[0, 0, 0, 1, 38 << 1, 1]
            };
            // Smallest unit: start code, header, one 0xFF, trailing bits.
            let overhead = header.len() + 1;
            let Some(fill) = min_len
                .checked_sub(frame.len() + overhead)
                .filter(|&n| n > 0)
            else {
                return;
            };
            frame.reserve(fill + overhead);
            frame.extend_from_slice(header);
            frame.resize(frame.len() + fill, 0xFF); // no zero bytes: no emulation prevention
            frame.push(0x80);
        }
        VideoCodec::Av1 => {
            // Header, LEB128 size (up to 4 bytes used), payload of any value.
            let Some(room) = min_len.checked_sub(frame.len() + 5).filter(|&n| n > 0) else {
                return;
            };
            frame.reserve(room + 5);
            frame.push((15 << 3) | 0x02);
            let mut size = room as u32;
            for i in 0..4 {
                let more = i < 3;
                frame.push((size & 0x7F) as u8 | if more { 0x80 } else { 0 });
                size >>= 7;
            }
            frame.resize(frame.len() + room, 0xAA);
        }
    }
}

/// A padded copy of `frames` (see [`pad_to`]).
pub fn pad_frames(codec: VideoCodec, frames: &[EncodedFrame], min_len: usize) -> Vec<EncodedFrame> {
    frames
        .iter()
        .map(|f| {
            let mut data = Vec::with_capacity(f.data.len().max(min_len));
            data.extend_from_slice(&f.data);
            pad_to(codec, &mut data, min_len);
            EncodedFrame {
                data,
                keyframe: f.keyframe,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::sei::{nal_units, obus};

    #[test]
    fn padding_reaches_the_budget_and_parses() {
        let mut h = vec![0, 0, 0, 1, 0x65, 1, 2, 3];
        pad_to(VideoCodec::H264, &mut h, 1000);
        assert_eq!(h.len(), 1000);
        let nals: Vec<_> = nal_units(&h).map(|(_, n)| n[0] & 0x1F).collect();
        assert_eq!(nals, [5, 12]);
        let mut e = vec![0, 0, 0, 1, 0x26, 1, 9];
        pad_to(VideoCodec::Hevc, &mut e, 500);
        assert_eq!(e.len(), 500);
        let mut a = vec![0x12, 0x00, 0x32, 0x01, 0x07];
        pad_to(VideoCodec::Av1, &mut a, 300_000);
        assert_eq!(a.len(), 300_000);
        let types: Vec<u8> = obus(&a).map(|(_, t, _)| t).collect();
        assert_eq!(types, [2, 6, 15]);
        // Already big enough or too close to pad: unchanged.
        let mut small = vec![0, 0, 0, 1, 0x65, 1];
        pad_to(VideoCodec::H264, &mut small, 8);
        assert_eq!(small.len(), 6);
        assert_eq!(
            frame_budget(&VideoFormat {
                codec: VideoCodec::H264,
                width: 0,
                height: 0,
                fps: 60,
                bitrate_kbps: 20_000
            }),
            41_666
        );
    }
}
