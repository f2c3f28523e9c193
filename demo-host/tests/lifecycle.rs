//! Wolf's session lifecycle over real sockets (gamestream-protocol-2-media.md §7.2): a stream
//! produces frames (decodable H.264 once the media layer is merged), input reaches the sink, ENet
//! disconnect stops the session, the 60 s idle monitor stops silent sessions (tokio's clock, moved
//! by the test), a launch while the client's previous session is still tearing down gets 503 and
//! then succeeds, the refuse-launch fault, and a second launch superseding the first.

mod common;

use std::sync::Arc;
use std::time::Duration;

use demo_host::{DemoEvent, DemoHost, DemoHostConfig, EndReason};
use gamestream::client::{ClientSession, EndCause, SessionConfig, SessionEvent};
use tokio::time::timeout;

const WAIT: Duration = Duration::from_secs(15);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_input_and_disconnect_stops() {
    timeout(Duration::from_secs(90), async {
        let real = common::real_media_present();
        let config = if real {
            DemoHostConfig {
                fixed_pin: Some(common::PIN.into()),
                ..DemoHostConfig::default()
            }
        } else {
            eprintln!("media layer not present: synthetic frames, decoding not checked");
            common::test_config()
        };
        let host = DemoHost::start(config).await.unwrap();
        let mut events = host.subscribe();
        let http = common::paired_client(&host).await;
        let (session, mut media) = common::stream(&http, 1).await;
        let session_id = common::wait_stream_started(&mut events, WAIT).await;
        let info = host.sessions();
        assert_eq!(info.len(), 1);
        assert_eq!(
            (
                info[0].session_id,
                info[0].app_id,
                info[0].width,
                info[0].height,
                info[0].fps
            ),
            (session_id, 1, 640, 360, 30)
        );
        assert!(info[0].streaming && info[0].lobby.is_none());

        // Frames: a keyframe first; with the real encoder they decode at the announced size.
        let first = common::wait_frame(&mut media, WAIT, |_| true).await;
        assert!(first.is_idr, "the stream starts with a keyframe");
        if real {
            use openh264::formats::YUVSource;
            let mut decoder = openh264::decoder::Decoder::new().unwrap();
            let mut decoded = 0;
            let mut frame = first;
            for _ in 0..10 {
                if let Some(yuv) = decoder.decode(&frame.data).unwrap() {
                    assert_eq!(yuv.dimensions(), (640, 360));
                    decoded += 1;
                }
                frame = common::wait_frame(&mut media, WAIT, |_| true).await;
            }
            assert!(
                decoded >= 5,
                "H.264 from the demo host decodes ({decoded} of 10)"
            );
        } else {
            assert_eq!(
                common::label_of(&first.data).as_deref(),
                Some(format!("Session {session_id}").as_str()),
                "the session's own producer, labelled with its id"
            );
        }
        // Audio flows too.
        timeout(WAIT, async {
            loop {
                if let Some(SessionEvent::Audio { .. }) = media.recv().await {
                    break;
                }
            }
        })
        .await
        .expect("audio arrives");

        // Input reaches the sink.
        let key = common::key_press_reaches_host(&host, &session, session_id, WAIT).await;

        // ENet disconnect (the client goes away without /cancel) = stop, no pause.
        drop(session);
        let stopped = common::wait_event(&mut events, WAIT, |e| {
            matches!(e, DemoEvent::SessionStopped { .. })
        })
        .await;
        assert_eq!(
            stopped,
            DemoEvent::SessionStopped {
                session_id,
                client_id: info[0].client_id,
                reason: EndReason::ClientDisconnected
            }
        );
        assert!(host.sessions().is_empty());
        assert!(host.gamestream().sessions().is_empty());
        assert_eq!(host.tearing_down(), 0);
        // The log outlives the session.
        assert!(host.inputs(session_id).iter().any(|r| r.event == key));
        host.close().await;
    })
    .await
    .expect("test timed out");
}

/// Moves tokio's clock forward by `by` at once, then lets it run on: the idle monitor sees `by`
/// more silence without the test waiting for it.
async fn jump_clock(by: Duration) {
    tokio::time::pause();
    tokio::time::advance(by).await;
    tokio::time::resume();
}

/// The host runs on this test's runtime (a current-thread one, whose clock can be paused); the
/// client on its own, frozen while the clock jumps, so that it is really silent.
#[tokio::test(flavor = "current_thread")]
async fn idle_timeout_on_tokio_clock() {
    // The outer limit is on the same clock, so it includes the 61 s the test jumps.
    timeout(Duration::from_secs(60 + 61), async {
        let host = DemoHost::start(DemoHostConfig {
            idle_check_interval: Duration::from_millis(50),
            ..common::test_config()
        })
        .await
        .unwrap();
        let mut events = host.subscribe();
        let mut client = common::ClientThread::start();
        let http = common::client(&host);
        let (_session, mut media) = client
            .run(async move { common::stream(&common::pair(http).await, 1).await })
            .await;
        common::wait_frame(&mut media, WAIT, |_| true).await;
        client.freeze().await;
        // 30 s of silence is not enough ...
        jump_clock(Duration::from_secs(30)).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(host.sessions().len(), 1, "30 s idle keeps the session");
        while let Ok(e) = events.try_recv() {
            assert!(!matches!(e, DemoEvent::SessionStopped { .. }), "{e:?}");
        }
        // ... more than 60 s is.
        jump_clock(Duration::from_secs(31)).await;
        let stopped = common::wait_event(&mut events, WAIT, |e| {
            matches!(e, DemoEvent::SessionStopped { .. })
        })
        .await;
        assert!(matches!(
            stopped,
            DemoEvent::SessionStopped {
                reason: EndReason::Stopped,
                ..
            }
        ));
        assert!(host.sessions().is_empty());
        // The client is told (termination), not left hanging.
        client.thaw();
        let ended = timeout(WAIT, async {
            loop {
                match media.recv().await {
                    Some(SessionEvent::Ended(cause)) => return Some(cause),
                    None => return None,
                    _ => {}
                }
            }
        })
        .await
        .expect("client notices the stop");
        assert!(
            matches!(ended, Some(EndCause::HostTerminated { .. }) | None),
            "{ended:?}"
        );
        host.close().await;
    })
    .await
    .expect("test timed out");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relaunch_during_slow_teardown_gets_503_then_works() {
    timeout(Duration::from_secs(90), async {
        let host = DemoHost::start(common::test_config()).await.unwrap();
        host.faults()
            .set_teardown_delay(Duration::from_millis(1500));
        let mut events = host.subscribe();
        let http = common::paired_client(&host).await;
        let (session, mut media) = common::stream(&http, 1).await;
        common::wait_frame(&mut media, WAIT, |_| true).await;
        session.stop().await.unwrap(); // ENet disconnect, then /cancel

        // The previous session is still tearing down: refused with 503, state untouched.
        let refused =
            ClientSession::start(Arc::clone(&http), SessionConfig::new(1, common::settings()))
                .await
                .expect_err("launch while tearing down");
        assert!(refused.to_string().contains("503"), "{refused}");
        assert!(host.sessions().is_empty());

        let stopped = common::wait_event(&mut events, WAIT, |e| {
            matches!(e, DemoEvent::SessionStopped { .. })
        })
        .await;
        // The client's stop disconnects ENet before it cancels (the order Wolf survives), so the
        // disconnect ends the session; a client that cancels first ends it by the cancel.
        assert!(
            matches!(
                stopped,
                DemoEvent::SessionStopped {
                    reason: EndReason::ClientDisconnected | EndReason::Cancelled,
                    ..
                }
            ),
            "{stopped:?}"
        );
        assert_eq!(host.tearing_down(), 0);

        // Right after the teardown the same client streams again.
        let (_session, mut media) = common::stream(&http, 1).await;
        common::wait_frame(&mut media, WAIT, |_| true).await;
        assert_eq!(host.sessions().len(), 1);
        host.close().await;
    })
    .await
    .expect("test timed out");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refuse_launch_fault_and_supersede() {
    timeout(Duration::from_secs(90), async {
        let host = DemoHost::start(common::test_config()).await.unwrap();
        let mut events = host.subscribe();
        let http = common::paired_client(&host).await;

        host.faults().set_refuse_launches(true);
        let refused =
            ClientSession::start(Arc::clone(&http), SessionConfig::new(1, common::settings()))
                .await
                .expect_err("launch refused");
        assert!(refused.to_string().contains("503"), "{refused}");
        assert!(host.sessions().is_empty());
        host.faults().set_refuse_launches(false);

        // One stream per client: a second launch supersedes the first.
        let (first, mut media) = common::stream(&http, 1).await;
        common::wait_frame(&mut media, WAIT, |_| true).await;
        let first_id = host.sessions()[0].session_id;
        let (_second, mut media2) = common::stream(&http, 1).await;
        let stopped = common::wait_event(&mut events, WAIT, |e| {
            matches!(e, DemoEvent::SessionStopped { session_id, .. } if *session_id == first_id)
        })
        .await;
        assert!(matches!(
            stopped,
            DemoEvent::SessionStopped {
                reason: EndReason::Superseded,
                ..
            }
        ));
        common::wait_frame(&mut media2, WAIT, |_| true).await;
        let sessions = host.sessions();
        assert_eq!(sessions.len(), 1);
        assert_ne!(sessions[0].session_id, first_id);
        drop(first);
        host.close().await;
    })
    .await
    .expect("test timed out");
}

/// A consumer that stops reading events (its 512-event queue full after about 2 s of video and
/// audio) can still stop the stream: `Stop` is no longer stuck behind an event waiting for room
/// (the microphone test hung this way on a loaded machine).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_whose_events_are_not_read_still_stops() {
    let host = DemoHost::start(common::test_config()).await.unwrap();
    let mut events = host.subscribe();
    let http = common::paired_client(&host).await;
    let (session, _unread) = common::stream(&http, 1).await;
    common::wait_stream_started(&mut events, WAIT).await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    timeout(Duration::from_secs(10), session.stop())
        .await
        .expect("stop waited behind a full event queue")
        .expect("the host answered the stop");
    host.close().await;
}
