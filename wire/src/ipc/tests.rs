//! IPC framing and message tests: byte layouts, round trips, partial reads, bad input.

use super::*;
use crate::browser::{self, formats, Message, StreamInit, VideoCodec};
use crate::Secret;
use bytes::{BufMut, Bytes, BytesMut};
use proptest::prelude::*;
use tokio_util::codec::{Decoder, Encoder};

fn sample_init() -> StreamerInit {
    StreamerInit {
        session_key: "ses_1-lobby_2-helix-agent-3".into(),
        mode: StreamMode::Websocket,
        host: HostAddress {
            address: "127.0.0.1".into(),
            http_port: 47989,
            https_port: 47984,
        },
        host_cert_der: vec![0x30, 0x82, 0x01, 0x0a],
        client_unique_id: "helix-agent-3".into(),
        client_cert_pem: "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n".into(),
        client_key_pem: Secret::new(
            "-----BEGIN PRIVATE KEY-----\nTOPSECRET\n-----END PRIVATE KEY-----\n",
        ),
        app_id: 1,
        width: 1920,
        height: 1080,
        fps: 60,
        bitrate_kbps: 10_000,
        packet_size: 1024,
        video_formats: formats::H264 | formats::H265,
        audio_channels: 2,
        play_audio_local: false,
        lobby_id: Some("lobby_2".into()),
        wolf_api: Some("/var/run/wolf/wolf.sock".into()),
        webrtc: Some(WebRtcSettings {
            udp_port_min: 40_000,
            udp_port_max: 40_009,
            bind_address: "0.0.0.0".into(),
            nat_1to1_ips: vec!["203.0.113.7".into()],
            nat_1to1_candidate_type: NatCandidateType::Srflx,
            network_types: vec![NetworkType::Udp4],
            disconnect_timeout_ms: 10_000,
        }),
        launch_turns: true,
    }
}

fn sample_candidate() -> IceCandidate {
    IceCandidate {
        candidate: "candidate:1 1 udp 2130706431 127.0.0.1 40000 typ host".into(),
        sdp_mid: Some("0".into()),
        sdp_mline_index: Some(0),
        username_fragment: Some("abcd".into()),
    }
}

fn all_to_streamer() -> Vec<ToStreamer> {
    vec![
        ToStreamer::Init(Box::new(sample_init())),
        ToStreamer::Input(Bytes::from_static(&[0x10, 0x00, 0x01, 0x01, 0x00, 0x41])),
        ToStreamer::RequestKeyframe,
        ToStreamer::Stop,
        ToStreamer::Signal(RemoteSignal::Description(SessionDescription {
            ty: SdpType::Offer,
            sdp: "v=0\r\n".into(),
        })),
        ToStreamer::Signal(RemoteSignal::Candidate(sample_candidate())),
        ToStreamer::Signal(RemoteSignal::CreateOffer),
        ToStreamer::LaunchTurn,
        ToStreamer::Restream(RUNG_360P),
    ]
}

const RUNG_360P: Rung = Rung {
    width: 640,
    height: 360,
    fps: 60,
    bitrate_kbps: 2_000,
};

fn all_from_streamer() -> Vec<FromStreamer> {
    vec![
        FromStreamer::Started(StreamInit {
            codec: VideoCodec::H264,
            width: 1920,
            height: 1080,
            fps: 60,
            audio_channels: 6,
            sample_rate: 48_000,
            touch_supported: true,
            opus: Some(browser::OpusLayout::new(4, 2, &[0, 1, 2, 3, 4, 5]).unwrap()),
        }),
        FromStreamer::Video(Video::new(
            true,
            1_000_000,
            0x01,
            1920,
            1080,
            Bytes::from_static(&[0, 0, 0, 1, 0x65, 0x88]),
        )),
        FromStreamer::Audio(Audio::new(
            2,
            20_000,
            Bytes::from_static(&[0xfc, 0xff, 0xfe]),
        )),
        FromStreamer::Stats(Stats {
            uptime_ms: 5000,
            video_frames: 300,
            keyframes: 2,
            host_rtt_ms: 3,
            ..Stats::default()
        }),
        FromStreamer::Log(LogLine {
            level: LogLevel::Warn,
            message: "host sent a late IDR".into(),
        }),
        FromStreamer::Error(StreamerError {
            code: ErrorCode::AlreadyStreaming,
            message: "host busy".into(),
        }),
        FromStreamer::Ended(Ended {
            reason: EndReason::HostEnded,
            message: None,
        }),
        FromStreamer::Signal(LocalSignal::Description(SessionDescription {
            ty: SdpType::Answer,
            sdp: "v=0\r\n".into(),
        })),
        FromStreamer::Signal(LocalSignal::Candidate(sample_candidate())),
        FromStreamer::Signal(LocalSignal::State(PeerState::Connected)),
        FromStreamer::Ended(Ended {
            reason: EndReason::PeerGone,
            message: Some("ICE failed".into()),
        }),
        FromStreamer::Rumble(Rumble {
            controller: 1,
            triggers: false,
            low: 0xffff,
            high: 0x8000,
        }),
        FromStreamer::LaunchTurn(TurnRequest::Ask),
        FromStreamer::LaunchTurn(TurnRequest::GiveBack),
    ]
}

fn encode_all<M: IpcMessage>(msgs: &[M]) -> BytesMut {
    let mut buf = BytesMut::new();
    for m in msgs {
        encode_frame(m, &mut buf, DEFAULT_MAX_PAYLOAD).unwrap();
    }
    buf
}

#[test]
fn byte_layouts() {
    let mut codec = StreamerCodec::new();
    let mut buf = BytesMut::new();
    codec
        .encode(all_from_streamer()[1].clone(), &mut buf)
        .unwrap();
    assert_eq!(
        hex::encode(&buf),
        // len 21 LE, type 0x82, then the browser's VideoFrame: 0x01, codec 1, flags 1,
        // pts 1e6 BE, 1920, 1080, data
        "150000008201010100000000000f424007800438000000016588"
    );
    buf.clear();
    codec
        .encode(all_from_streamer()[0].clone(), &mut buf)
        .unwrap();
    // len 21 LE, type 0x81, then the browser's StreamInit: 0x30, the 12 core bytes (6 channels),
    // then streams 4, coupled 2, mapping.
    assert_eq!(
        hex::encode(&buf),
        "15000000813001078004383c060000bb80010402000102030405"
    );
    buf.clear();
    codec
        .encode(all_from_streamer()[2].clone(), &mut buf)
        .unwrap();
    // len 13, type 0x83, then the browser's AudioFrame: 0x02, 2 channels, pts 20 000 BE, Opus.
    assert_eq!(hex::encode(&buf), "0d0000008302020000000000004e20fcfffe");
    buf.clear();
    let rumble = FromStreamer::Rumble(Rumble {
        controller: 1,
        triggers: false,
        low: 0xffff,
        high: 0x8000,
    });
    codec.encode(rumble, &mut buf).unwrap();
    // len 6, type 0x89, pad 1, not triggers, low 0xffff LE, high 0x8000 LE.
    assert_eq!(hex::encode(&buf), "06000000890100ffff0080");
    buf.clear();
    codec
        .encode(FromStreamer::LaunchTurn(TurnRequest::Ask), &mut buf)
        .unwrap();
    // len 1, type 0x8A, 1 = Ask.
    assert_eq!(hex::encode(&buf), "010000008a01");

    let mut server = ServerCodec::new();
    buf.clear();
    server.encode(ToStreamer::Stop, &mut buf).unwrap();
    assert_eq!(hex::encode(&buf), "0000000004");
    buf.clear();
    server
        .encode(ToStreamer::RequestKeyframe, &mut buf)
        .unwrap();
    assert_eq!(hex::encode(&buf), "0000000003");
}

#[test]
fn round_trip_both_directions() {
    let mut buf = encode_all(&all_to_streamer());
    let mut codec = StreamerCodec::new();
    for expected in all_to_streamer() {
        assert_eq!(codec.decode(&mut buf).unwrap(), Some(expected));
    }
    assert_eq!(codec.decode_eof(&mut buf).unwrap(), None);

    let mut buf = encode_all(&all_from_streamer());
    let mut codec = ServerCodec::new();
    for expected in all_from_streamer() {
        assert_eq!(codec.decode(&mut buf).unwrap(), Some(expected));
    }
    assert!(buf.is_empty());
}

#[test]
fn json_payloads_are_json_and_tolerant() {
    // Init travels as JSON with the certificate in hex and the key in clear (it is the channel).
    let mut buf = encode_all(&[ToStreamer::Init(Box::new(sample_init()))]);
    let json: serde_json::Value = serde_json::from_slice(&buf[HEADER_LEN..]).unwrap();
    assert_eq!(json["host_cert_der"], "3082010a");
    assert_eq!(json["mode"], "websocket");
    assert_eq!(json["session_key"], "ses_1-lobby_2-helix-agent-3");
    // Stats with unknown and missing fields still decode.
    let stats = br#"{"video_frames":5,"new_counter":1}"#;
    buf.clear();
    buf.put_u32_le(stats.len() as u32);
    buf.put_u8(frame_type::STATS);
    buf.put_slice(stats);
    let got = ServerCodec::new().decode(&mut buf).unwrap();
    assert_eq!(
        got,
        Some(FromStreamer::Stats(Stats {
            video_frames: 5,
            ..Stats::default()
        }))
    );
    // An error code from a newer streamer maps to Other.
    let err = br#"{"code":"SomethingNew","message":"x"}"#;
    buf.clear();
    buf.put_u32_le(err.len() as u32);
    buf.put_u8(frame_type::ERROR);
    buf.put_slice(err);
    assert!(matches!(
        ServerCodec::new().decode(&mut buf).unwrap(),
        Some(FromStreamer::Error(StreamerError {
            code: ErrorCode::Other,
            ..
        }))
    ));
}

#[test]
fn secrets_redacted_in_debug() {
    let msg = ToStreamer::Init(Box::new(sample_init()));
    let dbg = format!("{msg:?}");
    assert!(!dbg.contains("TOPSECRET"), "{dbg}");
    assert!(dbg.contains("[redacted]"));
}

#[test]
fn helpers_map_to_browser_messages() {
    let FromStreamer::Started(init) = all_from_streamer()[0] else {
        unreachable!()
    };
    assert_eq!(
        Message::StreamInit(init).to_vec().unwrap(),
        hex::decode("3001078004383c060000bb80010402000102030405").unwrap()
    );
    let FromStreamer::Video(video) = all_from_streamer()[1].clone() else {
        unreachable!()
    };
    let msg = video.browser_message();
    assert_eq!(
        hex::encode(&msg),
        "01010100000000000f424007800438000000016588"
    );
    let FromStreamer::Audio(audio) = all_from_streamer()[2].clone() else {
        unreachable!()
    };
    assert_eq!(
        hex::encode(audio.browser_message()),
        "02020000000000004e20fcfffe"
    );
    // Rumble becomes the browser's ControllerEvent (docs/browser-protocol.md's example bytes).
    let rumble = Rumble {
        controller: 0,
        triggers: false,
        low: 0xffff,
        high: 0x8000,
    };
    assert_eq!(
        hex::encode(
            Message::Controller(rumble.browser_event())
                .to_vec()
                .unwrap()
        ),
        "150200ffff8000"
    );
    let triggers = Rumble {
        triggers: true,
        ..rumble
    };
    assert_eq!(
        Message::Controller(triggers.browser_event())
            .to_vec()
            .unwrap()[1],
        3,
        "trigger rumble is subtype 3"
    );
    assert_eq!(
        Ended {
            reason: EndReason::Error,
            message: None
        }
        .close_code()
        .code(),
        1011
    );
}

#[test]
fn oversize_rejected_before_buffering() {
    let mut codec = ServerCodec::with_max_payload(1024);
    // Only the header has arrived, declaring 1025 bytes: rejected at once.
    let mut buf = BytesMut::from(&[0x01, 0x04, 0x00, 0x00, 0x82][..]);
    assert!(matches!(
        codec.decode(&mut buf),
        Err(IpcError::Oversize {
            len: 1025,
            max: 1024
        })
    ));
    // A 4 GiB declaration with the default limit.
    let mut buf = BytesMut::from(&[0xff, 0xff, 0xff, 0xff, 0x82][..]);
    assert!(matches!(
        ServerCodec::new().decode(&mut buf),
        Err(IpcError::Oversize { .. })
    ));
    // Encoding an oversize frame fails and leaves the buffer untouched.
    let mut out = BytesMut::from(&b"keep"[..]);
    let big = FromStreamer::Video(Video::new(
        false,
        0,
        1,
        640,
        360,
        Bytes::from(vec![0u8; 1024]),
    ));
    assert!(matches!(
        StreamerCodec::with_max_payload(1024).encode(big, &mut out),
        Err(IpcError::Oversize {
            len: 1039,
            max: 1024
        })
    ));
    assert_eq!(&out[..], b"keep");
}

#[test]
fn garbage_rejected() {
    // Unknown type, and a frame sent the wrong way round.
    let mut buf = BytesMut::from(&[0, 0, 0, 0, 0x7f][..]);
    assert!(matches!(
        ServerCodec::new().decode(&mut buf),
        Err(IpcError::UnknownType(0x7f))
    ));
    let mut buf = encode_all(&[ToStreamer::Stop]);
    assert!(matches!(
        ServerCodec::new().decode(&mut buf),
        Err(IpcError::UnknownType(0x04))
    ));
    // Short binary payloads and bad JSON.
    for (ty, payload) in [
        (frame_type::VIDEO, &b"\x01\x01\x00"[..]),
        (frame_type::AUDIO, &b"\x00"[..]),
        (frame_type::STARTED, &b"\x01\x80\x07"[..]),
        (frame_type::ENDED, &b"{not json"[..]),
        (frame_type::STATS, &b"\"text\""[..]),
        (frame_type::RUMBLE, &b"\x00\x00\xff"[..]),
        (frame_type::RUMBLE, &b"\x00\x00\xff\xff\x00\x80\x00"[..]),
        (frame_type::LAUNCH_TURN, &b""[..]),
        (frame_type::LAUNCH_TURN, &b"\x02"[..]),
        (frame_type::LAUNCH_TURN, &b"\x01\x00"[..]),
    ] {
        let mut buf = BytesMut::new();
        buf.put_u32_le(payload.len() as u32);
        buf.put_u8(ty);
        buf.put_slice(payload);
        let err = ServerCodec::new().decode(&mut buf).unwrap_err();
        assert!(matches!(err, IpcError::Malformed { .. }), "{ty:#x}: {err}");
        assert!(buf.is_empty(), "the bad frame is consumed");
    }
    // Empty Input and a payload on Stop.
    let mut buf = BytesMut::from(&[0, 0, 0, 0, frame_type::INPUT][..]);
    assert!(matches!(
        StreamerCodec::new().decode(&mut buf),
        Err(IpcError::Malformed { name: "Input", .. })
    ));
    let mut buf = BytesMut::from(&[1, 0, 0, 0, frame_type::STOP, 0][..]);
    assert!(matches!(
        StreamerCodec::new().decode(&mut buf),
        Err(IpcError::Malformed { name: "Stop", .. })
    ));
    // EOF inside a frame.
    let mut buf = encode_all(&[ToStreamer::RequestKeyframe]);
    buf.truncate(3);
    assert!(matches!(
        StreamerCodec::new().decode_eof(&mut buf),
        Err(IpcError::Truncated(3))
    ));
}

#[test]
fn restream_carries_a_checked_rung() {
    // The layout: type 0x07, the rung as JSON.
    let buf = encode_all(&[ToStreamer::Restream(RUNG_360P)]);
    let json = br#"{"width":640,"height":360,"fps":60,"bitrate_kbps":2000}"#;
    assert_eq!(buf[4], frame_type::RESTREAM);
    assert_eq!(&buf[5..], &json[..]);
    assert_eq!(buf[..4], (json.len() as u32).to_le_bytes());
    let mut read = buf.clone();
    assert_eq!(
        StreamerCodec::new().decode(&mut read).unwrap(),
        Some(ToStreamer::Restream(RUNG_360P))
    );
    // Out-of-bounds values are refused when read (typed, the frame consumed) ...
    for payload in [
        &br#"{"width":0,"height":360,"fps":60,"bitrate_kbps":2000}"#[..],
        br#"{"width":640,"height":0,"fps":60,"bitrate_kbps":2000}"#,
        br#"{"width":100000,"height":360,"fps":60,"bitrate_kbps":2000}"#,
        br#"{"width":640,"height":8193,"fps":60,"bitrate_kbps":2000}"#,
        br#"{"width":640,"height":360,"fps":0,"bitrate_kbps":2000}"#,
        br#"{"width":640,"height":360,"fps":100000,"bitrate_kbps":2000}"#,
        br#"{"width":640,"height":360,"fps":60,"bitrate_kbps":0}"#,
        br#"{"width":640,"height":360,"fps":60,"bitrate_kbps":4000000000}"#,
        br#"{"width":640,"height":360,"fps":60}"#,
        br#"{"width":-1,"height":360,"fps":60,"bitrate_kbps":2000}"#,
        b"",
        b"\"text\"",
    ] {
        let mut buf = BytesMut::new();
        buf.put_u32_le(payload.len() as u32);
        buf.put_u8(frame_type::RESTREAM);
        buf.put_slice(payload);
        let err = StreamerCodec::new().decode(&mut buf).unwrap_err();
        assert!(
            matches!(
                err,
                IpcError::Malformed {
                    name: "Restream",
                    ..
                }
            ),
            "{}: {err}",
            String::from_utf8_lossy(payload)
        );
        assert!(buf.is_empty(), "the bad frame is consumed");
    }
    // ... and never written.
    let bad = Rung {
        fps: 0,
        ..RUNG_360P
    };
    assert_eq!(bad.check(), Err(RungError::Fps(0)));
    let mut out = BytesMut::new();
    let err = ServerCodec::new()
        .encode(ToStreamer::Restream(bad), &mut out)
        .unwrap_err();
    assert!(matches!(
        err,
        IpcError::Malformed {
            name: "Restream",
            ..
        }
    ));
    assert!(out.is_empty(), "nothing of the refused frame is written");
    assert_eq!(
        Rung {
            width: 8193,
            ..RUNG_360P
        }
        .check(),
        Err(RungError::Size {
            width: 8193,
            height: 360
        })
    );
    assert!(Rung {
        width: 8192,
        height: 8192,
        fps: 480,
        bitrate_kbps: 1_000_000
    }
    .check()
    .is_ok());
}

#[test]
fn webrtc_signal_json_shapes() {
    // The JSON mirrors the contract's §3.2 shapes so the web-server's translation is mechanical.
    let cases: Vec<(ToStreamer, &str)> = vec![
        (
            ToStreamer::Signal(RemoteSignal::Description(SessionDescription {
                ty: SdpType::Offer,
                sdp: "v=0".into(),
            })),
            r#"{"Description":{"ty":"offer","sdp":"v=0"}}"#,
        ),
        (
            ToStreamer::Signal(RemoteSignal::Candidate(sample_candidate())),
            r#"{"Candidate":{"candidate":"candidate:1 1 udp 2130706431 127.0.0.1 40000 typ host","sdp_mid":"0","sdp_mline_index":0,"username_fragment":"abcd"}}"#,
        ),
        (
            ToStreamer::Signal(RemoteSignal::CreateOffer),
            r#""CreateOffer""#,
        ),
    ];
    for (msg, json) in cases {
        let buf = encode_all(&[msg]);
        assert_eq!(buf[4], frame_type::SIGNAL_IN);
        assert_eq!(std::str::from_utf8(&buf[HEADER_LEN..]).unwrap(), json);
    }
    let buf = encode_all(&[FromStreamer::Signal(LocalSignal::State(
        PeerState::Disconnected,
    ))]);
    assert_eq!(buf[4], frame_type::SIGNAL_OUT);
    assert_eq!(&buf[HEADER_LEN..], br#"{"State":"disconnected"}"#);

    // Optional candidate fields may be absent; unknown states read as Other.
    for (ty, payload, ok) in [
        (
            frame_type::SIGNAL_IN,
            &br#"{"Candidate":{"candidate":"c"}}"#[..],
            true,
        ),
        (
            frame_type::SIGNAL_IN,
            &br#"{"Description":{"ty":"bogus","sdp":""}}"#[..],
            false,
        ),
        (frame_type::SIGNAL_IN, &br#"{"Nope":1}"#[..], false),
        (frame_type::SIGNAL_IN, &b""[..], false),
    ] {
        let mut buf = BytesMut::new();
        buf.put_u32_le(payload.len() as u32);
        buf.put_u8(ty);
        buf.put_slice(payload);
        let got = StreamerCodec::new().decode(&mut buf);
        assert_eq!(got.is_ok(), ok, "{}", String::from_utf8_lossy(payload));
        if !ok {
            assert!(matches!(
                got,
                Err(IpcError::Malformed { name: "Signal", .. })
            ));
        }
    }
    let payload = br#"{"State":"weird"}"#;
    let mut buf = BytesMut::new();
    buf.put_u32_le(payload.len() as u32);
    buf.put_u8(frame_type::SIGNAL_OUT);
    buf.put_slice(payload);
    assert_eq!(
        ServerCodec::new().decode(&mut buf).unwrap(),
        Some(FromStreamer::Signal(LocalSignal::State(PeerState::Other)))
    );
    // Init without a `webrtc` object still decodes (older web-server); with one, defaults fill in.
    let mut init = serde_json::to_value(sample_init()).unwrap();
    init.as_object_mut().unwrap().remove("webrtc");
    init.as_object_mut().unwrap().remove("launch_turns");
    let back: StreamerInit = serde_json::from_value(init.clone()).unwrap();
    assert_eq!(back.webrtc, None);
    assert!(
        !back.launch_turns,
        "a streamer driven by hand launches without asking"
    );
    init["webrtc"] = serde_json::json!({"udp_port_min": 40000, "udp_port_max": 40009});
    let back: StreamerInit = serde_json::from_value(init).unwrap();
    let rtc = back.webrtc.unwrap();
    assert_eq!((rtc.udp_port_min, rtc.udp_port_max), (40000, 40009));
    assert_eq!(rtc.disconnect_timeout_ms, 10_000);
    assert_eq!(rtc.bind_address, "0.0.0.0");
}

fn arb_from_streamer() -> impl Strategy<Value = FromStreamer> {
    let data = proptest::collection::vec(any::<u8>(), 0..300).prop_map(Bytes::from);
    prop_oneof![
        (any::<bool>(), any::<u64>(), any::<u8>(), data.clone()).prop_map(
            |(keyframe, pts_us, codec, data)| FromStreamer::Video(Video::new(
                keyframe, pts_us, codec, 1280, 720, data
            ))
        ),
        (any::<u64>(), data)
            .prop_map(|(pts_us, data)| FromStreamer::Audio(Audio::new(2, pts_us, data))),
        (
            proptest::sample::select(VideoCodec::ALL.to_vec()),
            any::<u16>(),
            any::<u16>(),
            any::<u8>(),
            any::<u32>(),
            any::<bool>()
        )
            .prop_map(
                |(codec, width, height, fps, sample_rate, touch_supported)| {
                    FromStreamer::Started(StreamInit {
                        codec,
                        width,
                        height,
                        fps,
                        audio_channels: 2,
                        sample_rate,
                        touch_supported,
                        opus: Some(browser::OpusLayout::stereo()),
                    })
                }
            ),
        (any::<u64>(), any::<u32>()).prop_map(|(video_frames, host_rtt_ms)| {
            FromStreamer::Stats(Stats {
                video_frames,
                host_rtt_ms,
                ..Stats::default()
            })
        }),
        ".{0,40}".prop_map(|message| FromStreamer::Log(LogLine {
            level: LogLevel::Info,
            message
        })),
        Just(FromStreamer::Ended(Ended {
            reason: EndReason::Stopped,
            message: Some("bye".into())
        })),
        ".{0,80}".prop_map(|sdp| FromStreamer::Signal(LocalSignal::Description(
            SessionDescription {
                ty: SdpType::Answer,
                sdp
            }
        ))),
        Just(FromStreamer::Signal(LocalSignal::State(PeerState::Failed))),
        (any::<u8>(), any::<bool>(), any::<u16>(), any::<u16>()).prop_map(
            |(controller, triggers, low, high)| FromStreamer::Rumble(Rumble {
                controller,
                triggers,
                low,
                high
            })
        ),
        Just(FromStreamer::LaunchTurn(TurnRequest::Ask)),
        Just(FromStreamer::LaunchTurn(TurnRequest::GiveBack)),
    ]
}

fn arb_to_streamer() -> impl Strategy<Value = ToStreamer> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 1..64)
            .prop_map(|v| ToStreamer::Input(Bytes::from(v))),
        Just(ToStreamer::RequestKeyframe),
        Just(ToStreamer::Stop),
        Just(ToStreamer::Init(Box::new(sample_init()))),
        ".{0,80}".prop_map(|sdp| ToStreamer::Signal(RemoteSignal::Description(
            SessionDescription {
                ty: SdpType::Offer,
                sdp
            }
        ))),
        Just(ToStreamer::Signal(RemoteSignal::Candidate(
            sample_candidate()
        ))),
        Just(ToStreamer::LaunchTurn),
        Just(ToStreamer::Restream(RUNG_360P)),
    ]
}

/// Feeds `bytes` to `codec` in chunks cut at `cuts`, collecting every frame.
fn decode_in_pieces<C: Decoder<Error = IpcError>>(
    codec: &mut C,
    bytes: &[u8],
    cuts: &[usize],
) -> Vec<C::Item> {
    let mut points: Vec<usize> = cuts.iter().map(|c| c % (bytes.len() + 1)).collect();
    points.push(0);
    points.push(bytes.len());
    points.sort_unstable();
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    for w in points.windows(2) {
        buf.extend_from_slice(&bytes[w[0]..w[1]]);
        while let Some(item) = codec.decode(&mut buf).unwrap() {
            out.push(item);
        }
    }
    assert!(codec.decode_eof(&mut buf).unwrap().is_none());
    out
}

proptest! {
    #[test]
    fn random_splits_decode_to_the_same_frames(
        msgs in proptest::collection::vec(arb_from_streamer(), 0..12),
        cuts in proptest::collection::vec(any::<usize>(), 0..20),
    ) {
        let bytes = encode_all(&msgs);
        let got = decode_in_pieces(&mut ServerCodec::new(), &bytes, &cuts);
        prop_assert_eq!(got, msgs);
    }

    #[test]
    fn random_splits_to_streamer(
        msgs in proptest::collection::vec(arb_to_streamer(), 0..8),
        cuts in proptest::collection::vec(any::<usize>(), 0..20),
    ) {
        let bytes = encode_all(&msgs);
        let got = decode_in_pieces(&mut StreamerCodec::new(), &bytes, &cuts);
        prop_assert_eq!(got, msgs);
    }

    #[test]
    fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        let mut buf = BytesMut::from(&bytes[..]);
        let mut server = ServerCodec::with_max_payload(4096);
        // Each call either consumes a frame, asks for more, or errors: bounded by the input size.
        for _ in 0..=bytes.len() {
            match server.decode(&mut buf) {
                Ok(Some(_)) => continue,
                Ok(None) | Err(_) => break,
            }
        }
        let mut buf = BytesMut::from(&bytes[..]);
        let _ = StreamerCodec::with_max_payload(4096).decode_eof(&mut buf);
    }
}

/// Both ends over a real socket pair with `FramedRead`/`FramedWrite`, as the processes use them.
#[tokio::test]
async fn framed_over_a_socket_pair() {
    use futures_util::{SinkExt, StreamExt};
    use std::time::Duration;
    use tokio_util::codec::{FramedRead, FramedWrite};

    let (server_end, streamer_end) = tokio::net::UnixStream::pair().unwrap();
    let (server_rd, server_wr) = server_end.into_split();
    let (streamer_rd, streamer_wr) = streamer_end.into_split();
    let mut server_tx = FramedWrite::new(server_wr, ServerCodec::new());
    let mut server_rx = FramedRead::new(server_rd, ServerCodec::new());
    let mut streamer_tx = FramedWrite::new(streamer_wr, StreamerCodec::new());
    let mut streamer_rx = FramedRead::new(streamer_rd, StreamerCodec::new());

    let run = async {
        for m in all_to_streamer() {
            server_tx.send(m).await.unwrap();
        }
        for expected in all_to_streamer() {
            assert_eq!(streamer_rx.next().await.unwrap().unwrap(), expected);
        }
        // A 4 MiB keyframe goes through in one frame, zero-copy on the reading side.
        let big = FromStreamer::Video(Video::new(
            true,
            7,
            1,
            3840,
            2160,
            Bytes::from(vec![0xab; 4 << 20]),
        ));
        let sender = async {
            for m in all_from_streamer() {
                streamer_tx.send(m).await.unwrap();
            }
            streamer_tx.send(big.clone()).await.unwrap();
            // Closing the write half is how a streamer exits: the server sees a clean end.
            streamer_tx.close().await.unwrap();
        };
        let receiver = async {
            let mut got = Vec::new();
            while let Some(m) = server_rx.next().await {
                got.push(m.unwrap());
            }
            got
        };
        let ((), got) = tokio::join!(sender, receiver);
        let mut expected = all_from_streamer();
        expected.push(big);
        assert_eq!(got, expected);
    };
    tokio::time::timeout(Duration::from_secs(10), run)
        .await
        .expect("IPC exchange timed out");
}
