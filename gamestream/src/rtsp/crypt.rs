//! `rtspenc://` framing (§3.6): every RTSP message, in both directions, is one AES-128-GCM frame
//! `BE32(0x80000000 | len) ‖ BE32(seq) ‖ tag[16] ‖ ciphertext[len]` keyed by the launch `rikey`.

use super::{RtspError, MAX_MESSAGE_SIZE};
use crate::crypto::{GcmIv, GcmKey, GCM_TAG_LEN};

/// Size of the frame header (type/length, sequence number, tag).
pub const ENCRYPTED_HEADER_LEN: usize = 8 + GCM_TAG_LEN;
const ENCRYPTED_FLAG: u32 = 0x8000_0000;

/// Who sealed a message; it is part of the IV so the two directions never share a nonce.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Client → host (`'C'`).
    ClientToHost,
    /// Host → client (`'H'`).
    HostToClient,
}

impl Direction {
    fn tag_byte(self) -> u8 {
        match self {
            Direction::ClientToHost => b'C',
            Direction::HostToClient => b'H',
        }
    }
}

/// The 12-byte IV: LE32 sequence number, six zero bytes, direction byte, `'R'`.
pub fn rtsp_iv(seq: u32, direction: Direction) -> [u8; 12] {
    let mut iv = [0u8; 12];
    iv[..4].copy_from_slice(&seq.to_le_bytes());
    iv[10] = direction.tag_byte();
    iv[11] = b'R';
    iv
}

/// True if `buf` starts like an encrypted frame (high bit of the first byte); plain RTSP starts with
/// an ASCII letter, so hosts use this to tell the two apart.
pub fn looks_encrypted(buf: &[u8]) -> bool {
    buf.first().is_some_and(|b| b & 0x80 != 0)
}

/// Seals one RTSP message.
pub fn seal(
    key: &GcmKey,
    seq: u32,
    direction: Direction,
    plaintext: &[u8],
) -> Result<Vec<u8>, RtspError> {
    if plaintext.len() > MAX_MESSAGE_SIZE {
        return Err(RtspError::TooLarge);
    }
    let len = u32::try_from(plaintext.len()).map_err(|_| RtspError::TooLarge)?;
    let mut out = Vec::with_capacity(ENCRYPTED_HEADER_LEN + plaintext.len());
    out.extend_from_slice(&(ENCRYPTED_FLAG | len).to_be_bytes());
    out.extend_from_slice(&seq.to_be_bytes());
    out.extend_from_slice(&[0u8; GCM_TAG_LEN]);
    out.extend_from_slice(plaintext);
    let tag = key.seal_in_place(
        &GcmIv::Twelve(rtsp_iv(seq, direction)),
        &mut out[ENCRYPTED_HEADER_LEN..],
    );
    out[8..ENCRYPTED_HEADER_LEN].copy_from_slice(&tag);
    Ok(out)
}

/// Opens one complete frame sealed by the peer in `direction`; returns (sequence number, plaintext).
/// Rejects a clear high bit, any length other than exactly `24 + plaintextLength`, and a bad tag.
pub fn open(key: &GcmKey, direction: Direction, frame: &[u8]) -> Result<(u32, Vec<u8>), RtspError> {
    let (seq, len) = parse_header(frame)?;
    if frame.len() != ENCRYPTED_HEADER_LEN + len {
        return Err(RtspError::BadEncryptedFrame("length mismatch"));
    }
    let mut tag = [0u8; GCM_TAG_LEN];
    tag.copy_from_slice(&frame[8..ENCRYPTED_HEADER_LEN]);
    let mut plain = frame[ENCRYPTED_HEADER_LEN..].to_vec();
    key.open_in_place(&GcmIv::Twelve(rtsp_iv(seq, direction)), &mut plain, &tag)
        .map_err(|_| RtspError::BadEncryptedFrame("authentication failed"))?;
    Ok((seq, plain))
}

/// How many bytes one complete frame at the start of `buf` occupies, once its header has arrived.
pub fn frame_len(buf: &[u8]) -> Result<Option<usize>, RtspError> {
    if buf.len() < ENCRYPTED_HEADER_LEN {
        return Ok(None);
    }
    let (_, len) = parse_header(buf)?;
    Ok(Some(ENCRYPTED_HEADER_LEN + len))
}

fn parse_header(frame: &[u8]) -> Result<(u32, usize), RtspError> {
    let header: &[u8; 8] = frame
        .get(..8)
        .and_then(|h| h.try_into().ok())
        .ok_or(RtspError::BadEncryptedFrame("shorter than its header"))?;
    if frame.len() < ENCRYPTED_HEADER_LEN {
        return Err(RtspError::BadEncryptedFrame("shorter than its header"));
    }
    let type_and_len = u32::from_be_bytes([header[0], header[1], header[2], header[3]]);
    if type_and_len & ENCRYPTED_FLAG == 0 {
        return Err(RtspError::BadEncryptedFrame("encrypted bit clear"));
    }
    let len = (type_and_len & !ENCRYPTED_FLAG) as usize;
    if len > MAX_MESSAGE_SIZE {
        return Err(RtspError::TooLarge);
    }
    let seq = u32::from_be_bytes([header[4], header[5], header[6], header[7]]);
    Ok((seq, len))
}

#[cfg(test)]
mod tests {
    use super::*;

    const K: [u8; 16] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15];
    const PLAIN: &[u8] =
        b"OPTIONS rtspenc://192.168.1.10:48010 RTSP/1.0\r\nCSeq: 1\r\nX-GS-ClientVersion: 14\r\nHost: 192.168.1.10\r\n\r\n";
    const FRAME: &str = "800000660000000168b5b12432cb8e2e412b872a46a51e3a9fe452003a42126629e9a38df3e5ba69a1abdae54db4096793128c2f908f8f9d3020facd1557180ae8b351849ce52c58abeb8e9b7c4f02f8d7f8a9ca29bf268920b175a9e60e05a0693312d74d2861c5e81816295c8c854c86548e87d9d68c57be7198fabd0d";

    #[test]
    fn vector_7_4_seal_and_open() {
        assert_eq!(PLAIN.len(), 102);
        assert_eq!(
            hex::encode(rtsp_iv(1, Direction::ClientToHost)),
            "010000000000000000004352"
        );
        let key = GcmKey::new(&K);
        let frame = seal(&key, 1, Direction::ClientToHost, PLAIN).unwrap();
        assert_eq!(hex::encode(&frame), FRAME);
        assert_eq!(
            hex::encode(&frame[..24]),
            "800000660000000168b5b12432cb8e2e412b872a46a51e3a"
        );
        let (seq, plain) = open(&key, Direction::ClientToHost, &frame).unwrap();
        assert_eq!((seq, plain.as_slice()), (1, PLAIN));
        assert_eq!(frame_len(&frame).unwrap(), Some(frame.len()));
        assert!(looks_encrypted(&frame));
        assert!(!looks_encrypted(PLAIN));
    }

    #[test]
    fn rejection_rules() {
        let key = GcmKey::new(&K);
        let frame = hex::decode(FRAME).unwrap();
        // One flipped ciphertext bit.
        let mut bad = frame.clone();
        bad[40] ^= 1;
        assert!(open(&key, Direction::ClientToHost, &bad).is_err());
        // Tag tampered.
        let mut bad = frame.clone();
        bad[10] ^= 0x80;
        assert!(open(&key, Direction::ClientToHost, &bad).is_err());
        // Header length one too long / too short.
        for len in [0x67u8, 0x65] {
            let mut bad = frame.clone();
            bad[3] = len;
            assert!(matches!(
                open(&key, Direction::ClientToHost, &bad),
                Err(RtspError::BadEncryptedFrame(_))
            ));
        }
        // Trailing byte / missing byte.
        let mut bad = frame.clone();
        bad.push(0);
        assert!(open(&key, Direction::ClientToHost, &bad).is_err());
        assert!(open(&key, Direction::ClientToHost, &frame[..frame.len() - 1]).is_err());
        // High bit clear.
        let mut bad = frame.clone();
        bad[0] &= 0x7f;
        assert!(matches!(
            open(&key, Direction::ClientToHost, &bad),
            Err(RtspError::BadEncryptedFrame(_))
        ));
        // Wrong direction / wrong key.
        assert!(open(&key, Direction::HostToClient, &frame).is_err());
        assert!(open(&GcmKey::new(&[9; 16]), Direction::ClientToHost, &frame).is_err());
        // Short buffers never panic.
        for n in 0..24 {
            assert!(open(&key, Direction::ClientToHost, &frame[..n]).is_err());
        }
        assert_eq!(frame_len(&frame[..23]).unwrap(), None);
    }

    #[test]
    fn host_direction_roundtrip() {
        let key = GcmKey::new(&K);
        let frame = seal(
            &key,
            7,
            Direction::HostToClient,
            b"RTSP/1.0 200 OK\r\nCSeq: 1\r\n\r\n",
        )
        .unwrap();
        assert_eq!(&frame[4..8], &[0, 0, 0, 7]);
        let (seq, plain) = open(&key, Direction::HostToClient, &frame).unwrap();
        assert_eq!(seq, 7);
        assert_eq!(plain, b"RTSP/1.0 200 OK\r\nCSeq: 1\r\n\r\n");
    }
}
