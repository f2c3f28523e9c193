//! Named users end to end: a real gateway with the embedded demo host, users added through the
//! admin API, sign-in over HTTP, roles and host lists enforced on the REST API and on streams
//! (a real `streamer` child), throttled failures, a trusted proxy's user header, and the user
//! store itself on SQLite and on a real `redis-server`.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message as WsMessage;
use web_server::cluster::store::RedisStore;
use web_server::store::SqliteStore;
use web_server::store_key::StoreKey;
use web_server::users::{token_hash, UserRecord, UserRole, UserStore};

/// A gateway like [`admin_gateway`] whose `[users]` trusts the proxies `trusted`.
async fn users_gateway(trusted: &[&str]) -> Gateway {
    let dir = tempfile::tempdir().unwrap();
    let proxies = trusted.join(",");
    let mut config = web_server::config::Config::load_with_env(None, |k| match k {
        "MOONGATE_TRUSTED_PROXIES" => Some(proxies.clone()),
        "MOONGATE_ADMIN_CREDENTIALS" => Some(ADMIN_SECRET.into()),
        _ => None,
    })
    .unwrap();
    config.data_dir = dir.path().to_path_buf();
    config.streamer_path = streamer_exe();
    config.bind = "127.0.0.1:0".parse().unwrap();
    let (host, provided) = web_server::embedded::start_demo_host(&config)
        .await
        .unwrap();
    serve_gateway(config, host, provided, dir).await
}

async fn add_user(gw: &Gateway, name: &str, role: &str, hosts: Value) {
    let r = http(
        gw.addr,
        "POST",
        "/api/admin/users",
        Some(ADMIN_SECRET),
        Some(json!({"name": name, "password": format!("{name}-password"), "role": role, "hosts": hosts})),
    )
    .await;
    assert_eq!(r.status, 201, "adding {name}: {}", r.body);
    assert!(
        !r.body.contains("argon2"),
        "a hash was sent out: {}",
        r.body
    );
}

async fn sign_in(gw: &Gateway, name: &str, password: &str) -> HttpResp {
    http(
        gw.addr,
        "POST",
        "/api/auth/login",
        None,
        Some(json!({"username": name, "password": password})),
    )
    .await
}

/// The token of a successful sign-in with the password [`add_user`] gave.
async fn token(gw: &Gateway, name: &str) -> String {
    let r = sign_in(gw, name, &format!("{name}-password")).await;
    assert_eq!(r.status, 200, "{name} signs in: {}", r.body);
    let v = r.json();
    assert_eq!(v["user"], name);
    assert!(v["expires_at"].as_i64().unwrap() > 1_700_000_000);
    v["token"].as_str().unwrap().to_string()
}

async fn status(gw: &Gateway, method: &str, path: &str, bearer: &str) -> (u16, String) {
    let r = http(gw.addr, method, path, Some(bearer), None).await;
    (r.status, r.body)
}

/// Opens a WebSocket stream with `credential` in the init (no `Authorization` header) and reads
/// what the gateway answers first: `Ok` at ConnectionComplete, `Err(text)` on an error or close.
async fn open_stream(gw: &Gateway, client: &str, credential: &str) -> Result<Ws, String> {
    let url = format!("ws://{}/api/ws/stream?session_id=users", gw.addr);
    let mut ws = upgrade(&url, None, Duration::from_secs(5)).await;
    let mut init: Value = serde_json::from_str(&init_json("users", client, 640, 360, 30)).unwrap();
    init["credentials"] = json!(credential);
    send_ping_and_init(&mut ws, init.to_string()).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        match next_within(&mut ws, deadline - std::time::Instant::now()).await {
            WsMessage::Text(t) if t.contains("ConnectionComplete") => return Ok(ws),
            WsMessage::Text(t) if t.contains("\"error\"") => return Err(t.to_string()),
            WsMessage::Close(c) => return Err(format!("closed: {c:?}")),
            _ => {}
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_sign_in_and_their_role_and_hosts_hold_on_the_api_and_on_streams() {
    let _serial = SERIAL.lock().await;
    let gw = users_gateway(&[]).await;
    let host_id = gw.state.store.list_hosts().await.unwrap()[0].id;

    // Only an admin manages users.
    assert_eq!(status(&gw, "GET", "/api/admin/users", SECRET).await.0, 403);
    assert_eq!(
        http(gw.addr, "GET", "/api/admin/users", None, None)
            .await
            .status,
        401
    );
    add_user(&gw, "alice", "user", Value::Null).await;
    add_user(&gw, "vic", "viewer", Value::Null).await;
    add_user(&gw, "sam", "user", json!([host_id + 1000])).await;
    add_user(&gw, "ada", "admin", Value::Null).await;
    let again = http(
        gw.addr,
        "POST",
        "/api/admin/users",
        Some(ADMIN_SECRET),
        Some(json!({"name": "alice", "password": "another-one", "role": "user"})),
    )
    .await;
    assert_eq!(again.status, 409, "{}", again.body);
    for bad in [
        json!({"name": "a b", "password": "long enough", "role": "user"}),
        json!({"name": "bob", "password": "short", "role": "user"}),
        json!({"name": "bob", "password": "long enough", "role": "root"}),
    ] {
        let r = http(
            gw.addr,
            "POST",
            "/api/admin/users",
            Some(ADMIN_SECRET),
            Some(bad.clone()),
        )
        .await;
        assert!(
            r.status == 400 || r.status == 422,
            "{bad}: {} {}",
            r.status,
            r.body
        );
    }
    let listed = admin_get(&gw, "/api/admin/users").await;
    let names: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["ada", "alice", "sam", "vic"]);
    assert!(!listed.to_string().contains("argon2"));

    // A wrong password and an unknown name get one answer.
    let wrong = sign_in(&gw, "alice", "not-her-password").await;
    let unknown = sign_in(&gw, "nobody", "whatever-it-is").await;
    assert_eq!((wrong.status, unknown.status), (401, 401));
    assert_eq!(wrong.body, unknown.body);

    let alice = token(&gw, "alice").await;
    let vic = token(&gw, "vic").await;
    let sam = token(&gw, "sam").await;
    let ada = token(&gw, "ada").await;
    let me = http(gw.addr, "GET", "/api/auth/me", Some(&alice), None).await;
    assert_eq!(
        me.json(),
        json!({"user": "alice", "role": "user", "hosts": null})
    );

    // Host lists: alice sees the host, sam (limited to another host) sees none and may not use it.
    let hosts = |t: String| {
        let gw = &gw;
        async move {
            let r = http(gw.addr, "GET", "/api/hosts", Some(&t), None).await;
            assert_eq!(r.status, 200, "{}", r.body);
            r.json().as_array().unwrap().len()
        }
    };
    assert_eq!(hosts(alice.clone()).await, 1);
    assert_eq!(hosts(sam.clone()).await, 0);
    let apps = format!("/api/hosts/{host_id}/apps");
    let (code, body) = status(&gw, "GET", &apps, &sam).await;
    assert_eq!(code, 403, "{body}");
    assert!(body.contains("host_not_permitted"), "{body}");
    let add = http(
        gw.addr,
        "POST",
        "/api/hosts",
        Some(&sam),
        Some(json!({"name": "x", "address": "127.0.0.1"})),
    )
    .await;
    assert_eq!(add.status, 403, "{}", add.body);

    // A viewer reads, and changes nothing.
    assert_eq!(hosts(vic.clone()).await, 1);
    let cancel = format!("/api/hosts/{host_id}/cancel");
    let (code, body) = status(&gw, "POST", &cancel, &vic).await;
    assert_eq!(code, 403, "{body}");
    assert!(body.contains("read_only"), "{body}");
    assert_eq!(status(&gw, "GET", "/api/admin/users", &vic).await.0, 403);

    // An admin user is an admin.
    assert_eq!(status(&gw, "GET", "/api/admin/sessions", &ada).await.0, 200);

    // Streams: the viewer and sam are refused with Forbidden / HostNotFound before anything
    // is spawned, a made-up token with Unauthorized; alice streams with her token as the init's credentials.
    let refused = open_stream(&gw, "vic-client", &vic).await.err().unwrap();
    assert!(refused.contains("\"code\":\"Forbidden\""), "{refused}");
    assert!(refused.contains("viewer-only"), "{refused}");
    let refused = open_stream(&gw, "sam-client", &sam).await.err().unwrap();
    assert!(refused.contains("HostNotFound"), "{refused}");
    let refused = open_stream(&gw, "x-client", &"0".repeat(64))
        .await
        .err()
        .unwrap();
    assert!(refused.contains("Unauthorized"), "{refused}");
    let mut ws = open_stream(&gw, "alice-client", &alice)
        .await
        .expect("alice streams");
    first_keyframe(&mut ws, std::time::Instant::now()).await;
    close_until_registry_empty(&gw, &mut ws).await;

    // Signing out ends that token only.
    let other = token(&gw, "alice").await;
    let out = http(gw.addr, "POST", "/api/auth/logout", Some(&alice), None).await;
    assert_eq!(out.status, 204, "{}", out.body);
    assert_eq!(status(&gw, "GET", "/api/auth/me", &alice).await.0, 401);
    assert_eq!(status(&gw, "GET", "/api/auth/me", &other).await.0, 200);
    assert_eq!(status(&gw, "POST", "/api/auth/logout", SECRET).await.0, 400);

    // A changed user signs in again; a removed one cannot.
    let change = http(
        gw.addr,
        "PUT",
        "/api/admin/users/alice",
        Some(ADMIN_SECRET),
        Some(json!({"role": "viewer", "hosts": [host_id]})),
    )
    .await;
    assert_eq!(change.status, 200, "{}", change.body);
    assert_eq!(status(&gw, "GET", "/api/auth/me", &other).await.0, 401);
    let again = token(&gw, "alice").await;
    let me = http(gw.addr, "GET", "/api/auth/me", Some(&again), None).await;
    assert_eq!(
        me.json(),
        json!({"user": "alice", "role": "viewer", "hosts": [host_id]})
    );
    let gone = http(
        gw.addr,
        "DELETE",
        "/api/admin/users/alice",
        Some(ADMIN_SECRET),
        None,
    )
    .await;
    assert_eq!(gone.status, 204);
    assert_eq!(status(&gw, "GET", "/api/auth/me", &again).await.0, 401);
    assert_eq!(sign_in(&gw, "alice", "alice-password").await.status, 401);
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_sign_ins_are_throttled_even_for_the_right_password() {
    let _serial = SERIAL.lock().await;
    let gw = users_gateway(&[]).await;
    add_user(&gw, "bob", "user", Value::Null).await;
    for i in 0..5 {
        let r = sign_in(&gw, "bob", &format!("guess-number-{i}")).await;
        assert_eq!(r.status, 401, "guess {i}: {}", r.body);
    }
    let resp = http_send(
        gw.addr,
        "POST",
        "/api/auth/login",
        None,
        Some(json!({"username": "bob", "password": "bob-password"})),
    )
    .await;
    assert_eq!(resp.status().as_u16(), 429);
    let retry: u64 = resp.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=300).contains(&retry), "Retry-After {retry}");
    // The shared credential still works: only sign-ins are throttled.
    assert_eq!(status(&gw, "GET", "/api/hosts", SECRET).await.0, 200);
    gw.stop().await;
}

/// `GET /api/auth/me` with `X-Forwarded-User: name` and no credential, from 127.0.0.1.
async fn me_via_proxy_header(gw: &Gateway, name: &str) -> (u16, String) {
    raw_http(
        &gw.addr.to_string(),
        &format!(
            "GET /api/auth/me HTTP/1.1\r\nHost: {}\r\nX-Forwarded-User: {name}\r\nConnection: close\r\n\r\n",
            gw.addr
        ),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_proxy_user_header_is_believed_only_from_a_configured_address() {
    let _serial = SERIAL.lock().await;
    let trusting = users_gateway(&["127.0.0.1"]).await;
    add_user(&trusting, "carol", "viewer", Value::Null).await;
    let (code, body) = me_via_proxy_header(&trusting, "carol").await;
    assert_eq!(code, 200, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["user"], "carol");
    assert_eq!(v["role"], "viewer");
    assert_eq!(me_via_proxy_header(&trusting, "mallory").await.0, 401);
    assert_eq!(me_via_proxy_header(&trusting, "bad name").await.0, 401);
    trusting.stop().await;

    // The same request from an address not configured: the header is not read.
    let other = users_gateway(&["127.0.0.2"]).await;
    add_user(&other, "carol", "admin", Value::Null).await;
    let (code, body) = me_via_proxy_header(&other, "carol").await;
    assert_eq!(code, 401, "{body}");
    other.stop().await;
}

/// What both stores must do with users and sign-in sessions.
async fn user_store_contract(store: &dyn UserStore) {
    let user = |name: &str, role, hosts| UserRecord {
        name: name.into(),
        role,
        hosts,
        password_hash: format!("$argon2id$v=19$m=19456,t=2,p=1$salt${name}"),
        created_at: 1_700_000_000,
    };
    store
        .put_user(user("zed", UserRole::User, None))
        .await
        .unwrap();
    store
        .put_user(user("amy", UserRole::Viewer, Some(vec![3, 5])))
        .await
        .unwrap();
    let all = store.list_users().await.unwrap();
    assert_eq!(
        all.iter().map(|u| u.name.as_str()).collect::<Vec<_>>(),
        ["amy", "zed"]
    );
    assert_eq!(all[0], user("amy", UserRole::Viewer, Some(vec![3, 5])));
    // Replacing keeps the creation time and clears a host list.
    let mut changed = user("amy", UserRole::Admin, None);
    changed.created_at = 1;
    store.put_user(changed).await.unwrap();
    let amy = store.get_user("amy").await.unwrap().unwrap();
    assert_eq!(
        (amy.role, amy.hosts, amy.created_at),
        (UserRole::Admin, None, 1_700_000_000)
    );
    assert!(store.get_user("nobody").await.unwrap().is_none());

    let now = web_server::store::now_unix();
    let (live, stale, other) = (token_hash("live"), token_hash("stale"), token_hash("other"));
    store
        .create_session(&live, "amy", now + 3600)
        .await
        .unwrap();
    store
        .create_session(&other, "amy", now + 3600)
        .await
        .unwrap();
    store.create_session(&stale, "zed", now + 1).await.unwrap();
    assert_eq!(
        store.session_user(&live, now).await.unwrap().as_deref(),
        Some("amy")
    );
    // Past its end a session is gone (Redis expires the key itself: wait it out).
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert_eq!(store.session_user(&stale, now + 2).await.unwrap(), None);
    assert!(store.remove_session(&live).await.unwrap());
    assert!(!store.remove_session(&live).await.unwrap());
    assert_eq!(store.session_user(&live, now).await.unwrap(), None);
    assert_eq!(
        store.session_user(&other, now).await.unwrap().as_deref(),
        Some("amy")
    );
    // Removing the user ends their sessions.
    assert!(store.remove_user("amy").await.unwrap());
    assert!(!store.remove_user("amy").await.unwrap());
    assert_eq!(store.session_user(&other, now).await.unwrap(), None);
    assert_eq!(store.list_users().await.unwrap().len(), 1);
    store.remove_user_sessions("zed").await.unwrap();
}

#[tokio::test]
async fn the_user_store_on_sqlite_and_on_redis() {
    let sqlite = SqliteStore::in_memory().unwrap();
    user_store_contract(&sqlite).await;

    let dir = tempfile::tempdir().unwrap();
    let redis = Redis::start(dir.path()).await;
    let client = redis::Client::open(redis.url()).unwrap();
    let conn = redis::aio::ConnectionManager::new(client).await.unwrap();
    let store = Arc::new(RedisStore::new(conn, "mgtest", StoreKey::generate()));
    user_store_contract(store.as_ref()).await;
}
