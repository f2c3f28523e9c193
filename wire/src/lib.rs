//! moongate's wire formats, defined once for every process that speaks them.
//!
//! * [`browser`]: the WebSocket-only browser protocol, byte-compatible with the Helix frontend's
//!   `WebSocketStream` (JSON `init`, big-endian binary messages, JSON control), plus moongate's
//!   documented additions (touch and gamepad layouts, `protocol_version`, `lobby_id`).
//!   Reference: `docs/browser-protocol.md`.
//! * [`ipc`]: the length-delimited binary frames between the web-server and each streamer process,
//!   with a [`tokio_util::codec`] codec so both ends get `FramedRead`/`FramedWrite`.
//!   Reference: `docs/ipc.md`.
//! * [`backpressure`]: the time-budgeted send-queue policy of one browser connection.
//!
//! Everything here is sans-IO: bytes in, typed values out, typed errors, never a panic on input.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod backpressure;
pub mod browser;
pub mod ipc;
mod secret;

pub use secret::Secret;
