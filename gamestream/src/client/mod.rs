//! The client half assembled: one stream from a paired host, from `/launch` to `/cancel`.
//!
//! [`ClientSession::start`] does what moonlight-common-c's `LiStartConnection` does: launch (or
//! resume), the RTSP handshake, then audio, video and the encrypted control stream; media and host
//! messages arrive as [`SessionEvent`]s. Lost video is answered with an IDR request at once, and no
//! frame whose reference was lost is delivered (the depacketizer waits for the next keyframe).
//!
//! Each step between the I/O is a plain function — [`SessionConfig::launch_request`],
//! [`rtsp_params`], [`stream_params`] — over the sans-IO cores ([`crate::rtsp::ClientHandshake`],
//! [`ClientCore`]), so the in-memory pair test (`tests/session_pair.rs`) goes from `/launch` to
//! the stream's end through the same steps, without a socket.
//!
//! [`ClientSession::stop`] is the one way a stream ends on our side, in the order real hosts survive:
//! media sockets closed, the control stream disconnected **and its acknowledgement awaited**
//! (bounded), then `/cancel` on the host, awaited. The host never keeps a stale session for this
//! client (lifecycle lessons 1 and 4), and no control-stream event reaches it after `/cancel`:
//! upstream Wolf removes the session on `/cancel` and crashes when the client's ENet disconnect
//! arrives afterwards, while a disconnect first only pauses the session that `/cancel` then ends.
//! moonlight-common-c does the same: `LiStopConnection` (control stream included) before the app
//! is quit.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use tokio::sync::mpsc;

mod core;
mod session;
mod stream;

pub use self::core::{ClientCore, StreamParams, StreamSocket, Transmit};
pub use self::session::ClientSession;
pub use self::stream::ClientStream;
use crate::audio::{AudioDepacketizerConfig, AudioEncryption, AudioError, AudioStats};
use crate::control::{
    ControlConfig, ControlError, DisconnectReason, HostMessage, IvStyle, TerminationReason,
};
use crate::nvhttp::{LaunchRequest, LaunchResponse, NvHttpClient, NvHttpError, ServerInfo};
use crate::rtsp::describe::video_format;
use crate::rtsp::{ClientParams, RtspError, RtspOutcome, StreamSettings};
use crate::video::{DepacketizerConfig, VideoCodec, VideoError, VideoFrame, VideoStats};
use crate::AppVersion;

/// What to stream.
#[derive(Debug, Clone)]
pub struct SessionConfig {
    /// App to launch (ignored by hosts when resuming).
    pub app_id: u32,
    /// Resolution, fps, bitrate, codecs, audio layout, encryption wishes.
    pub settings: StreamSettings,
    /// Bitmask of attached gamepads for `/launch`.
    pub gamepad_mask: u32,
    /// Also play audio on the host.
    pub local_audio: bool,
}

impl SessionConfig {
    /// A stream of `app_id` with the given settings.
    pub fn new(app_id: u32, settings: StreamSettings) -> Self {
        Self {
            app_id,
            settings,
            gamepad_mask: 0,
            local_audio: false,
        }
    }

    /// The stream settings for this host: ours, with the host's `ServerCodecModeSupport` (which
    /// gates the 10-bit and 4:4:4 formats in the RTSP codec choice).
    pub fn settings_for(&self, info: &ServerInfo) -> StreamSettings {
        StreamSettings {
            server_codec_mode_support: info.codec_support(),
            ..self.settings.clone()
        }
    }

    /// The `/launch` (or `/resume`) request for this stream, with a fresh random `rikey` and
    /// `rikeyid` ([`LaunchRequest::to_query`] is what goes on the wire).
    pub fn launch_request(&self) -> LaunchRequest {
        let s = &self.settings;
        let mut request = LaunchRequest::new(self.app_id, s.width, s.height, s.fps);
        request.surround_audio_info =
            crate::nvhttp::surround_audio_info(u32::from(s.audio_channels), s.audio_channel_mask);
        request.remote_controllers_bitmap = self.gamepad_mask;
        request.gcmap = self.gamepad_mask;
        request.local_audio_play_mode = self.local_audio;
        request
    }
}

/// The RTSP handshake's input after `/launch` answered `launched`: the host's `sessionUrl0` and
/// the launch key (for `rtspenc://`).
pub fn rtsp_params(
    version: AppVersion,
    host_ip: IpAddr,
    request: &LaunchRequest,
    launched: LaunchResponse,
    settings: StreamSettings,
) -> ClientParams {
    ClientParams {
        app_version: version,
        session_url: launched.session_url.unwrap_or_default(),
        rikey: Some(request.ri_key),
        host_addr: host_ip,
        stream: settings,
    }
}

/// What the stream's sans-IO core is set up with once RTSP has negotiated `outcome`: the ports and
/// ping payloads of SETUP, the codec and packet size of DESCRIBE/ANNOUNCE, the launch key for
/// video, audio and control encryption with the negotiated IV style, and the ENet connect data.
/// `seed` is `None` (ENet's own randomness); tests fix it.
pub fn stream_params(
    version: AppVersion,
    host_ip: IpAddr,
    request: &LaunchRequest,
    outcome: &RtspOutcome,
) -> StreamParams {
    let key = request.ri_key;
    let codec = match outcome.video_format {
        f if f & video_format::MASK_AV1 != 0 => VideoCodec::Av1,
        f if f & video_format::MASK_H265 != 0 => VideoCodec::Hevc,
        _ => VideoCodec::H264,
    };
    let iv_style = if outcome.control_v2 {
        IvStyle::V2
    } else {
        IvStyle::Nvidia
    };
    let ri_key_id = request.ri_key_id as u32;
    StreamParams {
        host_ip,
        video_port: outcome.video_port,
        audio_port: outcome.audio_port,
        control_port: outcome.control_port,
        video_ping_payload: outcome.video_ping_payload,
        audio_ping_payload: outcome.audio_ping_payload,
        ping_interval: crate::ping::PING_INTERVAL,
        video: DepacketizerConfig {
            packet_size: outcome.announce.wire_packet_size() as usize,
            host_version: version,
            codec,
            key: outcome.video_encryption.then_some(key),
        },
        audio: AudioDepacketizerConfig::for_host(
            version,
            outcome.audio_packet_duration_ms,
            outcome
                .audio_encryption
                .then(|| AudioEncryption::new(key, ri_key_id)),
        ),
        control: ControlConfig::new(outcome.control_connect_data, key, iv_style, version),
        ri_key_id,
        live_bitrate: false,
        seed: None,
    }
}

/// Everything a stream reports.
#[derive(Debug, Clone, PartialEq)]
pub enum SessionEvent {
    /// A complete, decodable access unit.
    Video(VideoFrame),
    /// Frames that could not be decoded; an IDR request has been sent.
    VideoLost {
        /// First lost frame.
        first: u32,
        /// Last lost frame.
        last: u32,
    },
    /// One Opus packet.
    Audio {
        /// RTP sequence number.
        sequence: u16,
        /// RTP timestamp (ms).
        timestamp: u32,
        /// The packet.
        opus: Vec<u8>,
        /// Rebuilt by FEC.
        recovered: bool,
    },
    /// An audio packet that is gone: conceal it.
    AudioLost {
        /// RTP sequence number.
        sequence: u16,
    },
    /// Rumble for a controller.
    Rumble {
        /// Controller number.
        controller: u16,
        /// Low-frequency motor.
        low_freq: u16,
        /// High-frequency motor.
        high_freq: u16,
    },
    /// HDR mode switched.
    Hdr {
        /// HDR on.
        enabled: bool,
    },
    /// Any other host message (trigger rumble, LEDs, motion requests...).
    Host(HostMessage),
    /// The stream is over; nothing follows.
    Ended(EndCause),
}

/// Why a stream ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EndCause {
    /// The host sent a termination message.
    HostTerminated {
        /// Graceful or the error kind.
        reason: TerminationReason,
        /// moonlight-common-c's error code (0 = graceful).
        code: i32,
    },
    /// The control connection went away.
    Disconnected(DisconnectReason),
    /// We stopped it.
    Stopped,
}

/// Errors while starting or driving a stream.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The host name could not be resolved.
    #[error("cannot resolve host {0}")]
    Resolve(String),
    /// NVHTTP failed (launch, cancel...).
    #[error("host API: {0}")]
    NvHttp(#[from] NvHttpError),
    /// The RTSP handshake failed.
    #[error("RTSP: {0}")]
    Rtsp(#[from] RtspError),
    /// The control stream failed.
    #[error("control stream: {0}")]
    Control(#[from] ControlError),
    /// The video path failed.
    #[error("video: {0}")]
    Video(#[from] VideoError),
    /// The audio path failed.
    #[error("audio: {0}")]
    Audio(#[from] AudioError),
    /// The host does not support this input event.
    #[error("input event not supported by host {0}")]
    UnsupportedInput(AppVersion),
    /// A media or control socket could not be set up.
    #[error("stream sockets: {0}")]
    Socket(#[from] std::io::Error),
}

/// Counters of a running stream.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SessionStats {
    /// Video depacketizer counters.
    pub video: VideoStats,
    /// Audio depacketizer counters.
    pub audio: AudioStats,
    /// IDR requests sent.
    pub idr_requests: u64,
    /// Round trip to the host on the control stream, once measured.
    pub host_rtt: Option<std::time::Duration>,
}

/// Pause between the acknowledged ENet disconnect and `/cancel` in [`ClientSession::stop`], so the
/// host has handled the disconnect before the cancel arrives.
const DISCONNECT_SETTLE: std::time::Duration = std::time::Duration::from_millis(20);

async fn resolve(host: &str) -> Result<IpAddr, ClientError> {
    let trimmed = host.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = trimmed.parse::<IpAddr>() {
        return Ok(ip);
    }
    tokio::net::lookup_host((trimmed, 0))
        .await
        .ok()
        .and_then(|mut addrs| addrs.next())
        .map(|a| a.ip())
        .ok_or_else(|| ClientError::Resolve(host.to_string()))
}

/// A launch made ready: the host's address and `/serverinfo` read, nothing started on the host
/// yet ([`ClientSession::prepare`]). [`PreparedLaunch::launch`] does the rest.
///
/// Split so that a caller that must not overlap launches on one host (Wolf matches RTSP requests
/// to sessions by the client's IP) waits for its turn after the work that may overlap.
pub struct PreparedLaunch {
    http: Arc<NvHttpClient>,
    config: SessionConfig,
    host_ip: IpAddr,
    info: ServerInfo,
}

impl std::fmt::Debug for PreparedLaunch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PreparedLaunch")
            .field("host_ip", &self.host_ip)
            .field("app_id", &self.config.app_id)
            .finish_non_exhaustive()
    }
}

impl ClientSession {
    /// Launches (or resumes) the app and brings every stream up. Events arrive on the receiver.
    pub async fn start(
        http: Arc<NvHttpClient>,
        config: SessionConfig,
    ) -> Result<(ClientSession, mpsc::Receiver<SessionEvent>), ClientError> {
        Self::prepare(http, config).await?.launch().await
    }

    /// The part of [`ClientSession::start`] that changes nothing on the host: the address
    /// resolved and `/serverinfo` read.
    pub async fn prepare(
        http: Arc<NvHttpClient>,
        config: SessionConfig,
    ) -> Result<PreparedLaunch, ClientError> {
        let host_ip = resolve(&http.address().host).await?;
        let info = http.server_info().await?;
        Ok(PreparedLaunch {
            http,
            config,
            host_ip,
            info,
        })
    }
}

impl PreparedLaunch {
    /// [`PreparedLaunch::launch_in_place`], driven by a task of its own whose events arrive on
    /// the receiver.
    pub async fn launch(
        self,
    ) -> Result<(ClientSession, mpsc::Receiver<SessionEvent>), ClientError> {
        Ok(ClientSession::spawn(self.launch_in_place().await?))
    }

    /// `/launch` (or `/resume`), the RTSP handshake, the sockets and the control stream; the
    /// caller drives the stream ([`ClientStream::next_event`]).
    pub async fn launch_in_place(self) -> Result<ClientStream, ClientError> {
        let PreparedLaunch {
            http,
            config,
            host_ip,
            info,
        } = self;
        let version = info.app_version();
        let settings = config.settings_for(&info);
        let request = config.launch_request();
        let launched = if info.should_resume() {
            http.resume(&request).await?
        } else {
            http.launch(&request).await?
        };

        let params = rtsp_params(version, host_ip, &request, launched, settings);
        let rtsp_addr = SocketAddr::new(host_ip, params.rtsp_port());
        let outcome = crate::rtsp::client::handshake(rtsp_addr, params).await?;
        let mut params = stream_params(version, host_ip, &request, &outcome);
        params.live_bitrate = info.has_live_bitrate();
        let core = ClientCore::new(params, std::time::Instant::now())?;
        let mic = outcome.mic_port.map(|_| {
            crate::mic::MicPacketizer::new(
                outcome
                    .mic_encryption
                    .then(|| AudioEncryption::new(request.ri_key, request.ri_key_id as u32)),
            )
        });
        ClientStream::connect(http, outcome, core, host_ip, mic).await
    }
}
