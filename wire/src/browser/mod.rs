//! The browser WebSocket-only protocol, Helix-compatible (`../shared/docs/helix-ws-contract.md`
//! §1.4, §1.7, §2), with moongate's additions. `docs/browser-protocol.md` is the reference for
//! client authors.
//!
//! * [`Init`]: the client's first text frame; binary messages before it are skipped by the server.
//! * [`Message`]: every binary message, encode and decode.
//! * [`ServerJson`], [`connection_complete_json`], [`error_json`], [`ClientControl`]: the JSON.
//! * [`VideoCodec`], [`formats`]: codec bytes and capability bits.
//! * [`OpusLayout`]: the multistream layout that surround audio needs (a StreamInit extension).
//! * [`CloseCode`]: close codes and their meaning.
//! * [`ErrorCode`], [`BrowserError`]: why a stream failed, typed, next to the text shown.
//! * [`signaling`]: the WebRTC-mode JSON of `/api/host/stream` (§1.5, §3).

mod codec;
mod error;
mod json;
mod message;
mod opus;
pub mod signaling;

pub use codec::{formats, VideoCodec};
pub use error::{BrowserError, ErrorCode};
pub use json::*;
pub use message::*;
pub use opus::{OpusLayout, OpusLayoutError, MAX_CHANNELS as MAX_AUDIO_CHANNELS};

#[cfg(test)]
mod tests;
