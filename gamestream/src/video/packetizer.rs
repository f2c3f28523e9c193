//! Host side: access unit → FEC blocks → (encrypted) datagrams, following Sunshine's
//! `videoBroadcastThread` exactly (gamestream-protocol-2-media.md §3.3).
//!
//! The RS code runs over the whole `packetSize + 16` bytes of each shard, headers included, and a
//! few header fields are rewritten after encoding; the client relies on that exact split (§3.6), so
//! the order of writes below is part of the protocol.

use super::wire::{
    multi_fec_blocks, parity_for, EncPrefix, FecInfo, FrameHeader, FrameType, ENC_PREFIX_LEN,
    FLAG_CONTAINS_PIC_DATA, FLAG_EOF, FLAG_SOF, FRAME_HEADER_LEN, MULTI_FEC_FLAGS, RTP_HEADER_BYTE,
    RTP_HEADER_LEN, SHARD_HEADER_LEN,
};
use super::VideoError;
use crate::crypto::{GcmIv, GcmKey};
use crate::fec::{ReedSolomon, MAX_TOTAL_SHARDS};
use std::collections::HashMap;

/// The 2-bit block index limits a frame to four FEC blocks.
const MAX_FEC_BLOCKS: usize = 4;
/// The 10-bit shard index limits a block to 1023 shards.
const MAX_SHARDS_PER_BLOCK: usize = 1023;

/// Packetizer settings, fixed for a session.
#[derive(Clone)]
pub struct PacketizerConfig {
    /// `x-nv-video[0].packetSize` from the client's SDP: NV header + payload per shard. Multiple of 16.
    pub packet_size: usize,
    /// FEC percentage (Sunshine default 20; 0 disables FEC). At most 255.
    pub fec_percent: u8,
    /// `x-nv-vqos[0].fec.minRequiredFecPackets` (clients send 2).
    pub min_required_fec_packets: u8,
    /// The session's `rikey` when video encryption is on.
    pub key: Option<[u8; 16]>,
    /// RTP sequence number (and stream packet index) of the first shard.
    pub initial_sequence: u32,
}

impl std::fmt::Debug for PacketizerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PacketizerConfig")
            .field("packet_size", &self.packet_size)
            .field("fec_percent", &self.fec_percent)
            .field("min_required_fec_packets", &self.min_required_fec_packets)
            .field("encrypted", &self.key.is_some())
            .field("initial_sequence", &self.initial_sequence)
            .finish()
    }
}

impl Default for PacketizerConfig {
    fn default() -> Self {
        Self {
            packet_size: 1392,
            fec_percent: 20,
            min_required_fec_packets: 2,
            key: None,
            initial_sequence: 0,
        }
    }
}

/// Per-frame inputs besides the bitstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameInfo {
    /// Frame number; the first frame of a stream must be 1.
    pub frame_index: u32,
    /// What the encoder produced.
    pub frame_type: FrameType,
    /// 90 kHz capture timestamp.
    pub rtp_timestamp: u32,
    /// Host processing latency in 0.1 ms units (0 = unknown).
    pub processing_latency: u16,
}

/// Sunshine's video sender as a sans-IO state machine; reuses its buffers across frames.
pub struct VideoPacketizer {
    config: PacketizerConfig,
    key: Option<GcmKey>,
    /// Sequence number of the next shard; its low 16 bits go in RTP, all 32 (<<8) in
    /// streamPacketIndex, like Sunshine's `int lowseq`.
    next_seq: u32,
    iv_counter: u64,
    codes: HashMap<(usize, usize), ReedSolomon>,
    shards: Vec<u8>,
    wire: Vec<u8>,
}

impl std::fmt::Debug for VideoPacketizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VideoPacketizer")
            .field("config", &self.config)
            .field("next_seq", &self.next_seq)
            .finish()
    }
}

/// The datagrams of one frame, in send order; borrowed from the packetizer's buffer.
#[derive(Debug, Clone, Copy)]
pub struct PacketBatch<'a> {
    buf: &'a [u8],
    stride: usize,
}

impl<'a> PacketBatch<'a> {
    /// Number of datagrams.
    pub fn len(&self) -> usize {
        self.buf.len() / self.stride
    }

    /// True if there are none (never for a packetized frame).
    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// Datagram `i`.
    pub fn get(&self, i: usize) -> Option<&'a [u8]> {
        self.buf.get(i * self.stride..(i + 1) * self.stride)
    }

    /// All datagrams in order.
    pub fn iter(&self) -> impl Iterator<Item = &'a [u8]> + 'a {
        self.buf.chunks_exact(self.stride)
    }

    /// Every datagram back to back, each [`PacketBatch::stride`] bytes: what one segmented
    /// (GSO) send takes.
    pub fn as_bytes(&self) -> &'a [u8] {
        self.buf
    }

    /// The size of each datagram.
    pub fn stride(&self) -> usize {
        self.stride
    }

    /// Owned copies (tests, simple callers).
    pub fn to_vec(&self) -> Vec<Vec<u8>> {
        self.iter().map(<[u8]>::to_vec).collect()
    }
}

impl VideoPacketizer {
    /// Validates the configuration and builds the cipher once.
    pub fn new(config: PacketizerConfig) -> Result<Self, VideoError> {
        if config.packet_size < 32 || config.packet_size % 16 != 0 || config.packet_size > 65_000 {
            return Err(VideoError::InvalidConfig(
                "packet_size must be a multiple of 16 in 32..=65000",
            ));
        }
        if config.min_required_fec_packets as usize > MAX_TOTAL_SHARDS / 2 {
            return Err(VideoError::InvalidConfig(
                "min_required_fec_packets too large",
            ));
        }
        Ok(Self {
            key: config.key.as_ref().map(GcmKey::new),
            next_seq: config.initial_sequence,
            iv_counter: 0,
            codes: HashMap::new(),
            shards: Vec::new(),
            wire: Vec::new(),
            config,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &PacketizerConfig {
        &self.config
    }

    /// RTP sequence number the next shard will carry.
    pub fn next_sequence(&self) -> u16 {
        self.next_seq as u16
    }

    /// Turns one access unit into datagrams (§3.3 steps 1–9).
    pub fn packetize(&mut self, au: &[u8], info: FrameInfo) -> Result<PacketBatch<'_>, VideoError> {
        let s = self.config.packet_size;
        let b = s + RTP_HEADER_LEN; // blocksize B
        let p = b - SHARD_HEADER_LEN; // payload per shard P
        let total_payload = FRAME_HEADER_LEN + au.len();
        let n_data = total_payload.div_ceil(p);
        // Length of X (headers inserted, last shard unpadded).
        let x_len = (n_data - 1) * b + SHARD_HEADER_LEN + (total_payload - (n_data - 1) * p);

        let mut fec_percent = usize::from(self.config.fec_percent);
        let max_data_per_block = MAX_TOTAL_SHARDS * 100 / (100 + fec_percent);
        let mut blocks = x_len.div_ceil(max_data_per_block * b);
        if blocks > MAX_FEC_BLOCKS {
            fec_percent = 0;
            blocks = MAX_FEC_BLOCKS;
        }
        let block_shards = (x_len / blocks).div_ceil(b);
        if block_shards > MAX_SHARDS_PER_BLOCK || n_data > MAX_SHARDS_PER_BLOCK * MAX_FEC_BLOCKS {
            return Err(VideoError::FrameTooLarge {
                shards: block_shards,
            });
        }

        // Plan each block: (first data shard, data shards, parity shards, percentage).
        let mut plan = [(0usize, 0usize, 0usize, 0usize); MAX_FEC_BLOCKS];
        let mut total_shards = 0;
        for (k, slot) in plan.iter_mut().enumerate().take(blocks) {
            let first = k * block_shards;
            let end = if k == blocks - 1 {
                n_data
            } else {
                ((k + 1) * block_shards).min(n_data)
            };
            let d = end.saturating_sub(first);
            if d == 0 || d > MAX_SHARDS_PER_BLOCK {
                return Err(VideoError::FrameTooLarge { shards: d });
            }
            let (parity, pct) = self.parity_plan(d, fec_percent);
            *slot = (first, d, parity, pct);
            total_shards += d + parity;
        }

        // Steps 2–3: lay out every shard (data then parity per block) in one buffer.
        self.shards.clear();
        self.shards.resize(total_shards * b, 0);
        let header = FrameHeader {
            header_type: 0x01,
            processing_latency: info.processing_latency,
            frame_type: info.frame_type,
            last_payload_len: last_payload_len(total_payload, p) as u16,
        }
        .to_bytes();
        let last_block = (blocks - 1) as u8;
        let mut offset = 0;
        for (k, &(first, d, parity, pct)) in plan.iter().enumerate().take(blocks) {
            let seq0 = self.next_seq;
            let fec_blocks = multi_fec_blocks(k as u8, last_block);
            let region = &mut self.shards[offset..offset + (d + parity) * b];
            for x in 0..d {
                let shard = &mut region[x * b..(x + 1) * b];
                fill_payload(&mut shard[SHARD_HEADER_LEN..], &header, au, (first + x) * p);
                // Step 6: NV fields written before encoding (RTP, extra flags, fecInfo stay zero).
                let mut flags = FLAG_CONTAINS_PIC_DATA;
                if x == 0 {
                    flags |= FLAG_SOF;
                }
                if x == d - 1 {
                    flags |= FLAG_EOF;
                }
                let nv = &mut shard[RTP_HEADER_LEN..SHARD_HEADER_LEN];
                nv[0..4].copy_from_slice(&(seq0.wrapping_add(x as u32) << 8).to_le_bytes());
                nv[4..8].copy_from_slice(&info.frame_index.to_le_bytes());
                nv[8] = flags;
                nv[10] = MULTI_FEC_FLAGS;
                nv[11] = fec_blocks;
            }
            // Step 7: parity over whole shards.
            if parity > 0 {
                let rs = match self.codes.entry((d, parity)) {
                    std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
                    std::collections::hash_map::Entry::Vacant(e) => {
                        e.insert(ReedSolomon::new(d, parity)?)
                    }
                };
                let (data, par) = region.split_at_mut(d * b);
                let data: Vec<&[u8]> = data.chunks_exact(b).collect();
                let mut par: Vec<&mut [u8]> = par.chunks_exact_mut(b).collect();
                rs.encode(&data, &mut par)?;
            }
            // Step 8: fields rewritten on every shard after encoding.
            for x in 0..d + parity {
                let shard = &mut region[x * b..(x + 1) * b];
                shard[0] = RTP_HEADER_BYTE;
                shard[2..4].copy_from_slice(&(seq0.wrapping_add(x as u32) as u16).to_be_bytes());
                shard[4..8].copy_from_slice(&info.rtp_timestamp.to_be_bytes());
                let fec = FecInfo {
                    data_shards: d as u16,
                    shard_index: x as u16,
                    fec_percent: pct as u8,
                };
                let nv = &mut shard[RTP_HEADER_LEN..SHARD_HEADER_LEN];
                nv[4..8].copy_from_slice(&info.frame_index.to_le_bytes());
                nv[11] = fec_blocks;
                nv[12..16].copy_from_slice(&fec.to_raw().to_le_bytes());
            }
            self.next_seq = seq0.wrapping_add((d + parity) as u32);
            offset += (d + parity) * b;
        }

        // Step 9: encrypt per shard.
        let Some(key) = &self.key else {
            return Ok(PacketBatch {
                buf: &self.shards,
                stride: b,
            });
        };
        let stride = b + ENC_PREFIX_LEN;
        self.wire.clear();
        self.wire.resize(total_shards * stride, 0);
        for (plain, out) in self
            .shards
            .chunks_exact(b)
            .zip(self.wire.chunks_exact_mut(stride))
        {
            let iv = EncPrefix::sunshine_iv(self.iv_counter);
            self.iv_counter = self.iv_counter.wrapping_add(1);
            let (prefix, body) = out.split_at_mut(ENC_PREFIX_LEN);
            body.copy_from_slice(plain);
            let tag = key.seal_in_place(&GcmIv::Twelve(iv), body);
            prefix.copy_from_slice(
                &EncPrefix {
                    iv,
                    frame_number: info.frame_index,
                    tag,
                }
                .to_bytes(),
            );
        }
        Ok(PacketBatch {
            buf: &self.wire,
            stride,
        })
    }

    /// Step 7's parity rule, made consistent with the client's `(d*F+99)/100`.
    fn parity_plan(&self, d: usize, fec_percent: usize) -> (usize, usize) {
        if fec_percent == 0 {
            return (0, 0);
        }
        let min = usize::from(self.config.min_required_fec_packets);
        let mut parity = parity_for(d, fec_percent);
        let mut pct = fec_percent;
        if parity < min {
            parity = min;
            pct = (100 * parity / d).min(255);
            // The client recomputes the count from the 8-bit percentage; send what it will expect.
            parity = parity_for(d, pct);
        }
        if parity == 0 || d + parity > MAX_TOTAL_SHARDS {
            return (0, 0);
        }
        (parity, pct)
    }
}

/// `lastPayloadLen`: bytes used in the last shard's payload, header included for one-shard frames.
fn last_payload_len(total_payload: usize, p: usize) -> usize {
    match total_payload % p {
        0 => p,
        r => r,
    }
}

/// Copies the bytes of `header ‖ au` starting at `pos` into `dst` (the rest stays zero).
fn fill_payload(dst: &mut [u8], header: &[u8; FRAME_HEADER_LEN], au: &[u8], pos: usize) {
    let mut written = 0;
    if pos < FRAME_HEADER_LEN {
        let h = &header[pos..];
        let n = h.len().min(dst.len());
        dst[..n].copy_from_slice(&h[..n]);
        written = n;
    }
    let au_pos = (pos + written).saturating_sub(FRAME_HEADER_LEN);
    if let Some(src) = au.get(au_pos..) {
        let n = src.len().min(dst.len() - written);
        dst[written..written + n].copy_from_slice(&src[..n]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vector_au() -> Vec<u8> {
        let mut au = vec![0, 0, 0, 1, 0x65];
        au.extend(0x10..=0x32u8);
        au
    }

    fn vector_info() -> FrameInfo {
        FrameInfo {
            frame_index: 1,
            frame_type: FrameType::Idr,
            rtp_timestamp: 90000,
            processing_latency: 0,
        }
    }

    const PKTS_8_4: [&str; 4] = [
        "9000000000015f9000000000000000000000000001000000050010004006800001000002100000000000000165101112131415161718191a1b1c1d1e1f202122",
        "9000000100015f90000000000000000000010000010000000300100040168000232425262728292a2b2c2d2e2f30313200000000000000000000000000000000",
        "9000000200015f90000000000000000000f40000010000008d00f30040268000641ce8e81518eced19ef1b94521862ec870a840b850c820d830e800f81109e11",
        "9000000300015f900000000000000000008e0000010000008c00f300403680006b129ce666149a159b1698e3bae39917fa0cf8f90d08fcfd09ff0b0afeeb1f1e",
    ];

    #[test]
    fn vector_8_4_full_frame() {
        let au = vector_au();
        assert_eq!(au.len(), 40);
        let mut p = VideoPacketizer::new(PacketizerConfig {
            packet_size: 48,
            ..Default::default()
        })
        .unwrap();
        let batch = p.packetize(&au, vector_info()).unwrap();
        let got: Vec<String> = batch.iter().map(hex::encode).collect();
        assert_eq!(got, PKTS_8_4);
        assert_eq!(p.next_sequence(), 4);
    }

    #[test]
    fn vector_8_4_recovery_columns() {
        // Rebuild pkt0 from pkt1..3: only RTP columns 0,3,5,6,7, frameIndex 20 and fecInfo 28..32 differ.
        let pkts: Vec<Vec<u8>> = PKTS_8_4.iter().map(|h| hex::decode(h).unwrap()).collect();
        let rs = ReedSolomon::new(2, 2).unwrap();
        let mut shards = pkts.clone();
        shards[0] = vec![0; 64];
        rs.reconstruct(&mut shards, &[false, true, true, true])
            .unwrap();
        let diff: Vec<usize> = (0..64).filter(|&i| shards[0][i] != pkts[0][i]).collect();
        assert!(
            diff.iter()
                .all(|i| [0, 3, 5, 6, 7, 20, 28, 29, 30, 31].contains(i)),
            "{diff:?}"
        );
        assert_eq!(shards[0][24], 0x05);
    }

    #[test]
    fn vector_8_5_encrypted_packet() {
        let key: [u8; 16] = core::array::from_fn(|i| i as u8);
        let mut p = VideoPacketizer::new(PacketizerConfig {
            packet_size: 48,
            key: Some(key),
            ..Default::default()
        })
        .unwrap();
        let batch = p.packetize(&vector_au(), vector_info()).unwrap();
        assert_eq!(batch.len(), 4);
        assert_eq!(
            hex::encode(batch.get(0).unwrap()),
            "000000000000000000000056010000004297a3a66ddf7655863040bd2004f3794f33772dd68a692bfc7929865625ec58199cb9faa2eb43e663dcc80f45b7ed5dfe3e1c839b0fd170afb1a6d8e008bed6ffe7655a13d2a10d3e4525715f3aca7d"
        );
        // The counter runs on per shard.
        assert_eq!(&batch.get(3).unwrap()[..12], &EncPrefix::sunshine_iv(3)[..]);
    }

    #[test]
    fn large_frames_split_into_blocks_and_drop_fec_beyond_four() {
        let mut p = VideoPacketizer::new(PacketizerConfig::default()).unwrap();
        // 300 data shards at 20 % → 2 blocks.
        let au = vec![0xAB; 300 * 1376 - 8];
        let batch = p.packetize(&au, vector_info()).unwrap();
        let blocks: Vec<u8> = batch.iter().map(|d| d[27]).collect();
        assert!(blocks.contains(&multi_fec_blocks(1, 1)));
        // > 4 blocks worth → F = 0, 4 blocks, no parity.
        let au = vec![1; 1000 * 1376];
        let batch = p.packetize(&au, vector_info()).unwrap();
        assert_eq!(batch.len(), 1001);
        assert!(batch.iter().all(|d| FecInfo::from_raw(u32::from_le_bytes(
            d[28..32].try_into().unwrap()
        ))
        .fec_percent
            == 0));
        assert!(p.packetize(&vec![0; 5000 * 1376], vector_info()).is_err());
    }
}
