#![no_main]
//! The browser protocol's JSON, as the gateway parses a browser's text frames: the WebSocket-mode
//! `init` (with its range checks), ControlMessage bodies, the server JSON a client parses, and the
//! WebRTC-mode signaling of `/api/host/stream` in both directions. Whatever parses must serialise
//! and parse back to the same value.
use libfuzzer_sys::fuzz_target;
use wire::browser::signaling::{self, GeneralMessage};
use wire::browser::{ClientControl, Init, ServerJson, MAX_DIMENSION, MAX_ID_LEN};

fuzz_target!(|data: &[u8]| {
    // WebSocket text frames are UTF-8 by the time the gateway sees them.
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };

    if let Ok(init) = Init::parse(text) {
        let json = serde_json::to_string(&init).expect("Init serialises");
        assert_eq!(Init::parse(&json).expect("re-serialised Init parses"), init);
        if init.validate().is_ok() {
            // What validate() promises the rest of the gateway.
            assert!((1..=MAX_DIMENSION).contains(&init.width));
            assert!((1..=MAX_DIMENSION).contains(&init.height));
            assert!(u8::try_from(init.fps).is_ok() && init.fps > 0);
            assert!(matches!(init.audio_channels(), 2 | 6 | 8));
            for id in [&init.session_id, &init.client_unique_id, &init.lobby_id] {
                assert!(id.as_ref().is_none_or(|s| s.len() <= MAX_ID_LEN));
            }
        }
        // Debug never shows the credential. (Checked for long alphanumeric ones only: a short or
        // punctuated credential could equal some other text of the Debug output.)
        if let Some(c) = &init.credentials {
            let c = c.expose();
            let ids = [&init.session_id, &init.client_unique_id, &init.lobby_id];
            if c.len() >= 12
                && c.bytes().all(|b| b.is_ascii_alphanumeric())
                && !ids
                    .iter()
                    .any(|id| id.as_deref().is_some_and(|id| id.contains(c)))
            {
                assert!(!format!("{init:?}").contains(c), "credential in Debug");
            }
        }
    }
    if let Ok(c) = ClientControl::parse(text) {
        assert_eq!(ClientControl::parse(&c.to_json()).ok(), Some(c));
    }
    if let Ok(s) = ServerJson::parse(text) {
        assert_eq!(ServerJson::parse(&s.to_json()).ok(), Some(s));
    }
    if let Ok(m) = signaling::ClientMessage::parse(text) {
        let json = serde_json::to_string(&m).expect("ClientMessage serialises");
        assert_eq!(signaling::ClientMessage::parse(&json).ok(), Some(m));
    }
    if let Ok(m) = signaling::ServerMessage::parse(text) {
        assert_eq!(signaling::ServerMessage::parse(&m.to_json()).ok(), Some(m));
    }
    if let Ok(m) = serde_json::from_str::<GeneralMessage>(text) {
        let json = serde_json::to_string(&m).expect("GeneralMessage serialises");
        assert_eq!(serde_json::from_str::<GeneralMessage>(&json).ok(), Some(m));
    }
});
