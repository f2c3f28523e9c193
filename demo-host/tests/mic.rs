//! The forks' microphone stream end to end: a real `ClientSession` sends 2 s of a tone, encoded
//! with opus-rs (mono, 48 kHz, 20 ms frames), to a real `DemoHost` in fork mode, whose sink
//! decodes it and finds the pitch ("pitch in, pitch out"), also through the Wolf API. With the
//! host's microphone off (or the client's), nothing is set up and the stream runs as before.

mod common;
#[path = "common/wolf_http.rs"]
mod wolf_http;

use std::time::Duration;

use demo_host::{DemoHost, DemoHostConfig, MicReport, WolfApiConfig, WolfApiSocket};
use gamestream::client::{ClientSession, SessionConfig, SessionEvent};
use serde_json::Value;
use tokio::sync::mpsc;
use tokio::time::timeout;

const WAIT: Duration = Duration::from_secs(20);
/// 20 ms at 48 kHz.
const FRAME: usize = 960;
/// 2 s of 20 ms packets.
const PACKETS: u64 = 100;

fn config(microphone: bool) -> DemoHostConfig {
    DemoHostConfig {
        microphone,
        wolf_api: WolfApiConfig {
            socket: WolfApiSocket::Off,
            tcp: Some("127.0.0.1:0".parse().unwrap()),
            ..WolfApiConfig::default()
        },
        ..common::test_config()
    }
}

async fn start(
    host: &DemoHost,
    http: &std::sync::Arc<gamestream::nvhttp::NvHttpClient>,
    microphone: bool,
) -> (ClientSession, mpsc::Receiver<SessionEvent>, u64) {
    let mut events = host.subscribe();
    let settings = gamestream::rtsp::StreamSettings {
        microphone,
        ..common::settings()
    };
    let (session, media) = timeout(
        WAIT,
        ClientSession::start(std::sync::Arc::clone(http), SessionConfig::new(1, settings)),
    )
    .await
    .expect("stream start timed out")
    .expect("stream start");
    let id = common::wait_stream_started(&mut events, WAIT).await;
    (session, media, id)
}

/// Sends 2 s of `hz`, paced like a microphone.
async fn send_tone(session: &ClientSession, hz: f64) {
    let packets = demo_host::mic::opus_tone(hz, PACKETS as usize).expect("tone");
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    for packet in packets {
        tick.tick().await;
        session.send_mic(&packet, FRAME as u32).expect("send_mic");
    }
}

/// Waits until the sink of `id` has every packet; its report.
async fn wait_report(host: &DemoHost, id: u64) -> MicReport {
    timeout(WAIT, async {
        loop {
            if let Some(r) = host.mic(id).filter(|r| r.packets >= PACKETS) {
                return r;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("mic sink of {id}: {:?}", host.mic(id)))
}

async fn api_mic(host: &DemoHost, id: u64) -> (u16, Value) {
    let target = wolf_http::Target::Tcp(host.wolf_api_tcp().expect("tcp api"));
    let path = format!("/api/v1/moongate/mic?session_id={id}");
    let reply = wolf_http::http10(&target, "GET", &path, None, WAIT).await;
    (
        reply.status,
        serde_json::from_slice(&reply.body).expect("json"),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tones_reach_the_host_sink_with_their_pitch() {
    timeout(Duration::from_secs(120), async {
        let host = DemoHost::start(config(true)).await.unwrap();
        let http = common::paired_client(&host).await;
        for hz in [440.0, 880.0] {
            let (session, _media, id) = start(&host, &http, true).await;
            assert!(session.has_mic(), "the host offered the mic");
            let outcome = session.outcome();
            assert!(outcome.mic_port.is_some());
            assert!(outcome.mic_encryption, "fork mode encrypts the mic");
            send_tone(&session, hz).await;
            let report = wait_report(&host, id).await;
            eprintln!("{hz} Hz sent: {report:?}");
            assert_eq!(report.packets, PACKETS, "{report:?}");
            assert_eq!((report.undecodable, report.lost), (0, 0), "{report:?}");
            assert!(
                (report.pitch_hz - hz).abs() <= 10.0,
                "{hz} Hz sent, {report:?}"
            );
            // The API names the session as Wolf does, by its client's id: the same for both
            // tones, and it reaches the newest session's sink.
            let wolf_id = host.wolf_session_id(id);
            assert_ne!(wolf_id, id);
            let (status, v) = api_mic(&host, wolf_id).await;
            assert_eq!(status, 200, "{v}");
            assert_eq!(v["packets"], PACKETS, "{v}");
            assert!((v["pitch_hz"].as_f64().unwrap() - hz).abs() <= 10.0, "{v}");
            assert_eq!(v["session_id"], wolf_id.to_string());
            session.stop().await.unwrap();
        }
        host.close().await;
    })
    .await
    .expect("test timed out");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_offer_nothing_is_set_up_and_the_stream_runs() {
    timeout(Duration::from_secs(120), async {
        // The host offers no mic (Wolf, Sunshine); the client asks for one.
        let host = DemoHost::start(config(false)).await.unwrap();
        let http = common::paired_client(&host).await;
        let (session, mut media, id) = start(&host, &http, true).await;
        assert!(!session.has_mic());
        assert_eq!(session.outcome().mic_port, None);
        assert!(!session.outcome().mic_encryption);
        // Sending is a no-op, and the stream goes on.
        session.send_mic(&[0xf8, 0xff, 0xfe], 960).unwrap();
        common::wait_frame(&mut media, WAIT, |_| true).await;
        assert_eq!(host.mic(id), None);
        let (status, v) = api_mic(&host, host.wolf_session_id(id)).await;
        assert_eq!(status, 404, "{v}");
        session.stop().await.unwrap();
        host.close().await;

        // The host offers it; a client that does not ask sets nothing up.
        let host = DemoHost::start(config(true)).await.unwrap();
        let http = common::paired_client(&host).await;
        let (session, mut media, id) = start(&host, &http, false).await;
        assert!(!session.has_mic());
        assert_eq!(session.outcome().mic_port, None);
        common::wait_frame(&mut media, WAIT, |_| true).await;
        assert_eq!(host.mic(id), None);
        session.stop().await.unwrap();
        host.close().await;
    })
    .await
    .expect("test timed out");
}
