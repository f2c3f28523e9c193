//! Several gateways as one service: one `redis-server`, two `moongate` processes and one
//! `demo-host` process, all on loopback, as `deploy/compose.yaml` lays them out (without
//! containers). Each test starts its own Redis (own port, own data directory, AOF with
//! `appendfsync always`), its own host and its own nodes.
//!
//! What is shown: a key opened on node B supersedes its stream on node A (A closes 4000, the host
//! never holds two sessions); 50 racing opens of one key across both nodes leave one stream; a
//! `kill -9`ed node's keys stream again through the other within the lease; a client paired via
//! A streams via B with no new pairing; Redis restarted mid-stream loses neither the live stream
//! nor the store.

mod common;

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::{
    first_keyframe, frames_for, handshake, init_json, read_until_close, sibling_exe, streamer_exe,
    OneHostConfig, Redis, Ws, SECRET, SERIAL,
};
use futures_util::StreamExt;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::time::timeout;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use wire::browser::Message;

/// The tests' lease: short, so a dead node's keys come free quickly (the default is 6 s).
const LEASE_SECS: u64 = 4;
const ADMIN: &str = "cluster-admin-secret";

/// A `demo-host` child (Wolf-strict, its Wolf API on a Unix socket) driven through its stdin.
struct Host {
    _child: Child,
    console: common::HostConsole,
    http: u16,
    https: u16,
}

impl Host {
    async fn start(dir: &Path) -> Host {
        let (mut child, http, https, lines) = common::spawn_demo_host(dir).await;
        let console = common::HostConsole::new(&mut child, lines, dir);
        Host {
            _child: child,
            console,
            http,
            https,
        }
    }

    /// `stats` → (sessions open now, most open at once); asserts no Wolf-strict violation.
    async fn sessions(&mut self) -> (usize, usize) {
        let stats = self.console.stats().await;
        let line = &stats.line;
        assert_eq!(stats.get("violations"), 0, "Wolf-strict violations: {line}");
        (stats.get("sessions") as usize, stats.get("peak") as usize)
    }

    async fn reset_peak(&mut self) {
        self.console.command("peak-reset").await;
    }

    /// Clients paired with the host (its Wolf API's `/api/v1/clients`).
    async fn paired_clients(&self) -> usize {
        self.console.paired_clients().await
    }

    async fn wait_sessions(&mut self, n: usize, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        loop {
            if self.sessions().await.0 == n {
                return true;
            }
            if Instant::now() > deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// A `moongate` child: one node of the cluster.
struct Node {
    child: Child,
    addr: String,
    id: String,
}

impl Node {
    async fn start(id: &str, dir: &Path, redis: &Redis, host: &Host) -> Node {
        let data = dir.join(format!("node-{id}"));
        let config = OneHostConfig {
            bind: "127.0.0.1:0",
            host_name: "cluster host",
            http_port: host.http,
            https_port: host.https,
            wolf_api: &host.console.socket,
        }
        .write(&data);
        let mut child = Command::new(sibling_exe("moongate"))
            .arg("--config")
            .arg(&config)
            .env("MOONGATE_DATA_DIR", &data)
            .env("MOONGATE_CREDENTIALS", SECRET)
            .env("MOONGATE_ADMIN_CREDENTIALS", ADMIN)
            .env("MOONGATE_STREAMER", streamer_exe())
            .env("MOONGATE_STORE_KEY", dir.join("store.key"))
            .env("MOONGATE_REDIS_URL", redis.url())
            .env("MOONGATE_NODE_ID", id)
            .env("MOONGATE_REDIS_LEASE_SECS", LEASE_SECS.to_string())
            .env(
                "RUST_LOG",
                std::env::var("MOONGATE_TEST_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("spawn moongate");
        let mut out = BufReader::new(child.stdout.take().unwrap()).lines();
        let addr = timeout(Duration::from_secs(20), async {
            while let Some(line) = out.next_line().await.unwrap() {
                if let Some(rest) = line.strip_prefix("moongate is listening on http://") {
                    return rest.trim_end_matches('/').to_string();
                }
            }
            panic!("moongate {id} exited before listening")
        })
        .await
        .expect("moongate did not start");
        tokio::spawn(async move { while let Ok(Some(_)) = out.next_line().await {} });
        Node {
            child,
            addr,
            id: id.to_string(),
        }
    }

    async fn open(&self, session: &str, client: &str) -> Ws {
        common::connect_at(&self.addr, "", init_json(session, client, 640, 360, 30)).await
    }

    async fn get(&self, path: &str, bearer: &str) -> (u16, String) {
        common::raw_http(
            &self.addr,
            &format!("GET {path} HTTP/1.0\r\nHost: x\r\nAuthorization: Bearer {bearer}\r\n\r\n"),
        )
        .await
    }

    /// The cluster's streams as this node's admin API lists them: (key, node).
    async fn admin_sessions(&self) -> Vec<(String, String)> {
        let (status, body) = self.get("/api/admin/sessions", ADMIN).await;
        assert_eq!(status, 200, "{body}");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        v.as_array()
            .unwrap()
            .iter()
            .map(|s| {
                (
                    s["key"].as_str().unwrap().to_string(),
                    s["node"].as_str().unwrap().to_string(),
                )
            })
            .collect()
    }

    async fn ready(&self) -> bool {
        self.get("/readyz", "").await.0 == 200
    }
}

struct Cluster {
    dir: tempfile::TempDir,
    redis: Redis,
    host: Host,
    a: Node,
    b: Node,
}

async fn cluster() -> Cluster {
    let dir = tempfile::tempdir().unwrap();
    // One store key for every node: each opens the private keys the others sealed.
    let key: String = (0..32)
        .map(|i| format!("{:02x}", (i * 37 + 11) as u8))
        .collect();
    std::fs::write(dir.path().join("store.key"), key).unwrap();
    common::private(&dir.path().join("store.key"), 0o600);
    let redis = Redis::start(dir.path()).await;
    let host = Host::start(dir.path()).await;
    let a = Node::start("a", dir.path(), &redis, &host).await;
    let b = Node::start("b", dir.path(), &redis, &host).await;
    Cluster {
        dir,
        redis,
        host,
        a,
        b,
    }
}

async fn stream_on(node: &Node, session: &str, client: &str) -> (Ws, Duration) {
    let t0 = Instant::now();
    let mut ws = node.open(session, client).await;
    handshake(&mut ws).await;
    let first = first_keyframe(&mut ws, t0).await;
    (ws, first)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_opened_on_b_supersedes_its_stream_on_a() {
    let _serial = SERIAL.lock().await;
    let mut c = cluster().await;
    let (mut on_a, first_a) = stream_on(&c.a, "sesx", "clientx").await;
    assert_eq!(c.host.sessions().await.0, 1);
    // Both nodes' admin APIs list the stream, with the node that runs it.
    for node in [&c.a, &c.b] {
        assert_eq!(
            node.admin_sessions().await,
            vec![("sesx--clientx".to_string(), "a".to_string())],
            "admin view of node {}",
            node.id
        );
    }
    // B's view of A's stream names A's streamer process.
    let (_, rows) = c.b.get("/api/admin/sessions", ADMIN).await;
    let rows: serde_json::Value = serde_json::from_str(&rows).unwrap();
    assert!(rows[0]["pid"].as_u64().is_some_and(|p| p > 1), "{rows}");
    let (_, metrics) = c.b.get("/metrics", ADMIN).await;
    assert!(
        metrics.contains("moongate_cluster_streams{mode=\"websocket\",node=\"a\"} 1"),
        "{metrics}"
    );
    c.host.reset_peak().await;

    let t0 = Instant::now();
    let mut on_b = c.b.open("sesx", "clientx").await;
    let (close, _) = read_until_close(&mut on_a, Duration::from_secs(15)).await;
    let closed_after = t0.elapsed();
    assert_eq!(
        close.map(|c| c.0),
        Some(4000),
        "A closes with 4000 superseded"
    );
    handshake(&mut on_b).await;
    let first_b = first_keyframe(&mut on_b, t0).await;
    assert!(frames_for(&mut on_b, Duration::from_secs(1)).await > 10);
    let (now, peak) = c.host.sessions().await;
    assert_eq!(
        (now, peak),
        (1, 1),
        "the host never held two sessions of the identity"
    );
    assert_eq!(
        c.a.admin_sessions().await,
        vec![("sesx--clientx".to_string(), "b".to_string())]
    );
    println!(
        "cross-node supersede: first keyframe on A {} ms; A closed 4000 after {} ms, B's first keyframe {} ms after its open",
        first_a.as_millis(),
        closed_after.as_millis(),
        first_b.as_millis()
    );
    drop(on_b);
    assert!(c.host.wait_sessions(0, Duration::from_secs(10)).await);
    let empty = common::poll_until(Duration::from_secs(5), || async {
        c.a.admin_sessions().await.is_empty().then_some(())
    })
    .await;
    assert!(empty.is_some(), "the cluster registry empties");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_racing_opens_of_one_key_across_both_nodes_leave_one_stream() {
    let _serial = SERIAL.lock().await;
    let mut c = cluster().await;
    // Pair the client first, so the race is about the key, not about a pairing.
    let (ws, _) = stream_on(&c.a, "warmup", "racer").await;
    drop(ws);
    assert!(c.host.wait_sessions(0, Duration::from_secs(10)).await);
    c.host.reset_peak().await;

    const OPENS: usize = 50;
    let t0 = Instant::now();
    let mut tasks = Vec::new();
    for i in 0..OPENS {
        let node = if i % 2 == 0 { &c.a } else { &c.b };
        let ws = node.open("race", "racer").await;
        tasks.push(tokio::spawn(async move {
            let mut ws = ws;
            // Until the close, or until this one streams (then hand the socket back).
            let deadline = Instant::now() + Duration::from_secs(60);
            loop {
                let left = deadline.saturating_duration_since(Instant::now());
                match timeout(left, ws.next()).await {
                    Err(_) => return (None, None),
                    Ok(None) | Ok(Some(Err(_))) => return (Some(1006), None),
                    Ok(Some(Ok(WsMessage::Close(c)))) => {
                        let code = c.as_ref().map(|c| u16::from(c.code)).unwrap_or(1005);
                        if code != 4000 {
                            eprintln!("racing open closed {code}: {c:?}");
                        }
                        return (Some(code), None);
                    }
                    Ok(Some(Ok(WsMessage::Binary(b)))) => {
                        if let Ok(Message::VideoFrame(f)) = Message::decode(&b) {
                            if f.keyframe {
                                return (None, Some(ws));
                            }
                        }
                    }
                    Ok(Some(Ok(_))) => {}
                }
            }
        }));
    }
    let mut closes: std::collections::BTreeMap<u16, usize> = Default::default();
    let mut streaming = Vec::new();
    for t in tasks {
        match t.await.unwrap() {
            (Some(code), None) => *closes.entry(code).or_default() += 1,
            (None, Some(ws)) => streaming.push(ws),
            _ => panic!("an open was never answered within 60 s"),
        }
    }
    // Streams that got a keyframe before a later open superseded them close now.
    let mut survivors = 0;
    for mut ws in streaming {
        match timeout(Duration::from_secs(3), async {
            loop {
                match ws.next().await {
                    Some(Ok(WsMessage::Close(c))) => return c.map(|c| u16::from(c.code)),
                    None | Some(Err(_)) => return Some(1006),
                    _ => {}
                }
            }
        })
        .await
        {
            Ok(code) => *closes.entry(code.unwrap_or(1005)).or_default() += 1,
            Err(_) => survivors += 1,
        }
    }
    let settled = t0.elapsed();
    let (now, peak) = c.host.sessions().await;
    let listed = common::poll_until(Duration::from_secs(3), || async {
        let l = c.b.admin_sessions().await;
        (l.len() == 1).then_some(l)
    })
    .await
    .unwrap_or_default();
    println!(
        "{OPENS} racing opens of one key over 2 nodes: {survivors} live stream(s), closes {closes:?}, host sessions now {now} (peak {peak}), settled in {} ms",
        settled.as_millis()
    );
    assert_eq!(survivors, 1, "exactly one live stream");
    assert_eq!(
        closes.get(&4000).copied().unwrap_or(0),
        OPENS - 1,
        "every other open was superseded: {closes:?}"
    );
    assert_eq!(now, 1);
    assert_eq!(peak, 1, "the host never held two sessions of the identity");
    assert_eq!(listed.len(), 1, "{listed:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_node_frees_its_keys_within_the_lease() {
    let _serial = SERIAL.lock().await;
    let mut c = cluster().await;
    let (mut on_a, _) = stream_on(&c.a, "sesk", "clientk").await;
    assert!(frames_for(&mut on_a, Duration::from_millis(300)).await > 0);
    c.a.child.start_kill().unwrap();
    let killed = Instant::now();
    let _ = c.a.child.wait().await;
    // The same key, through B, at once: it waits for A's lease, then streams.
    let (mut on_b, first) = stream_on(&c.b, "sesk", "clientk").await;
    let freed_after = killed.elapsed();
    assert!(frames_for(&mut on_b, Duration::from_secs(1)).await > 10);
    let listed = c.b.admin_sessions().await;
    println!(
        "kill -9 of node A: its key streamed again through B {} ms after the kill (lease {LEASE_SECS} s; B's open → keyframe {} ms)",
        freed_after.as_millis(),
        first.as_millis()
    );
    assert!(
        freed_after < Duration::from_secs(LEASE_SECS + 5),
        "freed within the lease (plus launch): {freed_after:?}"
    );
    assert_eq!(listed, vec![("sesk--clientk".to_string(), "b".to_string())]);
    let (now, _) = c.host.sessions().await;
    assert_eq!(now, 1, "A's orphaned stream is gone from the host");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_paired_via_a_streams_via_b_without_pairing_again() {
    let _serial = SERIAL.lock().await;
    let mut c = cluster().await;
    assert_eq!(c.host.paired_clients().await, 0);
    let (ws, _) = stream_on(&c.a, "sesp", "clientp").await;
    drop(ws);
    assert!(c.host.wait_sessions(0, Duration::from_secs(10)).await);
    assert_eq!(c.host.paired_clients().await, 1, "paired once, via A");
    let (mut ws, first) = stream_on(&c.b, "sesp2", "clientp").await;
    assert!(frames_for(&mut ws, Duration::from_millis(500)).await > 0);
    assert_eq!(c.host.paired_clients().await, 1, "no new pairing via B");
    println!(
        "client paired via A streamed via B with no new pairing: first keyframe {} ms",
        first.as_millis()
    );
    // The identity is listed once, cluster-wide, with its use.
    let (status, body) = c.b.get("/api/admin/identities", ADMIN).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body.matches("clientp").count(), 1, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_restarted_mid_stream_loses_neither_the_stream_nor_the_store() {
    let _serial = SERIAL.lock().await;
    let mut c = cluster().await;
    let (mut on_a, _) = stream_on(&c.a, "sesr", "clientr").await;
    let (_, hosts_before) = c.b.get("/api/hosts", SECRET).await;

    c.redis.child.start_kill().unwrap();
    let _ = c.redis.child.wait().await;
    // Redis is gone: the live stream goes on; a new open fails clearly.
    let during = frames_for(&mut on_a, Duration::from_secs(2)).await;
    assert!(!c.b.ready().await, "readyz reports Redis down");
    let mut refused = c.b.open("sesr2", "clientr2").await;
    let (close, _) = read_until_close(&mut refused, Duration::from_secs(15)).await;
    let (code, reason) = close.expect("a close frame");
    assert_eq!(code, 1011, "{reason}");
    c.redis.crash_and_restart(Duration::ZERO).await;
    let back = Instant::now();
    let ready = common::poll_until(Duration::from_secs(10), || async {
        (c.a.ready().await && c.b.ready().await).then_some(())
    })
    .await;
    assert!(ready.is_some(), "both nodes ready again");
    let after = frames_for(&mut on_a, Duration::from_secs(1)).await;
    // The live stream is still the key's owner in the restarted Redis (AOF), seen from B.
    assert_eq!(
        c.b.admin_sessions().await,
        vec![("sesr--clientr".to_string(), "a".to_string())]
    );
    // The store is intact (AOF, fsync always): hosts, the pairing (no new pairing below).
    let (_, hosts_after) = c.b.get("/api/hosts", SECRET).await;
    assert_eq!(hosts_before, hosts_after);
    let paired = c.host.paired_clients().await;
    let (mut on_b, _) = stream_on(&c.b, "sesr3", "clientr").await;
    let _ = on_b.next().await;
    assert_eq!(
        c.host.paired_clients().await,
        paired,
        "client-r was not paired again"
    );
    drop(on_b);
    let (mut new_client, _) = stream_on(&c.b, "sesr4", "clientr4").await;
    assert!(frames_for(&mut new_client, Duration::from_millis(500)).await > 0);
    let listed = c.a.admin_sessions().await;
    println!(
        "Redis killed mid-stream: {during} frames in 2 s while it was down, {after} in 1 s after; nodes ready {} ms after it was back; listed {listed:?}",
        back.elapsed().as_millis()
    );
    assert!(during > 20, "the live stream went on without Redis");
    assert!(after > 10);
    drop(new_client);
    drop(on_a);
    assert!(c.host.wait_sessions(0, Duration::from_secs(10)).await);
    let _ = &c.dir;
}

/// The certificate cache's idle expiry holds cluster-wide: an identity idle on node A for longer
/// than the idle time, but used on node B meanwhile, stays cached on A; without a use anywhere it
/// goes. Two in-process nodes on one Redis. This one runs on the real clock, on a short idle time:
/// B's uses are wall-clock scores in Redis, and a paused tokio clock would jump past the Redis
/// connection's response timeouts whenever the runtime waits for Redis.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_certificate_caches_idle_time_is_cluster_wide() {
    use std::sync::Arc;
    use web_server::certs::{CertCacheConfig, ClientCertCache};
    use web_server::cluster::{connect, Cluster as Node};
    use web_server::config::RedisConfig;
    use web_server::sessions::MemoryRegistry;

    let dir = tempfile::tempdir().unwrap();
    let redis = Redis::start(dir.path()).await;
    let config = |node: &str| RedisConfig {
        url: redis.url(),
        prefix: "certs-test".into(),
        node_id: node.into(),
        lease: Duration::from_secs(LEASE_SECS),
    };
    let join = |c: RedisConfig| async move {
        let (client, conn) = connect(&c).await.unwrap();
        Node::join(
            &c,
            client,
            conn,
            Arc::new(MemoryRegistry::with_node(c.node_id.clone())),
        )
        .await
        .unwrap()
    };
    let (a, b) = (join(config("a")).await, join(config("b")).await);
    let idle = Duration::from_secs(6);
    // The test sweeps by hand; the sweeper's period is the real one and never comes.
    let cache_a = ClientCertCache::new(CertCacheConfig {
        idle_ttl: idle,
        sweep_every: Duration::from_secs(300),
    });
    a.share_cert_cache(cache_a.clone(), idle);
    let used_on_b = cache_a.get_or_create("used-on-b").await.unwrap();
    cache_a.get_or_create("idle-everywhere").await.unwrap();
    // Neither entry has been used on A since.
    let created = tokio::time::Instant::now();

    // 2 idle seconds on A; then B uses one of the two identities.
    tokio::time::sleep_until(created + Duration::from_secs(2)).await;
    let used_at = tokio::time::Instant::now();
    b.touch_client("used-on-b").await;
    // A's next janitor tick (a third of the lease) reads B's use: "used-on-b" becomes the more
    // recently used entry on A, though A itself used it first.
    let read = timeout(Duration::from_secs(LEASE_SECS + 1), async {
        loop {
            let idle_times: std::collections::HashMap<String, Duration> =
                cache_a.idle_times().into_iter().collect();
            if idle_times["used-on-b"] < idle_times["idle-everywhere"] {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    assert!(read.is_ok(), "A's janitor did not read B's use");
    // Past the idle time for A's own uses; well within it since B's.
    tokio::time::sleep_until(created + idle + Duration::from_millis(500)).await;
    cache_a.sweep();
    let evicted = cache_a.stats().evicted;
    let kept: Vec<String> = cache_a.list().into_iter().map(|c| c.client_id).collect();
    println!(
        "after {:?} idle on A (idle time {idle:?}): evicted {evicted}, kept {kept:?} (B used one {:?} ago)",
        created.elapsed(),
        used_at.elapsed()
    );
    assert_eq!(kept, vec!["used-on-b".to_string()]);
    assert_eq!(evicted, 1);
    assert_eq!(
        cache_a.lookup("used-on-b").unwrap().cert_pem,
        used_on_b.cert_pem
    );
    drop((a, b));
}
