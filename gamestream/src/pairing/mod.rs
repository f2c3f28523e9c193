//! PIN pairing (spec §2), sans-IO: [`ClientPairing`] produces the query parameters of each
//! `/pair` phase and consumes the parsed responses; [`HostPairing`] consumes a client's phase
//! parameters and produces the response fields. The HTTP transport lives in [`crate::nvhttp`].
//!
//! The PIN never travels: both sides derive `K = HASH(salt ‖ pin)[..16]` and prove knowledge of it
//! through AES-ECB-encrypted challenges; each side then signs a random secret with its certificate's
//! key so that the other can bind the PIN to the certificate it will pin/trust.

mod client;
mod host;

pub use client::{ClientPairing, ClientSecrets, PairedHost};
pub use host::{HostPairRequest, HostPairing, HostSecrets, HostStep};

use sha1::Digest as _;

use crate::identity::IdentityError;
use crate::version::AppVersion;

/// Why pairing failed. `WrongPin` and `ForgedHostCertificate` are distinguished because the user
/// must be told different things (retype the PIN vs. someone is intercepting).
#[derive(Debug, thiserror::Error)]
pub enum PairingError {
    /// The host's challenge hash does not match: the PIN typed on the host differs from ours.
    #[error("wrong PIN")]
    WrongPin,
    /// The host's signature over its secret does not verify with the certificate it sent in
    /// phase 1: a man in the middle, or a broken host.
    #[error("host signature does not match its certificate (possible man-in-the-middle)")]
    ForgedHostCertificate,
    /// The host answered `paired=0` (or no `paired` element) in a phase.
    #[error("host refused pairing in phase {phase}")]
    HostRefused {
        /// 1..=5.
        phase: u8,
    },
    /// A hex field of a request/response is not valid hex.
    #[error("malformed hex in {field}")]
    MalformedHex {
        /// Name of the parameter/element.
        field: &'static str,
    },
    /// A field has an impossible length.
    #[error("{field} has invalid length {len}")]
    BadLength {
        /// Name of the parameter/element.
        field: &'static str,
        /// Length in bytes after hex decoding.
        len: usize,
    },
    /// A required parameter/element is missing.
    #[error("missing {0}")]
    Missing(&'static str),
    /// A phase arrived that is not the next one.
    #[error("pairing phase out of order: expected phase {expected}, got phase {got}")]
    OutOfOrder {
        /// Phase the state machine waits for (0 if finished/failed).
        expected: u8,
        /// Phase that arrived.
        got: u8,
    },
    /// The query matches no pairing phase.
    #[error("request matches no pairing phase")]
    UnknownPhase,
    /// PINs are 1..=16 ASCII digits (hosts in the field use exactly 4).
    #[error("invalid PIN format")]
    InvalidPin,
    /// A certificate sent by the peer is not usable.
    #[error("invalid certificate: {0}")]
    Certificate(#[from] IdentityError),
}

/// The hash of the pairing handshake, chosen by the host's generation (spec §2.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PairingHash {
    /// GFE with `appversion` major < 7.
    Sha1,
    /// Every modern host (GFE 3.x, Sunshine, Wolf).
    Sha256,
}

impl PairingHash {
    /// SHA-1 for major < 7, else SHA-256.
    pub fn for_version(version: &AppVersion) -> Self {
        if version.major < 7 {
            PairingHash::Sha1
        } else {
            PairingHash::Sha256
        }
    }

    /// Digest length: 20 or 32.
    pub fn output_len(self) -> usize {
        match self {
            PairingHash::Sha1 => 20,
            PairingHash::Sha256 => 32,
        }
    }

    /// Hash of the concatenation of `parts`.
    pub fn digest(self, parts: &[&[u8]]) -> Vec<u8> {
        match self {
            PairingHash::Sha1 => {
                let mut h = sha1::Sha1::new();
                parts.iter().for_each(|p| h.update(p));
                h.finalize().to_vec()
            }
            PairingHash::Sha256 => {
                let mut h = sha2::Sha256::new();
                parts.iter().for_each(|p| h.update(p));
                h.finalize().to_vec()
            }
        }
    }
}

/// `K = HASH(salt ‖ pin)[..16]` (spec §2.2).
pub fn derive_key(hash: PairingHash, salt: &[u8; 16], pin: &str) -> [u8; 16] {
    let digest = hash.digest(&[salt, pin.as_bytes()]);
    let mut key = [0u8; 16];
    key.copy_from_slice(&digest[..16]);
    key
}

/// Checks the PIN format shared by both halves.
pub fn validate_pin(pin: &str) -> Result<(), PairingError> {
    if (1..=16).contains(&pin.len()) && pin.bytes().all(|b| b.is_ascii_digit()) {
        Ok(())
    } else {
        Err(PairingError::InvalidPin)
    }
}

/// The five `/pair` phases.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PairPhase {
    /// `phrase=getservercert` (HTTP, long poll).
    GetServerCert = 1,
    /// `clientchallenge` (HTTP).
    ClientChallenge = 2,
    /// `serverchallengeresp` (HTTP).
    ServerChallengeResp = 3,
    /// `clientpairingsecret` (HTTP).
    ClientPairingSecret = 4,
    /// `phrase=pairchallenge` (HTTPS with the new client certificate).
    PairChallenge = 5,
}

impl PairPhase {
    /// Phase 5 must go over HTTPS; all others over HTTP.
    pub fn over_https(self) -> bool {
        self == PairPhase::PairChallenge
    }
}

/// One `/pair` request a client must send: the phase-specific query parameters (the common
/// `uniqueid`, `uuid`, `devicename`, `updateState` are added by the transport).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PairRequest {
    /// Which phase this is.
    pub phase: PairPhase,
    /// Parameters in wire order.
    pub params: Vec<(&'static str, String)>,
}

/// The fields of a `/pair` response (the XML envelope is handled by [`crate::nvhttp`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PairResponse {
    /// `<paired>1</paired>`; anything else is failure.
    pub paired: bool,
    /// Phase 1: hex of the host certificate PEM.
    pub plaincert: Option<String>,
    /// Phase 2: hex of `AES-ECB(K, hH ‖ sc)`.
    pub challengeresponse: Option<String>,
    /// Phase 3: hex of `ss ‖ SIG(host, ss)`.
    pub pairingsecret: Option<String>,
}

impl PairResponse {
    /// A bare `paired=0` answer.
    pub fn refused() -> Self {
        PairResponse::default()
    }
}

fn decode_hex(field: &'static str, s: &str) -> Result<Vec<u8>, PairingError> {
    hex::decode(s.trim()).map_err(|_| PairingError::MalformedHex { field })
}

fn block_pad(mut data: Vec<u8>) -> Vec<u8> {
    let padded = data.len().div_ceil(16) * 16;
    data.resize(padded, 0);
    data
}

/// `BadLength` unless `field`'s decoded `data` holds at least `min` bytes.
fn at_least(field: &'static str, data: &[u8], min: usize) -> Result<(), PairingError> {
    if data.len() < min {
        return Err(PairingError::BadLength {
            field,
            len: data.len(),
        });
    }
    Ok(())
}

fn aes_ecb(key: &[u8; 16], data: &[u8], field: &'static str) -> Result<Vec<u8>, PairingError> {
    crate::crypto::aes_ecb_encrypt(key, data).map_err(|_| PairingError::BadLength {
        field,
        len: data.len(),
    })
}

fn aes_ecb_inv(key: &[u8; 16], data: &[u8], field: &'static str) -> Result<Vec<u8>, PairingError> {
    if data.is_empty() {
        return Err(PairingError::BadLength { field, len: 0 });
    }
    crate::crypto::aes_ecb_decrypt(key, data).map_err(|_| PairingError::BadLength {
        field,
        len: data.len(),
    })
}

fn random16() -> [u8; 16] {
    use rand::RngCore;
    let mut b = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut b);
    b
}

/// Constant-time-ish equality for secrets derived from the PIN.
fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn p1_p2_key_derivation() {
        let salt: [u8; 16] = hex::decode("000102030405060708090a0b0c0d0e0f")
            .unwrap()
            .try_into()
            .unwrap();
        let full = PairingHash::Sha256.digest(&[&salt, b"1234"]);
        assert_eq!(
            hex::encode(full),
            "bad0b4f7cae08eb7c1b5acc763a8ed25242e2c9173e81f3f624b1fa5303cf6ce"
        );
        let k1 = derive_key(PairingHash::Sha256, &salt, "1234");
        assert_eq!(hex::encode(k1), "bad0b4f7cae08eb7c1b5acc763a8ed25");
        let full = PairingHash::Sha1.digest(&[&salt, b"1234"]);
        assert_eq!(
            hex::encode(full),
            "0cd2f00b23437ed6adc97cd8f7dbf3edb95ae9f7"
        );
        let k2 = derive_key(PairingHash::Sha1, &salt, "1234");
        assert_eq!(hex::encode(k2), "0cd2f00b23437ed6adc97cd8f7dbf3ed");
        // P3/P4
        let m = hex::decode("101112131415161718191a1b1c1d1e1f").unwrap();
        assert_eq!(
            hex::encode(aes_ecb(&k1, &m, "x").unwrap()),
            "5febcdc985b2baddd65925da162380eb"
        );
        assert_eq!(
            hex::encode(aes_ecb(&k2, &m, "x").unwrap()),
            "74835d5e27e70f2e39548f80ad3cbff8"
        );
    }

    #[test]
    fn hash_by_version() {
        assert_eq!(
            PairingHash::for_version(&AppVersion::SUNSHINE),
            PairingHash::Sha256
        );
        assert_eq!(
            PairingHash::for_version(&AppVersion::parse("6.0.0.0")),
            PairingHash::Sha1
        );
        assert_eq!(
            PairingHash::for_version(&AppVersion::parse("7.0.0.0")),
            PairingHash::Sha256
        );
    }

    #[test]
    fn pin_format() {
        assert!(validate_pin("1234").is_ok());
        assert!(validate_pin("").is_err());
        assert!(validate_pin("12a4").is_err());
    }
}
