//! WebRTC mode, the streamer alone: the real `streamer` binary driven over IPC against our host
//! half on 127.0.0.1, with a str0m peer in the test playing the browser (it offers, as Helix's
//! browser does in `create` mode, with the contract's data channels).
//!
//! Proven here: the UDP socket is bound inside a 10-port range and a full range fails with
//! `Error{NoIcePort, "no free UDP port in A-B on 127.0.0.1"}` before anything is launched;
//! offer/answer over `Signal`, ICE and DTLS over loopback; the negotiated H.264 payload type
//! carries the host's access units byte-exact (the first one a keyframe) with playout-delay 0,
//! Opus packets arrive intact; an RTCP PLI from the browser makes the host send a keyframe; input
//! on the `keyboard` data channel reaches the host; `Stop` cancels on the host before `Ended`,
//! and `general` says `"ConnectionTerminated"`; a peer that vanishes ends the stream after the
//! disconnect timeout with `Ended{PeerGone}`, the host session cancelled; `CreateOffer` makes the
//! streamer offer (contract §1.5 `join`) and media flows on the browser's answer; an offer
//! without the host's codec is `Error{UnsupportedCodec}`.

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use gamestream::input::InputEvent;
use str0m::change::SdpAnswer;
use str0m::channel::ChannelId;
use str0m::media::{Direction, KeyframeRequestKind, MediaKind, Mid};
use str0m::net::{Protocol, Receive};
use str0m::rtp::Extension;
use str0m::{Candidate, Event, Input, Output, Rtc};
use tokio::net::UdpSocket;
use tokio::process::{Child, ChildStdin};
use tokio::sync::mpsc;
use tokio::time::timeout;
use tokio_util::codec::{FramedRead, FramedWrite};
use wire::ipc::{
    EndReason, ErrorCode, FromStreamer, HostAddress as IpcHost, LocalSignal, PeerState,
    RemoteSignal, SdpType, ServerCodec, SessionDescription, StreamMode, StreamerInit, ToStreamer,
    WebRtcSettings,
};

use common::{rig, spawn_streamer, synthetic, Rig, WAIT};

/// The synthetic host's frame interval in these tests.
const FRAME_EVERY: Duration = Duration::from_millis(16);

/// The `Init` of a WebRTC stream from `rig`'s host with `webrtc` as the peer's settings.
/// A host rig for `client`, a streamer on a free 10-port range with a `disconnect_timeout_ms`
/// disconnect timeout, its `Init` sent, the host streaming: the rig, the range's first port, the
/// streamer.
async fn streaming(client: &str, disconnect_timeout_ms: u32) -> (Rig, u16, Streamer) {
    let mut rig = rig(client).await;
    let base = free_port_range(10);
    let mut s = spawn();
    let init = rig_init(&rig, settings(base, disconnect_timeout_ms));
    s.send(ToStreamer::Init(Box::new(init))).await;
    rig.await_stream(FRAME_EVERY).await;
    (rig, base, s)
}

fn rig_init(rig: &Rig, webrtc: WebRtcSettings) -> StreamerInit {
    let mut init = rig.init(StreamMode::Webrtc);
    init.webrtc = Some(webrtc);
    init
}

/// A streamer child whose output is read by a task into a channel (so the test can drive its
/// own peer and read IPC at once).
struct Streamer {
    child: Child,
    tx: FramedWrite<ChildStdin, ServerCodec>,
    rx: mpsc::UnboundedReceiver<FromStreamer>,
}

fn spawn() -> Streamer {
    let (child, stdin, stdout) = spawn_streamer("info,str0m=warn");
    let (out_tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut frames = FramedRead::new(stdout, ServerCodec::new());
        while let Some(Ok(f)) = frames.next().await {
            if out_tx.send(f).is_err() {
                break;
            }
        }
    });
    Streamer {
        child,
        tx: FramedWrite::new(stdin, ServerCodec::new()),
        rx,
    }
}

impl Streamer {
    /// The child's exit code once it has exited (within 5 s).
    async fn exit_code(&mut self) -> Option<i32> {
        let status = timeout(Duration::from_secs(5), self.child.wait()).await;
        status.unwrap().unwrap().code()
    }
    async fn send(&mut self, msg: ToStreamer) {
        self.tx.send(msg).await.expect("IPC write");
    }
    async fn next(&mut self) -> FromStreamer {
        timeout(WAIT, self.rx.recv())
            .await
            .expect("streamer answered in time")
            .expect("streamer output open")
    }
}

/// utime + stime of a process, in clock ticks (Linux /proc).
fn cpu_ticks(pid: Option<u32>) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{}/stat", pid?)).ok()?;
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split(' ').collect();
    Some(fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?)
}

/// `n` consecutive free UDP ports on loopback (checked by binding them; released on return).
fn free_port_range(n: u16) -> u16 {
    for _ in 0..50 {
        let probe = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let base = probe.local_addr().unwrap().port();
        drop(probe);
        if base > 65535 - n {
            continue;
        }
        let held: Result<Vec<_>, _> = (base..base + n)
            .map(|p| std::net::UdpSocket::bind(("127.0.0.1", p)))
            .collect();
        if held.is_ok() {
            return base;
        }
    }
    panic!("no {n} consecutive free UDP ports");
}

fn settings(base: u16, disconnect_timeout_ms: u32) -> WebRtcSettings {
    WebRtcSettings {
        udp_port_min: base,
        udp_port_max: base + 9,
        bind_address: "127.0.0.1".into(),
        disconnect_timeout_ms,
        ..WebRtcSettings::default()
    }
}

/// The browser's side: a str0m peer on its own loopback socket.
struct Browser {
    rtc: Rtc,
    socket: UdpSocket,
    addr: SocketAddr,
    buf: Vec<u8>,
    video: Mid,
}

/// What the browser saw.
#[derive(Default, Debug)]
struct Seen {
    connected: bool,
    frames: u32,
    exact_frames: u32,
    keyframes: u32,
    first_was_keyframe: Option<bool>,
    playout_delay_zero: u32,
    audio: u32,
    channels: Vec<(ChannelId, String)>,
    general_text: Vec<String>,
}

impl Browser {
    async fn new() -> Browser {
        Browser::with_config(Rtc::builder()).await
    }

    async fn with_config(config: str0m::RtcConfig) -> Browser {
        // A browser-sized receive buffer: on a loaded 2-core machine the test peer can be off the
        // CPU while a keyframe's burst arrives, and the default buffer drops part of it.
        let std_socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let _ = socket2::SockRef::from(&std_socket).set_recv_buffer_size(4 << 20);
        std_socket.set_nonblocking(true).unwrap();
        let socket = UdpSocket::from_std(std_socket).unwrap();
        let addr = socket.local_addr().unwrap();
        let mut rtc = config
            .set_extension(6, Extension::PlayoutDelay)
            .build(Instant::now());
        rtc.add_local_candidate(Candidate::host(addr, "udp").unwrap());
        Browser {
            rtc,
            socket,
            addr,
            buf: vec![0; 2048],
            video: Mid::from("0"),
        }
    }

    /// The offer: recv-only video and audio, the contract's input channels.
    fn offer(&mut self) -> (String, str0m::change::SdpPendingOffer) {
        let mut api = self.rtc.sdp_api();
        self.video = api.add_media(MediaKind::Video, Direction::RecvOnly, None, None, None);
        api.add_media(MediaKind::Audio, Direction::RecvOnly, None, None, None);
        for label in [
            "keyboard",
            "mouseClicks",
            "mouseAbsolute",
            "mouseRelative",
            "controllers",
        ] {
            api.add_channel(label.into());
        }
        let (offer, pending) = api.apply().unwrap();
        (offer.to_sdp_string(), pending)
    }

    /// Runs the peer for up to `d`, collecting what it sees.
    async fn run_for(&mut self, d: Duration, seen: &mut Seen) {
        let end = Instant::now() + d;
        loop {
            let next = loop {
                match self.rtc.poll_output().unwrap() {
                    Output::Timeout(t) => break t,
                    Output::Transmit(t) => {
                        let _ = self.socket.send_to(&t.contents, t.destination).await;
                    }
                    Output::Event(e) => self.event(e, seen),
                }
            };
            let now = Instant::now();
            if now >= end {
                return;
            }
            let wake = next.min(end).max(now + Duration::from_millis(1));
            tokio::select! {
                r = self.socket.recv_from(&mut self.buf) => {
                    let (n, source) = r.unwrap();
                    if let Ok(contents) = self.buf[..n].try_into() {
                        let input = Input::Receive(Instant::now(), Receive {
                            proto: Protocol::Udp, source, destination: self.addr, contents,
                        });
                        self.rtc.handle_input(input).unwrap();
                    }
                }
                _ = tokio::time::sleep_until(wake.into()) => {
                    self.rtc.handle_input(Input::Timeout(Instant::now())).unwrap();
                }
            }
        }
    }

    fn event(&mut self, e: Event, seen: &mut Seen) {
        match e {
            Event::Connected => seen.connected = true,
            Event::MediaAdded(m) if m.kind == MediaKind::Video => self.video = m.mid,
            Event::MediaData(m) if m.mid == self.video => {
                seen.frames += 1;
                let key = m.data.get(4).is_some_and(|b| b & 0x1f == 5);
                seen.keyframes += u32::from(key);
                seen.first_was_keyframe.get_or_insert(key);
                if synthetic::check_video_au(&m.data).is_ok() {
                    seen.exact_frames += 1;
                }
                if m.ext_vals.play_delay_max.is_some_and(|t| t.numer() == 0) {
                    seen.playout_delay_zero += 1;
                }
            }
            Event::MediaData(m) => {
                synthetic::check_opus(&m.data).expect("Opus packet intact");
                seen.audio += 1;
            }
            Event::ChannelOpen(id, label) => seen.channels.push((id, label)),
            Event::ChannelData(d) if !d.binary => {
                seen.general_text
                    .push(String::from_utf8_lossy(&d.data).into_owned());
            }
            _ => {}
        }
    }

    fn channel(&self, seen: &Seen, label: &str) -> Option<ChannelId> {
        seen.channels
            .iter()
            .find(|(_, l)| l == label)
            .map(|(id, _)| *id)
    }
}

/// Reads IPC until the streamer's answer; returns it and the signals seen meanwhile.
async fn answer(s: &mut Streamer) -> (String, Vec<LocalSignal>) {
    let mut others = Vec::new();
    loop {
        match s.next().await {
            FromStreamer::Signal(LocalSignal::Description(d)) => {
                assert_eq!(d.ty, SdpType::Answer);
                return (d.sdp, others);
            }
            FromStreamer::Signal(other) => others.push(other),
            FromStreamer::Video(_) | FromStreamer::Audio(_) => {
                panic!("no media over IPC in WebRTC mode")
            }
            FromStreamer::Ended(e) => panic!("ended: {e:?}"),
            _ => {}
        }
    }
}

/// Offer/answer with the streamer and run until media flows.
async fn connect(s: &mut Streamer, browser: &mut Browser, base: u16) -> Seen {
    let (offer, pending) = browser.offer();
    s.send(ToStreamer::Signal(RemoteSignal::Description(
        SessionDescription {
            ty: SdpType::Offer,
            sdp: offer,
        },
    )))
    .await;
    let (answer_sdp, _) = answer(s).await;
    // The trickled candidates follow the answer and name its first mid and ufrag.
    let candidate = loop {
        if let FromStreamer::Signal(LocalSignal::Candidate(c)) = s.next().await {
            break c;
        }
    };
    let mid = candidate.sdp_mid.clone().expect("sdp_mid");
    assert!(
        answer_sdp.contains(&format!("a=mid:{mid}")),
        "{candidate:?}"
    );
    let ufrag = candidate.username_fragment.clone().expect("ufrag");
    assert!(answer_sdp.contains(&format!("a=ice-ufrag:{ufrag}")));
    assert!(answer_sdp.contains(&candidate.candidate), "{candidate:?}");
    let port_in_range =
        (base..=base + 9).any(|p| answer_sdp.contains(&format!("127.0.0.1 {p} typ host")));
    assert!(
        port_in_range,
        "candidate inside the 10-port range: {answer_sdp}"
    );
    assert!(answer_sdp.contains("playout-delay"), "{answer_sdp}");
    assert!(answer_sdp.contains("H264") && answer_sdp.contains("packetization-mode=1"));
    let answer = SdpAnswer::from_sdp_string(&answer_sdp).unwrap();
    browser
        .rtc
        .sdp_api()
        .accept_answer(pending, answer)
        .unwrap();
    let mut seen = Seen::default();
    let t0 = Instant::now();
    while seen.frames < 10 || seen.audio < 10 {
        assert!(t0.elapsed() < WAIT, "media did not flow: {seen:?}");
        browser.run_for(Duration::from_millis(100), &mut seen).await;
    }
    println!("offer → 10 frames: {} ms", t0.elapsed().as_millis());
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webrtc_streams_relays_input_and_stops_cleanly() {
    let mut rig = rig("webrtc-client-a").await;
    let base = free_port_range(10);
    let mut s = spawn();
    let mut init = rig_init(&rig, settings(base, 10_000));
    // WebRTC carries stereo Opus: a surround request is streamed as stereo.
    init.audio_channels = 6;
    s.send(ToStreamer::Init(Box::new(init))).await;
    rig.await_stream(FRAME_EVERY).await;
    loop {
        if let FromStreamer::Started(st) = s.next().await {
            assert_eq!(st.codec, wire::browser::VideoCodec::H264);
            assert_eq!(st.audio_channels, 2);
            assert_eq!(st.opus, Some(wire::browser::OpusLayout::stereo()));
            break;
        }
    }
    let mut browser = Browser::new().await;
    let mut seen = connect(&mut s, &mut browser, base).await;
    assert!(seen.connected);
    assert_eq!(seen.first_was_keyframe, Some(true), "{seen:?}");

    // Input on `keyboard` (Shift+A down, contract §5.2 without the type byte).
    let kb = browser.channel(&seen, "keyboard").expect("keyboard open");
    browser
        .rtc
        .channel(kb)
        .unwrap()
        .write(true, &[0x00, 0x01, 0x01, 0x00, 0x41])
        .unwrap();
    // PLI → IDR from the host.
    let before = seen.keyframes;
    let video = browser.video;
    browser
        .rtc
        .writer(video)
        .unwrap()
        .request_keyframe(None, KeyframeRequestKind::Pli)
        .unwrap();
    let t0 = Instant::now();
    let (cpu0, frames0) = (cpu_ticks(s.child.id()), seen.frames);
    while seen.frames < 120 || seen.keyframes <= before || seen.audio < 50 {
        assert!(t0.elapsed() < WAIT, "{seen:?}");
        browser.run_for(Duration::from_millis(100), &mut seen).await;
    }
    println!("browser saw {seen:?}");
    if let (Some(c0), Some(c1)) = (cpu0, cpu_ticks(s.child.id())) {
        // Clock ticks are 1/100 s on Linux.
        let secs = t0.elapsed().as_secs_f64();
        println!(
            "WebRTC streamer CPU: {:.1} % of one core over {secs:.1} s, {} frames (debug build; \
             host RTP in, FEC, str0m SRTP/packetizing out)",
            (c1 - c0) as f64 / secs,
            seen.frames - frames0
        );
    }
    // The streamer's footprint while streaming 60 fps + audio to one peer (Linux /proc).
    if let Some(pid) = s.child.id() {
        if let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) {
            let field = |name: &str| {
                status
                    .lines()
                    .find(|l| l.starts_with(name))
                    .map(|l| l[name.len()..].trim().to_string())
                    .unwrap_or_default()
            };
            println!(
                "WebRTC streamer: VmRSS {}, VmHWM {}, Threads {}",
                field("VmRSS:"),
                field("VmHWM:"),
                field("Threads:")
            );
        }
    }
    assert!(
        seen.exact_frames * 10 >= seen.frames * 9,
        "access units byte-exact: {seen:?}"
    );
    assert!(
        seen.playout_delay_zero > 0,
        "playout-delay 0 on video: {seen:?}"
    );
    let expected = InputEvent::KeyDown {
        flags: 0,
        key_code: 0x8041,
        modifiers: 1,
    };
    assert!(
        rig.inputs.lock().unwrap().contains(&expected),
        "keyboard input reached the host: {:?}",
        rig.inputs.lock().unwrap()
    );
    assert!(
        browser.channel(&seen, "general").is_some(),
        "general opened by the streamer"
    );

    // Stats count what went to the peer (a later Stats than the input; older ones may be queued).
    let stats = loop {
        if let FromStreamer::Stats(st) = s.next().await {
            if st.input_events >= 1 {
                break st;
            }
        }
    };
    assert!(
        stats.video_frames > 0 && stats.audio_packets > 0,
        "{stats:?}"
    );

    // Stop: host cancelled before Ended; the browser hears ConnectionTerminated.
    s.send(ToStreamer::Stop).await;
    let ended = loop {
        tokio::select! {
            f = s.next() => if let FromStreamer::Ended(e) = f { break e },
            _ = browser.run_for(Duration::from_millis(50), &mut seen) => {}
        }
    };
    assert_eq!(ended.reason, EndReason::Stopped);
    assert!(rig.host.sessions().is_empty(), "cancelled before Ended");
    browser.run_for(Duration::from_millis(200), &mut seen).await;
    assert!(
        seen.general_text
            .iter()
            .any(|t| t == "\"ConnectionTerminated\""),
        "{:?}",
        seen.general_text
    );
    assert_eq!(s.exit_code().await, Some(0));
    rig.host.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vanished_peer_ends_the_stream_after_the_disconnect_timeout() {
    let (rig, base, mut s) = streaming("webrtc-client-b", 1_000).await;
    let mut browser = Browser::new().await;
    connect(&mut s, &mut browser, base).await;
    // The browser vanishes without a word (tab killed, network gone).
    drop(browser);
    let gone = Instant::now();
    let mut states = Vec::new();
    let ended = loop {
        match s.next().await {
            FromStreamer::Signal(LocalSignal::State(st)) => states.push(st),
            FromStreamer::Ended(e) => break e,
            _ => {}
        }
    };
    println!(
        "peer vanished → Ended: {} ms, states {states:?}",
        gone.elapsed().as_millis()
    );
    assert_eq!(ended.reason, EndReason::PeerGone, "{ended:?}");
    assert!(states.contains(&PeerState::Disconnected), "{states:?}");
    assert!(
        rig.host.sessions().is_empty(),
        "host cancelled before Ended"
    );
    assert_eq!(s.exit_code().await, Some(4));
    rig.host.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_port_range_fails_clearly_before_launching() {
    let base = free_port_range(10);
    let _held: Vec<_> = (base..base + 10)
        .map(|p| std::net::UdpSocket::bind(("127.0.0.1", p)).unwrap())
        .collect();
    let mut s = spawn();
    // The host is never contacted: the socket comes first.
    let mut init = common::init_for(
        "webrtc-client-c",
        IpcHost {
            address: "127.0.0.1".into(),
            http_port: 1,
            https_port: 1,
        },
        Vec::new(),
        String::new(),
        String::new(),
        StreamMode::Webrtc,
    );
    init.webrtc = Some(settings(base, 10_000));
    s.send(ToStreamer::Init(Box::new(init))).await;
    let error = match s.next().await {
        FromStreamer::Error(e) => e,
        other => panic!("expected Error, got {other:?}"),
    };
    assert_eq!(error.code, ErrorCode::NoIcePort);
    assert_eq!(
        error.message,
        format!("no free UDP port in {base}-{} on 127.0.0.1", base + 9)
    );
    match s.next().await {
        FromStreamer::Ended(e) => assert_eq!(e.reason, EndReason::Error),
        other => panic!("expected Ended, got {other:?}"),
    }
    assert_eq!(s.exit_code().await, Some(1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_streamer_offers_when_asked() {
    // Contract §1.5: in `join` mode the server makes the offer.
    let (rig, _, mut s) = streaming("webrtc-client-d", 10_000).await;
    s.send(ToStreamer::Signal(RemoteSignal::CreateOffer)).await;
    let offer = loop {
        match s.next().await {
            FromStreamer::Signal(LocalSignal::Description(d)) => break d,
            FromStreamer::Ended(e) => panic!("ended: {e:?}"),
            _ => {}
        }
    };
    assert_eq!(offer.ty, SdpType::Offer);
    assert!(offer.sdp.contains("m=video") && offer.sdp.contains("m=application"));
    let mut browser = Browser::new().await;
    let answer = browser
        .rtc
        .sdp_api()
        .accept_offer(str0m::change::SdpOffer::from_sdp_string(&offer.sdp).unwrap())
        .unwrap();
    s.send(ToStreamer::Signal(RemoteSignal::Description(
        SessionDescription {
            ty: SdpType::Answer,
            sdp: answer.to_sdp_string(),
        },
    )))
    .await;
    let mut seen = Seen::default();
    let t0 = Instant::now();
    while seen.frames < 30 || seen.audio < 10 {
        assert!(t0.elapsed() < WAIT, "media did not flow: {seen:?}");
        browser.run_for(Duration::from_millis(100), &mut seen).await;
    }
    assert_eq!(seen.first_was_keyframe, Some(true), "{seen:?}");
    assert!(seen.exact_frames * 10 >= seen.frames * 9, "{seen:?}");
    assert!(browser.channel(&seen, "general").is_some());
    s.send(ToStreamer::Stop).await;
    let ended = loop {
        if let FromStreamer::Ended(e) = s.next().await {
            break e;
        }
    };
    assert_eq!(ended.reason, EndReason::Stopped);
    rig.host.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_offer_without_the_hosts_codec_is_refused() {
    let (rig, _, mut s) = streaming("webrtc-client-e", 10_000).await;
    // A browser that decodes VP8 only; the host streams H.264.
    let mut browser = Browser::with_config(
        Rtc::builder()
            .clear_codecs()
            .enable_vp8(true)
            .enable_opus(true, false),
    )
    .await;
    let (offer, _pending) = browser.offer();
    s.send(ToStreamer::Signal(RemoteSignal::Description(
        SessionDescription {
            ty: SdpType::Offer,
            sdp: offer,
        },
    )))
    .await;
    let mut error = None;
    let ended = loop {
        match s.next().await {
            FromStreamer::Error(e) => error = Some(e),
            FromStreamer::Ended(e) => break e,
            _ => {}
        }
    };
    let error = error.expect("Error before Ended");
    println!("{error:?}");
    assert_eq!(error.code, ErrorCode::UnsupportedCodec);
    assert_eq!(ended.reason, EndReason::Error);
    assert!(rig.host.sessions().is_empty(), "host cancelled");
    rig.host.close().await;
}
