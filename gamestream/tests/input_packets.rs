//! Control spec §7.5 vectors I1-I16, both directions, plus routing and strictness.

use gamestream::input::{
    channel, touch_event, ControllerState, InputError, InputEvent, InputRoute, PenEvent, TouchEvent,
};
use gamestream::AppVersion;

const V: AppVersion = AppVersion::SUNSHINE;

fn check(ev: InputEvent, hex_bytes: &str, version: AppVersion) {
    let bytes = hex::decode(hex_bytes).unwrap();
    assert_eq!(hex::encode(ev.encode(version)), hex_bytes, "encode {ev:?}");
    assert_eq!(
        InputEvent::decode(&bytes, version).unwrap(),
        ev,
        "decode {hex_bytes}"
    );
}

#[test]
fn vectors_i1_to_i15() {
    check(
        InputEvent::KeyDown {
            flags: 0,
            key_code: 0x41,
            modifiers: 0,
        },
        "0000000a03000000004100000000",
        V,
    );
    check(
        InputEvent::MouseMoveRelative { dx: 1, dy: -1 },
        "00000008070000000001ffff",
        V,
    );
    check(
        InputEvent::MouseMoveAbsolute {
            x: 960,
            y: 540,
            reference_width: 1920,
            reference_height: 1080,
        },
        "0000000e0500000003c0021c0000077f0437",
        V,
    );
    check(
        InputEvent::MouseButtonDown { button: 1 },
        "000000050800000001",
        V,
    );
    check(
        InputEvent::MouseButtonUp { button: 1 },
        "000000050900000001",
        V,
    );
    check(
        InputEvent::Scroll { amount: 120 },
        "0000000a0a000000007800780000",
        V,
    );
    check(
        InputEvent::HScroll { amount: -120 },
        "0000000601000055ff88",
        V,
    );
    check(InputEvent::Utf8Text("é".into()), "0000000617000000c3a9", V);
    check(InputEvent::EnableHaptics, "000000060d0000000100", V);
    check(
        InputEvent::MultiController(ControllerState {
            controller_number: 0,
            active_gamepad_mask: 1,
            buttons: 0x1000,
            left_trigger: 255,
            left_stick_x: -32768,
            ..Default::default()
        }),
        "0000001e0c0000001a000000010014000010ff0000800000000000009c0000005500",
        V,
    );
    check(
        InputEvent::ControllerArrival {
            controller_number: 0,
            controller_type: 1,
            capabilities: 3,
            supported_buttons: 0xF7FF,
        },
        "0000000c0400005500010300fff70000",
        V,
    );
    check(
        InputEvent::Touch(TouchEvent {
            event_type: touch_event::DOWN,
            rotation: 0xFFFF,
            pointer_id: 1,
            x: 0.5,
            y: 0.5,
            pressure_or_distance: 1.0,
            contact_area_major: 0.0,
            contact_area_minor: 0.0,
        }),
        "00000020020000550100ffff010000000000003f0000003f0000803f0000000000000000",
        V,
    );
    check(
        InputEvent::Pen(PenEvent {
            event_type: touch_event::MOVE,
            tool_type: 1,
            pen_buttons: 0,
            x: 0.25,
            y: 0.75,
            pressure_or_distance: 0.5,
            rotation: 0xFFFF,
            tilt: 0xFF,
            contact_area_major: 0.0,
            contact_area_minor: 0.0,
        }),
        "0000002003000055030100000000803e0000403f0000003fffffff000000000000000000",
        V,
    );
    check(
        InputEvent::ControllerTouch {
            controller_number: 0,
            event_type: touch_event::DOWN,
            touchpad_index: 0,
            pointer_id: 7,
            x: 0.1,
            y: 0.2,
            pressure: 1.0,
        },
        "00000018050000550001000007000000cdcccc3dcdcc4c3e0000803f",
        V,
    );
    check(
        InputEvent::ControllerMotion {
            controller_number: 0,
            motion_type: 2,
            x: 1.0,
            y: -1.0,
            z: 0.0,
        },
        "0000001406000055000200000000803f000080bf00000000",
        V,
    );
    check(
        InputEvent::ControllerBattery {
            controller_number: 0,
            battery_state: 2,
            battery_percentage: 80,
        },
        "000000080700005500025000",
        V,
    );
}

#[test]
fn vector_i16_gen3_legacy_controller() {
    let gen3 = AppVersion::new(3, 0, 0, 0);
    let hex_bytes = "000000180a00000000140010000000000000000000009c0000005500";
    check(
        InputEvent::LegacyController(gamestream::input::LegacyControllerState {
            buttons: 0x1000,
            ..Default::default()
        }),
        hex_bytes,
        gen3,
    );
    // A multi-controller event is sent as the legacy packet on gen 3, like moonlight-common-c does.
    let multi = InputEvent::MultiController(ControllerState {
        active_gamepad_mask: 1,
        buttons: 0x1000,
        ..Default::default()
    });
    assert_eq!(hex::encode(multi.encode(gen3)), hex_bytes);
}

#[test]
fn generation_magics() {
    let gen4 = AppVersion::new(4, 0, 0, 0);
    let rel = InputEvent::MouseMoveRelative { dx: 1, dy: -1 };
    assert_eq!(hex::encode(rel.encode(gen4)), "00000008060000000001ffff");
    assert_eq!(InputEvent::decode(&rel.encode(gen4), gen4).unwrap(), rel);
    let down = InputEvent::MouseButtonDown { button: 3 };
    assert_eq!(hex::encode(down.encode(gen4)), "000000050700000003");
    let scroll = InputEvent::Scroll { amount: -120 };
    assert_eq!(&scroll.encode(gen4)[4..8], &[9, 0, 0, 0]);
    let mc = InputEvent::MultiController(ControllerState {
        controller_number: 2,
        active_gamepad_mask: 4,
        ..Default::default()
    });
    assert_eq!(&mc.encode(gen4)[4..8], &[0x0d, 0, 0, 0]);
    assert_eq!(InputEvent::decode(&mc.encode(gen4), gen4).unwrap(), mc);
    // 0x0D is haptics on gen >= 5: a 34-byte packet with that magic is rejected by length.
    let mut as_gen5 = mc.encode(gen4);
    as_gen5[4] = 0x0d;
    assert!(matches!(
        InputEvent::decode(&as_gen5, V),
        Err(InputError::WrongLength { .. })
    ));
    // Sunshine-only magics do not exist for gen 4.
    let touch = InputEvent::HScroll { amount: 1 }.encode(V);
    assert!(matches!(
        InputEvent::decode(&touch, gen4),
        Err(InputError::UnknownMagic { .. })
    ));
    assert!(!InputEvent::HScroll { amount: 1 }.supported_by(AppVersion::new(7, 1, 431, 0)));
    assert!(!InputEvent::EnableHaptics.supported_by(AppVersion::new(7, 0, 0, 0)));
}

#[test]
fn strict_lengths() {
    assert!(matches!(
        InputEvent::decode(&[], V),
        Err(InputError::TooShort(0))
    ));
    assert!(matches!(
        InputEvent::decode(&[0, 0, 0, 4], V),
        Err(InputError::TooShort(4))
    ));
    let mut key = hex::decode("0000000a03000000004100000000").unwrap();
    key.push(0);
    assert!(matches!(
        InputEvent::decode(&key, V),
        Err(InputError::SizeMismatch { .. })
    ));
    let short_key = hex::decode("0000000903000000004100000000").unwrap();
    assert!(InputEvent::decode(&short_key[..13], V).is_err());
    assert!(matches!(
        InputEvent::decode(&hex::decode("00000004ff000000").unwrap(), V),
        Err(InputError::UnknownMagic { .. })
    ));
    assert!(matches!(
        InputEvent::decode(&hex::decode("0000000617000000c3ff").unwrap(), V),
        Err(InputError::InvalidText)
    ));
    let long_text = InputEvent::Utf8Text("x".repeat(33)).encode(V);
    assert!(matches!(
        InputEvent::decode(&long_text, V),
        Err(InputError::InvalidText)
    ));
}

#[test]
fn routing() {
    let r = |ev: InputEvent| ev.route(V);
    assert_eq!(
        r(InputEvent::KeyDown {
            flags: 0,
            key_code: 1,
            modifiers: 0
        }),
        InputRoute {
            channel: channel::KEYBOARD,
            reliable: true
        }
    );
    assert_eq!(
        r(InputEvent::MouseMoveRelative { dx: 1, dy: 1 }),
        InputRoute {
            channel: 3,
            reliable: true
        }
    );
    assert_eq!(
        r(InputEvent::EnableHaptics),
        InputRoute {
            channel: 0,
            reliable: true
        }
    );
    assert_eq!(
        r(InputEvent::Utf8Text("a".into())),
        InputRoute {
            channel: 6,
            reliable: true
        }
    );
    let mc = InputEvent::MultiController(ControllerState {
        controller_number: 3,
        ..Default::default()
    });
    assert_eq!(
        r(mc.clone()),
        InputRoute {
            channel: 0x13,
            reliable: true
        }
    );
    let touch = |t| {
        InputEvent::Touch(TouchEvent {
            event_type: t,
            ..Default::default()
        })
    };
    assert_eq!(
        r(touch(touch_event::MOVE)),
        InputRoute {
            channel: 5,
            reliable: false
        }
    );
    assert_eq!(
        r(touch(touch_event::HOVER)),
        InputRoute {
            channel: 5,
            reliable: false
        }
    );
    assert_eq!(
        r(touch(touch_event::UP)),
        InputRoute {
            channel: 5,
            reliable: true
        }
    );
    let pen = InputEvent::Pen(PenEvent {
        event_type: touch_event::DOWN,
        ..Default::default()
    });
    assert_eq!(
        r(pen),
        InputRoute {
            channel: 4,
            reliable: true
        }
    );
    let motion = |t, x| InputEvent::ControllerMotion {
        controller_number: 1,
        motion_type: t,
        x,
        y: 0.0,
        z: 0.0,
    };
    assert_eq!(
        r(motion(2, 0.0)),
        InputRoute {
            channel: 0x21,
            reliable: true
        }
    );
    assert_eq!(
        r(motion(2, 1.0)),
        InputRoute {
            channel: 0x21,
            reliable: false
        }
    );
    assert_eq!(
        r(motion(1, 0.0)),
        InputRoute {
            channel: 0x21,
            reliable: false
        }
    );
    let ct = InputEvent::ControllerTouch {
        controller_number: 2,
        event_type: touch_event::MOVE,
        touchpad_index: 0,
        pointer_id: 0,
        x: 0.0,
        y: 0.0,
        pressure: 0.0,
    };
    assert_eq!(
        r(ct),
        InputRoute {
            channel: 0x12,
            reliable: false
        }
    );
    let battery = InputEvent::ControllerBattery {
        controller_number: 4,
        battery_state: 0,
        battery_percentage: 0,
    };
    assert_eq!(
        r(battery),
        InputRoute {
            channel: 0x14,
            reliable: true
        }
    );
    // GFE: everything on channel 0, reliable.
    let gfe = AppVersion::new(7, 1, 431, 0);
    assert_eq!(
        mc.route(gfe),
        InputRoute {
            channel: 0,
            reliable: true
        }
    );
    assert_eq!(
        touch(touch_event::MOVE).route(gfe),
        InputRoute {
            channel: 0,
            reliable: true
        }
    );
}

mod roundtrip {
    use super::*;
    use gamestream::input::LegacyControllerState;
    use proptest::prelude::*;

    fn finite() -> impl Strategy<Value = f32> {
        -1.0e6f32..1.0e6f32
    }

    fn event() -> impl Strategy<Value = InputEvent> {
        prop_oneof![
            (any::<u8>(), any::<u16>(), any::<u8>(), any::<bool>()).prop_map(
                |(flags, key_code, modifiers, down)| InputEvent::key(
                    down, flags, key_code, modifiers
                )
            ),
            (any::<i16>(), any::<i16>())
                .prop_map(|(dx, dy)| InputEvent::MouseMoveRelative { dx, dy }),
            (any::<i16>(), any::<i16>(), any::<u16>(), any::<u16>()).prop_map(|(x, y, w, h)| {
                InputEvent::MouseMoveAbsolute {
                    x,
                    y,
                    reference_width: w,
                    reference_height: h,
                }
            }),
            any::<u8>().prop_map(|button| InputEvent::MouseButtonDown { button }),
            any::<u8>().prop_map(|button| InputEvent::MouseButtonUp { button }),
            any::<i16>().prop_map(|amount| InputEvent::Scroll { amount }),
            any::<i16>().prop_map(|amount| InputEvent::HScroll { amount }),
            Just(InputEvent::EnableHaptics),
            (
                any::<u16>(),
                any::<u16>(),
                any::<u32>(),
                any::<u8>(),
                any::<u8>(),
                any::<[i16; 4]>()
            )
                .prop_map(|(n, m, b, lt, rt, s)| {
                    InputEvent::MultiController(ControllerState {
                        controller_number: n,
                        active_gamepad_mask: m,
                        buttons: b,
                        left_trigger: lt,
                        right_trigger: rt,
                        left_stick_x: s[0],
                        left_stick_y: s[1],
                        right_stick_x: s[2],
                        right_stick_y: s[3],
                    })
                }),
            (any::<u8>(), any::<u8>(), any::<u16>(), any::<u32>()).prop_map(|(n, t, c, b)| {
                InputEvent::ControllerArrival {
                    controller_number: n,
                    controller_type: t,
                    capabilities: c,
                    supported_buttons: b,
                }
            }),
            (
                any::<u8>(),
                any::<u8>(),
                any::<u8>(),
                any::<u32>(),
                finite(),
                finite(),
                finite()
            )
                .prop_map(|(n, e, i, p, x, y, z)| {
                    InputEvent::ControllerTouch {
                        controller_number: n,
                        event_type: e,
                        touchpad_index: i,
                        pointer_id: p,
                        x,
                        y,
                        pressure: z,
                    }
                }),
            (any::<u8>(), any::<u8>(), finite(), finite(), finite()).prop_map(|(n, t, x, y, z)| {
                InputEvent::ControllerMotion {
                    controller_number: n,
                    motion_type: t,
                    x,
                    y,
                    z,
                }
            }),
            (any::<u8>(), any::<u8>(), any::<u8>()).prop_map(|(n, s, p)| {
                InputEvent::ControllerBattery {
                    controller_number: n,
                    battery_state: s,
                    battery_percentage: p,
                }
            }),
            (
                any::<u8>(),
                any::<u16>(),
                any::<u32>(),
                [finite(), finite(), finite(), finite(), finite()]
            )
                .prop_map(|(e, r, p, f)| {
                    InputEvent::Touch(TouchEvent {
                        event_type: e,
                        rotation: r,
                        pointer_id: p,
                        x: f[0],
                        y: f[1],
                        pressure_or_distance: f[2],
                        contact_area_major: f[3],
                        contact_area_minor: f[4],
                    })
                }),
            (
                any::<[u8; 4]>(),
                any::<u16>(),
                [finite(), finite(), finite(), finite(), finite()]
            )
                .prop_map(|(b, r, f)| {
                    InputEvent::Pen(PenEvent {
                        event_type: b[0],
                        tool_type: b[1],
                        pen_buttons: b[2],
                        x: f[0],
                        y: f[1],
                        pressure_or_distance: f[2],
                        rotation: r,
                        tilt: b[3],
                        contact_area_major: f[3],
                        contact_area_minor: f[4],
                    })
                }),
            "\\PC{0,8}"
                .prop_filter("≤ 32 bytes", |s: &String| s.len() <= 32)
                .prop_map(InputEvent::Utf8Text),
        ]
    }

    proptest! {
        #[test]
        fn gen5_round_trip(ev in event()) {
            let bytes = ev.encode(V);
            prop_assert_eq!(InputEvent::decode(&bytes, V).unwrap(), ev);
        }

        #[test]
        fn gen3_controller_round_trip(b in any::<u16>(), lt in any::<u8>(), s in any::<[i16; 4]>()) {
            let gen3 = AppVersion::new(3, 0, 0, 0);
            let ev = InputEvent::LegacyController(LegacyControllerState {
                buttons: b, left_trigger: lt, right_trigger: 0,
                left_stick_x: s[0], left_stick_y: s[1], right_stick_x: s[2], right_stick_y: s[3],
            });
            prop_assert_eq!(InputEvent::decode(&ev.encode(gen3), gen3).unwrap(), ev);
        }
    }
}
