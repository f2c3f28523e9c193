//! The IPC messages, one enum per direction.
//!
//! Media and fixed-size messages have binary little-endian layouts (video and audio are never JSON
//! or base64); rare, variable control messages (`Init`, `Stats`, `Log`, `Error`, `Ended`, WebRTC
//! `Signal`) carry a
//! JSON object, which lets the two processes tolerate added fields (unknown fields are ignored,
//! missing optional ones default). Layouts are in `docs/ipc.md`.

use super::frame::{IpcError, IpcMessage};
use crate::browser::{self, CloseCode, StreamInit, VideoFrame};
use crate::Secret;
use bytes::{Buf, BufMut, Bytes, BytesMut};
use serde::{de::DeserializeOwned, Deserialize, Serialize};

/// Frame type bytes. Server → streamer use 0x01…0x7f, streamer → server 0x81…0xff, so a frame
/// sent the wrong way is an unknown type, not a misread.
pub mod frame_type {
    /// [`super::ToStreamer::Init`].
    pub const INIT: u8 = 0x01;
    /// [`super::ToStreamer::Input`].
    pub const INPUT: u8 = 0x02;
    /// [`super::ToStreamer::RequestKeyframe`].
    pub const REQUEST_KEYFRAME: u8 = 0x03;
    /// [`super::ToStreamer::Stop`].
    pub const STOP: u8 = 0x04;
    /// [`super::ToStreamer::Signal`].
    pub const SIGNAL_IN: u8 = 0x05;
    /// [`super::ToStreamer::LaunchTurn`].
    pub const LAUNCH_TURN_GRANTED: u8 = 0x06;
    /// [`super::FromStreamer::Started`].
    pub const STARTED: u8 = 0x81;
    /// [`super::FromStreamer::Video`].
    pub const VIDEO: u8 = 0x82;
    /// [`super::FromStreamer::Audio`].
    pub const AUDIO: u8 = 0x83;
    /// [`super::FromStreamer::Stats`].
    pub const STATS: u8 = 0x84;
    /// [`super::FromStreamer::Log`].
    pub const LOG: u8 = 0x85;
    /// [`super::FromStreamer::Error`].
    pub const ERROR: u8 = 0x86;
    /// [`super::FromStreamer::Ended`].
    pub const ENDED: u8 = 0x87;
    /// [`super::FromStreamer::Signal`].
    pub const SIGNAL_OUT: u8 = 0x88;
    /// [`super::FromStreamer::Rumble`].
    pub const RUMBLE: u8 = 0x89;
    /// [`super::FromStreamer::LaunchTurn`].
    pub const LAUNCH_TURN: u8 = 0x8A;
}

/// How the streamer delivers media to the browser.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StreamMode {
    /// Media comes back over IPC ([`FromStreamer::Video`]/[`FromStreamer::Audio`]) and the
    /// web-server forwards it on the browser's WebSocket.
    Websocket,
    /// The streamer owns a WebRTC peer connection to the browser.
    Webrtc,
}

/// Where the Moonlight host is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostAddress {
    /// Host name or IP address.
    pub address: String,
    /// nvhttp HTTP port (47989 by default).
    pub http_port: u16,
    /// nvhttp HTTPS port (47984 by default).
    pub https_port: u16,
}

/// Everything a streamer needs to run one session; the first frame the web-server sends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamerInit {
    /// `{session}-{lobby}-{client}`: the registry key, prefixed to every log line.
    pub session_key: String,
    /// WebSocket or WebRTC delivery.
    pub mode: StreamMode,
    /// The host.
    pub host: HostAddress,
    /// The host's certificate (DER) pinned at pairing; hex in the JSON.
    #[serde(with = "hex_bytes")]
    pub host_cert_der: Vec<u8>,
    /// The Moonlight `uniqueid` of the client identity.
    pub client_unique_id: String,
    /// The paired client certificate, PEM.
    pub client_cert_pem: String,
    /// Its private key, PEM. Secret: redacted in `Debug`.
    pub client_key_pem: Secret,
    /// Moonlight app id to launch.
    pub app_id: u32,
    /// Requested width.
    pub width: u32,
    /// Requested height.
    pub height: u32,
    /// Requested frame rate.
    pub fps: u32,
    /// Requested bitrate, kbit/s.
    pub bitrate_kbps: u32,
    /// Moonlight packet size.
    pub packet_size: u32,
    /// What the browser decodes (`SupportedVideoFormats` bits, [`browser::formats`]).
    pub video_formats: u32,
    /// Audio channels to ask for (2, 6 or 8).
    pub audio_channels: u8,
    /// Play audio on the host and do not stream it.
    pub play_audio_local: bool,
    /// Wolf lobby to join, if any.
    #[serde(default)]
    pub lobby_id: Option<String>,
    /// Wolf API: a Unix socket path (starts with `/`) or an `http(s)://` URL.
    #[serde(default)]
    pub wolf_api: Option<String>,
    /// The peer's network settings; used in [`StreamMode::Webrtc`] only (absent → defaults).
    #[serde(default)]
    pub webrtc: Option<WebRtcSettings>,
    /// The web-server hands out turns to launch on this host: ask for one
    /// ([`FromStreamer::LaunchTurn`]) before each `/launch` and wait for
    /// [`ToStreamer::LaunchTurn`]. Absent (a streamer driven by hand): launch at once.
    #[serde(default)]
    pub launch_turns: bool,
}

/// How a NAT 1:1 address is advertised (pion's `NAT1To1IPCandidateType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NatCandidateType {
    /// As an extra host candidate (typ host) on the bound port: the usual choice when the public
    /// address forwards the same port to us.
    #[default]
    Host,
    /// As a server-reflexive candidate (typ srflx, related to the bound address).
    Srflx,
}

/// An ICE network type the peer may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NetworkType {
    /// UDP over IPv4.
    Udp4,
    /// UDP over IPv6.
    Udp6,
}

/// The streamer's WebRTC network settings ([`StreamerInit::webrtc`]). ICE *servers* are not here:
/// the streamer is the ICE-controlled side with its own host (and NAT 1:1) candidates and no TURN
/// client; STUN/TURN servers matter only to the browser, which the web-server tells itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct WebRtcSettings {
    /// Lowest UDP port the peer may bind (inclusive). `0` with `udp_port_max` `0` = any port.
    pub udp_port_min: u16,
    /// Highest UDP port (inclusive).
    pub udp_port_max: u16,
    /// Address to bind, e.g. `0.0.0.0` (every local address becomes a host candidate) or one IP.
    pub bind_address: String,
    /// Public addresses to advertise in addition (NAT 1:1), on the bound port.
    pub nat_1to1_ips: Vec<String>,
    /// How the NAT 1:1 addresses are advertised.
    pub nat_1to1_candidate_type: NatCandidateType,
    /// Which address families become candidates (empty = both).
    pub network_types: Vec<NetworkType>,
    /// A peer whose ICE state stays disconnected this long ends the stream (default 10 s).
    pub disconnect_timeout_ms: u32,
}

impl Default for WebRtcSettings {
    fn default() -> Self {
        WebRtcSettings {
            udp_port_min: 0,
            udp_port_max: 0,
            bind_address: "0.0.0.0".into(),
            nat_1to1_ips: Vec::new(),
            nat_1to1_candidate_type: NatCandidateType::Host,
            network_types: Vec::new(),
            disconnect_timeout_ms: 10_000,
        }
    }
}

/// SDP type (WebRTC `RTCSdpType`, lowercase as in the Helix contract §3.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SdpType {
    /// An offer.
    Offer,
    /// An answer.
    Answer,
    /// A provisional answer (not supported by the streamer: answered with an error).
    Pranswer,
    /// Roll back a pending offer (not supported by the streamer: answered with an error).
    Rollback,
}

/// A session description (offer or answer).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionDescription {
    /// Offer or answer.
    pub ty: SdpType,
    /// The SDP text.
    pub sdp: String,
}

/// One trickled ICE candidate (`RTCIceCandidateInit`; the same fields as the contract's
/// `AddIceCandidate`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IceCandidate {
    /// `candidate:…` line, without `a=`.
    pub candidate: String,
    /// Media id it belongs to.
    #[serde(default)]
    pub sdp_mid: Option<String>,
    /// m-line index it belongs to.
    #[serde(default)]
    pub sdp_mline_index: Option<u16>,
    /// ICE ufrag of the generation it belongs to.
    #[serde(default)]
    pub username_fragment: Option<String>,
}

/// The streamer's peer connection state, reported as it changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PeerState {
    /// ICE is checking.
    Checking,
    /// ICE and DTLS are up: media flows.
    Connected,
    /// ICE lost the peer; the stream ends if it stays so for the disconnect timeout.
    Disconnected,
    /// ICE failed; the stream ends.
    Failed,
    /// The peer connection is closed.
    Closed,
    /// A state added by a newer streamer.
    #[serde(other)]
    Other,
}

/// `ToStreamer::Signal` (JSON): signaling from the browser (or WHEP), relayed by the web-server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum RemoteSignal {
    /// The browser's description: an offer (the streamer answers with a
    /// [`LocalSignal::Description`]) or the answer to the streamer's offer.
    Description(SessionDescription),
    /// A trickled remote candidate.
    Candidate(IceCandidate),
    /// Make an offer (contract §1.5: the server offers in `join` mode); the streamer answers with
    /// a [`LocalSignal::Description`] of type offer and waits for the answer.
    CreateOffer,
}

/// `FromStreamer::Signal` (JSON): signaling for the browser, which the web-server translates to
/// the Helix JSON (§3.3) or to WHEP.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum LocalSignal {
    /// The streamer's answer or offer. All its candidates are already in the SDP (the streamer
    /// knows them before it writes it), so WHEP can return it as is.
    Description(SessionDescription),
    /// A local candidate (also in the SDP; sent for trickle-style clients).
    Candidate(IceCandidate),
    /// The peer connection state changed.
    State(PeerState),
}

mod hex_bytes {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(v))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let s = String::deserialize(d)?;
        hex::decode(s).map_err(serde::de::Error::custom)
    }
}

/// Server → streamer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ToStreamer {
    /// 0x01, JSON: start the session (sent once, first).
    Init(Box<StreamerInit>),
    /// 0x02, raw: one browser binary message exactly as received (0x10–0x16 input, 0x20 control).
    Input(Bytes),
    /// 0x03, empty: ask the host for an IDR now (new viewer, `set_video_enabled:true`, drops).
    RequestKeyframe,
    /// 0x04, empty: end the session; the streamer answers `Ended{Stopped}` and exits.
    Stop,
    /// 0x05, JSON: WebRTC signaling from the browser (WebRTC mode only).
    Signal(RemoteSignal),
    /// 0x06, empty: the host is this streamer's to launch on now (the answer to
    /// [`FromStreamer::LaunchTurn`] with [`TurnRequest::Ask`]); the turn ends at `Started`, at
    /// [`TurnRequest::GiveBack`] or when the stream ends.
    LaunchTurn,
}

/// `Started`: the negotiated stream, everything StreamInit needs (binary, 12 bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Started {
    /// Browser codec byte ([`browser::VideoCodec`]).
    pub codec: u8,
    /// Width.
    pub width: u16,
    /// Height.
    pub height: u16,
    /// Frame rate.
    pub fps: u8,
    /// Audio channels, 0 = no audio.
    pub audio_channels: u8,
    /// Sample rate, Hz, 0 = no audio.
    pub sample_rate: u32,
    /// The host accepts touch.
    pub touch_supported: bool,
    /// How the host's Opus packets split into streams (appended after the 12 core bytes).
    pub opus: Option<browser::OpusLayout>,
}

impl Started {
    /// The browser StreamInit (0x30) for this stream.
    pub fn stream_init(&self) -> StreamInit {
        StreamInit {
            codec: self.codec,
            width: self.width,
            height: self.height,
            fps: self.fps,
            audio_channels: self.audio_channels,
            sample_rate: self.sample_rate,
            touch_supported: self.touch_supported,
            opus: self.opus,
        }
    }
}

/// `Video`: one complete access unit (binary: flags, codec, pts, data).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Video {
    /// Keyframe (parameter sets in-band).
    pub keyframe: bool,
    /// Presentation time, µs.
    pub pts_us: u64,
    /// Browser codec byte.
    pub codec: u8,
    /// The access unit (zero-copy slice of the read buffer).
    pub data: Bytes,
}

impl Video {
    /// The browser VideoFrame (0x01) message, header + one copy of the payload.
    pub fn browser_message(&self, width: u16, height: u16) -> Vec<u8> {
        browser::video_frame_message(&VideoFrame {
            codec: self.codec,
            keyframe: self.keyframe,
            pts_us: self.pts_us,
            width,
            height,
            data: &self.data,
        })
    }
}

/// `Audio`: one Opus packet (binary: pts, data).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Audio {
    /// Presentation time, µs.
    pub pts_us: u64,
    /// The Opus packet.
    pub data: Bytes,
}

impl Audio {
    /// The browser AudioFrame (0x02) message.
    pub fn browser_message(&self, channels: u8) -> Vec<u8> {
        browser::audio_frame_message(channels, self.pts_us, &self.data)
    }
}

/// `Stats`: cumulative counters since the session started (JSON; all fields default to 0, so
/// either side may add counters).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Stats {
    /// Milliseconds since `Init`.
    pub uptime_ms: u64,
    /// Access units delivered.
    pub video_frames: u64,
    /// Their bytes.
    pub video_bytes: u64,
    /// Keyframes among them.
    pub keyframes: u64,
    /// Frames lost (unrecoverable) before delivery.
    pub video_frames_lost: u64,
    /// Frames dropped on purpose (backpressure, waiting for a keyframe).
    pub video_frames_dropped: u64,
    /// RTP packets lost.
    pub packets_lost: u64,
    /// Packets rebuilt by FEC.
    pub fec_recovered: u64,
    /// Audio packets delivered.
    pub audio_packets: u64,
    /// Their bytes.
    pub audio_bytes: u64,
    /// Input messages forwarded to the host.
    pub input_events: u64,
    /// IDR requests sent to the host.
    pub idr_requests: u64,
    /// Last measured round trip to the host, ms (0 = unknown).
    pub host_rtt_ms: u32,
    /// Age of the oldest frame waiting in the streamer's own send queue, ms (IPC writer in
    /// WebSocket mode, the peer in WebRTC mode); 0 = empty or unknown.
    pub send_queue_ms: u64,
}

/// Log level of a [`LogLine`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogLevel {
    /// Error.
    Error,
    /// Warning.
    Warn,
    /// Info.
    Info,
    /// Debug.
    Debug,
    /// Trace.
    Trace,
}

/// `Log` (JSON). Recommended use: ordinary logs go to the streamer's stderr (tracing), which the
/// web-server captures; this frame is for the few lines the web-server must surface to admins.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogLine {
    /// Level.
    pub level: LogLevel,
    /// Text (no secrets).
    pub message: String,
}

/// Stable error codes of [`StreamerError`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ErrorCode {
    /// The `Init` was invalid.
    BadInit,
    /// The host did not answer.
    HostUnreachable,
    /// The host no longer trusts our client certificate.
    HostNotPaired,
    /// The app id does not exist on the host.
    AppNotFound,
    /// WebRTC: no UDP port in the configured range could be bound.
    NoIcePort,
    /// WebRTC: bad signaling (unparsable SDP or candidate, an unsupported SDP type, a
    /// description out of turn).
    BadSignal,
    /// The host is busy with another stream for this client (retryable in the browser).
    AlreadyStreaming,
    /// `/launch` or `/resume` failed.
    LaunchFailed,
    /// RTSP, control stream or media setup failed.
    StreamSetupFailed,
    /// No codec both the browser and the host support.
    UnsupportedCodec,
    /// The host stopped answering mid-stream.
    ConnectionLost,
    /// Anything else.
    Internal,
    /// A code added by a newer streamer.
    #[serde(other)]
    Other,
}

/// `Error` (JSON): something failed; `Ended` follows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamerError {
    /// Code.
    pub code: ErrorCode,
    /// Human-readable detail (no secrets).
    pub message: String,
}

/// Why a session ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum EndReason {
    /// The web-server sent `Stop` (or closed the channel).
    Stopped,
    /// The host ended the stream (app quit, host-side cancel, lobby stopped).
    HostEnded,
    /// An `Error` preceded this.
    Error,
    /// WebRTC: ICE failed, or the peer stayed disconnected for the disconnect timeout.
    PeerGone,
    /// A reason added by a newer streamer.
    #[serde(other)]
    Other,
}

/// `Ended` (JSON): the last frame a streamer sends before it exits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ended {
    /// Reason.
    pub reason: EndReason,
    /// Optional detail.
    #[serde(default)]
    pub message: Option<String>,
}

impl Ended {
    /// The browser close code for this end.
    pub fn close_code(&self) -> CloseCode {
        match self.reason {
            EndReason::Stopped | EndReason::HostEnded | EndReason::PeerGone => CloseCode::Normal,
            EndReason::Error | EndReason::Other => CloseCode::InternalError,
        }
    }
}

/// Streamer → server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FromStreamer {
    /// 0x81: the stream is negotiated (again, if the codec or size changes).
    Started(Started),
    /// 0x82: an access unit.
    Video(Video),
    /// 0x83: an Opus packet.
    Audio(Audio),
    /// 0x84: counters, about once a second.
    Stats(Stats),
    /// 0x85: a log line for the web-server.
    Log(LogLine),
    /// 0x86: an error.
    Error(StreamerError),
    /// 0x87: the session is over.
    Ended(Ended),
    /// 0x88, JSON: WebRTC signaling for the browser (WebRTC mode only).
    Signal(LocalSignal),
    /// 0x89: rumble for one of the browser's gamepads (WebSocket mode; a WebRTC peer sends it on
    /// its `controllers` channel itself).
    Rumble(Rumble),
    /// 0x8A, 1 byte: asks for the turn to launch on the host, or gives it back (the host refused
    /// the launch and the streamer waits before it tries again). Only with
    /// [`StreamerInit::launch_turns`].
    LaunchTurn(TurnRequest),
}

/// What a streamer says about its turn to launch on the host ([`FromStreamer::LaunchTurn`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TurnRequest {
    /// 1: the streamer is about to `/launch` and waits for [`ToStreamer::LaunchTurn`].
    Ask,
    /// 0: the launch was refused; nothing of ours is starting on the host until the next `Ask`.
    GiveBack,
}

/// `Rumble` (6 bytes): the host's motors for one pad, or Sunshine's trigger motors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rumble {
    /// Controller number (the browser's pad id).
    pub controller: u8,
    /// True: `low`/`high` are the left/right trigger motors (Sunshine's trigger rumble).
    pub triggers: bool,
    /// Low-frequency motor (or left trigger), 0..65535.
    pub low: u16,
    /// High-frequency motor (or right trigger), 0..65535.
    pub high: u16,
}

const RUMBLE_LEN: usize = 6;

impl Rumble {
    /// The browser's ControllerEvent for it.
    pub fn browser_event(&self) -> browser::ControllerEvent {
        if self.triggers {
            browser::ControllerEvent::TriggerRumble {
                id: self.controller,
                left: self.low,
                right: self.high,
            }
        } else {
            browser::ControllerEvent::Rumble {
                id: self.controller,
                low: self.low,
                high: self.high,
            }
        }
    }
}

const STARTED_LEN: usize = 12;
const VIDEO_HEADER: usize = 10;
const AUDIO_HEADER: usize = 8;

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
        }
    }

    fn write_payload(&self, dst: &mut BytesMut) -> Result<(), IpcError> {
        match self {
            ToStreamer::Init(init) => json_into(init, dst)?,
            ToStreamer::Input(bytes) => dst.put_slice(bytes),
            ToStreamer::RequestKeyframe | ToStreamer::Stop | ToStreamer::LaunchTurn => {}
            ToStreamer::Signal(s) => json_into(s, dst)?,
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
            FromStreamer::Started(s) => {
                dst.put_u8(s.codec);
                dst.put_u16_le(s.width);
                dst.put_u16_le(s.height);
                dst.put_u8(s.fps);
                dst.put_u8(s.audio_channels);
                dst.put_u32_le(s.sample_rate);
                dst.put_u8(s.touch_supported as u8);
                if let Some(o) = &s.opus {
                    o.write(dst);
                }
            }
            FromStreamer::Video(v) => {
                dst.reserve(VIDEO_HEADER + v.data.len());
                dst.put_u8(v.keyframe as u8);
                dst.put_u8(v.codec);
                dst.put_u64_le(v.pts_us);
                dst.put_slice(&v.data);
            }
            FromStreamer::Audio(a) => {
                dst.reserve(AUDIO_HEADER + a.data.len());
                dst.put_u64_le(a.pts_us);
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
                // Trailing bytes are ignored so that fields can be appended later.
                need("Started", &payload, STARTED_LEN)?;
                let mut s = Started {
                    codec: payload.get_u8(),
                    width: payload.get_u16_le(),
                    height: payload.get_u16_le(),
                    fps: payload.get_u8(),
                    audio_channels: payload.get_u8(),
                    sample_rate: payload.get_u32_le(),
                    touch_supported: payload.get_u8() != 0,
                    opus: None,
                };
                if s.audio_channels > 0 {
                    s.opus = browser::OpusLayout::read(s.audio_channels, &payload)
                        .transpose()
                        .map_err(|e| IpcError::Malformed {
                            name: "Started",
                            reason: e.to_string(),
                        })?;
                }
                FromStreamer::Started(s)
            }
            frame_type::VIDEO => {
                need("Video", &payload, VIDEO_HEADER)?;
                let flags = payload.get_u8();
                let codec = payload.get_u8();
                let pts_us = payload.get_u64_le();
                FromStreamer::Video(Video {
                    keyframe: flags & 0x01 != 0,
                    pts_us,
                    codec,
                    data: payload,
                })
            }
            frame_type::AUDIO => {
                need("Audio", &payload, AUDIO_HEADER)?;
                let pts_us = payload.get_u64_le();
                FromStreamer::Audio(Audio {
                    pts_us,
                    data: payload,
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
