//! The browser input messages both stream modes carry — as the WebSocket's binary messages and,
//! without their type byte, as the data channels' payloads — each with a predicate on the event
//! the host decodes from it. The controller messages are left to each suite: the data channels
//! lay them out differently.

use std::time::Duration;

use gamestream::input::InputEvent;
use wire::browser::{KeyboardInput, Message, MouseAbsolute, MouseClick, MouseRelative, Touch};

/// Waits (5 s) until the one host session's input log holds an event for every case, then
/// asserts each case's did arrive (naming the one that did not).
pub async fn assert_every_input_reached_host(
    host: &demo_host::DemoHost,
    cases: &[(&str, Vec<u8>, InputCheck)],
) {
    let sessions = host.sessions();
    assert_eq!(sessions.len(), 1, "one host session: {sessions:?}");
    let sid = sessions[0].session_id;
    let all_arrived = host
        .wait_for_inputs(sid, Duration::from_secs(5), |log| {
            cases
                .iter()
                .all(|(_, _, check)| log.iter().any(|r| check(&r.event)))
        })
        .await;
    let log = host.inputs(sid);
    for (name, _, check) in cases {
        assert!(
            log.iter().any(|r| check(&r.event)),
            "input {name} never reached the host"
        );
    }
    assert!(all_arrived);
}

/// A predicate on the host's decoded event.
pub type InputCheck = fn(&InputEvent) -> bool;

/// A key press, a mouse button, an absolute and a relative pointer move, and a touch, in that
/// order, named by `names` and put on the wire by `encode`.
pub fn key_pointer_touch_inputs(
    names: [&'static str; 5],
    encode: impl Fn(Message<'static>) -> Vec<u8>,
) -> Vec<(&'static str, Vec<u8>, InputCheck)> {
    let messages: [(Message<'static>, InputCheck); 5] = [
        (
            Message::Keyboard(KeyboardInput::Key {
                is_down: true,
                modifiers: 0,
                key: 0x41,
            }),
            |e| matches!(e, InputEvent::KeyDown { .. }),
        ),
        (
            Message::MouseClick(MouseClick::Button {
                is_down: true,
                button: 1,
            }),
            |e| matches!(e, InputEvent::MouseButtonDown { .. }),
        ),
        (
            Message::MouseAbsolute(MouseAbsolute {
                x: 100,
                y: 200,
                ref_width: 1920,
                ref_height: 1080,
            }),
            |e| matches!(e, InputEvent::MouseMoveAbsolute { .. }),
        ),
        (
            Message::MouseRelative(MouseRelative { dx: 5, dy: -3 }),
            |e| matches!(e, InputEvent::MouseMoveRelative { .. }),
        ),
        (
            Message::Touch(Touch {
                event: 1,
                pointer_id: 7,
                x: 0.5,
                y: 0.5,
                pressure: 1.0,
                contact_major: 0.0,
                contact_minor: 0.0,
                rotation: 0xFFFF,
            }),
            |e| matches!(e, InputEvent::Touch(_)),
        ),
    ];
    names
        .into_iter()
        .zip(messages)
        .map(|(name, (msg, check))| (name, encode(msg), check))
        .collect()
}
