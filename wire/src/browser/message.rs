//! The binary WebSocket messages (contract §2): one message per WebSocket binary frame, byte 0 is
//! the type, no length field, big-endian integers.
//!
//! Decoding borrows from the received frame ([`Message<'a>`]), so a video payload or a JSON body is
//! never copied. Too-short messages and unknown types/subtypes are typed errors ([`DecodeError`]);
//! trailing bytes beyond a fixed layout are ignored, as the contract asks (§2.1: HEAD grew the Pong
//! that way). Encoding writes into any [`BufMut`]; the media helpers
//! ([`encode_video_header`], [`video_frame_message`]) are one header write plus one payload copy.

use bytes::BufMut;
use thiserror::Error;

use super::opus::{OpusLayout, OpusLayoutError};

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
    /// (input 0x10–0x16 and ControlMessage 0x20). Ping is answered by the web-server itself.
    pub fn is_forwarded_input(ty: u8) -> bool {
        matches!(ty, KEYBOARD_INPUT..=CONTROLLER_STATE | CONTROL_MESSAGE)
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

/// VideoFrame 0x01: one complete access unit (§2.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VideoFrame<'a> {
    /// Codec byte ([`super::VideoCodec`]); informational for the client.
    pub codec: u8,
    /// Flag bit 0. Other flag bits are ignored on decode and written as 0.
    pub keyframe: bool,
    /// Presentation time, µs, real-time and monotonic within a connection.
    pub pts_us: u64,
    /// Coded width (informational).
    pub width: u16,
    /// Coded height (informational).
    pub height: u16,
    /// The access unit (Annex B for H.264/HEVC, a temporal unit for AV1).
    pub data: &'a [u8],
}

/// AudioFrame 0x02: one raw Opus packet (§2.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AudioFrame<'a> {
    /// Channel count (the client uses StreamInit's).
    pub channels: u8,
    /// Presentation time, µs.
    pub pts_us: u64,
    /// The Opus packet.
    pub data: &'a [u8],
}

/// KeyboardInput 0x10 (§2.6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyboardInput<'a> {
    /// Subtype 0: a key event (the only one the reference WS client sends).
    Key {
        /// Press (true) or release.
        is_down: bool,
        /// SHIFT 0x01, CTRL 0x02, ALT 0x04, META 0x08.
        modifiers: u8,
        /// Windows virtual-key code.
        key: u16,
    },
    /// Subtype 1: UTF-8 text, `len` (u8) then the bytes.
    Text(&'a str),
}

/// Keyboard modifier bits.
pub mod modifiers {
    /// Shift.
    pub const SHIFT: u8 = 0x01;
    /// Control.
    pub const CTRL: u8 = 0x02;
    /// Alt.
    pub const ALT: u8 = 0x04;
    /// Meta / Windows.
    pub const META: u8 = 0x08;
}

/// MouseClick 0x11: buttons and wheel (§2.7).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MouseClick {
    /// Subtype 2: button 1 left, 2 middle, 3 right, 4 X1, 5 X2.
    Button {
        /// Press or release.
        is_down: bool,
        /// Button number.
        button: u8,
    },
    /// Subtype 3, reference form (6 bytes): pixel wheel deltas, Y already negated (+ = up).
    /// (Helix HEAD's f32 little-endian variant of subtype 3 is not supported.)
    HighResWheel {
        /// Horizontal.
        dx: i16,
        /// Vertical.
        dy: i16,
    },
    /// Subtype 4 (the default scroll mode): deltas ÷ 10, Y negated.
    Wheel {
        /// Horizontal.
        dx: i8,
        /// Vertical.
        dy: i8,
    },
}

/// MouseAbsolute 0x12 (subtype 1): a position in a reference frame (Helix: 4096×4096) (§2.8).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MouseAbsolute {
    /// X.
    pub x: i16,
    /// Y.
    pub y: i16,
    /// Reference width.
    pub ref_width: i16,
    /// Reference height.
    pub ref_height: i16,
}

/// MouseRelative 0x13 (subtype 0): deltas in stream pixels (§2.9).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MouseRelative {
    /// X delta.
    pub dx: i16,
    /// Y delta.
    pub dy: i16,
}

/// Touch 0x14, **moongate layout** (28 bytes, big-endian; see `docs/browser-protocol.md`). It
/// carries what Moonlight's touch packet carries, so the streamer maps it field for field.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Touch {
    /// [`touch_event`] value.
    pub event: u8,
    /// Pointer id (the browser's `pointerId`).
    pub pointer_id: u32,
    /// 0..1 across the video.
    pub x: f32,
    /// 0..1 down the video.
    pub y: f32,
    /// Pressure 0..1 (down/move) or hover distance.
    pub pressure: f32,
    /// Normalised contact-area major axis, 0 = unknown.
    pub contact_major: f32,
    /// Normalised contact-area minor axis, 0 = unknown.
    pub contact_minor: f32,
    /// Degrees 0..359, 0xFFFF = unknown.
    pub rotation: u16,
}

/// ControllerEvent 0x15, **moongate layout** (see `docs/browser-protocol.md`).
///
/// Never send this to a client whose init lacks `protocol_version` ≥ 2: the reference Helix client
/// throws on it (contract §2.10).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ControllerEvent {
    /// Subtype 0, C→S: a gamepad appeared.
    Arrival {
        /// Controller number 0..15.
        id: u8,
        /// 0 unknown, 1 Xbox, 2 PlayStation, 3 Nintendo.
        controller_type: u8,
        /// Moonlight capability flags (`LI_CCAP_*`).
        capabilities: u16,
        /// Moonlight button flags the pad has.
        supported_buttons: u32,
    },
    /// Subtype 1, C→S: a gamepad went away.
    Removal {
        /// Controller number.
        id: u8,
    },
    /// Subtype 2, S→C: rumble motors, 0..65535.
    Rumble {
        /// Controller number.
        id: u8,
        /// Low-frequency motor.
        low: u16,
        /// High-frequency motor.
        high: u16,
    },
    /// Subtype 3, S→C: trigger rumble, 0..65535.
    TriggerRumble {
        /// Controller number.
        id: u8,
        /// Left trigger motor.
        left: u16,
        /// Right trigger motor.
        right: u16,
    },
}

/// ControllerState 0x16, **moongate layout** (18 bytes, big-endian): one gamepad's full state, in
/// Moonlight's conventions (button flags, triggers 0..255, sticks with Y positive = up).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ControllerState {
    /// Controller number 0..15.
    pub id: u8,
    /// Bit n set = controller n is present.
    pub active_mask: u16,
    /// Moonlight button flags (low 16 = `buttonFlags`, high 16 = `buttonFlags2`).
    pub buttons: u32,
    /// Left trigger.
    pub left_trigger: u8,
    /// Right trigger.
    pub right_trigger: u8,
    /// Left stick X.
    pub left_stick_x: i16,
    /// Left stick Y (positive = up).
    pub left_stick_y: i16,
    /// Right stick X.
    pub right_stick_x: i16,
    /// Right stick Y (positive = up).
    pub right_stick_y: i16,
}

/// StreamInit 0x30 (§2.13).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamInit {
    /// Codec byte ([`super::VideoCodec`]).
    pub codec: u8,
    /// Width in pixels.
    pub width: u16,
    /// Height in pixels.
    pub height: u16,
    /// Frames per second.
    pub fps: u8,
    /// 0 = no audio.
    pub audio_channels: u8,
    /// Hz; 0 = no audio.
    pub sample_rate: u32,
    /// Touch input is accepted.
    pub touch_supported: bool,
    /// moongate extension after the 13 core bytes: how the Opus packets split into streams, which
    /// a browser needs to decode 5.1 and 7.1 (the gateway leaves it out for Helix clients).
    pub opus: Option<OpusLayout>,
}

/// Ping 0x40 (§2.15).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ping {
    /// Sequence number.
    pub seq: u32,
    /// Opaque client time, µs.
    pub client_time_us: u64,
}

/// Pong 0x41 (§2.16, the 21-byte core form; longer HEAD forms decode with the extras ignored).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pong {
    /// Echoed sequence number.
    pub seq: u32,
    /// Echoed client time.
    pub client_time_us: u64,
    /// Server time, µs since the Unix epoch.
    pub server_time_us: u64,
}

impl Pong {
    /// The answer to `ping` at `server_time_us`.
    pub fn answer(ping: Ping, server_time_us: u64) -> Self {
        Pong {
            seq: ping.seq,
            client_time_us: ping.client_time_us,
            server_time_us,
        }
    }
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

/// A bounds-checked big-endian reader over one message.
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    ty: u8,
    name: &'static str,
}

impl<'a> Reader<'a> {
    fn new(buf: &'a [u8], name: &'static str) -> Self {
        Reader {
            buf,
            pos: 1,
            ty: buf.first().copied().unwrap_or(0),
            name,
        }
    }
    fn need(&self, n: usize) -> Result<(), DecodeError> {
        if self.buf.len() < self.pos + n {
            return Err(DecodeError::TooShort {
                ty: self.ty,
                name: self.name,
                need: self.pos + n,
                got: self.buf.len(),
            });
        }
        Ok(())
    }
    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        self.need(n)?;
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }
    fn array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }
    fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.array::<1>()?[0])
    }
    fn u16(&mut self) -> Result<u16, DecodeError> {
        Ok(u16::from_be_bytes(self.array()?))
    }
    fn i16(&mut self) -> Result<i16, DecodeError> {
        Ok(i16::from_be_bytes(self.array()?))
    }
    fn u32(&mut self) -> Result<u32, DecodeError> {
        Ok(u32::from_be_bytes(self.array()?))
    }
    fn u64(&mut self) -> Result<u64, DecodeError> {
        Ok(u64::from_be_bytes(self.array()?))
    }
    fn f32(&mut self) -> Result<f32, DecodeError> {
        Ok(f32::from_be_bytes(self.array()?))
    }
    fn rest(&mut self) -> &'a [u8] {
        let s = &self.buf[self.pos.min(self.buf.len())..];
        self.pos = self.buf.len();
        s
    }
    fn remaining(&self) -> usize {
        self.buf.len().saturating_sub(self.pos)
    }
}

fn utf8<'a>(bytes: &'a [u8], what: &'static str) -> Result<&'a str, DecodeError> {
    std::str::from_utf8(bytes).map_err(|_| DecodeError::InvalidUtf8(what))
}

impl<'a> Message<'a> {
    /// Decodes one binary WebSocket message.
    pub fn decode(buf: &'a [u8]) -> Result<Message<'a>, DecodeError> {
        let Some(&ty) = buf.first() else {
            return Err(DecodeError::Empty);
        };
        use msg_type::*;
        Ok(match ty {
            VIDEO_FRAME => Message::VideoFrame(decode_video(buf)?),
            AUDIO_FRAME => {
                let mut r = Reader::new(buf, "AudioFrame");
                let channels = r.u8()?;
                let pts_us = r.u64()?;
                Message::AudioFrame(AudioFrame {
                    channels,
                    pts_us,
                    data: r.rest(),
                })
            }
            VIDEO_BATCH => {
                let mut r = Reader::new(buf, "VideoBatch");
                let count = r.u16()? as usize;
                // Each entry is at least 4 + 15 bytes, which bounds the allocation.
                let mut frames = Vec::with_capacity(count.min(r.remaining() / 19));
                for index in 0..count {
                    let len = r
                        .u32()
                        .map_err(|_| DecodeError::TruncatedBatchEntry { index })?
                        as usize;
                    let entry = r
                        .take(len)
                        .map_err(|_| DecodeError::TruncatedBatchEntry { index })?;
                    let frame = (entry.first() == Some(&VIDEO_FRAME))
                        .then(|| decode_video(entry).ok())
                        .flatten()
                        .ok_or(DecodeError::BadBatchEntry { index })?;
                    frames.push(frame);
                }
                Message::VideoBatch(frames)
            }
            KEYBOARD_INPUT => {
                let mut r = Reader::new(buf, "KeyboardInput");
                match r.u8()? {
                    0 => {
                        let is_down = r.u8()? != 0;
                        let modifiers = r.u8()?;
                        let key = r.u16()?;
                        Message::Keyboard(KeyboardInput::Key {
                            is_down,
                            modifiers,
                            key,
                        })
                    }
                    1 => {
                        let len = r.u8()? as usize;
                        let text = utf8(r.take(len)?, "KeyboardInput text")?;
                        Message::Keyboard(KeyboardInput::Text(text))
                    }
                    subtype => return Err(DecodeError::UnknownSubtype { ty, subtype }),
                }
            }
            MOUSE_CLICK => {
                let mut r = Reader::new(buf, "MouseClick");
                Message::MouseClick(match r.u8()? {
                    2 => {
                        let is_down = r.u8()? != 0;
                        MouseClick::Button {
                            is_down,
                            button: r.u8()?,
                        }
                    }
                    3 => {
                        let dx = r.i16()?;
                        MouseClick::HighResWheel { dx, dy: r.i16()? }
                    }
                    4 => {
                        let dx = r.u8()? as i8;
                        MouseClick::Wheel {
                            dx,
                            dy: r.u8()? as i8,
                        }
                    }
                    subtype => return Err(DecodeError::UnknownSubtype { ty, subtype }),
                })
            }
            MOUSE_ABSOLUTE => {
                let mut r = Reader::new(buf, "MouseAbsolute");
                match r.u8()? {
                    1 => Message::MouseAbsolute(MouseAbsolute {
                        x: r.i16()?,
                        y: r.i16()?,
                        ref_width: r.i16()?,
                        ref_height: r.i16()?,
                    }),
                    subtype => return Err(DecodeError::UnknownSubtype { ty, subtype }),
                }
            }
            MOUSE_RELATIVE => {
                let mut r = Reader::new(buf, "MouseRelative");
                match r.u8()? {
                    0 => Message::MouseRelative(MouseRelative {
                        dx: r.i16()?,
                        dy: r.i16()?,
                    }),
                    subtype => return Err(DecodeError::UnknownSubtype { ty, subtype }),
                }
            }
            TOUCH => {
                let mut r = Reader::new(buf, "Touch");
                r.need(TOUCH_LEN - 1)?;
                let t = Touch {
                    event: r.u8()?,
                    pointer_id: r.u32()?,
                    x: r.f32()?,
                    y: r.f32()?,
                    pressure: r.f32()?,
                    contact_major: r.f32()?,
                    contact_minor: r.f32()?,
                    rotation: r.u16()?,
                };
                let floats = [t.x, t.y, t.pressure, t.contact_major, t.contact_minor];
                if !floats.iter().all(|f| f.is_finite()) {
                    return Err(DecodeError::NotFinite("Touch"));
                }
                Message::Touch(t)
            }
            CONTROLLER_EVENT => {
                let mut r = Reader::new(buf, "ControllerEvent");
                Message::Controller(match r.u8()? {
                    0 => ControllerEvent::Arrival {
                        id: r.u8()?,
                        controller_type: r.u8()?,
                        capabilities: r.u16()?,
                        supported_buttons: r.u32()?,
                    },
                    1 => ControllerEvent::Removal { id: r.u8()? },
                    2 => ControllerEvent::Rumble {
                        id: r.u8()?,
                        low: r.u16()?,
                        high: r.u16()?,
                    },
                    3 => ControllerEvent::TriggerRumble {
                        id: r.u8()?,
                        left: r.u16()?,
                        right: r.u16()?,
                    },
                    subtype => return Err(DecodeError::UnknownSubtype { ty, subtype }),
                })
            }
            CONTROLLER_STATE => {
                let mut r = Reader::new(buf, "ControllerState");
                r.need(CONTROLLER_STATE_LEN - 1)?;
                Message::ControllerState(ControllerState {
                    id: r.u8()?,
                    active_mask: r.u16()?,
                    buttons: r.u32()?,
                    left_trigger: r.u8()?,
                    right_trigger: r.u8()?,
                    left_stick_x: r.i16()?,
                    left_stick_y: r.i16()?,
                    right_stick_x: r.i16()?,
                    right_stick_y: r.i16()?,
                })
            }
            CONTROL_MESSAGE => Message::Control(utf8(&buf[1..], "ControlMessage")?),
            STREAM_INIT => {
                let mut r = Reader::new(buf, "StreamInit");
                r.need(STREAM_INIT_LEN - 1)?;
                let mut init = StreamInit {
                    codec: r.u8()?,
                    width: r.u16()?,
                    height: r.u16()?,
                    fps: r.u8()?,
                    audio_channels: r.u8()?,
                    sample_rate: r.u32()?,
                    touch_supported: r.u8()? != 0,
                    opus: None,
                };
                // A core (13-byte) StreamInit has no layout; stereo then needs none.
                if init.audio_channels > 0 {
                    init.opus = OpusLayout::read(init.audio_channels, r.rest()).transpose()?;
                }
                Message::StreamInit(init)
            }
            STREAM_ERROR => {
                let mut r = Reader::new(buf, "StreamError");
                let len = r.u16()? as usize;
                Message::StreamError(utf8(r.take(len)?, "StreamError")?)
            }
            PING => {
                let mut r = Reader::new(buf, "Ping");
                r.need(PING_LEN - 1)?;
                Message::Ping(Ping {
                    seq: r.u32()?,
                    client_time_us: r.u64()?,
                })
            }
            PONG => {
                let mut r = Reader::new(buf, "Pong");
                r.need(PONG_LEN - 1)?;
                Message::Pong(Pong {
                    seq: r.u32()?,
                    client_time_us: r.u64()?,
                    server_time_us: r.u64()?,
                })
            }
            other => return Err(DecodeError::UnknownType(other)),
        })
    }

    /// The type byte.
    pub fn msg_type(&self) -> u8 {
        use msg_type::*;
        match self {
            Message::VideoFrame(_) => VIDEO_FRAME,
            Message::AudioFrame(_) => AUDIO_FRAME,
            Message::VideoBatch(_) => VIDEO_BATCH,
            Message::Keyboard(_) => KEYBOARD_INPUT,
            Message::MouseClick(_) => MOUSE_CLICK,
            Message::MouseAbsolute(_) => MOUSE_ABSOLUTE,
            Message::MouseRelative(_) => MOUSE_RELATIVE,
            Message::Touch(_) => TOUCH,
            Message::Controller(_) => CONTROLLER_EVENT,
            Message::ControllerState(_) => CONTROLLER_STATE,
            Message::Control(_) => CONTROL_MESSAGE,
            Message::StreamInit(_) => STREAM_INIT,
            Message::StreamError(_) => STREAM_ERROR,
            Message::Ping(_) => PING,
            Message::Pong(_) => PONG,
        }
    }

    /// The encoded size in bytes.
    pub fn encoded_len(&self) -> usize {
        match self {
            Message::VideoFrame(v) => VIDEO_HEADER_LEN + v.data.len(),
            Message::AudioFrame(a) => AUDIO_HEADER_LEN + a.data.len(),
            Message::VideoBatch(frames) => {
                3 + frames
                    .iter()
                    .map(|f| 4 + VIDEO_HEADER_LEN + f.data.len())
                    .sum::<usize>()
            }
            Message::Keyboard(KeyboardInput::Key { .. }) => 6,
            Message::Keyboard(KeyboardInput::Text(t)) => 3 + t.len(),
            Message::MouseClick(MouseClick::HighResWheel { .. }) => 6,
            Message::MouseClick(_) => 4,
            Message::MouseAbsolute(_) => 10,
            Message::MouseRelative(_) => 6,
            Message::Touch(_) => TOUCH_LEN,
            Message::Controller(ControllerEvent::Arrival { .. }) => 10,
            Message::Controller(ControllerEvent::Removal { .. }) => 3,
            Message::Controller(_) => 7,
            Message::ControllerState(_) => CONTROLLER_STATE_LEN,
            Message::Control(j) => 1 + j.len(),
            Message::StreamInit(s) => STREAM_INIT_LEN + s.opus.map_or(0, |o| o.encoded_len()),
            Message::StreamError(t) => 3 + t.len(),
            Message::Ping(_) => PING_LEN,
            Message::Pong(_) => PONG_LEN,
        }
    }

    /// Appends the encoded message to `out`.
    pub fn encode_into<B: BufMut>(&self, out: &mut B) -> Result<(), EncodeError> {
        // Check every length field before writing anything, so a failure leaves `out` untouched.
        match self {
            Message::VideoBatch(frames) => {
                check_len("VideoBatch count", frames.len(), u16::MAX as usize)?;
                for f in frames {
                    check_len(
                        "VideoBatch entry",
                        VIDEO_HEADER_LEN + f.data.len(),
                        u32::MAX as usize,
                    )?;
                }
            }
            Message::Keyboard(KeyboardInput::Text(t)) => {
                check_len("KeyboardInput text", t.len(), u8::MAX as usize)?
            }
            Message::StreamError(t) => check_len("StreamError text", t.len(), u16::MAX as usize)?,
            _ => {}
        }
        out.put_u8(self.msg_type());
        match self {
            Message::VideoFrame(v) => {
                out.put_slice(&encode_video_header(v)[1..]);
                out.put_slice(v.data);
            }
            Message::AudioFrame(a) => {
                out.put_slice(&encode_audio_header(a.channels, a.pts_us)[1..]);
                out.put_slice(a.data);
            }
            Message::VideoBatch(frames) => {
                out.put_u16(frames.len() as u16);
                for f in frames {
                    out.put_u32((VIDEO_HEADER_LEN + f.data.len()) as u32);
                    out.put_slice(&encode_video_header(f));
                    out.put_slice(f.data);
                }
            }
            Message::Keyboard(KeyboardInput::Key {
                is_down,
                modifiers,
                key,
            }) => {
                out.put_u8(0);
                out.put_u8(*is_down as u8);
                out.put_u8(*modifiers);
                out.put_u16(*key);
            }
            Message::Keyboard(KeyboardInput::Text(t)) => {
                out.put_u8(1);
                out.put_u8(t.len() as u8);
                out.put_slice(t.as_bytes());
            }
            Message::MouseClick(c) => match *c {
                MouseClick::Button { is_down, button } => {
                    out.put_u8(2);
                    out.put_u8(is_down as u8);
                    out.put_u8(button);
                }
                MouseClick::HighResWheel { dx, dy } => {
                    out.put_u8(3);
                    out.put_i16(dx);
                    out.put_i16(dy);
                }
                MouseClick::Wheel { dx, dy } => {
                    out.put_u8(4);
                    out.put_i8(dx);
                    out.put_i8(dy);
                }
            },
            Message::MouseAbsolute(m) => {
                out.put_u8(1);
                out.put_i16(m.x);
                out.put_i16(m.y);
                out.put_i16(m.ref_width);
                out.put_i16(m.ref_height);
            }
            Message::MouseRelative(m) => {
                out.put_u8(0);
                out.put_i16(m.dx);
                out.put_i16(m.dy);
            }
            Message::Touch(t) => {
                out.put_u8(t.event);
                out.put_u32(t.pointer_id);
                out.put_f32(t.x);
                out.put_f32(t.y);
                out.put_f32(t.pressure);
                out.put_f32(t.contact_major);
                out.put_f32(t.contact_minor);
                out.put_u16(t.rotation);
            }
            Message::Controller(e) => match *e {
                ControllerEvent::Arrival {
                    id,
                    controller_type,
                    capabilities,
                    supported_buttons,
                } => {
                    out.put_u8(0);
                    out.put_u8(id);
                    out.put_u8(controller_type);
                    out.put_u16(capabilities);
                    out.put_u32(supported_buttons);
                }
                ControllerEvent::Removal { id } => {
                    out.put_u8(1);
                    out.put_u8(id);
                }
                ControllerEvent::Rumble { id, low, high } => {
                    out.put_u8(2);
                    out.put_u8(id);
                    out.put_u16(low);
                    out.put_u16(high);
                }
                ControllerEvent::TriggerRumble { id, left, right } => {
                    out.put_u8(3);
                    out.put_u8(id);
                    out.put_u16(left);
                    out.put_u16(right);
                }
            },
            Message::ControllerState(s) => {
                out.put_u8(s.id);
                out.put_u16(s.active_mask);
                out.put_u32(s.buttons);
                out.put_u8(s.left_trigger);
                out.put_u8(s.right_trigger);
                out.put_i16(s.left_stick_x);
                out.put_i16(s.left_stick_y);
                out.put_i16(s.right_stick_x);
                out.put_i16(s.right_stick_y);
            }
            Message::Control(j) => out.put_slice(j.as_bytes()),
            Message::StreamInit(s) => {
                out.put_u8(s.codec);
                out.put_u16(s.width);
                out.put_u16(s.height);
                out.put_u8(s.fps);
                out.put_u8(s.audio_channels);
                out.put_u32(s.sample_rate);
                out.put_u8(s.touch_supported as u8);
                if let Some(o) = &s.opus {
                    o.write(out);
                }
            }
            Message::StreamError(t) => {
                out.put_u16(t.len() as u16);
                out.put_slice(t.as_bytes());
            }
            Message::Ping(p) => {
                out.put_u32(p.seq);
                out.put_u64(p.client_time_us);
            }
            Message::Pong(p) => {
                out.put_u32(p.seq);
                out.put_u64(p.client_time_us);
                out.put_u64(p.server_time_us);
            }
        }
        Ok(())
    }

    /// The encoded message in a new, exactly sized `Vec`.
    pub fn to_vec(&self) -> Result<Vec<u8>, EncodeError> {
        let mut v = Vec::with_capacity(self.encoded_len());
        self.encode_into(&mut v)?;
        Ok(v)
    }
}

fn check_len(field: &'static str, len: usize, max: usize) -> Result<(), EncodeError> {
    if len > max {
        return Err(EncodeError::TooLong { field, len, max });
    }
    Ok(())
}

fn decode_video(buf: &[u8]) -> Result<VideoFrame<'_>, DecodeError> {
    let mut r = Reader::new(buf, "VideoFrame");
    r.need(VIDEO_HEADER_LEN - 1)?;
    let codec = r.u8()?;
    let flags = r.u8()?;
    Ok(VideoFrame {
        codec,
        keyframe: flags & FLAG_KEYFRAME != 0,
        pts_us: r.u64()?,
        width: r.u16()?,
        height: r.u16()?,
        data: r.rest(),
    })
}

/// The 15-byte VideoFrame header (type byte included) for `frame`; `frame.data` is not read.
/// Send it followed by the payload, or use [`video_frame_message`].
pub fn encode_video_header(frame: &VideoFrame<'_>) -> [u8; VIDEO_HEADER_LEN] {
    let mut h = [0u8; VIDEO_HEADER_LEN];
    h[0] = msg_type::VIDEO_FRAME;
    h[1] = frame.codec;
    h[2] = if frame.keyframe { FLAG_KEYFRAME } else { 0 };
    h[3..11].copy_from_slice(&frame.pts_us.to_be_bytes());
    h[11..13].copy_from_slice(&frame.width.to_be_bytes());
    h[13..15].copy_from_slice(&frame.height.to_be_bytes());
    h
}

/// The 10-byte AudioFrame header (type byte included).
pub fn encode_audio_header(channels: u8, pts_us: u64) -> [u8; AUDIO_HEADER_LEN] {
    let mut h = [0u8; AUDIO_HEADER_LEN];
    h[0] = msg_type::AUDIO_FRAME;
    h[1] = channels;
    h[2..10].copy_from_slice(&pts_us.to_be_bytes());
    h
}

/// A complete VideoFrame message in one exactly sized allocation: header, then one copy of the
/// payload. This is the only copy the media path needs between the IPC frame and the WebSocket.
pub fn video_frame_message(frame: &VideoFrame<'_>) -> Vec<u8> {
    let mut v = Vec::with_capacity(VIDEO_HEADER_LEN + frame.data.len());
    v.extend_from_slice(&encode_video_header(frame));
    v.extend_from_slice(frame.data);
    v
}

/// A complete AudioFrame message in one exactly sized allocation.
pub fn audio_frame_message(channels: u8, pts_us: u64, opus: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(AUDIO_HEADER_LEN + opus.len());
    v.extend_from_slice(&encode_audio_header(channels, pts_us));
    v.extend_from_slice(opus);
    v
}
