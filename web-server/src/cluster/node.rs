//! What this node does on its own behalf: the Redis-side helpers behind [`super::Cluster`]'s
//! calls (keys, stop messages, waiting for a stream's end, releases, garbage collection,
//! per-tick checks) and the three background tasks (lease keeper, janitor, subscriber). Kept
//! apart from `mod.rs`, which holds the data model and the public API, because this is the part
//! that runs on timers and pub/sub rather than on a request.

use super::*;

impl Inner {
    pub(super) fn key(&self, suffix: &str) -> String {
        format!("{}:{suffix}", self.prefix)
    }

    pub(super) fn node_key(&self, node: &str) -> String {
        format!("{}:node:{node}", self.prefix)
    }

    pub(super) fn redis_error(&self, what: &str, e: &redis::RedisError) {
        lock(&self.stats).redis_errors += 1;
        tracing::warn!(error = %e, "cluster: {what} failed");
    }

    pub(super) async fn send_stop(&self, node: &str, key: &str, gen: u64, reason: StopReason) {
        let command = Command::Stop {
            key: key.to_string(),
            gen,
            reason,
        };
        let Ok(text) = serde_json::to_string(&command) else {
            return;
        };
        let mut conn = self.conn.clone();
        let r: Result<u64, _> = conn.publish(self.key(&format!("cmd:{node}")), text).await;
        match r {
            // Nobody listening: that node's janitor sees the newer owner within a tick.
            Ok(0) => {
                tracing::debug!(%node, "no subscriber for a stop; the node's janitor will see it")
            }
            Ok(_) => {}
            Err(e) => self.redis_error("sending a stop", &e),
        }
    }

    /// Every live stream (gen, node, key) that `keep` selects.
    pub(super) async fn live_where(
        &self,
        keep: impl Fn(u64, &str, &str) -> bool,
    ) -> Result<Vec<(u64, String, String)>, ClusterError> {
        let mut conn = self.conn.clone();
        let live: HashMap<u64, String> = conn.hgetall(self.key("live")).await?;
        Ok(live
            .into_iter()
            .filter_map(|(gen, value)| {
                let (node, key) = value.split_once('|')?;
                keep(gen, node, key).then(|| (gen, node.to_string(), key.to_string()))
            })
            .collect())
    }

    /// Waits until no live stream that `which` selects remains (each ended, or its node is
    /// dead), for at most `limit`.
    pub(super) async fn await_ended(
        &self,
        key: &str,
        limit: Duration,
        which: impl Fn(u64, &str, &str) -> bool,
    ) -> Result<(), ClusterError> {
        let deadline = tokio::time::Instant::now() + limit;
        let mut released = self.released.subscribe();
        let mut conn = self.conn.clone();
        loop {
            let waiting = self.live_where(&which).await?;
            let Some((_, first_node, _)) = waiting.first() else {
                return Ok(());
            };
            let mut nodes: Vec<&str> = waiting.iter().map(|(_, n, _)| n.as_str()).collect();
            nodes.sort_unstable();
            nodes.dedup();
            let mut any_dead = false;
            for node in nodes {
                let alive: bool = conn.exists(self.node_key(node)).await?;
                if !alive {
                    tracing::info!(%key, %node, "the node of a superseded stream is dead: its key is free");
                    any_dead = true;
                }
            }
            if any_dead {
                self.collect_garbage().await;
                continue;
            }
            let gens: Vec<u64> = waiting.iter().map(|(g, _, _)| *g).collect();
            // A release message, or a look every 100 ms (a message can be missed).
            let wake = async {
                loop {
                    match released.recv().await {
                        Ok(g) if gens.contains(&g) => return,
                        Ok(_) => continue,
                        Err(broadcast::error::RecvError::Lagged(_)) => return,
                        Err(broadcast::error::RecvError::Closed) => {
                            return std::future::pending().await
                        }
                    }
                }
            };
            tokio::select! {
                _ = wake => {}
                _ = tokio::time::sleep(Duration::from_millis(100)) => {}
                _ = tokio::time::sleep_until(deadline) => {
                    return Err(ClusterError::Timeout { key: key.to_string(), node: first_node.clone() });
                }
            }
        }
    }

    /// Waits until the stream claimed as `gen` has ended, or its node is dead.
    pub(super) async fn await_release(
        &self,
        key: &str,
        gen: u64,
        limit: Duration,
    ) -> Result<(), ClusterError> {
        self.await_ended(key, limit, move |g, _, _| g == gen).await
    }

    pub(super) async fn release(&self, key: String, gen: u64) {
        let mut conn = self.conn.clone();
        let r: Result<i64, _> = scripts::release()
            .key(self.key("sessions"))
            .key(self.key("live"))
            .key(self.key("released"))
            .arg(&key)
            .arg(gen)
            .invoke_async(&mut conn)
            .await;
        if let Err(e) = r {
            self.redis_error("releasing a session key (retried)", &e);
            lock(&self.unreleased).push((key, gen));
        }
    }

    pub(super) async fn collect_garbage(&self) -> u64 {
        let mut conn = self.conn.clone();
        let r: Result<u64, _> = scripts::collect_garbage()
            .key(self.key("sessions"))
            .key(self.key("live"))
            .arg(self.node_key(""))
            .invoke_async(&mut conn)
            .await;
        match r {
            Ok(n) => {
                if n > 0 {
                    tracing::info!(freed = n, "freed the keys of streams whose node is gone");
                    lock(&self.stats).keys_freed += n;
                }
                n
            }
            Err(e) => {
                self.redis_error("collecting garbage", &e);
                0
            }
        }
    }

    pub(super) fn handle_command(&self, text: &str) {
        let command: Command = match serde_json::from_str(text) {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "cluster: ignoring a malformed command");
                return;
            }
        };
        match command {
            Command::Stop { key, gen, reason } => {
                lock(&self.stats).stops_received += 1;
                let claims = lock(&self.claims);
                match claims.get(&gen).cloned() {
                    Some(c) if c.key.to_string() == key => {
                        drop(claims);
                        self.stop_local(&c, reason)
                    }
                    Some(_) => tracing::warn!(%key, gen, "cluster: a stop named the wrong key"),
                    None => {
                        // The claim's reply may still be on its way; bounded, oldest first out.
                        // Recorded while holding `claims`, so the claim cannot miss it.
                        let mut early = lock(&self.early_stops);
                        if early.len() >= 1024 {
                            if let Some(&oldest) = early.keys().min() {
                                early.remove(&oldest);
                            }
                        }
                        early.insert(gen, reason);
                    }
                }
            }
        }
    }

    pub(super) fn stop_local(&self, claim: &LocalClaim, reason: StopReason) {
        if let Some(h) = self.registry.handle(&claim.key) {
            if h.info().entry_id == claim.entry_id {
                tracing::info!(key = %claim.key, ?reason, "another node asks this stream to stop");
                h.stop(reason);
            }
        }
    }

    /// Renews this node's lease.
    pub(super) async fn renew_lease(&self) -> Result<(), redis::RedisError> {
        let mut conn = self.conn.clone();
        redis::cmd("SET")
            .arg(self.node_key(&self.node))
            .arg(unix_ms())
            .arg("PX")
            .arg(self.lease.as_millis() as u64)
            .query_async(&mut conn)
            .await
    }

    /// One janitor tick: free dead nodes' keys, check this node's claims, retry failed
    /// releases, share the certificate cache's idle times.
    pub(super) async fn tick(&self) -> Result<(), redis::RedisError> {
        let mut conn = self.conn.clone();
        let pending = std::mem::take(&mut *lock(&self.unreleased));
        for (key, gen) in pending {
            self.release(key, gen).await;
        }
        self.collect_garbage().await;
        let claims: Vec<(u64, LocalClaim)> = lock(&self.claims)
            .iter()
            .map(|(g, c)| (*g, c.clone()))
            .collect();
        for (gen, claim) in claims {
            let verdict: String = scripts::reassert()
                .key(self.key("sessions"))
                .key(self.key("live"))
                .arg(claim.key.to_string())
                .arg(gen)
                .arg(&claim.json)
                .arg(format!("{}|{}", self.node, claim.key))
                .invoke_async(&mut conn)
                .await?;
            if let Some(other) = verdict.strip_prefix("other:") {
                if other.parse::<u64>().is_ok_and(|o| o > gen) {
                    tracing::info!(key = %claim.key, "this stream's key has a newer owner: stopping it");
                    self.stop_local(&claim, StopReason::Superseded);
                }
            } else if verdict == "reinstated" {
                tracing::info!(key = %claim.key, "re-recorded a running stream in the cluster");
            }
        }
        let certs = lock(&self.certs).clone();
        if let Some((certs, ttl)) = certs {
            self.share_cert_idle(&mut conn, &certs, ttl).await?;
        }
        Ok(())
    }

    pub(super) async fn share_cert_idle(
        &self,
        conn: &mut ConnectionManager,
        certs: &ClientCertCache,
        ttl: Duration,
    ) -> Result<(), redis::RedisError> {
        let now = unix_ms();
        let index = self.key("certs");
        // Uses older than the idle time are expired cluster-wide.
        let cutoff = now.saturating_sub(ttl.as_millis() as u64);
        let _: () = conn.zrembyscore(&index, 0, cutoff).await?;
        let idle = certs.idle_times();
        if idle.is_empty() {
            return Ok(());
        }
        let ids: Vec<&str> = idle.iter().map(|(id, _)| id.as_str()).collect();
        let scores: Vec<Option<f64>> = redis::cmd("ZMSCORE")
            .arg(&index)
            .arg(&ids)
            .query_async(conn)
            .await?;
        for ((id, _), score) in idle.iter().zip(scores) {
            if let Some(ms) = score {
                let ago = Duration::from_millis(now.saturating_sub(ms as u64));
                certs.used_elsewhere(id, ago);
            }
        }
        Ok(())
    }
}

/// Renews the lease every third of the lease, on its own task: the janitor's other work (one
/// script per claim) must never delay it, or a busy node would look dead to the others and a
/// superseding open elsewhere would launch while this node's stream still runs.
pub(super) async fn lease_keeper(inner: Weak<Inner>) {
    let Some(period) = inner.upgrade().map(|i| i.lease / 3) else {
        return;
    };
    let mut interval = tokio::time::interval(period);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        interval.tick().await;
        let Some(inner) = inner.upgrade() else {
            return;
        };
        if let Err(e) = inner.renew_lease().await {
            tracing::debug!(error = %e, "cluster: lease renewal failed");
        }
    }
}

/// Looks after this node's claims every third of the lease.
pub(super) async fn janitor(inner: Weak<Inner>) {
    let Some(period) = inner.upgrade().map(|i| i.lease / 3) else {
        return;
    };
    let mut failing = false;
    loop {
        tokio::time::sleep(period).await;
        let Some(inner) = inner.upgrade() else {
            return;
        };
        match inner.tick().await {
            Ok(()) if failing => {
                failing = false;
                tracing::info!("cluster: Redis answers again");
            }
            Ok(()) => {}
            Err(e) => {
                lock(&inner.stats).redis_errors += 1;
                if !failing {
                    tracing::warn!(error = %e, "cluster: Redis unreachable; running streams go on, new ones wait for it");
                }
                failing = true;
            }
        }
    }
}

/// Receives this node's commands and every release, reconnecting while Redis is away.
pub(super) async fn subscriber(inner: Weak<Inner>, client: redis::Client) {
    let (commands, released) = match inner.upgrade() {
        Some(i) => (i.key(&format!("cmd:{}", i.node)), i.key("released")),
        None => return,
    };
    loop {
        let session = async {
            let mut pubsub = client.get_async_pubsub().await?;
            pubsub.subscribe(&commands).await?;
            pubsub.subscribe(&released).await?;
            let mut messages = pubsub.into_on_message();
            while let Some(msg) = messages.next().await {
                let Some(inner) = inner.upgrade() else {
                    return Ok(());
                };
                let Ok(payload) = msg.get_payload::<String>() else {
                    continue;
                };
                if msg.get_channel_name() == released {
                    if let Ok(gen) = payload.parse() {
                        let _ = inner.released.send(gen);
                    }
                } else {
                    inner.handle_command(&payload);
                }
            }
            Ok::<(), redis::RedisError>(())
        };
        if let Err(e) = session.await {
            tracing::debug!(error = %e, "cluster subscriber: reconnecting");
        }
        if inner.strong_count() == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
