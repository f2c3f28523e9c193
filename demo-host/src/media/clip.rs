//! HEVC and AV1 clips shipped in `demo-host/clips/` (made once by `clips/make-clips.sh` with
//! libx265 and libaom) and compiled into the binary, so the host needs no encoder for them.
//!
//! File format "DHAU" v1, integers big-endian:
//! `b"DHAU" | version u8 = 1 | codec u8 (1 HEVC, 2 AV1) | width u16 | height u16 | fps u16 |
//! count u16`, then `count` records `flags u8 (bit 0 keyframe) | length u32 | access unit`.
//! HEVC access units are Annex B with parameter sets before each IRAP; AV1 ones are temporal units
//! of low-overhead OBUs.

use std::sync::{Arc, OnceLock};

use super::{EncodedFrame, MediaError, VideoCodec};

/// The HEVC clip (640×360, 60 frames at 60 fps, IDR first).
pub const HEVC_CLIP: &[u8] =
    include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/clips/hevc.dhau"));
/// The AV1 clip (640×360, 60 frames at 60 fps, key frame first).
pub const AV1_CLIP: &[u8] = include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/clips/av1.dhau"));

/// A parsed clip.
#[derive(Debug, Clone)]
pub struct Clip {
    /// Codec of the access units.
    pub codec: VideoCodec,
    /// Picture width.
    pub width: u32,
    /// Picture height.
    pub height: u32,
    /// Frame rate it was made at.
    pub fps: u32,
    /// The access units, in order.
    pub frames: Arc<[EncodedFrame]>,
}

/// Parses a DHAU file; any truncation or inconsistency is an error, never a panic.
pub fn parse(data: &[u8]) -> Result<Clip, MediaError> {
    let bad = |what: &str| MediaError::Clip(what.to_string());
    let header = data
        .get(..14)
        .ok_or_else(|| bad("shorter than its header"))?;
    if &header[..4] != b"DHAU" {
        return Err(bad("not a DHAU file"));
    }
    if header[4] != 1 {
        return Err(bad("unknown DHAU version"));
    }
    let codec = match header[5] {
        1 => VideoCodec::Hevc,
        2 => VideoCodec::Av1,
        _ => return Err(bad("unknown codec")),
    };
    let be16 = |i: usize| u32::from(u16::from_be_bytes([header[i], header[i + 1]]));
    let (width, height, fps, count) = (be16(6), be16(8), be16(10), be16(12) as usize);
    let mut frames = Vec::with_capacity(count);
    let mut rest = &data[14..];
    for _ in 0..count {
        let head = rest
            .get(..5)
            .ok_or_else(|| bad("truncated record header"))?;
        let len = u32::from_be_bytes([head[1], head[2], head[3], head[4]]) as usize;
        let body = rest
            .get(5..5 + len)
            .ok_or_else(|| bad("truncated access unit"))?;
        frames.push(EncodedFrame {
            data: body.to_vec(),
            keyframe: head[0] & 1 != 0,
        });
        rest = &rest[5 + len..];
    }
    if !rest.is_empty() {
        return Err(bad("trailing bytes after the last record"));
    }
    match frames.first() {
        Some(f) if f.keyframe => {}
        _ => return Err(bad("does not start with a keyframe")),
    }
    Ok(Clip {
        codec,
        width,
        height,
        fps,
        frames: frames.into(),
    })
}

/// The shipped clip of `codec` (parsed once per process); H.264 has none.
pub fn shipped(codec: VideoCodec) -> Result<Clip, MediaError> {
    static HEVC: OnceLock<Result<Clip, String>> = OnceLock::new();
    static AV1: OnceLock<Result<Clip, String>> = OnceLock::new();
    let (cell, bytes) = match codec {
        VideoCodec::Hevc => (&HEVC, HEVC_CLIP),
        VideoCodec::Av1 => (&AV1, AV1_CLIP),
        VideoCodec::H264 => return Err(MediaError::Unsupported("no H.264 clip is shipped".into())),
    };
    cell.get_or_init(|| parse(bytes).map_err(|e| e.to_string()))
        .clone()
        .map_err(MediaError::Clip)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn malformed_files_are_errors() {
        assert!(parse(b"").is_err());
        assert!(parse(b"XXXX\x01\x01\0\0\0\0\0\0\0\0").is_err());
        // Header says one record, none follows.
        assert!(parse(b"DHAU\x01\x01\0\x10\0\x10\0\x3c\0\x01").is_err());
        // A record whose length runs past the end.
        assert!(parse(b"DHAU\x01\x01\0\x10\0\x10\0\x3c\0\x01\x01\0\0\0\x09abc").is_err());
        // Not starting with a keyframe.
        assert!(parse(b"DHAU\x01\x01\0\x10\0\x10\0\x3c\0\x01\x00\0\0\0\x01a").is_err());
        let ok = parse(b"DHAU\x01\x02\0\x10\0\x10\0\x3c\0\x01\x01\0\0\0\x01a").unwrap();
        assert_eq!(
            (ok.codec, ok.width, ok.frames.len()),
            (VideoCodec::Av1, 16, 1)
        );
    }
}
