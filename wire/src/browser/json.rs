//! The JSON half of the browser protocol: the client's `init` text frame (contract §1.4), the
//! server's ConnectionComplete and `{"error": …}` (§1.4, §2.12), and ControlMessage bodies.

use super::ErrorCode;
use crate::Secret;
use serde::{Deserialize, Serialize};
use thiserror::Error;

/// `protocol_version` of a client that does not send one: the Helix-compatible core.
pub const PROTOCOL_HELIX: u32 = 1;
/// `protocol_version` of the moongate web client: the core plus moongate's Touch 0x14,
/// ControllerEvent 0x15 (both directions) and ControllerState 0x16 layouts.
pub const PROTOCOL_MOONGATE: u32 = 2;

/// The error token that makes the Helix viewer retry instead of failing (§4.4).
pub const ALREADY_STREAMING: &str = "AlreadyStreaming";

/// Bounds [`Init::validate`] enforces. Width and height must fit StreamInit's u16, fps its u8.
pub const MAX_DIMENSION: u32 = 8192;

/// Longest accepted `session_id`, `client_unique_id` or `lobby_id`, in bytes. They end up in
/// registry keys, log lines and Moonlight URLs, so they are bounded.
pub const MAX_ID_LEN: usize = 256;

/// The client's first text frame, `{"type":"init", …}`. Unknown fields are ignored.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Init {
    /// Always `"init"`; [`Init::parse`] rejects anything else.
    #[serde(rename = "type")]
    pub kind: String,
    /// Index of the Moonlight host in the gateway's host list (Helix sends 0).
    pub host_id: u32,
    /// Moonlight app id.
    pub app_id: u32,
    /// Session id; the same value as the query `session_id`. May be absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
    /// Requested width, pixels.
    #[serde(deserialize_with = "lenient_u32")]
    pub width: u32,
    /// Requested height, pixels.
    #[serde(deserialize_with = "lenient_u32")]
    pub height: u32,
    /// Requested frame rate.
    #[serde(deserialize_with = "lenient_u32")]
    pub fps: u32,
    /// Requested bitrate, **kbit/s**.
    #[serde(deserialize_with = "lenient_u32")]
    pub bitrate: u32,
    /// Moonlight packet size (Helix: 1024).
    #[serde(deserialize_with = "lenient_u32")]
    pub packet_size: u32,
    /// `true` = play audio on the host and do not stream it.
    pub play_audio_local: bool,
    /// moongate: audio channels to stream, 2 (stereo), 6 (5.1) or 8 (7.1); absent = stereo.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audio_channels: Option<u32>,
    /// `SupportedVideoFormats` bitmask of what the browser can decode ([`super::formats`]).
    pub video_supported_formats: u32,
    /// Moonlight client identity toward the host (`uniqueid`); fresh per connect in Helix.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_unique_id: Option<String>,
    /// moongate: protocol version; absent = [`PROTOCOL_HELIX`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol_version: Option<u32>,
    /// moongate: the Wolf lobby to join, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lobby_id: Option<String>,
    /// moongate: credentials for a client that cannot set an `Authorization` header. Secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials: Option<Secret>,
    /// moongate: let the gateway lower (and raise again) the size and bitrate to what the link
    /// carries (docs/adaptive-quality.md); absent = off, the Helix behaviour.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub adaptive: Option<bool>,
}

/// Reads a u32 that JavaScript may have produced from a computation: a whole number, or a finite
/// non-negative number with a fraction (rounded). Anything else is an error.
fn lenient_u32<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    let n = serde_json::Number::deserialize(d)?;
    if let Some(u) = n.as_u64() {
        return u32::try_from(u).map_err(|_| serde::de::Error::custom("number out of range"));
    }
    match n.as_f64() {
        Some(f) if f.is_finite() && (0.0..=u32::MAX as f64).contains(&f) => Ok(f.round() as u32),
        _ => Err(serde::de::Error::custom("expected a non-negative number")),
    }
}

impl std::fmt::Debug for Init {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Init")
            .field("host_id", &self.host_id)
            .field("app_id", &self.app_id)
            .field("session_id", &self.session_id)
            .field("width", &self.width)
            .field("height", &self.height)
            .field("fps", &self.fps)
            .field("bitrate", &self.bitrate)
            .field("packet_size", &self.packet_size)
            .field("play_audio_local", &self.play_audio_local)
            .field("audio_channels", &self.audio_channels)
            .field("video_supported_formats", &self.video_supported_formats)
            .field("client_unique_id", &self.client_unique_id)
            .field("protocol_version", &self.protocol_version)
            .field("lobby_id", &self.lobby_id)
            .field("credentials", &self.credentials)
            .finish()
    }
}

/// Why an `init` text frame was refused.
#[derive(Debug, Error)]
pub enum InitError {
    /// Not JSON, or a required field is missing or of the wrong type.
    #[error("invalid init message: {0}")]
    Json(#[from] serde_json::Error),
    /// `type` is not `"init"`.
    #[error("expected type \"init\", got {0:?}")]
    NotInit(String),
    /// An id string is too long, or holds control characters.
    #[error("init field {field} is not an acceptable id")]
    BadId {
        /// Field name.
        field: &'static str,
    },
    /// A field is out of range.
    #[error("init field {field} out of range: {value}")]
    OutOfRange {
        /// Field name.
        field: &'static str,
        /// Value received.
        value: u32,
    },
}

impl Init {
    /// Parses and checks the `type`. Call [`Init::validate`] for the ranges.
    pub fn parse(text: &str) -> Result<Init, InitError> {
        let init: Init = serde_json::from_str(text)?;
        if init.kind != "init" {
            return Err(InitError::NotInit(init.kind));
        }
        Ok(init)
    }

    /// Checks the numeric fields against what StreamInit and Moonlight can carry: width and
    /// height 1..=[`MAX_DIMENSION`], fps 1..=255, bitrate and packet size non-zero; and the id
    /// strings: at most [`MAX_ID_LEN`] bytes, no control characters; audio channels 2, 6 or 8.
    pub fn validate(&self) -> Result<(), InitError> {
        if let Some(n) = self.audio_channels {
            if !matches!(n, 2 | 6 | 8) {
                return Err(InitError::OutOfRange {
                    field: "audio_channels (2, 6 or 8)",
                    value: n,
                });
            }
        }
        let ids = [
            ("session_id", &self.session_id),
            ("client_unique_id", &self.client_unique_id),
            ("lobby_id", &self.lobby_id),
        ];
        for (field, value) in ids {
            if let Some(v) = value {
                if v.len() > MAX_ID_LEN || v.chars().any(char::is_control) {
                    return Err(InitError::BadId { field });
                }
            }
        }
        let checks = [
            ("width", self.width, 1, MAX_DIMENSION),
            ("height", self.height, 1, MAX_DIMENSION),
            ("fps", self.fps, 1, 255),
            ("bitrate", self.bitrate, 1, u32::MAX),
            ("packet_size", self.packet_size, 1, u32::MAX),
        ];
        for (field, value, lo, hi) in checks {
            if value < lo || value > hi {
                return Err(InitError::OutOfRange { field, value });
            }
        }
        Ok(())
    }

    /// Audio channels to ask the host for: 2, 6 or 8 (stereo when absent; call after
    /// [`Init::validate`]).
    pub fn audio_channels(&self) -> u8 {
        match self.audio_channels {
            Some(6) => 6,
            Some(8) => 8,
            _ => 2,
        }
    }

    /// The protocol version, [`PROTOCOL_HELIX`] when absent.
    pub fn protocol_version(&self) -> u32 {
        self.protocol_version.unwrap_or(PROTOCOL_HELIX)
    }

    /// True if the client understands moongate's touch and controller messages, so the server may
    /// send it ControllerEvent rumble (never send 0x14/0x15 to a Helix client: it throws).
    pub fn supports_moongate_input(&self) -> bool {
        self.protocol_version() >= PROTOCOL_MOONGATE
    }
}

/// ConnectionComplete capabilities.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Capabilities {
    /// Touch input is accepted.
    pub touch: bool,
}

/// `{"ConnectionComplete":{…}}`, sent as a text frame after StreamInit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConnectionComplete {
    /// Capabilities (the client assumes `{touch:false}` if absent).
    #[serde(default)]
    pub capabilities: Capabilities,
    /// Stream width; the client scales input to it.
    pub width: u32,
    /// Stream height.
    pub height: u32,
    /// Optional id (Wolf's session id upstream); the client ignores it.
    #[serde(default)]
    pub client_id: Option<String>,
}

/// A server → client JSON message (text frame or ControlMessage 0x20 body).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ServerJson {
    /// `{"ConnectionComplete":{…}}`.
    ConnectionComplete {
        /// The body.
        #[serde(rename = "ConnectionComplete")]
        connection_complete: ConnectionComplete,
    },
    /// `{"error":"…","code":"…"}`: shown to the user; fatal unless it contains
    /// [`ALREADY_STREAMING`] (Helix reads the text; moongate's client reads `code`, which an old
    /// gateway does not send).
    Error {
        /// The text, starting with the code's name.
        error: String,
        /// The typed code (moongate extra; clients that do not know it ignore it).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        code: Option<ErrorCode>,
    },
}

impl ServerJson {
    /// The JSON text.
    pub fn to_json(&self) -> String {
        // Serialising these plain structs cannot fail; fall back to a fixed error text anyway.
        serde_json::to_string(self).unwrap_or_else(|_| r#"{"error":"InternalServerError"}"#.into())
    }

    /// Parses a server text frame (what the web client and tests do).
    pub fn parse(text: &str) -> Result<ServerJson, serde_json::Error> {
        serde_json::from_str(text)
    }
}

/// `{"ConnectionComplete":{"capabilities":{"touch":…},"width":…,"height":…,"client_id":null}}`.
pub fn connection_complete_json(touch: bool, width: u32, height: u32) -> String {
    ServerJson::ConnectionComplete {
        connection_complete: ConnectionComplete {
            capabilities: Capabilities { touch },
            width,
            height,
            client_id: None,
        },
    }
    .to_json()
}

/// `{"error":"<text>","code":"<Code>"}`.
pub fn error_json(code: ErrorCode, text: &str) -> String {
    ServerJson::Error {
        error: text.into(),
        code: Some(code),
    }
    .to_json()
}

/// `{"Quality":{…}}` (docs/browser-protocol.md §10): the quality controller moved the stream
/// to another rung; sent to browsers that asked for adaptation, in either mode.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Quality {
    /// The new rung's width.
    pub width: u32,
    /// Its height.
    pub height: u32,
    /// Its frame rate.
    pub fps: u32,
    /// Its bitrate, Kbps.
    pub bitrate_kbps: u32,
    /// Its index in the ladder (0 = the rung asked for).
    pub rung: usize,
    /// How many rungs the ladder has.
    pub rungs: usize,
    /// Why: `congestion`, `headroom`, `probe` or `admin`.
    pub reason: String,
}

impl Quality {
    /// The text frame.
    pub fn to_json(&self) -> String {
        #[derive(Serialize)]
        struct Tagged<'a> {
            #[serde(rename = "Quality")]
            quality: &'a Quality,
        }
        // A plain struct of numbers and a string: serialising cannot fail.
        serde_json::to_string(&Tagged { quality: self }).unwrap_or_default()
    }
}

/// A client → server ControlMessage (0x20) body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientControl {
    /// `{"set_video_enabled":bool}`: on `true`, get a keyframe out at once.
    SetVideoEnabled(bool),
    /// `{"set_batching_enabled":bool}`: VideoBatch wanted or not.
    SetBatchingEnabled(bool),
    /// `{"request_control":true}`: a member of a shared stream asks for control (§8.3).
    RequestControl,
    /// `{"grant_control":N}`: the controller hands control to member N.
    GrantControl(u64),
    /// `{"release_control":true}`: the controller gives control up.
    ReleaseControl,
    /// Valid JSON this crate does not know (e.g. HEAD's `set_mic_enabled`): ignore.
    Unknown,
}

impl ClientControl {
    /// Parses a ControlMessage body. Only malformed JSON is an error.
    pub fn parse(json: &str) -> Result<ClientControl, serde_json::Error> {
        #[derive(Deserialize)]
        struct Raw {
            set_video_enabled: Option<bool>,
            set_batching_enabled: Option<bool>,
            request_control: Option<bool>,
            grant_control: Option<u64>,
            release_control: Option<bool>,
        }
        let raw: Raw = serde_json::from_str(json)?;
        Ok(if let Some(v) = raw.set_video_enabled {
            ClientControl::SetVideoEnabled(v)
        } else if let Some(b) = raw.set_batching_enabled {
            ClientControl::SetBatchingEnabled(b)
        } else if raw.request_control == Some(true) {
            ClientControl::RequestControl
        } else if let Some(to) = raw.grant_control {
            ClientControl::GrantControl(to)
        } else if raw.release_control == Some(true) {
            ClientControl::ReleaseControl
        } else {
            ClientControl::Unknown
        })
    }

    /// The JSON body (what the web client sends).
    pub fn to_json(self) -> String {
        match self {
            ClientControl::SetVideoEnabled(v) => format!("{{\"set_video_enabled\":{v}}}"),
            ClientControl::SetBatchingEnabled(b) => format!("{{\"set_batching_enabled\":{b}}}"),
            ClientControl::RequestControl => "{\"request_control\":true}".into(),
            ClientControl::GrantControl(to) => format!("{{\"grant_control\":{to}}}"),
            ClientControl::ReleaseControl => "{\"release_control\":true}".into(),
            ClientControl::Unknown => "{}".into(),
        }
    }
}

/// WebSocket close codes the gateway uses (§1.7). Send `{"error": reason}` first: the reference
/// Helix proxy drops close frames, so the message is what reaches the browser.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseCode {
    /// 1000: the stream ended normally.
    Normal,
    /// 1008: policy violation, i.e. authentication failed or the init was refused.
    PolicyViolation,
    /// 1011: internal or host failure.
    InternalError,
    /// 4000 "superseded": a newer connection with the same key took over; the client must not
    /// reconnect.
    Superseded,
}

impl CloseCode {
    /// The numeric code.
    pub fn code(self) -> u16 {
        match self {
            CloseCode::Normal => 1000,
            CloseCode::PolicyViolation => 1008,
            CloseCode::InternalError => 1011,
            CloseCode::Superseded => 4000,
        }
    }

    /// The close reason text moongate sends with it (≤ 123 bytes, as WebSocket requires).
    pub fn reason(self) -> &'static str {
        match self {
            CloseCode::Normal => "stream ended",
            CloseCode::PolicyViolation => "unauthorized",
            CloseCode::InternalError => "internal error",
            CloseCode::Superseded => "superseded",
        }
    }

    /// The code for a number, if it is one of these.
    pub fn from_code(code: u16) -> Option<CloseCode> {
        [
            CloseCode::Normal,
            CloseCode::PolicyViolation,
            CloseCode::InternalError,
            CloseCode::Superseded,
        ]
        .into_iter()
        .find(|c| c.code() == code)
    }
}

/// 1000, normal end.
pub const CLOSE_NORMAL: u16 = 1000;
/// 1008, authentication / policy failure.
pub const CLOSE_POLICY_VIOLATION: u16 = 1008;
/// 1011, internal or host failure.
pub const CLOSE_INTERNAL_ERROR: u16 = 1011;
/// 4000, superseded by a newer connection with the same key (reason `"superseded"`).
pub const CLOSE_SUPERSEDED: u16 = 4000;
