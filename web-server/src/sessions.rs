//! The session registry: the one source of truth for live streams (and for the admin view).
//!
//! Lessons 2–4: the key is `{session}-{lobby}-{client}` (a lobby restart under the same session
//! id is a different key); a second connection with a live key **supersedes** the first (never
//! "AlreadyStreaming"): [`SessionRegistry::register`] installs the new entry at once and hands back
//! the old one, which the caller stops (reason [`StopReason::Superseded`], close code 4000) and
//! whose end it awaits before launching, so one client identity never has two streams on a host.
//! An entry disappears the moment its [`SessionGuard`] is dropped, whatever ended the stream.

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Serialize;
use tokio::sync::watch;

/// `{session}-{lobby}-{client}`. `-` and `%` inside a part are written `%2D` / `%25` so that the
/// text form parses back unambiguously (ids such as UUIDs contain dashes); ids without them appear
/// verbatim. The lobby may be empty (`ses-` + `-client`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionKey {
    /// Session id (e.g. a Helix session id).
    pub session: String,
    /// Lobby id, possibly empty.
    pub lobby: String,
    /// Client id (the browser's `client_unique_id`).
    pub client: String,
}

/// A malformed session key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SessionKeyError {
    /// Not three `-`-separated parts.
    #[error("a session key has three parts separated by '-'")]
    Parts,
    /// Empty session or client.
    #[error("session and client ids must not be empty")]
    Empty,
    /// Bad `%` escape.
    #[error("bad escape in session key")]
    Escape,
}

fn escape(part: &str, out: &mut String) {
    for c in part.chars() {
        match c {
            '%' => out.push_str("%25"),
            '-' => out.push_str("%2D"),
            c => out.push(c),
        }
    }
}

fn unescape(part: &str) -> Result<String, SessionKeyError> {
    let mut out = String::with_capacity(part.len());
    let mut rest = part;
    while let Some(i) = rest.find('%') {
        out.push_str(&rest[..i]);
        let code = rest.get(i + 1..i + 3).ok_or(SessionKeyError::Escape)?;
        match code {
            "25" => out.push('%'),
            "2D" | "2d" => out.push('-'),
            _ => return Err(SessionKeyError::Escape),
        }
        rest = &rest[i + 3..];
    }
    out.push_str(rest);
    Ok(out)
}

impl SessionKey {
    /// A key; `session` and `client` must be non-empty.
    pub fn new(
        session: impl Into<String>,
        lobby: impl Into<String>,
        client: impl Into<String>,
    ) -> Result<Self, SessionKeyError> {
        let key = SessionKey {
            session: session.into(),
            lobby: lobby.into(),
            client: client.into(),
        };
        if key.session.is_empty() || key.client.is_empty() {
            return Err(SessionKeyError::Empty);
        }
        Ok(key)
    }
}

impl fmt::Display for SessionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut s = String::new();
        escape(&self.session, &mut s);
        s.push('-');
        escape(&self.lobby, &mut s);
        s.push('-');
        escape(&self.client, &mut s);
        f.write_str(&s)
    }
}

impl FromStr for SessionKey {
    type Err = SessionKeyError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let parts: Vec<&str> = s.split('-').collect();
        let [session, lobby, client] = parts.as_slice() else {
            return Err(SessionKeyError::Parts);
        };
        SessionKey::new(unescape(session)?, unescape(lobby)?, unescape(client)?)
    }
}

impl Serialize for SessionKey {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// Why a stream is being stopped; the browser socket is closed with [`StopReason::close_code`]
/// and [`StopReason::close_reason`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StopReason {
    /// A new connection with the same key took over.
    Superseded,
    /// An operator stopped it.
    AdminKill,
    /// The server is shutting down.
    Shutdown,
}

impl StopReason {
    /// WebSocket close code.
    pub fn close_code(self) -> u16 {
        match self {
            StopReason::Superseded => 4000,
            StopReason::AdminKill => 4001,
            StopReason::Shutdown => 1001,
        }
    }

    /// WebSocket close reason.
    pub fn close_reason(self) -> &'static str {
        match self {
            StopReason::Superseded => "superseded",
            StopReason::AdminKill => "stopped by an administrator",
            StopReason::Shutdown => "server shutting down",
        }
    }
}

/// What is known about a stream (shown by `GET /api/sessions`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Default)]
pub struct SessionMeta {
    /// Host id in the store.
    pub host_id: i64,
    /// App id on the host.
    pub app_id: u32,
    /// `websocket` or `webrtc`.
    pub mode: String,
    /// The peer address of the browser connection, if known.
    pub remote: Option<String>,
}

/// A registry entry as listed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SessionInfo {
    /// The key (text form).
    pub key: SessionKey,
    /// Session id.
    pub session_id: String,
    /// Lobby id (may be empty).
    pub lobby_id: String,
    /// Client id.
    pub client_id: String,
    /// Registry-unique id of this entry (a superseding entry gets a new one).
    pub entry_id: u64,
    /// Unix seconds at registration.
    pub started_at: u64,
    /// The gateway node that runs the stream (its `MOONGATE_NODE_ID`; `local` on a single node).
    pub node: String,
    /// Metadata.
    #[serde(flatten)]
    pub meta: SessionMeta,
}

struct EntryShared {
    info: SessionInfo,
    stop: watch::Sender<Option<StopReason>>,
    closed: watch::Sender<bool>,
}

impl EntryShared {
    /// Both handles on an entry print as their kind, key and entry id.
    fn debug_as(&self, kind: &str, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct(kind)
            .field("key", &self.info.key)
            .field("entry_id", &self.info.entry_id)
            .finish()
    }
    fn stop_requested(&self) -> Option<StopReason> {
        *self.stop.borrow()
    }
    fn request_stop(&self, reason: StopReason) {
        self.stop.send_if_modified(|r| {
            if r.is_none() {
                *r = Some(reason);
                true
            } else {
                false
            }
        });
    }
}

/// Removes the entry from its registry (if still the current one for the key) and reports it
/// closed. Held by the stream's owner; dropping it is the end of the stream, whatever the cause.
pub struct SessionGuard {
    shared: Arc<EntryShared>,
    unregister: Option<Box<dyn FnOnce() + Send + Sync>>,
    /// Run after the entry is gone: releases held elsewhere (the cluster's claim on the key).
    on_drop: Vec<Box<dyn FnOnce() + Send + Sync>>,
}

impl fmt::Debug for SessionGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.shared.debug_as("SessionGuard", f)
    }
}

impl SessionGuard {
    /// The entry.
    pub fn info(&self) -> &SessionInfo {
        &self.shared.info
    }

    /// Completes when someone asks this stream to stop (superseded, admin kill, shutdown), with
    /// the reason to close the browser socket with.
    pub async fn stopped(&self) -> StopReason {
        let mut rx = self.shared.stop.subscribe();
        loop {
            if let Some(reason) = *rx.borrow_and_update() {
                return reason;
            }
            if rx.changed().await.is_err() {
                // Unreachable while we hold `shared`; never resolve rather than invent a reason.
                std::future::pending::<()>().await;
            }
        }
    }

    /// The stop reason, if a stop was requested.
    pub fn stop_requested(&self) -> Option<StopReason> {
        self.shared.stop_requested()
    }

    /// Asks this stream to stop (as a superseding or admin request would).
    pub fn request_stop(&self, reason: StopReason) {
        self.shared.request_stop(reason);
    }

    /// Runs `release` when the guard is dropped, after the entry has left the registry: what the
    /// stream holds outside this process (a cluster claim) ends with it, whatever ended it.
    pub fn on_drop(&mut self, release: impl FnOnce() + Send + Sync + 'static) {
        self.on_drop.push(Box::new(release));
    }
}

impl Drop for SessionGuard {
    fn drop(&mut self) {
        if let Some(unregister) = self.unregister.take() {
            unregister();
        }
        self.shared.closed.send_replace(true);
        for release in self.on_drop.drain(..) {
            release();
        }
    }
}

/// The old entry handed back by a superseding [`SessionRegistry::register`]: stop it and await
/// its end before launching the new stream.
pub struct Superseded {
    shared: Arc<EntryShared>,
}

impl fmt::Debug for Superseded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.shared.debug_as("Superseded", f)
    }
}

impl Superseded {
    /// The old entry.
    pub fn info(&self) -> &SessionInfo {
        &self.shared.info
    }

    /// Signals the old stream to stop with `reason` (normally [`StopReason::Superseded`]).
    pub fn stop(&self, reason: StopReason) {
        self.shared.request_stop(reason);
    }

    /// The stop reason, if a stop was requested.
    pub fn stop_requested(&self) -> Option<StopReason> {
        self.shared.stop_requested()
    }

    /// Completes when the old entry's guard is dropped.
    pub async fn closed(&self) {
        let mut rx = self.shared.closed.subscribe();
        // `shared` (and so the sender) lives as long as `self`: `wait_for` cannot fail here.
        let _ = rx.wait_for(|&c| c).await;
    }

    /// [`Superseded::stop`] with [`StopReason::Superseded`], then waits up to `limit` for the end.
    pub async fn stop_and_wait(&self, limit: Duration) -> Result<(), SupersedeTimeout> {
        self.stop(StopReason::Superseded);
        tokio::time::timeout(limit, self.closed())
            .await
            .map_err(|_| SupersedeTimeout(self.shared.info.key.clone()))
    }
}

/// The superseded stream did not end in time.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the previous stream of {0} did not end in time")]
pub struct SupersedeTimeout(pub SessionKey);

/// The result of a registration.
#[derive(Debug)]
pub struct Registration {
    /// The new entry's guard: keep it for the stream's whole life.
    pub guard: SessionGuard,
    /// The entry that had the same key, if any.
    pub superseded: Option<Superseded>,
}

/// The whole supersede dance for a new connection: registers `key`, stops the entry it
/// supersedes (close code 4000 "superseded") and waits up to `limit` for that stream to end, so
/// the caller can launch at once. On timeout the new entry is dropped again (the caller closes its
/// socket with an error) and the old one stays asked to stop.
pub async fn register_superseding(
    registry: &dyn SessionRegistry,
    key: SessionKey,
    meta: SessionMeta,
    limit: Duration,
) -> Result<SessionGuard, SupersedeTimeout> {
    let Registration { guard, superseded } = registry.register(key, meta);
    if let Some(old) = superseded {
        tracing::info!(key = %old.info().key, "superseding the previous stream of this key");
        old.stop_and_wait(limit).await?;
    }
    Ok(guard)
}

/// Stops every *older* live entry of the same client id on the same host as `guard`'s entry (a
/// different key: another lobby or session id) and waits up to `limit` for each to end.
///
/// Lesson 4: a host allows one stream per client certificate, and a client id has one identity,
/// so a second key of the same client (the browser opened the next lobby's stream before
/// closing the old one) would launch on an identity whose stream is still alive — the host then
/// supersedes it mid-setup (Wolf deadlocked on this; the demo host refuses the new RTSP PLAY).
/// Only older entries are stopped, so two such connections racing never stop each other: the
/// newest wins, as with a same-key supersede.
pub async fn supersede_same_client(
    registry: &dyn SessionRegistry,
    guard: &SessionGuard,
    limit: Duration,
) -> Result<(), SupersedeTimeout> {
    supersede_older(registry, guard, limit, Older::OfClient).await
}

/// Stops every *older* live entry on the same host as `guard`'s entry, whatever its client id,
/// and waits up to `limit` for each to end.
///
/// For a host without a pairing API every browser client streams through the one identity paired
/// with a PIN (the gateway's), and a host allows one stream per identity: a second browser on
/// such a host supersedes the first (close 4000, its host session cancelled and its streamer
/// gone before the new launch) instead of failing. Only older entries, as in
/// [`supersede_same_client`], so the newest connection wins a race.
pub async fn supersede_same_host(
    registry: &dyn SessionRegistry,
    guard: &SessionGuard,
    limit: Duration,
) -> Result<(), SupersedeTimeout> {
    supersede_older(registry, guard, limit, Older::OnHost).await
}

/// Which older entries [`supersede_older`] stops.
#[derive(Clone, Copy)]
enum Older {
    /// Those of the same client id on the same host ([`supersede_same_client`]).
    OfClient,
    /// All on the same host ([`supersede_same_host`]).
    OnHost,
}

/// Stops every live entry older than `guard`'s that `which` names, then waits up to `limit` for
/// each to end (all are asked first, so they wind down together).
async fn supersede_older(
    registry: &dyn SessionRegistry,
    guard: &SessionGuard,
    limit: Duration,
    which: Older,
) -> Result<(), SupersedeTimeout> {
    let me = guard.info();
    let same = |e: &SessionInfo| {
        e.meta.host_id == me.meta.host_id
            && match which {
                Older::OfClient => e.client_id == me.client_id,
                Older::OnHost => true,
            }
    };
    let why = match which {
        Older::OfClient => "superseding the previous stream of this client identity",
        Older::OnHost => "superseding the previous stream of this host's shared identity",
    };
    let older: Vec<Superseded> = registry
        .list()
        .into_iter()
        .filter(|e| same(e) && e.entry_id < me.entry_id)
        .filter_map(|e| registry.handle(&e.key))
        .filter(|h| h.info().entry_id < me.entry_id)
        .collect();
    for old in &older {
        tracing::info!(key = %old.info().key, new = %me.key, "{why}");
        old.stop(StopReason::Superseded);
    }
    for old in &older {
        old.stop_and_wait(limit).await?;
    }
    Ok(())
}

/// The registry interface (a shared implementation can come later).
pub trait SessionRegistry: Send + Sync {
    /// A handle on the live entry of `key` (to stop it and await its end), if any.
    fn handle(&self, key: &SessionKey) -> Option<Superseded>;
    /// Registers `key`, superseding any live entry with the same key.
    fn register(&self, key: SessionKey, meta: SessionMeta) -> Registration;
    /// All live entries, by key.
    fn list(&self) -> Vec<SessionInfo>;
    /// Asks the live entry of `key` to stop; `false` if none.
    fn stop(&self, key: &SessionKey, reason: StopReason) -> bool;
    /// Asks every live entry to stop (server shutdown).
    fn stop_all(&self, reason: StopReason);
}

/// The in-process registry.
#[derive(Default)]
pub struct MemoryRegistry {
    inner: Arc<RegistryInner>,
}

#[derive(Default)]
struct RegistryInner {
    /// This gateway's node id, written into every entry.
    node: String,
    next_id: AtomicU64,
    entries: Mutex<HashMap<SessionKey, Arc<EntryShared>>>,
}

impl RegistryInner {
    fn entries(&self) -> MutexGuard<'_, HashMap<SessionKey, Arc<EntryShared>>> {
        // Single inserts/removes under the lock: a poisoned map is still consistent.
        self.entries
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl fmt::Debug for MemoryRegistry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryRegistry")
            .field("live", &self.inner.entries().len())
            .finish()
    }
}

impl MemoryRegistry {
    /// An empty registry of a single gateway (node `local`).
    pub fn new() -> Self {
        Self::with_node("local")
    }

    /// An empty registry whose entries carry `node` (one gateway of a cluster).
    pub fn with_node(node: impl Into<String>) -> Self {
        MemoryRegistry {
            inner: Arc::new(RegistryInner {
                node: node.into(),
                ..Default::default()
            }),
        }
    }

    /// Number of live entries.
    pub fn len(&self) -> usize {
        self.inner.entries().len()
    }

    /// No live entry.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl SessionRegistry for MemoryRegistry {
    fn register(&self, key: SessionKey, meta: SessionMeta) -> Registration {
        let entry_id = self.inner.next_id.fetch_add(1, Ordering::Relaxed) + 1;
        let shared = Arc::new(EntryShared {
            info: SessionInfo {
                session_id: key.session.clone(),
                lobby_id: key.lobby.clone(),
                client_id: key.client.clone(),
                key: key.clone(),
                entry_id,
                started_at: unix_now(),
                node: self.inner.node.clone(),
                meta,
            },
            stop: watch::Sender::new(None),
            closed: watch::Sender::new(false),
        });
        let old = self
            .inner
            .entries()
            .insert(key.clone(), Arc::clone(&shared));
        // The guard's remover holds only a Weak to the registry: an entry never keeps the
        // registry alive, and it removes the key only if it is still its own entry.
        let weak: Weak<RegistryInner> = Arc::downgrade(&self.inner);
        let unregister = Box::new(move || {
            if let Some(inner) = weak.upgrade() {
                let mut entries = inner.entries();
                if entries
                    .get(&key)
                    .is_some_and(|e| e.info.entry_id == entry_id)
                {
                    entries.remove(&key);
                }
            }
        });
        Registration {
            guard: SessionGuard {
                shared,
                unregister: Some(unregister),
                on_drop: Vec::new(),
            },
            superseded: old.map(|shared| Superseded { shared }),
        }
    }

    fn list(&self) -> Vec<SessionInfo> {
        let mut list: Vec<SessionInfo> = self
            .inner
            .entries()
            .values()
            .map(|e| e.info.clone())
            .collect();
        list.sort_by(|a, b| a.key.cmp(&b.key));
        list
    }

    fn handle(&self, key: &SessionKey) -> Option<Superseded> {
        let shared = self.inner.entries().get(key).cloned()?;
        Some(Superseded { shared })
    }

    fn stop(&self, key: &SessionKey, reason: StopReason) -> bool {
        let entry = self.inner.entries().get(key).cloned();
        match entry {
            Some(e) => {
                e.request_stop(reason);
                true
            }
            None => false,
        }
    }

    fn stop_all(&self, reason: StopReason) {
        let all: Vec<Arc<EntryShared>> = self.inner.entries().values().cloned().collect();
        for e in all {
            e.request_stop(reason);
        }
    }
}

#[cfg(test)]
mod tests;
