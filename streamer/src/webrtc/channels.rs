//! The browser's input data channels (contract §3.4) → moongate browser messages (sans-IO).
//!
//! The keyboard and mouse payloads are the WebSocket messages (§2.6–2.9) without their type byte,
//! so they get it back and go through the same [`crate::input::InputMapper`] as WebSocket input.
//! Touch has the moongate 0x14 field layout already (event, id, x, y, force, radii, rotation).
//! The controller channels differ from the moongate 0x15/0x16 layouts (field order, no type, no
//! per-message id or mask), so they are rewritten into those layouts. Everything is big-endian
//! (`ByteBuffer` default). Rumble goes back on `controllers` in the contract's S→C layout.

use wire::browser::msg_type;

/// One of the contract's data channels, by label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChannelKind {
    /// `keyboard`.
    Keyboard,
    /// `mouseClicks`.
    MouseClicks,
    /// `mouseAbsolute`.
    MouseAbsolute,
    /// `mouseRelative`.
    MouseRelative,
    /// `touch`: C→S touch events; S→C one byte, "touch supported".
    Touch,
    /// `controllers`: C→S add/remove; S→C rumble.
    Controllers,
    /// `controller<N>`: one gamepad's state.
    Controller(u8),
    /// `general`: created by the server, text status messages.
    General,
}

impl ChannelKind {
    /// The channel for a label; `None` for labels the contract does not define.
    pub fn from_label(label: &str) -> Option<Self> {
        Some(match label {
            "keyboard" => ChannelKind::Keyboard,
            "mouseClicks" => ChannelKind::MouseClicks,
            "mouseAbsolute" => ChannelKind::MouseAbsolute,
            "mouseRelative" => ChannelKind::MouseRelative,
            "touch" => ChannelKind::Touch,
            "controllers" => ChannelKind::Controllers,
            "general" => ChannelKind::General,
            other => {
                let n: u8 = other.strip_prefix("controller")?.parse().ok()?;
                if n >= 16 {
                    return None;
                }
                ChannelKind::Controller(n)
            }
        })
    }
}

/// Why a data-channel message was not translated (logged and dropped, never fatal).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ChannelError {
    /// Too short for its layout.
    #[error("{label}: {len} bytes is too short")]
    Short {
        /// Channel.
        label: &'static str,
        /// Bytes received.
        len: usize,
    },
    /// An unknown subtype byte.
    #[error("{label}: unknown subtype {subtype}")]
    Subtype {
        /// Channel.
        label: &'static str,
        /// The byte.
        subtype: u8,
    },
    /// The channel carries nothing the browser should send.
    #[error("no input expected on this channel")]
    NotInput,
}

/// Translates one message on `kind` into a moongate browser binary message for
/// [`crate::input::InputMapper::map`]. `active_pads` is the mapper's current gamepad mask (the
/// contract's controller state carries no mask; the moongate layout does).
pub fn to_browser_message(
    kind: ChannelKind,
    data: &[u8],
    active_pads: u16,
) -> Result<Vec<u8>, ChannelError> {
    let prefixed = |ty: u8| {
        let mut v = Vec::with_capacity(data.len() + 1);
        v.push(ty);
        v.extend_from_slice(data);
        v
    };
    match kind {
        ChannelKind::Keyboard => Ok(prefixed(msg_type::KEYBOARD_INPUT)),
        ChannelKind::MouseClicks => Ok(prefixed(msg_type::MOUSE_CLICK)),
        ChannelKind::MouseAbsolute => Ok(prefixed(msg_type::MOUSE_ABSOLUTE)),
        ChannelKind::MouseRelative => Ok(prefixed(msg_type::MOUSE_RELATIVE)),
        ChannelKind::Touch => Ok(prefixed(msg_type::TOUCH)),
        ChannelKind::Controllers => {
            let label = "controllers";
            match data.first() {
                // add: 0, id, supported_buttons u32, capabilities u16, then moongate's optional
                // controller type (u8); a Helix client's 8 bytes mean "unknown type".
                Some(0) => {
                    if data.len() < 8 {
                        return Err(ChannelError::Short {
                            label,
                            len: data.len(),
                        });
                    }
                    let controller_type = data.get(8).copied().unwrap_or(0);
                    let mut v = vec![msg_type::CONTROLLER_EVENT, 0, data[1], controller_type];
                    v.extend_from_slice(&data[6..8]); // capabilities
                    v.extend_from_slice(&data[2..6]); // supported buttons
                    Ok(v)
                }
                // remove: 1, id
                Some(1) => {
                    if data.len() < 2 {
                        return Err(ChannelError::Short {
                            label,
                            len: data.len(),
                        });
                    }
                    Ok(vec![msg_type::CONTROLLER_EVENT, 1, data[1]])
                }
                Some(&subtype) => Err(ChannelError::Subtype { label, subtype }),
                None => Err(ChannelError::Short { label, len: 0 }),
            }
        }
        ChannelKind::Controller(id) => {
            let label = "controllerN";
            // 0, buttons u32, LT u8, RT u8, LSX, LSY, RSX, RSY (i16 each)
            match data.first() {
                Some(0) if data.len() >= 15 => {
                    let mask = active_pads | (1u16 << (id & 0x0f));
                    let mut v = Vec::with_capacity(18);
                    v.push(msg_type::CONTROLLER_STATE);
                    v.push(id);
                    v.extend_from_slice(&mask.to_be_bytes());
                    v.extend_from_slice(&data[1..15]);
                    Ok(v)
                }
                Some(0) => Err(ChannelError::Short {
                    label,
                    len: data.len(),
                }),
                Some(&subtype) => Err(ChannelError::Subtype { label, subtype }),
                None => Err(ChannelError::Short { label, len: 0 }),
            }
        }
        ChannelKind::General => Err(ChannelError::NotInput),
    }
}

/// Rumble for the `controllers` channel: `0, id, low u16, high u16`.
pub fn rumble(id: u8, low: u16, high: u16) -> [u8; 6] {
    let [l0, l1] = low.to_be_bytes();
    let [h0, h1] = high.to_be_bytes();
    [0, id, l0, l1, h0, h1]
}

/// The text sent on `general` when the stream ends (contract §3.3).
pub const CONNECTION_TERMINATED: &str = "\"ConnectionTerminated\"";

#[cfg(test)]
mod tests {
    use super::*;
    use crate::input::{InputMapper, Mapped};
    use gamestream::input::{ControllerState, InputEvent};

    fn map(kind: ChannelKind, data: &[u8], mapper: &mut InputMapper) -> Vec<InputEvent> {
        let msg = to_browser_message(kind, data, mapper.active_pads()).unwrap();
        match mapper.map(&msg).unwrap() {
            Mapped::Input(v) => v,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn labels() {
        assert_eq!(
            ChannelKind::from_label("keyboard"),
            Some(ChannelKind::Keyboard)
        );
        assert_eq!(
            ChannelKind::from_label("mouseClicks"),
            Some(ChannelKind::MouseClicks)
        );
        assert_eq!(
            ChannelKind::from_label("controller3"),
            Some(ChannelKind::Controller(3))
        );
        assert_eq!(ChannelKind::from_label("controller16"), None);
        assert_eq!(ChannelKind::from_label("controllerx"), None);
        assert_eq!(ChannelKind::from_label("chat"), None);
    }

    #[test]
    fn keyboard_and_mouse_layouts() {
        let mut m = InputMapper::new();
        // keyboard key: subtype 0, down 1, modifiers 1 (shift), key 0x41 (contract §5.2).
        assert_eq!(
            map(
                ChannelKind::Keyboard,
                &[0x00, 0x01, 0x01, 0x00, 0x41],
                &mut m
            ),
            vec![InputEvent::KeyDown {
                flags: 0,
                key_code: 0x8041,
                modifiers: 1
            }]
        );
        // mouseClicks: subtype 2 button, down, button 1.
        assert_eq!(
            map(ChannelKind::MouseClicks, &[0x02, 0x01, 0x01], &mut m),
            vec![InputEvent::MouseButtonDown { button: 1 }]
        );
        // mouseRelative: subtype 0, dx -2, dy 3.
        assert_eq!(
            map(
                ChannelKind::MouseRelative,
                &[0x00, 0xff, 0xfe, 0x00, 0x03],
                &mut m
            ),
            vec![InputEvent::MouseMoveRelative { dx: -2, dy: 3 }]
        );
        // mouseAbsolute: subtype 1, x 100, y 200, ref 4096×4096.
        let ev = map(
            ChannelKind::MouseAbsolute,
            &[0x01, 0, 100, 0, 200, 0x10, 0, 0x10, 0],
            &mut m,
        );
        assert_eq!(
            ev,
            vec![InputEvent::MouseMoveAbsolute {
                x: 100,
                y: 200,
                reference_width: 4096,
                reference_height: 4096
            }]
        );
    }

    #[test]
    fn touch_layout() {
        let mut m = InputMapper::new();
        let mut d = vec![0x01];
        d.extend_from_slice(&7u32.to_be_bytes());
        for f in [0.25f32, 0.5, 1.0, 0.0, 0.0] {
            d.extend_from_slice(&f.to_be_bytes());
        }
        d.extend_from_slice(&0xffffu16.to_be_bytes());
        match &map(ChannelKind::Touch, &d, &mut m)[..] {
            [InputEvent::Touch(t)] => {
                assert_eq!((t.event_type, t.pointer_id, t.x, t.y), (1, 7, 0.25, 0.5));
                assert_eq!(t.rotation, 0xffff);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn controllers_layouts() {
        let mut m = InputMapper::new();
        // add: 0, id 1, supported_buttons 0xF7FF, capabilities 3.
        assert_eq!(
            map(
                ChannelKind::Controllers,
                &[0, 1, 0, 0, 0xf7, 0xff, 0, 3],
                &mut m
            ),
            vec![InputEvent::ControllerArrival {
                controller_number: 1,
                controller_type: 0,
                capabilities: 3,
                supported_buttons: 0xF7FF
            }]
        );
        assert_eq!(m.active_pads(), 0b10);
        // moongate's client appends the controller type (2 = PlayStation).
        assert_eq!(
            map(
                ChannelKind::Controllers,
                &[0, 2, 0, 0, 0xf7, 0xff, 0, 3, 2],
                &mut InputMapper::new()
            ),
            vec![InputEvent::ControllerArrival {
                controller_number: 2,
                controller_type: 2,
                capabilities: 3,
                supported_buttons: 0xF7FF
            }]
        );
        // controller0 state: buttons 0x1000 (A), LT 255, RT 0, LSX 100, LSY -100, RSX 0, RSY 1.
        let d = [0, 0, 0, 0x10, 0, 0xff, 0, 0, 100, 0xff, 0x9c, 0, 0, 0, 1];
        assert_eq!(
            map(ChannelKind::Controller(0), &d, &mut m),
            vec![InputEvent::MultiController(ControllerState {
                controller_number: 0,
                active_gamepad_mask: 0b11,
                buttons: 0x1000,
                left_trigger: 255,
                right_trigger: 0,
                left_stick_x: 100,
                left_stick_y: -100,
                right_stick_x: 0,
                right_stick_y: 1,
            })]
        );
        // remove: 1, id 1.
        match &map(ChannelKind::Controllers, &[1, 1], &mut m)[..] {
            [InputEvent::MultiController(s)] => assert_eq!(s.active_gamepad_mask, 0b01),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn bad_input_is_an_error_not_a_panic() {
        for (kind, data) in [
            (ChannelKind::Controllers, &[][..]),
            (ChannelKind::Controllers, &[0, 1, 2][..]),
            (ChannelKind::Controllers, &[1][..]),
            (ChannelKind::Controllers, &[9, 1][..]),
            (ChannelKind::Controller(2), &[0, 1, 2][..]),
            (ChannelKind::Controller(2), &[5][..]),
            (ChannelKind::Controller(2), &[][..]),
            (ChannelKind::General, &b"x"[..]),
        ] {
            assert!(
                to_browser_message(kind, data, 0).is_err(),
                "{kind:?} {data:?}"
            );
        }
        // Short keyboard/mouse/touch payloads pass here and fail in the mapper, cleanly.
        let mut m = InputMapper::new();
        for kind in [
            ChannelKind::Keyboard,
            ChannelKind::MouseAbsolute,
            ChannelKind::Touch,
        ] {
            let msg = to_browser_message(kind, &[0x01], 0).unwrap();
            assert!(m.map(&msg).is_err());
        }
    }

    #[test]
    fn rumble_layout() {
        assert_eq!(rumble(2, 0x1234, 0xffff), [0, 2, 0x12, 0x34, 0xff, 0xff]);
    }
}
