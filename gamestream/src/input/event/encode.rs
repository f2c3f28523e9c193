//! Encoding events into NV input packets (the client's direction): the generation-dependent
//! magics and the controller conversions moonlight-common-c does. Kept apart from the event model
//! in `event.rs` so the byte layout of every packet is read in one place.

use super::*;

fn is_gen5(version: AppVersion) -> bool {
    version.major >= 5
}

/// The gen ≥ 5 magic or the older one.
fn by_gen(gen5: bool, gen5_magic: u32, older: u32) -> u32 {
    if gen5 {
        gen5_magic
    } else {
        older
    }
}

/// Little byte writer for packet bodies.
struct Writer(Vec<u8>);

impl Writer {
    fn new(magic: u32, body_len: usize) -> Self {
        let mut v = Vec::with_capacity(8 + body_len);
        v.extend_from_slice(&((4 + body_len) as u32).to_be_bytes());
        v.extend_from_slice(&magic.to_le_bytes());
        Writer(v)
    }
    fn u8(mut self, v: u8) -> Self {
        self.0.push(v);
        self
    }
    fn le16(mut self, v: u16) -> Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    fn be16(mut self, v: u16) -> Self {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }
    fn le32(mut self, v: u32) -> Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    fn f32(self, v: f32) -> Self {
        self.le32(v.to_bits())
    }
    fn bytes(mut self, b: &[u8]) -> Self {
        self.0.extend_from_slice(b);
        self
    }
}

impl InputEvent {
    /// Encodes the plaintext NV input packet with the magics of `version`'s generation.
    ///
    /// Controllers are converted like moonlight-common-c does: a [`InputEvent::MultiController`]
    /// becomes the legacy packet on gen 3, and a [`InputEvent::LegacyController`] becomes controller
    /// 0 (mask 0x1) on gen ≥ 4. Events that do not exist in a generation (see
    /// [`InputEvent::supported_by`]) are written with their gen ≥ 5 layout; don't send them.
    /// All fields are written as given: GFE-specific shaping (no `flags`, no extended buttons) is
    /// the caller's job (see [`super::client`]).
    pub fn encode(&self, version: AppVersion) -> Vec<u8> {
        let gen5 = is_gen5(version);
        match self {
            InputEvent::KeyDown {
                flags,
                key_code,
                modifiers,
            }
            | InputEvent::KeyUp {
                flags,
                key_code,
                modifiers,
            } => {
                let m = if matches!(self, InputEvent::KeyDown { .. }) {
                    magic::KEY_DOWN
                } else {
                    magic::KEY_UP
                };
                Writer::new(m, 6)
                    .u8(*flags)
                    .le16(*key_code)
                    .u8(*modifiers)
                    .le16(0)
                    .0
            }
            InputEvent::MouseMoveRelative { dx, dy } => {
                let m = by_gen(gen5, magic::MOUSE_MOVE_REL, magic::MOUSE_MOVE_REL_GEN3);
                Writer::new(m, 4).be16(*dx as u16).be16(*dy as u16).0
            }
            InputEvent::MouseMoveAbsolute {
                x,
                y,
                reference_width,
                reference_height,
            } => {
                Writer::new(magic::MOUSE_MOVE_ABS, 10)
                    .be16(*x as u16)
                    .be16(*y as u16)
                    .be16(0)
                    .be16(reference_width.wrapping_sub(1))
                    .be16(reference_height.wrapping_sub(1))
                    .0
            }
            InputEvent::MouseButtonDown { button } => {
                let m = by_gen(
                    gen5,
                    magic::MOUSE_BUTTON_DOWN,
                    magic::MOUSE_BUTTON_DOWN_GEN3,
                );
                Writer::new(m, 1).u8(*button).0
            }
            InputEvent::MouseButtonUp { button } => {
                let m = by_gen(gen5, magic::MOUSE_BUTTON_UP, magic::MOUSE_BUTTON_UP_GEN3);
                Writer::new(m, 1).u8(*button).0
            }
            InputEvent::Scroll { amount } => {
                let m = by_gen(gen5, magic::SCROLL, magic::SCROLL_GEN3);
                Writer::new(m, 6)
                    .be16(*amount as u16)
                    .be16(*amount as u16)
                    .be16(0)
                    .0
            }
            InputEvent::HScroll { amount } => Writer::new(magic::HSCROLL, 2).be16(*amount as u16).0,
            InputEvent::EnableHaptics => Writer::new(magic::ENABLE_HAPTICS, 2).le16(1).0,
            InputEvent::MultiController(s) => {
                if version.major == 3 {
                    return encode_legacy_controller(&LegacyControllerState {
                        buttons: s.buttons as u16,
                        left_trigger: s.left_trigger,
                        right_trigger: s.right_trigger,
                        left_stick_x: s.left_stick_x,
                        left_stick_y: s.left_stick_y,
                        right_stick_x: s.right_stick_x,
                        right_stick_y: s.right_stick_y,
                    });
                }
                encode_multi_controller(s, gen5)
            }
            InputEvent::LegacyController(s) => {
                if version.major == 3 {
                    return encode_legacy_controller(s);
                }
                let multi = ControllerState {
                    controller_number: 0,
                    active_gamepad_mask: 1,
                    buttons: u32::from(s.buttons),
                    left_trigger: s.left_trigger,
                    right_trigger: s.right_trigger,
                    left_stick_x: s.left_stick_x,
                    left_stick_y: s.left_stick_y,
                    right_stick_x: s.right_stick_x,
                    right_stick_y: s.right_stick_y,
                };
                encode_multi_controller(&multi, gen5)
            }
            InputEvent::ControllerArrival {
                controller_number,
                controller_type,
                capabilities,
                supported_buttons,
            } => {
                Writer::new(magic::CONTROLLER_ARRIVAL, 8)
                    .u8(*controller_number)
                    .u8(*controller_type)
                    .le16(*capabilities)
                    .le32(*supported_buttons)
                    .0
            }
            InputEvent::ControllerTouch {
                controller_number,
                event_type,
                touchpad_index,
                pointer_id,
                x,
                y,
                pressure,
            } => {
                Writer::new(magic::CONTROLLER_TOUCH, 20)
                    .u8(*controller_number)
                    .u8(*event_type)
                    .u8(0)
                    .u8(*touchpad_index)
                    .le32(*pointer_id)
                    .f32(*x)
                    .f32(*y)
                    .f32(*pressure)
                    .0
            }
            InputEvent::ControllerMotion {
                controller_number,
                motion_type,
                x,
                y,
                z,
            } => {
                Writer::new(magic::CONTROLLER_MOTION, 16)
                    .u8(*controller_number)
                    .u8(*motion_type)
                    .le16(0)
                    .f32(*x)
                    .f32(*y)
                    .f32(*z)
                    .0
            }
            InputEvent::ControllerBattery {
                controller_number,
                battery_state,
                battery_percentage,
            } => {
                Writer::new(magic::CONTROLLER_BATTERY, 4)
                    .u8(*controller_number)
                    .u8(*battery_state)
                    .u8(*battery_percentage)
                    .u8(0)
                    .0
            }
            InputEvent::Touch(t) => {
                Writer::new(magic::TOUCH, 28)
                    .u8(t.event_type)
                    .u8(0)
                    .le16(t.rotation)
                    .le32(t.pointer_id)
                    .f32(t.x)
                    .f32(t.y)
                    .f32(t.pressure_or_distance)
                    .f32(t.contact_area_major)
                    .f32(t.contact_area_minor)
                    .0
            }
            InputEvent::Pen(p) => {
                Writer::new(magic::PEN, 28)
                    .u8(p.event_type)
                    .u8(p.tool_type)
                    .u8(p.pen_buttons)
                    .u8(0)
                    .f32(p.x)
                    .f32(p.y)
                    .f32(p.pressure_or_distance)
                    .le16(p.rotation)
                    .u8(p.tilt)
                    .u8(0)
                    .f32(p.contact_area_major)
                    .f32(p.contact_area_minor)
                    .0
            }
            InputEvent::Utf8Text(text) => {
                Writer::new(magic::UTF8_TEXT, text.len())
                    .bytes(text.as_bytes())
                    .0
            }
        }
    }
}

fn encode_multi_controller(s: &ControllerState, gen5: bool) -> Vec<u8> {
    let m = by_gen(gen5, magic::MULTI_CONTROLLER, magic::MULTI_CONTROLLER_GEN4);
    Writer::new(m, 26)
        .le16(0x001A)
        .le16(s.controller_number)
        .le16(s.active_gamepad_mask)
        .le16(0x0014)
        .le16(s.buttons as u16)
        .u8(s.left_trigger)
        .u8(s.right_trigger)
        .le16(s.left_stick_x as u16)
        .le16(s.left_stick_y as u16)
        .le16(s.right_stick_x as u16)
        .le16(s.right_stick_y as u16)
        .le16(0x009C)
        .le16((s.buttons >> 16) as u16)
        .le16(0x0055)
        .0
}

fn encode_legacy_controller(s: &LegacyControllerState) -> Vec<u8> {
    Writer::new(magic::LEGACY_CONTROLLER, 20)
        .le16(0x1400)
        .le16(s.buttons)
        .u8(s.left_trigger)
        .u8(s.right_trigger)
        .le16(s.left_stick_x as u16)
        .le16(s.left_stick_y as u16)
        .le16(s.right_stick_x as u16)
        .le16(s.right_stick_y as u16)
        .le32(0x9C)
        .le16(0x0055)
        .0
}
