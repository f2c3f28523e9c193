//! Several gateways as one service, coordinated through Redis.
//!
//! Each node keeps its own [`crate::sessions::MemoryRegistry`]: guards, stop signals and
//! streamer processes are local things. What the nodes must agree on lives in Redis:
//!
//! * **Who owns a session key.** A stream claims its key with a compare-and-set script
//!   ([`scripts::claim`]) that hands back the previous owner. If that owner runs on another node,
//!   this node publishes a stop to it and waits until the old stream has *ended* (its streamer
//!   gone, its host session cancelled: the node releases only after its whole teardown) before
//!   launching, so the host never sees two streams of one identity. Racing opens of one key all
//!   go through the same script: each supersedes the one before, and the last one stands.
//! * **Which nodes are alive.** Each node renews a lease (`p:node:<id>`) every third of the
//!   lease time. When it stops (crash, `kill -9`, a partition) the lease expires, and any node
//!   frees its streams' keys ([`scripts::collect_garbage`]); a superseding open that was waiting
//!   for such a node proceeds as soon as the lease is gone.
//! * **Missed messages.** Pub/sub is fire-and-forget, so every tick a node also checks each of
//!   its streams against the owner recorded in Redis ([`scripts::reassert`]): one whose key now
//!   has a newer owner stops, and one whose record vanished (a Redis restart without the data, a
//!   lease that lapsed during an outage) is recorded again.
//!
//! While Redis is unreachable, running streams go on; new streams fail with a clear error
//! (`ClusterUnavailable`) until it is back. Releases that could not be written are retried.
//!
//! This file holds the data model and the public [`Cluster`] API; the node's own Redis-side work
//! and background tasks are in `cluster/node.rs`.

mod node;
mod scripts;
pub mod store;
mod users;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures_util::StreamExt;
use redis::aio::ConnectionManager;
use redis::AsyncCommands;
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;

use crate::certs::ClientCertCache;
use crate::config::{redact_url, RedisConfig};
use crate::sessions::{
    SessionGuard, SessionInfo, SessionKey, SessionMeta, SessionRegistry, StopReason,
};
use node::{janitor, lease_keeper, subscriber};

/// Cluster errors.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// Redis failed or is unreachable.
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    /// A value in Redis is not what this version writes.
    #[error("corrupt cluster record: {0}")]
    Corrupt(String),
    /// The stream this one supersedes did not end in time.
    #[error("the previous stream of {key} on node {node} did not end in time")]
    Timeout {
        /// The key.
        key: String,
        /// The node that runs it.
        node: String,
    },
}

/// One stream as recorded in Redis (the value after `"<gen>|"`).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct StoredEntry {
    node: String,
    entry_id: u64,
    started_at: u64,
    host_id: i64,
    app_id: u32,
    mode: String,
    remote: Option<String>,
    /// The streamer's pid on its node, once launched.
    #[serde(default)]
    streamer_pid: Option<u32>,
}

impl StoredEntry {
    fn of(info: &SessionInfo) -> Self {
        StoredEntry {
            node: info.node.clone(),
            entry_id: info.entry_id,
            started_at: info.started_at,
            host_id: info.meta.host_id,
            app_id: info.meta.app_id,
            mode: info.meta.mode.clone(),
            remote: info.meta.remote.clone(),
            streamer_pid: None,
        }
    }
}

/// Parses a sessions-hash value `"<gen>|<json>"`.
fn parse_value(value: &str) -> Result<(u64, StoredEntry), ClusterError> {
    let (gen, json) = value
        .split_once('|')
        .ok_or_else(|| ClusterError::Corrupt("session value without a generation".into()))?;
    let gen = gen
        .parse()
        .map_err(|_| ClusterError::Corrupt(format!("generation {gen:?}")))?;
    let entry = serde_json::from_str(json)
        .map_err(|e| ClusterError::Corrupt(format!("session entry: {e}")))?;
    Ok((gen, entry))
}

/// A command to one node, on its channel.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
enum Command {
    /// Stop the stream of `key` claimed as `gen`.
    Stop {
        key: String,
        gen: u64,
        reason: StopReason,
    },
}

/// A stream of the whole cluster, as the admin view and `/metrics` list it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterSession {
    /// Its claim's generation (cluster-wide order of opens).
    pub gen: u64,
    /// The entry; `node` says where it runs.
    pub info: SessionInfo,
    /// The streamer's pid on that node, once launched.
    pub streamer_pid: Option<u32>,
}

/// A claim just written: its key and generation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claimed {
    /// The claim's generation.
    pub gen: u64,
    key: String,
}

/// A stream of this node that holds a claim.
#[derive(Debug, Clone)]
struct LocalClaim {
    key: SessionKey,
    entry_id: u64,
    json: String,
}

/// Counters for `/metrics`.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ClusterStats {
    /// Claims written.
    pub claims: u64,
    /// Streams of other nodes this node superseded (same key or same identity).
    pub remote_supersedes: u64,
    /// Stops this node received from others.
    pub stops_received: u64,
    /// Keys freed from dead nodes by this node's garbage collection.
    pub keys_freed: u64,
    /// Redis operations that failed.
    pub redis_errors: u64,
}

struct Inner {
    node: String,
    prefix: String,
    lease: Duration,
    conn: ConnectionManager,
    registry: Arc<dyn SessionRegistry>,
    claims: Mutex<HashMap<u64, LocalClaim>>,
    /// Stops that arrived before the claim's reply did (gen → reason).
    early_stops: Mutex<HashMap<u64, StopReason>>,
    /// Releases that could not be written (Redis down); retried each tick.
    unreleased: Mutex<Vec<(String, u64)>>,
    released: broadcast::Sender<u64>,
    stats: Mutex<ClusterStats>,
    certs: Mutex<Option<(ClientCertCache, Duration)>>,
}

/// A handle on this node's membership in the cluster (cheap to clone). The background tasks
/// (lease, subscriber, janitor) end when the last handle is dropped.
#[derive(Clone)]
pub struct Cluster {
    inner: Arc<Inner>,
    _tasks: Arc<TaskGuard>,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("node", &self.inner.node)
            .field("prefix", &self.inner.prefix)
            .finish_non_exhaustive()
    }
}

/// Aborts the background tasks when the last [`Cluster`] handle goes.
struct TaskGuard(Vec<tokio::task::JoinHandle<()>>);

impl Drop for TaskGuard {
    fn drop(&mut self) {
        for t in &self.0 {
            t.abort();
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Single inserts and removes under these locks: a poisoned map is still consistent.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Opens a connection manager on `config.url`; commands fail within about a second while Redis
/// is unreachable (they never hang a request), and it reconnects by itself.
pub async fn connect(
    config: &RedisConfig,
) -> Result<(redis::Client, ConnectionManager), ClusterError> {
    let client = redis::Client::open(config.url.as_str())?;
    let settings = redis::aio::ConnectionManagerConfig::new()
        .set_connection_timeout(Some(Duration::from_millis(1000)))
        .set_response_timeout(Some(Duration::from_millis(1000)))
        .set_number_of_retries(1)
        .set_max_delay(Duration::from_millis(500));
    let conn = client.get_connection_manager_with_config(settings).await?;
    Ok((client, conn))
}

impl Cluster {
    /// Joins the cluster: takes this node's lease and starts the lease renewal, the command
    /// subscriber and the janitor. Fails if Redis cannot be reached or the node id is taken by a
    /// live node.
    pub async fn join(
        config: &RedisConfig,
        client: redis::Client,
        conn: ConnectionManager,
        registry: Arc<dyn SessionRegistry>,
    ) -> Result<Cluster, ClusterError> {
        let inner = Arc::new(Inner {
            node: config.node_id.clone(),
            prefix: config.prefix.clone(),
            lease: config.lease,
            conn,
            registry,
            claims: Mutex::default(),
            early_stops: Mutex::default(),
            unreleased: Mutex::default(),
            released: broadcast::channel(256).0,
            stats: Mutex::default(),
            certs: Mutex::new(None),
        });
        // The lease first: NX, so a second process with the same node id fails clearly instead
        // of the two taking each other's streams for their own.
        let mut conn = inner.conn.clone();
        let taken: Option<String> = redis::cmd("SET")
            .arg(inner.node_key(&inner.node))
            .arg(unix_ms())
            .arg("NX")
            .arg("PX")
            .arg(inner.lease.as_millis() as u64)
            .query_async(&mut conn)
            .await?;
        if taken.is_none() {
            return Err(ClusterError::Corrupt(format!(
                "node id {:?} is held by a live node (set a unique MOONGATE_NODE_ID, or wait {} s for its lease to expire)",
                inner.node,
                inner.lease.as_secs()
            )));
        }
        let subscriber = tokio::spawn(subscriber(Arc::downgrade(&inner), client));
        let janitor = tokio::spawn(janitor(Arc::downgrade(&inner)));
        let lease = tokio::spawn(lease_keeper(Arc::downgrade(&inner)));
        tracing::info!(node = %inner.node, redis = %redact_url(&config.url), lease_secs = inner.lease.as_secs(), "joined the cluster");
        Ok(Cluster {
            inner,
            _tasks: Arc::new(TaskGuard(vec![subscriber, janitor, lease])),
        })
    }

    /// This node's id.
    pub fn node(&self) -> &str {
        &self.inner.node
    }

    /// The lease: how long a dead node's keys stay taken.
    pub fn lease(&self) -> Duration {
        self.inner.lease
    }

    /// Counters.
    pub fn stats(&self) -> ClusterStats {
        *lock(&self.inner.stats)
    }

    /// Keeps the idle time of `certs`'s entries cluster-wide: a client used on another node
    /// within `idle_ttl` is not evicted here ([`Cluster::touch_client`] records uses).
    pub fn share_cert_cache(&self, certs: ClientCertCache, idle_ttl: Duration) {
        *lock(&self.inner.certs) = Some((certs, idle_ttl));
    }

    /// Records that `client_id`'s identity was used now (the certificate cache's shared index).
    pub async fn touch_client(&self, client_id: &str) {
        let mut conn = self.inner.conn.clone();
        let r: Result<(), _> = conn
            .zadd(self.inner.key("certs"), client_id, unix_ms())
            .await;
        if let Err(e) = r {
            self.inner.redis_error("recording a client's use", &e);
        }
    }

    /// Claims `guard`'s key for this node (one compare-and-set); the claim is released when
    /// `guard` is dropped, whatever ends the stream. Then [`Cluster::supersede_previous`] stops
    /// and awaits the stream it took the key from.
    pub async fn claim(&self, guard: &mut SessionGuard) -> Result<Claimed, ClusterError> {
        let inner = &self.inner;
        let info = guard.info().clone();
        let key_text = info.key.to_string();
        let json = serde_json::to_string(&StoredEntry::of(&info))
            .map_err(|e| ClusterError::Corrupt(e.to_string()))?;
        let mut conn = inner.conn.clone();
        let (gen, old): (u64, String) = scripts::claim()
            .key(inner.key("gen"))
            .key(inner.key("sessions"))
            .key(inner.key("live"))
            .arg(&key_text)
            .arg(&json)
            .arg(format!("{}|{key_text}", inner.node))
            .invoke_async(&mut conn)
            .await
            .inspect_err(|e| inner.redis_error("claiming a session key", e))?;
        lock(&inner.stats).claims += 1;
        // Under the claims lock (the order the command handler takes too): a stop for this gen
        // is either seen by the handler in `claims`, or already waiting in `early_stops`.
        let early_stop = {
            let mut claims = lock(&inner.claims);
            claims.insert(
                gen,
                LocalClaim {
                    key: info.key.clone(),
                    entry_id: info.entry_id,
                    json,
                },
            );
            lock(&inner.early_stops).remove(&gen)
        };
        let weak = Arc::downgrade(inner);
        let release_key = key_text.clone();
        guard.on_drop(move || {
            if let Some(inner) = weak.upgrade() {
                lock(&inner.claims).remove(&gen);
                tokio::spawn(async move { inner.release(release_key, gen).await });
            }
        });
        // A newer claim's stop may have arrived before this reply.
        if let Some(reason) = early_stop {
            guard.request_stop(reason);
        }
        if !old.is_empty() {
            // The owner this claim replaced (supersede_previous stops it with any older one).
            let (old_gen, entry) = parse_value(&old)?;
            tracing::debug!(key = %key_text, old_gen, node = %entry.node, "claimed a key that had an owner");
        }
        Ok(Claimed { gen, key: key_text })
    }

    /// Stops every older stream of `claimed`'s key still running on another node (the one it
    /// took the key from, and any that one was itself still waiting for) and waits until all of
    /// them have ended, or their node is dead. The host then never sees two streams of one
    /// identity, however many opens of the key raced.
    pub async fn supersede_previous(
        &self,
        claimed: &Claimed,
        limit: Duration,
    ) -> Result<(), ClusterError> {
        // Not only the owner this claim replaced: an older stream may still be ending after
        // its successor gave up the key before launching (racing opens).
        let inner = &self.inner;
        let older = inner
            .live_where(|gen, _, key| key == claimed.key && gen < claimed.gen)
            .await?;
        for (gen, node, _) in &older {
            if *node != inner.node {
                tracing::info!(key = %claimed.key, %node, "superseding the stream of this key on another node");
                lock(&inner.stats).remote_supersedes += 1;
                inner
                    .send_stop(node, &claimed.key, *gen, StopReason::Superseded)
                    .await;
            }
        }
        // Same node: the local registry has stopped them already; their release may still be
        // on its way.
        let me = claimed.gen;
        let key = claimed.key.clone();
        inner
            .await_ended(&claimed.key, limit, move |gen, _, k| k == key && gen < me)
            .await
    }

    /// Records the streamer's pid in the key's entry (the cluster view names the process that
    /// serves each stream). A failure only loses that detail.
    pub async fn record_streamer(&self, claimed: &Claimed, pid: u32) {
        let inner = &self.inner;
        let json = {
            let mut claims = lock(&inner.claims);
            let Some(claim) = claims.get_mut(&claimed.gen) else {
                return;
            };
            let Ok(mut entry) = serde_json::from_str::<StoredEntry>(&claim.json) else {
                return;
            };
            entry.streamer_pid = Some(pid);
            let Ok(json) = serde_json::to_string(&entry) else {
                return;
            };
            claim.json = json.clone();
            json
        };
        let mut conn = inner.conn.clone();
        let r: Result<i64, _> = scripts::update()
            .key(inner.key("sessions"))
            .arg(&claimed.key)
            .arg(claimed.gen)
            .arg(json)
            .invoke_async(&mut conn)
            .await;
        if let Err(e) = r {
            inner.redis_error("recording a streamer", &e);
        }
    }

    /// Stops, on other nodes, every older stream of the same identity on the same host as
    /// `guard`'s (lesson 4 across the cluster): the same client id, or any client when the host
    /// has one shared identity. Local ones are the local registry's business.
    pub async fn supersede_identity(
        &self,
        guard: &SessionGuard,
        gen: u64,
        shared_identity: bool,
        limit: Duration,
    ) -> Result<(), ClusterError> {
        let me = guard.info();
        let older: Vec<ClusterSession> = self
            .list()
            .await?
            .into_iter()
            .filter(|s| {
                s.info.node != self.inner.node
                    && s.gen < gen
                    && s.info.key != me.key
                    && s.info.meta.host_id == me.meta.host_id
                    && (shared_identity || s.info.client_id == me.client_id)
            })
            .collect();
        for old in &older {
            tracing::info!(key = %old.info.key, node = %old.info.node, new = %me.key, "superseding this identity's stream on another node");
            lock(&self.inner.stats).remote_supersedes += 1;
            self.inner
                .send_stop(
                    &old.info.node,
                    &old.info.key.to_string(),
                    old.gen,
                    StopReason::Superseded,
                )
                .await;
        }
        for old in &older {
            self.inner
                .await_release(&old.info.key.to_string(), old.gen, limit)
                .await?;
        }
        Ok(())
    }

    /// Every stream of the cluster whose node is alive, by key.
    pub async fn list(&self) -> Result<Vec<ClusterSession>, ClusterError> {
        let inner = &self.inner;
        let mut conn = inner.conn.clone();
        let all: HashMap<String, String> = conn
            .hgetall(inner.key("sessions"))
            .await
            .inspect_err(|e| inner.redis_error("listing sessions", e))?;
        let mut alive: HashMap<String, bool> = HashMap::new();
        let mut list = Vec::with_capacity(all.len());
        for (key_text, value) in all {
            let Ok((gen, e)) = parse_value(&value) else {
                tracing::warn!(key = %key_text, "skipping a corrupt cluster session record");
                continue;
            };
            let Ok(key) = key_text.parse::<SessionKey>() else {
                tracing::warn!(key = %key_text, "skipping a cluster session record with a bad key");
                continue;
            };
            let node_alive = match alive.get(&e.node) {
                Some(a) => *a,
                None => {
                    let a: bool = conn.exists(inner.node_key(&e.node)).await?;
                    alive.insert(e.node.clone(), a);
                    a
                }
            };
            if !node_alive {
                continue;
            }
            list.push(ClusterSession {
                gen,
                streamer_pid: e.streamer_pid,
                info: SessionInfo {
                    session_id: key.session.clone(),
                    lobby_id: key.lobby.clone(),
                    client_id: key.client.clone(),
                    key,
                    entry_id: e.entry_id,
                    started_at: e.started_at,
                    node: e.node,
                    meta: SessionMeta {
                        host_id: e.host_id,
                        app_id: e.app_id,
                        mode: e.mode,
                        remote: e.remote,
                    },
                },
            });
        }
        list.sort_by(|a, b| a.info.key.cmp(&b.info.key));
        Ok(list)
    }

    /// Asks the node running `key` to stop it with `reason` and waits up to `limit` for its end.
    /// `Ok(None)`: no such stream in the cluster; `Ok(Some(ended))` otherwise.
    pub async fn stop_remote(
        &self,
        key: &SessionKey,
        reason: StopReason,
        limit: Duration,
    ) -> Result<Option<bool>, ClusterError> {
        let Some(s) = self.list().await?.into_iter().find(|s| &s.info.key == key) else {
            return Ok(None);
        };
        let text = key.to_string();
        self.inner
            .send_stop(&s.info.node, &text, s.gen, reason)
            .await;
        let ended = self.inner.await_release(&text, s.gen, limit).await.is_ok();
        Ok(Some(ended))
    }

    /// Leaves the cluster at shutdown: this node's lease goes at once, so its keys are free
    /// without waiting out the lease.
    pub async fn leave(&self) {
        let inner = &self.inner;
        let pending = std::mem::take(&mut *lock(&inner.unreleased));
        for (key, gen) in pending {
            inner.release(key, gen).await;
        }
        let mut conn = inner.conn.clone();
        let r: Result<(), _> = conn.del(inner.node_key(&inner.node)).await;
        if let Err(e) = r {
            inner.redis_error("leaving the cluster", &e);
        }
    }

    /// Redis answers (`/readyz`).
    pub async fn ping(&self) -> Result<(), ClusterError> {
        let mut conn = self.inner.conn.clone();
        let _: String = redis::cmd("PING").query_async(&mut conn).await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests;
