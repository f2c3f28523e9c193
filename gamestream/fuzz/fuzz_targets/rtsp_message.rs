#![no_main]
use gamestream::crypto::GcmKey;
use gamestream::rtsp::crypt::{self, Direction};
use gamestream::rtsp::message::{plain_message_len, RtspRequest, RtspResponse};
use libfuzzer_sys::fuzz_target;

const KEY: [u8; 16] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15];

fuzz_target!(|data: &[u8]| {
    let _ = plain_message_len(data);
    if let Ok(req) = RtspRequest::parse(data) {
        let again = RtspRequest::parse(&req.to_bytes()).expect("re-encoded request parses");
        assert_eq!(again.method, req.method);
        assert_eq!(again.target, req.target);
        assert_eq!(again.payload, req.payload);
    }
    if let Ok(resp) = RtspResponse::parse(data) {
        let again = RtspResponse::parse(&resp.to_bytes()).expect("re-encoded response parses");
        assert_eq!(again.status, resp.status);
        assert_eq!(again.payload, resp.payload);
    }
    let key = GcmKey::new(&KEY);
    let _ = crypt::frame_len(data);
    for direction in [Direction::ClientToHost, Direction::HostToClient] {
        if let Ok((seq, plain)) = crypt::open(&key, direction, data) {
            let sealed = crypt::seal(&key, seq, direction, &plain).expect("seal");
            assert_eq!(sealed, data);
        }
    }
});
