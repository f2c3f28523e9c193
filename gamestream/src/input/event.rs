//! The input event model and its byte encoding.

use super::InputError;
use crate::version::AppVersion;

/// NV input magics (LE32 on the wire), generation ≥ 5 unless named otherwise.
pub mod magic {
    /// Key down (all generations).
    pub const KEY_DOWN: u32 = 0x03;
    /// Key up (all generations).
    pub const KEY_UP: u32 = 0x04;
    /// Absolute mouse position (all generations).
    pub const MOUSE_MOVE_ABS: u32 = 0x05;
    /// Relative mouse move, gen 3-4.
    pub const MOUSE_MOVE_REL_GEN3: u32 = 0x06;
    /// Relative mouse move.
    pub const MOUSE_MOVE_REL: u32 = 0x07;
    /// Mouse button down, gen 3-4.
    pub const MOUSE_BUTTON_DOWN_GEN3: u32 = 0x07;
    /// Mouse button down.
    pub const MOUSE_BUTTON_DOWN: u32 = 0x08;
    /// Mouse button up, gen 3-4.
    pub const MOUSE_BUTTON_UP_GEN3: u32 = 0x08;
    /// Mouse button up.
    pub const MOUSE_BUTTON_UP: u32 = 0x09;
    /// Vertical scroll, gen 3-4.
    pub const SCROLL_GEN3: u32 = 0x09;
    /// Vertical scroll.
    pub const SCROLL: u32 = 0x0A;
    /// Legacy single controller (gen 3).
    pub const LEGACY_CONTROLLER: u32 = 0x0A;
    /// Multi-controller, gen 4.
    pub const MULTI_CONTROLLER_GEN4: u32 = 0x0D;
    /// Multi-controller.
    pub const MULTI_CONTROLLER: u32 = 0x0C;
    /// Enable haptics (gen ≥ 7.1.0).
    pub const ENABLE_HAPTICS: u32 = 0x0D;
    /// UTF-8 text.
    pub const UTF8_TEXT: u32 = 0x17;
    /// Horizontal scroll (Sunshine).
    pub const HSCROLL: u32 = 0x5500_0001;
    /// Touch (Sunshine).
    pub const TOUCH: u32 = 0x5500_0002;
    /// Pen (Sunshine).
    pub const PEN: u32 = 0x5500_0003;
    /// Controller arrival (Sunshine).
    pub const CONTROLLER_ARRIVAL: u32 = 0x5500_0004;
    /// Controller touch (Sunshine).
    pub const CONTROLLER_TOUCH: u32 = 0x5500_0005;
    /// Controller motion (Sunshine).
    pub const CONTROLLER_MOTION: u32 = 0x5500_0006;
    /// Controller battery (Sunshine).
    pub const CONTROLLER_BATTERY: u32 = 0x5500_0007;
}

/// Touch/pen event types (`eventType` byte).
pub mod touch_event {
    /// Hover.
    pub const HOVER: u8 = 0;
    /// Down.
    pub const DOWN: u8 = 1;
    /// Up.
    pub const UP: u8 = 2;
    /// Move.
    pub const MOVE: u8 = 3;
    /// Cancel.
    pub const CANCEL: u8 = 4;
    /// Button-only change.
    pub const BUTTON_ONLY: u8 = 5;
    /// Hover leave.
    pub const HOVER_LEAVE: u8 = 6;
    /// Cancel all.
    pub const CANCEL_ALL: u8 = 7;

    /// Hover and move are batchable and sent unreliably.
    pub fn is_batchable(event_type: u8) -> bool {
        event_type == HOVER || event_type == MOVE
    }
}

/// Controller motion types.
pub mod motion_type {
    /// Accelerometer, m/s².
    pub const ACCEL: u8 = 1;
    /// Gyroscope, deg/s.
    pub const GYRO: u8 = 2;
}

/// ENet control channels used by input (control spec §4.3).
pub use crate::control::route::channel;

/// Most UTF-8 bytes one text packet may carry (the hosts' buffer size).
pub const UTF8_TEXT_MAX_BYTES: usize = 32;

/// State of one multi-controller packet. `buttons` holds all 32 flag bits; the wire splits them into
/// `buttonFlags` (low 16) and Sunshine's `buttonFlags2` (high 16, send 0 to GFE).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ControllerState {
    /// Controller number (0..3 GFE, 0..15 Sunshine).
    pub controller_number: u16,
    /// Bit n = controller n present.
    pub active_gamepad_mask: u16,
    /// Button flags (`Limelight.h` values).
    pub buttons: u32,
    /// Left trigger 0..255.
    pub left_trigger: u8,
    /// Right trigger 0..255.
    pub right_trigger: u8,
    /// Left stick X.
    pub left_stick_x: i16,
    /// Left stick Y (positive = up).
    pub left_stick_y: i16,
    /// Right stick X.
    pub right_stick_x: i16,
    /// Right stick Y.
    pub right_stick_y: i16,
}

/// The gen-3 single-controller packet (no controller number, 16 button bits).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LegacyControllerState {
    /// Button flags.
    pub buttons: u16,
    /// Left trigger.
    pub left_trigger: u8,
    /// Right trigger.
    pub right_trigger: u8,
    /// Left stick X.
    pub left_stick_x: i16,
    /// Left stick Y.
    pub left_stick_y: i16,
    /// Right stick X.
    pub right_stick_x: i16,
    /// Right stick Y.
    pub right_stick_y: i16,
}

/// A touch event (Sunshine, host feature flag 0x01).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct TouchEvent {
    /// [`touch_event`] value.
    pub event_type: u8,
    /// Degrees 0..359, 0xFFFF unknown.
    pub rotation: u16,
    /// Pointer id.
    pub pointer_id: u32,
    /// 0..1 across the video.
    pub x: f32,
    /// 0..1 down the video.
    pub y: f32,
    /// Pressure (down/move) or distance (hover).
    pub pressure_or_distance: f32,
    /// Normalised contact area, 0 = unknown.
    pub contact_area_major: f32,
    /// Normalised contact area, 0 = unknown.
    pub contact_area_minor: f32,
}

/// A pen event (Sunshine, host feature flag 0x01).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct PenEvent {
    /// [`touch_event`] value.
    pub event_type: u8,
    /// 0 unknown, 1 pen, 2 eraser.
    pub tool_type: u8,
    /// 0x01 primary, 0x02 secondary, 0x04 tertiary.
    pub pen_buttons: u8,
    /// 0..1 across the video.
    pub x: f32,
    /// 0..1 down the video.
    pub y: f32,
    /// Pressure or hover distance.
    pub pressure_or_distance: f32,
    /// Degrees, 0xFFFF unknown.
    pub rotation: u16,
    /// Degrees 0..90, 0xFF unknown.
    pub tilt: u8,
    /// Normalised contact area.
    pub contact_area_major: f32,
    /// Normalised contact area.
    pub contact_area_minor: f32,
}

/// One input event. Reserved/zero wire fields are not modelled (written as 0, ignored on decode).
#[derive(Debug, Clone, PartialEq)]
pub enum InputEvent {
    /// Key pressed.
    KeyDown {
        /// 0x01 = non-normalised key code (Sunshine; 0 for GFE).
        flags: u8,
        /// Windows virtual-key code.
        key_code: u16,
        /// 0x01 shift, 0x02 ctrl, 0x04 alt, 0x08 meta.
        modifiers: u8,
    },
    /// Key released.
    KeyUp {
        /// As for `KeyDown`.
        flags: u8,
        /// As for `KeyDown`.
        key_code: u16,
        /// As for `KeyDown`.
        modifiers: u8,
    },
    /// Relative mouse motion.
    MouseMoveRelative {
        /// X delta.
        dx: i16,
        /// Y delta.
        dy: i16,
    },
    /// Absolute mouse position in a reference frame. The wire carries `width − 1` / `height − 1`
    /// (GFE rounding workaround); these fields hold the real reference size.
    MouseMoveAbsolute {
        /// X.
        x: i16,
        /// Y.
        y: i16,
        /// Reference width.
        reference_width: u16,
        /// Reference height.
        reference_height: u16,
    },
    /// Mouse button pressed (1 left, 2 middle, 3 right, 4 X1, 5 X2).
    MouseButtonDown {
        /// Button.
        button: u8,
    },
    /// Mouse button released.
    MouseButtonUp {
        /// Button.
        button: u8,
    },
    /// Vertical scroll, 120 per notch, positive = up.
    Scroll {
        /// Amount.
        amount: i16,
    },
    /// Horizontal scroll (Sunshine), 120 per notch.
    HScroll {
        /// Amount.
        amount: i16,
    },
    /// Ask the host for rumble (gen ≥ 7.1.0).
    EnableHaptics,
    /// Multi-controller state (gen ≥ 4).
    MultiController(ControllerState),
    /// Gen-3 single controller.
    LegacyController(LegacyControllerState),
    /// Controller arrival (Sunshine).
    ControllerArrival {
        /// Controller number.
        controller_number: u8,
        /// 0 unknown, 1 Xbox, 2 PlayStation, 3 Nintendo, 4 Steam.
        controller_type: u8,
        /// Capability flags.
        capabilities: u16,
        /// Supported button flags.
        supported_buttons: u32,
    },
    /// Controller touchpad event (Sunshine).
    ControllerTouch {
        /// Controller number.
        controller_number: u8,
        /// [`touch_event`] value.
        event_type: u8,
        /// 0 or 1.
        touchpad_index: u8,
        /// Pointer id.
        pointer_id: u32,
        /// 0..1.
        x: f32,
        /// 0..1.
        y: f32,
        /// 0..1.
        pressure: f32,
    },
    /// Controller motion sensor sample (Sunshine).
    ControllerMotion {
        /// Controller number.
        controller_number: u8,
        /// [`motion_type`] value.
        motion_type: u8,
        /// X.
        x: f32,
        /// Y.
        y: f32,
        /// Z.
        z: f32,
    },
    /// Controller battery (Sunshine).
    ControllerBattery {
        /// Controller number.
        controller_number: u8,
        /// 0 unknown, 1 not present, 2 discharging, 3 charging, 4 not charging, 5 full.
        battery_state: u8,
        /// 0..100, 0xFF unknown.
        battery_percentage: u8,
    },
    /// Touch (Sunshine).
    Touch(TouchEvent),
    /// Pen (Sunshine).
    Pen(PenEvent),
    /// UTF-8 text (gen ≥ 5). Clients send one code point per packet, see
    /// [`super::client::utf8_text_events`].
    Utf8Text(String),
}

pub use crate::control::InputRoute;

fn is_gen5(version: AppVersion) -> bool {
    version.major >= 5
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

/// Bounds-checked reader over a body whose length was already verified.
struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn take<const N: usize>(&mut self) -> [u8; N] {
        let mut out = [0u8; N];
        if let Some((head, rest)) = self.0.split_first_chunk::<N>() {
            out = *head;
            self.0 = rest;
        }
        out
    }
    fn u8(&mut self) -> u8 {
        self.take::<1>()[0]
    }
    fn le16(&mut self) -> u16 {
        u16::from_le_bytes(self.take())
    }
    fn be16(&mut self) -> u16 {
        u16::from_be_bytes(self.take())
    }
    fn le32(&mut self) -> u32 {
        u32::from_le_bytes(self.take())
    }
    fn f32(&mut self) -> f32 {
        f32::from_bits(self.le32())
    }
    fn skip(&mut self, n: usize) {
        self.0 = self.0.get(n..).unwrap_or(&[]);
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
                let m = if gen5 {
                    magic::MOUSE_MOVE_REL
                } else {
                    magic::MOUSE_MOVE_REL_GEN3
                };
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
                let m = if gen5 {
                    magic::MOUSE_BUTTON_DOWN
                } else {
                    magic::MOUSE_BUTTON_DOWN_GEN3
                };
                Writer::new(m, 1).u8(*button).0
            }
            InputEvent::MouseButtonUp { button } => {
                let m = if gen5 {
                    magic::MOUSE_BUTTON_UP
                } else {
                    magic::MOUSE_BUTTON_UP_GEN3
                };
                Writer::new(m, 1).u8(*button).0
            }
            InputEvent::Scroll { amount } => {
                let m = if gen5 {
                    magic::SCROLL
                } else {
                    magic::SCROLL_GEN3
                };
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

    /// True if a host of `version` understands this event (moonlight-common-c's gating; touch, pen
    /// and controller touch/motion also need the host's DESCRIBE feature flags).
    pub fn supported_by(&self, version: AppVersion) -> bool {
        match self {
            InputEvent::EnableHaptics => version.at_least(7, 1, 0),
            InputEvent::Utf8Text(_) => version.major >= 5,
            InputEvent::HScroll { .. }
            | InputEvent::Touch(_)
            | InputEvent::Pen(_)
            | InputEvent::ControllerArrival { .. }
            | InputEvent::ControllerTouch { .. }
            | InputEvent::ControllerMotion { .. }
            | InputEvent::ControllerBattery { .. } => version.is_sunshine(),
            _ => true,
        }
    }

    /// Host side: decodes one plaintext NV input packet as sent to a host of `version`.
    ///
    /// The size field must match the buffer exactly and the body length must match the event type.
    pub fn decode(bytes: &[u8], version: AppVersion) -> Result<InputEvent, InputError> {
        let (size, rest) = bytes
            .split_first_chunk::<4>()
            .ok_or(InputError::TooShort(bytes.len()))?;
        let declared = u32::from_be_bytes(*size);
        if rest.len() < 4 {
            return Err(InputError::TooShort(bytes.len()));
        }
        if declared as usize != rest.len() {
            return Err(InputError::SizeMismatch {
                declared,
                actual: rest.len(),
            });
        }
        let (m, body) = rest
            .split_first_chunk::<4>()
            .ok_or(InputError::TooShort(bytes.len()))?;
        let m = u32::from_le_bytes(*m);
        let kind = classify(m, version).ok_or(InputError::UnknownMagic { magic: m })?;
        let check = |expected_body: usize| -> Result<Reader<'_>, InputError> {
            if body.len() != expected_body {
                return Err(InputError::WrongLength {
                    magic: m,
                    expected: 4 + expected_body,
                    got: 4 + body.len(),
                });
            }
            Ok(Reader(body))
        };
        let ev = match kind {
            Kind::KeyDown | Kind::KeyUp => {
                let mut r = check(6)?;
                let (flags, key_code, modifiers) = (r.u8(), r.le16(), r.u8());
                if kind == Kind::KeyDown {
                    InputEvent::KeyDown {
                        flags,
                        key_code,
                        modifiers,
                    }
                } else {
                    InputEvent::KeyUp {
                        flags,
                        key_code,
                        modifiers,
                    }
                }
            }
            Kind::MouseRel => {
                let mut r = check(4)?;
                InputEvent::MouseMoveRelative {
                    dx: r.be16() as i16,
                    dy: r.be16() as i16,
                }
            }
            Kind::MouseAbs => {
                let mut r = check(10)?;
                let (x, y) = (r.be16() as i16, r.be16() as i16);
                r.skip(2);
                InputEvent::MouseMoveAbsolute {
                    x,
                    y,
                    reference_width: r.be16().wrapping_add(1),
                    reference_height: r.be16().wrapping_add(1),
                }
            }
            Kind::ButtonDown => InputEvent::MouseButtonDown {
                button: check(1)?.u8(),
            },
            Kind::ButtonUp => InputEvent::MouseButtonUp {
                button: check(1)?.u8(),
            },
            Kind::Scroll => {
                // Hosts use the first copy of the amount.
                let mut r = check(6)?;
                InputEvent::Scroll {
                    amount: r.be16() as i16,
                }
            }
            Kind::HScroll => InputEvent::HScroll {
                amount: check(2)?.be16() as i16,
            },
            Kind::EnableHaptics => {
                check(2)?;
                InputEvent::EnableHaptics
            }
            Kind::MultiController => {
                let mut r = check(26)?;
                r.skip(2);
                let controller_number = r.le16();
                let active_gamepad_mask = r.le16();
                r.skip(2);
                let low = r.le16();
                let left_trigger = r.u8();
                let right_trigger = r.u8();
                let (lsx, lsy, rsx, rsy) = (
                    r.le16() as i16,
                    r.le16() as i16,
                    r.le16() as i16,
                    r.le16() as i16,
                );
                r.skip(2);
                let high = r.le16();
                InputEvent::MultiController(ControllerState {
                    controller_number,
                    active_gamepad_mask,
                    buttons: u32::from(low) | (u32::from(high) << 16),
                    left_trigger,
                    right_trigger,
                    left_stick_x: lsx,
                    left_stick_y: lsy,
                    right_stick_x: rsx,
                    right_stick_y: rsy,
                })
            }
            Kind::LegacyController => {
                let mut r = check(20)?;
                r.skip(2);
                let buttons = r.le16();
                let left_trigger = r.u8();
                let right_trigger = r.u8();
                InputEvent::LegacyController(LegacyControllerState {
                    buttons,
                    left_trigger,
                    right_trigger,
                    left_stick_x: r.le16() as i16,
                    left_stick_y: r.le16() as i16,
                    right_stick_x: r.le16() as i16,
                    right_stick_y: r.le16() as i16,
                })
            }
            Kind::ControllerArrival => {
                let mut r = check(8)?;
                InputEvent::ControllerArrival {
                    controller_number: r.u8(),
                    controller_type: r.u8(),
                    capabilities: r.le16(),
                    supported_buttons: r.le32(),
                }
            }
            Kind::ControllerTouch => {
                let mut r = check(20)?;
                let controller_number = r.u8();
                let event_type = r.u8();
                r.skip(1);
                InputEvent::ControllerTouch {
                    controller_number,
                    event_type,
                    touchpad_index: r.u8(),
                    pointer_id: r.le32(),
                    x: r.f32(),
                    y: r.f32(),
                    pressure: r.f32(),
                }
            }
            Kind::ControllerMotion => {
                let mut r = check(16)?;
                let controller_number = r.u8();
                let motion_type = r.u8();
                r.skip(2);
                InputEvent::ControllerMotion {
                    controller_number,
                    motion_type,
                    x: r.f32(),
                    y: r.f32(),
                    z: r.f32(),
                }
            }
            Kind::ControllerBattery => {
                let mut r = check(4)?;
                InputEvent::ControllerBattery {
                    controller_number: r.u8(),
                    battery_state: r.u8(),
                    battery_percentage: r.u8(),
                }
            }
            Kind::Touch => {
                let mut r = check(28)?;
                let event_type = r.u8();
                r.skip(1);
                InputEvent::Touch(TouchEvent {
                    event_type,
                    rotation: r.le16(),
                    pointer_id: r.le32(),
                    x: r.f32(),
                    y: r.f32(),
                    pressure_or_distance: r.f32(),
                    contact_area_major: r.f32(),
                    contact_area_minor: r.f32(),
                })
            }
            Kind::Pen => {
                let mut r = check(28)?;
                let (event_type, tool_type, pen_buttons) = (r.u8(), r.u8(), r.u8());
                r.skip(1);
                let (x, y, pressure_or_distance) = (r.f32(), r.f32(), r.f32());
                let rotation = r.le16();
                let tilt = r.u8();
                r.skip(1);
                InputEvent::Pen(PenEvent {
                    event_type,
                    tool_type,
                    pen_buttons,
                    x,
                    y,
                    pressure_or_distance,
                    rotation,
                    tilt,
                    contact_area_major: r.f32(),
                    contact_area_minor: r.f32(),
                })
            }
            Kind::Utf8 => {
                if body.len() > UTF8_TEXT_MAX_BYTES {
                    return Err(InputError::InvalidText);
                }
                let text = std::str::from_utf8(body).map_err(|_| InputError::InvalidText)?;
                InputEvent::Utf8Text(text.to_owned())
            }
        };
        Ok(ev)
    }

    /// The ENet channel and reliability moonlight-common-c uses for this event (control spec §4.3,
    /// §5.1 "Delivery"). GFE (non-Sunshine) hosts get everything on channel 0, reliable.
    ///
    /// Pen hover/move is reported unreliable here; moonlight-common-c additionally makes it reliable
    /// when the pen buttons changed, which needs state: use [`super::client::PenButtonTracker`].
    pub fn route(&self, version: AppVersion) -> InputRoute {
        if !version.is_sunshine() {
            return InputRoute {
                channel: channel::GENERIC,
                reliable: true,
            };
        }
        let pad = |n: u16| channel::gamepad((n % 16) as u8);
        let reliable = |channel| InputRoute {
            channel,
            reliable: true,
        };
        match self {
            InputEvent::KeyDown { .. } | InputEvent::KeyUp { .. } => reliable(channel::KEYBOARD),
            InputEvent::MouseMoveRelative { .. }
            | InputEvent::MouseMoveAbsolute { .. }
            | InputEvent::MouseButtonDown { .. }
            | InputEvent::MouseButtonUp { .. }
            | InputEvent::Scroll { .. }
            | InputEvent::HScroll { .. } => reliable(channel::MOUSE),
            InputEvent::EnableHaptics => reliable(channel::GENERIC),
            InputEvent::MultiController(s) => reliable(pad(s.controller_number)),
            InputEvent::LegacyController(_) => reliable(channel::gamepad(0)),
            InputEvent::ControllerArrival {
                controller_number, ..
            }
            | InputEvent::ControllerBattery {
                controller_number, ..
            } => reliable(pad(u16::from(*controller_number))),
            InputEvent::ControllerTouch {
                controller_number,
                event_type,
                ..
            } => InputRoute {
                channel: pad(u16::from(*controller_number)),
                reliable: !touch_event::is_batchable(*event_type),
            },
            InputEvent::ControllerMotion {
                controller_number,
                motion_type,
                x,
                y,
                z,
            } => InputRoute {
                channel: channel::sensor(controller_number % 16),
                reliable: *motion_type == motion_type::GYRO && *x == 0.0 && *y == 0.0 && *z == 0.0,
            },
            InputEvent::Touch(t) => InputRoute {
                channel: channel::TOUCH,
                reliable: !touch_event::is_batchable(t.event_type),
            },
            InputEvent::Pen(p) => InputRoute {
                channel: channel::PEN,
                reliable: !touch_event::is_batchable(p.event_type),
            },
            InputEvent::Utf8Text(_) => reliable(channel::UTF8),
        }
    }
}

fn encode_multi_controller(s: &ControllerState, gen5: bool) -> Vec<u8> {
    let m = if gen5 {
        magic::MULTI_CONTROLLER
    } else {
        magic::MULTI_CONTROLLER_GEN4
    };
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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    KeyDown,
    KeyUp,
    MouseRel,
    MouseAbs,
    ButtonDown,
    ButtonUp,
    Scroll,
    HScroll,
    EnableHaptics,
    MultiController,
    LegacyController,
    ControllerArrival,
    ControllerTouch,
    ControllerMotion,
    ControllerBattery,
    Touch,
    Pen,
    Utf8,
}

fn classify(m: u32, version: AppVersion) -> Option<Kind> {
    let common = match m {
        magic::KEY_DOWN => Some(Kind::KeyDown),
        magic::KEY_UP => Some(Kind::KeyUp),
        magic::MOUSE_MOVE_ABS => Some(Kind::MouseAbs),
        _ => None,
    };
    if common.is_some() {
        return common;
    }
    if version.major >= 5 {
        match m {
            magic::MOUSE_MOVE_REL => Some(Kind::MouseRel),
            magic::MOUSE_BUTTON_DOWN => Some(Kind::ButtonDown),
            magic::MOUSE_BUTTON_UP => Some(Kind::ButtonUp),
            magic::SCROLL => Some(Kind::Scroll),
            magic::MULTI_CONTROLLER => Some(Kind::MultiController),
            magic::ENABLE_HAPTICS => Some(Kind::EnableHaptics),
            magic::UTF8_TEXT => Some(Kind::Utf8),
            magic::HSCROLL => Some(Kind::HScroll),
            magic::TOUCH => Some(Kind::Touch),
            magic::PEN => Some(Kind::Pen),
            magic::CONTROLLER_ARRIVAL => Some(Kind::ControllerArrival),
            magic::CONTROLLER_TOUCH => Some(Kind::ControllerTouch),
            magic::CONTROLLER_MOTION => Some(Kind::ControllerMotion),
            magic::CONTROLLER_BATTERY => Some(Kind::ControllerBattery),
            _ => None,
        }
    } else {
        match m {
            magic::MOUSE_MOVE_REL_GEN3 => Some(Kind::MouseRel),
            magic::MOUSE_BUTTON_DOWN_GEN3 => Some(Kind::ButtonDown),
            magic::MOUSE_BUTTON_UP_GEN3 => Some(Kind::ButtonUp),
            magic::SCROLL_GEN3 => Some(Kind::Scroll),
            magic::LEGACY_CONTROLLER if version.major <= 3 => Some(Kind::LegacyController),
            magic::MULTI_CONTROLLER_GEN4 if version.major == 4 => Some(Kind::MultiController),
            _ => None,
        }
    }
}
