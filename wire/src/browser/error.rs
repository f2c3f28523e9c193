//! What the browser is told when a stream fails: a typed [`ErrorCode`] next to the human text.
//!
//! Why both: the Helix viewer only reads the text of `{"error": "<text>"}` and retries when it
//! contains `AlreadyStreaming` (contract §4.4), so the text keeps the code as its first token
//! (`"HostNotPaired: pair this host first…"`). Everything moongate decides — the bare string on the
//! WebRTC signaling socket, the WHEP status, the web client's retry or stop — reads the typed code,
//! which travels as an extra `"code"` field (`{"error":"…","code":"HostNotPaired"}`), so no one
//! parses a prefix back out of a sentence.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::ipc;

macro_rules! error_codes {
    ($($(#[doc = $doc:literal])+ $name:ident,)+) => {
        /// Why a stream failed, as the browser is told (the `"code"` field; the first token of the
        /// `"error"` text). The names are stable: clients match on them.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        pub enum ErrorCode {
            $($(#[doc = $doc])+ $name,)+
            /// A code added by a newer gateway (what an older client decodes it as).
            #[serde(other)]
            Unknown,
        }

        impl ErrorCode {
            /// The stable name (`"HostNotPaired"`).
            pub fn as_str(self) -> &'static str {
                match self {
                    $(ErrorCode::$name => stringify!($name),)+
                    ErrorCode::Unknown => "Unknown",
                }
            }
        }
    };
}

error_codes! {
    /// Anything the gateway cannot name better (contract §3.3).
    InternalServerError,
    /// No host at the init's `host_id` (contract §3.3).
    HostNotFound,
    /// The host does not trust the gateway's client identity, and pairing did not fix it.
    HostNotPaired,
    /// The app id does not exist on the host.
    AppNotFound,
    /// The host is busy with another stream: the one code a client retries on (contract §4.4).
    AlreadyStreaming,
    /// `join` without a live stream of that session.
    SessionNotFound,
    /// Another socket took this stream over (the signaling socket's word for a supersede).
    ClientKicked,
    /// The WebRTC peer never connected or went away.
    PeerDisconnect,
    /// Wrong or missing credentials.
    Unauthorized,
    /// The init (or its ids) was refused by the gateway.
    InvalidInit,
    /// A signaling message the gateway cannot use.
    InvalidMessage,
    /// A message over the configured size limit.
    MessageTooBig,
    /// The first message did not arrive in time.
    FirstMessageTimeout,
    /// The operator's stream caps are reached (try again later).
    TooManyStreams,
    /// The cluster store (Redis) did not answer.
    ClusterUnavailable,
    /// A newer connection with the same key took over (close 4000).
    Superseded,
    /// An operator stopped the stream (close 4001).
    StoppedByAdmin,
    /// The gateway is shutting down (close 1001).
    ServerShutdown,
    /// The streamer refused the stream's settings.
    BadInit,
    /// The host did not answer.
    HostUnreachable,
    /// WebRTC: no UDP port in the configured range could be bound.
    NoIcePort,
    /// WebRTC: unusable signaling (SDP or candidate).
    BadSignal,
    /// The host's `/launch` or `/resume` failed.
    LaunchFailed,
    /// RTSP, control stream or media setup failed.
    StreamSetupFailed,
    /// No codec both the browser and the host support.
    UnsupportedCodec,
    /// The host stopped answering mid-stream.
    ConnectionLost,
    /// The caller is signed in but their account may not do this (a viewer-only user starting a
    /// stream).
    Forbidden,
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl From<ipc::ErrorCode> for ErrorCode {
    /// The one mapping of the streamer's codes to what the browser is told.
    fn from(code: ipc::ErrorCode) -> Self {
        use ipc::ErrorCode as I;
        match code {
            I::BadInit => ErrorCode::BadInit,
            I::HostUnreachable => ErrorCode::HostUnreachable,
            I::HostNotPaired => ErrorCode::HostNotPaired,
            I::AppNotFound => ErrorCode::AppNotFound,
            I::NoIcePort => ErrorCode::NoIcePort,
            I::BadSignal => ErrorCode::BadSignal,
            I::AlreadyStreaming => ErrorCode::AlreadyStreaming,
            I::LaunchFailed => ErrorCode::LaunchFailed,
            I::StreamSetupFailed => ErrorCode::StreamSetupFailed,
            I::UnsupportedCodec => ErrorCode::UnsupportedCodec,
            I::ConnectionLost => ErrorCode::ConnectionLost,
            I::Internal | I::Other => ErrorCode::InternalServerError,
        }
    }
}

/// An error for the browser: the code, and the text shown to the user (which starts with the
/// code's name unless built with [`BrowserError::with_text`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrowserError {
    /// What clients decide on.
    pub code: ErrorCode,
    /// What users read (and what the Helix viewer matches).
    pub text: String,
}

impl BrowserError {
    /// `"<Code>: <detail>"`.
    pub fn new(code: ErrorCode, detail: impl fmt::Display) -> Self {
        BrowserError {
            code,
            text: format!("{code}: {detail}"),
        }
    }

    /// A text that does not start with the code (the stop reasons keep their historic texts,
    /// `"superseded"`, that deployed clients match).
    pub fn with_text(code: ErrorCode, text: impl Into<String>) -> Self {
        BrowserError {
            code,
            text: text.into(),
        }
    }

    /// `{"error":"<text>","code":"<Code>"}`.
    pub fn to_json(&self) -> String {
        super::error_json(self.code, &self.text)
    }
}

impl fmt::Display for BrowserError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl From<&ipc::StreamerError> for BrowserError {
    fn from(e: &ipc::StreamerError) -> Self {
        BrowserError::new(e.code.into(), &e.message)
    }
}
