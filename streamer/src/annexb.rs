//! Keyframes must be decodable on their own (sans-IO).
//!
//! A browser decoder is (re)configured on any keyframe — a new viewer, a decoder error, video
//! re-enabled — so every keyframe the streamer forwards must carry its parameter sets in-band.
//! Sunshine and Wolf (GStreamer) repeat SPS/PPS (and HEVC's VPS) before every IDR, and so does
//! openh264 (proven by a test against it); should a host not, the streamer prepends the last
//! parameter sets it saw. AV1 carries its sequence header in the temporal unit and is left alone.

use memchr::memmem;
use wire::browser::VideoCodec;

/// NAL unit kinds that matter here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ParamSet {
    Vps,
    Sps,
    Pps,
}

/// The NAL units of an Annex B stream (payloads, without start codes), found lazily: the cache
/// stops at the first slice, so the bulk of an access unit is never scanned.
pub fn nal_units(data: &[u8]) -> NalUnits<'_> {
    NalUnits {
        data,
        next: memmem::find(data, START_CODE).map(|i| i + START_CODE.len()),
    }
}

const START_CODE: &[u8] = &[0, 0, 1];

/// Iterator of [`nal_units`].
pub struct NalUnits<'a> {
    data: &'a [u8],
    /// Where the next NAL unit's payload starts.
    next: Option<usize>,
}

impl<'a> Iterator for NalUnits<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        let s = self.next?;
        let rest = &self.data[s..];
        match memmem::find(rest, START_CODE) {
            Some(at) => {
                self.next = Some(s + at + START_CODE.len());
                // Back over any zeros before the next start code (4-byte form,
                // trailing_zero_8bits).
                let mut e = s + at;
                while e > s && self.data[e - 1] == 0 {
                    e -= 1;
                }
                Some(&self.data[s..e])
            }
            None => {
                self.next = None;
                Some(rest)
            }
        }
    }
}

/// A slice (VCL) NAL unit: parameter sets never follow one within an access unit (H.264 and
/// H.265 both put VPS/SPS/PPS before the first slice of the picture).
fn is_slice(codec: VideoCodec, nal: &[u8]) -> bool {
    let Some(&first) = nal.first() else {
        return false;
    };
    if is_hevc(codec) {
        (first >> 1) & 0x3F < 32
    } else {
        (1..=5).contains(&(first & 0x1F))
    }
}

fn classify(codec: VideoCodec, nal: &[u8]) -> Option<ParamSet> {
    let first = *nal.first()?;
    if is_hevc(codec) {
        match (first >> 1) & 0x3F {
            32 => Some(ParamSet::Vps),
            33 => Some(ParamSet::Sps),
            34 => Some(ParamSet::Pps),
            _ => None,
        }
    } else {
        match first & 0x1F {
            7 => Some(ParamSet::Sps),
            8 => Some(ParamSet::Pps),
            _ => None,
        }
    }
}

fn is_hevc(codec: VideoCodec) -> bool {
    matches!(
        codec,
        VideoCodec::HevcMain
            | VideoCodec::HevcMain10
            | VideoCodec::HevcRext8_444
            | VideoCodec::HevcRext10_444
    )
}

fn is_av1(codec: VideoCodec) -> bool {
    matches!(
        codec,
        VideoCodec::Av1Main8
            | VideoCodec::Av1Main10
            | VideoCodec::Av1High8_444
            | VideoCodec::Av1High10_444
    )
}

/// What [`ParamSetCache::process`] did to a keyframe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyframeFix {
    /// Not a keyframe, AV1, or it carried its parameter sets.
    Unchanged,
    /// Cached parameter sets were prepended.
    Prepended,
    /// A keyframe without parameter sets, and none seen yet: forwarded as is.
    Missing,
}

/// Remembers the last parameter sets of an H.264/HEVC stream and completes keyframes with them.
#[derive(Debug)]
pub struct ParamSetCache {
    codec: VideoCodec,
    vps: Option<Vec<u8>>,
    sps: Option<Vec<u8>>,
    pps: Option<Vec<u8>>,
}

impl ParamSetCache {
    /// A cache for one stream of `codec`.
    pub fn new(codec: VideoCodec) -> Self {
        ParamSetCache {
            codec,
            vps: None,
            sps: None,
            pps: None,
        }
    }

    /// Records the access unit's parameter sets; completes a keyframe that lacks some.
    pub fn process(&mut self, data: Vec<u8>, keyframe: bool) -> (Vec<u8>, KeyframeFix) {
        if is_av1(self.codec) {
            return (data, KeyframeFix::Unchanged);
        }
        let (mut has_vps, mut has_sps, mut has_pps) = (false, false, false);
        for nal in nal_units(&data) {
            if is_slice(self.codec, nal) {
                break;
            }
            match classify(self.codec, nal) {
                Some(ParamSet::Vps) => {
                    has_vps = true;
                    self.vps = Some(nal.to_vec());
                }
                Some(ParamSet::Sps) => {
                    has_sps = true;
                    self.sps = Some(nal.to_vec());
                }
                Some(ParamSet::Pps) => {
                    has_pps = true;
                    self.pps = Some(nal.to_vec());
                }
                None => {}
            }
        }
        let hevc = is_hevc(self.codec);
        if !keyframe || (has_sps && has_pps && (has_vps || !hevc)) {
            return (data, KeyframeFix::Unchanged);
        }
        let mut prefix = Vec::new();
        let wanted = [
            (hevc && !has_vps, &self.vps),
            (!has_sps, &self.sps),
            (!has_pps, &self.pps),
        ];
        for (missing, cached) in wanted {
            if missing {
                if let Some(nal) = cached {
                    prefix.extend_from_slice(&[0, 0, 0, 1]);
                    prefix.extend_from_slice(nal);
                }
            }
        }
        if prefix.is_empty() {
            return (data, KeyframeFix::Missing);
        }
        prefix.extend_from_slice(&data);
        (prefix, KeyframeFix::Prepended)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPS: &[u8] = &[0x67, 0x4d, 0x00, 0x33, 0xab];
    const PPS: &[u8] = &[0x68, 0xee, 0x3c, 0x80];
    const IDR: &[u8] = &[0x65, 0x88, 0x84, 0x00];
    const P: &[u8] = &[0x41, 0x9a, 0x02];

    fn annexb(nals: &[&[u8]]) -> Vec<u8> {
        nals.iter()
            .flat_map(|n| [&[0u8, 0, 0, 1][..], n].concat())
            .collect()
    }

    #[test]
    fn splits_nal_units() {
        let mut au = annexb(&[SPS, PPS]);
        au.extend_from_slice(&[0, 0, 1]);
        au.extend_from_slice(IDR);
        au.extend_from_slice(&[0, 0, 0]); // trailing padding of the last shard
        assert_eq!(
            nal_units(&au).collect::<Vec<_>>(),
            vec![SPS, PPS, &[0x65, 0x88, 0x84, 0, 0, 0, 0][..]]
        );
    }

    #[test]
    fn complete_keyframes_pass_and_bare_ones_get_the_cached_sets() {
        let mut c = ParamSetCache::new(VideoCodec::H264);
        let first = annexb(&[SPS, PPS, IDR]);
        assert_eq!(
            c.process(first.clone(), true),
            (first, KeyframeFix::Unchanged)
        );
        let p = annexb(&[P]);
        assert_eq!(c.process(p.clone(), false), (p, KeyframeFix::Unchanged));
        let (fixed, how) = c.process(annexb(&[IDR]), true);
        assert_eq!(how, KeyframeFix::Prepended);
        assert_eq!(fixed, annexb(&[SPS, PPS, IDR]));
        // Only the missing one is added.
        let (fixed, _) = c.process(annexb(&[PPS, IDR]), true);
        assert_eq!(fixed, annexb(&[SPS, PPS, IDR]));
    }

    #[test]
    fn the_scan_stops_at_the_first_slice() {
        // Parameter sets precede the slices of a picture; NAL units after the first slice are
        // slice data as far as the cache is concerned and are not read.
        let other_sps: &[u8] = &[0x67, 0x64, 0x00, 0x1f];
        let mut c = ParamSetCache::new(VideoCodec::H264);
        c.process(annexb(&[SPS, PPS, IDR, other_sps]), true);
        let (fixed, _) = c.process(annexb(&[PPS, IDR]), true);
        assert_eq!(fixed, annexb(&[SPS, PPS, IDR]));
        // A delta frame's parameter sets (before its slice) are still recorded.
        c.process(annexb(&[other_sps, P]), false);
        let (fixed, _) = c.process(annexb(&[PPS, IDR]), true);
        assert_eq!(fixed, annexb(&[other_sps, PPS, IDR]));
    }

    #[test]
    fn nothing_cached_forwards_as_is() {
        let mut c = ParamSetCache::new(VideoCodec::H264);
        let bare = annexb(&[IDR]);
        assert_eq!(c.process(bare.clone(), true), (bare, KeyframeFix::Missing));
    }

    #[test]
    fn hevc_needs_vps_too() {
        let vps: &[u8] = &[0x40, 0x01, 0x0c];
        let sps: &[u8] = &[0x42, 0x01, 0x01];
        let pps: &[u8] = &[0x44, 0x01, 0xc1];
        let idr: &[u8] = &[0x26, 0x01, 0xaf];
        let mut c = ParamSetCache::new(VideoCodec::HevcMain);
        c.process(annexb(&[vps, sps, pps, idr]), true);
        let (fixed, how) = c.process(annexb(&[idr]), true);
        assert_eq!(how, KeyframeFix::Prepended);
        assert_eq!(fixed, annexb(&[vps, sps, pps, idr]));
    }

    /// The H.264 our demo host produces comes from openh264: its IDR access units carry SPS and
    /// PPS in-band, so the cache never has to step in for it.
    #[test]
    fn openh264_keyframes_carry_sps_and_pps() {
        use openh264::encoder::Encoder;
        use openh264::formats::YUVBuffer;
        let mut encoder = Encoder::new().expect("openh264 encoder");
        let (w, h) = (64usize, 64usize);
        let yuv = YUVBuffer::new(w, h);
        let mut keyframes = 0;
        for i in 0..4 {
            if i == 2 {
                encoder.force_intra_frame();
            }
            let stream = encoder.encode(&yuv).expect("encode");
            let au = stream.to_vec();
            let kinds: Vec<u8> = nal_units(&au).map(|n| n[0] & 0x1F).collect();
            if kinds.contains(&5) {
                keyframes += 1;
                assert!(
                    kinds.contains(&7) && kinds.contains(&8),
                    "IDR without SPS/PPS: {kinds:?}"
                );
                let mut c = ParamSetCache::new(VideoCodec::H264);
                assert_eq!(c.process(au.clone(), true).1, KeyframeFix::Unchanged);
            }
        }
        assert!(keyframes >= 2, "first frame and the forced one are IDRs");
    }
}
