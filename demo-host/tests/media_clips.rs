//! The shipped HEVC and AV1 clips: format, keyframes, looping, send-time stamps.

use demo_host::media::clip::{self, AV1_CLIP, HEVC_CLIP};
use demo_host::media::sei::{nal_units, obus};
use demo_host::media::{
    open_video, read_send_time, stamp_send_time, PatternStyle, SourceKind, VideoCodec, VideoFormat,
};

fn style() -> PatternStyle {
    PatternStyle {
        label: "x".into(),
        color: [1, 2, 3],
    }
}

/// A 60 fps format of `codec`.
fn sixty_fps(codec: VideoCodec, (width, height): (u32, u32), bitrate_kbps: u32) -> VideoFormat {
    VideoFormat {
        codec,
        width,
        height,
        fps: 60,
        bitrate_kbps,
    }
}

fn hevc_types(data: &[u8]) -> Vec<u8> {
    nal_units(data)
        .filter_map(|(_, n)| n.first().map(|b| (b >> 1) & 0x3F))
        .collect()
}

#[test]
fn clips_parse_into_sixty_access_units_keyframe_first() {
    assert!(HEVC_CLIP.len() + AV1_CLIP.len() < 400_000);
    for (bytes, codec) in [(HEVC_CLIP, VideoCodec::Hevc), (AV1_CLIP, VideoCodec::Av1)] {
        let c = clip::parse(bytes).unwrap();
        assert_eq!(
            (c.codec, c.width, c.height, c.fps, c.frames.len()),
            (codec, 640, 360, 60, 60)
        );
        assert!(c.frames[0].keyframe);
        assert!(
            c.frames[1..].iter().all(|f| !f.keyframe),
            "{codec:?}: keyframes past the first"
        );
    }
    // HEVC: VPS, SPS, PPS then an IRAP picture; later AUs are plain pictures.
    let hevc = clip::parse(HEVC_CLIP).unwrap();
    let types = hevc_types(&hevc.frames[0].data);
    assert_eq!(&types[..3], &[32, 33, 34], "{types:?}");
    assert!(types.iter().any(|t| (16..=21).contains(t)), "{types:?}");
    assert!(hevc.frames[1..]
        .iter()
        .all(|f| hevc_types(&f.data).iter().all(|&t| t < 32 || t == 39)));
    // AV1: every temporal unit starts with a temporal delimiter; the first has a sequence header.
    let av1 = clip::parse(AV1_CLIP).unwrap();
    for f in av1.frames.iter() {
        let types: Vec<u8> = obus(&f.data).map(|(_, t, _)| t).collect();
        assert_eq!(types[0], 2, "{types:?}");
        // The OBUs tile the whole unit: the last payload ends at its end.
        let (_, _, last) = obus(&f.data).last().unwrap();
        let end = last.as_ptr() as usize - f.data.as_ptr() as usize + last.len();
        assert_eq!(end, f.data.len());
    }
    assert!(obus(&av1.frames[0].data).any(|(_, t, _)| t == 1));
}

#[test]
fn hevc_and_av1_sources_loop_the_clips_and_restart_on_keyframe_request() {
    for codec in [VideoCodec::Hevc, VideoCodec::Av1] {
        for kind in [SourceKind::Live, SourceKind::Replay] {
            let asked = sixty_fps(codec, (1920, 1080), 10_000);
            let mut src = open_video(kind, asked, style()).unwrap();
            assert_eq!(
                src.format(),
                VideoFormat {
                    width: 640,
                    height: 360,
                    ..asked
                }
            );
            let first = src.next_frame(false).unwrap();
            assert!(first.keyframe);
            let second = src.next_frame(false).unwrap();
            for _ in 2..60 {
                assert!(!src.next_frame(false).unwrap().keyframe);
            }
            assert_eq!(
                src.next_frame(false).unwrap(),
                first,
                "wraps to the keyframe"
            );
            assert_eq!(src.next_frame(false).unwrap(), second);
            assert_eq!(
                src.next_frame(true).unwrap(),
                first,
                "keyframe request restarts"
            );
        }
    }
}

#[test]
fn send_time_stamps_round_trip_on_hevc_and_av1() {
    let t = 0x0000_0300_0000_0001_u64; // needs emulation prevention in HEVC
    let hevc = clip::parse(HEVC_CLIP).unwrap();
    for f in [&hevc.frames[0], &hevc.frames[1]] {
        assert_eq!(read_send_time(VideoCodec::Hevc, &f.data), None);
        let s = stamp_send_time(VideoCodec::Hevc, &f.data, t);
        assert_eq!(read_send_time(VideoCodec::Hevc, &s), Some(t));
        let types = hevc_types(&s);
        let sei = types.iter().position(|&x| x == 39).unwrap();
        assert!(
            types[sei + 1] < 32,
            "SEI not right before the first picture NAL: {types:?}"
        );
        assert!(types[..sei].iter().all(|&x| x >= 32), "{types:?}");
        let (_, nal) = nal_units(&s).nth(sei).unwrap();
        assert!(
            nal.windows(4).any(|w| w == [0, 0, 3, 3]),
            "no emulation prevention"
        );
    }
    let av1 = clip::parse(AV1_CLIP).unwrap();
    for f in [&av1.frames[0], &av1.frames[1]] {
        assert_eq!(read_send_time(VideoCodec::Av1, &f.data), None);
        let s = stamp_send_time(VideoCodec::Av1, &f.data, t);
        assert_eq!(read_send_time(VideoCodec::Av1, &s), Some(t));
        let types: Vec<u8> = obus(&s).map(|(_, t, _)| t).collect();
        let meta = types.iter().position(|&x| x == 5).unwrap();
        assert!(matches!(types[meta + 1], 3 | 6), "{types:?}");
        assert!(
            types[..meta].iter().all(|&x| matches!(x, 1 | 2)),
            "{types:?}"
        );
        assert_eq!(s.len(), f.data.len() + 28);
    }
}

#[test]
fn filled_clips_reach_the_frame_budget() {
    use demo_host::media::{open_video_with, VideoOptions};
    for codec in [VideoCodec::Hevc, VideoCodec::Av1] {
        let asked = sixty_fps(codec, (640, 360), 30_000);
        let mut src = open_video_with(
            SourceKind::Replay,
            asked,
            style(),
            VideoOptions {
                fill_to_bitrate: true,
            },
        )
        .unwrap();
        let plain = clip::parse(if codec == VideoCodec::Hevc {
            HEVC_CLIP
        } else {
            AV1_CLIP
        })
        .unwrap();
        for original in plain.frames.iter().take(5) {
            let f = src.next_frame(false).unwrap();
            assert!(f.data.len() >= 62_500 - 8, "{codec:?}: {}", f.data.len());
            assert_eq!(
                &f.data[..original.data.len()],
                &original.data[..],
                "filler only appended"
            );
            let s = stamp_send_time(codec, &f.data, 42);
            assert_eq!(read_send_time(codec, &s), Some(42));
        }
    }
}
