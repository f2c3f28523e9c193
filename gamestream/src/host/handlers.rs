//! The host's answers to NVHTTP and RTSP requests and to control-stream events.

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Weak};

use rand::Rng;
use tokio::sync::mpsc;

use super::senders::spawn_session;
use super::session::{client_id_of, end_session, forward, pause_session, Prepared, Session};
use super::{lock, AudioSenderConfig, EndReason, HostEvent, Shared, StreamEvent, StreamHandle};
use super::{LossInjection, VideoSenderConfig};
use crate::audio::AudioEncryption;
use crate::control::{ClientMessage, HostEvent as ControlEvent, SessionMatch};
use crate::input::{InputEvent, InputWrapper};
use crate::nvhttp::{
    codec_mode, session_url, App, DisplayMode, HostError as HttpError, HostHandler, LaunchRequest,
    LaunchResponse, RequestContext, ServerInfo, STATE_BUSY, STATE_FREE,
};
use crate::rtsp::describe::DescribeParams;
use crate::rtsp::sdp::StreamConfig;
use crate::rtsp::{RtspHandler, RtspSessionInfo};

/// `MaxLumaPixelsHEVC` that Sunshine and Wolf report when HEVC is available.
const MAX_LUMA_PIXELS_HEVC: u64 = 1_869_449_984;

/// NVHTTP side.
pub(crate) struct Http(pub(crate) Arc<Shared>);

/// RTSP side.
pub(crate) struct Rtsp(pub(crate) Arc<Shared>);

fn canonical(ip: IpAddr) -> IpAddr {
    ip.to_canonical()
}

/// What DESCRIBE offers to a session: the host's parameters plus, when the session has a mic
/// socket, its port, and the mic bit beside the encryption flags a Sunshine-style host sends.
fn describe_for(base: &DescribeParams, mic_port: Option<u16>) -> DescribeParams {
    let mut describe = base.clone();
    if let Some(port) = mic_port {
        describe.mic_port = Some(port);
        if let Some(s) = describe.encryption_supported.as_mut() {
            *s |= crate::mic::ENCRYPTION_MIC;
        }
        if let Some(r) = describe.encryption_requested.as_mut() {
            *r |= crate::mic::ENCRYPTION_MIC;
        }
    }
    describe
}

fn http_error(status_code: u16, message: &str) -> HttpError {
    HttpError {
        status_code,
        message: message.to_string(),
    }
}

impl Http {
    fn client_session_app(&self, ctx: &RequestContext) -> Option<u32> {
        let client_id = client_id_of(ctx.client_cert_der.as_deref()?);
        lock(&self.0.sessions)
            .values()
            .find(|s| s.client_id == client_id)
            .map(|s| s.app_id)
    }

    fn start_session(
        &self,
        ctx: &RequestContext,
        request: &LaunchRequest,
        resumed: bool,
    ) -> Result<LaunchResponse, HttpError> {
        let shared = &self.0;
        let cert = ctx.client_cert_der.as_deref().ok_or_else(|| {
            http_error(
                401,
                "The client is not authorized. Certificate verification failed.",
            )
        })?;
        let client_id = client_id_of(cert);
        if let Some(gate) = &shared.config.launch_gate {
            gate.check(client_id, request.app_id, resumed)?;
        }
        let previous: Vec<(u64, u32)> = lock(&shared.sessions)
            .values()
            .filter(|s| s.client_id == client_id)
            .map(|s| (s.id, s.app_id))
            .collect();
        // /resume attaches to what runs; /launch needs a known app.
        let app_id = match (resumed, previous.first()) {
            (true, Some((_, app))) => *app,
            _ => request.app_id,
        };
        if !shared.catalog.apps().iter().any(|a| a.id == app_id) {
            return Err(http_error(400, "Invalid app id"));
        }
        // One stream per client certificate: the new request supersedes the old stream.
        for (id, _) in previous {
            end_session(shared, id, EndReason::Superseded);
        }
        let bind = SocketAddr::new(shared.config.bind_ip, 0);
        let bind_udp = || {
            std::net::UdpSocket::bind(bind)
                .map_err(|e| http_error(503, &format!("cannot allocate media ports: {e}")))
        };
        let video_socket = bind_udp()?;
        let audio_socket = bind_udp()?;
        let port_of = |s: &std::net::UdpSocket| {
            s.local_addr()
                .map(|a| a.port())
                .map_err(|e| http_error(503, &e.to_string()))
        };
        let (video_port, audio_port) = (port_of(&video_socket)?, port_of(&audio_socket)?);
        let mic_socket = match shared.config.microphone {
            true => Some(bind_udp()?),
            false => None,
        };
        let mic_port = mic_socket.as_ref().map(port_of).transpose()?;

        let id = shared
            .next_id
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let encrypted = shared.config.encrypted_rtsp && request.corever.unwrap_or(0) >= 1;
        let mut rng = rand::thread_rng();
        let sunshine = shared.config.sunshine_extensions;
        let session = Session {
            id,
            client_id,
            client_ip: canonical(ctx.peer_addr.ip()),
            app_id,
            unique_id: ctx.unique_id.clone(),
            rikey: request.ri_key,
            rikeyid: request.ri_key_id,
            surround_audio_info: request.surround_audio_info,
            rtsp_encrypted: encrypted,
            ping_payload: sunshine.then(|| hex::encode_upper(rng.gen::<[u8; 8]>())),
            connect_data: sunshine.then(|| rng.gen()),
            video_socket: Some(video_socket),
            audio_socket: Some(audio_socket),
            video_port,
            audio_port,
            mic_socket,
            mic_port,
            mic_task: None,
            mic_setup: false,
            prepared: None,
            streaming: false,
            input_cipher: None,
            stream_tx: None,
        };
        lock(&shared.sessions).insert(id, session);
        let _ = shared.events.send(HostEvent::Launched {
            session_id: id,
            client_id,
            app_id,
            resumed,
            unique_id: ctx.unique_id.clone(),
        });
        let rtsp_port = *lock(&shared.rtsp_port);
        Ok(LaunchResponse {
            session_url: Some(session_url(ctx.local_addr, rtsp_port, encrypted)),
        })
    }
}

impl HostHandler for Http {
    fn server_info(&self, ctx: &RequestContext) -> ServerInfo {
        let config = &self.0.config;
        let running = self.client_session_app(ctx);
        let hevc = config.codec_mode_support & codec_mode::HEVC != 0;
        ServerInfo {
            hostname: config.hostname.clone(),
            app_version: config.app_version.to_string(),
            unique_id: config.unique_id.clone(),
            max_luma_pixels_hevc: if hevc { MAX_LUMA_PIXELS_HEVC } else { 0 },
            mac: "00:00:00:00:00:00".into(),
            local_ip: ctx.local_addr.ip().to_canonical().to_string(),
            codec_mode_support: config.codec_mode_support,
            current_game: running.unwrap_or(0),
            state: if running.is_some() {
                STATE_BUSY
            } else {
                STATE_FREE
            }
            .into(),
            display_modes: vec![
                DisplayMode {
                    width: 3840,
                    height: 2160,
                    refresh_rate: 60,
                },
                DisplayMode {
                    width: 1920,
                    height: 1080,
                    refresh_rate: 60,
                },
                DisplayMode {
                    width: 1280,
                    height: 720,
                    refresh_rate: 60,
                },
            ],
            // What Foundation Sunshine is told apart by (see `ServerInfo::has_live_bitrate`).
            sunshine_version: config
                .live_bitrate
                .then(|| FOUNDATION_SUNSHINE_VERSION.into()),
            ..ServerInfo::default()
        }
    }

    fn app_list(&self, _ctx: &RequestContext) -> Vec<App> {
        self.0.catalog.apps()
    }

    fn app_asset(&self, _ctx: &RequestContext, app_id: u32) -> Option<Vec<u8>> {
        self.0.catalog.box_art(app_id)
    }

    fn launch(
        &self,
        ctx: &RequestContext,
        request: &LaunchRequest,
    ) -> Result<LaunchResponse, HttpError> {
        self.start_session(ctx, request, false)
    }

    fn resume(
        &self,
        ctx: &RequestContext,
        request: &LaunchRequest,
    ) -> Result<LaunchResponse, HttpError> {
        self.start_session(ctx, request, true)
    }

    fn cancel(&self, ctx: &RequestContext) -> Result<(), HttpError> {
        if let Some(cert) = ctx.client_cert_der.as_deref() {
            let client_id = client_id_of(cert);
            let ids: Vec<u64> = lock(&self.0.sessions)
                .values()
                .filter(|s| s.client_id == client_id)
                .map(|s| s.id)
                .collect();
            for id in ids {
                end_session(&self.0, id, EndReason::Cancelled);
            }
        }
        Ok(())
    }
}

impl Rtsp {
    /// Starts the session's media driver and registers the control session for an announced stream.
    fn prepare(&self, session: &mut Session, config: &StreamConfig) -> Result<Prepared, u16> {
        let shared = &self.0;
        let host = &shared.config;
        let to_tokio = |s: Option<std::net::UdpSocket>| -> Result<tokio::net::UdpSocket, u16> {
            let s = s.ok_or(455u16)?; // ANNOUNCE twice: "method not valid in this state"
            s.set_nonblocking(true).map_err(|_| 500u16)?;
            tokio::net::UdpSocket::from_std(s).map_err(|_| 500u16)
        };
        let video_socket = to_tokio(session.video_socket.take())?;
        let audio_socket = to_tokio(session.audio_socket.take())?;
        let key = session.rikey;
        let announced = super::Announced::new(
            key,
            session.rikeyid,
            session.ping_payload.as_deref(),
            config,
            host.video_fec_percent,
        );
        let video = VideoSenderConfig {
            bind: SocketAddr::new(host.bind_ip, 0),
            ping_payload: announced.ping_payload,
            accept_legacy_ping: announced.pings.accept_legacy,
            packetizer: announced.video,
            drop_probability: host.media_drop_probability,
        };
        let audio = AudioSenderConfig {
            bind: SocketAddr::new(host.bind_ip, 0),
            packetizer: announced.audio,
            pings: announced.pings,
            expected_client_ip: Some(session.client_ip),
            loss: LossInjection {
                probability: host.media_drop_probability,
                drop_data_sequences: Vec::new(),
            },
        };
        // One driver moves this session's video and audio (its sockets, pings and packetizers).
        let (video, audio) = spawn_session(
            video_socket,
            &video,
            audio_socket,
            audio,
            host.media_faults.clone(),
        )
        .map_err(|e| match e {
            crate::video::VideoError::Io(_) => 500u16,
            _ => 400,
        })?;
        let iv_style = announced.iv_style;
        shared.control.register(
            session.id,
            SessionMatch {
                connect_data: session.connect_data,
                peer_ip: Some(session.client_ip),
            },
            key,
            iv_style,
            host.app_version,
        );
        if !host.app_version.has_encrypted_control() {
            session.input_cipher = Some(InputWrapper::for_host(
                host.app_version,
                &key,
                session.rikeyid as u32,
            ));
        }
        // The mic socket lives on only if the client set the stream up.
        let mic_socket = session.mic_socket.take().filter(|_| session.mic_setup);
        let mic = mic_socket.map(|socket| {
            let encryption = (config.encryption_enabled & crate::mic::ENCRYPTION_MIC != 0)
                .then(|| AudioEncryption::new(key, session.rikeyid as u32));
            let socket = to_tokio(Some(socket))?;
            let depacketizer = crate::mic::MicDepacketizer::new(encryption);
            Ok::<_, u16>(crate::mic::driver::spawn(
                socket,
                session.client_ip,
                depacketizer,
            ))
        });
        let mic = match mic.transpose()? {
            Some((task, receiver)) => {
                session.mic_task = Some(task);
                Some(receiver)
            }
            None => None,
        };
        Ok(Prepared {
            video,
            audio,
            config: config.clone(),
            mic,
        })
    }
}

impl RtspHandler for Rtsp {
    fn sessions(&self, peer: SocketAddr, _local: SocketAddr) -> Vec<RtspSessionInfo> {
        let shared = &self.0;
        let peer_ip = canonical(peer.ip());
        let control_port = shared.control.local_addr().port();
        let sessions = lock(&shared.sessions);
        let mut found: Vec<&Session> = sessions
            .values()
            .filter(|s| s.client_ip == peer_ip && !s.streaming)
            .collect();
        // Newest first: a plain (Wolf-style) request from an IP goes to its latest launch.
        found.sort_by_key(|s| std::cmp::Reverse(s.id));
        found
            .into_iter()
            .map(|s| RtspSessionInfo {
                id: s.id,
                rikey: s.rikey,
                encrypted: s.rtsp_encrypted,
                describe: describe_for(&shared.config.describe, s.mic_port),
                audio_port: s.audio_port,
                video_port: s.video_port,
                control_port,
                ping_payload: s.ping_payload.clone(),
                connect_data: s.connect_data,
            })
            .collect()
    }

    fn on_request(&self, session_id: u64, request: &crate::rtsp::RtspRequest) {
        if request.method == "SETUP" && crate::rtsp::server::is_mic_setup(&request.target) {
            if let Some(s) = lock(&self.0.sessions).get_mut(&session_id) {
                s.mic_setup = s.mic_port.is_some();
            }
        }
    }

    fn on_announce(&self, session_id: u64, config: StreamConfig) -> Result<(), u16> {
        let describe = &self.0.config.describe;
        if config.packet_size < 32 || config.packet_size % 16 != 0 || config.packet_size > 4096 {
            return Err(400);
        }
        let codec_ok = match config.bit_stream_format {
            0 => true,
            1 => describe.hevc,
            2 => describe.av1,
            _ => false,
        };
        if !codec_ok || config.width == 0 || config.height == 0 || config.fps == 0 {
            return Err(400);
        }
        let mut sessions = lock(&self.0.sessions);
        let session = sessions.get_mut(&session_id).ok_or(454u16)?;
        let prepared = self.prepare(session, &config)?;
        session.prepared = Some(prepared);
        Ok(())
    }

    fn on_play(&self, session_id: u64) {
        let mut sessions = lock(&self.0.sessions);
        let Some(session) = sessions.get_mut(&session_id) else {
            return;
        };
        let Some(prepared) = session.prepared.take() else {
            return;
        };
        let (tx, rx) = mpsc::unbounded_channel();
        session.streaming = true;
        session.stream_tx = Some(tx);
        let handle = StreamHandle {
            session_id,
            client_id: session.client_id,
            app_id: session.app_id,
            config: prepared.config,
            surround_audio_info: session.surround_audio_info,
            video: prepared.video,
            audio: prepared.audio,
            mic: prepared.mic,
            events: rx,
        };
        let _ = self
            .0
            .events
            .send(HostEvent::StreamStarted(Box::new(handle)));
    }
}

/// The `SunshineVersion` a host with [`super::HostConfig::live_bitrate`] reports, in the form
/// Foundation Sunshine builds it (`PROJECT_NAME " " PROJECT_VER`, `src/nvhttp.h`).
const FOUNDATION_SUNSHINE_VERSION: &str = "Sunshine 2026.520.102929";

/// The highest bitrate a live change may ask for (Foundation Sunshine's bound), kbit/s.
const MAX_LIVE_BITRATE_KBPS: u32 = 800_000;

/// Turns control-stream events into stream events and session ends. Ends with the host.
pub(crate) async fn pump_control_events(
    shared: Weak<Shared>,
    mut events: mpsc::UnboundedReceiver<(u64, ControlEvent)>,
) {
    while let Some((id, event)) = events.recv().await {
        let Some(shared) = shared.upgrade() else {
            return;
        };
        match event {
            ControlEvent::Connected { .. } => forward(&shared, id, StreamEvent::ControlConnected),
            ControlEvent::IdrRequest | ControlEvent::Rfi { .. } => {
                forward(&shared, id, StreamEvent::KeyframeRequested)
            }
            ControlEvent::Input {
                bytes,
                legacy_encrypted,
            } => {
                let event = decode_input(&shared, id, &bytes, legacy_encrypted);
                forward(&shared, id, event);
            }
            ControlEvent::Termination => {
                end_session(&shared, id, EndReason::ClientTerminated);
            }
            ControlEvent::Disconnected if shared.config.disconnect_pauses => {
                pause_session(&shared, id);
            }
            ControlEvent::Disconnected => {
                end_session(&shared, id, EndReason::ClientDisconnected);
            }
            ControlEvent::Message(ClientMessage::Bitrate { kbps })
                if shared.config.live_bitrate =>
            {
                // Foundation Sunshine's bounds; it logs and ignores anything else. The value is
                // the stream's whole bitrate: its encoders take it less the FEC share.
                if (1..=MAX_LIVE_BITRATE_KBPS).contains(&kbps) {
                    let fec = u32::from(shared.config.video_fec_percent.min(80));
                    let encoder_kbps = (u64::from(kbps) * u64::from(100 - fec) / 100) as u32;
                    forward(&shared, id, StreamEvent::Bitrate(encoder_kbps.max(1)));
                } else {
                    tracing::warn!(session = id, kbps, "dynamic bitrate out of range: ignored");
                }
            }
            ControlEvent::Ping | ControlEvent::Message(_) | ControlEvent::Other(..) => {}
        }
    }
}

fn decode_input(
    shared: &Shared,
    session_id: u64,
    bytes: &[u8],
    legacy_encrypted: bool,
) -> StreamEvent {
    let version = shared.config.app_version;
    let plain = if legacy_encrypted {
        let mut sessions = lock(&shared.sessions);
        let cipher = sessions
            .get_mut(&session_id)
            .and_then(|s| s.input_cipher.as_mut());
        match cipher.map(|c| c.unwrap(bytes)) {
            Some(Ok(plain)) => plain,
            Some(Err(e)) => return StreamEvent::BadInput(e.to_string()),
            None => {
                return StreamEvent::BadInput("encrypted input without a session cipher".into())
            }
        }
    } else {
        bytes.to_vec()
    };
    match InputEvent::decode(&plain, version) {
        Ok(event) => StreamEvent::Input(event),
        Err(e) => StreamEvent::BadInput(e.to_string()),
    }
}
