#![no_main]
use gamestream::audio::rtp::{
    encode_data_packet, encode_fec_packet, parse_audio_packet, AudioPacket,
};
use gamestream::audio::{AudioDepacketizer, AudioDepacketizerConfig, AudioEncryption, AudioEvent};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // Parser: parse, re-encode, parse again.
    match parse_audio_packet(data) {
        Ok(AudioPacket::Data { rtp, payload }) => {
            let again = encode_data_packet(rtp.sequence, rtp.timestamp, payload);
            match parse_audio_packet(&again) {
                Ok(AudioPacket::Data {
                    rtp: r2,
                    payload: p2,
                }) => {
                    assert_eq!(
                        (r2.sequence, r2.timestamp, p2),
                        (rtp.sequence, rtp.timestamp, payload)
                    );
                }
                other => panic!("data packet did not round-trip: {other:?}"),
            }
        }
        Ok(AudioPacket::Fec { fec, parity, .. }) => {
            let again = encode_fec_packet(&fec, parity);
            match parse_audio_packet(&again) {
                Ok(AudioPacket::Fec {
                    fec: f2,
                    parity: p2,
                    ..
                }) => assert_eq!((f2, p2), (fec, parity)),
                other => panic!("FEC packet did not round-trip: {other:?}"),
            }
        }
        Err(_) => {}
    }

    // Depacketizer: split the input into datagrams (first byte = length) and feed them, with and
    // without decryption; nothing may panic.
    for encryption in [None, Some(AudioEncryption::new([7; 16], 0xfffffff0))] {
        let mut config = AudioDepacketizerConfig::new(5, encryption);
        config.reorder_window = 4;
        let mut depacketizer = AudioDepacketizer::new(config);
        let mut rest = data;
        while let Some((&len, tail)) = rest.split_first() {
            let len = usize::from(len).min(tail.len());
            let (datagram, tail) = tail.split_at(len);
            rest = tail;
            for event in depacketizer.push(datagram) {
                if let AudioEvent::Packet { opus, .. } = event {
                    assert!(opus.len() <= 65_535);
                }
            }
        }
        let _ = depacketizer.stats();
    }
});
