#![no_main]
//! The browser protocol's binary messages (`wire::browser::Message`), as the gateway decodes what a
//! browser sends: anything that decodes must re-encode to `encoded_len()` bytes that decode to the
//! same message; a ControlMessage body goes through `ClientControl`; the first byte also drives
//! the codec-byte and Opus-layout helpers.
use libfuzzer_sys::fuzz_target;
use wire::browser::{ClientControl, Message, OpusLayout, VideoCodec};

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = Message::decode(data) {
        // A decoded message always fits its length fields again.
        let encoded = m.to_vec().expect("a decoded message re-encodes");
        assert_eq!(encoded.len(), m.encoded_len());
        assert!(encoded.len() <= data.len(), "re-encoding grew the message");
        assert_eq!(Message::decode(&encoded).as_ref(), Ok(&m));
        assert_eq!(encoded[0], m.msg_type());
        if let Message::Control(json) = m {
            if let Ok(c) = ClientControl::parse(json) {
                assert_eq!(ClientControl::parse(&c.to_json()).ok(), Some(c));
            }
        }
    }

    let Some((&first, rest)) = data.split_first() else {
        return;
    };
    // Opus layout (StreamInit / Started extension): what reads must write back identically.
    if let Some(Ok(layout)) = OpusLayout::read(first, rest) {
        let mut out = Vec::new();
        layout.write(&mut out);
        assert_eq!(out.len(), layout.encoded_len());
        assert_eq!(&out[..], &rest[..out.len()]);
        assert_eq!(OpusLayout::read(layout.channels(), &out), Some(Ok(layout)));
    }
    // Codec byte and capability bits.
    if let Some(codec) = VideoCodec::from_byte(first) {
        assert_eq!(codec.to_byte(), first);
        assert_eq!(VideoCodec::from_format_bit(codec.format_bit()), Some(codec));
    }
    if rest.len() >= 4 {
        let mask = u32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]);
        if let Some(codec) = VideoCodec::preferred_in(mask) {
            assert_ne!(mask & codec.format_bit(), 0);
        }
    }
});
