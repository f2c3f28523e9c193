//! The client half: a sans-IO [`ClientHandshake`] that yields each request (already sealed for
//! `rtspenc://`) and consumes each response, plus the tokio [`handshake`] driver that runs it over
//! one TCP connection per request the way moonlight-common-c does.

use std::fmt;
use std::net::IpAddr;

use super::crypt::{self, Direction};
use super::describe::{encryption, video_format, HostCapabilities, OpusConfig};
use super::fields;
use super::message::{RtspRequest, RtspResponse};
use super::sdp::{
    audio_packet_duration, high_quality_surround, AnnounceParams, HIGH_AUDIO_BITRATE_THRESHOLD,
};
use super::{
    RtspError, DEFAULT_AUDIO_PORT, DEFAULT_CONTROL_PORT, DEFAULT_RTSP_PORT, DEFAULT_VIDEO_PORT,
};
use crate::crypto::GcmKey;
use crate::version::AppVersion;

const IF_MODIFIED_SINCE: &str = "Thu, 01 Jan 1970 00:00:00 GMT";

/// The user's stream settings and decoder capabilities (what moonlight-common-c's `STREAM_CONFIGURATION`
/// and decoder callbacks carry).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamSettings {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Frames per second.
    pub fps: u32,
    /// Max video payload per packet (multiple of 16; 1392 on a LAN, 1024 remote IPv4).
    pub packet_size: u32,
    /// Total bitrate in kbps.
    pub bitrate_kbps: u32,
    /// Streaming over the internet.
    pub remote: bool,
    /// Encoder slices per frame the decoder wants (0 ⇒ 1).
    pub slices_per_frame: u8,
    /// Decodable formats ([`video_format`] bits).
    pub supported_formats: u32,
    /// `/serverinfo` `ServerCodecModeSupport` (gates the 10-bit / 4:4:4 variants).
    pub server_codec_mode_support: u32,
    /// Decoder supports reference-frame invalidation.
    pub rfi_supported_by_decoder: bool,
    /// Display refresh rate × 100.
    pub refresh_rate_x100: u32,
    /// Audio channels (2, 6, 8).
    pub audio_channels: u8,
    /// Audio channel mask (0x3, 0x3F, 0x63F).
    pub audio_channel_mask: u32,
    /// Opus decoder is slow (forces 10 ms packets, no HQ, low-quality target URL).
    pub slow_opus_decoder: bool,
    /// Decoder accepts any packet duration (10 ms at low bitrates).
    pub arbitrary_audio_duration: bool,
    /// 0 Rec.601, 1 Rec.709, 2 Rec.2020.
    pub color_space: u8,
    /// 0 limited, 1 full.
    pub color_range: u8,
    /// Opt into video encryption (used if the host supports it).
    pub want_video_encryption: bool,
    /// Opt into audio encryption.
    pub want_audio_encryption: bool,
    /// Set up the forks' microphone stream when the host offers it ([`crate::mic`]).
    pub microphone: bool,
}

impl Default for StreamSettings {
    fn default() -> Self {
        Self {
            width: 1920,
            height: 1080,
            fps: 60,
            packet_size: 1392,
            bitrate_kbps: 20_000,
            remote: false,
            slices_per_frame: 1,
            supported_formats: video_format::H264,
            server_codec_mode_support: 0,
            rfi_supported_by_decoder: false,
            refresh_rate_x100: 6000,
            audio_channels: 2,
            audio_channel_mask: 0x3,
            slow_opus_decoder: false,
            arbitrary_audio_duration: false,
            color_space: 1,
            color_range: 0,
            want_video_encryption: false,
            want_audio_encryption: false,
            microphone: false,
        }
    }
}

/// Input of the client handshake.
#[derive(Clone)]
pub struct ClientParams {
    /// The host's appversion.
    pub app_version: AppVersion,
    /// `sessionUrl0` from `/launch` (may be empty: then `rtsp://<host>:48010`).
    pub session_url: String,
    /// The launch `rikey`; required when `session_url` is `rtspenc://`.
    pub rikey: Option<[u8; 16]>,
    /// The host's address (the `Host` header, the SDP `o=` line).
    pub host_addr: IpAddr,
    /// Stream settings.
    pub stream: StreamSettings,
}

impl fmt::Debug for ClientParams {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientParams")
            .field("app_version", &self.app_version)
            .field("session_url", &self.session_url)
            .field("rikey", &self.rikey.map(|_| "<redacted>"))
            .field("host_addr", &self.host_addr)
            .field("stream", &self.stream)
            .finish()
    }
}

impl ClientParams {
    /// The RTSP port from `sessionUrl0` (48010 if it has none).
    pub fn rtsp_port(&self) -> u16 {
        fields::port_from_session_url(&self.session_url).unwrap_or(DEFAULT_RTSP_PORT)
    }

    /// True for `rtspenc://` session URLs.
    pub fn encrypted(&self) -> bool {
        self.session_url.contains("rtspenc://")
    }
}

/// What the handshake established; everything the media/control layers need next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtspOutcome {
    /// UDP audio port (SETUP audio, default 48000).
    pub audio_port: u16,
    /// UDP video port (SETUP video, default 47998).
    pub video_port: u16,
    /// UDP ENet control port (SETUP control, default 47999).
    pub control_port: u16,
    /// RTSP session id.
    pub session_id: String,
    /// `X-SS-Ping-Payload` of SETUP audio (None ⇒ legacy pings).
    pub audio_ping_payload: Option<[u8; 16]>,
    /// `X-SS-Ping-Payload` of SETUP video.
    pub video_ping_payload: Option<[u8; 16]>,
    /// `X-SS-Connect-Data` of SETUP control (0 if absent), the ENet CONNECT data.
    pub control_connect_data: u32,
    /// What DESCRIBE said.
    pub host: HostCapabilities,
    /// The negotiated [`video_format`] bit.
    pub video_format: u32,
    /// The `x-ss-general.encryptionEnabled` bits sent.
    pub encryption_enabled: u32,
    /// Control stream uses 12-byte V2 IVs (else 16-byte "NVIDIA" IVs).
    pub control_v2: bool,
    /// Video packets are encrypted.
    pub video_encryption: bool,
    /// Audio packets are encrypted.
    pub audio_encryption: bool,
    /// The Opus layout to decode with.
    pub opus: OpusConfig,
    /// High-quality surround was requested.
    pub high_quality_audio: bool,
    /// Opus packet duration in ms.
    pub audio_packet_duration_ms: u32,
    /// The microphone's UDP port, when the host offered it, the settings asked and SETUP passed.
    pub mic_port: Option<u16>,
    /// The microphone payload is encrypted ([`crate::mic::ENCRYPTION_MIC`] was sent).
    pub mic_encryption: bool,
    /// The exact ANNOUNCE parameters sent (video packet size etc.).
    pub announce: AnnounceParams,
}

/// What the driver must do next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientStep {
    /// Open a new TCP connection, write these bytes, read to EOF and pass the bytes to
    /// [`ClientHandshake::receive`].
    Send(Vec<u8>),
    /// The handshake is complete.
    Done(Box<RtspOutcome>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stream {
    Audio,
    Video,
    Control,
    Mic,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Step {
    Options,
    Describe,
    Setup(Stream, &'static str),
    Announce(&'static str),
    Play(&'static str),
}

struct Negotiated {
    caps: HostCapabilities,
    video_format: u32,
    encryption_enabled: u32,
    audio_encryption: bool,
    opus: OpusConfig,
    high_quality: bool,
    packet_duration: u32,
    mic: Option<crate::mic::MicOffer>,
}

/// The sans-IO client state machine.
pub struct ClientHandshake {
    params: ClientParams,
    steps: Vec<Step>,
    index: usize,
    cseq: u32,
    key: Option<GcmKey>,
    enc_seq: u32,
    target_url: String,
    host_header: String,
    last_request: Option<RtspRequest>,
    session_id: Option<String>,
    ports: [u16; 3],
    ping: [Option<[u8; 16]>; 2],
    connect_data: u32,
    negotiated: Option<Negotiated>,
    mic_port: Option<u16>,
}

impl fmt::Debug for ClientHandshake {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientHandshake")
            .field("params", &self.params)
            .field("step", &self.steps.get(self.index))
            .field("cseq", &self.cseq)
            .finish_non_exhaustive()
    }
}

fn url_safe(addr: IpAddr) -> String {
    match addr {
        IpAddr::V4(a) => a.to_string(),
        IpAddr::V6(a) => format!("[{a}]"),
    }
}

impl ClientHandshake {
    /// Plans the request sequence for the host generation.
    pub fn new(params: ClientParams) -> Result<Self, RtspError> {
        let v = params.app_version;
        if v.major < 3 {
            return Err(RtspError::Unsupported("appversion major < 3"));
        }
        if v.uses_rtsp_over_enet() {
            return Err(RtspError::Unsupported(
                "RTSP over ENet (GFE appversion 5..7 with patch < 404)",
            ));
        }
        if params.stream.packet_size < 16 {
            return Err(RtspError::InvalidSettings("packet size below 16"));
        }
        let key = if params.encrypted() {
            Some(GcmKey::new(
                params.rikey.as_ref().ok_or(RtspError::MissingKey)?,
            ))
        } else {
            None
        };
        let mut steps = vec![Step::Options, Step::Describe];
        if v.major >= 5 {
            steps.push(Step::Setup(Stream::Audio, "streamid=audio/0/0"));
            steps.push(Step::Setup(Stream::Video, "streamid=video/0/0"));
            if v.at_least(7, 1, 431) {
                steps.push(Step::Setup(Stream::Control, "streamid=control/13/0"));
                steps.push(Step::Announce("streamid=control/13/0"));
                steps.push(Step::Play("/"));
            } else {
                steps.push(Step::Setup(Stream::Control, "streamid=control/1/0"));
                steps.push(Step::Announce("streamid=video"));
                steps.push(Step::Play("streamid=video"));
                steps.push(Step::Play("streamid=audio"));
            }
        } else {
            steps.push(Step::Setup(Stream::Audio, "streamid=audio"));
            steps.push(Step::Setup(Stream::Video, "streamid=video"));
            steps.push(Step::Announce("streamid=video"));
            steps.push(Step::Play("streamid=video"));
            steps.push(Step::Play("streamid=audio"));
        }
        // §3.2: the real URL (⇒ high-quality audio on GFE) only when the stream can afford it.
        let s = &params.stream;
        let real_target = s.bitrate_kbps >= HIGH_AUDIO_BITRATE_THRESHOLD
            && !s.slow_opus_decoder
            && (!s.remote || s.audio_channels <= 2);
        let port = params.rtsp_port();
        let (target_url, host_header) = if real_target {
            // The URL and its host part as given by `/launch`, else one built from the host address.
            match fields::url_host(&params.session_url) {
                Some(host) => (params.session_url.clone(), host.to_string()),
                None => {
                    let host = url_safe(params.host_addr);
                    (format!("rtsp://{host}:{port}"), host)
                }
            }
        } else {
            (format!("rtsp://0.0.0.0:{port}"), "0.0.0.0".to_string())
        };
        Ok(Self {
            params,
            steps,
            index: 0,
            cseq: 0,
            key,
            enc_seq: 0,
            target_url,
            host_header,
            last_request: None,
            session_id: None,
            ports: [DEFAULT_AUDIO_PORT, DEFAULT_VIDEO_PORT, DEFAULT_CONTROL_PORT],
            ping: [None, None],
            connect_data: 0,
            negotiated: None,
            mic_port: None,
        })
    }

    /// The first request (OPTIONS).
    pub fn start(&mut self) -> Result<ClientStep, RtspError> {
        self.index = 0;
        self.emit()
    }

    /// The plain-text form of the request most recently emitted (for logs and tests).
    pub fn last_request(&self) -> Option<&RtspRequest> {
        self.last_request.as_ref()
    }

    /// Consumes the complete response to the last request.
    pub fn receive(&mut self, bytes: &[u8]) -> Result<ClientStep, RtspError> {
        let response = self.decode(bytes)?;
        let step = self
            .steps
            .get(self.index)
            .cloned()
            .ok_or(RtspError::Malformed("response after completion"))?;
        // A host that refuses the microphone still streams (moonlight-common-c's forks do the same).
        if response.status != 200 && step != Step::Setup(Stream::Mic, self.mic_target()) {
            let method = self
                .last_request
                .as_ref()
                .map(|r| r.method.clone())
                .unwrap_or_default();
            return Err(RtspError::Status {
                method,
                status: response.status,
            });
        }
        match step {
            Step::Describe => {
                if response.payload.is_empty() {
                    return Err(RtspError::EmptyDescribe);
                }
                let n = self.negotiate(HostCapabilities::parse(&response.payload))?;
                let first_announce = self
                    .steps
                    .iter()
                    .position(|s| matches!(s, Step::Announce(_)));
                if let Some(at) = first_announce.filter(|_| n.mic.is_some()) {
                    self.steps
                        .insert(at, Step::Setup(Stream::Mic, self.mic_target()));
                }
                self.negotiated = Some(n);
            }
            Step::Setup(stream, _) => self.on_setup(stream, &response)?,
            Step::Options | Step::Announce(_) | Step::Play(_) => {}
        }
        self.index += 1;
        if self.index < self.steps.len() {
            self.emit()
        } else {
            self.finish().map(|o| ClientStep::Done(Box::new(o)))
        }
    }

    fn decode(&self, bytes: &[u8]) -> Result<RtspResponse, RtspError> {
        if bytes.is_empty() {
            return Err(RtspError::EmptyResponse);
        }
        match &self.key {
            Some(key) => {
                if !crypt::looks_encrypted(bytes) {
                    return Err(RtspError::UnexpectedPlaintext);
                }
                let (_, plain) = crypt::open(key, Direction::HostToClient, bytes)?;
                RtspResponse::parse(&plain)
            }
            None => RtspResponse::parse(bytes),
        }
    }

    fn mic_target(&self) -> &'static str {
        match self.params.app_version.major >= 5 {
            true => crate::mic::SETUP_TARGET,
            false => crate::mic::SETUP_TARGET_LEGACY,
        }
    }

    fn negotiate(&self, caps: HostCapabilities) -> Result<Negotiated, RtspError> {
        let s = &self.params.stream;
        let v = self.params.app_version;
        let mic = crate::mic::parse_offer(&caps.payload).filter(|_| s.microphone);
        let video_format =
            caps.choose_video_format(s.supported_formats, s.server_codec_mode_support);
        let (sup, req) = (caps.encryption_supported, caps.encryption_requested);
        // Only Sunshine-style hosts negotiate; a host request is honoured even against the client's
        // opt-out (moonlight-common-c does the same, with a warning).
        let mut encryption_enabled = 0;
        if v.is_sunshine() {
            encryption_enabled |= sup & encryption::CONTROL_V2;
            for (bit, wanted) in [
                (encryption::VIDEO, s.want_video_encryption),
                (encryption::AUDIO, s.want_audio_encryption),
            ] {
                if (sup & bit != 0 && wanted) || (req & bit != 0 && !wanted) {
                    encryption_enabled |= bit;
                }
            }
            // The microphone is encrypted whenever the host can decrypt it.
            if mic.is_some() {
                encryption_enabled |= sup & crate::mic::ENCRYPTION_MIC;
            }
        }
        let audio_encryption = v.at_least(7, 1, 431)
            && (s.want_audio_encryption || encryption_enabled & encryption::AUDIO != 0);
        let (normal, hq) = caps.opus_configs(s.audio_channels);
        let normal = normal.ok_or(RtspError::NoOpusConfig(s.audio_channels))?;
        let high_quality = high_quality_surround(
            v,
            s.bitrate_kbps,
            s.audio_channels,
            hq.is_some(),
            s.slow_opus_decoder,
        );
        let opus = match (high_quality, hq) {
            (true, Some(hq)) => hq,
            _ => normal,
        };
        let packet_duration = audio_packet_duration(
            v,
            high_quality,
            s.slow_opus_decoder,
            s.arbitrary_audio_duration,
            s.bitrate_kbps,
        );
        Ok(Negotiated {
            caps,
            video_format,
            encryption_enabled,
            audio_encryption,
            opus,
            high_quality,
            packet_duration,
            mic,
        })
    }

    fn on_setup(&mut self, stream: Stream, response: &RtspResponse) -> Result<(), RtspError> {
        if stream == Stream::Mic && response.status != 200 {
            return Ok(());
        }
        if self.session_id.is_none() {
            let header = response
                .headers
                .get("Session")
                .ok_or(RtspError::MissingSession)?;
            self.session_id = Some(fields::session_id(header)?);
        }
        let port = response
            .headers
            .get("Transport")
            .and_then(fields::server_port);
        let ping = response
            .headers
            .get("X-SS-Ping-Payload")
            .and_then(fields::ping_payload);
        match stream {
            Stream::Audio => {
                self.ports[0] = port.unwrap_or(DEFAULT_AUDIO_PORT);
                self.ping[0] = ping;
            }
            Stream::Video => {
                self.ports[1] = port.unwrap_or(DEFAULT_VIDEO_PORT);
                self.ping[1] = ping;
            }
            Stream::Mic => {
                let offered = self.negotiated.as_ref().and_then(|n| n.mic?.port);
                self.mic_port = port.or(offered);
            }
            Stream::Control => {
                self.ports[2] = port.unwrap_or(DEFAULT_CONTROL_PORT);
                self.connect_data = response
                    .headers
                    .get("X-SS-Connect-Data")
                    .map(fields::connect_data)
                    .unwrap_or(0);
            }
        }
        Ok(())
    }

    fn announce_params(&self) -> Result<AnnounceParams, RtspError> {
        let n = self
            .negotiated
            .as_ref()
            .ok_or(RtspError::Malformed("ANNOUNCE before DESCRIBE"))?;
        let s = &self.params.stream;
        Ok(AnnounceParams {
            app_version: self.params.app_version,
            host_addr: self.params.host_addr,
            rtsp_port: self.params.rtsp_port(),
            width: s.width,
            height: s.height,
            fps: s.fps,
            // FEC works in 16-byte units.
            packet_size: s.packet_size - s.packet_size % 16,
            bitrate_kbps: s.bitrate_kbps,
            remote: s.remote,
            slices_per_frame: s.slices_per_frame,
            video_format: n.video_format,
            rfi_supported_by_decoder: s.rfi_supported_by_decoder,
            refresh_rate_x100: s.refresh_rate_x100,
            audio_channels: s.audio_channels,
            audio_channel_mask: s.audio_channel_mask,
            high_quality_surround: n.high_quality,
            audio_packet_duration_ms: n.packet_duration,
            color_space: s.color_space,
            color_range: s.color_range,
            encryption_enabled: n.encryption_enabled,
            audio_encryption: n.audio_encryption,
            video_port: self.ports[1],
        })
    }

    fn build_request(&self, step: &Step) -> Result<RtspRequest, RtspError> {
        let (method, target) = match step {
            Step::Options => ("OPTIONS", self.target_url.as_str()),
            Step::Describe => ("DESCRIBE", self.target_url.as_str()),
            Step::Setup(_, t) => ("SETUP", *t),
            Step::Announce(t) => ("ANNOUNCE", *t),
            Step::Play(t) => ("PLAY", *t),
        };
        let mut req = RtspRequest::new(method, target)
            .with_header("CSeq", self.cseq.to_string())
            .with_header(
                "X-GS-ClientVersion",
                self.params.app_version.client_version().to_string(),
            )
            .with_header("Host", self.host_header.clone());
        let session = self.session_id.clone();
        match step {
            Step::Options => {}
            Step::Describe => {
                req.headers.push("Accept", "application/sdp");
                req.headers.push("If-Modified-Since", IF_MODIFIED_SINCE);
            }
            Step::Setup(..) => {
                if let Some(id) = session {
                    req.headers.push("Session", id);
                }
                let transport = if self.params.app_version.major >= 6 {
                    "unicast;X-GS-ClientPort=50000-50001"
                } else {
                    " "
                };
                req.headers.push("Transport", transport);
                req.headers.push("If-Modified-Since", IF_MODIFIED_SINCE);
            }
            Step::Announce(_) => {
                let payload = self.announce_params()?.to_payload();
                req.headers.push("Session", session.unwrap_or_default());
                req.headers.push("Content-type", "application/sdp");
                req.headers
                    .push("Content-length", payload.len().to_string());
                req.payload = payload;
            }
            Step::Play(_) => req.headers.push("Session", session.unwrap_or_default()),
        }
        Ok(req)
    }

    fn emit(&mut self) -> Result<ClientStep, RtspError> {
        let step = self
            .steps
            .get(self.index)
            .cloned()
            .ok_or(RtspError::Malformed("no request left"))?;
        self.cseq += 1;
        let req = self.build_request(&step)?;
        let plain = req.to_bytes();
        self.last_request = Some(req);
        let bytes = match &self.key {
            Some(key) => {
                self.enc_seq = self.enc_seq.wrapping_add(1);
                crypt::seal(key, self.enc_seq, Direction::ClientToHost, &plain)?
            }
            None => plain,
        };
        Ok(ClientStep::Send(bytes))
    }

    fn finish(&mut self) -> Result<RtspOutcome, RtspError> {
        let announce = self.announce_params()?;
        let n = self
            .negotiated
            .take()
            .ok_or(RtspError::Malformed("no DESCRIBE"))?;
        Ok(RtspOutcome {
            audio_port: self.ports[0],
            video_port: self.ports[1],
            control_port: self.ports[2],
            session_id: self.session_id.clone().ok_or(RtspError::MissingSession)?,
            audio_ping_payload: self.ping[0],
            video_ping_payload: self.ping[1],
            control_connect_data: self.connect_data,
            host: n.caps,
            video_format: n.video_format,
            encryption_enabled: n.encryption_enabled,
            control_v2: n.encryption_enabled & encryption::CONTROL_V2 != 0,
            video_encryption: n.encryption_enabled & encryption::VIDEO != 0,
            audio_encryption: n.audio_encryption,
            opus: n.opus,
            high_quality_audio: n.high_quality,
            audio_packet_duration_ms: n.packet_duration,
            mic_port: self.mic_port,
            mic_encryption: self.mic_port.is_some()
                && n.encryption_enabled & crate::mic::ENCRYPTION_MIC != 0,
            announce,
        })
    }
}

mod io;
pub use io::{handshake, transact, CONNECT_RETRY_INTERVAL, CONNECT_TIMEOUT, READ_TIMEOUT};

#[cfg(test)]
mod tests;
