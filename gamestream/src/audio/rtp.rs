//! Audio RTP datagrams (media spec §5.2, §5.3): data packets (PT 97) and FEC packets (PT 127).

use super::AudioError;

/// RTP header length (no extension, no CSRC).
pub const RTP_HEADER_LEN: usize = 12;
/// Audio FEC header length (after the RTP header of a PT 127 packet).
pub const FEC_HEADER_LEN: usize = 12;
/// Payload type of audio data.
pub const PT_AUDIO: u8 = 97;
/// Payload type of audio FEC.
pub const PT_FEC: u8 = 127;
/// Data shards per FEC block.
pub const DATA_SHARDS: usize = 4;
/// Parity shards per FEC block.
pub const FEC_SHARDS: usize = 2;
/// The client's receive buffer (moonlight-common-c `MAX_PACKET_SIZE`); Sunshine caps packets too.
pub const MAX_PACKET_SIZE: usize = 1400;

/// The fields of a 12-byte RTP header that audio uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtpHeader {
    /// 97 or 127.
    pub payload_type: u8,
    /// BE16 sequence number.
    pub sequence: u16,
    /// BE32 timestamp (milliseconds for data, 0 for FEC).
    pub timestamp: u32,
    /// BE32 SSRC (0).
    pub ssrc: u32,
}

/// The 12-byte header that follows the RTP header of an FEC packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AudioFecHeader {
    /// 0 or 1.
    pub shard_index: u8,
    /// Payload type of the protected data packets (97).
    pub payload_type: u8,
    /// Sequence number of the block's first data packet (a multiple of 4).
    pub base_sequence: u16,
    /// Timestamp of that packet.
    pub base_timestamp: u32,
    /// SSRC of the data packets.
    pub ssrc: u32,
}

/// A parsed audio datagram, borrowing its payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AudioPacket<'a> {
    /// An Opus packet (possibly encrypted).
    Data {
        /// RTP header.
        rtp: RtpHeader,
        /// Payload = one data shard.
        payload: &'a [u8],
    },
    /// A parity shard.
    Fec {
        /// RTP header.
        rtp: RtpHeader,
        /// FEC header.
        fec: AudioFecHeader,
        /// Parity bytes.
        parity: &'a [u8],
    },
}

fn write_rtp(out: &mut Vec<u8>, h: &RtpHeader) {
    out.push(0x80);
    out.push(h.payload_type);
    out.extend_from_slice(&h.sequence.to_be_bytes());
    out.extend_from_slice(&h.timestamp.to_be_bytes());
    out.extend_from_slice(&h.ssrc.to_be_bytes());
}

/// Builds a data datagram (SSRC 0).
pub fn encode_data_packet(sequence: u16, timestamp: u32, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(RTP_HEADER_LEN + payload.len());
    write_rtp(
        &mut out,
        &RtpHeader {
            payload_type: PT_AUDIO,
            sequence,
            timestamp,
            ssrc: 0,
        },
    );
    out.extend_from_slice(payload);
    out
}

/// Builds an FEC datagram. Its RTP sequence is `base + 4 + shard_index` and its timestamp 0.
pub fn encode_fec_packet(fec: &AudioFecHeader, parity: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(RTP_HEADER_LEN + FEC_HEADER_LEN + parity.len());
    let sequence = fec
        .base_sequence
        .wrapping_add(DATA_SHARDS as u16)
        .wrapping_add(u16::from(fec.shard_index));
    write_rtp(
        &mut out,
        &RtpHeader {
            payload_type: PT_FEC,
            sequence,
            timestamp: 0,
            ssrc: 0,
        },
    );
    out.push(fec.shard_index);
    out.push(fec.payload_type);
    out.extend_from_slice(&fec.base_sequence.to_be_bytes());
    out.extend_from_slice(&fec.base_timestamp.to_be_bytes());
    out.extend_from_slice(&fec.ssrc.to_be_bytes());
    out.extend_from_slice(parity);
    out
}

fn be16(b: &[u8], at: usize) -> u16 {
    b.get(at..at + 2)
        .map_or(0, |s| u16::from_be_bytes([s[0], s[1]]))
}

fn be32(b: &[u8], at: usize) -> u32 {
    b.get(at..at + 4)
        .map_or(0, |s| u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
}

/// Parses an audio datagram. FEC packets must have shard index < 2 and a base sequence that is a
/// multiple of 4 (moonlight-common-c rejects anything else).
pub fn parse_audio_packet(datagram: &[u8]) -> Result<AudioPacket<'_>, AudioError> {
    if datagram.len() < RTP_HEADER_LEN {
        return Err(AudioError::TooShort(datagram.len()));
    }
    let rtp = RtpHeader {
        payload_type: datagram[1] & 0x7F,
        sequence: be16(datagram, 2),
        timestamp: be32(datagram, 4),
        ssrc: be32(datagram, 8),
    };
    let body = &datagram[RTP_HEADER_LEN..];
    match rtp.payload_type {
        PT_AUDIO => Ok(AudioPacket::Data { rtp, payload: body }),
        PT_FEC => {
            if body.len() < FEC_HEADER_LEN {
                return Err(AudioError::TooShort(datagram.len()));
            }
            let fec = AudioFecHeader {
                shard_index: body[0],
                payload_type: body[1],
                base_sequence: be16(body, 2),
                base_timestamp: be32(body, 4),
                ssrc: be32(body, 8),
            };
            if usize::from(fec.shard_index) >= FEC_SHARDS
                || usize::from(fec.base_sequence) % DATA_SHARDS != 0
            {
                return Err(AudioError::BadFecHeader);
            }
            Ok(AudioPacket::Fec {
                rtp,
                fec,
                parity: &body[FEC_HEADER_LEN..],
            })
        }
        other => Err(AudioError::UnknownPayloadType(other)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let d = encode_data_packet(0x1234, 0xdeadbeef, b"opus");
        assert_eq!(hex::encode(&d[..12]), "80611234deadbeef00000000");
        match parse_audio_packet(&d).unwrap() {
            AudioPacket::Data { rtp, payload } => {
                assert_eq!(
                    (rtp.sequence, rtp.timestamp, payload),
                    (0x1234, 0xdeadbeef, &b"opus"[..])
                );
            }
            other => panic!("{other:?}"),
        }
        let fec = AudioFecHeader {
            shard_index: 1,
            payload_type: 97,
            base_sequence: 8,
            base_timestamp: 40,
            ssrc: 0,
        };
        let f = encode_fec_packet(&fec, b"par");
        match parse_audio_packet(&f).unwrap() {
            AudioPacket::Fec {
                rtp,
                fec: got,
                parity,
            } => {
                assert_eq!(
                    (rtp.sequence, rtp.timestamp, got, parity),
                    (13, 0, fec, &b"par"[..])
                );
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn rejects() {
        assert!(parse_audio_packet(&[0x80, 97]).is_err());
        assert!(matches!(
            parse_audio_packet(&[0x80, 96, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]),
            Err(AudioError::UnknownPayloadType(96))
        ));
        let mut f = encode_fec_packet(
            &AudioFecHeader {
                shard_index: 0,
                payload_type: 97,
                base_sequence: 4,
                base_timestamp: 0,
                ssrc: 0,
            },
            b"",
        );
        assert!(parse_audio_packet(&f[..20]).is_err());
        f[12] = 2;
        assert!(matches!(
            parse_audio_packet(&f),
            Err(AudioError::BadFecHeader)
        ));
        f[12] = 0;
        f[15] = 5;
        assert!(matches!(
            parse_audio_packet(&f),
            Err(AudioError::BadFecHeader)
        ));
    }
}
