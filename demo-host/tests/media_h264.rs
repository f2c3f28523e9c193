//! Live and replayed H.264 of the test pattern, decoded with openh264's decoder, and send-time
//! stamps.

mod common;

use std::time::{Duration, Instant};

use demo_host::media::pattern::rgb_to_yuv;
use demo_host::media::sei::nal_units;
use demo_host::media::{
    open_video, read_send_time, stamp_send_time, PatternStyle, SourceKind, VideoCodec, VideoFormat,
};
use openh264::decoder::Decoder;
use openh264::formats::YUVSource;

fn format(width: u32, height: u32) -> VideoFormat {
    VideoFormat {
        codec: VideoCodec::H264,
        width,
        height,
        fps: 60,
        bitrate_kbps: 3000,
    }
}

fn style(color: [u8; 3]) -> PatternStyle {
    PatternStyle {
        label: "Lobby 7".into(),
        color,
    }
}

/// What a decoded picture tells: size, mean Y'CbCr of the band probe, the luma plane.
struct Picture {
    size: (usize, usize),
    band: [f64; 3],
    luma: Vec<u8>,
}

fn decode(decoder: &mut Decoder, data: &[u8]) -> Option<Picture> {
    let yuv = decoder.decode(data).expect("decodes")?;
    let (w, h) = yuv.dimensions();
    let (sy, _, _) = yuv.strides();
    let luma = (0..h)
        .flat_map(|y| yuv.y()[y * sy..y * sy + w].to_vec())
        .collect();
    Some(Picture {
        size: (w, h),
        band: common::band_mean(&yuv),
        luma,
    })
}

fn nal_types(data: &[u8]) -> Vec<u8> {
    nal_units(data)
        .filter_map(|(_, nal)| nal.first().map(|b| b & 0x1F))
        .collect()
}

fn assert_band(p: &Picture, rgb: [u8; 3]) {
    let want = rgb_to_yuv(rgb);
    for c in 0..3 {
        assert!(
            (p.band[c] - f64::from(want[c])).abs() < 8.0,
            "band {:?} vs {want:?}",
            p.band
        );
    }
}

#[test]
fn live_frames_decode_to_the_requested_size_band_colour_and_motion() {
    let color = [30, 160, 220];
    let mut src = open_video(SourceKind::Live, format(640, 361), style(color)).unwrap();
    assert_eq!((src.format().width, src.format().height), (640, 360));
    let mut decoder = Decoder::new().unwrap();
    let mut previous: Option<Vec<u8>> = None;
    for i in 0..10 {
        let frame = src.next_frame(false).unwrap();
        assert_eq!(frame.keyframe, i == 0);
        let p = decode(&mut decoder, &frame.data).expect("a picture per frame");
        assert_eq!(p.size, (640, 360));
        assert_band(&p, color);
        if let Some(prev) = &previous {
            assert_ne!(prev, &p.luma, "frame {i} repeats the previous one");
        }
        previous = Some(p.luma);
    }
}

#[test]
fn no_periodic_idr_and_forced_keyframes_are_standalone_idrs() {
    let color = [250, 200, 0];
    let mut src = open_video(SourceKind::Live, format(320, 240), style(color)).unwrap();
    let first = src.next_frame(false).unwrap();
    assert!(first.keyframe);
    let types = nal_types(&first.data);
    assert!(
        types.contains(&7) && types.contains(&8) && types.contains(&5),
        "{types:?}"
    );
    for _ in 0..90 {
        let f = src.next_frame(false).unwrap();
        assert!(
            !f.keyframe && !nal_types(&f.data).contains(&5),
            "unrequested IDR"
        );
    }
    let forced = src.next_frame(true).unwrap();
    assert!(forced.keyframe);
    let types = nal_types(&forced.data);
    assert!(
        types.contains(&7) && types.contains(&8) && types.contains(&5),
        "{types:?}"
    );
    // A decoder that never saw the stream decodes the forced keyframe alone.
    let mut fresh = Decoder::new().unwrap();
    let p = decode(&mut fresh, &forced.data).expect("standalone picture");
    assert_eq!(p.size, (320, 240));
    assert_band(&p, color);
    assert!(!src.next_frame(false).unwrap().keyframe);
}

#[test]
fn odd_and_out_of_range_sizes_are_clamped() {
    let src = open_video(SourceKind::Live, format(100, 7000), style([0, 0, 0])).unwrap();
    assert_eq!((src.format().width, src.format().height), (320, 2160));
}

#[test]
fn replay_loops_from_its_keyframe_without_encoding() {
    let live_fmt = VideoFormat {
        fps: 30,
        ..format(640, 360)
    };
    let mut live = open_video(SourceKind::Live, live_fmt, style([9, 9, 9])).unwrap();
    let t = Instant::now();
    for _ in 0..10 {
        live.next_frame(false).unwrap();
    }
    let live_per_frame = t.elapsed() / 10;

    let t = Instant::now();
    let mut src = open_video(SourceKind::Replay, live_fmt, style([9, 9, 9])).unwrap();
    eprintln!(
        "replay up-front encode of 60 frames at 640x360: {:?}",
        t.elapsed()
    );
    let frames: Vec<_> = (0..60).map(|_| src.next_frame(false).unwrap()).collect();
    assert!(frames[0].keyframe && frames[1..].iter().all(|f| !f.keyframe));
    // Wraps around to the keyframe, then continues in order.
    assert_eq!(src.next_frame(false).unwrap(), frames[0]);
    assert_eq!(src.next_frame(false).unwrap(), frames[1]);
    // A forced keyframe restarts the loop.
    assert_eq!(src.next_frame(true).unwrap(), frames[0]);
    assert_eq!(src.next_frame(false).unwrap(), frames[1]);

    // The whole loop decodes, twice over, as one stream.
    let mut decoder = Decoder::new().unwrap();
    for f in frames.iter().chain(frames.iter()) {
        let p = decode(&mut decoder, &f.data).expect("picture");
        assert_band(&p, [9, 9, 9]);
    }

    let t = Instant::now();
    for _ in 0..1000 {
        src.next_frame(false).unwrap();
    }
    let replay_per_frame = t.elapsed() / 1000;
    eprintln!("live {live_per_frame:?}/frame, replay {replay_per_frame:?}/frame");
    assert!(
        replay_per_frame * 20 < live_per_frame,
        "replay is not much cheaper than encoding"
    );
    assert!(replay_per_frame < Duration::from_millis(1));
}

#[test]
fn sei_stamp_round_trips_on_h264_and_still_decodes() {
    let mut src = open_video(SourceKind::Live, format(320, 240), style([1, 2, 3])).unwrap();
    let mut decoder = Decoder::new().unwrap();
    // 00 00 01 inside the time forces an emulation-prevention byte.
    let times = [
        0x0000_0100_0000_0002_u64,
        1_763_000_000_123_456,
        u64::MAX,
        0,
    ];
    for &t in &times {
        let frame = src.next_frame(false).unwrap();
        assert_eq!(read_send_time(VideoCodec::H264, &frame.data), None);
        let stamped = stamp_send_time(VideoCodec::H264, &frame.data, t);
        assert_eq!(read_send_time(VideoCodec::H264, &stamped), Some(t));
        // The SEI sits right before the first slice, after SPS/PPS.
        let types = nal_types(&stamped);
        let sei = types.iter().position(|&t| t == 6).unwrap();
        assert!(matches!(types[sei + 1], 1 | 5), "{types:?}");
        assert!(types[..sei].iter().all(|t| matches!(t, 7 | 8)), "{types:?}");
        let (_, sei_nal) = nal_units(&stamped).nth(sei).unwrap();
        if t == times[0] {
            assert!(
                sei_nal.windows(4).any(|w| w == [0, 0, 3, 1]),
                "no emulation prevention"
            );
        }
        assert!(
            !sei_nal
                .windows(3)
                .any(|w| w[0] == 0 && w[1] == 0 && w[2] <= 2),
            "start code inside SEI"
        );
        assert_eq!(stamped.len(), frame.data.len() + sei_nal.len() + 4);
        assert!(decode(&mut decoder, &stamped).is_some());
    }
}

#[test]
fn filled_streams_carry_the_requested_bitrate_and_still_decode() {
    use demo_host::media::{open_video_with, VideoOptions};
    let fmt = VideoFormat {
        bitrate_kbps: 8_000,
        ..format(640, 360)
    };
    let budget = 8_000_000 / 8 / 60;
    for kind in [SourceKind::Live, SourceKind::Replay] {
        let mut src = open_video_with(
            kind,
            fmt,
            style([5, 200, 5]),
            VideoOptions {
                fill_to_bitrate: true,
            },
        )
        .unwrap();
        let mut decoder = Decoder::new().unwrap();
        for i in 0..8 {
            let f = src.next_frame(false).unwrap();
            assert!(
                f.data.len() >= budget - 8,
                "{kind:?}: {} bytes",
                f.data.len()
            );
            assert_eq!(
                nal_types(&f.data).last(),
                Some(&12),
                "{kind:?}: filler last"
            );
            let stamped = stamp_send_time(VideoCodec::H264, &f.data, i);
            assert_eq!(read_send_time(VideoCodec::H264, &stamped), Some(i));
            let p = decode(&mut decoder, &stamped).expect("picture");
            assert_band(&p, [5, 200, 5]);
        }
    }
}
