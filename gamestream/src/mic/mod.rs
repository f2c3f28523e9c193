//! The microphone uplink (client → host), as the Sunshine forks carry it: Foundation Sunshine,
//! Apollo pull request #1428 and the moonlight-common-c forks with `MicrophoneStream.c`. No
//! released Sunshine, Apollo or Wolf has it; what the sources show, file by file, is in
//! `docs/microphone.md`.
//!
//! The host offers the stream in DESCRIBE ([`describe_lines`]: an `m=audio <port>` section with
//! `a=rtpmap:96 opus/48000/1`), the client sets up `streamid=mic` and learns the port from
//! `Transport`, then sends one Opus packet per UDP datagram behind the 12-byte header of
//! [`packet`], from a socket of its own, to that port. Nothing flows back. When the client sets
//! [`ENCRYPTION_MIC`] in `x-ss-general.encryptionEnabled`, the payload is AES-128-CBC under the
//! launch's `rikey`, with the audio stream's IV (`BE32(rikeyid + sequence) ‖ 12 zero bytes`).
//!
//! The reference client pads the Opus packet **twice** before encrypting it: first to a whole
//! block with PKCS#7-style bytes (nothing when it already is one), then the cipher appends a full
//! PKCS#7 block; the ciphertext is `roundup16(len) + 16` bytes. [`MicPacketizer`] does the same,
//! so real fork hosts read our datagrams. The reference hosts strip only the outer padding and
//! hand the rest to Opus; [`MicDepacketizer`] also strips a valid inner padding of 1 to 15 bytes
//! (an aligned packet whose last bytes happen to look like padding loses them: the decoder then
//! sees a shorter frame, as the reference host's sees a longer one).
//!
//! Sans-IO: the packetizer turns an Opus packet into a datagram, the depacketizer a datagram into
//! an Opus packet. The host's receiving task is [`driver`]; the client sends from its
//! [`crate::client::ClientStream`].

pub mod driver;
pub mod packet;

pub use driver::MicReceiver;
pub use packet::{MicHeader, MAX_MIC_DATAGRAM, MIC_HEADER_LEN, MIC_PACKET_TYPE_OPUS, MIC_SSRC};

use crate::audio::{AudioEncryption, AudioError};
use crate::crypto::CryptoError;

/// The `x-ss-general.encryption*` bit of the microphone stream (`SS_ENC_MICROPHONE`).
pub const ENCRYPTION_MIC: u32 = 0x08;
/// The rtpmap a host that takes a mono microphone offers.
pub const RTPMAP_MONO: &str = "a=rtpmap:96 opus/48000/1";
/// The rtpmap Foundation Sunshine offers (its decoder is mono all the same).
pub const RTPMAP_STEREO: &str = "a=rtpmap:96 opus/48000/2";
/// The SETUP target of the stream for hosts of appversion 5 and later.
pub const SETUP_TARGET: &str = "streamid=mic/0/0";
/// The SETUP target for older hosts.
pub const SETUP_TARGET_LEGACY: &str = "streamid=mic";
/// Microphone sample rate.
pub const MIC_SAMPLE_RATE: u32 = 48_000;

/// Errors of the microphone layer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MicError {
    /// Datagram shorter than its header (or with nothing after it).
    #[error("microphone datagram too short ({0} bytes)")]
    TooShort(usize),
    /// A packet type other than Opus.
    #[error("unknown microphone packet type {0:#04x}")]
    UnknownType(u8),
    /// An empty Opus packet was handed to the packetizer.
    #[error("empty Opus packet")]
    Empty,
    /// The datagram would exceed [`MAX_MIC_DATAGRAM`].
    #[error("microphone datagram of {0} bytes exceeds the maximum")]
    TooLarge(usize),
    /// A sequence number at or before one already delivered (duplicate or late).
    #[error("stale microphone sequence {sequence} (expected {expected})")]
    Stale {
        /// What arrived.
        sequence: u16,
        /// What was expected next.
        expected: u16,
    },
    /// The payload did not decrypt.
    #[error("microphone decryption failed: {0}")]
    Crypto(#[from] CryptoError),
}

/// What the host offered in DESCRIBE.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MicOffer {
    /// The port of the `m=audio` line, if there was one (SETUP's `Transport` decides).
    pub port: Option<u16>,
}

/// The DESCRIBE lines that offer the microphone on `port` (LF endings, as the rest of the payload).
pub fn describe_lines(port: u16) -> String {
    format!("m=audio {port} RTP/AVP 96\n{RTPMAP_MONO}\na=fmtp:96 minptime=10;useinbandfec=1\n")
}

/// Finds a microphone offer in a DESCRIBE payload: the mono or stereo rtpmap of payload type 96,
/// and the port of an `m=audio … RTP/AVP 96` line if present.
pub fn parse_offer(payload: &str) -> Option<MicOffer> {
    if !payload.contains(RTPMAP_MONO) && !payload.contains(RTPMAP_STEREO) {
        return None;
    }
    let port = payload.lines().find_map(|line| {
        let mut words = line.trim().strip_prefix("m=audio ")?.split_whitespace();
        let port = words.next()?.parse().ok()?;
        (words.next() == Some("RTP/AVP") && words.next() == Some("96")).then_some(port)
    });
    Some(MicOffer { port })
}

/// Encrypts one Opus packet as the reference client does (see the module doc).
fn encrypt(enc: &AudioEncryption, sequence: u16, opus: &[u8]) -> Vec<u8> {
    let mut padded = opus.to_vec();
    let rem = padded.len() % 16;
    if rem != 0 {
        let pad = 16 - rem;
        padded.resize(padded.len() + pad, pad as u8);
    }
    enc.encrypt(sequence, &padded)
}

/// Decrypts one payload and strips the inner padding when it is valid (see the module doc).
fn decrypt(enc: &AudioEncryption, sequence: u16, payload: &[u8]) -> Result<Vec<u8>, MicError> {
    let mut plain = enc.decrypt(sequence, payload).map_err(|e| match e {
        AudioError::Crypto(c) => c,
        _ => CryptoError::BadPadding,
    })?;
    if plain.len() % 16 == 0 {
        if let Some(&pad) = plain.last() {
            let n = usize::from(pad);
            if (1..16).contains(&n)
                && n < plain.len()
                && plain[plain.len() - n..].iter().all(|&b| b == pad)
            {
                plain.truncate(plain.len() - n);
            }
        }
    }
    Ok(plain)
}

/// Client side: one Opus packet in, one datagram out.
///
/// The sequence starts at 0. The timestamp is the milliseconds of audio sent before the packet
/// (the reference client sends its wall clock in milliseconds; the hosts ignore it).
#[derive(Debug)]
pub struct MicPacketizer {
    encryption: Option<AudioEncryption>,
    sequence: u16,
    samples: u64,
}

impl MicPacketizer {
    /// A packetizer at sequence 0; `encryption` when the mic bit was negotiated.
    pub fn new(encryption: Option<AudioEncryption>) -> Self {
        Self {
            encryption,
            sequence: 0,
            samples: 0,
        }
    }

    /// The sequence number of the next datagram.
    pub fn next_sequence(&self) -> u16 {
        self.sequence
    }

    /// The datagram of `opus`, which holds `samples` samples at 48 kHz.
    pub fn push(&mut self, opus: &[u8], samples: u32) -> Result<Vec<u8>, MicError> {
        if opus.is_empty() {
            return Err(MicError::Empty);
        }
        let timestamp_ms = (self.samples * 1000 / u64::from(MIC_SAMPLE_RATE)) as u32;
        let header = MicHeader::opus(self.sequence, timestamp_ms);
        let payload = match &self.encryption {
            Some(enc) => encrypt(enc, self.sequence, opus),
            None => opus.to_vec(),
        };
        let len = MIC_HEADER_LEN + payload.len();
        if len > MAX_MIC_DATAGRAM {
            return Err(MicError::TooLarge(len));
        }
        let mut datagram = Vec::with_capacity(len);
        datagram.extend_from_slice(&header.to_bytes());
        datagram.extend_from_slice(&payload);
        self.sequence = self.sequence.wrapping_add(1);
        self.samples += u64::from(samples);
        Ok(datagram)
    }
}

/// One Opus packet from the client's microphone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MicFrame {
    /// Sequence number.
    pub sequence: u16,
    /// The header's timestamp (milliseconds).
    pub timestamp_ms: u32,
    /// Datagrams missing right before this one.
    pub lost_before: u16,
    /// The Opus packet.
    pub opus: Vec<u8>,
}

/// Counters of a [`MicDepacketizer`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MicStats {
    /// Packets delivered.
    pub delivered: u64,
    /// Sequence numbers skipped.
    pub lost: u64,
    /// Duplicates and late packets refused.
    pub stale: u64,
    /// Datagrams refused otherwise (short, wrong type, undecryptable).
    pub bad: u64,
}

/// Host side: one datagram in, the Opus packet out, in sequence order (late and duplicate
/// datagrams are refused: a jitter buffer is the application's business).
#[derive(Debug)]
pub struct MicDepacketizer {
    encryption: Option<AudioEncryption>,
    expected: Option<u16>,
    stats: MicStats,
}

impl MicDepacketizer {
    /// A depacketizer; `encryption` when the client enabled the mic bit.
    pub fn new(encryption: Option<AudioEncryption>) -> Self {
        Self {
            encryption,
            expected: None,
            stats: MicStats::default(),
        }
    }

    /// Counters so far.
    pub fn stats(&self) -> MicStats {
        self.stats
    }

    /// Reads one datagram.
    pub fn push(&mut self, datagram: &[u8]) -> Result<MicFrame, MicError> {
        let result = self.read(datagram);
        match &result {
            Ok(_) => self.stats.delivered += 1,
            Err(MicError::Stale { .. }) => self.stats.stale += 1,
            Err(_) => self.stats.bad += 1,
        }
        result
    }

    fn read(&mut self, datagram: &[u8]) -> Result<MicFrame, MicError> {
        let (header, payload) =
            MicHeader::parse(datagram).ok_or(MicError::TooShort(datagram.len()))?;
        if header.packet_type != MIC_PACKET_TYPE_OPUS {
            return Err(MicError::UnknownType(header.packet_type));
        }
        if payload.is_empty() {
            return Err(MicError::TooShort(datagram.len()));
        }
        let sequence = header.sequence;
        let lost_before = match self.expected {
            None => 0,
            Some(expected) => {
                let ahead = sequence.wrapping_sub(expected);
                if ahead >= 0x8000 {
                    return Err(MicError::Stale { sequence, expected });
                }
                ahead
            }
        };
        let opus = match &self.encryption {
            Some(enc) => decrypt(enc, sequence, payload)?,
            None => payload.to_vec(),
        };
        self.expected = Some(sequence.wrapping_add(1));
        self.stats.lost += u64::from(lost_before);
        Ok(MicFrame {
            sequence,
            timestamp_ms: header.timestamp_ms,
            lost_before,
            opus,
        })
    }
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod rtsp_tests;
