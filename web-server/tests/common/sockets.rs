//! Socket-level helpers the WebSocket and signaling suites share: opening a socket (with or
//! without the bearer credential), the Helix viewer's `AuthenticateAndInit`, reading one message
//! before a deadline, and the checks that a closed stream left nothing behind. They live here so
//! each suite states only what it tests, and a change of the contract's framing is made once.

use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use tokio::time::timeout;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use wire::browser::Message;

use super::{eventually, streamer_children, Gateway, Ws};

/// Upgrades `url` to a WebSocket within `within`, with `Authorization: Bearer {bearer}` when a
/// credential is given (the signaling socket sends none: its credential travels in the init).
pub async fn upgrade(url: &str, bearer: Option<&str>, within: Duration) -> Ws {
    let mut req = url.into_client_request().unwrap();
    if let Some(secret) = bearer {
        req.headers_mut()
            .insert("authorization", format!("Bearer {secret}").parse().unwrap());
    }
    timeout(within, tokio_tungstenite::connect_async(req))
        .await
        .expect("upgrade timed out")
        .expect("upgrade")
        .0
}

/// The Helix viewer's `AuthenticateAndInit` text for the signaling socket (host 0 unless given).
pub struct AuthInit<'a> {
    pub session: &'a str,
    pub client: &'a str,
    pub host_id: u32,
    pub bitrate: u32,
    pub size: (u32, u32),
    pub fps: u32,
}

impl AuthInit<'_> {
    pub fn json(&self) -> String {
        let (width, height) = self.size;
        serde_json::json!({"AuthenticateAndInit": {
            "credentials": super::SECRET,
            "session_id": self.session,
            "mode": "create",
            "client_unique_id": self.client,
            "host_id": self.host_id, "app_id": 1, "bitrate": self.bitrate, "packet_size": 1024,
            "fps": self.fps, "width": width, "height": height,
            "video_sample_queue_size": 50, "play_audio_local": false, "audio_sample_queue_size": 20,
            "video_supported_formats": 1, "video_colorspace": "Rec709", "video_color_range_full": true
        }})
        .to_string()
    }
}

/// Opens the signaling socket `/api/host/stream?session_id={session}` on `addr` as the Helix
/// viewer does (no Authorization header) within `within`, and sends `first`.
pub async fn open_signaling_socket(
    addr: &str,
    session: &str,
    first: String,
    within: Duration,
) -> Ws {
    let url = format!("ws://{addr}/api/host/stream?session_id={session}");
    let mut ws = upgrade(&url, None, within).await;
    ws.send(WsMessage::Text(first.into())).await.unwrap();
    ws
}

/// The next message on `ws` before `deadline`; panics with `what` when none comes in time, and
/// when the socket ends or fails.
pub async fn next_before(ws: &mut Ws, deadline: Instant, what: &str) -> WsMessage {
    let left = deadline.saturating_duration_since(Instant::now());
    timeout(left, ws.next())
        .await
        .unwrap_or_else(|_| panic!("{what}"))
        .expect("socket ended")
        .expect("socket error")
}

/// Reads `ws` for `d`; the video frames that came (panics on a close: the stream must go on).
pub async fn frames_for(ws: &mut Ws, d: Duration) -> usize {
    let deadline = Instant::now() + d;
    let mut n = 0;
    while let Ok(Some(msg)) = timeout(
        deadline.saturating_duration_since(Instant::now()),
        ws.next(),
    )
    .await
    {
        match msg.expect("socket error") {
            WsMessage::Binary(b) => {
                if let Ok(Message::VideoFrame(_)) = Message::decode(&b) {
                    n += 1;
                }
            }
            WsMessage::Close(c) => panic!("the stream was closed: {c:?}"),
            _ => {}
        }
    }
    n
}

/// Asserts a closed stream left nothing: the registry empties within `registry_within`, and the
/// streamer and the host session are gone within `within`.
pub async fn assert_stream_gone(gw: &Gateway, registry_within: Duration, within: Duration) {
    assert!(
        gw.registry_empty(registry_within).await,
        "registry entry left"
    );
    assert!(
        eventually(within, || streamer_children().is_empty()).await,
        "streamer left running"
    );
    assert!(
        eventually(within, || gw.host.sessions().is_empty()).await,
        "host session left: {:?}",
        gw.host.sessions()
    );
}

/// SIGKILLs the one streamer this process runs (asserts there is exactly one).
pub fn kill_the_streamer() {
    let pids = streamer_children();
    assert_eq!(pids.len(), 1);
    let status = std::process::Command::new("kill")
        .args(["-KILL", &pids[0].to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}
