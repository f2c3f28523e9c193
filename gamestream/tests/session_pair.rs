//! A whole stream between the two sans-IO cores, in memory, on a virtual clock.
//!
//! [`ClientCore`] (what the streamer runs) and [`HostSessionCore`] (the host half) exchange
//! datagrams through a simulated link with seeded loss, reordering and jitter, in the manner of
//! quinn-proto's `Pair`. Nothing sleeps and nothing touches a socket: time jumps to the next
//! deadline, so seconds of stream run in milliseconds, and one seed gives one result, every run.
//! A session here is the part after `/launch` and RTSP: pings open the media paths, the ENet
//! control stream connects, 60 fps video and 5 ms audio flow, loss is answered with IDR requests
//! and keyframes, key presses reach the host, and our close ends the stream the way real hosts
//! survive (disconnect acknowledged, host told).

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use gamestream::audio::{AudioDepacketizerConfig, AudioPacketizerConfig};
use gamestream::client::{ClientCore, StreamParams, StreamSocket, Transmit};
use gamestream::client::{EndCause, SessionEvent};
use gamestream::control::{ControlConfig, HostEvent, IvStyle};
use gamestream::host::{HostSessionCore, HostSessionEvent, HostSessionParams};
use gamestream::input::InputEvent;
use gamestream::ping::PingMatcher;
use gamestream::video::{DepacketizerConfig, FrameInfo, FrameType, PacketizerConfig, VideoCodec};
use gamestream::AppVersion;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const CLIENT_IP: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));
const HOST_IP: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1));
const KEY: [u8; 16] = *b"pair-test-rikey!";
const PACKET_SIZE: usize = 1024;
const FRAME_INTERVAL: Duration = Duration::from_micros(16_667);
const AUDIO_INTERVAL: Duration = Duration::from_millis(5);
/// Keys pressed once the stream is up, one every 100 ms.
const KEYS: u16 = 20;

fn client_addr(socket: StreamSocket) -> SocketAddr {
    SocketAddr::new(CLIENT_IP, 40_000 + port_offset(socket))
}

fn host_addr(socket: StreamSocket) -> SocketAddr {
    SocketAddr::new(HOST_IP, 47_998 + port_offset(socket))
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

fn cores(seed: u64, start: Instant) -> (ClientCore, HostSessionCore) {
    let version = AppVersion::SUNSHINE;
    let mut control = ControlConfig::new(7, KEY, IvStyle::V2, version);
    control.linger = Duration::from_millis(500);
    let client = ClientCore::new(
        StreamParams {
            host_ip: HOST_IP,
            video_port: host_addr(StreamSocket::Video).port(),
            audio_port: host_addr(StreamSocket::Audio).port(),
            control_port: host_addr(StreamSocket::Control).port(),
            video_ping_payload: Some(*b"video-ping-0123!"),
            audio_ping_payload: Some(*b"audio-ping-0123!"),
            ping_interval: Duration::from_millis(500),
            video: DepacketizerConfig {
                packet_size: PACKET_SIZE,
                host_version: version,
                codec: VideoCodec::Av1,
                key: Some(KEY),
            },
            audio: AudioDepacketizerConfig::new(5, None),
            control,
            ri_key_id: 1,
            seed: Some(seed as u32),
        },
        start,
    )
    .expect("client core");
    let pings = |payload: &[u8; 16]| PingMatcher {
        payload: Some(*payload),
        accept_legacy: false,
        any_datagram_is_ping: false,
    };
    let host = HostSessionCore::new(
        HostSessionParams {
            version,
            key: KEY,
            iv_style: IvStyle::V2,
            connect_data: Some(7),
            video_pings: pings(b"video-ping-0123!"),
            audio_pings: pings(b"audio-ping-0123!"),
            video: PacketizerConfig {
                packet_size: PACKET_SIZE,
                fec_percent: 20,
                key: Some(KEY),
                ..Default::default()
            },
            audio: AudioPacketizerConfig {
                packet_duration_ms: 5,
                encryption: None,
            },
            seed: Some((seed >> 32) as u32),
        },
        start,
    )
    .expect("host core");
    (client, host)
}

/// Runs one session of `length` (virtual) over a link of `shape`.
fn run_session(seed: u64, shape: LinkShape, length: Duration) -> Outcome {
    let start = Instant::now();
    let (mut client, mut host) = cores(seed, start);
    let mut link = Link {
        shape,
        rng: StdRng::seed_from_u64(seed),
        queue: BinaryHeap::new(),
        order: 0,
        sent: 0,
        lost: 0,
    };
    let mut out = Outcome {
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
    let out = run_session(1, clean, Duration::from_secs(3));
    println!("clean link: {out:?}");
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
