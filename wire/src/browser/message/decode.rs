//! Decoding: a bounds-checked reader, one arm per type byte. Borrows from the frame.

use super::*;
use crate::browser::opus::OpusLayout;
use crate::browser::VideoCodec;

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
                let codec = r.u8()?;
                let mut init = StreamInit {
                    codec: VideoCodec::from_byte(codec).ok_or(DecodeError::UnknownCodec(codec))?,
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
            MIC_OPUS => {
                let mut r = Reader::new(buf, "MicOpus");
                let timestamp = r.u32()?;
                let data = r.rest();
                if data.is_empty() || data.len() > MAX_OPUS_PACKET {
                    return Err(DecodeError::BadOpusPacket(data.len()));
                }
                Message::MicOpus(MicOpus { timestamp, data })
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
