#![no_main]
//! Arbitrary datagrams into the video depacketizer (plain and encrypted) and the wire parsers.
use gamestream::video::wire::{EncPrefix, FecStatus, FrameHeader, NvVideoPacket, RtpHeader};
use gamestream::video::{DepacketizerConfig, VideoCodec, VideoDepacketizer};
use gamestream::AppVersion;
use libfuzzer_sys::fuzz_target;
use std::time::Instant;

fuzz_target!(|data: &[u8]| {
    // Wire parsers round-trip.
    if let Ok(h) = RtpHeader::parse(data) {
        assert_eq!(RtpHeader::parse(&h.to_bytes()).unwrap(), h);
    }
    if let Ok(h) = NvVideoPacket::parse(data) {
        assert_eq!(NvVideoPacket::parse(&h.to_bytes()).unwrap(), h);
    }
    if let Ok(h) = FrameHeader::parse(data) {
        assert_eq!(FrameHeader::parse(&h.to_bytes()).unwrap(), h);
    }
    if let Ok(h) = EncPrefix::parse(data) {
        assert_eq!(EncPrefix::parse(&h.to_bytes()).unwrap(), h);
    }
    if let Some(h) = FecStatus::from_bytes(data) {
        assert_eq!(FecStatus::from_bytes(&h.to_bytes()), Some(h));
    }
    // The input is a sequence of datagrams: u16 LE length, then that many bytes.
    let now = Instant::now();
    for (codec, key) in [
        (VideoCodec::Av1, None),
        (VideoCodec::H264, None),
        (VideoCodec::Hevc, Some([7u8; 16])),
    ] {
        let Ok(mut d) = VideoDepacketizer::new(DepacketizerConfig {
            packet_size: 64,
            host_version: AppVersion::SUNSHINE,
            codec,
            key,
        }) else {
            return;
        };
        d.set_reference_frame_invalidation(key.is_some());
        let mut rest = data;
        while rest.len() >= 2 {
            let len = usize::from(u16::from_le_bytes([rest[0], rest[1]])).min(rest.len() - 2);
            let _ = d.push(&rest[2..2 + len], now);
            rest = &rest[2 + len..];
        }
    }
});
