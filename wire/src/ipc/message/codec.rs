//! The byte layouts of [`ToStreamer`] and [`FromStreamer`] (`docs/ipc.md`): binary for media and
//! fixed-size frames, JSON for the rare variable ones.

use super::super::frame::IpcMessage;
use super::*;
use bytes::{Buf, BufMut, BytesMut};
use serde::de::DeserializeOwned;

use crate::browser::{AUDIO_HEADER_LEN, VIDEO_HEADER_LEN};

/// A media frame must carry the browser message of its kind.
fn browser_type(name: &'static str, got: u8, want: u8) -> Result<(), IpcError> {
    if got == want {
        return Ok(());
    }
    Err(IpcError::Malformed {
        name,
        reason: format!("browser message type 0x{got:02x}, not 0x{want:02x}"),
    })
}

fn json_into<T: Serialize>(v: &T, dst: &mut BytesMut) -> Result<(), IpcError> {
    serde_json::to_writer(dst.writer(), v)?;
    Ok(())
}

fn json_from<T: DeserializeOwned>(name: &'static str, payload: &[u8]) -> Result<T, IpcError> {
    serde_json::from_slice(payload).map_err(|e| IpcError::malformed(name, e.to_string()))
}

fn expect_empty(name: &'static str, payload: &Bytes) -> Result<(), IpcError> {
    if payload.is_empty() {
        Ok(())
    } else {
        Err(IpcError::malformed(
            name,
            format!("{} unexpected payload bytes", payload.len()),
        ))
    }
}

fn need(name: &'static str, payload: &Bytes, n: usize) -> Result<(), IpcError> {
    if payload.len() < n {
        return Err(IpcError::malformed(
            name,
            format!("needs {n} bytes, got {}", payload.len()),
        ));
    }
    Ok(())
}

impl IpcMessage for ToStreamer {
    fn frame_type(&self) -> u8 {
        match self {
            ToStreamer::Init(_) => frame_type::INIT,
            ToStreamer::Input(_) => frame_type::INPUT,
            ToStreamer::RequestKeyframe => frame_type::REQUEST_KEYFRAME,
            ToStreamer::Stop => frame_type::STOP,
            ToStreamer::Signal(_) => frame_type::SIGNAL_IN,
            ToStreamer::LaunchTurn => frame_type::LAUNCH_TURN_GRANTED,
            ToStreamer::Restream(_) => frame_type::RESTREAM,
        }
    }

    fn write_payload(&self, dst: &mut BytesMut) -> Result<(), IpcError> {
        match self {
            ToStreamer::Init(init) => json_into(init, dst)?,
            ToStreamer::Input(bytes) => dst.put_slice(bytes),
            ToStreamer::RequestKeyframe | ToStreamer::Stop | ToStreamer::LaunchTurn => {}
            ToStreamer::Signal(s) => json_into(s, dst)?,
            ToStreamer::Restream(rung) => {
                // Never written out of bounds: the reader would refuse it and end the session.
                rung.check()
                    .map_err(|e| IpcError::malformed("Restream", e.to_string()))?;
                json_into(rung, dst)?
            }
        }
        Ok(())
    }

    fn from_frame(ty: u8, payload: Bytes) -> Result<Self, IpcError> {
        Ok(match ty {
            frame_type::INIT => ToStreamer::Init(Box::new(json_from("Init", &payload)?)),
            frame_type::INPUT => {
                if payload.is_empty() {
                    return Err(IpcError::malformed("Input", "empty"));
                }
                ToStreamer::Input(payload)
            }
            frame_type::REQUEST_KEYFRAME => {
                expect_empty("RequestKeyframe", &payload)?;
                ToStreamer::RequestKeyframe
            }
            frame_type::STOP => {
                expect_empty("Stop", &payload)?;
                ToStreamer::Stop
            }
            frame_type::SIGNAL_IN => ToStreamer::Signal(json_from("Signal", &payload)?),
            frame_type::LAUNCH_TURN_GRANTED => {
                expect_empty("LaunchTurn", &payload)?;
                ToStreamer::LaunchTurn
            }
            frame_type::RESTREAM => {
                let rung: Rung = json_from("Restream", &payload)?;
                rung.check()
                    .map_err(|e| IpcError::malformed("Restream", e.to_string()))?;
                ToStreamer::Restream(rung)
            }
            other => return Err(IpcError::UnknownType(other)),
        })
    }
}

impl IpcMessage for FromStreamer {
    fn frame_type(&self) -> u8 {
        match self {
            FromStreamer::Started(_) => frame_type::STARTED,
            FromStreamer::Video(_) => frame_type::VIDEO,
            FromStreamer::Audio(_) => frame_type::AUDIO,
            FromStreamer::Stats(_) => frame_type::STATS,
            FromStreamer::Log(_) => frame_type::LOG,
            FromStreamer::Error(_) => frame_type::ERROR,
            FromStreamer::Ended(_) => frame_type::ENDED,
            FromStreamer::Signal(_) => frame_type::SIGNAL_OUT,
            FromStreamer::Rumble(_) => frame_type::RUMBLE,
            FromStreamer::LaunchTurn(_) => frame_type::LAUNCH_TURN,
        }
    }

    fn write_payload(&self, dst: &mut BytesMut) -> Result<(), IpcError> {
        match self {
            // The browser's StreamInit message itself, layout and all.
            FromStreamer::Started(s) => {
                browser::Message::StreamInit(*s)
                    .encode_into(dst)
                    .map_err(|e| IpcError::Malformed {
                        name: "Started",
                        reason: e.to_string(),
                    })?
            }
            // The browser's own messages: written once here, forwarded as they are.
            FromStreamer::Video(v) => {
                dst.reserve(VIDEO_HEADER_LEN + v.data.len());
                dst.put_slice(&browser::encode_video_header(&v.frame()));
                dst.put_slice(&v.data);
            }
            FromStreamer::Audio(a) => {
                dst.reserve(AUDIO_HEADER_LEN + a.data.len());
                dst.put_slice(&browser::encode_audio_header(a.channels, a.pts_us));
                dst.put_slice(&a.data);
            }
            FromStreamer::Stats(s) => json_into(s, dst)?,
            FromStreamer::Log(l) => json_into(l, dst)?,
            FromStreamer::Error(e) => json_into(e, dst)?,
            FromStreamer::Ended(e) => json_into(e, dst)?,
            FromStreamer::Signal(s) => json_into(s, dst)?,
            FromStreamer::Rumble(r) => {
                dst.put_u8(r.controller);
                dst.put_u8(r.triggers as u8);
                dst.put_u16_le(r.low);
                dst.put_u16_le(r.high);
            }
            FromStreamer::LaunchTurn(t) => dst.put_u8(matches!(t, TurnRequest::Ask) as u8),
        }
        Ok(())
    }

    fn from_frame(ty: u8, mut payload: Bytes) -> Result<Self, IpcError> {
        Ok(match ty {
            frame_type::STARTED => {
                let malformed = |reason: String| IpcError::Malformed {
                    name: "Started",
                    reason,
                };
                match browser::Message::decode(&payload) {
                    Ok(browser::Message::StreamInit(s)) => FromStreamer::Started(s),
                    Ok(other) => {
                        return Err(malformed(format!("carries {other:?}, not a StreamInit")))
                    }
                    Err(e) => return Err(malformed(e.to_string())),
                }
            }
            frame_type::VIDEO => {
                need("Video", &payload, VIDEO_HEADER_LEN)?;
                let message = payload.clone();
                browser_type("Video", payload.get_u8(), browser::msg_type::VIDEO_FRAME)?;
                let codec = payload.get_u8();
                let flags = payload.get_u8();
                FromStreamer::Video(Video {
                    keyframe: flags & browser::FLAG_KEYFRAME != 0,
                    codec,
                    pts_us: payload.get_u64(),
                    width: payload.get_u16(),
                    height: payload.get_u16(),
                    data: payload,
                    message: Some(message),
                })
            }
            frame_type::AUDIO => {
                need("Audio", &payload, AUDIO_HEADER_LEN)?;
                let message = payload.clone();
                browser_type("Audio", payload.get_u8(), browser::msg_type::AUDIO_FRAME)?;
                FromStreamer::Audio(Audio {
                    channels: payload.get_u8(),
                    pts_us: payload.get_u64(),
                    data: payload,
                    message: Some(message),
                })
            }
            frame_type::STATS => FromStreamer::Stats(json_from("Stats", &payload)?),
            frame_type::LOG => FromStreamer::Log(json_from("Log", &payload)?),
            frame_type::ERROR => FromStreamer::Error(json_from("Error", &payload)?),
            frame_type::ENDED => FromStreamer::Ended(json_from("Ended", &payload)?),
            frame_type::SIGNAL_OUT => FromStreamer::Signal(json_from("Signal", &payload)?),
            frame_type::RUMBLE => {
                if payload.len() != RUMBLE_LEN {
                    return Err(IpcError::malformed(
                        "Rumble",
                        format!("needs {RUMBLE_LEN} bytes, got {}", payload.len()),
                    ));
                }
                FromStreamer::Rumble(Rumble {
                    controller: payload.get_u8(),
                    triggers: payload.get_u8() != 0,
                    low: payload.get_u16_le(),
                    high: payload.get_u16_le(),
                })
            }
            frame_type::LAUNCH_TURN => match payload.as_ref() {
                [1] => FromStreamer::LaunchTurn(TurnRequest::Ask),
                [0] => FromStreamer::LaunchTurn(TurnRequest::GiveBack),
                other => {
                    return Err(IpcError::malformed(
                        "LaunchTurn",
                        format!("needs one byte, 0 or 1, got {other:?}"),
                    ))
                }
            },
            other => return Err(IpcError::UnknownType(other)),
        })
    }
}
