//! The host half: a sans-IO responder ([`respond`], [`handle_message`]) and the tokio
//! [`RtspServer`] that accepts one request per connection, answers, and closes gracefully.
//!
//! Sessions are found through the host application's [`RtspHandler`] from the peer address *and*
//! the local address the connection arrived on: several sessions may come from the same IP, so an
//! app can give each session its own RTSP port, or tell them apart by key (an encrypted request is
//! tried against every candidate's key).

use std::fmt;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};

use super::crypt::{self, Direction};
use super::describe::DescribeParams;
use super::message::{plain_message_len, RtspRequest, RtspResponse};
use super::sdp::StreamConfig;
use super::{RtspError, MAX_MESSAGE_SIZE};
use crate::crypto::GcmKey;

/// The session id hosts put in `Session` (Sunshine and Wolf both use this constant).
pub const SESSION_ID: &str = "DEADBEEFCAFE";
/// How long the host waits for a complete request.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);

/// Per-session data the host app supplies for RTSP.
#[derive(Clone)]
pub struct RtspSessionInfo {
    /// The app's own handle for the session, passed back in the callbacks.
    pub id: u64,
    /// The launch `rikey` (used for `rtspenc://`).
    pub rikey: [u8; 16],
    /// RTSP for this session is encrypted (`sessionUrl0` was `rtspenc://`); plain requests are then refused.
    pub encrypted: bool,
    /// What DESCRIBE advertises.
    pub describe: DescribeParams,
    /// UDP audio port for SETUP audio.
    pub audio_port: u16,
    /// UDP video port for SETUP video.
    pub video_port: u16,
    /// UDP ENet control port for SETUP control.
    pub control_port: u16,
    /// `X-SS-Ping-Payload` for audio/video SETUP (Sunshine style; Wolf sends none).
    pub ping_payload: Option<String>,
    /// `X-SS-Connect-Data` for control SETUP (Sunshine style; Wolf sends none).
    pub connect_data: Option<u32>,
}

impl fmt::Debug for RtspSessionInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RtspSessionInfo")
            .field("id", &self.id)
            .field("rikey", &"<redacted>")
            .field("encrypted", &self.encrypted)
            .field("describe", &self.describe)
            .field(
                "ports",
                &(self.audio_port, self.video_port, self.control_port),
            )
            .field("ping_payload", &self.ping_payload)
            .field("connect_data", &self.connect_data)
            .finish()
    }
}

/// The host application's side of RTSP. Called from the server's tasks, so keep it quick.
pub trait RtspHandler: Send + Sync + 'static {
    /// The launched sessions a connection from `peer`, arriving on `local`, may belong to (usually
    /// zero or one). Encrypted requests go to the first encrypted candidate whose key opens them;
    /// plain ones to the first unencrypted candidate.
    fn sessions(&self, peer: SocketAddr, local: SocketAddr) -> Vec<RtspSessionInfo>;

    /// ANNOUNCE carried this configuration; `Err(status)` rejects it (e.g. 400 codec disabled,
    /// 403 encryption required).
    fn on_announce(&self, session: u64, config: StreamConfig) -> Result<(), u16>;

    /// PLAY arrived: the client is about to start the control and media streams.
    fn on_play(&self, session: u64);

    /// Every request matched to `session`, before it is answered (logs, tests). Does nothing
    /// unless overridden.
    fn on_request(&self, session: u64, request: &RtspRequest) {
        let _ = (session, request);
    }
}

/// True if a SETUP target names the microphone stream (`streamid=mic`, see [`crate::mic`]).
pub fn is_mic_setup(target: &str) -> bool {
    stream_type(target) == Some("mic")
}

fn stream_type(target: &str) -> Option<&str> {
    let rest = &target[target.find("streamid=")? + "streamid=".len()..];
    Some(rest.split('/').next().unwrap_or(rest))
}

/// Answers one parsed request for `session` (sans-IO; calls the handler at ANNOUNCE and PLAY).
pub fn respond(
    handler: &dyn RtspHandler,
    session: &RtspSessionInfo,
    request: &RtspRequest,
) -> RtspResponse {
    handler.on_request(session.id, request);
    let mut response = match request.method.as_str() {
        "OPTIONS" => RtspResponse::new(200),
        "DESCRIBE" => {
            let mut r = RtspResponse::new(200);
            r.payload = session.describe.to_payload().into_bytes();
            r
        }
        "SETUP" => setup_response(session, &request.target),
        "ANNOUNCE" => match StreamConfig::parse(&request.payload) {
            Err(_) => RtspResponse::new(400),
            Ok(mut config) => {
                config.rtsp_host = request.headers.get("Host").map(str::to_string);
                match handler.on_announce(session.id, config) {
                    Ok(()) => RtspResponse::new(200),
                    Err(status) => RtspResponse::new(status),
                }
            }
        },
        "PLAY" => {
            handler.on_play(session.id);
            RtspResponse::new(200)
        }
        // Sunshine answers unknown commands with 404.
        _ => RtspResponse::new(404),
    };
    finish_response(&mut response, request);
    response
}

fn setup_response(session: &RtspSessionInfo, target: &str) -> RtspResponse {
    let (port, extra) = match stream_type(target) {
        Some("audio") => (
            session.audio_port,
            session
                .ping_payload
                .clone()
                .map(|p| ("X-SS-Ping-Payload", p)),
        ),
        Some("video") => (
            session.video_port,
            session
                .ping_payload
                .clone()
                .map(|p| ("X-SS-Ping-Payload", p)),
        ),
        // Only when DESCRIBE offered it; its datagrams are matched by the client's IP, but the
        // forks send the ping payload with it all the same.
        Some("mic") => match session.describe.mic_port {
            Some(port) => (
                port,
                session
                    .ping_payload
                    .clone()
                    .map(|p| ("X-SS-Ping-Payload", p)),
            ),
            None => return RtspResponse::new(404),
        },
        Some("control") => (
            session.control_port,
            session
                .connect_data
                .map(|d| ("X-SS-Connect-Data", d.to_string())),
        ),
        _ => return RtspResponse::new(404),
    };
    let mut r = RtspResponse::new(200)
        .with_header("Session", format!("{SESSION_ID};timeout = 90"))
        .with_header("Transport", format!("server_port={port}"));
    if let Some((name, value)) = extra {
        r.headers.push(name, value);
    }
    r
}

/// Echoes `CSeq` (serialised first) and announces any payload.
fn finish_response(response: &mut RtspResponse, request: &RtspRequest) {
    if let Some(cseq) = request.headers.get("CSeq") {
        response.headers.set("CSeq", cseq);
    }
    if !response.payload.is_empty() {
        response
            .headers
            .set("Content-length", response.payload.len().to_string());
    }
}

/// Handles one complete request as it came off the wire (plain or encrypted — told apart by the
/// high bit of the first byte) and returns the bytes to send back, or `None` to close silently
/// (undecryptable request, plain request on an encrypted session). `response_seq` is the sequence
/// number for an encrypted answer.
pub fn handle_message(
    handler: &dyn RtspHandler,
    peer: SocketAddr,
    local: SocketAddr,
    bytes: &[u8],
    response_seq: u32,
) -> Option<Vec<u8>> {
    let sessions = handler.sessions(peer, local);
    if crypt::looks_encrypted(bytes) {
        for session in sessions.iter().filter(|s| s.encrypted) {
            let key = GcmKey::new(&session.rikey);
            let Ok((_, plain)) = crypt::open(&key, Direction::ClientToHost, bytes) else {
                continue;
            };
            let response = match RtspRequest::parse(&plain) {
                Ok(request) => respond(handler, session, &request),
                Err(_) => RtspResponse::new(400),
            };
            return crypt::seal(
                &key,
                response_seq,
                Direction::HostToClient,
                &response.to_bytes(),
            )
            .ok();
        }
        tracing::debug!(%peer, %local, "encrypted RTSP request matches no session key");
        return None;
    }
    let request = match RtspRequest::parse(bytes) {
        Ok(r) => r,
        Err(_) => return Some(RtspResponse::new(400).to_bytes()),
    };
    match sessions.iter().find(|s| !s.encrypted) {
        Some(session) => Some(respond(handler, session, &request).to_bytes()),
        None if sessions.is_empty() => {
            let mut r = RtspResponse::new(454);
            finish_response(&mut r, &request);
            Some(r.to_bytes())
        }
        None => {
            tracing::debug!(%peer, %local, "plain RTSP request on an encrypted session");
            None
        }
    }
}

/// How many bytes of `buf` make one complete request, once complete.
pub fn request_len(buf: &[u8]) -> Result<Option<usize>, RtspError> {
    if crypt::looks_encrypted(buf) {
        crypt::frame_len(buf)
    } else {
        plain_message_len(buf)
    }
}

/// A running RTSP listener. Dropping it aborts everything; [`RtspServer::close`] stops it and waits.
pub struct RtspServer {
    local_addr: SocketAddr,
    shutdown: watch::Sender<bool>,
    task: Option<JoinHandle<()>>,
}

impl fmt::Debug for RtspServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RtspServer")
            .field("local_addr", &self.local_addr)
            .finish_non_exhaustive()
    }
}

impl RtspServer {
    /// Binds (port 0 picks a free port) and starts accepting.
    pub async fn bind(addr: SocketAddr, handler: Arc<dyn RtspHandler>) -> std::io::Result<Self> {
        let listener = TcpListener::bind(addr).await?;
        let local_addr = listener.local_addr()?;
        let (shutdown, rx) = watch::channel(false);
        let task = tokio::spawn(accept_loop(listener, handler, rx));
        Ok(Self {
            local_addr,
            shutdown,
            task: Some(task),
        })
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Stops accepting, ends every connection task and waits for them.
    pub async fn close(mut self) {
        let _ = self.shutdown.send(true);
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for RtspServer {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

async fn accept_loop(
    listener: TcpListener,
    handler: Arc<dyn RtspHandler>,
    mut shutdown: watch::Receiver<bool>,
) {
    let seq = Arc::new(AtomicU32::new(0));
    let mut connections = JoinSet::new();
    loop {
        while connections.try_join_next().is_some() {}
        tokio::select! {
            _ = shutdown.changed() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let handler = Arc::clone(&handler);
                    let seq = Arc::clone(&seq);
                    connections.spawn(async move {
                        if let Err(e) = serve_connection(stream, peer, handler.as_ref(), &seq).await {
                            tracing::debug!(%peer, error = %e, "RTSP connection ended with an error");
                        }
                    });
                }
                Err(e) => {
                    tracing::warn!(error = %e, "RTSP accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
        }
    }
    connections.shutdown().await;
}

async fn serve_connection(
    mut stream: TcpStream,
    peer: SocketAddr,
    handler: &dyn RtspHandler,
    seq: &AtomicU32,
) -> Result<(), RtspError> {
    let local = stream.local_addr()?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let len = loop {
        if let Some(len) = request_len(&buf)? {
            break len;
        }
        let n = tokio::time::timeout(REQUEST_TIMEOUT, stream.read(&mut chunk))
            .await
            .map_err(|_| RtspError::Timeout("request"))??;
        if n == 0 {
            return Err(RtspError::Truncated);
        }
        buf.extend_from_slice(&chunk[..n]);
        if buf.len() > MAX_MESSAGE_SIZE + crypt::ENCRYPTED_HEADER_LEN {
            return Err(RtspError::TooLarge);
        }
    };
    let request = buf.get(..len).ok_or(RtspError::Truncated)?;
    let response_seq = seq.fetch_add(1, Ordering::Relaxed).wrapping_add(1);
    if let Some(response) = handle_message(handler, peer, local, request, response_seq) {
        stream.write_all(&response).await?;
    }
    stream.shutdown().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    struct Recorder {
        session: RtspSessionInfo,
        announced: Mutex<Vec<StreamConfig>>,
        played: Mutex<u32>,
    }

    impl RtspHandler for Recorder {
        fn sessions(&self, _peer: SocketAddr, _local: SocketAddr) -> Vec<RtspSessionInfo> {
            vec![self.session.clone()]
        }
        fn on_announce(&self, _session: u64, config: StreamConfig) -> Result<(), u16> {
            self.announced.lock().unwrap().push(config);
            Ok(())
        }
        fn on_play(&self, _session: u64) {
            *self.played.lock().unwrap() += 1;
        }
    }

    fn recorder() -> Recorder {
        Recorder {
            session: RtspSessionInfo {
                id: 1,
                rikey: [7; 16],
                encrypted: false,
                describe: DescribeParams::wolf(true, false),
                audio_port: 48200,
                video_port: 48100,
                control_port: 47999,
                ping_payload: Some("0123456789ABCDEF".into()),
                connect_data: Some(1234),
            },
            announced: Mutex::new(Vec::new()),
            played: Mutex::new(0),
        }
    }

    fn addr() -> SocketAddr {
        "127.0.0.1:1".parse().unwrap()
    }

    #[test]
    fn setup_replies_like_sunshine() {
        let h = recorder();
        let req = RtspRequest::new("SETUP", "streamid=video/0/0")
            .with_header("X-GS-ClientVersion", "14")
            .with_header("CSeq", "4");
        let r = respond(&h, &h.session, &req);
        assert_eq!(
            r.to_bytes(),
            b"RTSP/1.0 200 OK\r\nCSeq: 4\r\nSession: DEADBEEFCAFE;timeout = 90\r\nTransport: server_port=48100\r\nX-SS-Ping-Payload: 0123456789ABCDEF\r\n\r\n"
        );
        let req = RtspRequest::new("SETUP", "streamid=control/13/0").with_header("CSeq", "5");
        let r = respond(&h, &h.session, &req);
        assert_eq!(r.headers.get("X-SS-Connect-Data"), Some("1234"));
        let req = RtspRequest::new("SETUP", "streamid=bogus/0/0").with_header("CSeq", "6");
        assert_eq!(respond(&h, &h.session, &req).status, 404);
        assert_eq!(
            respond(&h, &h.session, &RtspRequest::new("SETUP", "x")).status,
            404
        );
    }

    #[test]
    fn announce_missing_required_is_400() {
        let h = recorder();
        let mut req =
            RtspRequest::new("ANNOUNCE", "streamid=control/13/0").with_header("CSeq", "6");
        req.payload = b"v=0\r\na=x-nv-video[0].maxFPS:60 \r\n".to_vec();
        let r = respond(&h, &h.session, &req);
        assert_eq!((r.status, r.cseq()), (400, Some(6)));
        assert!(h.announced.lock().unwrap().is_empty());
    }

    #[test]
    fn handle_message_plain_encrypted_and_garbage() {
        let h = recorder();
        let req = RtspRequest::new("OPTIONS", "rtsp://127.0.0.1:48010")
            .with_header("CSeq", "1")
            .to_bytes();
        let out = handle_message(&h, addr(), addr(), &req, 1).unwrap();
        assert_eq!(out, b"RTSP/1.0 200 OK\r\nCSeq: 1\r\n\r\n");
        // Encrypted request to a plain session: nobody can open it.
        let key = GcmKey::new(&[7; 16]);
        let sealed = crypt::seal(&key, 1, Direction::ClientToHost, &req).unwrap();
        assert!(handle_message(&h, addr(), addr(), &sealed, 1).is_none());
        // Encrypted session: sealed works, plain is refused.
        let mut h = recorder();
        h.session.encrypted = true;
        let out = handle_message(&h, addr(), addr(), &sealed, 9).unwrap();
        let (seq, plain) = crypt::open(&key, Direction::HostToClient, &out).unwrap();
        assert_eq!(
            (seq, plain.as_slice()),
            (9, &b"RTSP/1.0 200 OK\r\nCSeq: 1\r\n\r\n"[..])
        );
        assert!(handle_message(&h, addr(), addr(), &req, 1).is_none());
        // Garbage plain request ⇒ 400.
        assert_eq!(
            handle_message(&h, addr(), addr(), b"\r\n\r\n", 1).unwrap(),
            b"RTSP/1.0 400 Bad Request\r\n\r\n"
        );
    }

    #[test]
    fn request_len_both_framings() {
        let req = RtspRequest::new("PLAY", "/")
            .with_header("CSeq", "7")
            .to_bytes();
        assert_eq!(request_len(&req).unwrap(), Some(req.len()));
        assert_eq!(request_len(&req[..5]).unwrap(), None);
        let sealed = crypt::seal(&GcmKey::new(&[1; 16]), 1, Direction::ClientToHost, &req).unwrap();
        assert_eq!(request_len(&sealed).unwrap(), Some(sealed.len()));
        assert_eq!(request_len(&sealed[..30]).unwrap(), Some(sealed.len()));
    }
}
