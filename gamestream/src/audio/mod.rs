//! The audio stream (media spec §5): Opus over RTP (PT 97), RS(4,2) FEC packets (PT 127) with the
//! fixed OpenFEC matrix, optional AES-128-CBC per packet.
//!
//! Sans-IO cores: [`AudioPacketizer`] (host) and [`AudioDepacketizer`] (client). They run inside
//! the session cores, [`crate::host::HostMediaCore`] (driven per session by the host's media
//! driver, whose handle is [`AudioSender`]) and [`crate::client::ClientCore`].

mod config;
mod depacketizer;
mod packetizer;
pub mod rtp;

/// Re-exported where the audio layer always had them: the sender is a handle on the host's media
/// driver, and the loss its settings name lives with the host's faults.
pub use crate::host::{AudioSender, AudioSenderConfig, LossInjection};
pub use config::{AudioConfig, SAMPLE_RATE};
pub use depacketizer::{AudioDepacketizer, AudioDepacketizerConfig, AudioEvent, AudioStats};
pub use packetizer::{AudioPacketizer, AudioPacketizerConfig};

use crate::crypto::{aes_cbc_decrypt_pkcs7, aes_cbc_encrypt_pkcs7, CryptoError};

/// Errors of the audio layer.
#[derive(Debug, thiserror::Error)]
pub enum AudioError {
    /// Datagram shorter than its headers.
    #[error("audio datagram too short ({0} bytes)")]
    TooShort(usize),
    /// RTP payload type other than 97/127.
    #[error("unknown audio payload type {0}")]
    UnknownPayloadType(u8),
    /// FEC shard index ≥ 2 or base sequence not a multiple of 4.
    #[error("invalid audio FEC header")]
    BadFecHeader,
    /// Channel count other than 2, 6, 8.
    #[error("unsupported audio channel count {0}")]
    UnsupportedChannels(u32),
    /// Malformed `surround-params`.
    #[error("malformed surround-params")]
    BadSurroundParams,
    /// Decryption failed.
    #[error("audio decryption failed: {0}")]
    Crypto(#[from] CryptoError),
    /// Socket error in the host's media driver.
    #[error("audio socket: {0}")]
    Io(#[from] std::io::Error),
}

/// Audio AES-128-CBC parameters: the `/launch` `rikey` and `rikeyid`.
///
/// IV of packet `seq` = `BE32(rikeyid + seq) ‖ 12 zero bytes` (u32 wrap); PKCS#7 per packet.
#[derive(Clone)]
pub struct AudioEncryption {
    key: [u8; 16],
    rikeyid: u32,
}

redacted_debug!(AudioEncryption, "AudioEncryption(..)");

impl AudioEncryption {
    /// `rikeyid` is the launch argument read as a 32-bit integer (a negative decimal wraps).
    pub fn new(key: [u8; 16], rikeyid: u32) -> Self {
        Self { key, rikeyid }
    }

    /// The IV of packet `seq`.
    pub fn iv(&self, seq: u16) -> [u8; 16] {
        let mut iv = [0u8; 16];
        iv[..4].copy_from_slice(&self.rikeyid.wrapping_add(u32::from(seq)).to_be_bytes());
        iv
    }

    /// Encrypts one Opus packet.
    pub fn encrypt(&self, seq: u16, opus: &[u8]) -> Vec<u8> {
        aes_cbc_encrypt_pkcs7(&self.key, &self.iv(seq), opus)
    }

    /// Decrypts one payload.
    pub fn decrypt(&self, seq: u16, payload: &[u8]) -> Result<Vec<u8>, AudioError> {
        Ok(aes_cbc_decrypt_pkcs7(&self.key, &self.iv(seq), payload)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iv_vectors() {
        let e = AudioEncryption::new([0; 16], 0x12345678);
        assert_eq!(hex::encode(e.iv(0)), "12345678000000000000000000000000");
        assert_eq!(hex::encode(e.iv(3)), "1234567b000000000000000000000000");
        let w = AudioEncryption::new([0; 16], u32::MAX);
        assert_eq!(hex::encode(w.iv(1)), "00000000000000000000000000000000");
        assert_eq!(format!("{w:?}"), "AudioEncryption(..)");
    }
}
