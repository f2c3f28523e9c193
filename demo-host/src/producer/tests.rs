use super::*;
use gamestream::input::ControllerState;

fn pad(controller_number: u16, left_trigger: u8, right_trigger: u8) -> InputEvent {
    InputEvent::MultiController(ControllerState {
        controller_number,
        active_gamepad_mask: 1 << controller_number,
        left_trigger,
        right_trigger,
        ..Default::default()
    })
}

#[test]
fn triggers_drive_the_motors_once_per_change() {
    let mut r = TriggerRumble::default();
    // A pad at rest asks for nothing; pulling the right trigger fully runs the fast motor.
    assert_eq!(r.on_input(&pad(0, 0, 0)), None);
    assert_eq!(
        r.on_input(&pad(0, 0, 255)),
        Some(HostMessage::Rumble {
            controller: 0,
            low_freq: 0,
            high_freq: 65_535
        })
    );
    assert_eq!(
        r.on_input(&pad(0, 0, 255)),
        None,
        "same triggers, no repeat"
    );
    // Pads are tracked apart; releasing stops the motors.
    assert_eq!(
        r.on_input(&pad(1, 128, 0)),
        Some(HostMessage::Rumble {
            controller: 1,
            low_freq: 128 * 257,
            high_freq: 0
        })
    );
    assert_eq!(
        r.on_input(&pad(0, 0, 0)),
        Some(HostMessage::Rumble {
            controller: 0,
            low_freq: 0,
            high_freq: 0
        })
    );
    assert_eq!(r.on_input(&InputEvent::Scroll { amount: 120 }), None);
}
