//! The client-certificate cache, keyed by the browser's `client_unique_id`.
//!
//! A host allows one stream per paired client certificate, and a new launch racing the old
//! stream's cleanup deadlocked a host (lifecycle lesson 4). So each client id gets its own fresh
//! identity (unique CN), reused while the client keeps coming back (`touch` on every use) and
//! dropped after [`CertCacheConfig::idle_ttl`] without use. A sweeper task runs every
//! [`CertCacheConfig::sweep_every`]; it holds only a `Weak` to the cache and ends as soon as the
//! cache is dropped (its stop channel closes), so the cache never keeps itself alive.
//!
//! Time is tokio's clock ([`tokio::time::Instant`], the sweeper an `interval`), not a home-made
//! one: in production it is the monotonic clock, and tests pause it
//! (`#[tokio::test(start_paused = true)]`) and move it with `tokio::time::advance`, so an hour
//! of idleness takes no real time and no clock has to be passed around.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use gamestream::identity::{Identity, IdentityError};
use tokio::sync::{oneshot, watch};
use tokio::time::{Instant, MissedTickBehavior};

/// Cache settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CertCacheConfig {
    /// An entry unused for this long is removed at the next sweep (1 h).
    pub idle_ttl: Duration,
    /// Sweep period (5 min).
    pub sweep_every: Duration,
}

impl Default for CertCacheConfig {
    fn default() -> Self {
        CertCacheConfig {
            idle_ttl: Duration::from_secs(3600),
            sweep_every: Duration::from_secs(300),
        }
    }
}

/// Counters of the cache.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct CertCacheStats {
    /// Entries now.
    pub size: usize,
    /// Identities generated (cache misses).
    pub created: u64,
    /// Reuses (cache hits).
    pub reused: u64,
    /// Entries removed for idleness.
    pub evicted: u64,
    /// Sweeps done.
    pub sweeps: u64,
}

struct Entry {
    identity: Identity,
    created: Instant,
    last_used: Instant,
}

/// One cached client identity as the admin view lists it (no key).
#[derive(Debug, Clone)]
pub struct CachedClient {
    /// The browser's client id.
    pub client_id: String,
    /// Its certificate (DER).
    pub cert_der: Vec<u8>,
    /// Time since it was created.
    pub age: Duration,
    /// Time since it was last used.
    pub idle: Duration,
    /// Time left before a sweep may evict it (0 = due).
    pub expires_in: Duration,
}

struct Inner {
    config: CertCacheConfig,
    state: Mutex<State>,
    sweeps: watch::Sender<u64>,
    // Dropping the cache drops this sender, which ends the sweeper at once.
    _stop: oneshot::Sender<()>,
}

#[derive(Default)]
struct State {
    entries: HashMap<String, Entry>,
    stats: CertCacheStats,
}

/// Shared handle to the cache (clone freely); the sweeper ends when the last handle is dropped.
#[derive(Clone)]
pub struct ClientCertCache {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for ClientCertCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientCertCache")
            .field("stats", &self.stats())
            .finish()
    }
}

impl ClientCertCache {
    /// A cache with its sweeper task (needs a tokio runtime).
    pub fn new(config: CertCacheConfig) -> Self {
        let (stop_tx, stop_rx) = oneshot::channel();
        let inner = Arc::new(Inner {
            config,
            state: Mutex::new(State::default()),
            sweeps: watch::Sender::new(0),
            _stop: stop_tx,
        });
        tokio::spawn(sweeper(
            Arc::downgrade(&inner),
            Instant::now(),
            config.sweep_every,
            stop_rx,
        ));
        ClientCertCache { inner }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // A panic while holding this lock cannot leave the map inconsistent (single inserts and
        // removes), so a poisoned lock is still usable.
        self.inner
            .state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The identity of `client_id`: the cached one (touched), or a fresh one (unique CN).
    pub async fn get_or_create(&self, client_id: &str) -> Result<Identity, IdentityError> {
        if let Some(identity) = self.lookup(client_id) {
            return Ok(identity);
        }
        // RSA key generation takes a while: off the async threads and outside the lock.
        let fresh = tokio::task::spawn_blocking(Identity::new_client)
            .await
            .map_err(|e| IdentityError::Key(format!("key generation task failed: {e}")))??;
        let now = Instant::now();
        let mut state = self.state();
        // Another caller may have created one meanwhile: keep the first so both use the same.
        if let Some(entry) = state.entries.get_mut(client_id) {
            entry.last_used = now;
            let identity = entry.identity.clone();
            state.stats.reused += 1;
            return Ok(identity);
        }
        state.entries.insert(
            client_id.to_string(),
            Entry {
                identity: fresh.clone(),
                created: now,
                last_used: now,
            },
        );
        state.stats.created += 1;
        Ok(fresh)
    }

    /// The cached identity (touched), if any.
    pub fn lookup(&self, client_id: &str) -> Option<Identity> {
        let now = Instant::now();
        let mut state = self.state();
        let entry = state.entries.get_mut(client_id)?;
        entry.last_used = now;
        let identity = entry.identity.clone();
        state.stats.reused += 1;
        Some(identity)
    }

    /// Marks `client_id` as used now; `false` if it is not cached.
    pub fn touch(&self, client_id: &str) -> bool {
        let now = Instant::now();
        match self.state().entries.get_mut(client_id) {
            Some(e) => {
                e.last_used = now;
                true
            }
            None => false,
        }
    }

    /// Caches `identity` for `client_id` unless one is cached already; returns the cached one.
    /// The stored identity of a client paired through another gateway of the cluster seeds the
    /// cache this way, so this gateway streams it without pairing again.
    pub fn insert_if_absent(&self, client_id: &str, identity: Identity) -> Identity {
        let now = Instant::now();
        let mut state = self.state();
        if let Some(entry) = state.entries.get_mut(client_id) {
            entry.last_used = now;
            return entry.identity.clone();
        }
        state.entries.insert(
            client_id.to_string(),
            Entry {
                identity: identity.clone(),
                created: now,
                last_used: now,
            },
        );
        state.stats.created += 1;
        identity
    }

    /// Every cached client id with how long it has been idle here.
    pub fn idle_times(&self) -> Vec<(String, Duration)> {
        let now = Instant::now();
        self.state()
            .entries
            .iter()
            .map(|(id, e)| (id.clone(), now.saturating_duration_since(e.last_used)))
            .collect()
    }

    /// Records a use of `client_id` `ago` in the past, if that is more recent than the last use
    /// seen here: another gateway of the cluster used it, so its idle time restarts here too.
    pub fn used_elsewhere(&self, client_id: &str, ago: Duration) {
        let now = Instant::now();
        let when = now.checked_sub(ago).unwrap_or(now);
        if let Some(entry) = self.state().entries.get_mut(client_id) {
            if when > entry.last_used {
                entry.last_used = when;
            }
        }
    }

    /// Drops `client_id`'s identity (a revoked identity must not be reused from memory);
    /// `true` if it was cached.
    pub fn remove(&self, client_id: &str) -> bool {
        self.state().entries.remove(client_id).is_some()
    }

    /// Removes every entry idle for at least `idle_ttl`; returns how many.
    pub fn sweep(&self) -> usize {
        sweep_inner(&self.inner)
    }

    /// Every cached identity, by client id (the admin view).
    pub fn list(&self) -> Vec<CachedClient> {
        let now = Instant::now();
        let ttl = self.inner.config.idle_ttl;
        let mut list: Vec<CachedClient> = self
            .state()
            .entries
            .iter()
            .map(|(id, e)| {
                let idle = now.saturating_duration_since(e.last_used);
                CachedClient {
                    client_id: id.clone(),
                    cert_der: e.identity.cert_der.clone(),
                    age: now.saturating_duration_since(e.created),
                    idle,
                    expires_in: ttl.saturating_sub(idle),
                }
            })
            .collect();
        list.sort_by(|a, b| a.client_id.cmp(&b.client_id));
        list
    }

    /// Counters.
    pub fn stats(&self) -> CertCacheStats {
        let state = self.state();
        CertCacheStats {
            size: state.entries.len(),
            ..state.stats
        }
    }

    /// The number of sweeps the background task has completed, as a watch (tests await it).
    pub fn sweeps(&self) -> watch::Receiver<u64> {
        self.inner.sweeps.subscribe()
    }
}

fn sweep_inner(inner: &Inner) -> usize {
    let now = Instant::now();
    let ttl = inner.config.idle_ttl;
    let mut state = inner
        .state
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let before = state.entries.len();
    state
        .entries
        .retain(|_, e| now.saturating_duration_since(e.last_used) < ttl);
    let removed = before - state.entries.len();
    state.stats.evicted += removed as u64;
    state.stats.sweeps += 1;
    removed
}

/// Sweeps at `start + k * every`: a fixed grid (`Burst`), so a late wake-up never shifts later
/// sweeps, and a clock that jumps several periods at once gets one sweep per period.
async fn sweeper(
    inner: Weak<Inner>,
    start: Instant,
    every: Duration,
    mut stop: oneshot::Receiver<()>,
) {
    let mut ticks = tokio::time::interval_at(start + every, every);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Burst);
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            _ = &mut stop => return,
        }
        let Some(inner) = inner.upgrade() else { return };
        let removed = sweep_inner(&inner);
        if removed > 0 {
            tracing::debug!(removed, "client-certificate cache swept");
        }
        inner.sweeps.send_modify(|n| *n += 1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::time::{advance, timeout};

    const MIN: Duration = Duration::from_secs(60);

    async fn wait_sweeps(rx: &mut watch::Receiver<u64>, n: u64) {
        timeout(Duration::from_secs(10), rx.wait_for(|&s| s >= n))
            .await
            .expect("sweep did not run")
            .expect("sweeper ended");
    }

    /// On a paused clock: the clock stands still (also while keys are generated on the blocking
    /// pool) and moves only by `advance`.
    #[tokio::test(start_paused = true)]
    async fn touched_entries_survive_idle_ones_swept_at_exactly_one_hour() {
        let cache = ClientCertCache::new(CertCacheConfig::default());
        let mut sweeps = cache.sweeps();

        let a = cache.get_or_create("idle").await.unwrap();
        let b = cache.get_or_create("busy").await.unwrap();
        assert_ne!(a.cert_der, b.cert_der, "one identity per client id");
        let again = cache.get_or_create("idle").await.unwrap();
        assert_eq!(again.cert_der, a.cert_der, "reuse within the TTL");
        assert_eq!(
            cache.stats(),
            CertCacheStats {
                size: 2,
                created: 2,
                reused: 1,
                evicted: 0,
                sweeps: 0
            }
        );

        // Sweeps at 5, 10, …, 55 min: nothing idle for an hour yet; "busy" is touched at 30 min.
        for k in 1..=11u64 {
            advance(5 * MIN).await;
            wait_sweeps(&mut sweeps, k).await;
            if k == 6 {
                assert!(cache.touch("busy"));
            }
            assert_eq!(cache.stats().size, 2, "swept too early at {} min", 5 * k);
        }
        // 60 min: "idle" was last used at 0 → exactly 1 h idle → gone; "busy" (30 min) stays.
        advance(5 * MIN).await;
        wait_sweeps(&mut sweeps, 12).await;
        assert!(cache.lookup("idle").is_none());
        assert!(cache.lookup("busy").is_some(), "touched entry must survive");
        // The lookup touched "busy" at 60 min: it is swept at 120 min, not at 90.
        for k in 13..=23u64 {
            advance(5 * MIN).await;
            wait_sweeps(&mut sweeps, k).await;
            assert_eq!(cache.stats().size, 1, "at {} min", 5 * k);
        }
        advance(5 * MIN).await;
        wait_sweeps(&mut sweeps, 24).await;
        let stats = cache.stats();
        assert_eq!(stats.size, 0);
        assert_eq!(stats.evicted, 2);
        assert_eq!(stats.sweeps, 24);

        // A client coming back after expiry gets a fresh identity.
        let fresh = cache.get_or_create("idle").await.unwrap();
        assert_ne!(fresh.cert_der, a.cert_der);
    }

    #[tokio::test]
    async fn sweeper_ends_with_its_owner() {
        let cache = ClientCertCache::new(CertCacheConfig::default());
        let weak = Arc::downgrade(&cache.inner);
        let mut sweeps = cache.sweeps();
        drop(cache);
        assert!(
            weak.upgrade().is_none(),
            "the sweeper must not hold the cache"
        );
        // The sweeps watch closes once the Inner (its sender) is gone.
        let ended = timeout(Duration::from_secs(5), sweeps.changed()).await;
        assert!(matches!(ended, Ok(Err(_))));
    }

    #[tokio::test]
    async fn concurrent_first_use_yields_one_identity() {
        let cache = ClientCertCache::new(CertCacheConfig::default());
        let (a, b) = tokio::join!(cache.get_or_create("x"), cache.get_or_create("x"));
        assert_eq!(a.unwrap().cert_der, b.unwrap().cert_der);
        assert_eq!(cache.stats().size, 1);
    }
}
