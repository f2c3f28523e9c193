//! Browser input messages (0x10–0x16, 0x20) → Moonlight input events (sans-IO).
//!
//! The browser protocol was designed to carry what Moonlight's packets carry, so most messages map
//! field for field. The few conversions that are not identities are documented where they happen:
//! key codes get Moonlight's `0x8000` prefix, the ÷10 wheel is scaled back to Windows wheel units,
//! a controller removal becomes a state packet without that pad's bit in the active mask.

use gamestream::input::{ControllerState, InputEvent, TouchEvent};
use wire::browser::{
    ClientControl, ControllerEvent, DecodeError, KeyboardInput, Message, MouseClick,
};

/// Moonlight clients send virtual-key codes with this prefix (moonlight-common-c's callers do;
/// hosts mask it off).
pub const KEY_PREFIX: u16 = 0x8000;
/// One wheel notch in Windows units (`WHEEL_DELTA`).
const WHEEL_DELTA: i32 = 120;
/// The ÷10 wheel (subtype 4) carries browser pixels ÷ 10; a notch is about 100 px in browsers,
/// so 10 units → one `WHEEL_DELTA`.
const WHEEL_UNITS_PER_NOTCH: i32 = 10;

/// What one browser message asks of the session.
#[derive(Debug, Clone, PartialEq)]
pub enum Mapped {
    /// Send these events to the host, in order (may be empty, e.g. a zero wheel).
    Input(Vec<InputEvent>),
    /// `{"set_video_enabled":true}`: get a keyframe out at once.
    RequestKeyframe,
    /// One Opus packet of the browser's microphone and its length in 48 kHz samples.
    Mic(Vec<u8>, u32),
    /// A message that asks nothing of the streamer (set_video_enabled:false, batching, unknown
    /// control JSON): the web-server acts on it.
    Ignored,
}

/// Why a browser message was not mapped. Never fatal: the caller logs and drops it.
#[derive(Debug, thiserror::Error)]
pub enum MapError {
    /// The bytes do not decode.
    #[error("undecodable input: {0}")]
    Decode(#[from] DecodeError),
    /// A ControlMessage that is not JSON.
    #[error("bad control JSON: {0}")]
    Control(#[from] serde_json::Error),
    /// A MicOpus packet whose TOC byte is not a valid Opus packet's.
    #[error("malformed Opus packet from the microphone")]
    BadOpus,
    /// A server→client or media message arrived as input.
    #[error("message type 0x{0:02x} is not input")]
    NotInput(u8),
    /// Controller number out of Moonlight's 0..15.
    #[error("controller number {0} out of range")]
    BadController(u8),
}

/// Maps browser input, keeping the little state Moonlight needs (which gamepads are present).
#[derive(Debug, Default)]
pub struct InputMapper {
    active_pads: u16,
}

impl InputMapper {
    /// A mapper with no gamepad attached.
    pub fn new() -> Self {
        Self::default()
    }

    /// The gamepads present (bit n = controller n), for layouts that do not carry the mask.
    pub fn active_pads(&self) -> u16 {
        self.active_pads
    }

    /// Maps one browser binary message.
    pub fn map(&mut self, bytes: &[u8]) -> Result<Mapped, MapError> {
        let msg = Message::decode(bytes)?;
        Ok(Mapped::Input(match msg {
            Message::Keyboard(KeyboardInput::Key {
                is_down,
                modifiers,
                key,
            }) => {
                let key_code = KEY_PREFIX | (key & 0x7FFF);
                let modifiers = modifiers & 0x0F;
                vec![if is_down {
                    InputEvent::KeyDown {
                        flags: 0,
                        key_code,
                        modifiers,
                    }
                } else {
                    InputEvent::KeyUp {
                        flags: 0,
                        key_code,
                        modifiers,
                    }
                }]
            }
            Message::Keyboard(KeyboardInput::Text(text)) => {
                if text.is_empty() {
                    Vec::new()
                } else {
                    vec![InputEvent::Utf8Text(text.to_string())]
                }
            }
            Message::MouseClick(MouseClick::Button { is_down, button }) => {
                vec![if is_down {
                    InputEvent::MouseButtonDown { button }
                } else {
                    InputEvent::MouseButtonUp { button }
                }]
            }
            // High-res wheel: already in Moonlight's sign convention (+ = up); passed unchanged.
            Message::MouseClick(MouseClick::HighResWheel { dx, dy }) => scroll(dy, dx),
            Message::MouseClick(MouseClick::Wheel { dx, dy }) => {
                let scale = |d: i8| {
                    (i32::from(d) * WHEEL_DELTA / WHEEL_UNITS_PER_NOTCH)
                        .clamp(i16::MIN.into(), i16::MAX.into()) as i16
                };
                scroll(scale(dy), scale(dx))
            }
            Message::MouseAbsolute(m) => {
                // Helix sends a 4096×4096 reference; the host scales to its own size. A
                // non-positive reference is meaningless and dropped.
                if m.ref_width <= 0 || m.ref_height <= 0 {
                    Vec::new()
                } else {
                    vec![InputEvent::MouseMoveAbsolute {
                        x: m.x.clamp(0, m.ref_width),
                        y: m.y.clamp(0, m.ref_height),
                        reference_width: m.ref_width as u16,
                        reference_height: m.ref_height as u16,
                    }]
                }
            }
            Message::MouseRelative(m) => {
                if m.dx == 0 && m.dy == 0 {
                    Vec::new()
                } else {
                    vec![InputEvent::MouseMoveRelative { dx: m.dx, dy: m.dy }]
                }
            }
            Message::Touch(t) => vec![InputEvent::Touch(TouchEvent {
                event_type: t.event,
                rotation: t.rotation,
                pointer_id: t.pointer_id,
                x: t.x,
                y: t.y,
                pressure_or_distance: t.pressure,
                contact_area_major: t.contact_major,
                contact_area_minor: t.contact_minor,
            })],
            Message::Controller(ControllerEvent::Arrival {
                id,
                controller_type,
                capabilities,
                supported_buttons,
            }) => {
                self.active_pads |= pad_bit(id)?;
                vec![InputEvent::ControllerArrival {
                    controller_number: id,
                    controller_type,
                    capabilities,
                    supported_buttons,
                }]
            }
            Message::Controller(ControllerEvent::Removal { id }) => {
                // Moonlight has no removal packet: a state packet whose active mask lacks the pad.
                self.active_pads &= !pad_bit(id)?;
                vec![InputEvent::MultiController(ControllerState {
                    controller_number: u16::from(id),
                    active_gamepad_mask: self.active_pads,
                    ..ControllerState::default()
                })]
            }
            Message::Controller(_) => return Err(MapError::NotInput(bytes[0])),
            Message::ControllerState(s) => {
                let bit = pad_bit(s.id)?;
                // The browser's mask is authoritative; it also tells us about pads that arrived
                // before this streamer started.
                self.active_pads = s.active_mask | bit;
                vec![InputEvent::MultiController(ControllerState {
                    controller_number: u16::from(s.id),
                    active_gamepad_mask: self.active_pads,
                    buttons: s.buttons,
                    left_trigger: s.left_trigger,
                    right_trigger: s.right_trigger,
                    left_stick_x: s.left_stick_x,
                    left_stick_y: s.left_stick_y,
                    right_stick_x: s.right_stick_x,
                    right_stick_y: s.right_stick_y,
                })]
            }
            Message::MicOpus(m) => {
                let samples = m.samples().ok_or(MapError::BadOpus)?;
                return Ok(Mapped::Mic(m.data.to_vec(), samples));
            }
            Message::Control(json) => {
                return Ok(match ClientControl::parse(json)? {
                    ClientControl::SetVideoEnabled(true) => Mapped::RequestKeyframe,
                    _ => Mapped::Ignored,
                })
            }
            _ => return Err(MapError::NotInput(bytes[0])),
        }))
    }
}

fn pad_bit(id: u8) -> Result<u16, MapError> {
    if id < 16 {
        Ok(1 << id)
    } else {
        Err(MapError::BadController(id))
    }
}

/// Vertical then horizontal scroll; a zero axis is skipped.
fn scroll(vertical: i16, horizontal: i16) -> Vec<InputEvent> {
    let mut v = Vec::with_capacity(2);
    if vertical != 0 {
        v.push(InputEvent::Scroll { amount: vertical });
    }
    if horizontal != 0 {
        v.push(InputEvent::HScroll { amount: horizontal });
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(bytes: &[u8]) -> Mapped {
        InputMapper::new().map(bytes).unwrap()
    }

    fn events(bytes: &[u8]) -> Vec<InputEvent> {
        match map(bytes) {
            Mapped::Input(v) => v,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_microphone_packet_goes_on_with_its_sample_count() {
        let bytes = Message::MicOpus(wire::browser::MicOpus {
            timestamp: 960,
            data: &[31 << 3, 1, 2, 3],
        })
        .to_vec()
        .unwrap();
        match map(&bytes) {
            Mapped::Mic(opus, samples) => {
                assert_eq!(opus, [31 << 3, 1, 2, 3]);
                assert_eq!(samples, 960);
            }
            other => panic!("{other:?}"),
        }
        // Code 3 without its frame count is not an Opus packet.
        assert!(matches!(
            InputMapper::new().map(&[0x18, 0, 0, 0, 0, (16 << 3) | 3]),
            Err(MapError::BadOpus)
        ));
    }

    #[test]
    fn keyboard_uses_vk_codes_with_moonlights_prefix() {
        // Contract §5.2: Shift+A press is 10 00 01 01 00 41.
        assert_eq!(
            events(&[0x10, 0, 1, 1, 0, 0x41]),
            vec![InputEvent::KeyDown {
                flags: 0,
                key_code: 0x8041,
                modifiers: 0x01
            }]
        );
        assert_eq!(
            events(&[0x10, 0, 0, 0, 0, 0x0D]),
            vec![InputEvent::KeyUp {
                flags: 0,
                key_code: 0x800D,
                modifiers: 0
            }]
        );
        assert_eq!(
            events(&[0x10, 1, 2, 0xC3, 0xA9]),
            vec![InputEvent::Utf8Text("é".into())]
        );
    }

    #[test]
    fn mouse_and_wheel() {
        assert_eq!(
            events(&[0x11, 2, 1, 3]),
            vec![InputEvent::MouseButtonDown { button: 3 }]
        );
        // §5.4: 11 04 00 fd = wheel dy −3 (30 px down) → −36 (0.3 notch).
        assert_eq!(
            events(&[0x11, 4, 0, 0xfd]),
            vec![InputEvent::Scroll { amount: -36 }]
        );
        assert_eq!(
            events(&[0x11, 3, 0, 5, 0, 120]),
            vec![
                InputEvent::Scroll { amount: 120 },
                InputEvent::HScroll { amount: 5 }
            ]
        );
        assert_eq!(events(&[0x11, 4, 0, 0]), vec![]);
        // §5.4: absolute x=2048, y=1024 in 4096×4096.
        assert_eq!(
            events(&[0x12, 1, 8, 0, 4, 0, 0x10, 0, 0x10, 0]),
            vec![InputEvent::MouseMoveAbsolute {
                x: 2048,
                y: 1024,
                reference_width: 4096,
                reference_height: 4096
            }]
        );
        assert_eq!(
            events(&[0x13, 0, 0xff, 0xf6, 0, 3]),
            vec![InputEvent::MouseMoveRelative { dx: -10, dy: 3 }]
        );
    }

    #[test]
    fn controllers_track_the_active_mask() {
        let mut m = InputMapper::new();
        let arrival = [0x15, 0, 1, 1, 0, 3, 0, 0, 0xF7, 0xFF];
        assert!(matches!(
            m.map(&arrival).unwrap(),
            Mapped::Input(v) if v == vec![InputEvent::ControllerArrival { controller_number: 1, controller_type: 1, capabilities: 3, supported_buttons: 0xF7FF }]
        ));
        let state = [
            0x16, 1, 0, 2, 0, 0, 0x10, 0, 255, 0, 0x80, 0, 0, 100, 0, 0, 0, 0,
        ];
        match m.map(&state).unwrap() {
            Mapped::Input(v) => assert_eq!(
                v,
                vec![InputEvent::MultiController(ControllerState {
                    controller_number: 1,
                    active_gamepad_mask: 2,
                    buttons: 0x1000,
                    left_trigger: 255,
                    right_trigger: 0,
                    left_stick_x: -32768,
                    left_stick_y: 100,
                    right_stick_x: 0,
                    right_stick_y: 0,
                })]
            ),
            other => panic!("{other:?}"),
        }
        match m.map(&[0x15, 1, 1]).unwrap() {
            Mapped::Input(v) => assert_eq!(
                v,
                vec![InputEvent::MultiController(ControllerState {
                    controller_number: 1,
                    active_gamepad_mask: 0,
                    ..ControllerState::default()
                })]
            ),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            m.map(&[0x15, 1, 16]),
            Err(MapError::BadController(16))
        ));
    }

    #[test]
    fn control_and_garbage() {
        assert_eq!(
            map(b"\x20{\"set_video_enabled\":true}"),
            Mapped::RequestKeyframe
        );
        assert_eq!(map(b"\x20{\"set_video_enabled\":false}"), Mapped::Ignored);
        let mut m = InputMapper::new();
        assert!(m.map(&[]).is_err());
        assert!(m.map(&[0x10, 0, 1]).is_err());
        assert!(m.map(&[0x40, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0]).is_err());
        assert!(m.map(b"\x20not json").is_err());
    }
}
