//! Encoding: lengths are checked before anything is written, so a failure leaves the buffer
//! untouched.

use bytes::BufMut;

use super::*;

impl Message<'_> {
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
            Message::MicOpus(_) => MIC_OPUS,
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
            Message::MicOpus(m) => 5 + m.data.len(),
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
            Message::MicOpus(m) => check_len("MicOpus packet", m.data.len(), MAX_OPUS_PACKET)?,
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
                out.put_u8(s.codec.to_byte());
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
            Message::MicOpus(m) => {
                out.put_u32(m.timestamp);
                out.put_slice(m.data);
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
