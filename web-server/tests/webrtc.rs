//! WebRTC mode end to end: the gateway (in this process) with the embedded demo host, real
//! `streamer` children owning the peer connections, and a str0m test peer acting as the browser,
//! all on 127.0.0.1 (ICE host candidates only).
//!
//! Needs the streamer binary (`cargo build -p streamer`). Every test prints its figures.

mod common;
#[path = "common/rtc_peer.rs"]
mod rtc_peer;
#[path = "common/rtc_signaling.rs"]
mod rtc_signaling;

use std::time::{Duration, Instant};

use common::*;
use futures_util::{SinkExt, StreamExt};
use gamestream::input::InputEvent;
use rtc_peer::{PeerEvent, RtcPeer, CHANNELS};
use rtc_signaling::*;
use tokio::time::timeout;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use web_server::{embedded, Config};
use wire::browser::signaling::{RtcSdpType, RtcSessionDescription, ServerMessage, Signaling};
use wire::browser::Message;

fn init_log() {
    if std::env::var_os("RUST_LOG").is_some() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_test_writer()
            .try_init();
    }
}

/// A gateway whose peers bind 127.0.0.1 (and, if given, only ports `range`).
async fn rtc_gateway(range: Option<(u16, u16)>) -> Gateway {
    rtc_gateway_with(range, None).await
}

/// [`rtc_gateway`] whose host replays pre-encoded video (see [`serve_replay_gateway`]).
async fn rtc_gateway_replay() -> Gateway {
    let (config, dir) = rtc_config(None, None);
    serve_replay_gateway(config, dir).await
}

async fn rtc_gateway_with(range: Option<(u16, u16)>, disconnect: Option<Duration>) -> Gateway {
    let (config, dir) = rtc_config(range, disconnect);
    let (host, provided) = embedded::start_demo_host(&config).await.unwrap();
    serve_gateway(config, host, provided, dir).await
}

fn rtc_config(
    range: Option<(u16, u16)>,
    disconnect: Option<Duration>,
) -> (Config, tempfile::TempDir) {
    init_log();
    let (mut config, dir) = loopback_config();
    if let Some((lo, hi)) = range {
        config.webrtc.udp_port_min = lo;
        config.webrtc.udp_port_max = hi;
    }
    if let Some(d) = disconnect {
        config.webrtc.disconnect_timeout = d;
    }
    (config, dir)
}

fn auth_init(session: &str, client: &str, w: u32, h: u32, fps: u32) -> String {
    AuthInit {
        session,
        client,
        host_id: 0,
        bitrate: 20000,
        size: (w, h),
        fps,
    }
    .json()
}

/// Opens the signaling socket as the Helix viewer does (no Authorization header: the
/// credentials travel in `AuthenticateAndInit`).
async fn open_signaling(gw: &Gateway, session: &str, client: &str, w: u32, h: u32, fps: u32) -> Ws {
    let init = auth_init(session, client, w, h, fps);
    open_signaling_socket(&gw.addr.to_string(), session, init, Duration::from_secs(5)).await
}

/// The contract's data-channel payloads (§3.4): the WebSocket messages without their type byte,
/// and the touch/controller layouts.
/// (channel label, payload, predicate on the host's event).
type ChannelInput = (&'static str, Vec<u8>, fn(&InputEvent) -> bool);

fn channel_inputs() -> Vec<ChannelInput> {
    let strip = |m: Message<'_>| m.to_vec().unwrap()[1..].to_vec();
    let mut add = vec![0u8, 0];
    add.extend_from_slice(&0xF7FFu32.to_be_bytes());
    add.extend_from_slice(&0x3u16.to_be_bytes());
    let mut pad = vec![0u8];
    pad.extend_from_slice(&0x1000u32.to_be_bytes());
    pad.extend_from_slice(&[200, 0]);
    pad.extend_from_slice(&[0u8; 8]);
    let mut cases: Vec<ChannelInput> = key_pointer_touch_inputs(
        [
            "keyboard",
            "mouseClicks",
            "mouseAbsolute",
            "mouseRelative",
            "touch",
        ],
        strip,
    );
    let controllers: [ChannelInput; 2] = [
        ("controllers", add, |e| {
            matches!(e, InputEvent::ControllerArrival { .. })
        }),
        (
            "controller0",
            pad,
            |e| matches!(e, InputEvent::MultiController(s) if s.buttons == 0x1000),
        ),
    ];
    cases.extend(controllers);
    cases
}

/// Closes the socket and waits (bounded) for the registry, the streamers and the host to be
/// clean; returns the time it took.
async fn close_and_check_clean(gw: &Gateway, mut ws: Ws) -> Duration {
    let t = Instant::now();
    let _ = ws.close(None).await;
    drop(ws);
    assert_stream_gone(gw, Duration::from_secs(10), Duration::from_secs(5)).await;
    t.elapsed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signaling_socket_streams_1080p60_opus_and_every_input_then_closes_clean() {
    let _serial = SERIAL.lock().await;
    let gw = rtc_gateway_replay().await;
    let opened = Instant::now();
    let mut ws = open_signaling(&gw, "agent-ses_r-1", "helix-agent-r", 1920, 1080, 60).await;
    let mut peer = RtcPeer::start();
    let mut seen = Seen::default();
    negotiate(
        &mut ws,
        &mut peer,
        &mut seen,
        Duration::from_secs(30),
        |s| {
            s.complete.is_some()
                && CHANNELS.iter().all(|(l, ..)| s.channels.contains(*l))
                && s.first_video.is_some()
        },
    )
    .await;
    let first = seen.first_video.unwrap();
    println!(
        "signaling open → first keyframe: {} ms; stages {:?}; {} server candidates",
        (first - opened).as_millis(),
        seen.stages,
        seen.server_candidates
    );
    assert_eq!(seen.complete, Some((1920, 1080)));
    for stage in [
        "Launch Streamer",
        "Setup WebRTC Peer",
        "WebRTC Peer Negotiation",
        "Moonlight Stream",
    ] {
        assert!(
            seen.stages.iter().any(|s| s == stage),
            "stage {stage} missing"
        );
    }

    // Inputs on every channel.
    for (label, bytes, _) in channel_inputs() {
        peer.send(label, bytes);
    }
    // 5 s of media from the first keyframe (decoded afterwards).
    let mut frames: Vec<Vec<u8>> = std::mem::take(&mut seen.frames);
    let mut audio = seen.audio;
    let end = first + Duration::from_secs(5);
    while Instant::now() < end {
        let left = end.saturating_duration_since(Instant::now());
        match timeout(left, peer.events.recv()).await {
            Err(_) => break,
            Ok(None) => panic!("peer ended"),
            Ok(Some(PeerEvent::Video(au, _, _))) => frames.push(au),
            Ok(Some(PeerEvent::Audio(_))) => audio += 1,
            Ok(Some(PeerEvent::Closed(e))) => panic!("peer closed: {e:?}"),
            Ok(Some(_)) => {}
        }
    }
    let video = frames.len();
    println!("5 s of 1080p60 over WebRTC: {video} video frames, {audio} Opus packets");
    assert!(video >= 280, "only {video} video frames in 5 s");
    assert!(audio > 0, "no Opus");

    assert_every_input_reached_host(&gw.host, &channel_inputs()).await;
    assert_eq!(streamer_children().len(), 1);

    let took = close_and_check_clean(&gw, ws).await;
    println!("signaling close → clean: {} ms", took.as_millis());
    peer.close();

    assert!(rtc_peer::has_idr(&frames[0]), "collection starts at an IDR");
    let (_, pictures) = decode_h264(frames).await;
    assert!(pictures >= 280, "only {pictures} pictures decoded");
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_credentials_and_bad_json_get_clear_errors() {
    let _serial = SERIAL.lock().await;
    let gw = rtc_gateway(None).await;
    // Wrong credentials: StageFailed{Authentication} then a close 1008.
    let bad = auth_init("x", "c", 320, 240, 30).replace(SECRET, "wrong");
    let addr = gw.addr.to_string();
    let mut ws = open_signaling_socket(&addr, "x", bad, Duration::from_secs(5)).await;
    let (texts, close) = read_all(&mut ws).await;
    assert!(
        texts
            .iter()
            .any(|t| t.contains(r#"{"StageFailed":{"stage":"Authentication","error_code":-1}}"#)),
        "{texts:?}"
    );
    assert_eq!(close.as_ref().map(|c| c.0), Some(1008), "{close:?}");

    // Not JSON: a close 1008 whose reason says why.
    let url = format!("ws://{addr}/api/host/stream");
    let mut ws = upgrade(&url, None, Duration::from_secs(5)).await;
    ws.send(WsMessage::Text("{nope".into())).await.unwrap();
    let (_, close) = read_all(&mut ws).await;
    let (code, reason) = close.expect("a close frame");
    assert_eq!(code, 1008);
    assert!(reason.starts_with("InvalidMessage"), "{reason}");

    // Bad SDP after a good init: the streamer's BadSignal ends the stream with a clear reason.
    let mut ws = open_signaling(&gw, "agent-ses_bad", "helix-agent-bad", 320, 240, 30).await;
    loop {
        let msg = timeout(Duration::from_secs(20), ws.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        if let WsMessage::Text(t) = msg {
            if t.contains("WebRtcConfig") {
                break;
            }
        }
    }
    ws.send(signal(Signaling::Description(RtcSessionDescription {
        ty: RtcSdpType::Offer,
        sdp: "this is not SDP".into(),
    })))
    .await
    .unwrap();
    let (texts, close) = read_all(&mut ws).await;
    let (code, reason) = close.expect("a close frame");
    println!("bad SDP → {code} {reason:?} after {texts:?}");
    assert_eq!(code, 1011);
    // The streamer checks the offer's codecs before parsing the rest: garbage reads as either.
    assert!(
        reason.starts_with("BadSignal: ") || reason.starts_with("UnsupportedCodec: "),
        "{reason}"
    );
    assert!(gw.registry_empty(Duration::from_secs(10)).await);
    assert!(eventually(Duration::from_secs(5), || streamer_children().is_empty()).await);
    gw.stop().await;
}

/// Every text message and the close frame (bounded).
async fn read_all(ws: &mut Ws) -> (Vec<String>, Option<(u16, String)>) {
    let mut texts = Vec::new();
    loop {
        match timeout(Duration::from_secs(20), ws.next()).await {
            Err(_) => panic!("no close (texts so far: {texts:?})"),
            Ok(None) | Ok(Some(Err(_))) => return (texts, None),
            Ok(Some(Ok(WsMessage::Close(c)))) => {
                return (texts, c.map(|c| (u16::from(c.code), c.reason.to_string())))
            }
            Ok(Some(Ok(WsMessage::Text(t)))) => texts.push(t.to_string()),
            Ok(Some(Ok(_))) => {}
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn same_key_supersedes_with_client_kicked_and_4000() {
    let _serial = SERIAL.lock().await;
    let gw = rtc_gateway(None).await;
    let mut old = open_signaling(&gw, "agent-ses_s", "helix-agent-s", 320, 240, 30).await;
    let old_peer = first_video(&mut old, Duration::from_secs(30)).await;
    let mut new = open_signaling(&gw, "agent-ses_s", "helix-agent-s", 320, 240, 30).await;
    let (texts, close) = read_all(&mut old).await;
    assert!(texts.iter().any(|t| t == r#""ClientKicked""#), "{texts:?}");
    assert_eq!(close, Some((4000, "superseded".to_string())));
    let peer = first_video(&mut new, Duration::from_secs(30)).await;
    assert_eq!(gw.state.sessions.list().len(), 1);
    close_and_check_clean(&gw, new).await;
    drop(old_peer);
    drop(peer);
    gw.stop().await;
}

/// `join` (contract §1.5): the live stream of the session id is kicked (`ClientKicked` + 4000),
/// the new socket gets the server's offer, answers, and streams; `join` with nothing live gets
/// `SessionNotFound`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn join_kicks_the_live_socket_and_the_server_offers() {
    let _serial = SERIAL.lock().await;
    let gw = rtc_gateway(None).await;
    let join_init = |session: &str| {
        auth_init(session, "", 320, 240, 30)
            .replace(r#""mode":"create""#, r#""mode":"join""#)
            .replace(r#""client_unique_id":"""#, r#""client_unique_id":null"#)
    };
    let url = format!("ws://{}/api/host/stream", gw.addr);
    let connect = || upgrade(&url, None, Duration::from_secs(5));
    // Nothing live: SessionNotFound.
    let mut ws = connect().await;
    ws.send(WsMessage::Text(join_init("agent-ses_j").into()))
        .await
        .unwrap();
    let (texts, _) = read_all(&mut ws).await;
    assert!(
        texts.iter().any(|t| t == r#""SessionNotFound""#),
        "{texts:?}"
    );

    let mut old = open_signaling(&gw, "agent-ses_j", "helix-agent-j", 320, 240, 30).await;
    let old_peer = first_video(&mut old, Duration::from_secs(30)).await;
    let mut new = connect().await;
    new.send(WsMessage::Text(join_init("agent-ses_j").into()))
        .await
        .unwrap();
    let (texts, close) = read_all(&mut old).await;
    assert!(texts.iter().any(|t| t == r#""ClientKicked""#), "{texts:?}");
    assert_eq!(close, Some((4000, "superseded".to_string())));
    drop(old_peer);
    // The server offers; the peer answers.
    let mut peer: Option<RtcPeer> = None;
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut video = 0;
    while video < 10 {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(!left.is_zero(), "no video after join");
        tokio::select! {
            msg = timeout(left, new.next()) => {
                let Ok(Some(Ok(WsMessage::Text(t)))) = msg else { continue };
                match ServerMessage::parse(&t).unwrap() {
                    ServerMessage::Signaling(Signaling::Description(d)) => {
                        assert_eq!(d.ty, RtcSdpType::Offer, "the server offers in join mode");
                        let p = RtcPeer::answer(&d.sdp).expect("answer the server's offer");
                        send_description(&mut new, RtcSdpType::Answer, &p).await;
                        peer = Some(p);
                    }
                    ServerMessage::Signaling(Signaling::AddIceCandidate(c)) => {
                        if let Some(p) = &peer { p.add_remote_candidate(&c.candidate) }
                    }
                    _ => {}
                }
            }
            ev = async { match peer.as_mut() { Some(p) => p.events.recv().await, None => std::future::pending().await } } => {
                if let Some(PeerEvent::Video(..)) = ev { video += 1 }
            }
        }
    }
    assert_eq!(gw.state.sessions.list().len(), 1);
    close_and_check_clean(&gw, new).await;
    drop(peer);
    gw.stop().await;
}

/// A peer that goes silent (the browser vanished, the socket stays open) ends the stream through
/// the one teardown path after the disconnect timeout: `"PeerDisconnect"`, 1000, nothing left.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vanished_peer_ends_the_stream_after_the_disconnect_timeout() {
    let _serial = SERIAL.lock().await;
    let gw = rtc_gateway_with(None, Some(Duration::from_secs(2))).await;
    let mut ws = open_signaling(&gw, "agent-ses_v", "helix-agent-v", 320, 240, 30).await;
    let peer = first_video(&mut ws, Duration::from_secs(30)).await;
    let t = Instant::now();
    peer.close();
    let (texts, close) = read_all(&mut ws).await;
    println!(
        "peer vanished → {close:?} after {} ms ({texts:?})",
        t.elapsed().as_millis()
    );
    assert!(
        texts.iter().any(|t| t == r#""PeerDisconnect""#),
        "{texts:?}"
    );
    assert_eq!(close.map(|c| c.0), Some(1000));
    assert!(t.elapsed() < Duration::from_secs(20));
    assert_stream_gone(&gw, Duration::from_secs(5), Duration::from_secs(5)).await;
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whep_offer_answer_trickle_and_delete() {
    let _serial = SERIAL.lock().await;
    let gw = rtc_gateway(None).await;
    let client = reqwest_like::Client::new(gw.addr);

    // No bearer: 401; not SDP: 400; wrong content type: 415.
    assert_eq!(
        client
            .post_offer(None, "application/sdp", "v=0\r\n")
            .await
            .0,
        401
    );
    assert_eq!(
        client
            .post_offer(Some(SECRET), "application/sdp", "hello")
            .await
            .0,
        400
    );
    assert_eq!(
        client
            .post_offer(Some(SECRET), "text/plain", "v=0\r\n")
            .await
            .0,
        415
    );

    let mut peer = RtcPeer::start();
    let t = Instant::now();
    let (status, location, answer) = client
        .post_offer(Some(SECRET), "application/sdp", &peer.offer)
        .await;
    assert_eq!(status, 201, "{answer}");
    let location = location.expect("Location");
    assert!(location.starts_with("/api/whep/"), "{location}");
    peer.accept_answer(&answer);
    let frag = format!("a=mid:0\r\na={}\r\n", peer.local_candidate);
    assert_eq!(
        client
            .send(
                "PATCH",
                &location,
                Some(SECRET),
                Some(("application/trickle-ice-sdpfrag", &frag))
            )
            .await
            .0,
        204
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut video = 0;
    while video < 30 {
        let left = deadline.saturating_duration_since(Instant::now());
        match timeout(left, peer.events.recv())
            .await
            .expect("no WHEP video")
        {
            Some(PeerEvent::Video(..)) => video += 1,
            Some(PeerEvent::Closed(e)) => panic!("peer closed: {e:?}"),
            None => panic!("peer ended"),
            _ => {}
        }
    }
    println!("WHEP POST → 30 frames: {} ms", t.elapsed().as_millis());
    assert_eq!(gw.state.sessions.list().len(), 1);
    assert_eq!(gw.state.sessions.list()[0].meta.mode, "webrtc");

    let t = Instant::now();
    assert_eq!(
        client.send("DELETE", &location, Some(SECRET), None).await.0,
        200
    );
    println!(
        "WHEP DELETE → streamer gone: {} ms",
        t.elapsed().as_millis()
    );
    assert!(gw.state.sessions.list().is_empty());
    assert!(eventually(Duration::from_secs(5), || streamer_children().is_empty()).await);
    assert!(eventually(Duration::from_secs(5), || gw.host.sessions().is_empty()).await);
    assert_eq!(
        client.send("DELETE", &location, Some(SECRET), None).await.0,
        404
    );
    peer.close();
    gw.stop().await;
}

/// A 10-port range: 10 concurrent streams (320x240@30) connect; the 11th gets a clear error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_port_range_serves_ten_streams_and_refuses_the_eleventh() {
    let _serial = SERIAL.lock().await;
    // A free range: bind 10 consecutive ports, then release them.
    let base = (0..200)
        .map(|i| 42000 + i * 10)
        .find(|&b| (b..b + 10).all(|p| std::net::UdpSocket::bind(("127.0.0.1", p)).is_ok()))
        .expect("a free 10-port range");
    let gw = rtc_gateway(Some((base, base + 9))).await;
    let mut streams = Vec::new();
    let t = Instant::now();
    for i in 0..10 {
        let mut ws = open_signaling(
            &gw,
            &format!("agent-ses_p{i}"),
            &format!("helix-agent-p{i}"),
            320,
            240,
            30,
        )
        .await;
        let peer = first_video(&mut ws, Duration::from_secs(30)).await;
        streams.push((ws, peer));
    }
    println!(
        "10 streams in ports {base}-{}: all streaming after {} ms",
        base + 9,
        t.elapsed().as_millis()
    );
    let mut ws = open_signaling(&gw, "agent-ses_p10", "helix-agent-p10", 320, 240, 30).await;
    let peer = RtcPeer::start();
    let mut offered = false;
    let (texts, close) = loop {
        let msg = timeout(Duration::from_secs(30), ws.next()).await.unwrap();
        match msg {
            Some(Ok(WsMessage::Text(t))) if t.contains("WebRtcConfig") && !offered => {
                offered = true;
                ws.send(signal(Signaling::Description(RtcSessionDescription {
                    ty: RtcSdpType::Offer,
                    sdp: peer.offer.clone(),
                })))
                .await
                .unwrap();
            }
            Some(Ok(WsMessage::Text(_))) => {}
            _ => {
                let (texts, close) = read_all(&mut ws).await;
                break (texts, close);
            }
        }
        // The error arrives as messages, then a close.
        if offered {
            break read_all(&mut ws).await;
        }
    };
    println!("11th stream: {texts:?} {close:?}");
    let (code, reason) = close.expect("a close frame");
    assert_eq!(code, 1011);
    assert!(reason.contains("NoIcePort"), "{reason}");
    assert!(texts.iter().any(|t| t.contains("StageFailed")), "{texts:?}");
    drop(peer);
    // Every stream still up; then all close clean.
    assert_eq!(gw.state.sessions.list().len(), 10);
    for (ws, peer) in streams {
        let mut ws = ws;
        let _ = ws.close(None).await;
        drop(peer);
    }
    assert_stream_gone(&gw, Duration::from_secs(20), Duration::from_secs(10)).await;
    gw.stop().await;
}

/// 100 WebRTC open/close cycles (each to its first keyframe): threads, fds, children, host
/// sessions and the registry return to the baseline.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hundred_webrtc_cycles_return_everything_to_baseline() {
    let _serial = SERIAL.lock().await;
    let gw = rtc_gateway(None).await;
    let cycle = |n: u32| {
        let gw = &gw;
        async move {
            let t = Instant::now();
            let mut ws = open_signaling(gw, "agent-ses_cyc", "helix-agent-cyc", 320, 240, 30).await;
            let peer = first_video(&mut ws, Duration::from_secs(20)).await;
            let took = t.elapsed();
            let _ = ws.close(None).await;
            drop(ws);
            peer.close();
            assert!(
                gw.registry_empty(Duration::from_secs(10)).await,
                "cycle {n}: entry left"
            );
            took
        }
    };
    const N: u32 = 100;
    let run = run_cycles(&gw, N, || {}, cycle).await;
    let CycleRun {
        base,
        elapsed,
        worst,
        total,
    } = run;
    let Baseline { fds, threads, kids } = base;
    let settled = base.settle(&gw).await;
    println!(
        "{N} WebRTC cycles in {} ms; open → first keyframe avg {} ms, worst {} ms; fds {fds} → {}, \
         threads {threads} → {}, children {kids} → {}, host sessions {}, registry {}",
        elapsed.as_millis(),
        (total / N).as_millis(),
        worst.as_millis(),
        fd_count(),
        thread_count(),
        children().len(),
        gw.host.sessions().len(),
        gw.state.sessions.list().len()
    );
    settled.assert(&gw);
    gw.stop().await;
}

/// A minimal HTTP/1.1 client for the WHEP calls (hyper, one connection per request).
mod reqwest_like {
    use std::net::SocketAddr;

    use http_body_util::{BodyExt, Full};
    use hyper::body::Bytes;
    use hyper::Request;
    use hyper_util::rt::TokioIo;

    pub struct Client {
        addr: SocketAddr,
    }

    impl Client {
        pub fn new(addr: SocketAddr) -> Self {
            Client { addr }
        }

        pub async fn post_offer(
            &self,
            bearer: Option<&str>,
            content_type: &str,
            sdp: &str,
        ) -> (u16, Option<String>, String) {
            self.send(
                "POST",
                "/api/whep?width=640&height=360&fps=30",
                bearer,
                Some((content_type, sdp)),
            )
            .await
        }

        pub async fn send(
            &self,
            method: &str,
            path: &str,
            bearer: Option<&str>,
            body: Option<(&str, &str)>,
        ) -> (u16, Option<String>, String) {
            let stream = tokio::net::TcpStream::connect(self.addr).await.unwrap();
            let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
                .await
                .unwrap();
            let driver = tokio::spawn(conn);
            let mut req = Request::builder()
                .method(method)
                .uri(path)
                .header("host", self.addr.to_string());
            if let Some(b) = bearer {
                req = req.header("authorization", format!("Bearer {b}"));
            }
            let req = match body {
                Some((ct, text)) => req
                    .header("content-type", ct)
                    .body(Full::new(Bytes::from(text.to_string())))
                    .unwrap(),
                None => req.body(Full::new(Bytes::new())).unwrap(),
            };
            let resp = sender.send_request(req).await.unwrap();
            let status = resp.status().as_u16();
            let location = resp
                .headers()
                .get("location")
                .and_then(|v| v.to_str().ok())
                .map(String::from);
            let body = resp.into_body().collect().await.unwrap().to_bytes();
            driver.abort();
            (
                status,
                location,
                String::from_utf8_lossy(&body).into_owned(),
            )
        }
    }
}

/// 20 WebRTC streams back to back with one client identity against the embedded demo host in
/// Wolf-strict mode, which sends every video RTP packet with timestamp 0: the streamer stamps
/// frames itself, so the str0m peer (which closes a frame when the RTP timestamp changes) gets
/// whole, decodable access units; each stream ends with the host free, no session left and no
/// `/cancel` before the ENet disconnect.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_webrtc_streams_back_to_back_against_a_wolf_strict_host() {
    let _serial = SERIAL.lock().await;
    let gw = rtc_gateway(None).await;
    assert!(gw.host.wolf_strict(), "the embedded host is Wolf-strict");
    let mut decoded = (0usize, 0usize);
    for n in 0..20 {
        let mut ws =
            open_signaling(&gw, "agent-ses_rtc_real", "rtc-real-client", 320, 240, 60).await;
        let mut peer = RtcPeer::start();
        let mut seen = Seen::default();
        negotiate(
            &mut ws,
            &mut peer,
            &mut seen,
            Duration::from_secs(20),
            |s| s.frames.len() >= 30,
        )
        .await;
        let frames = std::mem::take(&mut seen.frames);
        close_and_check_clean(&gw, ws).await;
        peer.close();
        assert_host_free_after(&gw, n).await;
        let (ok, pictures) = tokio::task::spawn_blocking(move || {
            let mut dec = openh264::decoder::Decoder::new().unwrap();
            assert!(rtc_peer::has_idr(&frames[0]), "collection starts at an IDR");
            let mut pictures = 0;
            for au in &frames {
                if let Ok(Some(_)) = dec.decode(au) {
                    pictures += 1;
                }
            }
            (frames.len(), pictures)
        })
        .await
        .unwrap();
        assert!(
            pictures * 100 >= ok * 95,
            "stream {n}: {pictures} of {ok} access units decoded"
        );
        decoded = (decoded.0 + ok, decoded.1 + pictures);
    }
    println!(
        "20 WebRTC streams against a Wolf-strict host (RTP timestamp 0): {} of {} access units \
         decoded; 0 teardown-order violations",
        decoded.1, decoded.0
    );
    gw.stop().await;
}
