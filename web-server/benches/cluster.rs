//! The cluster benchmark: what the Redis registry adds to a stream open, and how long a
//! supersede across nodes takes (figures, not a pass/fail test).
//!
//! `cargo bench -p web-server --bench cluster`. Starts its own `redis-server` on a free loopback
//! port (AOF with `appendfsync always`, the setting `deploy/` recommends), and two cluster nodes
//! in this process, each with its own registry. Three rounds, so the spread shows:
//!
//! * **open**: the claim of a key (one Lua compare-and-set), plus the check for a previous owner:
//!   the cost a stream open pays in Redis mode on top of a single node;
//! * **supersede**: node B claims a key live on node A and waits until A's stream has ended. A's
//!   stream ends the moment it is asked to stop (no streamer here), so this is the registry's
//!   share of a real supersede: B's claim, the stop published to A, A's release, B woken.
//!
//! The end-to-end figures with real streamers and a host are printed by `tests/cluster.rs`.

#[path = "../tests/common/loopback.rs"]
mod loopback;

use std::sync::Arc;
use std::time::{Duration, Instant};

use web_server::cluster::{connect, Cluster};
use web_server::config::RedisConfig;
use web_server::sessions::{MemoryRegistry, SessionKey, SessionMeta, SessionRegistry};

const OPENS: usize = 2000;
const SUPERSEDES: usize = 300;
const ROUNDS: usize = 3;

fn percentile(sorted: &[u64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i] as f64 / 1000.0
}

struct Node {
    registry: Arc<MemoryRegistry>,
    cluster: Cluster,
}

async fn node(url: &str, id: &str) -> Node {
    let config = RedisConfig {
        url: url.to_string(),
        prefix: "bench".into(),
        node_id: id.into(),
        lease: Duration::from_secs(6),
    };
    let (client, conn) = connect(&config).await.expect("redis");
    let registry = Arc::new(MemoryRegistry::with_node(id));
    let shared: Arc<dyn SessionRegistry> = registry.clone();
    let cluster = Cluster::join(&config, client, conn, shared)
        .await
        .expect("join");
    Node { registry, cluster }
}

fn meta() -> SessionMeta {
    SessionMeta {
        host_id: 1,
        app_id: 1,
        mode: "websocket".into(),
        remote: None,
    }
}

/// Claim + previous-owner check for `OPENS` fresh keys, one after another (µs each, sorted).
async fn opens(a: &Node, round: usize) -> Vec<u64> {
    let mut times = Vec::with_capacity(OPENS);
    for i in 0..OPENS {
        let key = SessionKey::new(format!("open{round}x{i}"), "", "client").unwrap();
        let mut guard = a.registry.register(key, meta()).guard;
        let t0 = Instant::now();
        let claimed = a.cluster.claim(&mut guard).await.expect("claim");
        a.cluster
            .supersede_previous(&claimed, Duration::from_secs(5))
            .await
            .expect("no previous");
        times.push(t0.elapsed().as_micros() as u64);
        drop(guard);
    }
    times.sort_unstable();
    times
}

/// B takes over a key that A streams; A's stream ends as soon as it is asked (µs each, sorted).
async fn supersedes(a: &Node, b: &Node, round: usize) -> Vec<u64> {
    let mut times = Vec::with_capacity(SUPERSEDES);
    for i in 0..SUPERSEDES {
        let key = SessionKey::new(format!("sup{round}x{i}"), "", "client").unwrap();
        let mut on_a = a.registry.register(key.clone(), meta()).guard;
        a.cluster.claim(&mut on_a).await.expect("claim on A");
        let ended = tokio::spawn(async move {
            on_a.stopped().await;
            drop(on_a);
        });
        let mut on_b = b.registry.register(key, meta()).guard;
        let t0 = Instant::now();
        let claimed = b.cluster.claim(&mut on_b).await.expect("claim on B");
        b.cluster
            .supersede_previous(&claimed, Duration::from_secs(5))
            .await
            .expect("A's stream ends");
        times.push(t0.elapsed().as_micros() as u64);
        ended.await.unwrap();
        drop(on_b);
    }
    times.sort_unstable();
    times
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let dir = tempfile::tempdir().unwrap();
    let mut redis = loopback::Redis::start(dir.path()).await;
    let url = redis.url();
    let a = node(&url, "bench-a").await;
    let b = node(&url, "bench-b").await;

    println!(
        "cluster registry on one redis-server (AOF, appendfsync always), loopback, {ROUNDS} rounds"
    );
    let mut open_p50 = Vec::new();
    let mut open_p99 = Vec::new();
    let mut sup_p50 = Vec::new();
    let mut sup_p99 = Vec::new();
    for round in 0..ROUNDS {
        let o = opens(&a, round).await;
        let s = supersedes(&a, &b, round).await;
        println!(
            "round {}: open (claim) p50 {:.3} ms p99 {:.3} ms over {OPENS}; cross-node supersede p50 {:.3} ms p99 {:.3} ms over {SUPERSEDES}",
            round + 1,
            percentile(&o, 0.5),
            percentile(&o, 0.99),
            percentile(&s, 0.5),
            percentile(&s, 0.99)
        );
        open_p50.push(percentile(&o, 0.5));
        open_p99.push(percentile(&o, 0.99));
        sup_p50.push(percentile(&s, 0.5));
        sup_p99.push(percentile(&s, 0.99));
    }
    let range = |v: &[f64]| {
        let min = v.iter().cloned().fold(f64::INFINITY, f64::min);
        let max = v.iter().cloned().fold(0.0, f64::max);
        format!("{min:.3}–{max:.3} ms")
    };
    println!(
        "added cost per stream open: p50 {}, p99 {} (range over rounds)",
        range(&open_p50),
        range(&open_p99)
    );
    println!(
        "supersede across nodes (registry share): p50 {}, p99 {}",
        range(&sup_p50),
        range(&sup_p99)
    );
    drop((a, b));
    let _ = redis.child.kill().await;
}
