//! Decoding NV input packets into events (the host's direction): the strict size checks and the
//! magic-to-event classification per host generation. Kept apart from the event model in
//! `event.rs` because it is the only code here that reads untrusted bytes.

use super::*;

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
                InputEvent::key(kind == Kind::KeyDown, flags, key_code, modifiers)
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
