//! Hosts added through the REST API stream: one without a pairing API (Sunshine-style) through
//! the identity paired with a PIN, where a second browser client supersedes the first (4000); one
//! with a REST-given `wolf_api`, which pairs a fresh client id by itself. Real demo hosts, real
//! `streamer` processes, 127.0.0.1.
//!
//! Needs the streamer binary (`cargo build -p streamer`).

mod common;

use common::*;
use std::sync::Arc;
use std::time::{Duration, Instant};

use demo_host::DemoHost;
use serde_json::json;

/// A Wolf-strict demo host with ephemeral ports; `tcp_api` serves its Wolf API on loopback TCP,
/// otherwise it has no pairing API at all.
async fn extra_host(tcp_api: bool) -> Arc<DemoHost> {
    let wolf_api = if tcp_api {
        demo_host::WolfApiConfig {
            socket: demo_host::WolfApiSocket::Off,
            tcp: Some("127.0.0.1:0".parse().unwrap()),
            ..Default::default()
        }
    } else {
        demo_host::WolfApiConfig::none()
    };
    Arc::new(
        DemoHost::start(demo_host::DemoHostConfig {
            ports: demo_host::PortPlan::Ephemeral,
            wolf_api,
            wolf_strict: true,
            ..demo_host::DemoHostConfig::default()
        })
        .await
        .unwrap(),
    )
}

/// The hosts `GET /api/hosts` lists.
async fn hosts(gw: &Gateway) -> Vec<serde_json::Value> {
    let list = http(gw.addr, "GET", "/api/hosts", Some(SECRET), None)
        .await
        .json();
    list.as_array().unwrap().clone()
}

/// Index of host `id` in `GET /api/hosts` (the streams' `host_id`).
async fn host_index(gw: &Gateway, id: i64) -> u32 {
    hosts(gw)
        .await
        .iter()
        .position(|h| h["id"] == id)
        .expect("host listed") as u32
}

fn init_for(session: &str, client: &str, host_index: u32) -> String {
    init_json(session, client, 640, 360, 30)
        .replace("\"host_id\":0", &format!("\"host_id\":{host_index}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rest_added_host_without_pairing_api_streams_through_the_pin_paired_identity() {
    let _serial = SERIAL.lock().await;
    let gw = gateway().await;
    let host = extra_host(false).await;
    let ports = host.ports();

    // A bad wolf_api is refused with a clear error.
    let r = http(
        gw.addr,
        "POST",
        "/api/hosts",
        Some(SECRET),
        Some(json!({"address": "127.0.0.1", "http_port": ports.http, "wolf_api": "ftp://x"})),
    )
    .await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(r.json()["code"], "invalid_wolf_api", "{}", r.body);

    let r = http(
        gw.addr,
        "POST",
        "/api/hosts",
        Some(SECRET),
        Some(json!({"name": "sunshine-like", "address": "127.0.0.1",
                    "http_port": ports.http, "https_port": ports.https})),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let id = r.json()["id"].as_i64().unwrap();
    assert_eq!(r.json()["wolf_api"], serde_json::Value::Null);
    let index = host_index(&gw, id).await;

    // Not paired yet: a clear error, not a Debug text.
    let mut ws = connect_init(&gw, "ses_np", init_for("ses_np", "browser-a", index)).await;
    let (close, error) = read_until_close(&mut ws, Duration::from_secs(20)).await;
    assert_eq!(close.as_ref().map(|c| c.0), Some(1011), "{close:?}");
    let error = error.expect("an error message");
    assert!(error.contains("pair this host first"), "{error}");

    // Pair once with the PIN, entered on the host by hand.
    let r = http(
        gw.addr,
        "POST",
        &format!("/api/hosts/{id}/pair"),
        Some(SECRET),
        None,
    )
    .await;
    assert!(r.status == 200 || r.status == 202, "{}", r.body);
    let pin = r.json()["pin"].as_str().unwrap().to_string();
    assert!(
        eventually(Duration::from_secs(10), || host.submit_pin(&pin)).await,
        "the host never asked for the PIN"
    );
    let paired = poll_until(Duration::from_secs(15), || async {
        hosts(&gw)
            .await
            .iter()
            .any(|h| h["id"] == id && h["paired"] == true)
            .then_some(())
    })
    .await;
    assert!(paired.is_some(), "not paired");

    // Two browser clients one after the other: the second supersedes the first.
    let mut a = connect_init(&gw, "ses_a", init_for("ses_a", "browser-a", index)).await;
    handshake(&mut a).await;
    first_keyframe(&mut a, Instant::now()).await;
    assert_eq!(host.sessions().len(), 1);
    let mut b = connect_init(&gw, "ses_b", init_for("ses_b", "browser-b", index)).await;
    let (close, _) = read_until_close(&mut a, Duration::from_secs(15)).await;
    assert_eq!(close, Some((4000, "superseded".to_string())));
    handshake(&mut b).await;
    first_keyframe(&mut b, Instant::now()).await;
    assert_eq!(host.sessions().len(), 1, "{:?}", host.sessions());
    assert_eq!(gw.state.sessions.list().len(), 1);
    let _ = futures_util::SinkExt::close(&mut b).await;
    drop(b);
    assert!(gw.registry_empty(Duration::from_secs(10)).await);
    assert!(
        eventually(Duration::from_secs(10), || host.sessions().is_empty()).await,
        "host session left: {:?}",
        host.sessions()
    );
    assert_eq!(host.disconnects_after_cancel(), 0);
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rest_added_wolf_api_host_pairs_a_fresh_client_by_itself() {
    let _serial = SERIAL.lock().await;
    let gw = gateway().await;
    let host = extra_host(true).await;
    let ports = host.ports();
    let api = host.wolf_api_tcp().expect("Wolf API on TCP");
    let location = format!("http://{api}");
    let r = http(
        gw.addr,
        "POST",
        "/api/hosts",
        Some(SECRET),
        Some(
            json!({"name": "wolf", "address": "127.0.0.1", "http_port": ports.http,
                    "https_port": ports.https, "wolf_api": location}),
        ),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let id = r.json()["id"].as_i64().unwrap();
    let list = http(gw.addr, "GET", "/api/hosts", Some(SECRET), None)
        .await
        .json();
    let listed = list
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["id"] == id)
        .unwrap()
        .clone();
    assert_eq!(listed["wolf_api"], location.as_str());
    let index = host_index(&gw, id).await;

    let client = format!("fresh-{}", std::process::id());
    let mut ws = connect_init(&gw, "ses_w", init_for("ses_w", &client, index)).await;
    handshake(&mut ws).await;
    first_keyframe(&mut ws, Instant::now()).await;
    assert_eq!(
        host.paired_clients().len(),
        1,
        "the fresh client was paired"
    );
    let _ = futures_util::SinkExt::close(&mut ws).await;
    drop(ws);
    assert!(gw.registry_empty(Duration::from_secs(10)).await);
    assert!(
        eventually(Duration::from_secs(10), || host.sessions().is_empty()).await,
        "host session left"
    );
    gw.stop().await;
}
