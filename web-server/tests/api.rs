//! The REST API over real HTTP on 127.0.0.1 against a real Moonlight host (gamestream's host half
//! on loopback): authentication, hosts CRUD, status, PIN pairing with SSE progress (wrong PIN,
//! then right PIN), app list, box art, cancel, Wake-on-LAN, sessions.

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use gamestream::host::{AppCatalog, Host, HostConfig, StaticApps};
use gamestream::identity::Identity;
use gamestream::nvhttp::App;
use http_body_util::BodyExt;
use hyper::body::Bytes;
use hyper::{Method, StatusCode};
use serde_json::{json, Value};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::oneshot;
use tokio::time::timeout;
use web_server::auth::Credentials;
use web_server::server::serve;
use web_server::sessions::{SessionKey, SessionMeta};
use web_server::store::SqliteStore;
use web_server::{AppState, Config};

const CRED: &str = "test-credential-123";
const BOX_ART: &[u8] = b"\x89PNG\r\n\x1a\n box art of app 1";
const T: Duration = Duration::from_secs(30);

struct Resp {
    status: StatusCode,
    content_type: Option<String>,
    body: Bytes,
}

impl Resp {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", String::from_utf8_lossy(&self.body)))
    }
}

async fn call(addr: SocketAddr, method: Method, path: &str, body: Option<Value>) -> Resp {
    call_as(addr, method, path, Some(CRED), body).await
}

async fn call_as(
    addr: SocketAddr,
    method: Method,
    path: &str,
    auth: Option<&str>,
    body: Option<Value>,
) -> Resp {
    let resp = common::http_send(addr, method.as_str(), path, auth, body).await;
    let status = resp.status();
    let content_type = resp
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string());
    let body = timeout(T, resp.into_body().collect())
        .await
        .expect("body timed out")
        .unwrap()
        .to_bytes();
    Resp {
        status,
        content_type,
        body,
    }
}

/// An open SSE stream.
struct Sse {
    body: hyper::body::Incoming,
    buf: String,
}

impl Sse {
    async fn open(addr: SocketAddr, path: &str) -> Sse {
        let resp = common::http_send(addr, "GET", path, Some(CRED), None).await;
        assert_eq!(resp.status(), StatusCode::OK);
        assert_eq!(
            resp.headers().get("content-type").unwrap(),
            "text/event-stream"
        );
        Sse {
            body: resp.into_body(),
            buf: String::new(),
        }
    }

    /// The next event (`event:` name + `data:` JSON), or `None` at the end of the stream.
    async fn next(&mut self) -> Option<(String, Value)> {
        loop {
            while let Some(i) = self.buf.find("\n\n") {
                let block: String = self.buf.drain(..i + 2).collect();
                let mut name = None;
                let mut data = None;
                for line in block.lines() {
                    if let Some(v) = line.strip_prefix("event:") {
                        name = Some(v.trim().to_string());
                    } else if let Some(v) = line.strip_prefix("data:") {
                        data = Some(serde_json::from_str::<Value>(v.trim()).unwrap());
                    }
                }
                if let (Some(n), Some(d)) = (name, data) {
                    return Some((n, d));
                }
            }
            let frame = timeout(T, self.body.frame()).await.expect("SSE stalled")?;
            if let Ok(data) = frame.unwrap().into_data() {
                self.buf.push_str(std::str::from_utf8(&data).unwrap());
            }
        }
    }

    /// Every remaining event.
    async fn rest(mut self) -> Vec<(String, Value)> {
        let mut all = Vec::new();
        while let Some(e) = self.next().await {
            all.push(e);
        }
        all
    }
}

async fn sse_events(addr: SocketAddr, path: String) -> Vec<(String, Value)> {
    Sse::open(addr, &path).await.rest().await
}

async fn pending_secret(host: &Host) -> String {
    timeout(T, async {
        loop {
            if let Some(p) = host.nvhttp().pending_pairings().first() {
                return p.pair_secret.clone();
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("no pending pairing on the host")
}

struct Server {
    addr: SocketAddr,
    state: AppState,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
    _dir: tempfile::TempDir,
}

async fn start_server(wol_target: SocketAddr) -> Server {
    let dir = tempfile::tempdir().unwrap();
    let env = |k: &str| match k {
        "MOONGATE_CREDENTIALS" => Some(CRED.to_string()),
        _ => None,
    };
    let mut config = Config::load_with_env(None, env).unwrap();
    config.data_dir = dir.path().to_path_buf();
    config.wol_target = wol_target;
    config.timeouts.pairing = Duration::from_secs(20);
    let store = Arc::new(SqliteStore::open(&dir.path().join("moongate.db")).unwrap());
    let state = AppState::new(config, Credentials::new(CRED), store);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(serve(listener, state.clone(), async move {
        let _ = stopped.await;
    }));
    Server {
        addr,
        state,
        stop: Some(stop),
        task,
        _dir: dir,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rest_api_against_a_real_host() {
    timeout(Duration::from_secs(120), run())
        .await
        .expect("test timed out");
}

async fn run() {
    let catalog = Arc::new(StaticApps {
        apps: vec![(
            App {
                title: "Test Pattern".into(),
                id: 1,
                hdr_supported: false,
            },
            Some(BOX_ART.to_vec()),
        )],
    });
    let (host, _host_events) = Host::start(
        HostConfig::loopback(Identity::new_host("api-test-host").unwrap()),
        catalog as Arc<dyn AppCatalog>,
    )
    .await
    .unwrap();
    let ports = host.ports();
    let wol_rx = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let mut server = start_server(wol_rx.local_addr().unwrap()).await;
    let addr = server.addr;

    // Authentication: /healthz is open; /api needs the bearer.
    let r = call_as(addr, Method::GET, "/healthz", None, None).await;
    assert_eq!(r.status, StatusCode::OK);
    for auth in [None, Some("wrong")] {
        let r = call_as(addr, Method::GET, "/api/hosts", auth, None).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
        assert_eq!(r.json()["code"], "unauthorized");
    }
    let r = call_as(addr, Method::GET, "/api/sessions", None, None).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let r = call(addr, Method::GET, "/api/nothing", None).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(r.json()["code"], "not_found");

    // Add the host; bad input gets clear errors.
    let r = call(
        addr,
        Method::POST,
        "/api/hosts",
        Some(json!({"address": ""})),
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.json()["code"], "invalid_address");
    let r = call(
        addr,
        Method::POST,
        "/api/hosts",
        Some(json!({"address": "127.0.0.1", "mac": "nope"})),
    )
    .await;
    assert_eq!(r.json()["code"], "invalid_mac");
    let r = call(addr, Method::POST, "/api/hosts", Some(json!({"nope": 1}))).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.json()["code"], "bad_request");
    let r = call(
        addr,
        Method::POST,
        "/api/hosts",
        Some(json!({
            "name": "loopback",
            "address": "127.0.0.1",
            "http_port": ports.http,
            "https_port": ports.https,
            "mac": "0a:0b:0c:0d:0e:0f",
        })),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    let id = r.json()["id"].as_i64().unwrap();
    assert_eq!(r.json()["paired"], false);
    let r = call(addr, Method::GET, "/api/hosts", None).await;
    assert_eq!(r.json().as_array().unwrap().len(), 1);
    assert_eq!(r.json()[0]["name"], "loopback");

    // Status before pairing: online, not paired, not busy.
    let r = call(addr, Method::GET, &format!("/api/hosts/{id}/status"), None).await;
    assert_eq!(r.status, StatusCode::OK);
    let s = r.json();
    assert_eq!(s["online"], true);
    assert_eq!(s["paired"], false);
    assert_eq!(s["busy"], false);
    assert_eq!(s["current_app"], 0);
    assert!(s["app_version"].as_str().unwrap().starts_with('7'), "{s}");

    // Unpaired: apps need a pairing.
    let r = call(addr, Method::GET, &format!("/api/hosts/{id}/apps"), None).await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    assert_eq!(r.json()["code"], "host_not_paired");
    let r = call(
        addr,
        Method::GET,
        &format!("/api/hosts/{id}/pair/events"),
        None,
    )
    .await;
    assert_eq!(r.json()["code"], "no_pairing");

    // Pairing with a wrong PIN fails with `wrong_pin`.
    let r = call(addr, Method::POST, &format!("/api/hosts/{id}/pair"), None).await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
    let pin = r.json()["pin"].as_str().unwrap().to_string();
    assert_eq!(pin.len(), 4);
    assert!(pin.chars().all(|c| c.is_ascii_digit()));
    let events_path = r.json()["events"].as_str().unwrap().to_string();
    let r = call(addr, Method::POST, &format!("/api/hosts/{id}/pair"), None).await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    assert_eq!(r.json()["code"], "pairing_in_progress");
    let mut sse = Sse::open(addr, &events_path).await;
    assert_eq!(sse.next().await.unwrap().0, "waiting_for_pin");
    let secret = pending_secret(&host).await;
    let wrong = if pin == "0000" { "1111" } else { "0000" };
    assert!(host.nvhttp().submit_pin(&secret, wrong));
    let events = sse.rest().await;
    assert_eq!(events.len(), 1, "{events:?}");
    let (name, data) = events.last().unwrap();
    assert_eq!(name, "failed");
    assert_eq!(data["code"], "wrong_pin", "{data}");

    // Pairing with the right PIN: SSE shows waiting_for_pin then paired.
    let r = call(addr, Method::POST, &format!("/api/hosts/{id}/pair"), None).await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
    let pin = r.json()["pin"].as_str().unwrap().to_string();
    let mut sse = Sse::open(addr, &events_path).await;
    assert_eq!(sse.next().await.unwrap().0, "waiting_for_pin");
    let secret = pending_secret(&host).await;
    assert!(host.nvhttp().submit_pin(&secret, &pin));
    let events = sse.rest().await;
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0].0, "paired");
    assert_eq!(events[0].1["state"], "paired");
    // A late subscriber sees the final state at once.
    let late = sse_events(addr, events_path.clone()).await;
    assert_eq!(late.len(), 1);
    assert_eq!(late[0].0, "paired");

    let r = call(addr, Method::GET, "/api/hosts", None).await;
    assert_eq!(r.json()[0]["paired"], true);
    let r = call(addr, Method::GET, &format!("/api/hosts/{id}/status"), None).await;
    assert_eq!(r.json()["paired"], true, "{}", r.json());

    // Apps and box art.
    let r = call(addr, Method::GET, &format!("/api/hosts/{id}/apps"), None).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(
        r.json(),
        json!([{"id": 1, "title": "Test Pattern", "hdr_supported": false}])
    );
    let r = call(
        addr,
        Method::GET,
        &format!("/api/hosts/{id}/apps/1/boxart"),
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.content_type.as_deref(), Some("image/png"));
    assert_eq!(&r.body[..], BOX_ART);
    let r = call(
        addr,
        Method::GET,
        &format!("/api/hosts/{id}/apps/x/boxart"),
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.json()["code"], "bad_request");

    // Cancel (nothing running: the host still answers success).
    let r = call(addr, Method::POST, &format!("/api/hosts/{id}/cancel"), None).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{:?}", r.body);

    // Wake-on-LAN: 6 × FF then the MAC 16 times, 102 bytes, at the configured target.
    let r = call(addr, Method::POST, &format!("/api/hosts/{id}/wake"), None).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let mut buf = [0u8; 256];
    let (n, _) = timeout(T, wol_rx.recv_from(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(n, 102);
    assert_eq!(&buf[..6], &[0xFF; 6]);
    for i in 0..16 {
        assert_eq!(
            &buf[6 + 6 * i..12 + 6 * i],
            &[0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f]
        );
    }

    // Sessions come from the registry.
    let r = call(addr, Method::GET, "/api/sessions", None).await;
    assert_eq!(r.json(), json!([]));
    let reg = server.state.sessions.register(
        SessionKey::new("ses_1", "lobby-a", "client").unwrap(),
        SessionMeta {
            host_id: id,
            app_id: 1,
            mode: "websocket".into(),
            remote: None,
        },
    );
    let r = call(addr, Method::GET, "/api/sessions", None).await;
    let list = r.json();
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_eq!(list[0]["key"], "ses_1-lobby%2Da-client");
    assert_eq!(list[0]["lobby_id"], "lobby-a");
    assert_eq!(list[0]["mode"], "websocket");
    drop(reg);
    let r = call(addr, Method::GET, "/api/sessions", None).await;
    assert_eq!(r.json(), json!([]));

    // Deleting a host cancels its running pairing (SSE ends with `cancelled`).
    let r = call(
        addr,
        Method::POST,
        "/api/hosts",
        Some(json!({"address": "127.0.0.1", "http_port": ports.http})),
    )
    .await;
    let other = r.json()["id"].as_i64().unwrap();
    let r = call(
        addr,
        Method::POST,
        &format!("/api/hosts/{other}/pair"),
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
    let mut sse = Sse::open(addr, r.json()["events"].as_str().unwrap()).await;
    assert_eq!(sse.next().await.unwrap().0, "waiting_for_pin");
    let r = call(addr, Method::DELETE, &format!("/api/hosts/{other}"), None).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let events = sse.rest().await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].0, "cancelled");

    // Delete: then the host is gone.
    let r = call(addr, Method::DELETE, &format!("/api/hosts/{id}"), None).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let r = call(addr, Method::GET, &format!("/api/hosts/{id}/status"), None).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(r.json()["code"], "host_not_found");
    let r = call(addr, Method::DELETE, &format!("/api/hosts/{id}"), None).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);

    // Graceful shutdown: serve returns.
    let _ = server.stop.take().unwrap().send(());
    timeout(T, &mut server.task)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    host.close().await;
}

/// The seam for the integrator's WebSocket route: `AllowedOrigin` refuses a foreign page before
/// the upgrade; no `Origin` (Helix's proxy, a CLI) passes.
#[tokio::test]
async fn websocket_origin_extractor_on_a_real_upgrade() {
    use axum::extract::ws::WebSocketUpgrade;
    use axum::routing::get;
    use web_server::auth::AllowedOrigin;

    let wol = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::load_with_env(None, |_| None).unwrap();
    config.data_dir = dir.path().to_path_buf();
    config.wol_target = wol.local_addr().unwrap();
    config.allowed_origins = vec!["https://app.example".into()];
    let store = Arc::new(SqliteStore::in_memory().unwrap());
    let state = AppState::new(config, Credentials::new(CRED), store);
    let app = web_server::api::rest_routes(&state)
        .route(
            "/api/ws/probe",
            get(|_: AllowedOrigin, ws: WebSocketUpgrade| async move {
                ws.on_upgrade(|_socket| async {})
            }),
        )
        .with_state(state);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move { axum::serve(listener, app).await });

    async fn upgrade(addr: SocketAddr, origin: Option<&str>) -> String {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut s = TcpStream::connect(addr).await.unwrap();
        let origin = origin
            .map(|o| format!("Origin: {o}\r\n"))
            .unwrap_or_default();
        let req = format!(
            "GET /api/ws/probe HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n{origin}\r\n"
        );
        s.write_all(req.as_bytes()).await.unwrap();
        let mut buf = vec![0u8; 1024];
        let n = timeout(T, s.read(&mut buf)).await.unwrap().unwrap();
        String::from_utf8_lossy(&buf[..n]).to_string()
    }
    assert!(upgrade(addr, Some("https://app.example"))
        .await
        .starts_with("HTTP/1.1 101"));
    assert!(upgrade(addr, None).await.starts_with("HTTP/1.1 101"));
    let refused = upgrade(addr, Some("https://evil.example")).await;
    assert!(refused.starts_with("HTTP/1.1 403"), "{refused}");
    assert!(refused.contains("origin_not_allowed"));
    server.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offline_host_status_and_unreachable_errors() {
    // A port with nothing listening (bound then closed).
    let dead = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let dead_port = dead.local_addr().unwrap().port();
    drop(dead);
    let wol = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let server = start_server(wol.local_addr().unwrap()).await;
    let addr = server.addr;
    let r = call(
        addr,
        Method::POST,
        "/api/hosts",
        Some(json!({"address": "127.0.0.1", "http_port": dead_port})),
    )
    .await;
    let id = r.json()["id"].as_i64().unwrap();
    let r = call(addr, Method::GET, &format!("/api/hosts/{id}/status"), None).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json()["online"], false);
    assert!(r.json()["error"].is_string());
    let r = call(addr, Method::POST, &format!("/api/hosts/{id}/wake"), None).await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    assert_eq!(r.json()["code"], "no_mac");
    let r = call(addr, Method::POST, &format!("/api/hosts/{id}/pair"), None).await;
    let path = r.json()["events"].as_str().unwrap().to_string();
    let events = sse_events(addr, path).await;
    assert_eq!(events.last().unwrap().1["code"], "host_unreachable");
    let r = call(addr, Method::GET, "/api/hosts/abc/status", None).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
}
