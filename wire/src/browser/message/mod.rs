//! The binary WebSocket messages (contract §2): one message per WebSocket binary frame, byte 0 is
//! the type, no length field, big-endian integers.
//!
//! Decoding borrows from the received frame ([`Message<'a>`]), so a video payload or a JSON body is
//! never copied. Too-short messages and unknown types/subtypes are typed errors ([`DecodeError`]);
//! trailing bytes beyond a fixed layout are ignored, as the contract asks (§2.1: HEAD grew the Pong
//! that way). Encoding writes into any [`bytes::BufMut`]; the media helpers
//! ([`encode_video_header`], [`video_frame_message`]) are one header write plus one payload copy.
//!
//! By family: `media` (server → client media, StreamInit, Ping/Pong), `input` (client → server
//! input), with the byte layouts in `decode` and `encode`.

use thiserror::Error;

use super::opus::OpusLayoutError;

mod decode;
mod encode;
mod input;
mod media;

pub use input::*;
pub use media::*;

/// Message type bytes (contract §2.1 registry).
pub mod msg_type {
    /// VideoFrame, S→C.
    pub const VIDEO_FRAME: u8 = 0x01;
    /// AudioFrame, S→C.
    pub const AUDIO_FRAME: u8 = 0x02;
    /// VideoBatch, S→C (optional).
    pub const VIDEO_BATCH: u8 = 0x03;
    /// KeyboardInput, C→S.
    pub const KEYBOARD_INPUT: u8 = 0x10;
    /// MouseClick (buttons and wheel), C→S.
    pub const MOUSE_CLICK: u8 = 0x11;
    /// MouseAbsolute, C→S.
    pub const MOUSE_ABSOLUTE: u8 = 0x12;
    /// MouseRelative, C→S.
    pub const MOUSE_RELATIVE: u8 = 0x13;
    /// Touch, C→S (moongate layout; reserved in the Helix core).
    pub const TOUCH: u8 = 0x14;
    /// ControllerEvent, both directions (moongate layout; reserved in the Helix core).
    pub const CONTROLLER_EVENT: u8 = 0x15;
    /// ControllerState, C→S (moongate layout; reserved in the Helix core).
    pub const CONTROLLER_STATE: u8 = 0x16;
    /// MicOpus, C→S (moongate): one Opus packet of the browser's microphone. Not 0x17, which
    /// Helix used for a week in January 2026 for raw PCM (contract §2.11).
    pub const MIC_OPUS: u8 = 0x18;
    /// ControlMessage (JSON body), both directions.
    pub const CONTROL_MESSAGE: u8 = 0x20;
    /// StreamInit, S→C.
    pub const STREAM_INIT: u8 = 0x30;
    /// StreamError, S→C (Helix extra).
    pub const STREAM_ERROR: u8 = 0x31;
    /// Ping, C→S.
    pub const PING: u8 = 0x40;
    /// Pong, S→C.
    pub const PONG: u8 = 0x41;

    /// True for the client messages the web-server forwards to the streamer as IPC `Input`
    /// (input 0x10–0x16, the microphone 0x18 and ControlMessage 0x20). Ping is answered by the
    /// web-server itself.
    pub fn is_forwarded_input(ty: u8) -> bool {
        matches!(
            ty,
            KEYBOARD_INPUT..=CONTROLLER_STATE | MIC_OPUS | CONTROL_MESSAGE
        )
    }
}

/// Size of the VideoFrame header (type, codec, flags, pts, width, height).
pub const VIDEO_HEADER_LEN: usize = 15;
/// Size of the AudioFrame header (type, channels, pts).
pub const AUDIO_HEADER_LEN: usize = 10;
/// Size of StreamInit.
pub const STREAM_INIT_LEN: usize = 13;
/// Size of Ping.
pub const PING_LEN: usize = 13;
/// Minimum size of Pong (the client drops shorter ones).
pub const PONG_LEN: usize = 21;
/// Size of the moongate Touch message.
pub const TOUCH_LEN: usize = 28;
/// Size of the moongate ControllerState message.
pub const CONTROLLER_STATE_LEN: usize = 18;

/// VideoFrame flag: keyframe (IDR / random-access point, parameter sets in-band).
pub const FLAG_KEYFRAME: u8 = 0x01;

/// Moonlight touch event types (`LI_TOUCH_EVENT_*`), used by the moongate Touch layout.
pub use gamestream::input::touch_event;

/// Why a binary message could not be decoded. The reader should log it and drop the message; none
/// of these is a reason to close the socket on its own.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DecodeError {
    /// A zero-length binary message (the client ignores these; so may the gateway).
    #[error("empty binary message")]
    Empty,
    /// A type byte this crate does not know (Helix extras 0x17, 0x50… included).
    #[error("unknown message type 0x{0:02x}")]
    UnknownType(u8),
    /// Fewer bytes than the layout needs.
    #[error("{name} (0x{ty:02x}) needs {need} bytes, got {got}")]
    TooShort {
        /// Message type.
        ty: u8,
        /// Message name.
        name: &'static str,
        /// Bytes needed (so far).
        need: usize,
        /// Bytes present.
        got: usize,
    },
    /// A subtype this crate does not know; the contract says to ignore it.
    #[error("unknown subtype {subtype} of message type 0x{ty:02x}")]
    UnknownSubtype {
        /// Message type.
        ty: u8,
        /// Subtype byte.
        subtype: u8,
    },
    /// A MicOpus message whose packet is empty or longer than an Opus packet can be.
    #[error("MicOpus: an Opus packet of {0} bytes (1-1275)")]
    BadOpusPacket(usize),
    /// StreamInit names a codec byte no decoder is chosen for.
    #[error("StreamInit: unknown codec byte 0x{0:02x}")]
    UnknownCodec(u8),
    /// StreamInit's Opus layout cannot be decoded.
    #[error("StreamInit: {0}")]
    BadOpusLayout(#[from] OpusLayoutError),
    /// A text field that is not UTF-8.
    #[error("{0}: text is not valid UTF-8")]
    InvalidUtf8(&'static str),
    /// A float field that is NaN or infinite (touch coordinates must be real numbers).
    #[error("{0}: non-finite number")]
    NotFinite(&'static str),
    /// A VideoBatch entry whose length runs past the end of the message.
    #[error("VideoBatch entry {index} is truncated")]
    TruncatedBatchEntry {
        /// Zero-based entry index.
        index: usize,
    },
    /// A VideoBatch entry that is not itself a valid VideoFrame.
    #[error("VideoBatch entry {index} is not a valid VideoFrame")]
    BadBatchEntry {
        /// Zero-based entry index.
        index: usize,
    },
}

/// Why a message could not be encoded (a length that does not fit its field).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum EncodeError {
    /// A length field would overflow.
    #[error("{field} too long: {len} > {max}")]
    TooLong {
        /// Which field.
        field: &'static str,
        /// Actual length.
        len: usize,
        /// Largest encodable.
        max: usize,
    },
}

/// One binary message, borrowing from the frame it was decoded from.
#[derive(Debug, Clone, PartialEq)]
pub enum Message<'a> {
    /// 0x01.
    VideoFrame(VideoFrame<'a>),
    /// 0x02.
    AudioFrame(AudioFrame<'a>),
    /// 0x03.
    VideoBatch(Vec<VideoFrame<'a>>),
    /// 0x10.
    Keyboard(KeyboardInput<'a>),
    /// 0x11.
    MouseClick(MouseClick),
    /// 0x12.
    MouseAbsolute(MouseAbsolute),
    /// 0x13.
    MouseRelative(MouseRelative),
    /// 0x14.
    Touch(Touch),
    /// 0x15.
    Controller(ControllerEvent),
    /// 0x16.
    ControllerState(ControllerState),
    /// 0x18.
    MicOpus(MicOpus<'a>),
    /// 0x20: the JSON text (see [`super::ClientControl`] for the C→S values).
    Control(&'a str),
    /// 0x30.
    StreamInit(StreamInit),
    /// 0x31: the error text.
    StreamError(&'a str),
    /// 0x40.
    Ping(Ping),
    /// 0x41.
    Pong(Pong),
}
