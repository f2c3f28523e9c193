//! The real `streamer` binary as a child process, driven over its stdin/stdout exactly as the
//! web-server drives it, against our host half (`gamestream::host::Host`) on 127.0.0.1 with a
//! synthetic producer whose every frame and packet is verifiable.
//!
//! Proven here: `Started` describes the stream; ≥ 100 video frames arrive byte-exact, a keyframe
//! first; audio arrives intact; every browser input kind is decoded on the host as the expected
//! Moonlight event; `Stop` and EOF on stdin both cancel on the host *before* `Ended` (the host
//! holds 0 sessions when `Ended` arrives) and the child exits 0 within 1 s; the host ending the
//! stream gives `Ended{HostEnded}` and exit code 3; a bad Init and an unreachable host give
//! `Error` then `Ended{Error}`; the Wolf lobby join is made against a fake Wolf API (the demo
//! host's real one is written in parallel).

mod common;

use std::process::ExitStatus;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use gamestream::host::EndReason as HostEndReason;
use gamestream::input::{ControllerState, InputEvent, TouchEvent};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::{Child, ChildStdin, ChildStdout};
use tokio::time::timeout;
use tokio_util::codec::{FramedRead, FramedWrite};
use wire::browser::{
    ControllerEvent, ControllerState as BrowserPad, KeyboardInput, Message, MouseAbsolute,
    MouseClick, MouseRelative, Touch,
};
use wire::ipc::{
    EndReason, ErrorCode, FromStreamer, ServerCodec, StreamMode, StreamerError, StreamerInit,
    ToStreamer, TurnRequest,
};
use wire::Secret;

use common::{rig, spawn_streamer, synthetic, Rig, WAIT};

/// The synthetic host's frame interval in these tests.
const FRAME_EVERY: Duration = Duration::from_millis(8);

struct Streamer {
    child: Child,
    tx: Option<FramedWrite<ChildStdin, ServerCodec>>,
    rx: FramedRead<ChildStdout, ServerCodec>,
    spawned: Instant,
}

fn spawn() -> Streamer {
    let (child, stdin, stdout) = spawn_streamer("info");
    Streamer {
        child,
        tx: Some(FramedWrite::new(stdin, ServerCodec::new())),
        rx: FramedRead::new(stdout, ServerCodec::new()),
        spawned: Instant::now(),
    }
}

/// A streamer child that has been sent `init`.
async fn spawn_with(init: StreamerInit) -> Streamer {
    let mut s = spawn();
    s.send(ToStreamer::Init(Box::new(init))).await;
    s
}

/// A streamer streaming from `rig` over WebSocket: the host has seen the stream start and the
/// first keyframe has arrived. The streamer, the host's session id and `Started`.
async fn streaming(rig: &mut Rig) -> (Streamer, u64, wire::browser::StreamInit) {
    let mut s = spawn_with(rig.init(StreamMode::Websocket)).await;
    let session_id = rig.await_stream(FRAME_EVERY).await;
    let started = started_and_first_keyframe(&mut s).await;
    (s, session_id, started)
}

impl Streamer {
    async fn send(&mut self, msg: ToStreamer) {
        self.tx
            .as_mut()
            .expect("stdin open")
            .send(msg)
            .await
            .expect("IPC write");
    }

    async fn next(&mut self) -> FromStreamer {
        timeout(WAIT, self.rx.next())
            .await
            .expect("streamer answered in time")
            .expect("streamer output open")
            .expect("valid IPC frame")
    }

    /// Reads until `Ended` (skipping media and stats); returns it and the `Error` before it.
    async fn until_ended(&mut self) -> (wire::ipc::Ended, Option<wire::ipc::StreamerError>) {
        let mut error = None;
        loop {
            match self.next().await {
                FromStreamer::Ended(e) => return (e, error),
                FromStreamer::Error(e) => error = Some(e),
                _ => {}
            }
        }
    }

    /// Reads until `Ended`, which must say `Stopped` with no `Error` before it.
    async fn ended_stopped(&mut self) {
        let (ended, error) = self.until_ended().await;
        assert_eq!((ended.reason, error), (EndReason::Stopped, None));
    }

    /// Reads until `Ended{Stopped}`, by which time `rig`'s host holds no session (the streamer
    /// cancelled first), then exits promptly (see [`Self::exits_promptly`]).
    async fn stopped_after_cancel(&mut self, rig: &Rig, since: Instant, what: &str) {
        self.ended_stopped().await;
        assert!(rig.host.sessions().is_empty(), "cancelled before Ended");
        self.exits_promptly(since, what).await;
    }

    /// Sends `Stop`; the stream ends `Stopped` and the process exits 0.
    async fn stop(&mut self) {
        self.send(ToStreamer::Stop).await;
        let (ended, _) = self.until_ended().await;
        assert_eq!(ended.reason, EndReason::Stopped);
        assert_eq!(self.exit(Instant::now()).await.0.code(), Some(0));
    }

    /// Reads until `Ended{Error}`, which an `Error` with `code` precedes, and the process exits
    /// with `exit_code`. That `Error`.
    async fn fails(&mut self, code: ErrorCode, exit_code: i32) -> StreamerError {
        let (ended, error) = self.until_ended().await;
        assert_eq!(ended.reason, EndReason::Error);
        let error = error.expect("Error before Ended");
        assert_eq!(error.code, code);
        assert_eq!(self.exit(Instant::now()).await.0.code(), Some(exit_code));
        error
    }

    /// After `Ended`, the process exits 0 within 1 s of `since` (`what` names the cause).
    async fn exits_promptly(&mut self, since: Instant, what: &str) {
        let (status, took) = self.exit(since).await;
        println!("{what} → exit: {} ms", took.as_millis());
        assert_eq!(status.code(), Some(0));
        assert!(took < Duration::from_secs(1), "exit took {took:?}");
    }

    /// After `Ended`: stdout is at EOF and the process exits; returns the status and how long
    /// the exit took from `since`.
    async fn exit(&mut self, since: Instant) -> (ExitStatus, Duration) {
        let status = timeout(Duration::from_secs(5), self.child.wait())
            .await
            .expect("streamer exits")
            .unwrap();
        let took = since.elapsed();
        let mut rest = Vec::new();
        let _ = self.rx.get_mut().read_to_end(&mut rest).await;
        assert!(
            rest.is_empty() && self.rx.read_buffer().is_empty(),
            "nothing after Ended"
        );
        (status, took)
    }
}

/// Reads until `Started` and the first video frame; checks the frame is a keyframe.
async fn started_and_first_keyframe(s: &mut Streamer) -> wire::browser::StreamInit {
    let started = loop {
        match s.next().await {
            FromStreamer::Started(st) => break st,
            FromStreamer::Video(_) => panic!("video before Started"),
            _ => {}
        }
    };
    loop {
        if let FromStreamer::Video(v) = s.next().await {
            assert!(v.keyframe, "the first frame is a keyframe");
            let (_, idr) = synthetic::check_video_au(&v.data).unwrap();
            assert!(idr);
            println!(
                "spawn → first keyframe: {} ms",
                s.spawned.elapsed().as_millis()
            );
            return started;
        }
    }
}

/// Every browser input kind with the Moonlight event the host must decode from it.
fn browser_inputs() -> Vec<(Vec<u8>, Vec<InputEvent>)> {
    let m = |msg: Message<'_>| msg.to_vec().unwrap();
    vec![
        (
            m(Message::Keyboard(KeyboardInput::Key {
                is_down: true,
                modifiers: 0x03,
                key: 0x41,
            })),
            vec![InputEvent::KeyDown {
                flags: 0,
                key_code: 0x8041,
                modifiers: 0x03,
            }],
        ),
        (
            m(Message::Keyboard(KeyboardInput::Key {
                is_down: false,
                modifiers: 0,
                key: 0x0D,
            })),
            vec![InputEvent::KeyUp {
                flags: 0,
                key_code: 0x800D,
                modifiers: 0,
            }],
        ),
        (
            m(Message::Keyboard(KeyboardInput::Text("héllo"))),
            vec![InputEvent::Utf8Text("héllo".into())],
        ),
        (
            m(Message::MouseClick(MouseClick::Button {
                is_down: true,
                button: 3,
            })),
            vec![InputEvent::MouseButtonDown { button: 3 }],
        ),
        (
            m(Message::MouseClick(MouseClick::Button {
                is_down: false,
                button: 3,
            })),
            vec![InputEvent::MouseButtonUp { button: 3 }],
        ),
        (
            m(Message::MouseClick(MouseClick::HighResWheel {
                dx: -40,
                dy: 240,
            })),
            vec![
                InputEvent::Scroll { amount: 240 },
                InputEvent::HScroll { amount: -40 },
            ],
        ),
        (
            m(Message::MouseClick(MouseClick::Wheel { dx: 0, dy: -10 })),
            vec![InputEvent::Scroll { amount: -120 }],
        ),
        (
            m(Message::MouseAbsolute(MouseAbsolute {
                x: 2048,
                y: 1024,
                ref_width: 4096,
                ref_height: 4096,
            })),
            vec![InputEvent::MouseMoveAbsolute {
                x: 2048,
                y: 1024,
                reference_width: 4096,
                reference_height: 4096,
            }],
        ),
        (
            m(Message::MouseRelative(MouseRelative { dx: 17, dy: -9 })),
            vec![InputEvent::MouseMoveRelative { dx: 17, dy: -9 }],
        ),
        (
            m(Message::Touch(Touch {
                event: 1,
                pointer_id: 42,
                x: 0.25,
                y: 0.75,
                pressure: 0.5,
                contact_major: 0.0,
                contact_minor: 0.0,
                rotation: 0xFFFF,
            })),
            vec![InputEvent::Touch(TouchEvent {
                event_type: 1,
                rotation: 0xFFFF,
                pointer_id: 42,
                x: 0.25,
                y: 0.75,
                pressure_or_distance: 0.5,
                contact_area_major: 0.0,
                contact_area_minor: 0.0,
            })],
        ),
        (
            m(Message::Controller(ControllerEvent::Arrival {
                id: 0,
                controller_type: 1,
                capabilities: 0x3,
                supported_buttons: 0xF7FF,
            })),
            vec![InputEvent::ControllerArrival {
                controller_number: 0,
                controller_type: 1,
                capabilities: 0x3,
                supported_buttons: 0xF7FF,
            }],
        ),
        (
            m(Message::ControllerState(BrowserPad {
                id: 0,
                active_mask: 1,
                buttons: 0x1000,
                left_trigger: 200,
                right_trigger: 10,
                left_stick_x: -32768,
                left_stick_y: 100,
                right_stick_x: 5,
                right_stick_y: -5,
            })),
            vec![InputEvent::MultiController(ControllerState {
                controller_number: 0,
                active_gamepad_mask: 1,
                buttons: 0x1000,
                left_trigger: 200,
                right_trigger: 10,
                left_stick_x: -32768,
                left_stick_y: 100,
                right_stick_x: 5,
                right_stick_y: -5,
            })],
        ),
        (
            m(Message::Controller(ControllerEvent::Removal { id: 0 })),
            vec![InputEvent::MultiController(ControllerState {
                controller_number: 0,
                active_gamepad_mask: 0,
                ..ControllerState::default()
            })],
        ),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_media_relays_input_and_stops_cleanly() {
    let mut rig = rig("browser-client-a").await;
    let (mut s, session_id, started) = streaming(&mut rig).await;
    assert_eq!(started.codec, wire::browser::VideoCodec::H264);
    assert_eq!(
        (started.width, started.height, started.fps),
        (1280, 720, 60)
    );
    assert_eq!((started.audio_channels, started.sample_rate), (2, 48_000));
    assert!(
        started.touch_supported,
        "the Wolf-like host advertises pen/touch"
    );

    // Input: every kind, as browser bytes through IPC.
    let inputs = browser_inputs();
    for (bytes, _) in &inputs {
        s.send(ToStreamer::Input(bytes.clone().into())).await;
    }
    s.send(ToStreamer::RequestKeyframe).await;

    // Media: ≥ 100 frames byte-exact and in order, audio intact, at least one Stats.
    let (mut frames, mut audio, mut stats, mut keyframes) = (1u32, 0u32, 0u32, 1u32);
    let mut last_pts = 0u64;
    let mut last_counter = 0u32;
    while frames < 150 || audio < 50 || stats == 0 {
        match s.next().await {
            FromStreamer::Video(v) => {
                let (counter, idr) = synthetic::check_video_au(&v.data).unwrap();
                assert_eq!(idr, v.keyframe);
                assert!(counter > last_counter, "frames in order");
                assert!(v.pts_us >= last_pts, "pts monotonic");
                last_counter = counter;
                last_pts = v.pts_us;
                frames += 1;
                keyframes += u32::from(v.keyframe);
            }
            FromStreamer::Audio(a) => {
                synthetic::check_opus(&a.data).unwrap();
                audio += 1;
            }
            FromStreamer::Stats(st) => {
                stats += 1;
                assert!(st.video_frames > 0 && st.uptime_ms > 0);
            }
            FromStreamer::Ended(e) => panic!("ended early: {e:?}"),
            _ => {}
        }
    }
    assert!(keyframes >= 2, "RequestKeyframe produced another keyframe");

    let expected: Vec<InputEvent> = inputs.into_iter().flat_map(|(_, e)| e).collect();
    timeout(WAIT, async {
        loop {
            let got = rig.inputs.lock().unwrap().clone();
            let mut rest = got.iter();
            // In order, each one as expected (the host may have seen EnableHaptics first).
            if expected.iter().all(|e| rest.any(|g| g == e)) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .unwrap_or_else(|_| {
        panic!(
            "inputs on the host: expected {expected:?}, got {:?}",
            rig.inputs.lock().unwrap()
        )
    });

    // Stop: ENet disconnect and then /cancel are awaited before Ended, so the host holds nothing when Ended arrives.
    assert_eq!(rig.host.sessions().len(), 1);
    let stop = Instant::now();
    s.send(ToStreamer::Stop).await;
    s.stopped_after_cancel(&rig, stop, "Stop").await;
    let ended = rig.session_ended(session_id).await;
    // The ENet disconnect goes first (the order real Wolf survives), so the
    // host ends the session on it; the /cancel that follows finds nothing.
    assert_eq!(ended, HostEndReason::ClientDisconnected);
    rig.host.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closing_stdin_is_stop() {
    let mut rig = rig("browser-client-b").await;
    let (mut s, _, _) = streaming(&mut rig).await;
    let stop = Instant::now();
    drop(s.tx.take()); // the web-server is gone
    s.stopped_after_cancel(&rig, stop, "stdin closed").await;
    rig.host.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn launches_only_on_its_turn_and_a_stop_while_waiting_launches_nothing() {
    let mut rig = rig("browser-client-turns").await;
    let mut init = rig.init(StreamMode::Websocket);
    init.launch_turns = true;

    // Asked, not granted: no launch reaches the host.
    let mut s = spawn_with(init.clone()).await;
    assert_eq!(s.next().await, FromStreamer::LaunchTurn(TurnRequest::Ask));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        rig.host_events.try_recv().is_err() && rig.host.sessions().is_empty(),
        "the streamer launched before its turn"
    );
    // Granted: the stream starts.
    s.send(ToStreamer::LaunchTurn).await;
    rig.await_stream(FRAME_EVERY).await;
    started_and_first_keyframe(&mut s).await;
    s.stop().await;
    assert!(rig.host.sessions().is_empty());

    // Stopped while waiting for its turn: it ends at once, and the host never hears of it.
    while rig.host_events.try_recv().is_ok() {} // the first stream's end
    let mut s = spawn_with(init).await;
    assert_eq!(s.next().await, FromStreamer::LaunchTurn(TurnRequest::Ask));
    let stop = Instant::now();
    s.send(ToStreamer::Stop).await;
    s.ended_stopped().await;
    s.exits_promptly(stop, "stop while waiting for the turn")
        .await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    if let Ok(event) = rig.host_events.try_recv() {
        panic!("a stopped wait reached the host: {event:?}");
    }
    assert!(rig.host.sessions().is_empty());
    rig.host.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_ending_the_stream_ends_the_streamer() {
    let mut rig = rig("browser-client-c").await;
    let (mut s, session_id, _) = streaming(&mut rig).await;
    let t = Instant::now();
    assert!(rig.host.stop_session(session_id, HostEndReason::Stopped));
    let (ended, error) = s.until_ended().await;
    assert_eq!(ended.reason, EndReason::HostEnded, "{ended:?} {error:?}");
    let (status, took) = s.exit(t).await;
    println!("host stop → exit: {} ms", took.as_millis());
    assert_eq!(status.code(), Some(3), "exit code says the host ended it");
    assert!(rig.host.sessions().is_empty());
    rig.host.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_init_and_unreachable_host_report_errors() {
    // A key that is not PEM: BadInit, and the key never shows in the message.
    let rig = rig("browser-client-d").await;
    let mut init = rig.init(StreamMode::Websocket);
    init.client_key_pem = Secret::new("not-a-key-SECRET-MATERIAL");
    let error = spawn_with(init).await.fails(ErrorCode::BadInit, 2).await;
    assert!(!error.message.contains("SECRET"));

    // WebRTC mode with settings that make no sense: refused before the host is contacted.
    let mut init = rig.init(StreamMode::Websocket);
    init.mode = StreamMode::Webrtc;
    init.webrtc = Some(wire::ipc::WebRtcSettings {
        udp_port_min: 40_010,
        udp_port_max: 40_000,
        ..wire::ipc::WebRtcSettings::default()
    });
    spawn_with(init).await.fails(ErrorCode::BadInit, 2).await;
    // …and a NAT 1:1 address that is not an IP.
    let mut init = rig.init(StreamMode::Websocket);
    init.mode = StreamMode::Webrtc;
    init.webrtc = Some(wire::ipc::WebRtcSettings {
        bind_address: "127.0.0.1".into(),
        nat_1to1_ips: vec!["gateway.example".into()],
        ..wire::ipc::WebRtcSettings::default()
    });
    spawn_with(init).await.fails(ErrorCode::BadInit, 2).await;

    // A host that is not there.
    let closed_port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let mut init = rig.init(StreamMode::Websocket);
    init.host.http_port = closed_port;
    init.host.https_port = closed_port;
    let mut s = spawn_with(init).await;
    s.fails(ErrorCode::HostUnreachable, 1).await;
    rig.host.close().await;
}

/// A fake Wolf API on a Unix socket: answers `/api/v1/sessions` with our session and records the
/// join request.
async fn fake_wolf(
    path: std::path::PathBuf,
    unique_id: String,
) -> tokio::task::JoinHandle<Vec<(String, String)>> {
    let listener = tokio::net::UnixListener::bind(&path).unwrap();
    tokio::spawn(async move {
        let mut seen = Vec::new();
        while seen.len() < 2 {
            let Ok(Ok((mut conn, _))) = timeout(WAIT, listener.accept()).await else {
                break;
            };
            let mut buf = Vec::new();
            let mut chunk = [0u8; 4096];
            // Read headers, then Content-Length bytes.
            let (head, body) = loop {
                let n = conn.read(&mut chunk).await.unwrap();
                buf.extend_from_slice(&chunk[..n]);
                if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                    let head = String::from_utf8(buf[..p].to_vec()).unwrap();
                    let len: usize = head
                        .lines()
                        .find_map(|l| l.strip_prefix("Content-Length: "))
                        .and_then(|v| v.trim().parse().ok())
                        .unwrap_or(0);
                    while buf.len() < p + 4 + len {
                        let n = conn.read(&mut chunk).await.unwrap();
                        buf.extend_from_slice(&chunk[..n]);
                    }
                    break (
                        head,
                        String::from_utf8(buf[p + 4..p + 4 + len].to_vec()).unwrap(),
                    );
                }
                assert!(n > 0, "request ended early");
            };
            let line = head.lines().next().unwrap().to_string();
            let answer = if line.starts_with("GET /api/v1/sessions ") {
                serde_json::json!({"success": true, "sessions": [
                    {"client_id": "111", "client_unique_id": "someone-else"},
                    {"client_id": "4242", "client_unique_id": unique_id, "app_id": "1"},
                ]})
            } else {
                serde_json::json!({"success": true})
            };
            let answer = answer.to_string();
            let reply = format!(
                "HTTP/1.0 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{answer}",
                answer.len()
            );
            conn.write_all(reply.as_bytes()).await.unwrap();
            conn.shutdown().await.unwrap();
            seen.push((line, body));
        }
        seen
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn joins_the_lobby_through_a_fake_wolf_api() {
    let mut rig = rig("browser-client-e").await;
    let dir = std::env::temp_dir().join(format!("streamer-wolf-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let socket = dir.join("wolf.sock");
    let _ = std::fs::remove_file(&socket);
    let wolf = fake_wolf(socket.clone(), rig.unique_id.clone()).await;
    let mut init = rig.init(StreamMode::Websocket);
    init.lobby_id = Some("lobby-7".into());
    init.wolf_api = Some(socket.to_string_lossy().into_owned());
    let mut s = spawn_with(init).await;
    rig.await_stream(FRAME_EVERY).await;
    started_and_first_keyframe(&mut s).await;
    let seen = timeout(WAIT, wolf).await.unwrap().unwrap();
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert!(seen[0].0.starts_with("GET /api/v1/sessions HTTP/1.0"));
    assert!(seen[1].0.starts_with("POST /api/v1/lobbies/join HTTP/1.0"));
    let join: serde_json::Value = serde_json::from_str(&seen[1].1).unwrap();
    assert_eq!(
        join,
        serde_json::json!({"lobby_id": "lobby-7", "moonlight_session_id": "4242"})
    );
    s.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
    rig.host.close().await;
}

/// The web-server stops reading for a while (its WebSocket is congested): the pipe fills, the
/// streamer refuses media at the source and drops frames whole, up to a keyframe, and asks the
/// host for one; no delta frame whose reference was dropped is ever written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_reader_gets_whole_frames_up_to_a_keyframe() {
    let mut rig = rig("browser-client-f").await;
    let (mut s, _, _) = streaming(&mut rig).await;
    let mut last = 0u32;
    let mut gaps = 0;
    let mut frames = 0;
    let mut dropped_reported = 0;
    // Bounded: the last round waits for a Stats frame that reports the drops.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    for round in 0..3 {
        // Deliberate stall: the pipe fills and the streamer drops video until a keyframe. The
        // streamer grows its pipe to 1 MiB, about 1.1 s of this rig's video (125 fps, 7.5 kB
        // per delta frame on average): the stall outlasts that.
        tokio::time::sleep(Duration::from_millis(1800)).await;
        let until = frames + 60;
        while frames < until || (round == 2 && dropped_reported == 0) {
            assert!(
                std::time::Instant::now() < deadline,
                "no drops reported after three stalls ({frames} frames, {gaps} gaps)"
            );
            match s.next().await {
                FromStreamer::Video(v) => {
                    let (counter, idr) = synthetic::check_video_au(&v.data).unwrap();
                    assert_eq!(idr, v.keyframe);
                    if last != 0 && counter != last + 1 {
                        gaps += 1;
                        assert!(
                            v.keyframe,
                            "frame {counter} follows {last}: its reference was dropped"
                        );
                    }
                    last = counter;
                    frames += 1;
                }
                FromStreamer::Stats(st) => dropped_reported = st.video_frames_dropped,
                _ => {}
            }
        }
    }
    println!(
        "stalled reader: {gaps} gaps, each closed by a keyframe; {dropped_reported} frames dropped"
    );
    assert!(gaps > 0, "the stalls must have caused drops");
    assert!(dropped_reported > 0);
    s.stop().await;
    rig.host.close().await;
}
