//! The IPC messages, one enum per direction.
//!
//! Media and fixed-size messages have binary little-endian layouts (video and audio are never JSON
//! or base64); rare, variable control messages (`Init`, `Stats`, `Log`, `Error`, `Ended`, WebRTC
//! `Signal`) carry a
//! JSON object, which lets the two processes tolerate added fields (unknown fields are ignored,
//! missing optional ones default). Layouts are in `docs/ipc.md`.
//!
//! [`init`] holds the session's settings (`Init`) and the WebRTC signaling types; [`rung`] what
//! `Restream` asks for; `codec` the byte layouts of both enums.

mod codec;
mod init;
mod rung;

pub use init::*;
pub use rung::*;

use super::frame::IpcError;
use crate::browser::{self, CloseCode, StreamInit, VideoFrame};
use bytes::Bytes;
use serde::{Deserialize, Serialize};

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
    /// [`super::ToStreamer::Restream`].
    pub const RESTREAM: u8 = 0x07;
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
    /// 0x07, JSON [`Rung`]: end the host stream (not the app) and start it again at this rung;
    /// `Started` follows again with the new size. A rung out of bounds is a malformed frame.
    Restream(Rung),
}

/// `Video`: one complete access unit. On the pipe it is the browser's VideoFrame message itself
/// (type 0x01, codec, flags, pts, width, height, the unit): the streamer writes those bytes once
/// and the gateway hands them to the WebSocket as they were read, with no decode and no copy.
#[derive(Debug, Clone)]
pub struct Video {
    /// Keyframe (parameter sets in-band).
    pub keyframe: bool,
    /// Presentation time, µs.
    pub pts_us: u64,
    /// Browser codec byte.
    pub codec: u8,
    /// Coded width (informational for the browser).
    pub width: u16,
    /// Coded height.
    pub height: u16,
    /// The access unit (zero-copy slice of the read buffer).
    pub data: Bytes,
    /// A frame read from the pipe: the whole browser message (header and unit), zero-copy.
    message: Option<Bytes>,
}

impl Video {
    /// A frame to write.
    pub fn new(
        keyframe: bool,
        pts_us: u64,
        codec: u8,
        width: u16,
        height: u16,
        data: Bytes,
    ) -> Self {
        Self {
            keyframe,
            pts_us,
            codec,
            width,
            height,
            data,
            message: None,
        }
    }

    fn frame(&self) -> VideoFrame<'_> {
        VideoFrame {
            codec: self.codec,
            keyframe: self.keyframe,
            pts_us: self.pts_us,
            width: self.width,
            height: self.height,
            data: &self.data,
        }
    }

    /// The browser VideoFrame (0x01) message: for a frame read from the pipe, the bytes as read
    /// (no copy); for one built here, header plus one copy of the unit.
    pub fn browser_message(&self) -> Bytes {
        match &self.message {
            Some(m) => m.clone(),
            None => browser::video_frame_message(&self.frame()).into(),
        }
    }
}

/// Equal when the frame is: how it was carried does not matter.
impl PartialEq for Video {
    fn eq(&self, other: &Self) -> bool {
        self.frame() == other.frame()
    }
}

impl Eq for Video {}

/// `Audio`: one Opus packet. On the pipe it is the browser's AudioFrame message itself (type
/// 0x02, channels, pts, the packet), forwarded by the gateway as it was read.
#[derive(Debug, Clone)]
pub struct Audio {
    /// Channel count (the browser uses StreamInit's).
    pub channels: u8,
    /// Presentation time, µs.
    pub pts_us: u64,
    /// The Opus packet.
    pub data: Bytes,
    /// A packet read from the pipe: the whole browser message, zero-copy.
    message: Option<Bytes>,
}

impl Audio {
    /// A packet to write.
    pub fn new(channels: u8, pts_us: u64, data: Bytes) -> Self {
        Self {
            channels,
            pts_us,
            data,
            message: None,
        }
    }

    /// The browser AudioFrame (0x02) message (the bytes as read, for a packet from the pipe).
    pub fn browser_message(&self) -> Bytes {
        match &self.message {
            Some(m) => m.clone(),
            None => browser::audio_frame_message(self.channels, self.pts_us, &self.data).into(),
        }
    }
}

/// Equal when the packet is.
impl PartialEq for Audio {
    fn eq(&self, other: &Self) -> bool {
        (self.channels, self.pts_us, &self.data) == (other.channels, other.pts_us, &other.data)
    }
}

impl Eq for Audio {}

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
    /// Times the host stream was started again at a new rung (`Restream`).
    pub restreams: u64,
    /// The last restream's gap, ms: from the last frame of the old host stream to the first
    /// keyframe of the new one (0 = none yet).
    pub restream_gap_ms: u64,
    /// WebRTC mode: the round trip of the browser's last RTCP receiver report, ms (0 = none).
    pub peer_rtt_ms: u32,
    /// WebRTC mode: the share of video packets the browser's receiver reports of the last stats
    /// interval said were lost, per mille.
    pub peer_loss_permille: u32,
    /// WebRTC mode: stats intervals with a receiver report; the two fields above are fresh when
    /// it grew since the last `Stats`.
    pub peer_reports: u64,
    /// WebRTC mode: NACKs the browser sent for video (packets it asked for again).
    pub peer_nacks: u64,
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
    Started(StreamInit),
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
