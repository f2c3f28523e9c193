//! The RTSP handshake that follows `/launch`: plain or `rtspenc://` (AES-GCM framed), the SDP-ish
//! DESCRIBE/ANNOUNCE payloads, and port discovery from SETUP.
//!
//! Layout (sans-IO first, tokio drivers last):
//!
//! | module | what |
//! |---|---|
//! | [`message`] | `RtspRequest`/`RtspResponse` codec (one message per TCP connection) |
//! | [`crypt`] | the encrypted framing of `rtspenc://` |
//! | [`fields`] | small header/value helpers (`server_port`, `Session`, ping payload, connect data, ...) |
//! | [`describe`] | the DESCRIBE payload: host-side builder, client-side [`HostCapabilities`], codec and Opus choice |
//! | [`sdp`] | the ANNOUNCE payload: client-side generator, host-side [`StreamConfig`] parser |
//! | [`client`] | the client state machine [`ClientHandshake`] and the tokio [`client::handshake`] driver |
//! | [`server`] | the host responder and the tokio [`RtspServer`] |

pub mod client;
pub mod crypt;
pub mod describe;
pub mod fields;
pub mod message;
pub mod sdp;
pub mod server;

pub use client::{ClientHandshake, ClientParams, ClientStep, RtspOutcome, StreamSettings};
pub use crypt::Direction;
pub use describe::{DescribeParams, HostCapabilities, OpusConfig};
pub use message::{RtspRequest, RtspResponse};
pub use sdp::{AnnounceParams, StreamConfig};
pub use server::{RtspHandler, RtspServer, RtspSessionInfo};

/// Largest RTSP message (either direction) we accept, as moonlight-common-c does.
pub const MAX_MESSAGE_SIZE: usize = 1024 * 1024;

/// Default RTSP port when `sessionUrl0` carries none.
pub const DEFAULT_RTSP_PORT: u16 = 48010;
/// Default audio port when SETUP carries no usable `server_port`.
pub const DEFAULT_AUDIO_PORT: u16 = 48000;
/// Default video port when SETUP carries no usable `server_port`.
pub const DEFAULT_VIDEO_PORT: u16 = 47998;
/// Default control (ENet) port when SETUP carries no usable `server_port`.
pub const DEFAULT_CONTROL_PORT: u16 = 47999;

/// Everything that can go wrong in the RTSP layer.
#[derive(Debug, thiserror::Error)]
pub enum RtspError {
    /// The message exceeds [`MAX_MESSAGE_SIZE`].
    #[error("RTSP message too large")]
    TooLarge,
    /// The header block never ended or the payload is shorter than `Content-length`.
    #[error("RTSP message truncated")]
    Truncated,
    /// The first line or a header line is malformed.
    #[error("malformed RTSP message: {0}")]
    Malformed(&'static str),
    /// An encrypted frame failed one of the §3.6 checks (high bit, exact length, tag).
    #[error("encrypted RTSP frame rejected: {0}")]
    BadEncryptedFrame(&'static str),
    /// The session is encrypted but the peer answered in plain text.
    #[error("unencrypted RTSP message on an encrypted session")]
    UnexpectedPlaintext,
    /// The peer answered a request with a non-200 status.
    #[error("RTSP {method} failed with status {status}")]
    Status {
        /// The request that failed.
        method: String,
        /// The status code the host sent.
        status: u16,
    },
    /// DESCRIBE returned no payload.
    #[error("empty DESCRIBE payload")]
    EmptyDescribe,
    /// SETUP returned no usable `Session` header.
    #[error("missing or empty Session header")]
    MissingSession,
    /// The host closed the connection without sending anything.
    #[error("empty RTSP response")]
    EmptyResponse,
    /// A required SDP attribute is missing or unparsable (host side; Sunshine answers 400).
    #[error("SDP attribute {0} missing or invalid")]
    Sdp(String),
    /// The client asked for no Opus layout the host offers for this channel count.
    #[error("no Opus configuration for {0} channels")]
    NoOpusConfig(u8),
    /// `rtspenc://` without a key.
    #[error("encrypted RTSP requested but no key given")]
    MissingKey,
    /// The stream settings cannot be sent (e.g. packet size below 16).
    #[error("invalid stream settings: {0}")]
    InvalidSettings(&'static str),
    /// A host generation we do not implement (RTSP over ENet, generation < 3).
    #[error("unsupported host version: {0}")]
    Unsupported(&'static str),
    /// Socket failure or timeout.
    #[error("RTSP I/O: {0}")]
    Io(#[from] std::io::Error),
    /// A timeout (connect or read).
    #[error("RTSP timeout during {0}")]
    Timeout(&'static str),
}

#[cfg(test)]
mod proptests {
    use super::*;
    use crate::crypto::GcmKey;
    use proptest::prelude::*;

    fn rtsp_like() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..300),
            "(OPTIONS|SETUP|RTSP/1.0) [ -~]{0,20}( RTSP/1.0)?\r?\n([A-Za-z-]{0,8}:[ -~]{0,20}\r?\n){0,4}\r?\n[ -~\r\n]{0,40}"
                .prop_map(String::into_bytes),
        ]
    }

    proptest! {
        #[test]
        fn parsers_never_panic_and_roundtrip(data in rtsp_like()) {
            let _ = message::plain_message_len(&data);
            if let Ok(req) = RtspRequest::parse(&data) {
                let again = RtspRequest::parse(&req.to_bytes()).unwrap();
                prop_assert_eq!((&again.method, &again.target, &again.payload), (&req.method, &req.target, &req.payload));
            }
            if let Ok(resp) = RtspResponse::parse(&data) {
                let again = RtspResponse::parse(&resp.to_bytes()).unwrap();
                prop_assert_eq!((again.status, &again.payload), (resp.status, &resp.payload));
            }
            let key = GcmKey::new(&[3; 16]);
            let _ = crypt::open(&key, Direction::ClientToHost, &data);
            let _ = crypt::frame_len(&data);
            let _ = StreamConfig::parse(&data);
            let caps = HostCapabilities::parse(&data);
            for ch in [2u8, 6, 8, 9] {
                let _ = caps.opus_configs(ch);
            }
            let text = String::from_utf8_lossy(&data);
            let _ = (fields::strtoul0(&text), fields::server_port(&text), fields::port_from_session_url(&text));
        }

        #[test]
        fn seal_open_roundtrip(data in proptest::collection::vec(any::<u8>(), 0..200), seq in any::<u32>()) {
            let key = GcmKey::new(&[5; 16]);
            let frame = crypt::seal(&key, seq, Direction::HostToClient, &data).unwrap();
            prop_assert_eq!(crypt::open(&key, Direction::HostToClient, &frame).unwrap(), (seq, data));
        }
    }
}
