//! The admin API end to end: a real gateway with the embedded demo host, real `streamer`
//! children, a WebSocket client speaking the Helix contract, and HTTP requests with the admin and
//! the user credential.

mod common;

use std::time::{Duration, Instant};

use common::*;
use futures_util::SinkExt;
use serde_json::Value;
use tokio_tungstenite::tungstenite::Message as WsMessage;

/// The admin view's row for `key`, if listed.
async fn row(gw: &Gateway, key: &str) -> Option<Value> {
    let list = admin_get(gw, "/api/admin/sessions").await;
    list.as_array()
        .unwrap()
        .iter()
        .find(|s| s["key"] == key)
        .cloned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_is_listed_with_key_pid_and_rates_within_1s_and_gone_within_1s_of_closing() {
    let _serial = SERIAL.lock().await;
    let gw = admin_gateway().await;
    let key = "ses_adm--client_adm";
    let started = Instant::now();
    let mut ws = connect(&gw, "ses_adm", "client_adm", 1280, 720, 30).await;

    // Listed with its key within 1 s of the browser's init (registered before anything is
    // launched), with the streamer pid within 1 s of the stream starting (set at the spawn).
    poll_until(Duration::from_secs(1), || async { row(&gw, key).await })
        .await
        .unwrap_or_else(|| panic!("{key} not listed within 1 s of the init"));
    let listed_ms = started.elapsed().as_millis();
    handshake(&mut ws).await;
    let up = Instant::now();
    let r = poll_until(Duration::from_secs(1), || async {
        row(&gw, key).await.filter(|r| r["pid"].is_u64())
    })
    .await
    .unwrap_or_else(|| panic!("{key} has no pid within 1 s of starting"));
    println!(
        "pid listed {} ms after the stream started",
        up.elapsed().as_millis()
    );
    println!("listed {listed_ms} ms after the init: {r}");
    assert_eq!(r["session_id"], "ses_adm");
    assert_eq!(r["lobby_id"], "");
    assert_eq!(r["client_id"], "client_adm");
    assert_eq!(r["mode"], "websocket");
    assert_eq!(r["app_id"], 1);
    assert_eq!(r["host_name"], "moongate demo host (embedded)");
    let pid = r["pid"].as_u64().unwrap() as u32;
    assert_eq!(
        streamer_children(),
        vec![pid],
        "the pid is our streamer child"
    );
    assert!(
        r["threads"].as_u64().unwrap() >= 1,
        "threads from /proc: {r}"
    );
    assert!(r["rss_kb"].as_u64().unwrap() > 1000, "RSS from /proc: {r}");
    assert!(r["started_at"].as_u64().unwrap() > 1_700_000_000);

    // Rates once two Stats samples arrived (about one a second); media keeps flowing meanwhile.
    let pump = tokio::spawn(async move {
        use futures_util::StreamExt;
        while let Some(Ok(m)) = ws.next().await {
            if matches!(m, WsMessage::Close(_)) {
                break;
            }
        }
        ws
    });
    let r = poll_until(Duration::from_secs(6), || async {
        row(&gw, key)
            .await
            .filter(|r| r["samples"].as_u64() >= Some(2) && r["fps_out"].as_f64() > Some(0.0))
    })
    .await
    .expect("no rates within 6 s");
    println!(
        "fps in {} out {}, {} kbps, queue {} ms, dropped {}, idr {}, first frame {} ms",
        r["fps_in"],
        r["fps_out"],
        r["bitrate_kbps"],
        r["send_queue_ms"],
        r["dropped_frames"],
        r["idr_requests"],
        r["first_frame_ms"]
    );
    assert!(r["fps_in"].as_f64().unwrap() > 10.0, "{r}");
    assert!(r["fps_out"].as_f64().unwrap() > 10.0, "{r}");
    assert!(r["bitrate_kbps"].as_f64().unwrap() > 10.0, "{r}");
    assert!(r["first_frame_ms"].is_u64(), "{r}");
    for field in ["send_queue_ms", "dropped_frames", "idr_requests", "rtt_ms"] {
        assert!(r[field].is_u64(), "{field} missing: {r}");
    }
    // The streamer's control-stream RTT to the host (≥ 1 ms once measured, even on loopback).
    assert!(
        r["rtt_ms"].as_u64() >= Some(1),
        "host RTT not reported: {r}"
    );

    // Close from the browser: gone from the list within 1 s.
    pump.abort();
    let mut ws = connect(&gw, "other", "other_client", 640, 360, 30).await;
    handshake(&mut ws).await;
    let other = "other--other_client";
    assert!(row(&gw, other).await.is_some());
    let closing = Instant::now();
    ws.send(WsMessage::Close(None)).await.unwrap();
    let gone = poll_until(Duration::from_secs(1), || async {
        row(&gw, other).await.is_none().then_some(())
    })
    .await;
    println!(
        "gone {} ms after the browser closed",
        closing.elapsed().as_millis()
    );
    assert!(gone.is_some(), "still listed 1 s after closing");
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_from_the_api_closes_the_socket_4001_and_leaves_no_host_session() {
    let _serial = SERIAL.lock().await;
    let gw = admin_gateway().await;
    let mut ws = connect(&gw, "ses_kill", "client%-kill", 640, 360, 30).await;
    handshake(&mut ws).await;
    let key = "ses_kill--client%25%2Dkill";
    assert!(
        row(&gw, key).await.is_some(),
        "listed under its escaped key"
    );
    assert_eq!(gw.host.sessions().len(), 1);

    let path = format!("/api/admin/sessions/{}", key_path_segment(key));
    let (killed, close) = tokio::join!(
        http(gw.addr, "DELETE", &path, Some(ADMIN_SECRET), None),
        read_until_close(&mut ws, Duration::from_secs(10)),
    );
    assert_eq!(killed.status, 200, "{}", killed.body);
    let k = killed.json();
    println!("kill answered {k}");
    assert_eq!(k["ended"], true);
    assert_eq!(k["key"], key);
    let (frame, error) = close;
    assert_eq!(
        frame,
        Some((4001, "stopped by an administrator".to_string()))
    );
    assert!(error.unwrap().contains("stopped by an administrator"));
    // The one teardown path ran before the entry went: the host session is cancelled.
    assert!(gw.host.sessions().is_empty(), "host session left");
    assert!(streamer_children().is_empty(), "streamer left");
    assert!(row(&gw, key).await.is_none());
    // Gone: a second kill is a 404; a malformed key a 400.
    let again = http(gw.addr, "DELETE", &path, Some(ADMIN_SECRET), None).await;
    assert_eq!(again.status, 404);
    assert_eq!(again.json()["code"], "session_not_found");
    let bad = http(
        gw.addr,
        "DELETE",
        "/api/admin/sessions/nokey",
        Some(ADMIN_SECRET),
        None,
    )
    .await;
    assert_eq!(bad.status, 400);
    let metrics = http(gw.addr, "GET", "/metrics", Some(ADMIN_SECRET), None).await;
    assert!(metrics
        .body
        .contains("moongate_stream_ends_total{reason=\"admin_kill\"} 1"));
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_user_credential_gets_403_on_every_admin_path_and_none_401() {
    let gw = admin_gateway().await;
    let paths = [
        ("GET", "/api/admin/sessions"),
        ("DELETE", "/api/admin/sessions/a-b-c"),
        ("GET", "/api/admin/clients"),
        ("GET", "/api/admin/hosts"),
        ("POST", "/api/admin/hosts/1/wolf/sessions/stop"),
        ("GET", "/api/admin/logs"),
        ("GET", "/api/admin/logs/recent"),
        ("GET", "/metrics"),
    ];
    for (method, path) in paths {
        let user = http(gw.addr, method, path, Some(SECRET), None).await;
        assert_eq!(user.status, 403, "{method} {path} as user: {}", user.body);
        assert_eq!(user.json()["code"], "forbidden");
        let none = http(gw.addr, method, path, None, None).await;
        assert_eq!(none.status, 401, "{method} {path} without credential");
        let wrong = http(gw.addr, method, path, Some("nope"), None).await;
        assert_eq!(wrong.status, 401, "{method} {path} with a wrong credential");
    }
    // The admin credential reaches them (and the user API too).
    for path in [
        "/api/admin/sessions",
        "/api/admin/clients",
        "/api/admin/logs/recent",
        "/api/hosts",
    ] {
        admin_get(&gw, path).await;
    }
    let user_api = http(gw.addr, "GET", "/api/hosts", Some(SECRET), None).await;
    assert_eq!(user_api.status, 200);
    // Health and readiness need no credential.
    assert_eq!(
        http(gw.addr, "GET", "/healthz", None, None).await.status,
        200
    );
    let ready = http(gw.addr, "GET", "/readyz", None, None).await;
    assert_eq!(ready.status, 200, "{}", ready.body);
    assert_eq!(ready.json()["ready"], true);
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_is_503_when_the_streamer_cannot_be_spawned() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = web_server::Config::load_with_env(None, |_| None).unwrap();
    config.data_dir = dir.path().to_path_buf();
    config.streamer_path = dir.path().join("no-such-streamer");
    let (host, provided) = web_server::embedded::start_demo_host(&config)
        .await
        .unwrap();
    let gw = serve_gateway(config, host, provided, dir).await;
    let r = http(gw.addr, "GET", "/readyz", None, None).await;
    assert_eq!(r.status, 503);
    assert_eq!(r.json()["ready"], false);
    assert!(r.body.contains("no-such-streamer"), "{}", r.body);
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_hosts_and_logs_show_the_live_stream() {
    let _serial = SERIAL.lock().await;
    // The binary installs the capture layer in main; here the test does.
    {
        use tracing_subscriber::layer::SubscriberExt;
        use tracing_subscriber::util::SubscriberInitExt;
        use tracing_subscriber::Layer;
        let _ = tracing_subscriber::registry()
            .with(
                web_server::admin::logs::CaptureLayer::default()
                    .with_filter(tracing::level_filters::LevelFilter::INFO),
            )
            .try_init();
    }
    let gw = admin_gateway().await;
    let key = "ses_logs--client_logs";
    let (status, mut live) =
        admin_sse(&gw, "/api/admin/logs?session=ses_logs--client_logs&tail=0").await;
    assert_eq!(status, 200);
    let mut ws = connect(&gw, "ses_logs", "client_logs", 640, 360, 30).await;
    handshake(&mut ws).await;

    // Live log lines of this session arrive on the SSE stream, tagged with the key.
    let text = sse_read_until(&mut live, Duration::from_secs(10), |t| {
        t.contains("streamer spawned")
    })
    .await;
    assert!(text.contains("event: log"), "{text}");
    for data in text.lines().filter_map(|l| l.strip_prefix("data: ")) {
        let line: Value = serde_json::from_str(data).unwrap();
        assert_eq!(line["session"], key, "filtered by session: {line}");
    }
    let recent = admin_get(&gw, &format!("/api/admin/logs/recent?session={key}")).await;
    let recent = recent.as_array().unwrap();
    assert!(!recent.is_empty());
    assert!(recent.iter().all(|l| l["session"] == key));
    // The streamer's own stderr lines are there too (relayed under target `streamer`).
    let streamer_line = poll_until(Duration::from_secs(5), || async {
        let r = admin_get(
            &gw,
            &format!("/api/admin/logs/recent?session={key}&tail=500"),
        )
        .await;
        r.as_array()
            .unwrap()
            .iter()
            .any(|l| l["target"] == "streamer")
            .then_some(())
    })
    .await;
    assert!(streamer_line.is_some(), "no streamer stderr line captured");
    let all = admin_get(&gw, "/api/admin/logs/recent?tail=5").await;
    assert!(all.as_array().unwrap().len() <= 5);
    // The credential never shows up in the captured lines.
    let everything = http(
        gw.addr,
        "GET",
        "/api/admin/logs/recent?tail=2000",
        Some(ADMIN_SECRET),
        None,
    )
    .await;
    for l in everything.json().as_array().unwrap() {
        let t = l.to_string();
        assert!(
            !t.contains(SECRET) && !t.contains(ADMIN_SECRET),
            "secret in a log line: {t}"
        );
    }

    // The certificate cache holds this client's identity.
    let clients = admin_get(&gw, "/api/admin/clients").await;
    let c = clients
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["client_id"] == "client_logs")
        .cloned()
        .unwrap_or_else(|| panic!("client missing: {clients}"));
    println!("client {c}");
    assert!(c["cn"].is_string());
    assert_eq!(c["streams"], 1);
    let expires = c["expires_in_secs"].as_u64().unwrap();
    assert!(expires > 3500 && expires <= 3600, "{c}");
    assert!(c["created_at"].as_u64().unwrap() > 1_700_000_000);

    // The host: online, paired, its apps, and its Wolf API's sessions and lobbies.
    let hosts = admin_get(&gw, "/api/admin/hosts").await;
    let h = &hosts[0];
    println!("host {h}");
    assert_eq!(h["status"]["online"], true, "{h}");
    assert_eq!(h["paired"], true);
    assert_eq!(h["streams"], 1);
    assert!(!h["apps"].as_array().unwrap().is_empty());
    let wolf = &h["wolf"];
    assert!(wolf["error"].is_null(), "{wolf}");
    assert_eq!(wolf["sessions"].as_array().map(Vec::len), Some(1), "{wolf}");
    let ws_session = &wolf["sessions"][0];
    assert!(
        ws_session.get("aes_key").is_none() && ws_session.get("aes_iv").is_none(),
        "{ws_session}"
    );
    assert!(wolf["lobbies"].is_array(), "{wolf}");
    assert!(wolf["pending_pairs"].is_array(), "{wolf}");
    // An unknown Wolf action is refused; a stop of an unknown Wolf session is Wolf's error.
    let bad = http(
        gw.addr,
        "POST",
        "/api/admin/hosts/1/wolf/apps/delete",
        Some(ADMIN_SECRET),
        Some(serde_json::json!({})),
    )
    .await;
    assert_eq!(bad.status, 404);
    drop(ws);
    gw.stop().await;
}
