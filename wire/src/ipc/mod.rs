//! IPC between the web-server and one streamer process (`docs/ipc.md`).
//!
//! Framing: `u32` LE payload length, `u8` type, payload; payload ≤ 16 MiB by default. The channel
//! is the child's stdin (server → streamer) and stdout (streamer → server), or a Unix socket pair;
//! either way both ends wrap it in `FramedRead`/`FramedWrite` with the codec for their side:
//!
//! ```no_run
//! # async fn demo() -> Result<(), wire::ipc::IpcError> {
//! use futures_util::{SinkExt, StreamExt};
//! use tokio_util::codec::{FramedRead, FramedWrite};
//! use wire::ipc::{EndReason, Ended, FromStreamer, StreamerCodec, ToStreamer};
//!
//! // In the streamer: stdin carries ToStreamer, stdout carries FromStreamer.
//! let mut rx = FramedRead::new(tokio::io::stdin(), StreamerCodec::new());
//! let mut tx = FramedWrite::new(tokio::io::stdout(), StreamerCodec::new());
//! while let Some(msg) = rx.next().await {
//!     match msg? {
//!         ToStreamer::Stop => break,
//!         other => { let _ = other; }
//!     }
//! }
//! tx.send(FromStreamer::Ended(Ended { reason: EndReason::Stopped, message: None })).await?;
//! # Ok(())
//! # }
//! ```
//!
//! * web-server: [`ServerCodec`] decodes [`FromStreamer`], encodes [`ToStreamer`];
//! * streamer: [`StreamerCodec`] decodes [`ToStreamer`], encodes [`FromStreamer`].
//!
//! Lifecycle: the server's first frame is `Init`; the streamer answers `Started` once the host
//! stream is up (again if the codec or size changes), then media. `Stop`, or EOF on the
//! streamer's input, ends the session: the streamer sends `Ended` and exits. An `Error` is always
//! followed by `Ended`.

mod frame;
mod message;

pub use frame::{
    decode_frame, encode_frame, IpcCodec, IpcError, IpcMessage, DEFAULT_MAX_PAYLOAD, HEADER_LEN,
};
pub use message::*;

/// The web-server's codec: reads [`FromStreamer`], writes [`ToStreamer`].
pub type ServerCodec = IpcCodec<FromStreamer, ToStreamer>;
/// The streamer's codec: reads [`ToStreamer`], writes [`FromStreamer`].
pub type StreamerCodec = IpcCodec<ToStreamer, FromStreamer>;

#[cfg(test)]
mod tests;
