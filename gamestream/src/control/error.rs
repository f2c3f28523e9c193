//! The control module's typed errors. None of them carries key material.

use super::ids::Generation;

/// Everything that can go wrong encoding, decoding or transporting control messages.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    /// A packet too short to hold even its header.
    #[error("runt control packet: {len} bytes, need at least {need}")]
    Runt {
        /// Bytes received.
        len: usize,
        /// Minimum for this framing.
        need: usize,
    },
    /// On an encrypted stream, a packet whose first LE16 is not 0x0001 (receivers drop these).
    #[error("unencrypted packet of type {ty:#06x} on an encrypted control stream")]
    NotEncrypted {
        /// The LE16 found where 0x0001 was expected.
        ty: u16,
    },
    /// The wrapper's `length` field is below 4 + 16 + 4.
    #[error("encrypted control runt: length field {length}")]
    EncryptedRunt {
        /// The declared length.
        length: u16,
    },
    /// A length field promises more bytes than the packet holds.
    #[error("length field says {declared} bytes, packet holds {available}")]
    LengthMismatch {
        /// What the header claims.
        declared: usize,
        /// What is there.
        available: usize,
    },
    /// The AES-GCM tag did not verify (wrong key, IV style, direction or tampering).
    #[error("control message authentication failed")]
    BadTag,
    /// A known message whose payload is shorter than its fixed layout.
    #[error("message {ty:#06x}: payload {got} bytes, need {need}")]
    Truncated {
        /// Type id.
        ty: u16,
        /// Bytes needed.
        need: usize,
        /// Bytes present.
        got: usize,
    },
    /// The message does not exist in this generation (e.g. IDR request on gen 5).
    #[error("{what} does not exist for {generation:?}")]
    Unsupported {
        /// Which message.
        what: &'static str,
        /// The generation asked for.
        generation: Generation,
    },
    /// A payload too large for a 16-bit length field, or a short-form termination code above 0xFFFF.
    #[error("value does not fit the wire field: {0}")]
    TooLarge(&'static str),
    /// Socket or ENet failure in a driver.
    #[error("control transport: {0}")]
    Io(#[from] std::io::Error),
    /// ENet could not be set up or refused an operation.
    #[error("ENet: {0}")]
    Enet(String),
    /// The host did not answer the ENet CONNECT within the connect timeout.
    #[error("control stream connect timed out")]
    ConnectTimeout,
    /// The driver has stopped (closed, or the peer went away).
    #[error("control stream closed")]
    Closed,
    /// The session id is not registered with the server.
    #[error("unknown control session {0}")]
    UnknownSession(u64),
}
