#![no_main]
//! Control-stream parsers on arbitrary bytes: every generation, both directions, and the encrypted
//! wrapper with a fixed key (both IV styles, both directions).
use gamestream::control::codec::{decode_v1, decode_v2, open_encrypted};
use gamestream::control::{
    ClientMessage, ControlCodec, Direction, Generation, HostMessage, IvStyle, Side,
};
use gamestream::crypto::GcmKey;
use gamestream::AppVersion;
use libfuzzer_sys::fuzz_target;

const KEY: [u8; 16] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15];

const VERSIONS: [&str; 7] = [
    "3.0.0.0",
    "4.0.0.0",
    "5.0.0.0",
    "6.0.0.0",
    "7.1.415.0",
    "7.1.431.0",
    "7.1.431.-1",
];

fuzz_target!(|data: &[u8]| {
    for v in VERSIONS {
        let version = AppVersion::parse(v);
        let generation = Generation::of(version);

        // Unframed (type, payload) decoding in both directions, with a decode-encode-decode check.
        if let Ok((ty, payload)) = decode_v1(data) {
            if let Ok(m) = ClientMessage::decode(generation, ty, payload) {
                if let Ok((ty2, p2)) = m.encode(generation) {
                    assert_eq!(ClientMessage::decode(generation, ty2, &p2).ok(), Some(m));
                }
            }
            if let Ok(m) = HostMessage::decode(version, ty, payload) {
                if let Ok((ty2, p2)) = m.encode(generation) {
                    assert_eq!(HostMessage::decode(version, ty2, &p2).ok(), Some(m));
                }
            }
        }
        let _ = decode_v2(data);

        // Whole packets through the per-connection codec, both sides and IV styles.
        for style in [IvStyle::V2, IvStyle::Nvidia] {
            let _ = ControlCodec::new(&KEY, style, Side::Client, version).decode_host(data);
            let _ = ControlCodec::new(&KEY, style, Side::Host, version).decode_client(data);
        }
    }

    // The wrapper alone; anything that opens must re-seal to a packet that opens to the same message.
    let key = GcmKey::new(&KEY);
    for style in [IvStyle::V2, IvStyle::Nvidia] {
        for dir in [Direction::ClientToHost, Direction::HostToClient] {
            if let Ok(m) = open_encrypted(&key, style, dir, data) {
                let sealed = gamestream::control::codec::seal_encrypted(
                    &key, style, dir, m.seq, m.ty, &m.payload,
                );
                if let Ok(sealed) = sealed {
                    assert_eq!(open_encrypted(&key, style, dir, &sealed).ok(), Some(m));
                }
            }
        }
    }
});
