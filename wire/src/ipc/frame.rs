//! The IPC framing: `u32` little-endian payload length, `u8` type, payload.
//!
//! Length-delimited so that a stream of frames can be cut out of any sequence of partial reads;
//! the length is checked against the limit as soon as the 5-byte header is in, before any payload
//! is buffered, so a corrupt or hostile length cannot make the reader allocate.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use std::marker::PhantomData;
use thiserror::Error;
use tokio_util::codec::{Decoder, Encoder};

/// Header size: length (4) + type (1).
pub const HEADER_LEN: usize = 5;
/// Default payload limit, 16 MiB: several times the largest 4K keyframe at high bitrate.
pub const DEFAULT_MAX_PAYLOAD: usize = 16 * 1024 * 1024;

/// An IPC error. After [`IpcError::Oversize`] or [`IpcError::Truncated`] the byte stream cannot be
/// resynchronised and the channel must be closed; after [`IpcError::UnknownType`] or
/// [`IpcError::Malformed`] the bad frame has been consumed (a sans-IO caller could go on, but
/// `FramedRead` ends its stream after any error, and moongate treats all of them as fatal).
#[derive(Debug, Error)]
pub enum IpcError {
    /// A frame's declared (or encoded) payload is larger than the limit.
    #[error("IPC frame payload of {len} bytes exceeds the {max}-byte limit")]
    Oversize {
        /// Declared length.
        len: usize,
        /// Limit.
        max: usize,
    },
    /// A type byte this direction does not define.
    #[error("unknown IPC frame type 0x{0:02x}")]
    UnknownType(u8),
    /// A frame of a known type whose payload does not parse.
    #[error("malformed IPC {name} frame: {reason}")]
    Malformed {
        /// Frame name.
        name: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// The stream ended in the middle of a frame.
    #[error("IPC stream ended inside a frame ({0} bytes pending)")]
    Truncated(usize),
    /// A JSON payload could not be serialised (should not happen with these types).
    #[error("IPC JSON encoding failed: {0}")]
    Json(#[from] serde_json::Error),
    /// The underlying pipe or socket failed.
    #[error("IPC i/o error: {0}")]
    Io(#[from] std::io::Error),
    /// A frame was begun and then left unfinished for longer than the reader allows (a hung or
    /// corrupted peer: nothing decodes and nothing ends otherwise).
    #[error("IPC frame left unfinished for {secs} s ({pending} bytes pending)")]
    Stalled {
        /// Bytes of the unfinished frame received.
        pending: usize,
        /// The reader's limit, in seconds.
        secs: u64,
    },
}

impl IpcError {
    pub(crate) fn malformed(name: &'static str, reason: impl Into<String>) -> Self {
        IpcError::Malformed {
            name,
            reason: reason.into(),
        }
    }
}

/// A message set that travels in IPC frames (one implementation per direction).
pub trait IpcMessage: Sized {
    /// The frame type byte.
    fn frame_type(&self) -> u8;
    /// Appends the payload (without header) to `dst`.
    fn write_payload(&self, dst: &mut BytesMut) -> Result<(), IpcError>;
    /// Parses one frame's payload. `payload` is a zero-copy slice of the read buffer.
    fn from_frame(ty: u8, payload: Bytes) -> Result<Self, IpcError>;
}

/// Appends one frame holding `msg` to `dst`; on error `dst` is left as it was.
pub fn encode_frame<M: IpcMessage>(
    msg: &M,
    dst: &mut BytesMut,
    max_payload: usize,
) -> Result<(), IpcError> {
    let start = dst.len();
    dst.put_u32_le(0);
    dst.put_u8(msg.frame_type());
    let written = msg.write_payload(dst).and_then(|()| {
        let len = dst.len() - start - HEADER_LEN;
        if len > max_payload {
            return Err(IpcError::Oversize {
                len,
                max: max_payload,
            });
        }
        Ok(len)
    });
    match written {
        Ok(len) => {
            dst[start..start + 4].copy_from_slice(&(len as u32).to_le_bytes());
            Ok(())
        }
        Err(e) => {
            dst.truncate(start);
            Err(e)
        }
    }
}

/// Cuts one frame off the front of `src` if a whole one is there. `Ok(None)` = need more bytes.
pub fn decode_frame<M: IpcMessage>(
    src: &mut BytesMut,
    max_payload: usize,
) -> Result<Option<M>, IpcError> {
    if src.len() < HEADER_LEN {
        return Ok(None);
    }
    let mut len_bytes = [0u8; 4];
    len_bytes.copy_from_slice(&src[..4]);
    let len = u32::from_le_bytes(len_bytes) as usize;
    if len > max_payload {
        return Err(IpcError::Oversize {
            len,
            max: max_payload,
        });
    }
    if src.len() < HEADER_LEN + len {
        src.reserve(HEADER_LEN + len - src.len());
        return Ok(None);
    }
    let ty = src[4];
    src.advance(HEADER_LEN);
    let payload = src.split_to(len).freeze();
    M::from_frame(ty, payload).map(Some)
}

/// The `tokio_util` codec: decodes `In`, encodes `Out`. Use [`ServerCodec`] in the web-server and
/// [`StreamerCodec`] in the streamer.
///
/// [`ServerCodec`]: super::ServerCodec
/// [`StreamerCodec`]: super::StreamerCodec
#[derive(Debug)]
pub struct IpcCodec<In, Out> {
    max_payload: usize,
    _types: PhantomData<fn(Out) -> In>,
}

impl<In, Out> IpcCodec<In, Out> {
    /// A codec with the [`DEFAULT_MAX_PAYLOAD`] limit.
    pub fn new() -> Self {
        Self::with_max_payload(DEFAULT_MAX_PAYLOAD)
    }

    /// A codec with a custom payload limit (both directions).
    pub fn with_max_payload(max_payload: usize) -> Self {
        IpcCodec {
            max_payload: max_payload.min(u32::MAX as usize),
            _types: PhantomData,
        }
    }

    /// The payload limit.
    pub fn max_payload(&self) -> usize {
        self.max_payload
    }
}

impl<In, Out> Default for IpcCodec<In, Out> {
    fn default() -> Self {
        Self::new()
    }
}

impl<In, Out> Clone for IpcCodec<In, Out> {
    fn clone(&self) -> Self {
        Self::with_max_payload(self.max_payload)
    }
}

impl<In: IpcMessage, Out> Decoder for IpcCodec<In, Out> {
    type Item = In;
    type Error = IpcError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<In>, IpcError> {
        decode_frame(src, self.max_payload)
    }

    fn decode_eof(&mut self, src: &mut BytesMut) -> Result<Option<In>, IpcError> {
        match self.decode(src)? {
            Some(frame) => Ok(Some(frame)),
            None if src.is_empty() => Ok(None),
            None => Err(IpcError::Truncated(src.len())),
        }
    }
}

impl<In, Out: IpcMessage> Encoder<Out> for IpcCodec<In, Out> {
    type Error = IpcError;

    fn encode(&mut self, item: Out, dst: &mut BytesMut) -> Result<(), IpcError> {
        encode_frame(&item, dst, self.max_payload)
    }
}
