//! NVHTTP (spec §1): the HTTP/HTTPS API of GameStream hosts.
//!
//! * [`xml`] and [`types`]: sans-IO wire types (`/serverinfo`, `/applist`, `/launch`, `/pair`
//!   bodies, launch query strings).
//! * [`NvHttpClient`]: tokio client (what moonlight-embedded's `libgamestream` does).
//! * [`NvHttpServer`]: tokio host serving the same API to Moonlight clients; its answers to
//!   `/serverinfo`, `/launch` and the other paired endpoints are the sans-IO [`answer`], and the
//!   client's request targets come from the sans-IO [`request_target`], so a launch can run in
//!   memory (`tests/session_pair.rs`) through the code the drivers use.
//!
//! Every host closes the connection after each response, so both drivers use one TCP (+TLS)
//! connection per request.

mod client;
mod server;
mod transport;
pub mod types;
pub mod xml;

pub use client::{
    request_target, HostAddress, NvHttpClient, DEFAULT_HTTPS_PORT, DEFAULT_HTTP_PORT, UNIQUE_ID,
};
pub use server::{
    answer, query_params, split_target, HostError, HostHandler, HttpAnswer, InMemoryPairedClients,
    NvHttpServer, NvHttpServerConfig, PairedClient, PairedClients, PendingPairing, RequestContext,
    ServerPorts,
};
pub use types::{
    cancel_xml, codec_mode, parse_cancel, session_url, surround_audio_info, App, DisplayMode,
    LaunchRequest, LaunchResponse, ServerInfo, STATE_BUSY, STATE_FREE, SURROUND_STEREO,
};
pub use xml::{XmlBuilder, XmlElement, XmlResponse};

use crate::identity::IdentityError;
use crate::pairing::PairingError;
use crate::tls::TlsError;

/// Errors of NVHTTP parsing and of both drivers.
#[derive(Debug, thiserror::Error)]
pub enum NvHttpError {
    /// TCP connect/read/write failed.
    #[error("I/O: {0}")]
    Io(#[from] std::io::Error),
    /// The TLS handshake failed (includes a pinned-certificate mismatch).
    #[error("TLS: {0}")]
    Tls(String),
    /// TLS configuration could not be built.
    #[error(transparent)]
    TlsConfig(#[from] TlsError),
    /// The request timed out.
    #[error("request timed out")]
    Timeout,
    /// HTTP-level failure (non-2xx without an XML envelope, or protocol error).
    #[error("HTTP error {status}: {message}")]
    Http {
        /// HTTP status (0 for protocol errors).
        status: u16,
        /// Description.
        message: String,
    },
    /// The XML envelope carried `status_code != 200` (or a payload flag said failure).
    #[error("host answered status {code}: {message}")]
    Status {
        /// `status_code`.
        code: i64,
        /// `status_message`.
        message: String,
    },
    /// The host's answer is larger than the client reads (bodies are read into memory, so a host
    /// that sends a huge or endless body must not grow it without end: 1 MiB for the XML answers,
    /// more for box art).
    #[error("the host's answer is larger than {limit} bytes")]
    TooLarge {
        /// The limit, in bytes.
        limit: usize,
    },
    /// Malformed XML.
    #[error("malformed XML: {0}")]
    Xml(String),
    /// A required element/parameter is missing.
    #[error("missing field {0}")]
    MissingField(&'static str),
    /// An element/parameter has an unparsable value.
    #[error("invalid value for {field}: {value:?}")]
    InvalidField {
        /// Name.
        field: &'static str,
        /// The offending value (redacted for secrets).
        value: String,
    },
    /// Pairing failed.
    #[error("pairing failed: {0}")]
    Pairing(#[from] PairingError),
    /// HTTPS needs a pinned host certificate, which only pairing provides.
    #[error("not paired with this host (no pinned certificate)")]
    NotPaired,
    /// Identity problem.
    #[error(transparent)]
    Identity(#[from] IdentityError),
    /// Bad host address.
    #[error("invalid address: {0}")]
    Address(String),
}

impl NvHttpError {
    /// The host's XML/HTTP status code, if this error carries one.
    pub fn status_code(&self) -> Option<i64> {
        match self {
            NvHttpError::Status { code, .. } => Some(*code),
            NvHttpError::Http { status, .. } if *status != 0 => Some(i64::from(*status)),
            _ => None,
        }
    }
}
