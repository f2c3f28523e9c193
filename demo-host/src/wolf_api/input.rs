//! The input sink as JSON (moongate extension, `GET /api/v1/moongate/input`).
//!
//! The host decodes every input packet a session's client sends (`gamestream::input::InputEvent`)
//! and keeps them in order; end-to-end tests read them back to check that a browser key press
//! arrived as the right Moonlight packet. [`InputEventJson`] is a serde mirror of `InputEvent`
//! (tagged by `type`, snake_case), so the `gamestream` type stays free of serde.

use gamestream::input::InputEvent;
use serde::{Deserialize, Serialize};

/// One decoded input event as the host received it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InputRecord {
    /// 1, 2, 3, ... per session, in arrival order; `?since=<seq>` returns the later ones.
    pub seq: u64,
    /// Milliseconds since the session started.
    pub at_ms: u64,
    /// The event.
    pub event: InputEventJson,
}

/// JSON form of [`gamestream::input::InputEvent`]; field names are the same.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[allow(missing_docs)]
pub enum InputEventJson {
    KeyDown {
        flags: u8,
        key_code: u16,
        modifiers: u8,
    },
    KeyUp {
        flags: u8,
        key_code: u16,
        modifiers: u8,
    },
    MouseMoveRelative {
        dx: i16,
        dy: i16,
    },
    MouseMoveAbsolute {
        x: i16,
        y: i16,
        reference_width: u16,
        reference_height: u16,
    },
    MouseButtonDown {
        button: u8,
    },
    MouseButtonUp {
        button: u8,
    },
    Scroll {
        amount: i16,
    },
    HScroll {
        amount: i16,
    },
    EnableHaptics,
    MultiController {
        controller_number: u16,
        active_gamepad_mask: u16,
        buttons: u32,
        left_trigger: u8,
        right_trigger: u8,
        left_stick_x: i16,
        left_stick_y: i16,
        right_stick_x: i16,
        right_stick_y: i16,
    },
    LegacyController {
        buttons: u16,
        left_trigger: u8,
        right_trigger: u8,
        left_stick_x: i16,
        left_stick_y: i16,
        right_stick_x: i16,
        right_stick_y: i16,
    },
    ControllerArrival {
        controller_number: u8,
        controller_type: u8,
        capabilities: u16,
        supported_buttons: u32,
    },
    ControllerTouch {
        controller_number: u8,
        event_type: u8,
        touchpad_index: u8,
        pointer_id: u32,
        x: f32,
        y: f32,
        pressure: f32,
    },
    ControllerMotion {
        controller_number: u8,
        motion_type: u8,
        x: f32,
        y: f32,
        z: f32,
    },
    ControllerBattery {
        controller_number: u8,
        battery_state: u8,
        battery_percentage: u8,
    },
    Touch {
        event_type: u8,
        rotation: u16,
        pointer_id: u32,
        x: f32,
        y: f32,
        pressure_or_distance: f32,
        contact_area_major: f32,
        contact_area_minor: f32,
    },
    Pen {
        event_type: u8,
        tool_type: u8,
        pen_buttons: u8,
        x: f32,
        y: f32,
        pressure_or_distance: f32,
        rotation: u16,
        tilt: u8,
        contact_area_major: f32,
        contact_area_minor: f32,
    },
    Utf8Text {
        text: String,
    },
}

impl From<&InputEvent> for InputEventJson {
    fn from(e: &InputEvent) -> Self {
        use InputEventJson as J;
        match e.clone() {
            InputEvent::KeyDown {
                flags,
                key_code,
                modifiers,
            } => J::KeyDown {
                flags,
                key_code,
                modifiers,
            },
            InputEvent::KeyUp {
                flags,
                key_code,
                modifiers,
            } => J::KeyUp {
                flags,
                key_code,
                modifiers,
            },
            InputEvent::MouseMoveRelative { dx, dy } => J::MouseMoveRelative { dx, dy },
            InputEvent::MouseMoveAbsolute {
                x,
                y,
                reference_width,
                reference_height,
            } => J::MouseMoveAbsolute {
                x,
                y,
                reference_width,
                reference_height,
            },
            InputEvent::MouseButtonDown { button } => J::MouseButtonDown { button },
            InputEvent::MouseButtonUp { button } => J::MouseButtonUp { button },
            InputEvent::Scroll { amount } => J::Scroll { amount },
            InputEvent::HScroll { amount } => J::HScroll { amount },
            InputEvent::EnableHaptics => J::EnableHaptics,
            InputEvent::MultiController(c) => J::MultiController {
                controller_number: c.controller_number,
                active_gamepad_mask: c.active_gamepad_mask,
                buttons: c.buttons,
                left_trigger: c.left_trigger,
                right_trigger: c.right_trigger,
                left_stick_x: c.left_stick_x,
                left_stick_y: c.left_stick_y,
                right_stick_x: c.right_stick_x,
                right_stick_y: c.right_stick_y,
            },
            InputEvent::LegacyController(c) => J::LegacyController {
                buttons: c.buttons,
                left_trigger: c.left_trigger,
                right_trigger: c.right_trigger,
                left_stick_x: c.left_stick_x,
                left_stick_y: c.left_stick_y,
                right_stick_x: c.right_stick_x,
                right_stick_y: c.right_stick_y,
            },
            InputEvent::ControllerArrival {
                controller_number,
                controller_type,
                capabilities,
                supported_buttons,
            } => J::ControllerArrival {
                controller_number,
                controller_type,
                capabilities,
                supported_buttons,
            },
            InputEvent::ControllerTouch {
                controller_number,
                event_type,
                touchpad_index,
                pointer_id,
                x,
                y,
                pressure,
            } => J::ControllerTouch {
                controller_number,
                event_type,
                touchpad_index,
                pointer_id,
                x,
                y,
                pressure,
            },
            InputEvent::ControllerMotion {
                controller_number,
                motion_type,
                x,
                y,
                z,
            } => J::ControllerMotion {
                controller_number,
                motion_type,
                x,
                y,
                z,
            },
            InputEvent::ControllerBattery {
                controller_number,
                battery_state,
                battery_percentage,
            } => J::ControllerBattery {
                controller_number,
                battery_state,
                battery_percentage,
            },
            InputEvent::Touch(t) => J::Touch {
                event_type: t.event_type,
                rotation: t.rotation,
                pointer_id: t.pointer_id,
                x: t.x,
                y: t.y,
                pressure_or_distance: t.pressure_or_distance,
                contact_area_major: t.contact_area_major,
                contact_area_minor: t.contact_area_minor,
            },
            InputEvent::Pen(p) => J::Pen {
                event_type: p.event_type,
                tool_type: p.tool_type,
                pen_buttons: p.pen_buttons,
                x: p.x,
                y: p.y,
                pressure_or_distance: p.pressure_or_distance,
                rotation: p.rotation,
                tilt: p.tilt,
                contact_area_major: p.contact_area_major,
                contact_area_minor: p.contact_area_minor,
            },
            InputEvent::Utf8Text(text) => J::Utf8Text { text },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gamestream::input::ControllerState;

    #[test]
    fn json_shape_is_tagged_snake_case() {
        let k = InputEventJson::from(&InputEvent::KeyDown {
            flags: 0,
            key_code: 0x41,
            modifiers: 1,
        });
        let v = serde_json::to_value(&k).expect("ser");
        assert_eq!(
            v,
            serde_json::json!({"type":"key_down","flags":0,"key_code":65,"modifiers":1})
        );
        let c = InputEventJson::from(&InputEvent::MultiController(ControllerState {
            controller_number: 2,
            buttons: 0x1000,
            ..Default::default()
        }));
        let v = serde_json::to_value(&c).expect("ser");
        assert_eq!(v["type"], "multi_controller");
        assert_eq!(v["controller_number"], 2);
        assert_eq!(v["buttons"], 0x1000);
        let t = InputEventJson::from(&InputEvent::Utf8Text("é".into()));
        assert_eq!(
            serde_json::to_value(&t).expect("ser"),
            serde_json::json!({"type":"utf8_text","text":"é"})
        );
        let back: InputEventJson =
            serde_json::from_value(serde_json::json!({"type":"enable_haptics"})).expect("de");
        assert_eq!(back, InputEventJson::EnableHaptics);
    }
}
