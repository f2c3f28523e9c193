//! The microphone datagram of the Sunshine forks (Foundation Sunshine, Apollo pull request #1428,
//! VoidLink and the moonlight-common-c forks' `MicrophoneStream.c`), byte for byte.
//!
//! A 12-byte header, every field **little-endian** (unlike the audio RTP header, which is
//! big-endian), then one Opus packet:
//!
//! | offset | field | value |
//! |---|---|---|
//! | 0 | flags | 0 |
//! | 1 | packet type | `0x61` (Opus) |
//! | 2 | sequence | u16 LE, +1 per datagram, wraps |
//! | 4 | timestamp | u32 LE, milliseconds |
//! | 8 | ssrc | u32 LE, `0x12345678` |
//!
//! The hosts read only the type and the sequence; they ignore flags, timestamp and ssrc, and so
//! does [`MicHeader::parse`] (it reports them).

/// The header of one microphone datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MicHeader {
    /// Flags (0 on the wire so far).
    pub flags: u8,
    /// Packet type ([`MIC_PACKET_TYPE_OPUS`]).
    pub packet_type: u8,
    /// Sequence number.
    pub sequence: u16,
    /// Timestamp in milliseconds.
    pub timestamp_ms: u32,
    /// Stream marker ([`MIC_SSRC`]).
    pub ssrc: u32,
}

/// Length of the header.
pub const MIC_HEADER_LEN: usize = 12;
/// Packet type of an Opus datagram (`'a'`).
pub const MIC_PACKET_TYPE_OPUS: u8 = 0x61;

impl MicHeader {
    /// The header of Opus datagram `sequence` at `timestamp_ms`, as the reference client writes it.
    pub fn opus(sequence: u16, timestamp_ms: u32) -> Self {
        Self {
            flags: 0,
            packet_type: MIC_PACKET_TYPE_OPUS,
            sequence,
            timestamp_ms,
            ssrc: MIC_SSRC,
        }
    }

    /// The 12 header bytes.
    pub fn to_bytes(&self) -> [u8; MIC_HEADER_LEN] {
        let [s0, s1] = self.sequence.to_le_bytes();
        let [t0, t1, t2, t3] = self.timestamp_ms.to_le_bytes();
        let [c0, c1, c2, c3] = self.ssrc.to_le_bytes();
        [
            self.flags,
            self.packet_type,
            s0,
            s1,
            t0,
            t1,
            t2,
            t3,
            c0,
            c1,
            c2,
            c3,
        ]
    }

    /// Splits a datagram into its header and payload; `None` when shorter than the header.
    pub fn parse(datagram: &[u8]) -> Option<(Self, &[u8])> {
        let (h, payload) = datagram.split_first_chunk::<MIC_HEADER_LEN>()?;
        let header = Self {
            flags: h[0],
            packet_type: h[1],
            sequence: u16::from_le_bytes([h[2], h[3]]),
            timestamp_ms: u32::from_le_bytes([h[4], h[5], h[6], h[7]]),
            ssrc: u32::from_le_bytes([h[8], h[9], h[10], h[11]]),
        };
        Some((header, payload))
    }
}

/// The ssrc every reference client sends.
pub const MIC_SSRC: u32 = 0x1234_5678;
/// Largest datagram the reference client sends (header included).
pub const MAX_MIC_DATAGRAM: usize = 1400;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_bytes_are_little_endian() {
        let h = MicHeader::opus(0x0102, 0x0A0B_0C0D);
        assert_eq!(hex::encode(h.to_bytes()), "006102010d0c0b0a78563412");
        let bytes = h.to_bytes();
        let (back, rest) = MicHeader::parse(&bytes).unwrap();
        assert_eq!(back, h);
        assert!(rest.is_empty());
        assert_eq!(MicHeader::parse(&[0u8; 11]), None);
    }
}
