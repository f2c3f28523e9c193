//! The client half: a sans-IO [`ClientHandshake`] that yields each request (already sealed for
//! `rtspenc://`) and consumes each response, plus the tokio [`handshake`] driver that runs it over
//! one TCP connection per request the way moonlight-common-c does.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::crypt::{self, Direction, ENCRYPTED_HEADER_LEN};
use super::describe::{encryption, video_format, HostCapabilities, OpusConfig};
use super::fields;
use super::message::{RtspRequest, RtspResponse};
use super::sdp::{
    audio_packet_duration, high_quality_surround, AnnounceParams, HIGH_AUDIO_BITRATE_THRESHOLD,
};
use super::{
    RtspError, DEFAULT_AUDIO_PORT, DEFAULT_CONTROL_PORT, DEFAULT_RTSP_PORT, DEFAULT_VIDEO_PORT,
    MAX_MESSAGE_SIZE,
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
        if response.status != 200 {
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
                self.negotiated = Some(self.negotiate(HostCapabilities::parse(&response.payload))?);
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

    fn negotiate(&self, caps: HostCapabilities) -> Result<Negotiated, RtspError> {
        let s = &self.params.stream;
        let v = self.params.app_version;
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
        })
    }

    fn on_setup(&mut self, stream: Stream, response: &RtspResponse) -> Result<(), RtspError> {
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
            announce,
        })
    }
}

/// TCP connect budget, including `ECONNREFUSED` retries.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Pause between retries after `ECONNREFUSED` (GFE answers `/launch` before it listens).
pub const CONNECT_RETRY_INTERVAL: Duration = Duration::from_millis(500);
/// The time a whole response may take, from the request written to the host's close. A budget for
/// the whole response, not for each read: a host that trickles a byte now and then (broken, or
/// hostile) would otherwise hold the stream's setup for up to [`super::MAX_MESSAGE_SIZE`] reads.
pub const READ_TIMEOUT: Duration = Duration::from_secs(15);

/// Runs the whole handshake against `addr` (the host's RTSP socket: host address + port from
/// `sessionUrl0`, see [`ClientParams::rtsp_port`]).
pub async fn handshake(addr: SocketAddr, params: ClientParams) -> Result<RtspOutcome, RtspError> {
    let mut hs = ClientHandshake::new(params)?;
    let mut step = hs.start()?;
    // Bounded: the plan has at most 8 requests.
    for _ in 0..16 {
        match step {
            ClientStep::Done(outcome) => return Ok(*outcome),
            ClientStep::Send(bytes) => {
                let response = transact(addr, &bytes).await?;
                step = hs.receive(&response)?;
            }
        }
    }
    Err(RtspError::Malformed("handshake did not finish"))
}

async fn connect(addr: SocketAddr) -> Result<TcpStream, RtspError> {
    let deadline = Instant::now() + CONNECT_TIMEOUT;
    loop {
        let remaining = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(remaining, TcpStream::connect(addr)).await {
            Err(_) => return Err(RtspError::Timeout("connect")),
            Ok(Ok(stream)) => return Ok(stream),
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                if Instant::now() + CONNECT_RETRY_INTERVAL >= deadline {
                    return Err(RtspError::Io(e));
                }
                tokio::time::sleep(CONNECT_RETRY_INTERVAL).await;
            }
            Ok(Err(e)) => return Err(RtspError::Io(e)),
        }
    }
}

/// One request/response exchange: connect, write, read until the host closes. Bounded in size
/// ([`super::MAX_MESSAGE_SIZE`] plus the encryption header: [`RtspError::TooLarge`]) and in time
/// ([`READ_TIMEOUT`] for the whole response: [`RtspError::Timeout`] `"read"` when nothing came,
/// `"response"` when the host began but never finished).
pub async fn transact(addr: SocketAddr, request: &[u8]) -> Result<Vec<u8>, RtspError> {
    let mut stream = connect(addr).await?;
    stream.set_nodelay(true)?;
    stream.write_all(request).await?;
    stream.flush().await?;
    let mut response = Vec::new();
    let mut chunk = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + READ_TIMEOUT;
    loop {
        let n = tokio::time::timeout_at(deadline, stream.read(&mut chunk))
            .await
            .map_err(|_| {
                RtspError::Timeout(if response.is_empty() {
                    "read"
                } else {
                    "response"
                })
            })??;
        if n == 0 {
            return Ok(response);
        }
        response.extend_from_slice(&chunk[..n]);
        if response.len() > MAX_MESSAGE_SIZE + ENCRYPTED_HEADER_LEN {
            return Err(RtspError::TooLarge);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rtsp::describe::DescribeParams;
    use crate::rtsp::sdp::StreamConfig;

    const K: [u8; 16] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15];

    fn params(version: AppVersion, url: &str) -> ClientParams {
        ClientParams {
            app_version: version,
            session_url: url.to_string(),
            rikey: Some(K),
            host_addr: "192.168.1.10".parse().unwrap(),
            stream: StreamSettings::default(),
        }
    }

    fn ok(cseq: u32) -> RtspResponse {
        RtspResponse::new(200).with_header("CSeq", cseq.to_string())
    }

    /// Plays a scripted host: returns every plain request seen and the outcome.
    fn run(
        mut hs: ClientHandshake,
        mut answer: impl FnMut(&RtspRequest) -> RtspResponse,
    ) -> Result<(Vec<RtspRequest>, RtspOutcome), RtspError> {
        let mut seen = Vec::new();
        let mut step = hs.start()?;
        for _ in 0..16 {
            match step {
                ClientStep::Done(o) => return Ok((seen, *o)),
                ClientStep::Send(bytes) => {
                    let req = RtspRequest::parse(&bytes)?;
                    let resp = answer(&req);
                    seen.push(req);
                    step = hs.receive(&resp.to_bytes())?;
                }
            }
        }
        panic!("did not finish");
    }

    fn sunshine_host(req: &RtspRequest) -> RtspResponse {
        let cseq = req.cseq().unwrap();
        match (req.method.as_str(), req.target.as_str()) {
            ("DESCRIBE", _) => {
                let mut r = ok(cseq);
                r.payload = DescribeParams::sunshine(true, false)
                    .to_payload()
                    .into_bytes();
                r
            }
            ("SETUP", t) => {
                let port = if t.contains("audio") {
                    48200
                } else if t.contains("video") {
                    48100
                } else {
                    47990
                };
                let mut r = ok(cseq)
                    .with_header("Session", "DEADBEEFCAFE;timeout = 90")
                    .with_header("Transport", format!("server_port={port}"));
                if t.contains("control") {
                    r.headers.push("X-SS-Connect-Data", "0x10");
                } else {
                    r.headers.push("X-SS-Ping-Payload", "ABCDEFGHIJKLMNOP");
                }
                r
            }
            _ => ok(cseq),
        }
    }

    #[test]
    fn vector_7_4_is_the_first_encrypted_request() {
        let mut hs =
            ClientHandshake::new(params(AppVersion::SUNSHINE, "rtspenc://192.168.1.10:48010"))
                .unwrap();
        let ClientStep::Send(bytes) = hs.start().unwrap() else {
            panic!()
        };
        assert_eq!(
            hex::encode(bytes),
            "800000660000000168b5b12432cb8e2e412b872a46a51e3a9fe452003a42126629e9a38df3e5ba69a1abdae54db4096793128c2f908f8f9d3020facd1557180ae8b351849ce52c58abeb8e9b7c4f02f8d7f8a9ca29bf268920b175a9e60e05a0693312d74d2861c5e81816295c8c854c86548e87d9d68c57be7198fabd0d"
        );
        // A plain answer to an encrypted request is refused.
        assert!(matches!(
            hs.receive(&ok(1).to_bytes()),
            Err(RtspError::UnexpectedPlaintext)
        ));
    }

    #[test]
    fn modern_sequence_and_outcome() {
        let hs = ClientHandshake::new(params(AppVersion::SUNSHINE, "rtsp://192.168.1.10:48010"))
            .unwrap();
        let (reqs, out) = run(hs, sunshine_host).unwrap();
        let lines: Vec<String> = reqs
            .iter()
            .map(|r| format!("{} {}", r.method, r.target))
            .collect();
        assert_eq!(
            lines,
            [
                "OPTIONS rtsp://192.168.1.10:48010",
                "DESCRIBE rtsp://192.168.1.10:48010",
                "SETUP streamid=audio/0/0",
                "SETUP streamid=video/0/0",
                "SETUP streamid=control/13/0",
                "ANNOUNCE streamid=control/13/0",
                "PLAY /",
            ]
        );
        for (i, r) in reqs.iter().enumerate() {
            assert_eq!(r.cseq(), Some(i as u32 + 1));
            assert_eq!(r.headers.get("X-GS-ClientVersion"), Some("14"));
            assert_eq!(r.headers.get("Host"), Some("192.168.1.10"));
        }
        assert_eq!(
            reqs[1].to_bytes(),
            b"DESCRIBE rtsp://192.168.1.10:48010 RTSP/1.0\r\nCSeq: 2\r\nX-GS-ClientVersion: 14\r\nHost: 192.168.1.10\r\nAccept: application/sdp\r\nIf-Modified-Since: Thu, 01 Jan 1970 00:00:00 GMT\r\n\r\n"
        );
        assert_eq!(
            reqs[2].to_bytes(),
            b"SETUP streamid=audio/0/0 RTSP/1.0\r\nCSeq: 3\r\nX-GS-ClientVersion: 14\r\nHost: 192.168.1.10\r\nTransport: unicast;X-GS-ClientPort=50000-50001\r\nIf-Modified-Since: Thu, 01 Jan 1970 00:00:00 GMT\r\n\r\n"
        );
        assert_eq!(reqs[3].headers.get("Session"), Some("DEADBEEFCAFE"));
        let announce = &reqs[5];
        assert_eq!(
            announce.headers.get("Content-type"),
            Some("application/sdp")
        );
        assert_eq!(
            announce.headers.get("Content-length"),
            Some(announce.payload.len().to_string().as_str())
        );
        let names: Vec<&str> = announce.headers.iter().map(|(n, _)| n).collect();
        assert_eq!(
            names,
            [
                "CSeq",
                "X-GS-ClientVersion",
                "Host",
                "Session",
                "Content-type",
                "Content-length"
            ]
        );
        let cfg = StreamConfig::parse(&announce.payload).unwrap();
        assert_eq!(cfg.encryption_enabled, 1);
        assert!(String::from_utf8_lossy(&announce.payload).ends_with("m=video 48100  \r\n"));
        assert_eq!(
            (out.audio_port, out.video_port, out.control_port),
            (48200, 48100, 47990)
        );
        assert_eq!(out.session_id, "DEADBEEFCAFE");
        assert_eq!(out.audio_ping_payload, Some(*b"ABCDEFGHIJKLMNOP"));
        assert_eq!(out.control_connect_data, 16);
        assert_eq!(out.video_format, video_format::H264);
        assert!(out.control_v2 && !out.video_encryption && !out.audio_encryption);
        assert!(out.host.hevc && !out.high_quality_audio);
        assert_eq!((out.opus.channels, out.audio_packet_duration_ms), (2, 5));
    }

    #[test]
    fn wolf_like_host_defaults_and_audio_encryption() {
        let mut p = params(AppVersion::SUNSHINE, "rtsp://192.168.1.10:48010");
        p.stream.want_audio_encryption = true;
        p.stream.want_video_encryption = true;
        p.stream.supported_formats = video_format::H264 | video_format::H265;
        p.stream.audio_channels = 6;
        p.stream.audio_channel_mask = 0x3F;
        let hs = ClientHandshake::new(p).unwrap();
        let (reqs, out) = run(hs, |req| {
            let cseq = req.cseq().unwrap();
            match req.method.as_str() {
                "DESCRIBE" => {
                    let mut r = ok(cseq);
                    r.payload = DescribeParams::wolf(true, true).to_payload().into_bytes();
                    r
                }
                "SETUP" => ok(cseq)
                    .with_header("Session", "DEADBEEFCAFE;timeout = 90")
                    .with_header("Transport", "unicast"),
                _ => ok(cseq),
            }
        })
        .unwrap();
        assert_eq!(
            (out.audio_port, out.video_port, out.control_port),
            (48000, 47998, 47999)
        );
        assert_eq!(
            (out.audio_ping_payload, out.control_connect_data),
            (None, 0)
        );
        assert_eq!(out.video_format, video_format::H265);
        // Wolf: no encryptionSupported ⇒ no V2 / video, but audio via featureFlags 0x20.
        assert!(!out.control_v2 && !out.video_encryption && out.audio_encryption);
        assert_eq!(out.encryption_enabled, 0);
        let cfg = StreamConfig::parse(&reqs[5].payload).unwrap();
        assert_eq!(
            (
                cfg.nv_feature_flags,
                cfg.bit_stream_format,
                cfg.audio_channels
            ),
            (167, 1, 6)
        );
        // Wolf offers no HQ layout ⇒ normal quality even at 20 Mbps.
        assert!(!out.high_quality_audio && !cfg.audio_high_quality);
        assert_eq!((out.opus.streams, out.opus.coupled_streams), (4, 2));
    }

    /// Responses exactly as Wolf (Oct 2024) serialises them: CRLF, options sorted by name, DESCRIBE
    /// lines with its own GStreamer mappings and `featureFlags: 3` with a space.
    #[test]
    fn wolf_transcript() {
        let mut p = params(AppVersion::SUNSHINE, "rtsp://192.168.1.10:48010");
        p.stream.supported_formats =
            video_format::H264 | video_format::H265 | video_format::AV1_MAIN8;
        p.stream.audio_channels = 6;
        p.stream.audio_channel_mask = 0x3F;
        let mut hs = ClientHandshake::new(p).unwrap();
        let mut step = hs.start().unwrap();
        let mut cseq = 0;
        let mut sent = Vec::new();
        let out = loop {
            let bytes = match step {
                ClientStep::Send(bytes) => bytes,
                ClientStep::Done(out) => break out,
            };
            let req = RtspRequest::parse(&bytes).unwrap();
            // Wolf's grammar: CSeq must be the first header line.
            assert!(bytes
                .split(|&b| b == b'\n')
                .nth(1)
                .unwrap()
                .starts_with(b"CSeq: "));
            cseq += 1;
            let response = match (req.method.as_str(), req.target.as_str()) {
                ("DESCRIBE", _) => format!(
                    "RTSP/1.0 200 OK\r\nCSeq: {cseq}\r\n\r\nsprop-parameter-sets=AAAAAU\r\na=a=rtpmap:98 AV1/90000\r\n\
                     a=fmtp:97 surround-params=21101\r\na=fmtp:97 surround-params=642014235\r\n\
                     a=fmtp:97 surround-params=85301423675\r\na=x-ss-general.featureFlags: 3\r\n"
                ),
                ("SETUP", t) => {
                    let port = if t.contains("audio") { 48200 } else if t.contains("video") { 48100 } else { 47999 };
                    format!(
                        "RTSP/1.0 200 OK\r\nCSeq: {cseq}\r\nSession: DEADBEEFCAFE;timeout = 90\r\nTransport: server_port={port}\r\n\r\n"
                    )
                }
                _ => format!("RTSP/1.0 200 OK\r\nCSeq: {cseq}\r\n\r\n"),
            };
            sent.push(req);
            step = hs.receive(response.as_bytes()).unwrap();
        };
        assert_eq!(sent.len(), 7);
        assert_eq!(
            (out.audio_port, out.video_port, out.control_port),
            (48200, 48100, 47999)
        );
        assert_eq!(
            (
                out.audio_ping_payload,
                out.video_ping_payload,
                out.control_connect_data
            ),
            (None, None, 0)
        );
        assert_eq!(out.video_format, video_format::AV1_MAIN8);
        assert_eq!(out.host.feature_flags, 3);
        assert!(!out.control_v2 && !out.video_encryption && !out.audio_encryption);
        // Wolf's Vorbis-order 5.1 layout comes out right after the client fix-up.
        assert_eq!((out.opus.streams, out.opus.coupled_streams), (4, 2));
        assert_eq!(&out.opus.mapping[..6], &[0, 1, 4, 5, 2, 3]);
        assert!(!out.high_quality_audio);
        let sdp = String::from_utf8(sent[5].payload.clone()).unwrap();
        assert!(
            sdp.contains("a=x-nv-vqos[0].bitStreamFormat:2 \r\n")
                && sdp.ends_with("m=video 48100  \r\n")
        );
    }

    #[test]
    fn low_quality_target_hack() {
        let mut p = params(AppVersion::SUNSHINE, "rtsp://192.168.1.10:48010");
        p.stream.bitrate_kbps = 10_000;
        let mut hs = ClientHandshake::new(p).unwrap();
        hs.start().unwrap();
        let req = hs.last_request().unwrap();
        assert_eq!(
            (req.target.as_str(), req.headers.get("Host")),
            ("rtsp://0.0.0.0:48010", Some("0.0.0.0"))
        );
        let mut p = params(AppVersion::SUNSHINE, "rtsp://192.168.1.10:4000");
        p.stream.remote = true;
        p.stream.audio_channels = 6;
        let mut hs = ClientHandshake::new(p).unwrap();
        hs.start().unwrap();
        assert_eq!(hs.last_request().unwrap().target, "rtsp://0.0.0.0:4000");
    }

    #[test]
    fn older_generations_sequence() {
        let targets = |v: AppVersion| -> Vec<String> {
            let hs = ClientHandshake::new(params(v, "rtsp://192.168.1.10:48010")).unwrap();
            let (reqs, _) = run(hs, sunshine_host).unwrap();
            reqs.iter()
                .map(|r| format!("{} {}", r.method, r.target))
                .collect()
        };
        assert_eq!(
            targets(AppVersion::new(7, 1, 415, 0))[2..],
            [
                "SETUP streamid=audio/0/0",
                "SETUP streamid=video/0/0",
                "SETUP streamid=control/1/0",
                "ANNOUNCE streamid=video",
                "PLAY streamid=video",
                "PLAY streamid=audio",
            ]
        );
        assert_eq!(
            targets(AppVersion::new(4, 0, 0, 0))[2..],
            [
                "SETUP streamid=audio",
                "SETUP streamid=video",
                "ANNOUNCE streamid=video",
                "PLAY streamid=video",
                "PLAY streamid=audio"
            ]
        );
        // Transport is a single space before gen 6; client version 12 for gen 5.
        let mut hs = ClientHandshake::new(params(AppVersion::new(5, 0, 404, 0), "")).unwrap();
        hs.start().unwrap();
        assert_eq!(
            hs.last_request().unwrap().target,
            "rtsp://192.168.1.10:48010"
        );
        let (reqs, _) = run(
            ClientHandshake::new(params(AppVersion::new(5, 0, 404, 0), "")).unwrap(),
            sunshine_host,
        )
        .unwrap();
        assert_eq!(reqs[2].headers.get("X-GS-ClientVersion"), Some("12"));
        assert_eq!(reqs[2].headers.get("Transport"), Some(""));
        let mut hs = ClientHandshake::new(params(AppVersion::new(5, 0, 404, 0), "")).unwrap();
        hs.start().unwrap();
        hs.receive(&ok(1).to_bytes()).unwrap();
        let mut describe = ok(2);
        describe.payload = b"a=x\n".to_vec();
        let ClientStep::Send(setup) = hs.receive(&describe.to_bytes()).unwrap() else {
            panic!()
        };
        assert!(setup.windows(15).any(|w| w == b"\r\nTransport:  \r"));
    }

    #[test]
    fn unsupported_and_errors() {
        assert!(matches!(
            ClientHandshake::new(params(
                AppVersion::new(7, 1, 402, 0),
                "rtsp://1.2.3.4:48010"
            )),
            Err(RtspError::Unsupported(_))
        ));
        let mut p = params(AppVersion::SUNSHINE, "rtspenc://1.2.3.4:48010");
        p.rikey = None;
        assert!(matches!(
            ClientHandshake::new(p),
            Err(RtspError::MissingKey)
        ));
        let hs =
            ClientHandshake::new(params(AppVersion::SUNSHINE, "rtsp://1.2.3.4:48010")).unwrap();
        let err = run(hs, |r| {
            if r.method == "ANNOUNCE" {
                RtspResponse::new(400)
            } else {
                sunshine_host(r)
            }
        })
        .unwrap_err();
        assert!(
            matches!(err, RtspError::Status { status: 400, ref method } if method == "ANNOUNCE")
        );
        let hs =
            ClientHandshake::new(params(AppVersion::SUNSHINE, "rtsp://1.2.3.4:48010")).unwrap();
        let err = run(hs, |r| {
            if r.method == "DESCRIBE" {
                ok(2)
            } else {
                sunshine_host(r)
            }
        })
        .unwrap_err();
        assert!(matches!(err, RtspError::EmptyDescribe));
        let hs =
            ClientHandshake::new(params(AppVersion::SUNSHINE, "rtsp://1.2.3.4:48010")).unwrap();
        let err = run(hs, |r| {
            if r.method == "SETUP" {
                ok(3).with_header("Session", ";x")
            } else {
                sunshine_host(r)
            }
        })
        .unwrap_err();
        assert!(matches!(err, RtspError::MissingSession));
        let mut hs =
            ClientHandshake::new(params(AppVersion::SUNSHINE, "rtsp://1.2.3.4:48010")).unwrap();
        hs.start().unwrap();
        assert!(matches!(hs.receive(b""), Err(RtspError::EmptyResponse)));
    }

    #[test]
    fn encryption_negotiation_follows_moonlight() {
        let describe =
            |sup: u32, req: u32, version: AppVersion, want_v: bool, want_a: bool| -> RtspOutcome {
                let mut p = params(version, "rtsp://[fe80::1]:48010");
                p.stream.want_video_encryption = want_v;
                p.stream.want_audio_encryption = want_a;
                let hs = ClientHandshake::new(p).unwrap();
                let (reqs, out) = run(hs, |r| {
                    if r.method == "DESCRIBE" {
                        let mut d = DescribeParams::sunshine(false, false);
                        d.encryption_supported = Some(sup);
                        d.encryption_requested = Some(req);
                        let mut resp = ok(2);
                        resp.payload = d.to_payload().into_bytes();
                        resp
                    } else {
                        sunshine_host(r)
                    }
                })
                .unwrap();
                assert_eq!(reqs[0].headers.get("Host"), Some("[fe80::1]"));
                out
            };
        // Sunshine "mandatory": requested 7 overrides the opt-out.
        let o = describe(7, 7, AppVersion::SUNSHINE, false, false);
        assert_eq!(o.encryption_enabled, 7);
        assert!(o.control_v2 && o.video_encryption && o.audio_encryption);
        assert_eq!(o.announce.packet_size, 1392);
        // Video wanted but unsupported: off even though requested (moonlight-common-c quirk);
        // audio requested and not opted out: on.
        let o = describe(1, 6, AppVersion::SUNSHINE, true, false);
        assert_eq!(o.encryption_enabled, 5);
        assert!(!o.video_encryption && o.audio_encryption);
        // Client opt-in for audio sets featureFlags 0x20 even if the host lacks the bit (Wolf).
        let o = describe(1, 0, AppVersion::SUNSHINE, false, true);
        assert!(o.audio_encryption && o.encryption_enabled == 1);
        // GFE-like host (no negative build): no Sunshine negotiation at all.
        let o = describe(7, 7, AppVersion::new(7, 1, 431, 0), true, false);
        assert_eq!(o.encryption_enabled, 0);
        assert!(!o.control_v2 && !o.video_encryption && !o.audio_encryption);
    }
}
