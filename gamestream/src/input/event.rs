//! The input event model and its byte encoding: the types and per-version routing here, the
//! client's encoder in `event/encode.rs` and the host's decoder in `event/decode.rs`.

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

mod decode;
mod encode;

impl InputEvent {
    /// The key event for `down` (press) or release, one constructor for both variants.
    pub fn key(down: bool, flags: u8, key_code: u16, modifiers: u8) -> InputEvent {
        if down {
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
