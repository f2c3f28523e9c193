//! Every NV input packet (control spec §5), with the generation-specific magics, ENet routing and
//! the legacy wrappings.
//!
//! An input packet is `BE32 size ‖ LE32 magic ‖ body`, where `size` counts the bytes after itself.
//! For hosts ≥ 7.1.431 the plaintext packet is simply the payload of control message 0x0206 (done by
//! the control module). Older generations encrypt it first: see [`LegacyGcmInputCipher`] (gen 7)
//! and [`CbcInputCipher`] (gen 3-6).
//!
//! [`InputEvent::encode`] is the client half, [`InputEvent::decode`] the host half (strict lengths,
//! never panics). [`client`] holds moonlight-common-c's client-side shaping (mouse accumulation,
//! scroll batching, UTF-8 splitting, pen reliability).

mod cipher;
pub mod client;
mod event;

pub use cipher::{launch_iv, CbcInputCipher, InputWrapper, LegacyGcmInputCipher};
pub use event::*;

use crate::crypto::CryptoError;

/// Errors of input encoding, decoding and wrapping. They carry no key material.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InputError {
    /// Fewer than the 8 header bytes.
    #[error("input packet too short ({0} bytes)")]
    TooShort(usize),
    /// The BE32 size field does not match the bytes present.
    #[error("input size field {declared} does not match {actual} bytes after it")]
    SizeMismatch {
        /// Value of the size field.
        declared: u32,
        /// Bytes actually following the size field.
        actual: usize,
    },
    /// The magic is not an event of this generation.
    #[error("unknown input magic {magic:#010x} for this host generation")]
    UnknownMagic {
        /// The LE32 magic.
        magic: u32,
    },
    /// The body length is wrong for the event type.
    #[error("input packet with magic {magic:#010x} has size {got}, expected {expected}")]
    WrongLength {
        /// The LE32 magic.
        magic: u32,
        /// Size field value expected for this magic.
        expected: usize,
        /// Size field value found.
        got: usize,
    },
    /// UTF-8 text that is not valid UTF-8 or is longer than hosts accept (32 bytes).
    #[error("invalid UTF-8 text event")]
    InvalidText,
    /// A wrapped (encrypted) input payload is malformed.
    #[error("malformed encrypted input payload")]
    BadWrapping,
    /// Decryption failed.
    #[error("input decryption failed: {0}")]
    Crypto(#[from] CryptoError),
}
