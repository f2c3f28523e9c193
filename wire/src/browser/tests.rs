//! The worked examples of contract §5, each decoded from its hex dump and encoded back to it, plus
//! length checks and fuzz-style "never panics" properties.

use super::*;
use proptest::prelude::*;

fn unhex(s: &str) -> Vec<u8> {
    let clean: String = s.split_whitespace().collect();
    hex::decode(clean).unwrap()
}

/// Decodes `bytes`, checks it equals `expected`, and checks that encoding `expected` gives `bytes`.
fn both_ways(bytes: &[u8], expected: Message<'_>) {
    assert_eq!(Message::decode(bytes).unwrap(), expected);
    assert_eq!(expected.encoded_len(), bytes.len());
    assert_eq!(expected.to_vec().unwrap(), bytes);
}

const AU: &str = "00 00 00 01 67 42 00 1f 00 00 00 01 68 ce 3c 80 00 00 00 01 65 88 84 00";

fn example_frame(au: &[u8]) -> VideoFrame<'_> {
    VideoFrame {
        codec: VideoCodec::H264.to_byte(),
        keyframe: true,
        pts_us: 1_000_000,
        width: 1920,
        height: 1080,
        data: au,
    }
}

#[test]
fn s5_1_video_frame() {
    let bytes = unhex(
        "01 01 01 00 00 00 00 00 0f 42 40 07 80 04 38 00
         00 00 01 67 42 00 1f 00 00 00 01 68 ce 3c 80 00
         00 00 01 65 88 84 00",
    );
    assert_eq!(bytes.len(), 39);
    let au = unhex(AU);
    let frame = example_frame(&au);
    both_ways(&bytes, Message::VideoFrame(frame));
    // The zero-copy helpers produce the same bytes.
    assert_eq!(encode_video_header(&frame)[..], bytes[..15]);
    assert_eq!(video_frame_message(&frame), bytes);
    // Payload is bytes 15..39 and holds NAL types 7, 8, 5.
    let Message::VideoFrame(v) = Message::decode(&bytes).unwrap() else {
        panic!("not a video frame")
    };
    assert_eq!(v.data, &bytes[15..]);
    let nal_types: Vec<u8> = [4usize, 12, 20].iter().map(|&i| v.data[i] & 0x1f).collect();
    assert_eq!(nal_types, [7, 8, 5]);
}

#[test]
fn s5_1_video_batch_of_one() {
    let bytes = unhex(
        "03 00 01 00 00 00 27 01 01 01 00 00 00 00 00 0f
         42 40 07 80 04 38 00 00 00 01 67 42 00 1f 00 00
         00 01 68 ce 3c 80 00 00 00 01 65 88 84 00",
    );
    assert_eq!(bytes.len(), 46);
    let au = unhex(AU);
    both_ways(&bytes, Message::VideoBatch(vec![example_frame(&au)]));
}

#[test]
fn s5_2_keyboard_shift_a() {
    both_ways(
        &unhex("10 00 01 01 00 41"),
        Message::Keyboard(KeyboardInput::Key {
            is_down: true,
            modifiers: modifiers::SHIFT,
            key: 0x41,
        }),
    );
    both_ways(
        &unhex("10 00 00 01 00 41"),
        Message::Keyboard(KeyboardInput::Key {
            is_down: false,
            modifiers: modifiers::SHIFT,
            key: 0x41,
        }),
    );
}

#[test]
fn s5_3_stream_init() {
    both_ways(
        &unhex("30 01 07 80 04 38 3c 02 00 00 bb 80 00"),
        Message::StreamInit(StreamInit {
            codec: VideoCodec::H264,
            width: 1920,
            height: 1080,
            fps: 60,
            audio_channels: 2,
            sample_rate: 48000,
            touch_supported: false,
            opus: None,
        }),
    );
}

#[test]
fn stream_init_carries_the_surround_layout_after_the_core_bytes() {
    // 5.1, four streams of which two coupled, identity mapping: 13 core bytes, then 2 + 6.
    let layout = OpusLayout::new(4, 2, &[0, 1, 2, 3, 4, 5]).unwrap();
    let bytes = unhex("30 01 07 80 04 38 3c 06 00 00 bb 80 01 04 02 00 01 02 03 04 05");
    both_ways(
        &bytes,
        Message::StreamInit(StreamInit {
            codec: VideoCodec::H264,
            width: 1920,
            height: 1080,
            fps: 60,
            audio_channels: 6,
            sample_rate: 48000,
            touch_supported: true,
            opus: Some(layout),
        }),
    );
    // A reader of the core 13 bytes (Helix) sees the same stream.
    let Message::StreamInit(core) = Message::decode(&bytes[..STREAM_INIT_LEN]).unwrap() else {
        panic!("not a StreamInit");
    };
    assert_eq!((core.audio_channels, core.opus), (6, None));
    // A layout naming a stream channel that does not exist is an error, not a guess.
    let mut bad = bytes.clone();
    bad[20] = 9;
    assert!(matches!(
        Message::decode(&bad),
        Err(DecodeError::BadOpusLayout(_))
    ));
}

#[test]
fn s5_4_more_vectors() {
    both_ways(
        &unhex("12 01 08 00 04 00 10 00 10 00"),
        Message::MouseAbsolute(MouseAbsolute {
            x: 2048,
            y: 1024,
            ref_width: 4096,
            ref_height: 4096,
        }),
    );
    both_ways(
        &unhex("13 00 ff fb 00 0c"),
        Message::MouseRelative(MouseRelative { dx: -5, dy: 12 }),
    );
    both_ways(
        &unhex("11 02 01 01"),
        Message::MouseClick(MouseClick::Button {
            is_down: true,
            button: 1,
        }),
    );
    both_ways(
        &unhex("11 04 00 fd"),
        Message::MouseClick(MouseClick::Wheel { dx: 0, dy: -3 }),
    );
    let ping = Ping {
        seq: 7,
        client_time_us: 123_456_789,
    };
    both_ways(
        &unhex("40 00 00 00 07 00 00 00 00 07 5b cd 15"),
        Message::Ping(ping),
    );
    both_ways(
        &unhex("41 00 00 00 07 00 00 00 00 07 5b cd 15 00 06 47 48 46 20 40 00"),
        Message::Pong(Pong::answer(ping, 1_767_225_600_000_000)),
    );
    let control = unhex(
        "20 7b 22 73 65 74 5f 76 69 64 65 6f 5f 65 6e 61 62 6c 65 64 22 3a 66 61 6c 73 65 7d",
    );
    assert_eq!(control.len(), 28);
    both_ways(&control, Message::Control(r#"{"set_video_enabled":false}"#));
    assert_eq!(
        ClientControl::parse(r#"{"set_video_enabled":false}"#).unwrap(),
        ClientControl::SetVideoEnabled(false)
    );
    assert_eq!(
        ClientControl::SetVideoEnabled(false).to_json().as_bytes(),
        &control[1..]
    );
}

#[test]
fn shared_stream_control_json_round_trips() {
    for c in [
        ClientControl::RequestControl,
        ClientControl::GrantControl(7),
        ClientControl::ReleaseControl,
    ] {
        assert_eq!(ClientControl::parse(&c.to_json()).unwrap(), c);
    }
    assert_eq!(
        ClientControl::parse(r#"{"grant_control":3}"#).unwrap(),
        ClientControl::GrantControl(3)
    );
    assert_eq!(
        ClientControl::parse(r#"{"request_control":false}"#).unwrap(),
        ClientControl::Unknown
    );
    assert!(ClientControl::parse(r#"{"grant_control":-1}"#).is_err());
}

#[test]
fn s5_init_example() {
    let text = r#"{"type":"init","host_id":0,"app_id":1,"session_id":"ses_01k9cz4h00000000000000000-hq",
 "width":1920,"height":1080,"fps":60,"bitrate":10000,"packet_size":1024,
 "play_audio_local":false,"video_supported_formats":257,
 "client_unique_id":"helix-agent-3f1c2a9e-8b7d-4c55-9e21-0a6b5d4c3e2f"}"#;
    let init = Init::parse(text).unwrap();
    init.validate().unwrap();
    assert_eq!(init.host_id, 0);
    assert_eq!(init.app_id, 1);
    assert_eq!(
        init.session_id.as_deref(),
        Some("ses_01k9cz4h00000000000000000-hq")
    );
    assert_eq!((init.width, init.height, init.fps), (1920, 1080, 60));
    assert_eq!((init.bitrate, init.packet_size), (10000, 1024));
    assert!(!init.play_audio_local);
    assert_eq!(init.video_supported_formats, formats::H264 | formats::H265);
    assert_eq!(
        init.client_unique_id.as_deref(),
        Some("helix-agent-3f1c2a9e-8b7d-4c55-9e21-0a6b5d4c3e2f")
    );
    assert_eq!(init.protocol_version(), PROTOCOL_HELIX);
    assert!(!init.supports_moongate_input());
    assert_eq!(init.lobby_id, None);
    assert!(init.credentials.is_none());
    // Encoding back and parsing again gives the same value.
    let again = Init::parse(&serde_json::to_string(&init).unwrap()).unwrap();
    assert_eq!(again, init);
}

#[test]
fn init_moongate_fields_unknown_fields_and_secret() {
    let text = r#"{"type":"init","host_id":0,"app_id":7,"width":1280,"height":720,"fps":30,
      "bitrate":5000,"packet_size":1392,"play_audio_local":true,"video_supported_formats":1,
      "protocol_version":2,"lobby_id":"lobby-1","credentials":"s3cret-token",
      "user_retry":true,"video_mode":"x","avatar_url":"http://a"}"#;
    let init = Init::parse(text).unwrap();
    assert_eq!(init.protocol_version(), PROTOCOL_MOONGATE);
    assert!(init.supports_moongate_input());
    assert_eq!(init.lobby_id.as_deref(), Some("lobby-1"));
    assert_eq!(
        init.credentials.as_ref().map(|c| c.expose()),
        Some("s3cret-token")
    );
    assert_eq!(init.session_id, None);
    let dbg = format!("{init:?}");
    assert!(!dbg.contains("s3cret"), "{dbg}");
    assert!(dbg.contains("[redacted]"));
}

#[test]
fn init_numbers_from_javascript() {
    let text = r#"{"type":"init","host_id":0,"app_id":1,"width":1919.6,"height":1080.0,"fps":60,
      "bitrate":7500,"packet_size":1024,"play_audio_local":false,"video_supported_formats":1}"#;
    let init = Init::parse(text).unwrap();
    assert_eq!((init.width, init.height), (1920, 1080));
    for bad in ["-1", "\"1920\"", "5000000000", "null"] {
        let t = text.replace("1919.6", bad);
        assert!(matches!(Init::parse(&t), Err(InitError::Json(_))), "{bad}");
    }
}

#[test]
fn init_rejections() {
    let wrong_type = r#"{"type":"hello","host_id":0,"app_id":1,"width":1,"height":1,"fps":1,
      "bitrate":1,"packet_size":1,"play_audio_local":false,"video_supported_formats":1}"#;
    assert!(matches!(Init::parse(wrong_type), Err(InitError::NotInit(t)) if t == "hello"));
    assert!(matches!(
        Init::parse(r#"{"type":"init"}"#),
        Err(InitError::Json(_))
    ));
    assert!(matches!(Init::parse("not json"), Err(InitError::Json(_))));
    assert!(matches!(
        Init::parse(r#"{"AuthenticateAndInit":{}}"#),
        Err(InitError::Json(_))
    ));
    let big = wrong_type
        .replace("hello", "init")
        .replace("\"fps\":1", "\"fps\":300");
    let init = Init::parse(&big).unwrap();
    assert!(matches!(
        init.validate(),
        Err(InitError::OutOfRange {
            field: "fps",
            value: 300
        })
    ));
    let mut bad_id = Init::parse(&wrong_type.replace("hello", "init")).unwrap();
    bad_id.validate().unwrap();
    bad_id.client_unique_id = Some("a\nb".into());
    assert!(matches!(
        bad_id.validate(),
        Err(InitError::BadId {
            field: "client_unique_id"
        })
    ));
    bad_id.client_unique_id = None;
    bad_id.lobby_id = Some("x".repeat(MAX_ID_LEN + 1));
    assert!(matches!(
        bad_id.validate(),
        Err(InitError::BadId { field: "lobby_id" })
    ));
    let zero = wrong_type
        .replace("hello", "init")
        .replace("\"width\":1", "\"width\":0");
    assert!(matches!(
        Init::parse(&zero).unwrap().validate(),
        Err(InitError::OutOfRange { field: "width", .. })
    ));
}

#[test]
fn s5_connection_complete_and_error_json() {
    let expected = r#"{"ConnectionComplete":{"capabilities":{"touch":false},"width":1920,"height":1080,"client_id":null}}"#;
    assert_eq!(connection_complete_json(false, 1920, 1080), expected);
    match ServerJson::parse(expected).unwrap() {
        ServerJson::ConnectionComplete {
            connection_complete: c,
        } => {
            assert_eq!(
                (c.width, c.height, c.capabilities.touch),
                (1920, 1080, false)
            );
        }
        other => panic!("{other:?}"),
    }
    // Missing capabilities default to {touch:false}.
    assert!(matches!(
        ServerJson::parse(r#"{"ConnectionComplete":{"width":1,"height":2}}"#).unwrap(),
        ServerJson::ConnectionComplete { connection_complete: c } if !c.capabilities.touch
    ));
    let err = error_json(
        ErrorCode::AlreadyStreaming,
        "AlreadyStreaming: session busy \"x\"",
    );
    assert_eq!(
        err,
        r#"{"error":"AlreadyStreaming: session busy \"x\"","code":"AlreadyStreaming"}"#
    );
    assert_eq!(
        ServerJson::parse(&err).unwrap(),
        ServerJson::Error {
            error: "AlreadyStreaming: session busy \"x\"".into(),
            code: Some(ErrorCode::AlreadyStreaming),
        }
    );
    // An older gateway's error has no code; a newer gateway's unknown code decodes as Unknown.
    assert_eq!(
        ServerJson::parse(r#"{"error":"HostNotPaired: no"}"#).unwrap(),
        ServerJson::Error {
            error: "HostNotPaired: no".into(),
            code: None,
        }
    );
    assert_eq!(
        ServerJson::parse(r#"{"error":"x","code":"FromTheFuture"}"#).unwrap(),
        ServerJson::Error {
            error: "x".into(),
            code: Some(ErrorCode::Unknown),
        }
    );
}

#[test]
fn error_codes_have_stable_names() {
    for (code, name) in [
        (ErrorCode::InternalServerError, "InternalServerError"),
        (ErrorCode::HostNotFound, "HostNotFound"),
        (ErrorCode::HostNotPaired, "HostNotPaired"),
        (ErrorCode::AppNotFound, "AppNotFound"),
        (ErrorCode::AlreadyStreaming, "AlreadyStreaming"),
        (ErrorCode::SessionNotFound, "SessionNotFound"),
        (ErrorCode::Unauthorized, "Unauthorized"),
        (ErrorCode::TooManyStreams, "TooManyStreams"),
        (ErrorCode::Superseded, "Superseded"),
    ] {
        assert_eq!(code.as_str(), name);
        assert_eq!(code.to_string(), name);
        assert_eq!(serde_json::to_string(&code).unwrap(), format!("\"{name}\""));
        assert_eq!(
            serde_json::from_str::<ErrorCode>(&format!("\"{name}\"")).unwrap(),
            code
        );
    }
    assert_eq!(ErrorCode::AlreadyStreaming.as_str(), ALREADY_STREAMING);
}

#[test]
fn browser_error_text_starts_with_its_code() {
    let e = BrowserError::new(ErrorCode::HostNotPaired, "pair it first");
    assert_eq!(e.text, "HostNotPaired: pair it first");
    assert_eq!(
        e.to_json(),
        r#"{"error":"HostNotPaired: pair it first","code":"HostNotPaired"}"#
    );
    let stopped = BrowserError::with_text(ErrorCode::Superseded, "superseded");
    assert_eq!(
        stopped.to_json(),
        r#"{"error":"superseded","code":"Superseded"}"#
    );
}

#[test]
fn streamer_codes_map_to_browser_codes() {
    use crate::ipc::{ErrorCode as Ipc, StreamerError};
    let cases = [
        (Ipc::AlreadyStreaming, ErrorCode::AlreadyStreaming),
        (Ipc::HostNotPaired, ErrorCode::HostNotPaired),
        (Ipc::AppNotFound, ErrorCode::AppNotFound),
        (Ipc::HostUnreachable, ErrorCode::HostUnreachable),
        (Ipc::BadInit, ErrorCode::BadInit),
        (Ipc::BadSignal, ErrorCode::BadSignal),
        (Ipc::NoIcePort, ErrorCode::NoIcePort),
        (Ipc::LaunchFailed, ErrorCode::LaunchFailed),
        (Ipc::StreamSetupFailed, ErrorCode::StreamSetupFailed),
        (Ipc::UnsupportedCodec, ErrorCode::UnsupportedCodec),
        (Ipc::ConnectionLost, ErrorCode::ConnectionLost),
        (Ipc::Internal, ErrorCode::InternalServerError),
        (Ipc::Other, ErrorCode::InternalServerError),
    ];
    for (ipc, browser) in cases {
        assert_eq!(ErrorCode::from(ipc), browser, "{ipc:?}");
    }
    let e = BrowserError::from(&StreamerError {
        code: Ipc::AlreadyStreaming,
        message: "host busy".into(),
    });
    assert_eq!(e.code, ErrorCode::AlreadyStreaming);
    assert_eq!(e.text, "AlreadyStreaming: host busy");
}

#[test]
fn close_codes() {
    assert_eq!(CloseCode::Normal.code(), CLOSE_NORMAL);
    assert_eq!(CloseCode::PolicyViolation.code(), 1008);
    assert_eq!(CloseCode::InternalError.code(), 1011);
    assert_eq!(CloseCode::Superseded.code(), 4000);
    assert_eq!(CloseCode::Superseded.reason(), "superseded");
    for c in [
        CloseCode::Normal,
        CloseCode::PolicyViolation,
        CloseCode::InternalError,
        CloseCode::Superseded,
    ] {
        assert_eq!(CloseCode::from_code(c.code()), Some(c));
        assert!(c.reason().len() <= 123);
    }
    assert_eq!(CloseCode::from_code(1006), None);
}

#[test]
fn audio_frame_layout() {
    let opus = [0xfc, 0xff, 0xfe];
    let bytes = audio_frame_message(2, 20_000, &opus);
    assert_eq!(bytes, unhex("02 02 00 00 00 00 00 00 4e 20 fc ff fe"));
    both_ways(
        &bytes,
        Message::AudioFrame(AudioFrame {
            channels: 2,
            pts_us: 20_000,
            data: &opus,
        }),
    );
}

#[test]
fn moongate_layouts() {
    let touch = Touch {
        event: touch_event::DOWN,
        pointer_id: 3,
        x: 0.5,
        y: 0.25,
        pressure: 1.0,
        contact_major: 0.0,
        contact_minor: 0.0,
        rotation: 0xffff,
    };
    let bytes = Message::Touch(touch).to_vec().unwrap();
    assert_eq!(
        bytes,
        unhex("14 01 00000003 3f000000 3e800000 3f800000 00000000 00000000 ffff")
    );
    both_ways(&bytes, Message::Touch(touch));

    both_ways(
        &unhex("15 00 01 01 00 07 00 00 ff ff"),
        Message::Controller(ControllerEvent::Arrival {
            id: 1,
            controller_type: 1,
            capabilities: 7,
            supported_buttons: 0xffff,
        }),
    );
    both_ways(
        &unhex("15 01 01"),
        Message::Controller(ControllerEvent::Removal { id: 1 }),
    );
    both_ways(
        &unhex("15 02 00 ff ff 80 00"),
        Message::Controller(ControllerEvent::Rumble {
            id: 0,
            low: 0xffff,
            high: 0x8000,
        }),
    );
    both_ways(
        &unhex("15 03 00 00 01 00 02"),
        Message::Controller(ControllerEvent::TriggerRumble {
            id: 0,
            left: 1,
            right: 2,
        }),
    );
    both_ways(
        &unhex("16 00 0001 00001000 ff 00 7fff 8000 0000 fffe"),
        Message::ControllerState(ControllerState {
            id: 0,
            active_mask: 1,
            buttons: 0x1000,
            left_trigger: 255,
            right_trigger: 0,
            left_stick_x: i16::MAX,
            left_stick_y: i16::MIN,
            right_stick_x: 0,
            right_stick_y: -2,
        }),
    );
}

#[test]
fn stream_error_and_text_and_highres_wheel() {
    both_ways(&unhex("31 00 02 68 69"), Message::StreamError("hi"));
    both_ways(
        &unhex("10 01 02 c3 a9"),
        Message::Keyboard(KeyboardInput::Text("é")),
    );
    both_ways(
        &unhex("11 03 00 00 00 78"),
        Message::MouseClick(MouseClick::HighResWheel { dx: 0, dy: 120 }),
    );
}

#[test]
fn strict_lengths_and_typed_errors() {
    assert_eq!(Message::decode(&[]), Err(DecodeError::Empty));
    assert_eq!(
        Message::decode(&[0x17, 0, 0]),
        Err(DecodeError::UnknownType(0x17))
    );
    assert_eq!(
        Message::decode(&[0x50]),
        Err(DecodeError::UnknownType(0x50))
    );
    // A 14-byte VideoFrame is dropped by the client: an error here.
    assert!(matches!(
        Message::decode(&[1u8; 14]),
        Err(DecodeError::TooShort {
            ty: 1,
            need: 15,
            got: 14,
            ..
        })
    ));
    // StreamInit shorter than 13 is rejected.
    assert!(matches!(
        Message::decode(&unhex("30 01 07 80 04 38 3c 02 00 00 bb 80")),
        Err(DecodeError::TooShort {
            ty: 0x30,
            need: 13,
            got: 12,
            ..
        })
    ));
    // Pong shorter than 21 is rejected; longer (HEAD extras) is accepted.
    assert!(matches!(
        Message::decode(&unhex(
            "41 00 00 00 07 00 00 00 00 07 5b cd 15 00 06 47 48 46 20 40"
        )),
        Err(DecodeError::TooShort { ty: 0x41, .. })
    ));
    let mut long_pong = unhex("41 00 00 00 07 00 00 00 00 07 5b cd 15 00 06 47 48 46 20 40 00");
    long_pong.extend_from_slice(&[0, 5, 0, 1, 0, 2, 0, 3]);
    assert!(matches!(Message::decode(&long_pong), Ok(Message::Pong(p)) if p.seq == 7));
    assert!(matches!(
        Message::decode(&unhex("10 05 00")),
        Err(DecodeError::UnknownSubtype {
            ty: 0x10,
            subtype: 5
        })
    ));
    assert!(matches!(
        Message::decode(&unhex("12 02 08 00 04 00 10 00 10 00")),
        Err(DecodeError::UnknownSubtype {
            ty: 0x12,
            subtype: 2
        })
    ));
    assert!(matches!(
        Message::decode(&unhex("13 00 ff fb 00")),
        Err(DecodeError::TooShort {
            ty: 0x13,
            need: 6,
            got: 5,
            ..
        })
    ));
    assert!(matches!(
        Message::decode(&unhex("14 01 00")),
        Err(DecodeError::TooShort {
            ty: 0x14,
            need: 28,
            ..
        })
    ));
    assert_eq!(
        Message::decode(&unhex(
            "14 01 00000003 7fc00000 3e800000 3f800000 00000000 00000000 ffff"
        )),
        Err(DecodeError::NotFinite("Touch"))
    );
    assert!(matches!(
        Message::decode(&unhex("31 00 05 68 69")),
        Err(DecodeError::TooShort { ty: 0x31, .. })
    ));
    assert_eq!(
        Message::decode(&unhex("20 ff fe")),
        Err(DecodeError::InvalidUtf8("ControlMessage"))
    );
    // Batch: declared count larger than the entries present, and a non-video entry.
    assert_eq!(
        Message::decode(&unhex(
            "03 00 02 00 00 00 0f 01 01 01 00 00 00 00 00 00 00 00 00 00 00 00"
        )),
        Err(DecodeError::TruncatedBatchEntry { index: 1 })
    );
    assert_eq!(
        Message::decode(&unhex("03 00 01 00 00 00 02 40 00")),
        Err(DecodeError::BadBatchEntry { index: 0 })
    );
}

#[test]
fn encode_length_limits() {
    let long = "x".repeat(256);
    let mut out = Vec::new();
    assert!(matches!(
        Message::Keyboard(KeyboardInput::Text(&long)).encode_into(&mut out),
        Err(EncodeError::TooLong { max: 255, .. })
    ));
    assert!(out.is_empty(), "a failed encode writes nothing");
    let long = "x".repeat(70_000);
    assert!(Message::StreamError(&long).to_vec().is_err());
}

/// Every hex row of the §5 table in `docs/browser-protocol.md` decodes and re-encodes to itself,
/// so the reference for client authors cannot drift from the code.
#[test]
fn doc_examples_match_the_code() {
    let doc = include_str!("../../../docs/browser-protocol.md");
    let section = doc
        .split("## 5. Examples (hex)")
        .nth(1)
        .and_then(|s| s.split("## 6.").next())
        .expect("§5 present");
    let mut checked = 0;
    for line in section.lines().filter(|l| l.starts_with("| ")) {
        let Some(hex_cell) = line.split('`').nth(1) else {
            continue;
        };
        let Ok(bytes) = hex::decode(hex_cell.replace(' ', "")) else {
            continue;
        };
        let m = Message::decode(&bytes).unwrap_or_else(|e| panic!("{line}: {e}"));
        assert_eq!(m.to_vec().unwrap(), bytes, "{line}");
        checked += 1;
    }
    assert!(checked >= 16, "only {checked} rows checked");
}

#[test]
fn forwarded_input_types() {
    for ty in [0x10, 0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x20] {
        assert!(msg_type::is_forwarded_input(ty), "{ty:#x}");
    }
    for ty in [0x01, 0x02, 0x03, 0x17, 0x30, 0x31, 0x40, 0x41] {
        assert!(!msg_type::is_forwarded_input(ty), "{ty:#x}");
    }
}

proptest! {
    #[test]
    fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
        let _ = Message::decode(&bytes);
    }

    #[test]
    fn decode_then_encode_is_a_prefix(ty in prop::sample::select(vec![
        0x01u8, 0x02, 0x03, 0x10, 0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x20, 0x30, 0x31, 0x40, 0x41]),
        rest in proptest::collection::vec(any::<u8>(), 0..48)) {
        let mut bytes = vec![ty];
        bytes.extend_from_slice(&rest);
        if let Ok(m) = Message::decode(&bytes) {
            let enc = m.to_vec().unwrap();
            // Re-encoding gives a message that decodes to the same value.
            prop_assert_eq!(Message::decode(&enc).unwrap(), m.clone());
            // Fixed layouts re-encode to the bytes they were read from, minus ignored trailing
            // bytes and flag/bool normalisation.
            prop_assert!(enc.len() <= bytes.len());
        }
    }

    #[test]
    fn video_round_trip(codec in any::<u8>(), keyframe in any::<bool>(), pts in any::<u64>(),
                        w in any::<u16>(), h in any::<u16>(),
                        data in proptest::collection::vec(any::<u8>(), 0..100)) {
        let f = VideoFrame { codec, keyframe, pts_us: pts, width: w, height: h, data: &data };
        let bytes = video_frame_message(&f);
        prop_assert_eq!(Message::decode(&bytes).unwrap(), Message::VideoFrame(f));
        let batch = Message::VideoBatch(vec![f, f]).to_vec().unwrap();
        prop_assert_eq!(Message::decode(&batch).unwrap(), Message::VideoBatch(vec![f, f]));
    }
}

#[test]
fn mic_opus_round_trips_and_refuses_impossible_packets() {
    let packet = [0xfc_u8, 0xff, 0xfe];
    let msg = Message::MicOpus(MicOpus {
        timestamp: 0x0001_e0c0,
        data: &packet,
    });
    let bytes = msg.to_vec().unwrap();
    assert_eq!(bytes, [0x18, 0x00, 0x01, 0xe0, 0xc0, 0xfc, 0xff, 0xfe]);
    assert_eq!(Message::decode(&bytes).unwrap(), msg);
    assert!(msg_type::is_forwarded_input(0x18));
    assert!(
        !msg_type::is_forwarded_input(0x17),
        "Helix's old raw-PCM type stays unknown"
    );
    assert_eq!(
        Message::decode(&[0x18, 0, 0, 0, 1]),
        Err(DecodeError::BadOpusPacket(0))
    );
    let mut big = vec![0x18, 0, 0, 0, 0];
    big.extend(std::iter::repeat_n(0u8, MAX_OPUS_PACKET + 1));
    assert_eq!(
        Message::decode(&big),
        Err(DecodeError::BadOpusPacket(MAX_OPUS_PACKET + 1))
    );
    assert!(Message::MicOpus(MicOpus {
        timestamp: 0,
        data: &big[5..],
    })
    .to_vec()
    .is_err());
}

#[test]
fn mic_opus_sample_counts_come_from_the_toc() {
    let samples = |data: &[u8]| MicOpus { timestamp: 0, data }.samples();
    // CELT FB 20 ms (config 31), one frame: what browsers' encoders send by default.
    assert_eq!(samples(&[31 << 3, 0]), Some(960));
    // SILK NB 60 ms (config 3), two equal frames.
    assert_eq!(samples(&[(3 << 3) | 1, 0]), Some(5760));
    // CELT 2.5 ms (config 16), code 3 with 4 frames.
    assert_eq!(samples(&[(16 << 3) | 3, 4]), Some(480));
    // Code 3: no count byte, zero frames, or over 120 ms.
    assert_eq!(samples(&[(16 << 3) | 3]), None);
    assert_eq!(samples(&[(16 << 3) | 3, 0]), None);
    assert_eq!(samples(&[(31 << 3) | 3, 7]), None);
    assert_eq!(samples(&[]), None);
}
