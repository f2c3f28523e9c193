//! Which of the browser's payload types carries the host's video (sans-IO, pure functions).
//!
//! The host's codec is fixed before the browser negotiates, so the peer cannot transcode its way
//! out of a mismatch: an offer without the host's codec is refused up front (str0m reports the
//! m-lines only once connected), and the payload type is chosen from what the browser accepted,
//! matching the H.264 profile of the stream when the browser offered several.

use str0m::format::{Codec, PayloadParams};
use str0m::media::Pt;
use wire::browser::VideoCodec;

pub(super) fn codec_matches(codec: VideoCodec, p: &PayloadParams) -> bool {
    let spec = p.spec();
    match codec {
        VideoCodec::H264 | VideoCodec::H264High444 => {
            spec.codec == Codec::H264 && spec.format.packetization_mode.unwrap_or(0) == 1
        }
        VideoCodec::HevcMain
        | VideoCodec::HevcMain10
        | VideoCodec::HevcRext8_444
        | VideoCodec::HevcRext10_444 => spec.codec == Codec::H265,
        VideoCodec::Av1Main8
        | VideoCodec::Av1Main10
        | VideoCodec::Av1High8_444
        | VideoCodec::Av1High10_444 => spec.codec == Codec::Av1,
    }
}

/// The payload type for the host's codec: for H.264 packetization-mode 1, the one whose
/// profile matches the stream's SPS if offered (constrained baseline 0x42, main 0x4d, high 0x64),
/// else the first.
pub(super) fn choose_video_pt<'a>(
    codec: VideoCodec,
    profile_idc: Option<u8>,
    params: impl Iterator<Item = &'a PayloadParams>,
) -> Option<Pt> {
    let matching: Vec<&PayloadParams> = params.filter(|p| codec_matches(codec, p)).collect();
    let by_profile = profile_idc.and_then(|idc| {
        matching.iter().find(|p| {
            p.spec()
                .format
                .profile_level_id
                .is_some_and(|id| (id >> 16) as u8 == idc)
        })
    });
    by_profile.or(matching.first()).map(|p| p.pt())
}

/// Whether an offer has a video m-line with the host's codec (H.264 only in packetization-mode
/// 1, which the packetizer produces).
pub(super) fn offer_has_codec(sdp: &str, codec: VideoCodec) -> bool {
    let name = match codec {
        VideoCodec::H264 | VideoCodec::H264High444 => "h264/90000",
        VideoCodec::HevcMain
        | VideoCodec::HevcMain10
        | VideoCodec::HevcRext8_444
        | VideoCodec::HevcRext10_444 => "h265/90000",
        VideoCodec::Av1Main8
        | VideoCodec::Av1Main10
        | VideoCodec::Av1High8_444
        | VideoCodec::Av1High10_444 => "av1/90000",
    };
    let sdp = sdp.to_ascii_lowercase();
    sdp.split("\nm=").skip(1).any(|section| {
        if !section.starts_with("video ") {
            return false;
        }
        let pts: Vec<&str> = section
            .lines()
            .filter_map(|l| l.trim().strip_prefix("a=rtpmap:"))
            .filter_map(|l| l.split_once(' '))
            .filter(|(_, enc)| enc.trim().starts_with(name))
            .map(|(pt, _)| pt)
            .collect();
        if name != "h264/90000" {
            return !pts.is_empty();
        }
        section.lines().any(|l| {
            l.trim()
                .strip_prefix("a=fmtp:")
                .and_then(|l| l.split_once(' '))
                .is_some_and(|(pt, params)| {
                    pts.contains(&pt) && params.contains("packetization-mode=1")
                })
        })
    })
}

/// `profile_idc` of the first H.264 SPS in an Annex B access unit.
pub(super) fn h264_profile_idc(au: &[u8]) -> Option<u8> {
    let mut i = 0;
    while i + 4 < au.len() {
        if au[i] == 0 && au[i + 1] == 0 && au[i + 2] == 1 {
            if au[i + 3] & 0x1f == 7 {
                return au.get(i + 4).copied();
            }
            i += 3;
        } else {
            i += 1;
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offer_codec_check() {
        let offer = "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=rtpmap:111 opus/48000/2\r\n\
                     m=video 9 UDP/TLS/RTP/SAVPF 96 102 45\r\na=rtpmap:96 VP8/90000\r\n\
                     a=rtpmap:102 H264/90000\r\n\
                     a=fmtp:102 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f\r\n\
                     a=rtpmap:45 AV1/90000\r\n";
        assert!(offer_has_codec(offer, VideoCodec::H264));
        assert!(offer_has_codec(offer, VideoCodec::Av1Main8));
        assert!(!offer_has_codec(offer, VideoCodec::HevcMain));
        let mode0 = offer.replace("packetization-mode=1", "packetization-mode=0");
        assert!(!offer_has_codec(&mode0, VideoCodec::H264));
        assert!(!offer_has_codec("garbage", VideoCodec::H264));
    }

    #[test]
    fn sps_profile() {
        assert_eq!(
            h264_profile_idc(&[0, 0, 0, 1, 0x67, 0x64, 0, 0x1f, 0, 0, 1, 0x68]),
            Some(0x64)
        );
        assert_eq!(h264_profile_idc(&[0, 0, 1, 0x65, 0x88]), None);
        assert_eq!(h264_profile_idc(&[0, 0, 1, 0x67]), None);
        assert_eq!(h264_profile_idc(&[]), None);
    }
}
