use super::*;

const ENC: Generation = Generation::Gen7Encrypted;

#[test]
fn rfi_as_idr_vectors() {
    let legacy = AppVersion::parse("7.1.415.0");
    assert_eq!(
        ClientMessage::idr_request_for(legacy, 0x10),
        ClientMessage::Rfi {
            first: 0,
            last: 0x10
        }
    );
    assert_eq!(
        ClientMessage::idr_request_for(legacy, 0x100),
        ClientMessage::Rfi {
            first: 0xE0,
            last: 0x100
        }
    );
    assert_eq!(
        ClientMessage::idr_request_for(AppVersion::parse("5.0.0.0"), 0x20)
            .encode(Generation::Gen5)
            .unwrap()
            .0,
        0x0301
    );
    assert_eq!(
        ClientMessage::idr_request_for(AppVersion::SUNSHINE, 0x100),
        ClientMessage::IdrRequest
    );
    let (ty, p) = ClientMessage::Rfi {
        first: 0xE0,
        last: 0x100,
    }
    .encode(Generation::Gen7)
    .unwrap();
    assert_eq!(ty, 0x0301);
    assert_eq!(
        hex::encode(p),
        "e0000000000000000001000000000000".to_owned() + "0000000000000000"
    );
}

#[test]
fn client_payloads() {
    assert_eq!(
        ClientMessage::StartA.encode(ENC).unwrap(),
        (0x0302, vec![0, 0])
    );
    assert_eq!(
        ClientMessage::StartA.encode(Generation::Gen7).unwrap(),
        (0x0305, vec![0, 0])
    );
    assert_eq!(
        ClientMessage::StartB.encode(ENC).unwrap(),
        (0x0307, vec![0])
    );
    let (ty, p) = ClientMessage::StartB.encode(Generation::Gen3).unwrap();
    assert_eq!(
        (ty, hex::encode(p)),
        (0x1410, "0000000000000000000000000a000000".into())
    );
    assert_eq!(
        ClientMessage::PeriodicPing.encode(ENC).unwrap(),
        (0x0200, vec![4, 0, 0, 0, 0, 0, 0, 0])
    );
    let (ty, p) = ClientMessage::LossStats {
        lost_packets: 0,
        last_good_frame: 7,
    }
    .encode(Generation::Gen7)
    .unwrap();
    assert_eq!(ty, 0x0201);
    assert_eq!(
        hex::encode(p),
        "0000000032000000e80300000700000000000000000000000000000014000000"
    );
    assert!(matches!(
        ClientMessage::IdrRequest.encode(Generation::Gen5),
        Err(ControlError::Unsupported { .. })
    ));
    assert!(ClientMessage::Input(vec![1])
        .encode(Generation::Gen4)
        .is_err());
    assert_eq!(
        ClientMessage::Input(vec![1])
            .encode(Generation::Gen5)
            .unwrap()
            .0,
        0x0207
    );
    assert_eq!(
        ClientMessage::LtrAck { frame_index: 9 }
            .encode(ENC)
            .unwrap(),
        (0x0350, vec![9, 0, 0, 0, 0, 0, 0, 0])
    );
}

#[test]
fn fec_status_is_big_endian() {
    let s = FecStatus {
        frame_index: 0x01020304,
        highest_received_sequence_number: 0x0506,
        next_contiguous_sequence_number: 0x0708,
        missing_packets_before_highest_received: 0x090A,
        total_data_packets: 0x0B0C,
        total_parity_packets: 0x0D0E,
        received_data_packets: 0x0F10,
        received_parity_packets: 0x1112,
        fec_percentage: 0x13,
        multi_fec_block_index: 0x14,
        multi_fec_block_count: 0x15,
    };
    let (ty, p) = ClientMessage::FecStatus(s).encode(ENC).unwrap();
    assert_eq!(ty, 0x5502);
    assert_eq!(p, (1u8..=0x15).collect::<Vec<_>>());
    assert_eq!(
        ClientMessage::decode(ENC, ty, &p).unwrap(),
        ClientMessage::FecStatus(s)
    );
    assert!(ClientMessage::decode(ENC, ty, &p[..20]).is_err());
}

#[test]
fn client_round_trips() {
    let msgs = [
        ClientMessage::StartB,
        ClientMessage::IdrRequest,
        ClientMessage::Rfi { first: 3, last: 9 },
        ClientMessage::LossStats {
            lost_packets: 2,
            last_good_frame: 77,
        },
        ClientMessage::PeriodicPing,
        ClientMessage::LtrAck { frame_index: 5 },
        ClientMessage::Bitrate { kbps: 2700 },
        ClientMessage::Input(vec![0, 0, 0, 6, 0x0d, 0, 0, 0, 1, 0]),
        ClientMessage::Other {
            ty: 0x0204,
            payload: vec![1, 2],
        },
    ];
    for m in msgs {
        let (ty, p) = m.encode(ENC).unwrap();
        assert_eq!(ClientMessage::decode(ENC, ty, &p).unwrap(), m);
    }
    let (ty, p) = ClientMessage::StartA.encode(Generation::Gen7).unwrap();
    assert_eq!(
        ClientMessage::decode(Generation::Gen7, ty, &p).unwrap(),
        ClientMessage::StartA
    );
}

/// Foundation Sunshine's dynamic parameter change as its `stream.cpp` reads it: type `0x5506`,
/// then the kind and the value as little-endian `int`s.
#[test]
fn dynamic_bitrate_is_foundation_sunshines_layout() {
    let (ty, p) = ClientMessage::Bitrate { kbps: 2700 }.encode(ENC).unwrap();
    assert_eq!(ty, 0x5506);
    assert_eq!(p, [2, 0, 0, 0, 0x8c, 0x0a, 0, 0]);
    // Only the encrypted generation (Sunshine's table) has the message.
    assert!(ClientMessage::Bitrate { kbps: 1 }
        .encode(Generation::Gen7)
        .is_err());
    assert!(ClientMessage::Bitrate { kbps: u32::MAX }
        .encode(ENC)
        .is_err());
    // Another kind (here the frame rate, 1) is not a bitrate; a bitrate without its value is short.
    assert!(matches!(
        ClientMessage::decode(ENC, 0x5506, &[1, 0, 0, 0, 0, 0, 0x70, 0x42]).unwrap(),
        ClientMessage::Other { ty: 0x5506, .. }
    ));
    assert!(ClientMessage::decode(ENC, 0x5506, &[2, 0, 0, 0, 1]).is_err());
}

#[test]
fn termination_parsing_vectors() {
    // V1-converted `09 01 80 03 00 23` (>= 6 bytes) => extended 0x80030023.
    let m = HostMessage::decode(AppVersion::SUNSHINE, 0x0109, &[0x80, 0x03, 0x00, 0x23]).unwrap();
    let t = Termination {
        code: 0x8003_0023,
        form: TerminationForm::Extended,
    };
    assert_eq!(m, HostMessage::Termination(t));
    assert!(t.reason(true).is_graceful());
    assert_eq!(t.reason(false).error_code(), -102);
    // Short `00 01 00 01` => 0x0100 => graceful.
    let legacy = AppVersion::parse("7.1.415.0");
    let m = HostMessage::decode(legacy, 0x0100, &[0x00, 0x01]).unwrap();
    let t = Termination {
        code: 0x0100,
        form: TerminationForm::Short,
    };
    assert_eq!(m, HostMessage::Termination(t));
    assert!(t.reason(true).is_graceful());
    assert!(HostMessage::decode(legacy, 0x0100, &[0x00]).is_err());
    assert_eq!(
        HostMessage::Termination(t)
            .encode(Generation::Gen7)
            .unwrap(),
        (0x0100, vec![0, 1])
    );
    let (ty, p) = HostMessage::Termination(Termination::server_closed())
        .encode(ENC)
        .unwrap();
    assert_eq!((ty, hex::encode(p)), (0x0109, "80030023".into()));
}

#[test]
fn host_round_trips() {
    let md = HdrMetadata {
        display_primaries: [(1, 2), (3, 4), (5, 6)],
        white_point: (7, 8),
        max_full_frame_luminance: 13,
        ..Default::default()
    };
    let msgs = [
        HostMessage::Rumble {
            controller: 1,
            low_freq: 0x1234,
            high_freq: 0xFFFF,
        },
        HostMessage::HdrMode {
            enabled: true,
            metadata: Some(md),
        },
        HostMessage::RumbleTriggers {
            controller: 2,
            left: 3,
            right: 4,
        },
        HostMessage::SetMotionEventState {
            controller: 0,
            report_rate_hz: 100,
            motion_type: 2,
        },
        HostMessage::SetRgbLed {
            controller: 1,
            r: 255,
            g: 0,
            b: 7,
        },
        HostMessage::SetAdaptiveTriggers {
            controller: 0,
            event_flags: 4,
            type_left: 1,
            type_right: 2,
            left: [1; 10],
            right: [2; 10],
        },
        HostMessage::Termination(Termination::server_closed()),
    ];
    for m in msgs {
        let (ty, p) = m.encode(ENC).unwrap();
        assert_eq!(
            HostMessage::decode(AppVersion::SUNSHINE, ty, &p).unwrap(),
            m,
            "{m:?}"
        );
    }
    let (ty, p) = HostMessage::Rumble {
        controller: 1,
        low_freq: 2,
        high_freq: 3,
    }
    .encode(ENC)
    .unwrap();
    assert_eq!(
        (ty, hex::encode(p)),
        (0x010B, "eeffc000010002000300".into())
    );
    // HDR: metadata only from Sunshine hosts; short metadata is zero-filled.
    let gfe = AppVersion::parse("7.1.431.0");
    assert_eq!(
        HostMessage::decode(gfe, 0x010E, &[1, 9, 9]).unwrap(),
        HostMessage::HdrMode {
            enabled: true,
            metadata: None
        }
    );
    let m = HostMessage::decode(AppVersion::SUNSHINE, 0x010E, &[0, 9, 0]).unwrap();
    let zero_filled = HdrMetadata {
        display_primaries: [(9, 0), (0, 0), (0, 0)],
        ..Default::default()
    };
    assert_eq!(
        m,
        HostMessage::HdrMode {
            enabled: false,
            metadata: Some(zero_filled)
        }
    );
    assert!(HostMessage::RumbleTriggers {
        controller: 0,
        left: 0,
        right: 0
    }
    .encode(Generation::Gen7)
    .is_err());
}
