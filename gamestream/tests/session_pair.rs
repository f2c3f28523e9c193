//! A whole stream between the two sans-IO halves, in memory, on a virtual clock: from `/launch`
//! through the RTSP handshake to the control stream's close.
//!
//! The client launches the way the streamer does ([`SessionConfig::launch_request`] on the wire
//! through [`nvhttp::request_target`]), and the host answers with the NVHTTP server's own
//! [`nvhttp::answer`] over a host application kept in memory ([`MemoryHost`]). The RTSP handshake
//! is the client's [`ClientHandshake`] against the host's [`rtsp::server::handle_message`], as
//! bytes (`rtspenc://`, so sealed). What RTSP negotiated then sets both halves up:
//! [`client::stream_params`] for [`ClientCore`] (what the streamer runs), and the announced
//! [`StreamConfig`] for [`HostSessionCore`], as the host's ANNOUNCE handler does.
//!
//! The two cores exchange datagrams through a simulated link with seeded loss, reordering and
//! jitter, in the manner of quinn-proto's `Pair`. Nothing sleeps and nothing touches a socket:
//! time jumps to the next deadline, so seconds of stream run in milliseconds, and one seed gives
//! one result, every run. Pings open the media paths, the ENet control stream connects, 60 fps
//! video and 5 ms audio flow, loss is answered with IDR requests and keyframes, key presses reach
//! the host, and our close ends the stream the way real hosts survive (disconnect acknowledged,
//! host told).

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use gamestream::client::{self, ClientCore, SessionConfig, StreamSocket, Transmit};
use gamestream::client::{EndCause, SessionEvent};
use gamestream::control::HostEvent;
use gamestream::host::{Announced, HostSessionCore, HostSessionEvent, HostSessionParams};
use gamestream::input::InputEvent;
use gamestream::nvhttp::{
    self, codec_mode, App, HostError, HostHandler, LaunchRequest, LaunchResponse, RequestContext,
    ServerInfo, ServerPorts,
};
use gamestream::ping::ss_ping_payload_from_header;
use gamestream::rtsp::describe::{encryption, video_format, DescribeParams};
use gamestream::rtsp::{
    self, ClientHandshake, ClientStep, RtspHandler, RtspOutcome, RtspRequest, RtspSessionInfo,
    StreamConfig, StreamSettings,
};
use gamestream::video::{FrameInfo, FrameType};
use gamestream::AppVersion;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const CLIENT_IP: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));
const HOST_IP: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1));
/// The host's HTTPS and RTSP ports.
const HTTPS_PORT: u16 = 47_984;
const RTSP_PORT: u16 = 48_010;
/// The app the client launches.
const APP_ID: u32 = 881_448_767;
/// The video payload per packet asked for: 1024 on the wire once the 32-byte encryption prefix
/// of encrypted video is taken off.
const PACKET_SIZE: u32 = 1_056;
const FRAME_INTERVAL: Duration = Duration::from_micros(16_667);
const AUDIO_INTERVAL: Duration = Duration::from_millis(5);
/// Keys pressed once the stream is up, one every 100 ms.
const KEYS: u16 = 20;

fn client_addr(socket: StreamSocket) -> SocketAddr {
    SocketAddr::new(CLIENT_IP, 40_000 + port_offset(socket))
}

/// The host's media and control ports, handed out in SETUP (not the defaults, so that the client
/// can only have learnt them from the handshake).
fn host_addr(socket: StreamSocket) -> SocketAddr {
    SocketAddr::new(HOST_IP, 48_100 + port_offset(socket))
}

fn port_offset(socket: StreamSocket) -> u16 {
    match socket {
        StreamSocket::Video => 0,
        StreamSocket::Control => 1,
        StreamSocket::Audio => 2,
    }
}

/// What a link does to datagrams: each is lost with `loss`, delayed by `delay` plus up to
/// `jitter`, and with `reorder` held back another `jitter` so that later ones overtake it.
#[derive(Debug, Clone, Copy)]
struct LinkShape {
    loss: f64,
    reorder: f64,
    delay: Duration,
    jitter: Duration,
}

#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
struct InFlight {
    at: Instant,
    order: u64,
    to_host: bool,
    socket: StreamSocket,
    from: SocketAddr,
    payload: Vec<u8>,
}

/// Both directions of the simulated network.
struct Link {
    shape: LinkShape,
    rng: StdRng,
    queue: BinaryHeap<Reverse<InFlight>>,
    order: u64,
    sent: u64,
    lost: u64,
}

impl Link {
    fn send(&mut self, now: Instant, to_host: bool, t: Transmit) {
        self.sent += 1;
        if self.rng.gen_bool(self.shape.loss) {
            self.lost += 1;
            return;
        }
        let jitter = self.shape.jitter.mul_f64(self.rng.gen_range(0.0..1.0));
        let held = if self.rng.gen_bool(self.shape.reorder) {
            self.shape.jitter
        } else {
            Duration::ZERO
        };
        let from = if to_host {
            client_addr(t.socket)
        } else {
            host_addr(t.socket)
        };
        self.order += 1;
        self.queue.push(Reverse(InFlight {
            at: now + self.shape.delay + jitter + held,
            order: self.order,
            to_host,
            socket: t.socket,
            from,
            payload: t.payload,
        }));
    }

    fn next_delivery(&self) -> Option<Instant> {
        self.queue.peek().map(|Reverse(p)| p.at)
    }
}

/// What one run saw; two runs with one seed must see the same.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Outcome {
    handshake: Handshake,
    frames_sent: u32,
    keyframes_sent: u32,
    frames_delivered: u32,
    first_frame_ms: Option<u128>,
    loss_reports: u32,
    idr_requests_at_host: u32,
    audio_packets: u32,
    audio_concealed: u32,
    keys_at_host: Vec<u16>,
    end: Option<EndCause>,
    host_saw_disconnect: bool,
    datagrams_sent: u64,
    datagrams_lost: u64,
    virtual_ms: u128,
}

fn access_unit(frame_index: u32) -> Vec<u8> {
    let len = 4_000 + (frame_index as usize * 379) % 9_000;
    (0..len)
        .map(|i| (i as u32).wrapping_mul(31).wrapping_add(frame_index) as u8)
        .collect()
}

/// What the host application launched: the client's request and what the host handed out for it.
#[derive(Debug, Clone)]
struct Launched {
    request: LaunchRequest,
    /// `X-SS-Ping-Payload` of SETUP audio and video (Sunshine style: 16 hex digits).
    ping_payload: String,
    /// `X-SS-Connect-Data` of SETUP control.
    connect_data: u32,
    /// `sessionUrl0` was `rtspenc://`.
    encrypted: bool,
}

/// The host application in memory, behind the NVHTTP server's [`nvhttp::answer`] and the RTSP
/// server's [`rtsp::server::handle_message`]: one app, one session, Sunshine's DESCRIBE with AV1.
struct MemoryHost {
    /// Draws the session's ping payload and connect data, as a host does at launch.
    rng: Mutex<StdRng>,
    launched: Mutex<Option<Launched>>,
    /// Every RTSP request the host answered: (method, target).
    rtsp_requests: Mutex<Vec<(String, String)>>,
    announced: Mutex<Option<StreamConfig>>,
    played: Mutex<bool>,
}

const SESSION: u64 = 1;

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().expect("test lock")
}

impl MemoryHost {
    fn new(seed: u64) -> Self {
        Self {
            rng: Mutex::new(StdRng::seed_from_u64(seed ^ 0x4057)),
            launched: Mutex::new(None),
            rtsp_requests: Mutex::new(Vec::new()),
            announced: Mutex::new(None),
            played: Mutex::new(false),
        }
    }

    fn describe() -> DescribeParams {
        DescribeParams::sunshine(false, true)
    }

    fn launched(&self) -> Launched {
        lock(&self.launched).clone().expect("launched")
    }
}

impl HostHandler for MemoryHost {
    fn server_info(&self, _ctx: &RequestContext) -> ServerInfo {
        ServerInfo {
            hostname: "memory-host".into(),
            app_version: AppVersion::SUNSHINE.to_string(),
            codec_mode_support: codec_mode::H264 | codec_mode::AV1_MAIN8,
            ..ServerInfo::default()
        }
    }

    fn app_list(&self, _ctx: &RequestContext) -> Vec<App> {
        vec![App {
            title: "Desktop".into(),
            id: APP_ID,
            hdr_supported: false,
        }]
    }

    fn app_asset(&self, _ctx: &RequestContext, _app_id: u32) -> Option<Vec<u8>> {
        None
    }

    fn launch(
        &self,
        ctx: &RequestContext,
        request: &LaunchRequest,
    ) -> Result<LaunchResponse, HostError> {
        if request.app_id != APP_ID {
            return Err(HostError::new(400, "Invalid app id"));
        }
        let mut rng = lock(&self.rng);
        // Sunshine offers encrypted RTSP to clients that announce `corever`.
        let encrypted = request.corever.unwrap_or(0) >= 1;
        *lock(&self.launched) = Some(Launched {
            request: request.clone(),
            ping_payload: rng
                .gen::<[u8; 8]>()
                .iter()
                .map(|b| format!("{b:02X}"))
                .collect(),
            connect_data: rng.gen(),
            encrypted,
        });
        Ok(LaunchResponse {
            session_url: Some(nvhttp::session_url(ctx.local_addr, RTSP_PORT, encrypted)),
        })
    }

    fn resume(
        &self,
        _ctx: &RequestContext,
        _request: &LaunchRequest,
    ) -> Result<LaunchResponse, HostError> {
        Err(HostError::new(503, "nothing to resume"))
    }

    fn cancel(&self, _ctx: &RequestContext) -> Result<(), HostError> {
        Ok(())
    }
}

impl RtspHandler for MemoryHost {
    fn sessions(&self, peer: SocketAddr, _local: SocketAddr) -> Vec<RtspSessionInfo> {
        assert_eq!(peer.ip(), CLIENT_IP);
        let Some(l) = lock(&self.launched).clone() else {
            return Vec::new();
        };
        vec![RtspSessionInfo {
            id: SESSION,
            rikey: l.request.ri_key,
            encrypted: l.encrypted,
            describe: Self::describe(),
            audio_port: host_addr(StreamSocket::Audio).port(),
            video_port: host_addr(StreamSocket::Video).port(),
            control_port: host_addr(StreamSocket::Control).port(),
            ping_payload: Some(l.ping_payload),
            connect_data: Some(l.connect_data),
        }]
    }

    fn on_announce(&self, session: u64, config: StreamConfig) -> Result<(), u16> {
        assert_eq!(session, SESSION);
        *lock(&self.announced) = Some(config);
        Ok(())
    }

    fn on_play(&self, session: u64) {
        assert_eq!(session, SESSION);
        *lock(&self.played) = true;
    }

    fn on_request(&self, session: u64, request: &RtspRequest) {
        assert_eq!(session, SESSION);
        lock(&self.rtsp_requests).push((request.method.clone(), request.target.clone()));
    }
}

/// The host half as the host's ANNOUNCE handler sets it up: the launch key, the IV style and
/// encryption the client announced, the SETUP ping payload and connect data, the announced packet
/// size and audio packet duration.
fn host_params(launched: &Launched, config: &StreamConfig, seed: u64) -> HostSessionParams {
    // The production host's own rules at ANNOUNCE (`Announced`, used by `handlers::prepare`).
    let announced = Announced::new(
        launched.request.ri_key,
        launched.request.ri_key_id,
        Some(&launched.ping_payload),
        config,
        20,
    );
    HostSessionParams::announced(
        AppVersion::SUNSHINE,
        launched.request.ri_key,
        Some(launched.connect_data),
        announced,
        Some((seed >> 32) as u32),
    )
}

/// What the launch and the RTSP handshake established, as both sides saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Handshake {
    session_url: String,
    /// The RTSP requests the host answered, in order: (method, target).
    rtsp_requests: Vec<(String, String)>,
    /// What the client negotiated.
    negotiated: RtspOutcome,
    /// Virtual time from the first request to PLAY answered.
    ms: u128,
}

/// One request/response over a reliable (TCP) path of the link: a round trip of virtual time.
fn round_trip(now: &mut Instant, shape: LinkShape) {
    *now += shape.delay * 2;
}

/// `/serverinfo`, `/launch` and RTSP between the client's code and the host's, in memory; then
/// both cores set up from what was negotiated.
fn launch(
    seed: u64,
    shape: LinkShape,
    start: Instant,
) -> (ClientCore, HostSessionCore, Handshake, Instant) {
    let mut now = start;
    let app = MemoryHost::new(seed);
    let mut keys = StdRng::seed_from_u64(seed ^ 0xC11E);
    let https = |target: &str| {
        let (path, params) = nvhttp::split_target(target);
        let ctx = RequestContext {
            peer_addr: SocketAddr::new(CLIENT_IP, 50_000),
            local_addr: SocketAddr::new(HOST_IP, HTTPS_PORT),
            https: true,
            client_cert_der: Some(b"paired client certificate".to_vec()),
            unique_id: params
                .iter()
                .find(|(k, _)| k == "uniqueid")
                .map(|(_, v)| v.clone()),
            paired: true,
        };
        let ports = ServerPorts {
            http: 47_989,
            https: HTTPS_PORT,
        };
        let answer = nvhttp::answer(&app, &ctx, ports, path, &params).expect("answered");
        assert_eq!(answer.status, 200, "{target}");
        answer.body
    };

    // /serverinfo, then /launch: the streamer's request, the NVHTTP server's answer.
    let uuid = |rng: &mut StdRng| format!("{:032x}", rng.gen::<u128>());
    let target = nvhttp::request_target("/serverinfo", nvhttp::UNIQUE_ID, &uuid(&mut keys), &[]);
    let info = ServerInfo::parse(&https(&target)).expect("serverinfo");
    round_trip(&mut now, shape);
    let version = info.app_version();
    let config = SessionConfig::new(
        APP_ID,
        StreamSettings {
            width: 1280,
            height: 720,
            fps: 60,
            packet_size: PACKET_SIZE,
            bitrate_kbps: 10_000,
            supported_formats: video_format::H264 | video_format::AV1_MAIN8,
            want_video_encryption: true,
            ..StreamSettings::default()
        },
    );
    let settings = config.settings_for(&info);
    let mut request = config.launch_request();
    // The key and its id are random; fixed here so that one seed gives one session.
    request.ri_key = keys.gen();
    request.ri_key_id = keys.gen();
    let target = nvhttp::request_target(
        "/launch",
        nvhttp::UNIQUE_ID,
        &uuid(&mut keys),
        &request.to_query(),
    );
    let launched = LaunchResponse::parse(&https(&target), false).expect("launch answer");
    round_trip(&mut now, shape);
    let host_session = app.launched();
    assert_eq!(
        host_session.request, request,
        "the host launched what the client asked for"
    );

    // RTSP: each request sealed by the client's state machine, answered by the host's server.
    let params = client::rtsp_params(version, HOST_IP, &request, launched, settings);
    let session_url = params.session_url.clone();
    let (rtsp_client, rtsp_host) = (
        SocketAddr::new(CLIENT_IP, 50_001),
        SocketAddr::new(HOST_IP, params.rtsp_port()),
    );
    let rtsp_start = now;
    let mut handshake = ClientHandshake::new(params).expect("RTSP plan");
    let mut step = handshake.start().expect("OPTIONS");
    let mut response_seq = 0u32;
    let negotiated = loop {
        match step {
            ClientStep::Done(outcome) => break *outcome,
            ClientStep::Send(bytes) => {
                assert!(
                    rtsp::crypt::looks_encrypted(&bytes),
                    "rtspenc:// requests are sealed"
                );
                response_seq += 1;
                let response = rtsp::server::handle_message(
                    &app,
                    rtsp_client,
                    rtsp_host,
                    &bytes,
                    response_seq,
                )
                .expect("the host answers");
                round_trip(&mut now, shape);
                step = handshake.receive(&response).expect("RTSP response");
            }
        }
    };
    assert!(*lock(&app.played), "PLAY reached the host");
    let announced = lock(&app.announced)
        .clone()
        .expect("ANNOUNCE reached the host");
    check_negotiation(&negotiated, &announced, &host_session);

    // Both halves from what was negotiated.
    let mut stream = client::stream_params(version, HOST_IP, &request, &negotiated);
    stream.seed = Some(seed as u32);
    stream.control.linger = Duration::from_millis(500);
    let client = ClientCore::new(stream, now).expect("client core");
    let host =
        HostSessionCore::new(host_params(&host_session, &announced, seed), now).expect("host core");
    let handshake = Handshake {
        session_url,
        rtsp_requests: lock(&app.rtsp_requests).clone(),
        negotiated,
        ms: (now - rtsp_start).as_millis(),
    };
    (client, host, handshake, now)
}

/// The client's view of the handshake equals what the host handed out and was announced.
fn check_negotiation(client: &RtspOutcome, host: &StreamConfig, launched: &Launched) {
    let ports = (
        host_addr(StreamSocket::Audio).port(),
        host_addr(StreamSocket::Video).port(),
        host_addr(StreamSocket::Control).port(),
    );
    assert_eq!(
        (client.audio_port, client.video_port, client.control_port),
        ports
    );
    let payload = ss_ping_payload_from_header(&launched.ping_payload);
    assert!(payload.is_some());
    assert_eq!(client.audio_ping_payload, payload);
    assert_eq!(client.video_ping_payload, payload);
    assert_eq!(client.control_connect_data, launched.connect_data);
    assert_eq!(
        client.host.payload,
        MemoryHost::describe().to_payload(),
        "the client read the host's DESCRIBE"
    );
    // AV1 both ways; encrypted video and V2 control (Sunshine's offer, our wish); clear audio.
    assert_eq!(client.video_format, video_format::AV1_MAIN8);
    assert_eq!(host.bit_stream_format, 2, "AV1 announced");
    assert_eq!(host.encryption_enabled, client.encryption_enabled);
    assert_eq!(
        client.encryption_enabled,
        encryption::CONTROL_V2 | encryption::VIDEO
    );
    assert!(client.control_v2 && host.control_v2());
    assert!(client.video_encryption && host.video_encryption());
    assert!(!client.audio_encryption && !host.audio_encryption());
    assert_eq!(host.packet_size, client.announce.wire_packet_size());
    assert_eq!(host.packet_size, 1_024);
    assert_eq!(
        (host.width, host.height, host.fps),
        (
            launched.request.width,
            launched.request.height,
            launched.request.fps
        )
    );
    assert_eq!(
        host.audio_packet_duration_ms,
        client.audio_packet_duration_ms
    );
    assert_eq!(host.audio_packet_duration_ms, 5);
    assert_eq!(host.audio_channels, 2);
}

/// The launch and the handshake happened, in memory, in moonlight-common-c's order.
fn check_handshake(h: &Handshake) {
    assert_eq!(
        h.session_url,
        format!("rtspenc://{HOST_IP}:{RTSP_PORT}"),
        "the launch answered with an encrypted RTSP session"
    );
    let methods: Vec<&str> = h.rtsp_requests.iter().map(|(m, _)| m.as_str()).collect();
    assert_eq!(
        methods,
        ["OPTIONS", "DESCRIBE", "SETUP", "SETUP", "SETUP", "ANNOUNCE", "PLAY"],
        "{h:?}"
    );
    let setups: Vec<&str> = h.rtsp_requests[2..5]
        .iter()
        .map(|(_, t)| t.as_str())
        .collect();
    assert!(
        setups[0].contains("streamid=audio")
            && setups[1].contains("streamid=video")
            && setups[2].contains("streamid=control"),
        "{setups:?}"
    );
    assert!(h.ms > 0, "the handshake took virtual time");
}

/// Runs one session of `length` (virtual) over a link of `shape`.
fn run_session(seed: u64, shape: LinkShape, length: Duration) -> Outcome {
    let launched_at = Instant::now();
    let (mut client, mut host, handshake, start) = launch(seed, shape, launched_at);
    let mut link = Link {
        shape,
        rng: StdRng::seed_from_u64(seed),
        queue: BinaryHeap::new(),
        order: 0,
        sent: 0,
        lost: 0,
    };
    let mut out = Outcome {
        handshake,
        frames_sent: 0,
        keyframes_sent: 0,
        frames_delivered: 0,
        first_frame_ms: None,
        loss_reports: 0,
        idr_requests_at_host: 0,
        audio_packets: 0,
        audio_concealed: 0,
        keys_at_host: Vec::new(),
        end: None,
        host_saw_disconnect: false,
        datagrams_sent: 0,
        datagrams_lost: 0,
        virtual_ms: 0,
    };
    let mut streaming_since = None;
    let mut want_keyframe = true;
    let mut next_frame = start;
    let mut next_audio = start;
    let mut keys_sent = 0u16;
    let mut next_key = None;
    let stop_at = start + length;
    let mut closing = false;
    let give_up = start + length + Duration::from_secs(5);
    let mut now = start;

    while out.end.is_none() && now < give_up {
        // Host application: frames at 60 fps and audio every 5 ms once a client is connected.
        if streaming_since.is_some() && !closing {
            while next_frame <= now {
                out.frames_sent += 1;
                let frame_type = if std::mem::take(&mut want_keyframe) {
                    out.keyframes_sent += 1;
                    FrameType::Idr
                } else {
                    FrameType::P
                };
                let info = FrameInfo {
                    frame_index: out.frames_sent,
                    frame_type,
                    rtp_timestamp: out.frames_sent * 1_500,
                    processing_latency: 0,
                };
                host.send_video(&access_unit(out.frames_sent), info)
                    .expect("packetize");
                next_frame += FRAME_INTERVAL;
            }
            while next_audio <= now {
                host.send_audio(&[0xF8, out.frames_sent as u8, 0x55, 0xAA]);
                next_audio += AUDIO_INTERVAL;
            }
        }
        // Client application: key presses while streaming, then our close.
        if let Some(at) = next_key.filter(|at| *at <= now && keys_sent < KEYS) {
            keys_sent += 1;
            let key = InputEvent::KeyDown {
                flags: 0,
                key_code: 0x40 + keys_sent,
                modifiers: 0,
            };
            client.send_input(&key).expect("input accepted");
            next_key = Some(at + Duration::from_millis(100));
        }
        if !closing && now >= stop_at {
            closing = true;
            client.close(now);
        }

        // The network.
        while let Some(t) = client.poll_transmit() {
            link.send(now, true, t);
        }
        while let Some(t) = host.poll_transmit() {
            link.send(now, false, t);
        }
        while link.next_delivery().is_some_and(|at| at <= now) {
            let Some(Reverse(p)) = link.queue.pop() else {
                break;
            };
            if p.to_host {
                host.handle_input(now, p.socket, p.from, &p.payload);
            } else {
                client.handle_input(now, p.socket, p.from, &p.payload);
            }
        }
        if client.poll_timeout().is_some_and(|at| at <= now) {
            client.handle_timeout(now);
        }
        if host.poll_timeout().is_some_and(|at| at <= now) {
            host.handle_timeout(now);
        }

        // What each side observed.
        while let Some(event) = host.poll_event() {
            match event {
                HostSessionEvent::Control(HostEvent::Connected { .. }) => {
                    streaming_since = Some(now);
                    next_frame = now;
                    next_audio = now;
                }
                HostSessionEvent::Control(HostEvent::IdrRequest) => {
                    out.idr_requests_at_host += 1;
                    want_keyframe = true;
                }
                HostSessionEvent::Control(HostEvent::Input { bytes, .. }) => {
                    match InputEvent::decode(&bytes, AppVersion::SUNSHINE) {
                        Ok(InputEvent::KeyDown { key_code, .. }) => out.keys_at_host.push(key_code),
                        other => panic!("unexpected input at the host: {other:?}"),
                    }
                }
                HostSessionEvent::Control(HostEvent::Disconnected) => {
                    out.host_saw_disconnect = true;
                }
                _ => {}
            }
        }
        while let Some(event) = client.poll_event() {
            match event {
                SessionEvent::Video(frame) => {
                    assert_eq!(
                        frame.data,
                        access_unit(frame.frame_index),
                        "frame {} arrived corrupt",
                        frame.frame_index
                    );
                    out.frames_delivered += 1;
                    if out.first_frame_ms.is_none() {
                        out.first_frame_ms = Some((now - start).as_millis());
                        next_key = Some(now);
                    }
                }
                SessionEvent::VideoLost { .. } => out.loss_reports += 1,
                SessionEvent::Audio { .. } => out.audio_packets += 1,
                SessionEvent::AudioLost { .. } => out.audio_concealed += 1,
                SessionEvent::Ended(cause) => out.end = Some(cause),
                _ => {}
            }
        }

        // Jump to the next thing that happens.
        let mut next = [
            client.poll_timeout(),
            host.poll_timeout(),
            link.next_delivery(),
            next_key.filter(|_| keys_sent < KEYS),
            (!closing).then_some(stop_at),
        ]
        .into_iter()
        .flatten()
        .min()
        .unwrap_or(give_up);
        if streaming_since.is_some() && !closing {
            next = next.min(next_frame).min(next_audio);
        }
        now = now.max(next);
    }
    // Let the last datagrams (the disconnect's acknowledgement) reach the host.
    while let Some(t) = client.poll_transmit() {
        link.send(now, true, t);
    }
    while let Some(Reverse(p)) = link.queue.pop() {
        if p.to_host {
            now = now.max(p.at);
            host.handle_input(now, p.socket, p.from, &p.payload);
        }
    }
    while let Some(event) = host.poll_event() {
        if event == HostSessionEvent::Control(HostEvent::Disconnected) {
            out.host_saw_disconnect = true;
        }
    }
    out.datagrams_sent = link.sent;
    out.datagrams_lost = link.lost;
    out.virtual_ms = (now - start).as_millis();
    out
}

const LOSSY: LinkShape = LinkShape {
    loss: 0.10,
    reorder: 0.05,
    delay: Duration::from_millis(10),
    jitter: Duration::from_millis(4),
};

#[test]
fn a_clean_link_delivers_every_frame_and_every_key() {
    let clean = LinkShape {
        loss: 0.0,
        reorder: 0.0,
        delay: Duration::from_millis(1),
        jitter: Duration::ZERO,
    };
    let wall = Instant::now();
    let out = run_session(1, clean, Duration::from_secs(3));
    println!(
        "clean link: {out:?}\nwall time: {} ms",
        wall.elapsed().as_millis()
    );
    check_handshake(&out.handshake);
    assert_eq!(out.frames_delivered, out.frames_sent, "{out:?}");
    assert_eq!(out.keyframes_sent, 1, "no loss, no IDR request: {out:?}");
    assert_eq!(out.loss_reports, 0);
    assert_eq!(out.keys_at_host, (0x41..0x41 + KEYS).collect::<Vec<_>>());
    assert!(out.audio_packets > 500, "{out:?}");
    assert_eq!(out.audio_concealed, 0);
    assert_eq!(out.end, Some(EndCause::Stopped));
    assert!(out.host_saw_disconnect, "the host must see our disconnect");
}

#[test]
fn ten_percent_loss_is_answered_with_keyframes_and_is_deterministic() {
    let wall = Instant::now();
    let first = run_session(0x5EED_0001, LOSSY, Duration::from_secs(4));
    let wall_first = wall.elapsed();
    let second = run_session(0x5EED_0001, LOSSY, Duration::from_secs(4));
    println!(
        "10 % loss, 4 s of stream: {first:?}\nwall time of one run: {} ms",
        wall_first.as_millis()
    );
    assert_eq!(first, second, "one seed, one outcome");
    check_handshake(&first.handshake);

    let lost = first.datagrams_lost as f64 / first.datagrams_sent as f64;
    assert!((0.08..0.12).contains(&lost), "link loss {lost}");
    assert!(
        first.loss_reports > 0,
        "10 % loss must cost frames: {first:?}"
    );
    assert!(first.idr_requests_at_host > 0, "{first:?}");
    assert!(
        first.keyframes_sent > 1,
        "lost frames are answered with keyframes"
    );
    assert!(
        first.frames_delivered * 4 > first.frames_sent,
        "the stream keeps going: {first:?}"
    );
    // Input is reliable on the control stream: every key, in order, despite the loss.
    assert_eq!(first.keys_at_host, (0x41..0x41 + KEYS).collect::<Vec<_>>());
    assert!(
        first.audio_packets > 0 && first.audio_concealed > 0,
        "{first:?}"
    );
    assert_eq!(first.end, Some(EndCause::Stopped));
    assert!(
        first.host_saw_disconnect,
        "the host must see our disconnect"
    );

    let other = run_session(0x5EED_0002, LOSSY, Duration::from_secs(4));
    assert_ne!(first, other, "another seed, another loss pattern");
}
