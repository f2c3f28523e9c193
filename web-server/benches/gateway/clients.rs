//! The bench's browser clients: WebSocket (Helix contract) and WebRTC (signaling socket + str0m
//! peer). Both record what they see in a [`Seen`], and share opening and frame accounting.

use super::*;
use tokio_tungstenite::tungstenite::handshake::client::Request;

/// What one client saw.
#[derive(Default)]
pub(crate) struct Seen {
    /// (source id, sequence) of each video frame, with its send→receive latency in µs.
    pub(crate) frames: Vec<(u32, u32, u64)>,
    pub(crate) first_keyframe: Option<Instant>,
    /// An `{"error"}` text or a socket error.
    pub(crate) error: Option<String>,
    pub(crate) ended: bool,
    /// The owner's `share` (stream id, join token) from its `Viewers` message.
    pub(crate) share: Option<(String, String)>,
}

impl Seen {
    /// Notes a received access unit: its source and send→receive latency (from the bench tag and
    /// the host's send-time SEI), once the first keyframe has arrived (earlier frames are skipped).
    fn record(&mut self, data: &[u8], keyframe: bool, recv_us: u64) {
        let tag = read_tag(data);
        let sent = media::read_send_time(VideoCodec::H264, data);
        if self.first_keyframe.is_none() {
            if !keyframe {
                return;
            }
            self.first_keyframe = Some(Instant::now());
        }
        if let (Some(tag), Some(sent)) = (tag, sent) {
            self.frames
                .push(((tag >> 32) as u32, tag as u32, recv_us.saturating_sub(sent)));
        }
    }
}

pub(crate) struct Client {
    pub(crate) seen: Arc<Mutex<Seen>>,
    pub(crate) opened: Instant,
    pub(crate) close: watch::Sender<bool>,
    pub(crate) task: tokio::task::JoinHandle<()>,
    pub(crate) streamer: Option<u32>,
}

pub(crate) fn init_json(session: &str, client: &str) -> String {
    serde_json::json!({
        "type": "init",
        "host_id": 0,
        "app_id": 1,
        "session_id": session,
        "width": WIDTH,
        "height": HEIGHT,
        "fps": FPS,
        "bitrate": BITRATE_KBPS,
        "packet_size": 1024,
        "play_audio_local": false,
        "video_supported_formats": formats::H264,
        "client_unique_id": client,
    })
    .to_string()
}

pub(crate) fn helix_ping(seq: u32) -> Vec<u8> {
    let mut v = vec![0x40];
    v.extend_from_slice(&seq.to_be_bytes());
    v.extend_from_slice(&now_unix_us().to_be_bytes());
    v
}

/// Opens a stream: upgrade ("WS open"), then init; a task reads everything until told to close.
pub(crate) async fn open_client(
    gw: &Gateway,
    session: &str,
    client: &str,
) -> Result<Client, String> {
    let mut req = format!("ws://{}/api/ws/stream?session_id={session}", gw.addr)
        .into_client_request()
        .map_err(|e| e.to_string())?;
    req.headers_mut().insert(
        "authorization",
        format!("Bearer {SECRET}").parse().map_err(|_| "header")?,
    );
    open_with(gw, req, init_json(session, client), read_loop).await
}

/// Joins the stream `stream` as a viewer (`/api/ws/watch`) with its join token.
pub(crate) async fn open_viewer(gw: &Gateway, stream: &str, token: &str) -> Result<Client, String> {
    let mut req = format!("ws://{}/api/ws/watch", gw.addr)
        .into_client_request()
        .map_err(|e| e.to_string())?;
    req.headers_mut().insert(
        "authorization",
        format!("Bearer {SECRET}").parse().map_err(|_| "header")?,
    );
    let watch = serde_json::json!({"watch": {"stream": stream, "token": token}}).to_string();
    open_with(gw, req, watch, read_loop).await
}

/// What both kinds of client do to open: upgrade, send `init`, hand the socket to `run` on its
/// own task, wait (bounded) for the first keyframe, and note the streamer that appeared.
async fn open_with<F, Fut>(
    gw: &Gateway,
    req: Request,
    init: String,
    run: F,
) -> Result<Client, String>
where
    F: FnOnce(Ws, Arc<Mutex<Seen>>, watch::Receiver<bool>) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let before = streamer_children(gw.pid);
    let (mut ws, _) = timeout(
        Duration::from_secs(10),
        tokio_tungstenite::connect_async(req),
    )
    .await
    .map_err(|_| "upgrade timed out")?
    .map_err(|e| e.to_string())?;
    let opened = Instant::now();
    ws.send(WsMessage::Text(init.into()))
        .await
        .map_err(|e| e.to_string())?;
    let seen = Arc::new(Mutex::new(Seen::default()));
    let (close, close_rx) = watch::channel(false);
    let task = tokio::spawn(run(ws, Arc::clone(&seen), close_rx));
    let mut c = Client {
        seen,
        opened,
        close,
        task,
        streamer: None,
    };
    // Wait (bounded) for the first keyframe.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        {
            let s = c.seen.lock().unwrap();
            if s.first_keyframe.is_some() {
                break;
            }
            if let Some(e) = &s.error {
                return Err(e.clone());
            }
            if s.ended {
                return Err("closed before the first keyframe".into());
            }
        }
        if Instant::now() > deadline {
            return Err("no keyframe within 20 s".into());
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    c.streamer = streamer_children(gw.pid)
        .difference(&before)
        .next()
        .copied();
    Ok(c)
}

/// The Close frame a client sends when told to close.
fn bench_close() -> WsMessage {
    WsMessage::Close(Some(CloseFrame {
        code: CloseCode::Normal,
        reason: "bench".into(),
    }))
}

pub(crate) async fn read_loop(
    mut ws: Ws,
    seen: Arc<Mutex<Seen>>,
    mut close: watch::Receiver<bool>,
) {
    let mut ping = tokio::time::interval(Duration::from_secs(1));
    let mut seq = 0u32;
    let mut closing = false;
    loop {
        tokio::select! {
            msg = ws.next() => {
                let msg = match msg {
                    Some(Ok(m)) => m,
                    Some(Err(e)) => {
                        if !closing {
                            seen.lock().unwrap().error = Some(e.to_string());
                        }
                        break;
                    }
                    None => break,
                };
                match msg {
                    WsMessage::Binary(b) => {
                        let recv = now_unix_us();
                        if let Ok(Message::VideoFrame(f)) = Message::decode(&b) {
                            seen.lock().unwrap().record(f.data, f.keyframe, recv);
                        }
                    }
                    WsMessage::Text(t) if t.contains("\"error\"") => {
                        seen.lock().unwrap().error = Some(t.to_string());
                    }
                    WsMessage::Text(t) if t.contains("\"share\"") => {
                        let v: serde_json::Value = serde_json::from_str(t.as_str()).unwrap_or_default();
                        let share = &v["Viewers"]["share"];
                        if let (Some(s), Some(t)) = (share["stream"].as_str(), share["token"].as_str()) {
                            seen.lock().unwrap().share = Some((s.to_string(), t.to_string()));
                        }
                    }
                    WsMessage::Close(_) => {}
                    _ => {}
                }
            }
            _ = ping.tick(), if !closing => {
                seq += 1;
                if ws.send(WsMessage::Binary(helix_ping(seq).into())).await.is_err() {
                    break;
                }
            }
            r = close.changed(), if !closing => {
                if r.is_err() || *close.borrow() {
                    closing = true;
                    let _ = ws.send(bench_close()).await;
                }
            }
        }
    }
    seen.lock().unwrap().ended = true;
}

impl Client {
    /// Sends Close; returns the streamer's close-to-exit time (None if it was not seen to exit
    /// within 5 s or was never identified).
    pub(crate) async fn close(self) -> Option<Duration> {
        let t0 = Instant::now();
        let _ = self.close.send(true);
        let mut exit = None;
        if let Some(pid) = self.streamer {
            while t0.elapsed() < Duration::from_secs(5) {
                if exited(pid) {
                    exit = Some(t0.elapsed());
                    break;
                }
                tokio::time::sleep(Duration::from_micros(500)).await;
            }
        }
        let _ = timeout(Duration::from_secs(5), self.task).await;
        exit
    }

    pub(crate) fn first_keyframe_after_open(&self) -> Option<Duration> {
        let s = self.seen.lock().unwrap();
        s.first_keyframe.map(|t| t.duration_since(self.opened))
    }

    pub(crate) fn source(&self) -> Option<u32> {
        self.seen.lock().unwrap().frames.last().map(|f| f.0)
    }
}

// ---------------------------------------------------------------------------------------------
// WebRTC clients (signaling socket + str0m peer).

pub(crate) fn rtc_init_json(session: &str, client: &str) -> String {
    serde_json::json!({"AuthenticateAndInit": {
        "credentials": SECRET,
        "session_id": session,
        "mode": "create",
        "client_unique_id": client,
        "host_id": 0, "app_id": 1, "bitrate": BITRATE_KBPS, "packet_size": 1024,
        "fps": FPS, "width": WIDTH, "height": HEIGHT,
        "video_sample_queue_size": 50, "play_audio_local": false, "audio_sample_queue_size": 20,
        "video_supported_formats": formats::H264, "video_colorspace": "Rec709",
        "video_color_range_full": true
    }})
    .to_string()
}

/// Opens a WebRTC stream ("open" = the signaling socket is up) and waits for its first keyframe.
pub(crate) async fn open_rtc_client(
    gw: &Gateway,
    session: &str,
    client: &str,
) -> Result<Client, String> {
    let req = format!("ws://{}/api/host/stream?session_id={session}", gw.addr)
        .into_client_request()
        .map_err(|e| e.to_string())?;
    open_with(gw, req, rtc_init_json(session, client), rtc_loop).await
}

/// Signaling relay + the peer's media, until told to close.
pub(crate) async fn rtc_loop(mut ws: Ws, seen: Arc<Mutex<Seen>>, mut close: watch::Receiver<bool>) {
    use rtc_peer::{PeerEvent, RtcPeer};
    use wire::browser::signaling::{
        ClientMessage, RtcIceCandidate, RtcSdpType, RtcSessionDescription, ServerMessage, Signaling,
    };
    let mut peer = RtcPeer::start();
    let send = |s: Signaling| {
        WsMessage::Text(
            serde_json::to_string(&ClientMessage::Signaling(s))
                .unwrap_or_default()
                .into(),
        )
    };
    loop {
        tokio::select! {
            msg = ws.next() => {
                let Some(Ok(msg)) = msg else {
                    seen.lock().unwrap().error.get_or_insert_with(|| "signaling socket ended".into());
                    break;
                };
                let WsMessage::Text(t) = msg else { continue };
                match ServerMessage::parse(&t) {
                    Ok(ServerMessage::WebRtcConfig { .. }) => {
                        let offer = send(Signaling::Description(RtcSessionDescription {
                            ty: RtcSdpType::Offer,
                            sdp: peer.offer.clone(),
                        }));
                        let cand = send(Signaling::AddIceCandidate(RtcIceCandidate {
                            candidate: peer.local_candidate.clone(),
                            sdp_mid: Some("0".into()),
                            sdp_mline_index: Some(0),
                            username_fragment: None,
                        }));
                        if ws.send(offer).await.is_err() || ws.send(cand).await.is_err() {
                            break;
                        }
                    }
                    Ok(ServerMessage::Signaling(Signaling::Description(d))) => peer.accept_answer(&d.sdp),
                    Ok(ServerMessage::Signaling(Signaling::AddIceCandidate(c))) => peer.add_remote_candidate(&c.candidate),
                    Ok(ServerMessage::StageFailed { stage, .. }) => {
                        seen.lock().unwrap().error = Some(format!("stage failed: {stage}"));
                    }
                    Ok(_) => {}
                    Err(e) => {
                        seen.lock().unwrap().error = Some(format!("{e}: {t}"));
                    }
                }
            }
            ev = peer.events.recv() => match ev {
                Some(PeerEvent::Video(au, idr, _)) => {
                    let recv = now_unix_us();
                    seen.lock().unwrap().record(&au, idr, recv);
                }
                Some(PeerEvent::Closed(e)) => {
                    seen.lock().unwrap().error = Some(format!("peer closed: {e:?}"));
                    break;
                }
                None => {
                    seen.lock().unwrap().error = Some("peer loop ended".into());
                    break;
                }
                Some(_) => {}
            },
            r = close.changed() => {
                if r.is_err() || *close.borrow() {
                    let _ = ws.send(bench_close()).await;
                    break;
                }
            }
        }
    }
    drop(ws);
    tokio::task::spawn_blocking(move || peer.close()).await.ok();
    seen.lock().unwrap().ended = true;
}
