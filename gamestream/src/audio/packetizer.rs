//! Host side: Opus packets → RTP datagrams with AES-CBC and RS(4,2) FEC (media spec §5.2-§5.4).

use super::rtp::{
    encode_data_packet, encode_fec_packet, AudioFecHeader, DATA_SHARDS, FEC_SHARDS, PT_AUDIO,
};
use super::AudioEncryption;
use crate::fec::ReedSolomon;

/// Settings of an [`AudioPacketizer`].
#[derive(Debug, Clone)]
pub struct AudioPacketizerConfig {
    /// Packet duration in ms (SDP `x-nv-aqos.packetDuration`, usually 5 or 10); the RTP timestamp
    /// advances by this much per packet.
    pub packet_duration_ms: u32,
    /// AES-CBC encryption, when the session negotiated it.
    pub encryption: Option<AudioEncryption>,
}

/// Sans-IO audio packetizer: one Opus packet in, the datagrams to send out.
///
/// Sequence numbers start at 0 and timestamps at 0 (ms). After every 4th data packet the two FEC
/// packets of that block follow. FEC runs over the payloads as sent (ciphertext when encrypted).
///
/// If the 4 payloads of a block differ in length (not possible with Sunshine's CBR Opus, but a VBR
/// encoder could do it) the block gets **no** FEC packets: moonlight-common-c would treat unequal
/// shard sizes as an incompatible server and switch audio FEC off for the whole session.
#[derive(Debug)]
pub struct AudioPacketizer {
    config: AudioPacketizerConfig,
    rs: ReedSolomon,
    sequence: u16,
    timestamp: u32,
    block: Vec<Vec<u8>>,
    block_base_ts: u32,
}

impl AudioPacketizer {
    /// A packetizer at sequence 0, timestamp 0.
    pub fn new(config: AudioPacketizerConfig) -> Self {
        Self {
            config,
            rs: ReedSolomon::audio(),
            sequence: 0,
            timestamp: 0,
            block: Vec::with_capacity(DATA_SHARDS),
            block_base_ts: 0,
        }
    }

    /// Sequence number the next data packet will carry.
    pub fn next_sequence(&self) -> u16 {
        self.sequence
    }

    /// Packetizes one Opus packet: its data datagram, plus the block's 2 FEC datagrams when it
    /// completes a block.
    pub fn push(&mut self, opus: &[u8]) -> Vec<Vec<u8>> {
        let seq = self.sequence;
        let ts = self.timestamp;
        let payload = match &self.config.encryption {
            Some(enc) => enc.encrypt(seq, opus),
            None => opus.to_vec(),
        };
        let mut out = vec![encode_data_packet(seq, ts, &payload)];
        if usize::from(seq) % DATA_SHARDS == 0 {
            self.block.clear();
            self.block_base_ts = ts;
        }
        self.block.push(payload);
        if usize::from(seq) % DATA_SHARDS == DATA_SHARDS - 1 {
            out.extend(self.fec_for_block(seq));
        }
        self.sequence = seq.wrapping_add(1);
        self.timestamp = ts.wrapping_add(self.config.packet_duration_ms);
        out
    }

    fn fec_for_block(&mut self, last_seq: u16) -> Vec<Vec<u8>> {
        let block = std::mem::take(&mut self.block);
        let Some(len) = block.first().map(Vec::len) else {
            return Vec::new();
        };
        if block.len() != DATA_SHARDS || block.iter().any(|p| p.len() != len) {
            return Vec::new();
        }
        let mut parity = vec![vec![0u8; len]; FEC_SHARDS];
        if self.rs.encode(&block, &mut parity).is_err() {
            return Vec::new();
        }
        let base_sequence = last_seq.wrapping_sub(DATA_SHARDS as u16 - 1);
        parity
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let fec = AudioFecHeader {
                    shard_index: i as u8,
                    payload_type: PT_AUDIO,
                    base_sequence,
                    base_timestamp: self.block_base_ts,
                    ssrc: 0,
                };
                encode_fec_packet(&fec, p)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opus(k: u8) -> Vec<u8> {
        let mut p = vec![0xfc, 0xff, 0xfe];
        p.extend((0..13).map(|i| 0x10 * k + i));
        p
    }

    #[test]
    fn vector_8_6() {
        let key: [u8; 16] = core::array::from_fn(|i| i as u8);
        let mut p = AudioPacketizer::new(AudioPacketizerConfig {
            packet_duration_ms: 5,
            encryption: Some(AudioEncryption::new(key, 0x12345678)),
        });
        let mut all = Vec::new();
        for k in 0..4 {
            all.extend(p.push(&opus(k)));
        }
        let hexes: Vec<String> = all.iter().map(hex::encode).collect();
        assert_eq!(
            hexes,
            vec![
                "806100000000000000000000a283552ffe871944c76fbd7876b0c0a0e3a419ad288235cf896f030220b420af",
                "806100010000000500000000e53446bd6d21e9487116c9a299f6d375cf289ed4594c766c86aae46ba936b0c0",
                "806100020000000a0000000061247c12871de7841b4eea06e7337129d9158a50d7c71f0fa7fc7bfca5bbd60a",
                "806100030000000f00000000682ec7200128982962686b702185d3e04036e29469c02f7413cca8d742eb7d33",
                "807f000400000000000000000061000000000000000000009527f8f7e9fadca89405689390f21bd0e93656c3e6aa4a9baf5a1f3132db414c",
                "807f00050000000000000000016100000000000000000000658089c56965c39f51793b1861600261e3d641232769adca641d57d483071b6d",
            ]
        );
        assert_eq!(p.next_sequence(), 4);
    }

    #[test]
    fn unequal_block_skips_fec() {
        let mut p = AudioPacketizer::new(AudioPacketizerConfig {
            packet_duration_ms: 10,
            encryption: None,
        });
        assert_eq!(p.push(b"aa").len(), 1);
        assert_eq!(p.push(b"bb").len(), 1);
        assert_eq!(p.push(b"ccc").len(), 1);
        assert_eq!(
            p.push(b"dd").len(),
            1,
            "no FEC for a block of unequal payloads"
        );
        for _ in 0..3 {
            assert_eq!(p.push(b"ee").len(), 1);
        }
        let last = p.push(b"ee");
        assert_eq!(last.len(), 3);
        // Unencrypted: data payload is the Opus packet, FEC header carries base seq 4, base ts 40.
        assert_eq!(
            hex::encode(&last[1][..24]),
            "807f00080000000000000000006100040000002800000000"
        );
    }
}
