//! The client → server input messages (contract §2.6–§2.10): keyboard, mouse, and moongate's
//! touch and gamepad layouts.

/// KeyboardInput 0x10 (§2.6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyboardInput<'a> {
    /// Subtype 0: a key event (the only one the reference WS client sends).
    Key {
        /// Press (true) or release.
        is_down: bool,
        /// SHIFT 0x01, CTRL 0x02, ALT 0x04, META 0x08.
        modifiers: u8,
        /// Windows virtual-key code.
        key: u16,
    },
    /// Subtype 1: UTF-8 text, `len` (u8) then the bytes.
    Text(&'a str),
}

/// Keyboard modifier bits.
pub mod modifiers {
    /// Shift.
    pub const SHIFT: u8 = 0x01;
    /// Control.
    pub const CTRL: u8 = 0x02;
    /// Alt.
    pub const ALT: u8 = 0x04;
    /// Meta / Windows.
    pub const META: u8 = 0x08;
}

/// MouseClick 0x11: buttons and wheel (§2.7).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MouseClick {
    /// Subtype 2: button 1 left, 2 middle, 3 right, 4 X1, 5 X2.
    Button {
        /// Press or release.
        is_down: bool,
        /// Button number.
        button: u8,
    },
    /// Subtype 3, reference form (6 bytes): pixel wheel deltas, Y already negated (+ = up).
    /// (Helix HEAD's f32 little-endian variant of subtype 3 is not supported.)
    HighResWheel {
        /// Horizontal.
        dx: i16,
        /// Vertical.
        dy: i16,
    },
    /// Subtype 4 (the default scroll mode): deltas ÷ 10, Y negated.
    Wheel {
        /// Horizontal.
        dx: i8,
        /// Vertical.
        dy: i8,
    },
}

/// MouseAbsolute 0x12 (subtype 1): a position in a reference frame (Helix: 4096×4096) (§2.8).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MouseAbsolute {
    /// X.
    pub x: i16,
    /// Y.
    pub y: i16,
    /// Reference width.
    pub ref_width: i16,
    /// Reference height.
    pub ref_height: i16,
}

/// MicOpus 0x18 (moongate): `u32` timestamp on the 48 kHz sample clock, then one Opus packet
/// (1–1275 bytes, RFC 6716) of the browser's microphone, mono 48 kHz.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MicOpus<'a> {
    /// The packet's first sample, in 48 kHz samples (wraps).
    pub timestamp: u32,
    /// The Opus packet.
    pub data: &'a [u8],
}

/// The largest Opus packet (RFC 6716 §3.4, R5).
pub const MAX_OPUS_PACKET: usize = 1275;

impl MicOpus<'_> {
    /// How many 48 kHz samples the packet holds, from its TOC byte (RFC 6716 §3.1): the frame
    /// size of its configuration times its frame count. `None` for a malformed packet (code 3
    /// without its count byte, no frames, or over the 120 ms an Opus packet may hold).
    pub fn samples(&self) -> Option<u32> {
        let toc = *self.data.first()?;
        let config = toc >> 3;
        // Frame sizes in 48 kHz samples: SILK 10/20/40/60 ms, Hybrid 10/20 ms, CELT
        // 2.5/5/10/20 ms.
        let frame = match config {
            0..=11 => [480, 960, 1920, 2880][usize::from(config % 4)],
            12..=15 => [480, 960][usize::from(config % 2)],
            _ => [120, 240, 480, 960][usize::from(config % 4)],
        };
        let frames = match toc & 3 {
            0 => 1,
            1 | 2 => 2,
            _ => u32::from(*self.data.get(1)? & 0x3f),
        };
        let samples = frame * frames;
        (frames > 0 && samples <= 5760).then_some(samples)
    }
}

/// MouseRelative 0x13 (subtype 0): deltas in stream pixels (§2.9).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MouseRelative {
    /// X delta.
    pub dx: i16,
    /// Y delta.
    pub dy: i16,
}

/// Touch 0x14, **moongate layout** (28 bytes, big-endian; see `docs/browser-protocol.md`). It
/// carries what Moonlight's touch packet carries, so the streamer maps it field for field.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Touch {
    /// [`super::touch_event`] value.
    pub event: u8,
    /// Pointer id (the browser's `pointerId`).
    pub pointer_id: u32,
    /// 0..1 across the video.
    pub x: f32,
    /// 0..1 down the video.
    pub y: f32,
    /// Pressure 0..1 (down/move) or hover distance.
    pub pressure: f32,
    /// Normalised contact-area major axis, 0 = unknown.
    pub contact_major: f32,
    /// Normalised contact-area minor axis, 0 = unknown.
    pub contact_minor: f32,
    /// Degrees 0..359, 0xFFFF = unknown.
    pub rotation: u16,
}

/// ControllerEvent 0x15, **moongate layout** (see `docs/browser-protocol.md`).
///
/// Never send this to a client whose init lacks `protocol_version` ≥ 2: the reference Helix client
/// throws on it (contract §2.10).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ControllerEvent {
    /// Subtype 0, C→S: a gamepad appeared.
    Arrival {
        /// Controller number 0..15.
        id: u8,
        /// 0 unknown, 1 Xbox, 2 PlayStation, 3 Nintendo.
        controller_type: u8,
        /// Moonlight capability flags (`LI_CCAP_*`).
        capabilities: u16,
        /// Moonlight button flags the pad has.
        supported_buttons: u32,
    },
    /// Subtype 1, C→S: a gamepad went away.
    Removal {
        /// Controller number.
        id: u8,
    },
    /// Subtype 2, S→C: rumble motors, 0..65535.
    Rumble {
        /// Controller number.
        id: u8,
        /// Low-frequency motor.
        low: u16,
        /// High-frequency motor.
        high: u16,
    },
    /// Subtype 3, S→C: trigger rumble, 0..65535.
    TriggerRumble {
        /// Controller number.
        id: u8,
        /// Left trigger motor.
        left: u16,
        /// Right trigger motor.
        right: u16,
    },
}

/// ControllerState 0x16, **moongate layout** (18 bytes, big-endian): one gamepad's full state, in
/// Moonlight's conventions (button flags, triggers 0..255, sticks with Y positive = up).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ControllerState {
    /// Controller number 0..15.
    pub id: u8,
    /// Bit n set = controller n is present.
    pub active_mask: u16,
    /// Moonlight button flags (low 16 = `buttonFlags`, high 16 = `buttonFlags2`).
    pub buttons: u32,
    /// Left trigger.
    pub left_trigger: u8,
    /// Right trigger.
    pub right_trigger: u8,
    /// Left stick X.
    pub left_stick_x: i16,
    /// Left stick Y (positive = up).
    pub left_stick_y: i16,
    /// Right stick X.
    pub right_stick_x: i16,
    /// Right stick Y (positive = up).
    pub right_stick_y: i16,
}
