//! Byte vectors of the microphone datagram. The ciphertexts were made with
//! `openssl enc -aes-128-cbc` from the doubly padded plaintext, independently of this code.

use super::*;

const KEY: [u8; 16] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15];

fn enc() -> Option<AudioEncryption> {
    Some(AudioEncryption::new(KEY, 0x0102_0304))
}

#[test]
fn plain_datagram_bytes() {
    let mut p = MicPacketizer::new(None);
    let first = p.push(b"\xfc\x01\x02", 960).unwrap();
    assert_eq!(hex::encode(&first), "006100000000000078563412fc0102");
    // 20 ms later, sequence 1.
    let second = p.push(b"\xfc", 960).unwrap();
    assert_eq!(hex::encode(&second), "006101001400000078563412fc");
    assert_eq!(p.next_sequence(), 2);

    let mut d = MicDepacketizer::new(None);
    let frame = d.push(&first).unwrap();
    assert_eq!(frame.opus, b"\xfc\x01\x02");
    assert_eq!((frame.sequence, frame.timestamp_ms), (0, 0));
    assert_eq!(d.push(&second).unwrap().timestamp_ms, 20);
}

#[test]
fn encrypted_unaligned_packet_is_padded_twice() {
    let mut p = MicPacketizer::new(enc());
    for _ in 0..5 {
        p.push(b"x", 960).unwrap();
    }
    // Sequence 5: IV = BE32(0x01020304 + 5) ‖ 0; "hello" + 11 × 0x0b, then a block of 0x10.
    let datagram = p.push(b"hello", 960).unwrap();
    assert_eq!(
        hex::encode(&datagram),
        "00610500640000007856341251eac2276aa6efb8f81913139be54e87c3758617de8483b5bba17560378df57b"
    );
    let mut d = MicDepacketizer::new(enc());
    let frame = d.push(&datagram).unwrap();
    assert_eq!(frame.opus, b"hello");
    assert_eq!(frame.lost_before, 0);
}

#[test]
fn encrypted_aligned_packet_gets_only_the_outer_block() {
    let mut p = MicPacketizer::new(enc());
    let datagram = p.push(&[b'A'; 16], 960).unwrap();
    assert_eq!(
        hex::encode(&datagram[MIC_HEADER_LEN..]),
        "c81b6e304802c9e3eedbff1a4b94fa61ce39b21cfab3f786aeb3b5c2f76b84e6"
    );
    let frame = MicDepacketizer::new(enc()).push(&datagram).unwrap();
    assert_eq!(frame.opus, [b'A'; 16]);
}

#[test]
fn every_length_round_trips_through_both_paddings() {
    for len in 1..=64usize {
        let opus: Vec<u8> = (0..len)
            .map(|i| (i as u8).wrapping_mul(37) | 0x20)
            .collect();
        let mut p = MicPacketizer::new(enc());
        let datagram = p.push(&opus, 480).unwrap();
        assert_eq!(datagram.len(), MIC_HEADER_LEN + len.div_ceil(16) * 16 + 16);
        assert_eq!(
            MicDepacketizer::new(enc()).push(&datagram).unwrap().opus,
            opus
        );
    }
}

#[test]
fn sequence_gaps_wraps_and_stale_packets() {
    let header = |seq: u16| {
        let mut d = MicHeader::opus(seq, 0).to_bytes().to_vec();
        d.push(0xfc);
        d
    };
    let mut d = MicDepacketizer::new(None);
    assert_eq!(d.push(&header(0xfffe)).unwrap().lost_before, 0);
    // 0xffff lost, then the wrap.
    assert_eq!(d.push(&header(0)).unwrap().lost_before, 1);
    assert_eq!(
        d.push(&header(0)),
        Err(MicError::Stale {
            sequence: 0,
            expected: 1
        })
    );
    assert!(matches!(
        d.push(&header(0xfff0)),
        Err(MicError::Stale { .. })
    ));
    assert_eq!(d.push(&header(1)).unwrap().lost_before, 0);
    assert_eq!(
        d.stats(),
        MicStats {
            delivered: 3,
            lost: 1,
            stale: 2,
            bad: 0
        }
    );
}

#[test]
fn bad_input_is_a_typed_error() {
    let mut d = MicDepacketizer::new(enc());
    assert_eq!(d.push(&[]), Err(MicError::TooShort(0)));
    assert_eq!(d.push(&[0u8; 11]), Err(MicError::TooShort(11)));
    let mut only_header = MicHeader::opus(0, 0).to_bytes().to_vec();
    assert_eq!(d.push(&only_header), Err(MicError::TooShort(12)));
    only_header[1] = 0x62;
    only_header.push(1);
    assert_eq!(d.push(&only_header), Err(MicError::UnknownType(0x62)));
    // Not a whole block, then a whole block under the wrong key.
    let mut datagram = MicHeader::opus(0, 0).to_bytes().to_vec();
    datagram.extend_from_slice(&[1, 2, 3]);
    assert!(matches!(d.push(&datagram), Err(MicError::Crypto(_))));
    let other = MicPacketizer::new(Some(AudioEncryption::new([9; 16], 1)))
        .push(b"hello", 960)
        .unwrap();
    assert!(matches!(d.push(&other), Err(MicError::Crypto(_))));
    assert_eq!(d.stats().bad, 6);
    // A failed datagram does not advance the sequence.
    let good = MicPacketizer::new(enc()).push(b"ok", 960).unwrap();
    assert_eq!(d.push(&good).unwrap().opus, b"ok");
}

#[test]
fn packetizer_limits() {
    let mut p = MicPacketizer::new(None);
    assert_eq!(p.push(&[], 960), Err(MicError::Empty));
    assert_eq!(p.push(&[0; 1389], 960), Err(MicError::TooLarge(1401)));
    assert!(p.push(&[0; 1388], 960).is_ok());
    let mut e = MicPacketizer::new(enc());
    // 1360 bytes encrypt to 1376: 1388 with the header; 1361 would need 1392 + 12.
    assert!(e.push(&[0; 1360], 960).is_ok());
    assert_eq!(e.push(&[0; 1361], 960), Err(MicError::TooLarge(1404)));
}

#[test]
fn describe_offer_round_trip() {
    let lines = describe_lines(48012);
    assert_eq!(
        lines,
        "m=audio 48012 RTP/AVP 96\na=rtpmap:96 opus/48000/1\na=fmtp:96 minptime=10;useinbandfec=1\n"
    );
    assert_eq!(
        parse_offer(&format!("a=x-ss-general.featureFlags:3\n{lines}")),
        Some(MicOffer { port: Some(48012) })
    );
    // Foundation's stereo rtpmap with CRLF endings; a bare rtpmap has no port.
    assert_eq!(
        parse_offer("m=audio 50001 RTP/AVP 96\r\na=rtpmap:96 opus/48000/2\r\n"),
        Some(MicOffer { port: Some(50001) })
    );
    assert_eq!(
        parse_offer("a=rtpmap:96 opus/48000/1\n"),
        Some(MicOffer { port: None })
    );
    // A plain Sunshine or Wolf DESCRIBE offers nothing.
    assert_eq!(
        parse_offer("a=fmtp:97 surround-params=21101\na=rtpmap:98 AV1/90000\n"),
        None
    );
}
