//! Byte layouts of the video stream (gamestream-protocol-2-media.md §3.1–3.4, §3.7, §3.8).
//!
//! Every shard on the wire is `RTP header (16, incl. 4-byte extension) ‖ NV_VIDEO_PACKET (16) ‖
//! payload`; the first payload bytes of a frame carry the 8-byte frame header. Parsers take untrusted
//! bytes and return `Result`; writers fill fixed-size arrays.

use super::VideoError;
use crate::AppVersion;

/// RTP header plus the 4-byte extension GameStream always sets.
pub const RTP_HEADER_LEN: usize = 16;
/// `NV_VIDEO_PACKET`.
pub const NV_HEADER_LEN: usize = 16;
/// Both headers: the fixed prefix of every plaintext shard.
pub const SHARD_HEADER_LEN: usize = RTP_HEADER_LEN + NV_HEADER_LEN;
/// The short frame header a host sends in front of each access unit.
pub const FRAME_HEADER_LEN: usize = 8;
/// `ENC_VIDEO_HEADER`: IV (12) ‖ frameNumber LE32 ‖ GCM tag (16).
pub const ENC_PREFIX_LEN: usize = 32;

/// RTP byte 0 of every video shard: version 2 with the extension bit.
pub const RTP_HEADER_BYTE: u8 = 0x80 | FLAG_EXTENSION;
/// RTP extension bit; the client requires it.
pub const FLAG_EXTENSION: u8 = 0x10;

/// `flags` bit: the shard carries picture data (every data shard).
pub const FLAG_CONTAINS_PIC_DATA: u8 = 0x01;
/// `flags` bit: last data shard of an FEC block.
pub const FLAG_EOF: u8 = 0x02;
/// `flags` bit: first data shard of an FEC block.
pub const FLAG_SOF: u8 = 0x04;
/// `extraFlags` bit: long-term reference frame.
pub const EXTRA_FLAG_LTR_FRAME: u8 = 0x01;
/// The `multiFecFlags` value hosts send (and the client forces for old hosts).
pub const MULTI_FEC_FLAGS: u8 = 0x10;

/// The fixed RTP part of a shard. Fields are in host order here, big-endian on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RtpHeader {
    /// Byte 0 (`0x90`).
    pub header: u8,
    /// Payload type (unchecked; parity garbage in parity shards).
    pub payload_type: u8,
    /// Sequence number, +1 per shard across blocks and frames.
    pub sequence_number: u16,
    /// 90 kHz timestamp, equal for every shard of a frame.
    pub timestamp: u32,
    /// SSRC (unchecked).
    pub ssrc: u32,
    /// The 4 extension bytes (ignored).
    pub extension: [u8; 4],
}

impl RtpHeader {
    /// Parses the first 16 bytes of `b`.
    pub fn parse(b: &[u8]) -> Result<Self, VideoError> {
        let b: &[u8; RTP_HEADER_LEN] = b
            .get(..RTP_HEADER_LEN)
            .and_then(|s| s.try_into().ok())
            .ok_or(VideoError::Truncated)?;
        Ok(Self {
            header: b[0],
            payload_type: b[1],
            sequence_number: u16::from_be_bytes([b[2], b[3]]),
            timestamp: u32::from_be_bytes([b[4], b[5], b[6], b[7]]),
            ssrc: u32::from_be_bytes([b[8], b[9], b[10], b[11]]),
            extension: [b[12], b[13], b[14], b[15]],
        })
    }

    /// The 16 wire bytes.
    pub fn to_bytes(&self) -> [u8; RTP_HEADER_LEN] {
        let mut b = [0u8; RTP_HEADER_LEN];
        b[0] = self.header;
        b[1] = self.payload_type;
        b[2..4].copy_from_slice(&self.sequence_number.to_be_bytes());
        b[4..8].copy_from_slice(&self.timestamp.to_be_bytes());
        b[8..12].copy_from_slice(&self.ssrc.to_be_bytes());
        b[12..16].copy_from_slice(&self.extension);
        b
    }
}

/// `fecInfo` (LE32) split into its fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FecInfo {
    /// Data shards of this FEC block (10 bits).
    pub data_shards: u16,
    /// Index of this shard within the block, data first then parity (10 bits).
    pub shard_index: u16,
    /// FEC percentage (8 bits); the parity count follows from [`FecInfo::parity_shards`].
    pub fec_percent: u8,
}

impl FecInfo {
    /// Splits the raw value.
    pub fn from_raw(v: u32) -> Self {
        Self {
            data_shards: ((v >> 22) & 0x3FF) as u16,
            shard_index: ((v >> 12) & 0x3FF) as u16,
            fec_percent: ((v >> 4) & 0xFF) as u8,
        }
    }

    /// Packs the fields (each masked to its width).
    pub fn to_raw(&self) -> u32 {
        (u32::from(self.data_shards & 0x3FF) << 22)
            | (u32::from(self.shard_index & 0x3FF) << 12)
            | (u32::from(self.fec_percent) << 4)
    }

    /// `(data * pct + 99) / 100`: the client derives the parity count from the percentage.
    pub fn parity_shards(&self) -> u16 {
        parity_for(self.data_shards as usize, self.fec_percent as usize) as u16
    }
}

/// The client's parity-count formula.
pub fn parity_for(data_shards: usize, fec_percent: usize) -> usize {
    (data_shards * fec_percent).div_ceil(100)
}

/// `NV_VIDEO_PACKET`, the 16 bytes after the RTP header (little-endian fields).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct NvVideoPacket {
    /// Raw `streamPacketIndex`; the client uses bits 8..32 ([`Self::stream_packet_index24`]).
    pub stream_packet_index: u32,
    /// Frame number, starting at 1.
    pub frame_index: u32,
    /// `FLAG_*` bits.
    pub flags: u8,
    /// `EXTRA_FLAG_*` bits.
    pub extra_flags: u8,
    /// Always `0x10` from current hosts.
    pub multi_fec_flags: u8,
    /// Bits 4–5 block index, bits 6–7 last block index.
    pub multi_fec_blocks: u8,
    /// Raw `fecInfo`.
    pub fec_info: u32,
}

impl NvVideoPacket {
    /// Parses the first 16 bytes of `b`.
    pub fn parse(b: &[u8]) -> Result<Self, VideoError> {
        let b: &[u8; NV_HEADER_LEN] = b
            .get(..NV_HEADER_LEN)
            .and_then(|s| s.try_into().ok())
            .ok_or(VideoError::Truncated)?;
        Ok(Self {
            stream_packet_index: u32::from_le_bytes([b[0], b[1], b[2], b[3]]),
            frame_index: u32::from_le_bytes([b[4], b[5], b[6], b[7]]),
            flags: b[8],
            extra_flags: b[9],
            multi_fec_flags: b[10],
            multi_fec_blocks: b[11],
            fec_info: u32::from_le_bytes([b[12], b[13], b[14], b[15]]),
        })
    }

    /// The 16 wire bytes.
    pub fn to_bytes(&self) -> [u8; NV_HEADER_LEN] {
        let mut b = [0u8; NV_HEADER_LEN];
        b[0..4].copy_from_slice(&self.stream_packet_index.to_le_bytes());
        b[4..8].copy_from_slice(&self.frame_index.to_le_bytes());
        b[8] = self.flags;
        b[9] = self.extra_flags;
        b[10] = self.multi_fec_flags;
        b[11] = self.multi_fec_blocks;
        b[12..16].copy_from_slice(&self.fec_info.to_le_bytes());
        b
    }

    /// The 24-bit packet counter the depacketizer checks for continuity.
    pub fn stream_packet_index24(&self) -> u32 {
        (self.stream_packet_index >> 8) & 0xFF_FFFF
    }

    /// Index of this shard's FEC block within the frame (0..=3).
    pub fn block_index(&self) -> u8 {
        (self.multi_fec_blocks >> 4) & 0x3
    }

    /// Index of the frame's last FEC block (block count − 1).
    pub fn last_block_index(&self) -> u8 {
        (self.multi_fec_blocks >> 6) & 0x3
    }

    /// `fecInfo` decoded.
    pub fn fec(&self) -> FecInfo {
        FecInfo::from_raw(self.fec_info)
    }
}

/// `multiFecBlocks` for block `index` of a frame whose last block is `last`.
pub fn multi_fec_blocks(index: u8, last: u8) -> u8 {
    ((index & 3) << 4) | ((last & 3) << 6)
}

/// The frame type byte of the frame header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FrameType {
    /// 1: normal P-frame.
    P,
    /// 2: IDR (key) frame.
    Idr,
    /// 4: P-frame with intra-refresh.
    IntraRefresh,
    /// 5: P-frame after reference frame invalidation.
    AfterRfi,
    /// Anything else (Sunshine's hard-coded 104, or unknown values).
    Other(u8),
}

impl FrameType {
    /// The wire byte.
    pub fn code(self) -> u8 {
        match self {
            FrameType::P => 1,
            FrameType::Idr => 2,
            FrameType::IntraRefresh => 4,
            FrameType::AfterRfi => 5,
            FrameType::Other(v) => v,
        }
    }

    /// From the wire byte.
    pub fn from_code(v: u8) -> Self {
        match v {
            1 => FrameType::P,
            2 => FrameType::Idr,
            4 => FrameType::IntraRefresh,
            5 => FrameType::AfterRfi,
            v => FrameType::Other(v),
        }
    }
}

/// The 8-byte short frame header (`headerType` 0x01) at the start of every frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    /// `0x01` for the short header.
    pub header_type: u8,
    /// Host processing latency in 0.1 ms units (Sunshine extension; 0 = unknown).
    pub processing_latency: u16,
    /// Frame type.
    pub frame_type: FrameType,
    /// Bytes used in the last data shard's payload (see §3.4).
    pub last_payload_len: u16,
}

impl FrameHeader {
    /// The 8 wire bytes.
    pub fn to_bytes(&self) -> [u8; FRAME_HEADER_LEN] {
        let mut b = [0u8; FRAME_HEADER_LEN];
        b[0] = self.header_type;
        b[1..3].copy_from_slice(&self.processing_latency.to_le_bytes());
        b[3] = self.frame_type.code();
        b[4..6].copy_from_slice(&self.last_payload_len.to_le_bytes());
        b
    }

    /// Parses the first 8 bytes of `b` (no validation of the values).
    pub fn parse(b: &[u8]) -> Result<Self, VideoError> {
        let b = b.get(..FRAME_HEADER_LEN).ok_or(VideoError::Truncated)?;
        Ok(Self {
            header_type: b[0],
            processing_latency: u16::from_le_bytes([b[1], b[2]]),
            frame_type: FrameType::from_code(b[3]),
            last_payload_len: u16::from_le_bytes([b[4], b[5]]),
        })
    }
}

/// How many header bytes precede the bitstream in a frame's first payload, by host version
/// (MLC VideoDepacketizer.c; §3.4 table). `first_byte` is the payload's first byte.
pub fn frame_header_size(version: &AppVersion, first_byte: u8) -> usize {
    let short = first_byte == 0x01;
    if version.at_least(7, 1, 450) {
        if short {
            8
        } else {
            44
        }
    } else if version.at_least(7, 1, 446) {
        if short {
            8
        } else {
            41
        }
    } else if version.at_least(7, 1, 415) {
        if short {
            8
        } else {
            24
        }
    } else if version.at_least(7, 1, 350) {
        8
    } else if version.at_least(7, 1, 320) {
        12
    } else if version.at_least(5, 0, 0) {
        8
    } else {
        0
    }
}

/// `ENC_VIDEO_HEADER`, in front of each encrypted shard.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct EncPrefix {
    /// GCM IV (SUN: LE64 counter ‖ 0 0 0 ‖ 'V').
    pub iv: [u8; 12],
    /// NV frameIndex, untrusted (used only to skip old frames before decrypting).
    pub frame_number: u32,
    /// GCM tag.
    pub tag: [u8; 16],
}

impl std::fmt::Debug for EncPrefix {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EncPrefix")
            .field("frame_number", &self.frame_number)
            .finish_non_exhaustive()
    }
}

impl EncPrefix {
    /// Parses the first 32 bytes of `b`.
    pub fn parse(b: &[u8]) -> Result<Self, VideoError> {
        let b = b.get(..ENC_PREFIX_LEN).ok_or(VideoError::Truncated)?;
        let mut iv = [0u8; 12];
        iv.copy_from_slice(&b[..12]);
        let mut tag = [0u8; 16];
        tag.copy_from_slice(&b[16..32]);
        Ok(Self {
            iv,
            frame_number: u32::from_le_bytes([b[12], b[13], b[14], b[15]]),
            tag,
        })
    }

    /// The 32 wire bytes.
    pub fn to_bytes(&self) -> [u8; ENC_PREFIX_LEN] {
        let mut b = [0u8; ENC_PREFIX_LEN];
        b[..12].copy_from_slice(&self.iv);
        b[12..16].copy_from_slice(&self.frame_number.to_le_bytes());
        b[16..].copy_from_slice(&self.tag);
        b
    }

    /// SUN's deterministic IV for the `counter`-th encrypted shard.
    pub fn sunshine_iv(counter: u64) -> [u8; 12] {
        let mut iv = [0u8; 12];
        iv[..8].copy_from_slice(&counter.to_le_bytes());
        iv[11] = b'V';
        iv
    }
}

/// `SS_FRAME_FEC_STATUS`: the control-stream message (type 0x5502) the depacketizer reports.
pub use crate::control::FecStatus;

/// `a` is before `b` in 16-bit serial arithmetic.
pub(crate) fn is_before16(a: u16, b: u16) -> bool {
    a.wrapping_sub(b) > u16::MAX / 2
}

/// `a` is before `b` in 24-bit serial arithmetic.
pub(crate) fn is_before24(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) & 0xFF_FFFF) > 0xFF_FFFF / 2
}

/// `a` is before `b` in 32-bit serial arithmetic.
pub(crate) fn is_before32(a: u32, b: u32) -> bool {
    a.wrapping_sub(b) > u32::MAX / 2
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_round_trip() {
        let rtp = RtpHeader {
            header: 0x90,
            payload_type: 3,
            sequence_number: 0x1234,
            timestamp: 90000,
            ssrc: 7,
            extension: [1, 2, 3, 4],
        };
        assert_eq!(RtpHeader::parse(&rtp.to_bytes()).unwrap(), rtp);
        let nv = NvVideoPacket {
            stream_packet_index: 5 << 8,
            frame_index: 9,
            flags: 7,
            extra_flags: 0,
            multi_fec_flags: 0x10,
            multi_fec_blocks: multi_fec_blocks(2, 3),
            fec_info: FecInfo {
                data_shards: 10,
                shard_index: 11,
                fec_percent: 20,
            }
            .to_raw(),
        };
        let back = NvVideoPacket::parse(&nv.to_bytes()).unwrap();
        assert_eq!(back, nv);
        assert_eq!(
            (
                back.block_index(),
                back.last_block_index(),
                back.stream_packet_index24()
            ),
            (2, 3, 5)
        );
        assert_eq!(
            back.fec(),
            FecInfo {
                data_shards: 10,
                shard_index: 11,
                fec_percent: 20
            }
        );
        assert_eq!(back.fec().parity_shards(), 2);
        assert!(RtpHeader::parse(&[0; 15]).is_err());
    }

    #[test]
    fn fec_status_layout_is_big_endian() {
        let s = FecStatus {
            frame_index: 0x01020304,
            highest_received_sequence_number: 0x0506,
            next_contiguous_sequence_number: 0x0708,
            missing_packets_before_highest_received: 0x090a,
            total_data_packets: 0x0b0c,
            total_parity_packets: 0x0d0e,
            received_data_packets: 0x0f10,
            received_parity_packets: 0x1112,
            fec_percentage: 0x13,
            multi_fec_block_index: 0x14,
            multi_fec_block_count: 0x15,
        };
        assert_eq!(
            hex::encode(s.to_bytes()),
            "0102030405060708090a0b0c0d0e0f101112131415"
        );
        assert_eq!(FecStatus::from_bytes(&s.to_bytes()), Some(s));
    }

    #[test]
    fn header_size_table() {
        let v = |a, b, c| AppVersion::new(a, b, c, -1);
        assert_eq!(frame_header_size(&v(4, 0, 0), 1), 0);
        assert_eq!(frame_header_size(&v(5, 0, 0), 0x81), 8);
        assert_eq!(frame_header_size(&v(7, 1, 320), 1), 12);
        assert_eq!(frame_header_size(&v(7, 1, 350), 0x81), 8);
        assert_eq!(frame_header_size(&v(7, 1, 431), 1), 8);
        assert_eq!(frame_header_size(&v(7, 1, 431), 0x81), 24);
        assert_eq!(frame_header_size(&v(7, 1, 446), 0x81), 41);
        assert_eq!(frame_header_size(&v(7, 1, 450), 0x81), 44);
    }

    #[test]
    fn serial_compare() {
        assert!(is_before16(65535, 0));
        assert!(!is_before16(0, 65535));
        assert!(is_before24(0xFF_FFFF, 0));
        assert!(is_before32(u32::MAX, 1));
    }
}
