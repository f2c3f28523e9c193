//! End-to-end RTSP handshake over real TCP on 127.0.0.1: our client against our host.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use gamestream::rtsp::client::{self, ClientParams, StreamSettings};
use gamestream::rtsp::describe::{video_format, DescribeParams};
use gamestream::rtsp::{RtspError, RtspHandler, RtspServer, RtspSessionInfo, StreamConfig};
use gamestream::AppVersion;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const KEY: [u8; 16] = [0x42; 16];

#[derive(Default)]
struct TestHost {
    /// (RTSP port the session is bound to, session).
    sessions: Mutex<Vec<(u16, RtspSessionInfo)>>,
    announced: Mutex<Vec<(u64, StreamConfig)>>,
    played: Mutex<Vec<u64>>,
    reject_announce: Option<u16>,
}

impl RtspHandler for TestHost {
    fn sessions(&self, peer: SocketAddr, local: SocketAddr) -> Vec<RtspSessionInfo> {
        assert!(peer.ip().is_loopback());
        let sessions = self.sessions.lock().unwrap();
        sessions
            .iter()
            .filter(|(port, _)| *port == local.port())
            .map(|(_, s)| s.clone())
            .collect()
    }
    fn on_announce(&self, session: u64, config: StreamConfig) -> Result<(), u16> {
        self.announced.lock().unwrap().push((session, config));
        self.reject_announce.map_or(Ok(()), Err)
    }
    fn on_play(&self, session: u64) {
        self.played.lock().unwrap().push(session);
    }
}

impl TestHost {
    /// Offers session `id` (ports `base..base + 3`) to clients of the server on `port`.
    fn serve(&self, port: u16, id: u64, encrypted: bool, base: u16) {
        let s = session(id, encrypted, base);
        self.sessions.lock().unwrap().push((port, s));
    }
}

fn session(id: u64, encrypted: bool, base: u16) -> RtspSessionInfo {
    RtspSessionInfo {
        id,
        rikey: KEY,
        encrypted,
        describe: DescribeParams::sunshine(true, false),
        audio_port: base,
        video_port: base + 1,
        control_port: base + 2,
        ping_payload: Some(format!("{id:016X}")),
        connect_data: Some(0xC0FFEE00 + id as u32),
    }
}

fn client_params(port: u16, encrypted: bool, key: [u8; 16]) -> ClientParams {
    let scheme = if encrypted { "rtspenc" } else { "rtsp" };
    ClientParams {
        app_version: AppVersion::SUNSHINE,
        session_url: format!("{scheme}://127.0.0.1:{port}"),
        rikey: Some(key),
        host_addr: "127.0.0.1".parse().unwrap(),
        stream: StreamSettings {
            width: 1280,
            height: 720,
            fps: 120,
            bitrate_kbps: 30_000,
            supported_formats: video_format::H264 | video_format::H265,
            audio_channels: 6,
            audio_channel_mask: 0x3F,
            want_video_encryption: true,
            ..StreamSettings::default()
        },
    }
}

async fn start(host: Arc<TestHost>) -> RtspServer {
    RtspServer::bind("127.0.0.1:0".parse().unwrap(), host)
        .await
        .unwrap()
}

/// `host` behind a new server on loopback, offering session `id` there; the server and its port.
async fn serving(host: &Arc<TestHost>, id: u64, encrypted: bool, base: u16) -> (RtspServer, u16) {
    let server = start(host.clone()).await;
    let port = server.local_addr().port();
    host.serve(port, id, encrypted, base);
    (server, port)
}

/// `err` is the host's `status` answer to `method`.
fn assert_status(err: &RtspError, status: u16, method: &str) {
    assert!(
        matches!(err, RtspError::Status { status: s, method: m } if *s == status && m == method),
        "{err:?}"
    );
}

async fn bounded<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(30), f)
        .await
        .expect("test timed out")
}

async fn full_handshake(encrypted: bool) {
    let host = Arc::new(TestHost::default());
    let (server, port) = serving(&host, 7, encrypted, 41000).await;

    let out = client::handshake(server.local_addr(), client_params(port, encrypted, KEY))
        .await
        .unwrap();
    assert_eq!(
        (out.audio_port, out.video_port, out.control_port),
        (41000, 41001, 41002)
    );
    assert_eq!(out.session_id, "DEADBEEFCAFE");
    assert_eq!(out.audio_ping_payload, Some(*b"0000000000000007"));
    assert_eq!(out.video_ping_payload, Some(*b"0000000000000007"));
    assert_eq!(out.control_connect_data, 0xC0FFEE07);
    assert_eq!(out.video_format, video_format::H265);
    assert!(out.control_v2 && out.video_encryption && !out.audio_encryption);
    assert!(out.high_quality_audio);

    let announced = host.announced.lock().unwrap().clone();
    assert_eq!(announced.len(), 1);
    let (id, cfg) = &announced[0];
    assert_eq!(*id, 7);
    assert_eq!((cfg.width, cfg.height, cfg.fps), (1280, 720, 120));
    assert_eq!(cfg.packet_size, 1392 - 32);
    assert_eq!(
        (cfg.bitrate_kbps, cfg.configured_bitrate_kbps),
        (24_000, Some(30_000))
    );
    assert_eq!(
        (
            cfg.bit_stream_format,
            cfg.dynamic_range,
            cfg.max_ref_frames,
            cfg.slices_per_frame
        ),
        (1, 0, 1, 1)
    );
    assert_eq!(
        (
            cfg.audio_channels,
            cfg.audio_channel_mask,
            cfg.audio_high_quality
        ),
        (6, 0x3F, true)
    );
    assert_eq!(
        (cfg.audio_packet_duration_ms, cfg.fec_min_required_packets),
        (5, 2)
    );
    assert_eq!(
        (
            cfg.encryption_enabled,
            cfg.ml_feature_flags,
            cfg.nv_feature_flags
        ),
        (3, 3, 135)
    );
    assert!(cfg.control_v2() && cfg.video_encryption() && !cfg.audio_encryption());
    assert_eq!(
        (cfg.encoder_csc_mode, cfg.refresh_rate_x100),
        (2, Some(6000))
    );
    assert_eq!(cfg.rtsp_host.as_deref(), Some("127.0.0.1"));
    assert!(cfg.high_quality_audio());
    // Exactly what the client generated.
    let mut expected = StreamConfig::parse(&out.announce.to_payload()).unwrap();
    expected.rtsp_host = Some("127.0.0.1".into());
    assert_eq!(cfg, &expected);
    assert_eq!(*host.played.lock().unwrap(), [7]);
    server.close().await;
}

#[tokio::test]
async fn plain_handshake() {
    bounded(full_handshake(false)).await;
}

#[tokio::test]
async fn encrypted_handshake() {
    bounded(full_handshake(true)).await;
}

#[tokio::test]
async fn wrong_key_is_rejected() {
    bounded(async {
        let host = Arc::new(TestHost::default());
        let (server, port) = serving(&host, 1, true, 41000).await;
        let err = client::handshake(server.local_addr(), client_params(port, true, [0x24; 16]))
            .await
            .unwrap_err();
        assert!(matches!(err, RtspError::EmptyResponse), "{err:?}");
        // A plain client on an encrypted session is refused too.
        let err = client::handshake(server.local_addr(), client_params(port, false, KEY))
            .await
            .unwrap_err();
        assert!(matches!(err, RtspError::EmptyResponse), "{err:?}");
        assert!(host.announced.lock().unwrap().is_empty());
        server.close().await;
    })
    .await;
}

#[tokio::test]
async fn announce_rejection_is_a_typed_error() {
    bounded(async {
        let host = Arc::new(TestHost {
            reject_announce: Some(400),
            ..TestHost::default()
        });
        let (server, port) = serving(&host, 1, false, 41000).await;
        let err = client::handshake(server.local_addr(), client_params(port, false, KEY))
            .await
            .unwrap_err();
        assert_status(&err, 400, "ANNOUNCE");
        assert!(host.played.lock().unwrap().is_empty());
        server.close().await;
    })
    .await;
}

#[tokio::test]
async fn unknown_session_is_a_typed_error() {
    bounded(async {
        let host = Arc::new(TestHost::default());
        let server = start(host).await;
        let port = server.local_addr().port();
        let err = client::handshake(server.local_addr(), client_params(port, false, KEY))
            .await
            .unwrap_err();
        assert_status(&err, 454, "OPTIONS");
        server.close().await;
    })
    .await;
}

/// A one-connection fake RTSP host on loopback: reads the client's first request (up to 1 kB)
/// and hands the socket and the request to `answer`. Its address and its task.
async fn fake_host<F, Fut>(answer: F) -> (std::net::SocketAddr, tokio::task::JoinHandle<()>)
where
    F: FnOnce(tokio::net::TcpStream, Vec<u8>) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let (mut s, _) = listener.accept().await.unwrap();
        let mut buf = [0u8; 1024];
        let n = s.read(&mut buf).await.unwrap();
        answer(s, buf[..n].to_vec()).await;
    });
    (addr, task)
}

#[tokio::test]
async fn raw_host_answering_404() {
    bounded(async {
        let (addr, fake) = fake_host(|mut s, request| async move {
            assert!(request.starts_with(b"OPTIONS rtsp://127.0.0.1:"));
            s.write_all(b"RTSP/1.0 404 Not Found\r\nCSeq: 1\r\n\r\n")
                .await
                .unwrap();
            s.shutdown().await.unwrap();
        })
        .await;
        let err = client::handshake(addr, client_params(addr.port(), false, KEY))
            .await
            .unwrap_err();
        assert_status(&err, 404, "OPTIONS");
        fake.await.unwrap();
    })
    .await;
}

#[tokio::test]
async fn two_sessions_from_one_ip_by_rtsp_port() {
    bounded(async {
        let host = Arc::new(TestHost::default());
        let (a, pa) = serving(&host, 1, false, 42000).await;
        let (b, pb) = serving(&host, 2, true, 43000).await;
        let (oa, ob) = tokio::join!(
            client::handshake(a.local_addr(), client_params(pa, false, KEY)),
            client::handshake(b.local_addr(), client_params(pb, true, KEY)),
        );
        assert_eq!(oa.unwrap().video_port, 42001);
        assert_eq!(ob.unwrap().video_port, 43001);
        let mut played = host.played.lock().unwrap().clone();
        played.sort();
        assert_eq!(played, [1, 2]);
        a.close().await;
        b.close().await;
    })
    .await;
}

#[tokio::test]
async fn close_stops_listening() {
    bounded(async {
        let server = start(Arc::new(TestHost::default())).await;
        let addr = server.local_addr();
        assert_ne!(addr.port(), 0);
        server.close().await;
        assert!(tokio::net::TcpStream::connect(addr).await.is_err());
    })
    .await;
}

#[tokio::test]
async fn connect_refused_is_retried_until_the_host_listens() {
    bounded(async {
        // Learn a free ephemeral port, release it, and start the host there a little later (GFE
        // answers /launch before its RTSP port listens).
        let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = probe.local_addr().unwrap();
        drop(probe);
        let host = Arc::new(TestHost::default());
        host.serve(addr.port(), 3, false, 44000);
        let late_host = host.clone();
        let server = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(1200)).await;
            RtspServer::bind(addr, late_host).await.unwrap()
        });
        let out = client::handshake(addr, client_params(addr.port(), false, KEY))
            .await
            .unwrap();
        assert_eq!(out.control_port, 44002);
        server.await.unwrap().close().await;
    })
    .await;
}

#[tokio::test]
async fn oversized_response_is_rejected() {
    bounded(async {
        let (addr, fake) = fake_host(|mut s, _request| async move {
            let mut big = b"RTSP/1.0 200 OK\r\nCSeq: 1\r\n\r\n".to_vec();
            big.resize(1024 * 1024 + 64, b'a');
            // The client may hang up as soon as it has seen too much.
            let _ = s.write_all(&big).await;
        })
        .await;
        let err = client::transact(
            addr,
            b"OPTIONS rtsp://127.0.0.1:1 RTSP/1.0\r\nCSeq: 1\r\n\r\n",
        )
        .await
        .unwrap_err();
        assert!(matches!(err, RtspError::TooLarge), "{err:?}");
        fake.await.unwrap();
    })
    .await;
}
