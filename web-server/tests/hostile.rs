//! Hostile input against a real gateway (embedded demo host, real streamers): every route without
//! a credential and with a wrong one, the user credential on every admin route, spoofed
//! WebSocket origins, path traversal on the static root, malformed and oversized JSON bodies, and
//! random binary frames of every browser message type before and after the init. Each request's
//! status and body are checked, a report of what was tried is printed, and the gateway must still
//! stream afterwards with nothing left behind.

mod common;

use std::time::{Duration, Instant};

use common::*;
use futures_util::SinkExt;
use rand::{Rng, SeedableRng};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message as WsMessage;

/// Every REST route with a method that reaches its handler, as a user or an admin would call it.
const USER_ROUTES: &[(&str, &str)] = &[
    ("GET", "/api/hosts"),
    ("POST", "/api/hosts"),
    ("DELETE", "/api/hosts/1"),
    ("GET", "/api/hosts/1/status"),
    ("POST", "/api/hosts/1/wake"),
    ("POST", "/api/hosts/1/pair"),
    ("GET", "/api/hosts/1/pair/events"),
    ("GET", "/api/hosts/1/apps"),
    ("GET", "/api/hosts/1/apps/1/boxart"),
    ("POST", "/api/hosts/1/cancel"),
    ("GET", "/api/sessions"),
    ("POST", "/api/whep"),
    ("PATCH", "/api/whep/0123"),
    ("DELETE", "/api/whep/0123"),
];

const ADMIN_ROUTES: &[(&str, &str)] = &[
    ("GET", "/api/admin/sessions"),
    ("DELETE", "/api/admin/sessions/a--b"),
    ("GET", "/api/admin/clients"),
    ("GET", "/api/admin/hosts"),
    ("POST", "/api/admin/hosts/1/wolf/sessions/stop"),
    ("GET", "/api/admin/identities"),
    ("DELETE", "/api/admin/identities/1/someone"),
    ("GET", "/api/admin/logs"),
    ("GET", "/api/admin/logs/recent"),
    ("GET", "/metrics"),
];

fn assert_error_body(resp: &HttpResp, code: &str, what: &str) {
    let v = resp.json();
    assert_eq!(v["code"], code, "{what}: {}", resp.body);
    assert!(
        v["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{what}: {}",
        resp.body
    );
}

async fn raw(gw: &Gateway, request: &str) -> (u16, String) {
    raw_http(&gw.addr.to_string(), request).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_route_answers_without_the_right_credential() {
    let _serial = SERIAL.lock().await;
    let gw = admin_gateway().await;
    let mut tried = 0;
    for (method, path) in USER_ROUTES.iter().chain(ADMIN_ROUTES) {
        for bearer in [None, Some("wrong-credential"), Some("")] {
            let resp = http(gw.addr, method, path, bearer, None).await;
            // An empty `Bearer ` is a malformed header (400), the others are 401.
            let (want, code) = match bearer {
                Some("") => (400, "bad_authorization_header"),
                _ => (401, "unauthorized"),
            };
            assert_eq!(
                resp.status, want,
                "{method} {path} with {bearer:?}: {}",
                resp.body
            );
            assert_error_body(&resp, code, &format!("{method} {path}"));
            assert!(!resp.body.contains(SECRET) && !resp.body.contains(ADMIN_SECRET));
            tried += 1;
        }
    }
    for (method, path) in ADMIN_ROUTES {
        let resp = http(gw.addr, method, path, Some(SECRET), None).await;
        assert_eq!(resp.status, 403, "{method} {path} as a user: {}", resp.body);
        tried += 1;
    }
    // The stream sockets: a wrong header is refused before the upgrade; a spoofed origin too.
    for path in ["/api/ws/stream", "/api/host/stream"] {
        for (header, value, want) in [
            ("authorization", "Bearer wrong".to_string(), 401),
            ("origin", "https://evil.example".to_string(), 403),
            ("origin", "null".to_string(), 403),
        ] {
            let mut req = format!("ws://{}{path}", gw.addr)
                .into_client_request()
                .unwrap();
            req.headers_mut().insert(header, value.parse().unwrap());
            match tokio_tungstenite::connect_async(req).await {
                Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => {
                    assert_eq!(resp.status().as_u16(), want, "{path} {header}: {value}")
                }
                other => {
                    panic!("{path} {header}: {value}: upgraded or failed otherwise: {other:?}")
                }
            }
            tried += 1;
        }
    }
    // Open routes stay open and say nothing secret.
    for path in ["/healthz", "/readyz"] {
        let resp = http(gw.addr, "GET", path, None, None).await;
        assert!(
            resp.status == 200 || resp.status == 503,
            "{path}: {}",
            resp.status
        );
        assert!(!resp.body.contains(SECRET));
    }
    figure!(
        "credentials: {tried} requests to {} routes and 2 sockets refused as expected",
        USER_ROUTES.len() + ADMIN_ROUTES.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_static_root_never_serves_a_file_outside_it() {
    let _serial = SERIAL.lock().await;
    let gw = admin_gateway().await;
    let attempts = [
        "/../../../../etc/passwd",
        "/..%2f..%2f..%2f..%2fetc%2fpasswd",
        "/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
        "/assets/../../../../etc/passwd",
        "/assets/..%5c..%5c..%5cetc%5cpasswd",
        "//etc/passwd",
        "/.%2e/.%2e/.%2e/.%2e/etc/passwd",
        "/admin/../../Cargo.toml",
        "/%00/etc/passwd",
    ];
    for path in attempts {
        let (status, body) = raw(
            &gw,
            &format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"),
        )
        .await;
        assert!(!body.contains("root:x:0:0"), "{path} served /etc/passwd");
        assert!(
            !body.contains("[workspace]"),
            "{path} served a file of the repository"
        );
        assert!(status != 0 && status != 500, "{path}: status {status}");
    }
    figure!(
        "path traversal: {} attempts, none left the static root",
        attempts.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_bodies_and_random_frames_get_clear_errors_and_the_gateway_streams_on() {
    let _serial = SERIAL.lock().await;
    let gw = admin_gateway().await;
    let seed: u64 = rand::thread_rng().gen();
    figure!("random frames: seed {seed}");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);

    // JSON bodies: not JSON, the wrong shape, huge strings, deep nesting, an oversized body.
    let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    let bodies: Vec<(String, &str)> = vec![
        ("{".into(), "truncated"),
        ("null".into(), "null"),
        ("[1,2,3]".into(), "an array"),
        (r#"{"address": 5}"#.into(), "a number for a string"),
        (
            format!(r#"{{"address": "{}"}}"#, "a".repeat(200_000)),
            "a 200 kB address",
        ),
        (
            format!(
                r#"{{"address": "10.0.0.9", "name": "{}"}}"#,
                "n".repeat(5000)
            ),
            "a 5000-character name",
        ),
        (
            r#"{"address": "10.0.0.9\u0000x"}"#.into(),
            "a NUL in the address",
        ),
        (
            r#"{"address": "10.0.0.9", "mac": "zz:zz"}"#.into(),
            "a bad MAC",
        ),
        (
            r#"{"address": "10.0.0.9", "http_port": 70000}"#.into(),
            "a port over 65535",
        ),
        (deep, "10 000 levels of nesting"),
        ("x".repeat(3 << 20), "3 MiB of garbage"),
    ];
    for (body, what) in &bodies {
        let (status, text) = raw(
            &gw,
            &format!(
                "POST /api/hosts HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {SECRET}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            ),
        )
        .await;
        assert!(
            (400..500).contains(&status),
            "{what}: status {status}: {text:.200}"
        );
    }
    let hosts_before = http(gw.addr, "GET", "/api/hosts", Some(SECRET), None).await;

    // Binary frames of every type, random lengths, before the init and after it.
    let mut frames_sent = 0;
    for round in 0..2 {
        let mut ws = if round == 0 {
            let mut req = format!("ws://{}/api/ws/stream", gw.addr)
                .into_client_request()
                .unwrap();
            req.headers_mut()
                .insert("authorization", format!("Bearer {SECRET}").parse().unwrap());
            tokio_tungstenite::connect_async(req).await.unwrap().0
        } else {
            let mut ws = connect(&gw, "hostile", "hostile-client", 640, 360, 30).await;
            handshake(&mut ws).await;
            first_keyframe(&mut ws, Instant::now()).await;
            ws
        };
        for ty in 0u8..=255 {
            let len = rng.gen_range(0..600);
            let mut frame = vec![ty];
            frame.extend((0..len).map(|_| rng.gen::<u8>()));
            if ws.send(WsMessage::Binary(frame.into())).await.is_err() {
                break;
            }
            frames_sent += 1;
        }
        // Garbage text too: not JSON, then JSON of the wrong shape.
        let _ = ws.send(WsMessage::Text("{\"type\":".into())).await;
        let _ = ws.send(WsMessage::Text("[\"init\"]".into())).await;
        let (close, _) = read_until_close_or_quiet(&mut ws, Duration::from_secs(3)).await;
        if let Some((code, reason)) = close {
            assert!(
                [1000, 1008, 1011].contains(&code),
                "round {round}: closed {code} {reason}"
            );
        }
        drop(ws);
    }
    assert!(gw.registry_empty(Duration::from_secs(10)).await);
    let hosts_after = http(gw.addr, "GET", "/api/hosts", Some(SECRET), None).await;
    assert_eq!(
        hosts_before.body, hosts_after.body,
        "nothing was lost or added"
    );
    // Still streams.
    let mut ws = connect(&gw, "after", "after-client", 640, 360, 30).await;
    handshake(&mut ws).await;
    first_keyframe(&mut ws, Instant::now()).await;
    drop(ws);
    assert!(gw.registry_empty(Duration::from_secs(10)).await);
    assert_host_free_after(&gw, 1).await;
    figure!(
        "bodies: {} malformed or oversized, all 4xx; frames: {frames_sent} random binary frames of all 256 types before and during a stream; the gateway streamed on",
        bodies.len()
    );
}

/// Reads until a close, `quiet` without any message, or 5 s in all (a socket that ignores
/// garbage stays open; a streaming one keeps sending video).
async fn read_until_close_or_quiet(ws: &mut Ws, quiet: Duration) -> (Option<(u16, String)>, ()) {
    use futures_util::StreamExt;
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let left = deadline
            .saturating_duration_since(Instant::now())
            .min(quiet);
        match tokio::time::timeout(left, ws.next()).await {
            Err(_) => return (None, ()),
            Ok(None) | Ok(Some(Err(_))) => return (None, ()),
            Ok(Some(Ok(WsMessage::Close(c)))) => {
                return (c.map(|c| (u16::from(c.code), c.reason.to_string())), ())
            }
            Ok(Some(Ok(_))) => {}
        }
    }
}
