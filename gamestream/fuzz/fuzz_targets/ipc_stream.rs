#![no_main]
//! The IPC byte stream between web-server and streamer, decoded by both codecs (`ServerCodec` reads
//! what a streamer writes, `StreamerCodec` what the web-server writes) the way `FramedRead` does:
//! the bytes arrive in chunks of random sizes and decoding stops at the first error.
//!
//! Input: byte 0 picks the payload limit, byte 1 seeds the chunk sizes, the rest is the stream.
//! Invariants: chunking never changes what decodes (same messages, same error); a frame over the
//! limit is refused before its payload is buffered (the buffer never holds more than one frame
//! plus one chunk); every decoded message re-encodes to a frame that decodes to it again; a
//! `ToStreamer::Input` payload goes through the browser decoder as the streamer does.
use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use tokio_util::codec::Decoder;
use wire::browser::Message;
use wire::ipc::{
    decode_frame, encode_frame, FromStreamer, IpcCodec, IpcError, IpcMessage, ServerCodec,
    StreamerCodec, ToStreamer, DEFAULT_MAX_PAYLOAD, HEADER_LEN,
};

const LIMITS: [usize; 6] = [0, 1, 16, 300, 4096, DEFAULT_MAX_PAYLOAD];

/// What a reader saw: the messages, then how it ended (`None` = clean EOF).
type Outcome<M> = (Vec<M>, Option<String>);

/// Decodes `stream` in one piece.
fn whole<M: IpcMessage>(stream: &[u8], max: usize) -> Outcome<M> {
    let mut codec = IpcCodec::<M, M>::with_max_payload(max);
    let mut buf = BytesMut::from(stream);
    let mut out = Vec::new();
    loop {
        match codec.decode_eof(&mut buf) {
            Ok(Some(m)) => out.push(m),
            Ok(None) => return (out, None),
            Err(e) => return (out, Some(describe(&e))),
        }
    }
}

/// Decodes `stream` fed in chunks whose sizes come from `seed`, as `FramedRead` would.
fn chunked<M: IpcMessage>(stream: &[u8], max: usize, mut seed: u8) -> Outcome<M> {
    let mut codec = IpcCodec::<M, M>::with_max_payload(max);
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    let mut rest = stream;
    while !rest.is_empty() {
        // xorshift on a byte: chunk sizes 1..=32, some runs of 1-byte reads.
        seed ^= seed << 3;
        seed ^= seed >> 5;
        seed ^= seed << 1;
        let n = usize::from(seed % 33).clamp(1, rest.len());
        buf.extend_from_slice(&rest[..n]);
        rest = &rest[n..];
        loop {
            match codec.decode(&mut buf) {
                Ok(Some(m)) => out.push(m),
                Ok(None) => break,
                Err(e) => return (out, Some(describe(&e))),
            }
        }
        // Only a frame the limit admits is ever buffered.
        assert!(
            buf.len() <= HEADER_LEN + max,
            "buffered {} bytes",
            buf.len()
        );
    }
    match codec.decode_eof(&mut buf) {
        Ok(Some(m)) => {
            out.push(m);
            (out, None)
        }
        Ok(None) => (out, None),
        Err(e) => (out, Some(describe(&e))),
    }
}

fn describe(e: &IpcError) -> String {
    // Every error has a message (they reach the logs).
    let text = e.to_string();
    assert!(!text.is_empty());
    format!("{e:?}")
}

fn round_trip<M: IpcMessage + PartialEq + std::fmt::Debug>(msgs: &[M]) {
    for m in msgs {
        let mut frame = BytesMut::new();
        encode_frame(m, &mut frame, DEFAULT_MAX_PAYLOAD).expect("a decoded message re-encodes");
        let again: M = decode_frame(&mut frame, DEFAULT_MAX_PAYLOAD)
            .expect("a re-encoded frame decodes")
            .expect("a re-encoded frame is complete");
        assert!(frame.is_empty());
        assert_eq!(&again, m);
    }
}

fn check<M: IpcMessage + PartialEq + std::fmt::Debug>(
    stream: &[u8],
    max: usize,
    seed: u8,
) -> Vec<M> {
    let a: Outcome<M> = whole(stream, max);
    let b: Outcome<M> = chunked(stream, max, seed);
    assert_eq!(a, b, "chunking changed the outcome");
    round_trip(&a.0);
    a.0
}

fuzz_target!(|data: &[u8]| {
    let [limit, seed, stream @ ..] = data else {
        return;
    };
    let max = LIMITS[usize::from(*limit) % LIMITS.len()];
    // The aliases are the codecs the two processes use.
    let _: (ServerCodec, StreamerCodec) = (IpcCodec::new(), IpcCodec::new());
    let _ = check::<FromStreamer>(stream, max, *seed);
    for m in check::<ToStreamer>(stream, max, *seed) {
        if let ToStreamer::Input(bytes) = m {
            let _ = Message::decode(&bytes);
        }
    }
});
