//! WebRTC-mode JSON signaling on `GET /api/host/stream` (`helix-ws-contract.md` §1.5, §3).
//!
//! The shapes follow serde's default externally tagged enums exactly as moonlight-web's
//! `api_bindings.rs` produced them (the Helix frontend parses them unchanged): a unit variant is a
//! bare string (`"AlreadyStreaming"`), a struct variant is `{"Variant":{…}}`, fields are
//! snake_case, `RtcSdpType` and `SessionMode` are lowercase. Unknown fields are ignored on input
//! so newer clients keep working.

use serde::{Deserialize, Serialize};

use super::ErrorCode;

/// Stage names the server announces (§1.5), in order.
pub mod stage {
    /// The streamer process is being started.
    pub const LAUNCH_STREAMER: &str = "Launch Streamer";
    /// The streamer's peer connection exists.
    pub const SETUP_WEBRTC_PEER: &str = "Setup WebRTC Peer";
    /// Offer/answer and ICE in progress.
    pub const WEBRTC_PEER_NEGOTIATION: &str = "WebRTC Peer Negotiation";
    /// The Moonlight session with the host is being set up.
    pub const MOONLIGHT_STREAM: &str = "Moonlight Stream";
    /// The credential check of `AuthenticateAndInit`.
    pub const AUTHENTICATION: &str = "Authentication";
}

/// What the client wants done with its `session_id` (§1.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SessionMode {
    /// A new session; `AlreadyStreaming` if one is live.
    Create,
    /// Create without a browser attached; close at once if live.
    Keepalive,
    /// Attach to a live session (the server offers).
    Join,
}

/// `StreamColorspace`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum StreamColorspace {
    /// BT.601.
    Rec601,
    /// BT.709.
    Rec709,
    /// BT.2020.
    Rec2020,
}

/// The client's first message (`{"AuthenticateAndInit":{…}}`). Fields a client may leave out
/// default as the Helix viewer sets them.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthenticateAndInit {
    /// The gateway credential (the Helix proxy replaces the browser's value with it).
    #[serde(default)]
    pub credentials: Option<String>,
    /// Session id (Helix: `agent-<ses>-<instance>`).
    pub session_id: String,
    /// Session mode.
    #[serde(default = "default_mode")]
    pub mode: SessionMode,
    /// Moonlight client identity (`uniqueid` toward the host).
    #[serde(default)]
    pub client_unique_id: Option<String>,
    /// Index into the gateway's host list.
    #[serde(default)]
    pub host_id: u32,
    /// Moonlight app id.
    #[serde(default = "one")]
    pub app_id: u32,
    /// kbit/s.
    #[serde(default = "default_bitrate")]
    pub bitrate: u32,
    /// Moonlight packet size.
    #[serde(default = "default_packet_size")]
    pub packet_size: u32,
    /// Frame rate.
    #[serde(default = "default_fps")]
    pub fps: u32,
    /// Width.
    #[serde(default = "default_width")]
    pub width: u32,
    /// Height.
    #[serde(default = "default_height")]
    pub height: u32,
    /// Client-side video queue (informational).
    #[serde(default)]
    pub video_sample_queue_size: u32,
    /// Play audio on the host instead of streaming it.
    #[serde(default)]
    pub play_audio_local: bool,
    /// Client-side audio queue (informational).
    #[serde(default)]
    pub audio_sample_queue_size: u32,
    /// `SupportedVideoFormats` bits (§2.2); Helix sends 1 (H.264).
    #[serde(default = "one")]
    pub video_supported_formats: u32,
    /// Colorspace.
    #[serde(default = "default_colorspace")]
    pub video_colorspace: StreamColorspace,
    /// Full color range.
    #[serde(default)]
    pub video_color_range_full: bool,
    /// moongate extra: the Wolf lobby to join.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lobby_id: Option<String>,
    /// moongate extra: follow the link's capacity down and up a ladder of rungs
    /// (docs/adaptive-quality.md); the browser is told each change with `Quality`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub adaptive: Option<bool>,
}

impl std::fmt::Debug for AuthenticateAndInit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthenticateAndInit")
            .field(
                "credentials",
                &self.credentials.as_ref().map(|_| "<redacted>"),
            )
            .field("session_id", &self.session_id)
            .field("mode", &self.mode)
            .field("client_unique_id", &self.client_unique_id)
            .field("host_id", &self.host_id)
            .field("app_id", &self.app_id)
            .field("bitrate", &self.bitrate)
            .field("fps", &self.fps)
            .field("width", &self.width)
            .field("height", &self.height)
            .field("play_audio_local", &self.play_audio_local)
            .field("video_supported_formats", &self.video_supported_formats)
            .field("lobby_id", &self.lobby_id)
            .field("adaptive", &self.adaptive)
            .finish_non_exhaustive()
    }
}

fn default_mode() -> SessionMode {
    SessionMode::Create
}
fn one() -> u32 {
    1
}
fn default_bitrate() -> u32 {
    10_000
}
fn default_packet_size() -> u32 {
    1024
}
fn default_fps() -> u32 {
    60
}
fn default_width() -> u32 {
    1920
}
fn default_height() -> u32 {
    1080
}
fn default_colorspace() -> StreamColorspace {
    StreamColorspace::Rec709
}

/// SDP type (WebRTC `RTCSdpType`, lowercase as in the Helix contract §3.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RtcSdpType {
    /// An offer.
    Offer,
    /// An answer.
    Answer,
    /// A provisional answer (not supported by the streamer: answered with an error).
    Pranswer,
    /// Roll back a pending offer (not supported by the streamer: answered with an error).
    Rollback,
}

/// A session description.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RtcSessionDescription {
    /// Type.
    pub ty: RtcSdpType,
    /// SDP text.
    pub sdp: String,
}

/// One trickled ICE candidate (`RTCIceCandidateInit`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RtcIceCandidate {
    /// `candidate:…` line (without `a=`).
    pub candidate: String,
    /// Media id.
    #[serde(default)]
    pub sdp_mid: Option<String>,
    /// Media line index.
    #[serde(default)]
    pub sdp_mline_index: Option<u16>,
    /// ICE ufrag.
    #[serde(default)]
    pub username_fragment: Option<String>,
}

/// Signaling, both directions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Signaling {
    /// A description.
    Description(RtcSessionDescription),
    /// A trickled candidate.
    AddIceCandidate(RtcIceCandidate),
}

/// Client → server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ClientMessage {
    /// The first message.
    AuthenticateAndInit(AuthenticateAndInit),
    /// Offer/answer/candidates.
    Signaling(Signaling),
}

impl ClientMessage {
    /// Parses one text frame.
    pub fn parse(text: &str) -> Result<ClientMessage, serde_json::Error> {
        serde_json::from_str(text)
    }
}

/// An ICE server handed to the browser.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RtcIceServer {
    /// `stun:`/`turn:`/`turns:` URLs.
    pub urls: Vec<String>,
    /// TURN user name (`""` if none).
    #[serde(default)]
    pub username: String,
    /// TURN credential (`""` if none). Redacted in `Debug`.
    #[serde(default)]
    pub credential: String,
}

impl std::fmt::Debug for RtcIceServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RtcIceServer")
            .field("urls", &self.urls)
            .field("username", &self.username)
            .field(
                "credential",
                &if self.credential.is_empty() {
                    ""
                } else {
                    "<redacted>"
                },
            )
            .finish()
    }
}

/// The app being streamed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct App {
    /// Moonlight app id.
    pub app_id: u32,
    /// Title.
    pub title: String,
    /// HDR support.
    pub is_hdr_supported: bool,
}

/// `ConnectionComplete` capabilities.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Capabilities {
    /// The host accepts touch.
    pub touch: bool,
}

/// Server → client on the signaling socket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ServerMessage {
    /// The app.
    UpdateApp {
        /// App.
        app: App,
    },
    /// A stage began.
    StageStarting {
        /// Stage name ([`stage`]).
        stage: String,
    },
    /// A stage finished.
    StageComplete {
        /// Stage name.
        stage: String,
    },
    /// A stage failed.
    StageFailed {
        /// Stage name.
        stage: String,
        /// Error code.
        error_code: i32,
    },
    /// ICE servers for the browser's `RTCPeerConnection`.
    WebRtcConfig {
        /// Servers.
        ice_servers: Vec<RtcIceServer>,
    },
    /// Offer/answer/candidates.
    Signaling(Signaling),
    /// The stream is up.
    ConnectionComplete {
        /// Capabilities.
        capabilities: Capabilities,
        /// Width.
        width: u32,
        /// Height.
        height: u32,
        /// The host's session id, if known.
        client_id: Option<String>,
    },
    /// The stream ended.
    ConnectionTerminated {
        /// Error code (0 = normal).
        error_code: i32,
    },
    /// Internal error (fatal for the attempt).
    InternalServerError,
    /// No such host.
    HostNotFound,
    /// No such app.
    AppNotFound,
    /// The host is not paired.
    HostNotPaired,
    /// The session is live (retryable).
    AlreadyStreaming,
    /// `join` without a live session.
    SessionNotFound,
    /// Another socket took over the session.
    ClientKicked,
    /// The peer disconnected; the stream is over.
    PeerDisconnect,
    /// moongate extra, only to a browser that asked for adaptation: the stream moved to another
    /// rung (the video track stays; its size changes with the next keyframe).
    Quality(super::Quality),
}

impl ServerMessage {
    /// The bare-string error of the contract (§3.3) for a code; codes the contract does not
    /// name are `InternalServerError`.
    pub fn error(code: ErrorCode) -> ServerMessage {
        match code {
            ErrorCode::HostNotFound => ServerMessage::HostNotFound,
            ErrorCode::HostNotPaired => ServerMessage::HostNotPaired,
            ErrorCode::AppNotFound => ServerMessage::AppNotFound,
            ErrorCode::AlreadyStreaming => ServerMessage::AlreadyStreaming,
            ErrorCode::SessionNotFound => ServerMessage::SessionNotFound,
            ErrorCode::ClientKicked | ErrorCode::Superseded => ServerMessage::ClientKicked,
            ErrorCode::PeerDisconnect => ServerMessage::PeerDisconnect,
            _ => ServerMessage::InternalServerError,
        }
    }

    /// The text frame.
    pub fn to_json(&self) -> String {
        // Serializing these types cannot fail (no maps with non-string keys, no custom impls).
        serde_json::to_string(self).unwrap_or_else(|_| "\"InternalServerError\"".into())
    }

    /// Parses a server frame (clients and tests).
    pub fn parse(text: &str) -> Result<ServerMessage, serde_json::Error> {
        serde_json::from_str(text)
    }
}

/// Messages on the server-created `general` data channel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum GeneralMessage {
    /// The stream ended.
    ConnectionTerminated,
    /// Connection quality.
    ConnectionStatusUpdate {
        /// Status.
        status: ConnectionStatus,
    },
}

/// Connection quality on the `general` channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ConnectionStatus {
    /// Good.
    Ok,
    /// Degraded.
    Poor,
}

/// Data-channel labels the browser creates (§3.4) plus the server's `general`.
pub mod channel {
    /// Keyboard.
    pub const KEYBOARD: &str = "keyboard";
    /// Mouse buttons and wheel.
    pub const MOUSE_CLICKS: &str = "mouseClicks";
    /// Absolute moves.
    pub const MOUSE_ABSOLUTE: &str = "mouseAbsolute";
    /// Relative moves.
    pub const MOUSE_RELATIVE: &str = "mouseRelative";
    /// Touch.
    pub const TOUCH: &str = "touch";
    /// Controller add/remove and rumble back.
    pub const CONTROLLERS: &str = "controllers";
    /// Per-controller state is `controller<N>`.
    pub const CONTROLLER_PREFIX: &str = "controller";
    /// Server-created status channel.
    pub const GENERAL: &str = "general";
}

#[cfg(test)]
mod tests {
    use super::*;

    // The contract's §3.2 AuthenticateAndInit with the Helix values.
    const HELIX_INIT: &str = r#"{"AuthenticateAndInit":{"credentials":"helix","session_id":"agent-ses_01abc-3f2a","mode":"create","client_unique_id":"helix-agent-7b1e","host_id":0,"app_id":1,"bitrate":10000,"packet_size":1024,"fps":60,"width":1920,"height":1080,"video_sample_queue_size":50,"play_audio_local":false,"audio_sample_queue_size":20,"video_supported_formats":1,"video_colorspace":"Rec709","video_color_range_full":true}}"#;

    #[test]
    fn helix_init_parses() {
        let ClientMessage::AuthenticateAndInit(i) = ClientMessage::parse(HELIX_INIT).unwrap()
        else {
            panic!("not an init")
        };
        assert_eq!(i.credentials.as_deref(), Some("helix"));
        assert_eq!(i.session_id, "agent-ses_01abc-3f2a");
        assert_eq!(i.mode, SessionMode::Create);
        assert_eq!(i.client_unique_id.as_deref(), Some("helix-agent-7b1e"));
        assert_eq!(
            (i.width, i.height, i.fps, i.bitrate),
            (1920, 1080, 60, 10000)
        );
        assert_eq!(i.video_colorspace, StreamColorspace::Rec709);
        assert!(i.video_color_range_full);
        assert!(!format!("{i:?}").contains("helix\""), "credential in Debug");
        // Round trip keeps the shape.
        let again = serde_json::to_string(&ClientMessage::AuthenticateAndInit(i.clone())).unwrap();
        assert_eq!(
            ClientMessage::parse(&again).unwrap(),
            ClientMessage::AuthenticateAndInit(i)
        );
    }

    #[test]
    fn minimal_init_defaults_and_unknown_fields() {
        let m = ClientMessage::parse(
            r#"{"AuthenticateAndInit":{"session_id":"s","credentials":null,"future":1}}"#,
        )
        .unwrap();
        let ClientMessage::AuthenticateAndInit(i) = m else {
            panic!()
        };
        assert_eq!(i.mode, SessionMode::Create);
        assert_eq!((i.width, i.height, i.fps), (1920, 1080, 60));
        assert_eq!(i.credentials, None);
    }

    #[test]
    fn signaling_client_messages() {
        let offer = r#"{"Signaling":{"Description":{"ty":"offer","sdp":"v=0\r\n"}}}"#;
        assert_eq!(
            ClientMessage::parse(offer).unwrap(),
            ClientMessage::Signaling(Signaling::Description(RtcSessionDescription {
                ty: RtcSdpType::Offer,
                sdp: "v=0\r\n".into()
            }))
        );
        let cand = r#"{"Signaling":{"AddIceCandidate":{"candidate":"candidate:1 1 udp 2130706431 127.0.0.1 5000 typ host","sdp_mid":"0","sdp_mline_index":0,"username_fragment":null}}}"#;
        let ClientMessage::Signaling(Signaling::AddIceCandidate(c)) =
            ClientMessage::parse(cand).unwrap()
        else {
            panic!()
        };
        assert_eq!(c.sdp_mid.as_deref(), Some("0"));
        assert_eq!(c.sdp_mline_index, Some(0));
        assert_eq!(c.username_fragment, None);
        for ty in ["answer", "pranswer", "rollback"] {
            let t = format!(r#"{{"Signaling":{{"Description":{{"ty":"{ty}","sdp":""}}}}}}"#);
            assert!(ClientMessage::parse(&t).is_ok(), "{ty}");
        }
    }

    #[test]
    fn bad_client_json_is_an_error() {
        for bad in [
            "",
            "{}",
            "\"AuthenticateAndInit\"",
            r#"{"Signaling":{"Description":{"ty":"OFFER","sdp":""}}}"#,
            r#"{"AuthenticateAndInit":{"mode":"create"}}"#,
            r#"{"Nope":{}}"#,
        ] {
            assert!(ClientMessage::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn server_messages_have_the_contract_shapes() {
        let cases: Vec<(ServerMessage, &str)> = vec![
            (
                ServerMessage::WebRtcConfig {
                    ice_servers: vec![RtcIceServer {
                        urls: vec!["stun:stun.l.google.com:19302".into()],
                        username: String::new(),
                        credential: String::new(),
                    }],
                },
                r#"{"WebRtcConfig":{"ice_servers":[{"urls":["stun:stun.l.google.com:19302"],"username":"","credential":""}]}}"#,
            ),
            (
                ServerMessage::UpdateApp {
                    app: App {
                        app_id: 1,
                        title: "Desktop".into(),
                        is_hdr_supported: false,
                    },
                },
                r#"{"UpdateApp":{"app":{"app_id":1,"title":"Desktop","is_hdr_supported":false}}}"#,
            ),
            (
                ServerMessage::StageStarting {
                    stage: stage::LAUNCH_STREAMER.into(),
                },
                r#"{"StageStarting":{"stage":"Launch Streamer"}}"#,
            ),
            (
                ServerMessage::StageComplete {
                    stage: stage::SETUP_WEBRTC_PEER.into(),
                },
                r#"{"StageComplete":{"stage":"Setup WebRTC Peer"}}"#,
            ),
            (
                ServerMessage::StageFailed {
                    stage: stage::AUTHENTICATION.into(),
                    error_code: -1,
                },
                r#"{"StageFailed":{"stage":"Authentication","error_code":-1}}"#,
            ),
            (
                ServerMessage::ConnectionComplete {
                    capabilities: Capabilities { touch: false },
                    width: 1920,
                    height: 1080,
                    client_id: None,
                },
                r#"{"ConnectionComplete":{"capabilities":{"touch":false},"width":1920,"height":1080,"client_id":null}}"#,
            ),
            (
                ServerMessage::ConnectionTerminated { error_code: 0 },
                r#"{"ConnectionTerminated":{"error_code":0}}"#,
            ),
            (
                ServerMessage::Signaling(Signaling::Description(RtcSessionDescription {
                    ty: RtcSdpType::Answer,
                    sdp: "v=0".into(),
                })),
                r#"{"Signaling":{"Description":{"ty":"answer","sdp":"v=0"}}}"#,
            ),
            (ServerMessage::AlreadyStreaming, r#""AlreadyStreaming""#),
            (
                ServerMessage::InternalServerError,
                r#""InternalServerError""#,
            ),
            (ServerMessage::HostNotFound, r#""HostNotFound""#),
            (ServerMessage::AppNotFound, r#""AppNotFound""#),
            (ServerMessage::HostNotPaired, r#""HostNotPaired""#),
            (ServerMessage::SessionNotFound, r#""SessionNotFound""#),
            (ServerMessage::ClientKicked, r#""ClientKicked""#),
            (ServerMessage::PeerDisconnect, r#""PeerDisconnect""#),
            (
                ServerMessage::Quality(super::super::Quality {
                    width: 640,
                    height: 360,
                    fps: 30,
                    bitrate_kbps: 2700,
                    rung: 3,
                    rungs: 4,
                    reason: "congestion".into(),
                }),
                r#"{"Quality":{"width":640,"height":360,"fps":30,"bitrate_kbps":2700,"rung":3,"rungs":4,"reason":"congestion"}}"#,
            ),
        ];
        for (msg, json) in cases {
            assert_eq!(msg.to_json(), json);
            assert_eq!(ServerMessage::parse(json).unwrap(), msg);
            // The WebSocket mode's notice is the same text.
            if let ServerMessage::Quality(q) = &msg {
                assert_eq!(q.to_json(), json);
            }
        }
    }

    #[test]
    fn error_codes_become_bare_strings() {
        use super::ErrorCode as C;
        for (code, msg) in [
            (C::HostNotFound, ServerMessage::HostNotFound),
            (C::HostNotPaired, ServerMessage::HostNotPaired),
            (C::AppNotFound, ServerMessage::AppNotFound),
            (C::AlreadyStreaming, ServerMessage::AlreadyStreaming),
            (C::SessionNotFound, ServerMessage::SessionNotFound),
            (C::ClientKicked, ServerMessage::ClientKicked),
            (C::Superseded, ServerMessage::ClientKicked),
            (C::PeerDisconnect, ServerMessage::PeerDisconnect),
            (C::InternalServerError, ServerMessage::InternalServerError),
            (C::Unauthorized, ServerMessage::InternalServerError),
            (C::LaunchFailed, ServerMessage::InternalServerError),
        ] {
            assert_eq!(ServerMessage::error(code), msg, "{code}");
        }
    }

    #[test]
    fn general_channel_messages() {
        assert_eq!(
            serde_json::to_string(&GeneralMessage::ConnectionTerminated).unwrap(),
            r#""ConnectionTerminated""#
        );
        assert_eq!(
            serde_json::to_string(&GeneralMessage::ConnectionStatusUpdate {
                status: ConnectionStatus::Poor
            })
            .unwrap(),
            r#"{"ConnectionStatusUpdate":{"status":"Poor"}}"#
        );
    }

    #[test]
    fn ice_server_credentials_stay_out_of_debug() {
        let s = RtcIceServer {
            urls: vec!["turn:t.example:3478".into()],
            username: "u".into(),
            credential: "hunter2".into(),
        };
        assert!(!format!("{s:?}").contains("hunter2"));
        let parsed: RtcIceServer = serde_json::from_str(r#"{"urls":["stun:x"]}"#).unwrap();
        assert_eq!(parsed.username, "");
    }
}
