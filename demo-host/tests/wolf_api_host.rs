//! Wolf's HTTP API served by a real [`DemoHost`] (real encoder), driven over its Unix socket and
//! TCP with HTTP/1.0 as Wolf's clients speak it, while a `gamestream` client pairs, streams,
//! types and decodes: pairing through `pair/pending` + `pair/client`, apps, clients, sessions
//! carrying the client's `uniqueid` (how moongate's streamer finds its session), lobbies driving
//! the decoded picture, SSE events in order, the input sink and the fault knobs.

mod common;
#[path = "common/wolf_http.rs"]
mod wolf_http;

use std::sync::Arc;
use std::time::Duration;

use demo_host::{DemoHost, DemoHostConfig, WolfApiConfig, WolfApiSocket};
use gamestream::client::{ClientSession, SessionConfig, SessionEvent};
use gamestream::identity::Identity;
use gamestream::nvhttp::{HostAddress, NvHttpClient};
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::sync::mpsc;
use tokio::time::timeout;

use wolf_http::Target;

const WAIT: Duration = Duration::from_secs(20);
const UNIQUE_ID: &str = "moongate-e2e-client-1";

/// One HTTP/1.0 request; returns the status and the JSON body.
async fn call(target: &Target, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    let body = body.map(|b| b.to_string());
    let reply = wolf_http::http10(target, method, path, body.as_deref(), WAIT).await;
    let json = serde_json::from_slice(&reply.body).unwrap_or_else(|e| {
        panic!(
            "{method} {path}: not JSON ({e}): {}",
            String::from_utf8_lossy(&reply.body)
        )
    });
    (reply.status, json)
}

async fn get(target: &Target, path: &str) -> Value {
    let (status, v) = call(target, "GET", path, None).await;
    assert_eq!(
        (status, &v["success"]),
        (200, &json!(true)),
        "GET {path}: {v}"
    );
    v
}

async fn post(target: &Target, path: &str, body: Value) -> Value {
    let (status, v) = call(target, "POST", path, Some(body)).await;
    assert_eq!(
        (status, &v["success"]),
        (200, &json!(true)),
        "POST {path}: {v}"
    );
    v
}

/// Follows `/api/v1/events`: `(event name, data)` in arrival order. The task ends when the server
/// closes the stream; the test aborts it otherwise.
async fn follow_events(
    target: &Target,
) -> (
    mpsc::UnboundedReceiver<(String, Value)>,
    tokio::task::JoinHandle<()>,
) {
    let mut c = target.connect(WAIT).await;
    c.write_all(b"GET /api/v1/events HTTP/1.0\r\nHost: localhost\r\n\r\n")
        .await
        .expect("write");
    let (tx, rx) = mpsc::unbounded_channel();
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
    let task = tokio::spawn(async move {
        let mut lines = BufReader::new(c).lines();
        let mut ready = Some(ready_tx);
        let mut name = None;
        while let Ok(Some(line)) = lines.next_line().await {
            if line.is_empty() {
                // The end of the response head: the subscription is live.
                if let Some(r) = ready.take() {
                    let _ = r.send(());
                }
                continue;
            }
            if let Some(n) = line.strip_prefix("event: ") {
                name = Some(n.to_string());
            } else if let Some(d) = line.strip_prefix("data: ") {
                let data: Value = serde_json::from_str(d).expect("event data is JSON");
                if let Some(n) = name.take() {
                    let _ = tx.send((n, data));
                }
            }
        }
    });
    timeout(WAIT, ready_rx)
        .await
        .expect("events stream did not start")
        .expect("events stream");
    (rx, task)
}

/// Receives events until one named `want` comes; returns every event seen, that one last.
async fn events_until(
    rx: &mut mpsc::UnboundedReceiver<(String, Value)>,
    want: &str,
) -> Vec<(String, Value)> {
    let mut seen = Vec::new();
    timeout(WAIT, async {
        loop {
            let e = rx.recv().await.expect("event stream ended");
            let done = e.0 == want;
            seen.push(e);
            if done {
                return;
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("no {want}; saw {seen:?}"));
    seen
}

fn short(name: &str) -> &str {
    name.rsplit("::").next().unwrap_or(name)
}

fn names(events: &[(String, Value)]) -> Vec<&str> {
    events.iter().map(|(n, _)| short(n)).collect()
}

fn config(dir: &std::path::Path) -> DemoHostConfig {
    DemoHostConfig {
        wolf_api: WolfApiConfig {
            socket: WolfApiSocket::Path(dir.join("wolf.sock")),
            tcp: Some("127.0.0.1:0".parse().unwrap()),
            ..WolfApiConfig::default()
        },
        ..DemoHostConfig::default()
    }
}

fn client(host: &DemoHost) -> Arc<NvHttpClient> {
    let ports = host.ports();
    Arc::new(
        NvHttpClient::new(
            HostAddress::with_ports("127.0.0.1", ports.http, Some(ports.https)),
            Identity::new_client().expect("client identity"),
            None,
        )
        .with_unique_id(UNIQUE_ID),
    )
}

/// The session id of our client, found by `client_unique_id` as moongate's streamer finds it.
async fn our_session(api: &Target) -> String {
    let sessions = get(api, "/api/v1/sessions").await;
    sessions["sessions"]
        .as_array()
        .expect("sessions")
        .iter()
        .find(|s| s["client_unique_id"] == UNIQUE_ID)
        .and_then(|s| s["client_id"].as_str())
        .unwrap_or_else(|| panic!("no session with our uniqueid: {sessions}"))
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wolf_api_drives_a_real_host_end_to_end() {
    timeout(Duration::from_secs(150), async {
        let dir = tempfile::tempdir().unwrap();
        let host = DemoHost::start(config(dir.path())).await.unwrap();
        let socket = host.wolf_api_socket().expect("unix socket").to_path_buf();
        assert_eq!(socket, dir.path().join("wolf.sock"));
        let api = Target::Unix(socket.clone());
        let tcp = Target::Tcp(host.wolf_api_tcp().expect("tcp"));
        let (mut sse, sse_task) = follow_events(&api).await;
        let mut host_events = host.subscribe();

        // Apps, on both transports.
        let apps = get(&api, "/api/v1/apps").await;
        let titles: Vec<&str> = apps["apps"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["title"].as_str().unwrap())
            .collect();
        assert_eq!(titles, ["Test Pattern", "Lobby Desktop"]);
        assert_eq!(apps["apps"][0]["id"], "1");
        assert_eq!(get(&tcp, "/api/v1/apps").await, apps);

        // Pairing with no fixed PIN: the request shows in pair/pending, the API gives the PIN.
        assert_eq!(get(&api, "/api/v1/clients").await["clients"], json!([]));
        let http = client(&host);
        let pairing = tokio::spawn({
            let http = Arc::clone(&http);
            async move { http.pair("5291", "e2e").await }
        });
        // Wolf UI's flow: the PairSignal event, then pair/pending, then pair/client.
        let seen = events_until(&mut sse, "wolf::core::events::PairSignal").await;
        assert_eq!(seen.last().unwrap().1["client_ip"], "127.0.0.1");
        let pending = get(&api, "/api/v1/pair/pending").await;
        let p = &pending["requests"][0];
        assert_eq!(p["client_ip"], "127.0.0.1");
        let secret = p["pair_secret"]
            .as_str()
            .expect("a pending request")
            .to_string();
        let (status, wrong) = call(
            &api,
            "POST",
            "/api/v1/pair/client",
            Some(json!({"pair_secret":"nope","pin":"5291"})),
        )
        .await;
        assert_eq!(
            (status, wrong["error"].as_str()),
            (404, Some("Invalid pair secret"))
        );
        post(
            &api,
            "/api/v1/pair/client",
            json!({"pair_secret": secret, "pin": "5291"}),
        )
        .await;
        timeout(WAIT, pairing)
            .await
            .expect("pairing timed out")
            .unwrap()
            .expect("paired through the API");
        let clients = get(&tcp, "/api/v1/clients").await;
        assert_eq!(
            clients["clients"][0]["client_id"],
            host.paired_clients()[0].client_id.to_string()
        );

        // Applist and box art over NVHTTP agree with the API.
        let nv_apps = http.app_list().await.unwrap();
        assert_eq!(nv_apps.len(), 2);
        let art = http.app_asset(1).await.unwrap();
        assert!(art.starts_with(b"\x89PNG"), "box art is a PNG");
        // apps/add and apps/delete change what /applist shows.
        post(
            &api,
            "/api/v1/apps/add",
            json!({"title": "Extra", "id": "7"}),
        )
        .await;
        let nv_apps = http.app_list().await.unwrap();
        assert!(
            nv_apps.iter().any(|a| a.id == 7 && a.title == "Extra"),
            "{nv_apps:?}"
        );
        assert!(http.app_asset(7).await.unwrap().starts_with(b"\x89PNG"));
        post(&tcp, "/api/v1/apps/delete", json!({"id": "7"})).await;
        assert_eq!(http.app_list().await.unwrap().len(), 2);
        let (status, _) = call(
            &api,
            "POST",
            "/api/v1/apps/delete",
            Some(json!({"id": "7"})),
        )
        .await;
        assert_eq!(status, 404);

        // Stream: the session shows with our uniqueid and the announced format.
        let (session, mut media) = common::stream(&http, 1).await;
        let session_id = common::wait_stream_started(&mut host_events, WAIT).await;
        let sid = our_session(&api).await;
        // As Wolf: the session id is the client's id (the one `/api/v1/clients` lists).
        let client_id = host.sessions()[0].client_id;
        assert_eq!(sid, client_id.to_string());
        assert_eq!(
            get(&api, "/api/v1/clients").await["clients"][0]["client_id"],
            sid.as_str()
        );
        let sessions = get(&tcp, "/api/v1/sessions").await;
        let s = &sessions["sessions"][0];
        assert_eq!(
            (
                &s["app_id"],
                &s["video_width"],
                &s["video_height"],
                &s["video_refresh_rate"],
                &s["client_ip"]
            ),
            (
                &json!("1"),
                &json!(640),
                &json!(360),
                &json!(30),
                &json!("127.0.0.1")
            )
        );
        let seen = events_until(&mut sse, "wolf::core::events::StreamSession").await;
        let started = &seen.last().unwrap().1;
        assert_eq!(started["client_unique_id"], UNIQUE_ID);
        assert_eq!(started["client_id"], sid.as_str());

        // Input: a key press from the client comes back from the input sink.
        common::key_press_reaches_host(&host, &session, session_id, WAIT).await;
        let input = get(&api, &format!("/api/v1/moongate/input?session_id={sid}")).await;
        let first = input["events"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["event"]["type"] == "key_down")
            .unwrap_or_else(|| panic!("no key_down: {input}"))
            .clone();
        assert_eq!(first["event"]["key_code"], 0x41);
        let seq = first["seq"].as_u64().unwrap();
        let later = get(
            &api,
            &format!("/api/v1/moongate/input?session_id={sid}&since={seq}"),
        )
        .await;
        assert!(later["events"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["seq"].as_u64().unwrap() > seq));
        let (status, _) = call(
            &api,
            "GET",
            "/api/v1/moongate/input?session_id=999999",
            None,
        )
        .await;
        assert_eq!(status, 404);

        // Lobbies drive the decoded picture.
        let own = host.sessions()[0].color;
        let mut decoder = openh264::decoder::Decoder::new().unwrap();
        common::wait_band(&mut decoder, &mut media, WAIT, own).await;
        let created = post(
            &api,
            "/api/v1/lobbies/create",
            json!({
                "profile_id": "moongate", "name": "API Lobby", "multi_user": true,
                "stop_when_everyone_leaves": false, "pin": [1, 2, 3, 4],
                "video_settings": {"width": 1280, "height": 720, "refresh_rate": 60},
                "audio_settings": {"channel_count": 2},
                "runner": {"type": "process", "run_cmd": "true"}
            }),
        )
        .await;
        let lobby_id = created["lobby_id"].as_str().unwrap().to_string();
        let lobbies = get(&api, "/api/v1/lobbies").await;
        let l = &lobbies["lobbies"][0];
        assert_eq!(
            (
                &l["id"],
                &l["name"],
                &l["pin_required"],
                &l["started_by_profile_id"]
            ),
            (
                &json!(lobby_id),
                &json!("API Lobby"),
                &json!(true),
                &json!("moongate")
            )
        );
        assert_eq!(l["runner"]["run_cmd"], "true");
        let lobby_color = host.lobbies()[0].color;
        assert!(common::distinct(own, lobby_color));

        let join = json!({"lobby_id": lobby_id, "moonlight_session_id": sid, "pin": [1, 2, 3, 4]});
        let (status, bad_pin) = call(
            &api,
            "POST",
            "/api/v1/lobbies/join",
            Some(json!({"lobby_id": lobby_id, "moonlight_session_id": sid, "pin": [4, 3, 2, 1]})),
        )
        .await;
        assert_eq!(
            (status, bad_pin["error"].as_str()),
            (403, Some("Invalid PIN"))
        );
        let (status, _) = call(
            &api,
            "POST",
            "/api/v1/lobbies/join",
            Some(json!({"lobby_id": "nope", "moonlight_session_id": sid})),
        )
        .await;
        assert_eq!(status, 404);
        post(&api, "/api/v1/lobbies/join", join.clone()).await;
        common::wait_band(&mut decoder, &mut media, WAIT, lobby_color).await;
        assert_eq!(
            get(&api, "/api/v1/lobbies").await["lobbies"][0]["connected_sessions"],
            json!([sid])
        );
        post(
            &tcp,
            "/api/v1/lobbies/leave",
            json!({"lobby_id": lobby_id, "moonlight_session_id": sid}),
        )
        .await;
        common::wait_band(&mut decoder, &mut media, WAIT, own).await;
        post(&api, "/api/v1/lobbies/join", join).await;
        common::wait_band(&mut decoder, &mut media, WAIT, lobby_color).await;
        post(
            &api,
            "/api/v1/lobbies/stop",
            json!({"lobby_id": lobby_id, "pin": [1, 2, 3, 4]}),
        )
        .await;
        common::wait_band(&mut decoder, &mut media, WAIT, own).await;
        assert_eq!(get(&api, "/api/v1/lobbies").await["lobbies"], json!([]));

        // The events of all that, in order.
        let seen = events_until(&mut sse, "wolf::core::events::StopLobbyEvent").await;
        assert_eq!(
            names(&seen),
            [
                "CreateLobbyEvent",
                "JoinLobbyEvent",
                "SwitchStreamProducerEvents",
                "LeaveLobbyEvent",
                "SwitchStreamProducerEvents",
                "JoinLobbyEvent",
                "SwitchStreamProducerEvents",
                "LeaveLobbyEvent",
                "SwitchStreamProducerEvents",
                "StopLobbyEvent",
            ]
        );
        assert_eq!(seen[0].1["profile_id"], "moongate");
        assert!(seen[0].1.get("pin").is_none(), "no PIN on the event stream");
        assert_eq!(seen[1].1["moonlight_session_id"], sid.as_str());
        assert_eq!(seen[2].1["interpipe_src_id"], format!("{lobby_id}_video"));
        assert_eq!(seen[4].1["interpipe_src_id"], format!("{sid}_video"));

        // Faults: knobs read back; refused launches fail with 503 at the client.
        let knobs = post(
            &api,
            "/api/v1/moongate/faults",
            json!({"refuse_launches": true, "drop_pct": 5, "slow_teardown_ms": 0}),
        )
        .await;
        assert_eq!(knobs["faults"]["refuse_launches"], true);
        assert_eq!(knobs["faults"]["drop_pct"], 5.0);
        assert_eq!(host.faults().media().drop_percent(), 5);
        assert_eq!(get(&tcp, "/api/v1/moongate/faults").await, knobs);
        let refused =
            ClientSession::start(Arc::clone(&http), SessionConfig::new(1, common::settings()))
                .await
                .expect_err("launch refused");
        assert!(refused.to_string().contains("503"), "{refused}");
        post(
            &api,
            "/api/v1/moongate/faults",
            json!({"refuse_launches": false, "drop_pct": 0}),
        )
        .await;

        // Stop through the API: the client is told, the event follows, the list empties.
        let (status, _) = call(
            &api,
            "POST",
            "/api/v1/sessions/stop",
            Some(json!({"session_id": "4242424242"})),
        )
        .await;
        assert_eq!(status, 404);
        post(&api, "/api/v1/sessions/stop", json!({"session_id": sid})).await;
        timeout(WAIT, async {
            loop {
                match media.recv().await {
                    Some(SessionEvent::Ended(_)) | None => break,
                    Some(_) => {}
                }
            }
        })
        .await
        .expect("the client saw its stream end");
        let seen = events_until(&mut sse, "wolf::core::events::StopStreamEvent").await;
        assert_eq!(seen.last().unwrap().1["session_id"], sid.as_str());
        assert_eq!(get(&api, "/api/v1/sessions").await["sessions"], json!([]));
        drop(session);

        // Session reuse right after the stop: a new launch streams and is listed again.
        let (_again, mut media2) = common::stream(&http, 1).await;
        common::wait_frame(&mut media2, WAIT, |_| true).await;
        // Wolf gives the same client the same session id again; the input log it names is the
        // new session's.
        let sid2 = our_session(&api).await;
        assert_eq!(sid2, sid);
        assert_ne!(host.sessions()[0].session_id, session_id);
        let fresh = get(&api, &format!("/api/v1/moongate/input?session_id={sid}")).await;
        assert!(
            fresh["events"]
                .as_array()
                .unwrap()
                .iter()
                .all(|r| r["event"]["type"] != "key_down"),
            "the old session's keys are not the new one's: {fresh}"
        );

        // Closing the host ends the event stream and removes the socket.
        host.close().await;
        timeout(WAIT, sse_task)
            .await
            .expect("SSE stream ends with the host")
            .unwrap();
        assert!(!socket.exists(), "socket file removed on close");
    })
    .await
    .expect("test timed out");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_knob_kills_media_and_the_api() {
    timeout(Duration::from_secs(90), async {
        let dir = tempfile::tempdir().unwrap();
        let host = DemoHost::start(DemoHostConfig {
            fixed_pin: Some(common::PIN.into()),
            ..config(dir.path())
        })
        .await
        .unwrap();
        let tcp = Target::Tcp(host.wolf_api_tcp().unwrap());
        let http = common::paired_client(&host).await;
        let (_session, mut media) = common::stream(&http, 1).await;
        common::wait_frame(&mut media, WAIT, |_| true).await;

        let reply = post(&tcp, "/api/v1/moongate/faults", json!({"crash": true})).await;
        assert_eq!(reply["faults"]["crash"], true);
        assert!(host.crash_requested());
        timeout(WAIT, host.wait_crash_requested())
            .await
            .expect("crash is signalled to the owner");
        // The API answers no more calls.
        let (status, _) = call(&tcp, "GET", "/api/v1/sessions", None).await;
        assert_eq!(status, 503);
        // Media stops without a termination: no Ended reaches the client at once.
        let ended = timeout(Duration::from_secs(2), async {
            loop {
                match media.recv().await {
                    Some(SessionEvent::Ended(cause)) => return Some(cause),
                    Some(_) => {}
                    None => return None,
                }
            }
        })
        .await;
        assert!(
            !matches!(ended, Ok(Some(_))),
            "no termination is sent on a crash: {ended:?}"
        );
        // The owner finishes the crash: every listener goes, the socket file too.
        let socket = host.wolf_api_socket().unwrap().to_path_buf();
        host.crash();
        assert!(!socket.exists());
        assert!(
            http.server_info_http().await.is_err() || {
                // The listener task may need a moment to notice its abort.
                timeout(WAIT, async {
                    while http.server_info_http().await.is_ok() {
                        tokio::task::yield_now().await;
                    }
                })
                .await
                .is_ok()
            }
        );
    })
    .await
    .expect("test timed out");
}
