//! What the streamer's suites share: our host half on 127.0.0.1 with a client identity paired by
//! PIN under its own `uniqueid`, the `StreamerInit` that streams from it, and the synthetic
//! producer (every frame and packet verifiable) handed each stream the host starts.

#![allow(dead_code)] // each suite uses its own part

#[path = "../../../gamestream/examples/common/synthetic.rs"]
pub mod synthetic;

use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use gamestream::host::{AppCatalog, EndReason, Host, HostConfig, HostEvent, StaticApps};
use gamestream::identity::Identity;
use gamestream::input::InputEvent;
use gamestream::nvhttp::{HostAddress, NvHttpClient};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};
use tokio::sync::mpsc;
use tokio::time::timeout;
use wire::browser::formats;
use wire::ipc::{HostAddress as IpcHost, StreamMode, StreamerInit};
use wire::Secret;

/// How long any one step may take before the test fails.
pub const WAIT: Duration = Duration::from_secs(20);
const PIN: &str = "7315";

/// A host and a client identity paired with it.
pub struct Rig {
    pub host: Host,
    pub host_events: mpsc::UnboundedReceiver<HostEvent>,
    pub identity: Identity,
    pub host_cert_der: Vec<u8>,
    pub unique_id: String,
    /// What the host's input sink received, in order.
    pub inputs: Arc<Mutex<Vec<InputEvent>>>,
}

/// The real `streamer` binary as a child with piped stdin/stdout (killed on drop), logging at
/// `rust_log` to the test's stderr; the child and its two pipes.
pub fn spawn_streamer(rust_log: &str) -> (Child, ChildStdin, ChildStdout) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_streamer"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .env("RUST_LOG", rust_log)
        .kill_on_drop(true)
        .spawn()
        .expect("spawn streamer");
    let stdin = child.stdin.take().unwrap();
    let stdout = child.stdout.take().unwrap();
    (child, stdin, stdout)
}

/// A host on loopback (one app, id 1) and a client identity paired with it by PIN under
/// `unique_id`, which the host must see as the pairing's `uniqueid`.
pub async fn rig(unique_id: &str) -> Rig {
    let config = HostConfig::loopback(Identity::new_host("streamer-test-host").unwrap());
    let catalog = Arc::new(StaticApps::single("Test Pattern", 1, None));
    let (host, host_events) = Host::start(config, catalog as Arc<dyn AppCatalog>)
        .await
        .unwrap();
    let ports = host.ports();
    let identity = Identity::new_client().unwrap();
    let http = Arc::new(
        NvHttpClient::new(
            HostAddress::with_ports("127.0.0.1", ports.http, Some(ports.https)),
            identity.clone(),
            None,
        )
        .with_unique_id(unique_id),
    );
    let pairing = {
        let http = Arc::clone(&http);
        tokio::spawn(async move { http.pair(PIN, "streamer-test").await })
    };
    let pending = timeout(WAIT, async {
        loop {
            if let Some(p) = host.nvhttp().pending_pairings().first() {
                break p.clone();
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("pairing request reaches the host");
    assert_eq!(
        pending.unique_id, unique_id,
        "the host sees our own uniqueid"
    );
    assert!(host.nvhttp().submit_pin(&pending.pair_secret, PIN));
    pairing.await.unwrap().expect("pairing by PIN");
    let host_cert_der = http.pinned_host_cert().expect("pinned after pairing");
    Rig {
        host,
        host_events,
        identity,
        host_cert_der,
        unique_id: unique_id.to_string(),
        inputs: Arc::new(Mutex::new(Vec::new())),
    }
}

/// A 1280×720@60 stream of app 1 in `mode` (WebSocket: H.264 or HEVC; WebRTC: H.264, with the
/// default peer settings), launched at once (no launch turns).
pub fn init_for(
    unique_id: &str,
    host: IpcHost,
    host_cert_der: Vec<u8>,
    cert_pem: String,
    key_pem: String,
    mode: StreamMode,
) -> StreamerInit {
    StreamerInit {
        session_key: format!("s1-lobby-{unique_id}"),
        mode,
        host,
        host_cert_der,
        client_unique_id: unique_id.to_string(),
        client_cert_pem: cert_pem,
        client_key_pem: Secret::new(key_pem),
        app_id: 1,
        width: 1280,
        height: 720,
        fps: 60,
        bitrate_kbps: 10_000,
        packet_size: 1024,
        video_formats: match mode {
            StreamMode::Websocket => formats::H264 | formats::H265,
            StreamMode::Webrtc => formats::H264,
        },
        audio_channels: 2,
        play_audio_local: false,
        lobby_id: None,
        wolf_api: None,
        webrtc: None,
        launch_turns: false,
    }
}

impl Rig {
    /// The `Init` of a stream from this rig's host with its paired identity.
    pub fn init(&self, mode: StreamMode) -> StreamerInit {
        let ports = self.host.ports();
        init_for(
            &self.unique_id,
            IpcHost {
                address: "127.0.0.1".into(),
                http_port: ports.http,
                https_port: ports.https,
            },
            self.host_cert_der.clone(),
            self.identity.cert_pem.clone(),
            self.identity.key_pem().unwrap(),
            mode,
        )
    }

    /// Hands the stream to the synthetic producer (a frame every `frame_every`) at RTSP PLAY;
    /// returns the session id.
    pub async fn await_stream(&mut self, frame_every: Duration) -> u64 {
        loop {
            match timeout(WAIT, self.host_events.recv())
                .await
                .unwrap()
                .unwrap()
            {
                HostEvent::StreamStarted(stream) => {
                    let id = stream.session_id;
                    tokio::spawn(synthetic::produce(
                        *stream,
                        frame_every,
                        Arc::clone(&self.inputs),
                    ));
                    return id;
                }
                HostEvent::Launched { app_id, .. } => assert_eq!(app_id, 1),
                other => panic!("unexpected host event {other:?}"),
            }
        }
    }
    /// Waits for the host to end session `session_id` (skipping other events); why it did.
    pub async fn session_ended(&mut self, session_id: u64) -> EndReason {
        loop {
            let event = timeout(WAIT, self.host_events.recv())
                .await
                .unwrap()
                .unwrap();
            if let HostEvent::SessionEnded {
                session_id: id,
                reason,
            } = event
            {
                if id == session_id {
                    return reason;
                }
            }
        }
    }
}
