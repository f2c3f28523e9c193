//! Client-side shaping of input, matching moonlight-common-c's `InputStream.c`: what a client must do
//! before handing events to [`InputEvent::encode`] so hosts see what they expect.

use super::event::{touch_event, ControllerState, InputEvent, InputRoute, PenEvent};
use crate::version::AppVersion;

/// One notch of scrolling (Win32 `WHEEL_DELTA`).
pub const WHEEL_DELTA: i16 = 120;

/// Accumulates relative mouse motion between sends and splits totals beyond the 16-bit range into
/// several packets (moonlight-common-c batches to at most one send per millisecond).
#[derive(Debug, Clone, Default)]
pub struct RelativeMouseAccumulator {
    dx: i64,
    dy: i64,
}

impl RelativeMouseAccumulator {
    /// New, empty accumulator.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a delta (zero deltas are ignored, as the client does).
    pub fn add(&mut self, dx: i32, dy: i32) {
        self.dx += i64::from(dx);
        self.dy += i64::from(dy);
    }

    /// True if motion is pending.
    pub fn is_pending(&self) -> bool {
        self.dx != 0 || self.dy != 0
    }

    /// Takes everything pending as packets, each axis clamped to `i16`, remainder carried.
    pub fn drain(&mut self) -> Vec<InputEvent> {
        let mut out = Vec::new();
        while self.is_pending() {
            let dx = take_clamped(&mut self.dx);
            let dy = take_clamped(&mut self.dy);
            out.push(InputEvent::MouseMoveRelative { dx, dy });
        }
        out
    }
}

fn take_clamped(v: &mut i64) -> i16 {
    let part = (*v).clamp(i64::from(i16::MIN), i64::from(i16::MAX));
    *v -= part;
    part as i16
}

/// GFE ≥ 7.1.409 (not Sunshine) turns any scroll into a full notch, so the client accumulates
/// high-resolution deltas and sends only whole ±120 steps; a direction change drops the remainder.
#[derive(Debug, Clone)]
pub struct ScrollBatcher {
    batched: bool,
    pending: i32,
}

impl ScrollBatcher {
    /// Batching is on only for hosts that need it.
    pub fn new(version: AppVersion) -> Self {
        Self {
            batched: version.at_least(7, 1, 409) && !version.is_sunshine(),
            pending: 0,
        }
    }

    /// Whether this host gets batched scrolling.
    pub fn is_batching(&self) -> bool {
        self.batched
    }

    /// The accumulated remainder not yet sent.
    pub fn pending(&self) -> i32 {
        self.pending
    }

    /// Feeds one scroll delta and returns the vertical scroll packets to send now.
    pub fn push(&mut self, amount: i16) -> Vec<InputEvent> {
        if amount == 0 {
            return Vec::new();
        }
        if !self.batched {
            return vec![InputEvent::Scroll { amount }];
        }
        let amount = i32::from(amount);
        if (self.pending < 0 && amount > 0) || (self.pending > 0 && amount < 0) {
            self.pending = 0;
        }
        self.pending += amount;
        let mut out = Vec::new();
        let delta = i32::from(WHEEL_DELTA);
        while self.pending.abs() >= delta {
            let step = if self.pending > 0 { delta } else { -delta };
            out.push(InputEvent::Scroll {
                amount: step as i16,
            });
            self.pending -= step;
        }
        out
    }
}

/// Splits text into one UTF-8 text event per code point, so a code point never straddles packets.
pub fn utf8_text_events(text: &str) -> Vec<InputEvent> {
    text.chars()
        .map(|c| InputEvent::Utf8Text(c.to_string()))
        .collect()
}

/// The packet that removes controller `controller_number`: an all-zero state with its bit cleared
/// in `active_gamepad_mask` (pass the mask of the controllers that remain).
pub fn controller_removal(controller_number: u16, active_gamepad_mask: u16) -> InputEvent {
    InputEvent::MultiController(ControllerState {
        controller_number,
        active_gamepad_mask: active_gamepad_mask
            & !(1u16.checked_shl(u32::from(controller_number)).unwrap_or(0)),
        ..ControllerState::default()
    })
}

/// Applies moonlight-common-c's host-specific fix-ups to a key event: GFE gets `flags = 0`, no META
/// on the Windows keys, and left/right modifier keys set/clear their own modifier bit.
pub fn key_event_for_host(
    down: bool,
    key_code: u16,
    mut modifiers: u8,
    flags: u8,
    version: AppVersion,
) -> InputEvent {
    const SHIFT: u8 = 0x01;
    const CTRL: u8 = 0x02;
    const ALT: u8 = 0x04;
    const META: u8 = 0x08;
    let flags = if version.is_sunshine() {
        flags
    } else {
        match key_code & 0xFF {
            0x5B | 0x5C => modifiers &= !META,
            0xA0 => modifiers |= SHIFT,
            0xA1 => modifiers &= !SHIFT,
            0xA2 => modifiers |= CTRL,
            0xA3 => modifiers &= !CTRL,
            0xA4 => modifiers |= ALT,
            0xA5 => modifiers &= !ALT,
            _ => {}
        }
        0
    };
    InputEvent::key(down, flags, key_code, modifiers)
}

/// Shapes a controller state for the host: GFE gets controller numbers 0..3, mask ≤ 0xF, MISC mapped
/// to SPECIAL and no extended buttons; Sunshine gets numbers 0..15.
pub fn controller_state_for_host(mut s: ControllerState, version: AppVersion) -> ControllerState {
    const SPECIAL: u32 = 0x0400;
    const MISC: u32 = 0x20_0000;
    if version.is_sunshine() {
        s.controller_number %= 16;
    } else {
        s.controller_number %= 4;
        s.active_gamepad_mask &= 0xF;
        if s.buttons & MISC != 0 {
            s.buttons |= SPECIAL;
        }
        s.buttons &= 0xFFFF;
    }
    s
}

/// Remembers the pen button state so pen hover/move events are sent reliably when the buttons
/// changed (moonlight-common-c `LiSendPenEvent`).
#[derive(Debug, Clone, Default)]
pub struct PenButtonTracker {
    buttons: u8,
}

impl PenButtonTracker {
    /// Starts with no buttons pressed.
    pub fn new() -> Self {
        Self::default()
    }

    /// Route for `pen`, updating the remembered button state.
    pub fn route(&mut self, pen: &PenEvent, version: AppVersion) -> InputRoute {
        let changed = pen.pen_buttons != self.buttons;
        self.buttons = pen.pen_buttons;
        let mut route = InputEvent::Pen(*pen).route(version);
        if version.is_sunshine() {
            route.reliable = !touch_event::is_batchable(pen.event_type) || changed;
        }
        route
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn size_field(ev: &InputEvent) -> u32 {
        let b = ev.encode(AppVersion::SUNSHINE);
        u32::from_be_bytes([b[0], b[1], b[2], b[3]])
    }

    #[test]
    fn relative_mouse_split_checklist() {
        let mut acc = RelativeMouseAccumulator::new();
        acc.add(30000, 0);
        acc.add(10000, -5);
        let evs = acc.drain();
        assert_eq!(
            evs,
            vec![
                InputEvent::MouseMoveRelative { dx: 32767, dy: -5 },
                InputEvent::MouseMoveRelative { dx: 7233, dy: 0 }
            ]
        );
        assert!(acc.drain().is_empty());
        acc.add(-40000, 0);
        assert_eq!(
            acc.drain()[0],
            InputEvent::MouseMoveRelative { dx: -32768, dy: 0 }
        );
    }

    #[test]
    fn scroll_batching_checklist() {
        let gfe = AppVersion::new(7, 1, 409, 0);
        let mut b = ScrollBatcher::new(gfe);
        assert!(b.is_batching());
        assert!(b.push(60).is_empty());
        assert!(b.push(30).is_empty());
        assert_eq!(b.push(40), vec![InputEvent::Scroll { amount: 120 }]);
        assert_eq!(b.pending(), 10);
        assert!(b.push(-20).is_empty());
        assert_eq!(b.pending(), -20, "direction change resets");
        assert_eq!(
            b.push(-300),
            vec![
                InputEvent::Scroll { amount: -120 },
                InputEvent::Scroll { amount: -120 }
            ]
        );
        let mut s = ScrollBatcher::new(AppVersion::SUNSHINE);
        assert_eq!(s.push(7), vec![InputEvent::Scroll { amount: 7 }]);
        assert!(!ScrollBatcher::new(AppVersion::new(7, 1, 408, 0)).is_batching());
    }

    #[test]
    fn utf8_split_checklist() {
        let evs = utf8_text_events("aé€😀");
        let sizes: Vec<u32> = evs.iter().map(size_field).collect();
        assert_eq!(sizes, vec![5, 6, 7, 8]);
    }

    #[test]
    fn removal_and_fixups() {
        let ev = controller_removal(1, 0b11);
        assert_eq!(
            ev,
            InputEvent::MultiController(ControllerState {
                controller_number: 1,
                active_gamepad_mask: 0b01,
                ..Default::default()
            })
        );
        let gfe = AppVersion::new(7, 1, 431, 0);
        assert_eq!(
            key_event_for_host(true, 0xA1, 0x01, 1, gfe),
            InputEvent::KeyDown {
                flags: 0,
                key_code: 0xA1,
                modifiers: 0
            }
        );
        assert_eq!(
            key_event_for_host(true, 0x5B, 0x08, 1, AppVersion::SUNSHINE),
            InputEvent::KeyDown {
                flags: 1,
                key_code: 0x5B,
                modifiers: 0x08
            }
        );
        let s = controller_state_for_host(
            ControllerState {
                controller_number: 5,
                active_gamepad_mask: 0xFF,
                buttons: 0x20_1000,
                ..Default::default()
            },
            gfe,
        );
        assert_eq!(
            (s.controller_number, s.active_gamepad_mask, s.buttons),
            (1, 0xF, 0x1400)
        );
    }

    #[test]
    fn pen_tracker() {
        let mut t = PenButtonTracker::new();
        let mut pen = PenEvent {
            event_type: touch_event::MOVE,
            ..Default::default()
        };
        assert!(!t.route(&pen, AppVersion::SUNSHINE).reliable);
        pen.pen_buttons = 1;
        assert!(t.route(&pen, AppVersion::SUNSHINE).reliable);
        assert!(!t.route(&pen, AppVersion::SUNSHINE).reliable);
    }
}
