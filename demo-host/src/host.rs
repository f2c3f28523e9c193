//! The demo host: gamestream's host half plus Wolf's session lifecycle, lobbies, an input sink,
//! pairing persistence and fault knobs.
//!
//! Lifecycle (gamestream-protocol-2-media.md §7.2): one stream per client certificate (a new
//! `/launch` supersedes the old stream); ENet disconnect, termination, `/cancel`, the idle monitor
//! (no control traffic for `idle_timeout`, checked every `idle_check_interval`) and API stops all
//! **stop** the session: it leaves its lobby (which stops if `stop_when_everyone_leaves` and it was
//! the last member), its producer ends, its ports are freed. A session is "tearing down" from its
//! end until its producer is gone (plus the slowed-teardown fault delay); a `/launch` or `/resume`
//! from the same client meanwhile is **refused with 503** ("previous session is still stopping"),
//! which Moonlight shows and the user retries — never queued, so no launch waits on a stop that
//! may hang.
//!
//! This file holds the host's state and its commands ([`HostHandle`]); the public data types are
//! in `host/types.rs`, the event-driven session lifecycle in `host/lifecycle.rs` and lobby
//! membership in `host/lobby.rs`.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

use gamestream::host::{
    AppCatalog, EndReason, Host, HostConfig, HostEvent, HostPorts, LaunchGate, NvHttpHostError,
    SessionEndObserver, StreamHandle,
};
use gamestream::identity::Identity;
use gamestream::input::InputEvent;
use gamestream::nvhttp::{App, InMemoryPairedClients, PairedClients};
use gamestream::rtsp::describe::DescribeParams;
use gamestream::AppVersion;
use tokio::sync::{broadcast, mpsc};
use tokio::task::JoinHandle;

use crate::config::DemoHostConfig;
use crate::wolf_api::{ServeError, WolfApiServer};

#[path = "host_api.rs"]
mod api;
use crate::producer::{self, FeedCmd, InputRecorder, LobbyCmd, Look, SessionProducer};
use crate::store::{self, FilePairedClients, StoreError};
use crate::strict::StrictMonitor;

mod lifecycle;
mod lobby;
mod sinks;
mod types;
mod wolf_ids;

use lifecycle::{idle_monitor, pair_watcher, pump_host_events, Gate};
use lobby::{create_lobby, join_lobby, leave_lobby, stop_lobby};
use sinks::InputSink;
pub use types::{
    ApiError, ClientInfo, DemoEvent, DemoHostError, InputRecord, LobbyInfo, LobbySettings,
    LobbyVideo, PendingPair, SessionInfo,
};

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// How long a session's client has been silent on the control stream at `now` (since its launch
/// if it never connected): what the idle monitor compares with `idle_timeout` and the Wolf API
/// reports. Everything is on tokio's clock — gamestream's control server stamps activity with
/// it — so a test that pauses and advances the clock moves the idle time with it.
fn silent_for(
    host: &Host,
    session_id: u64,
    launched_at: tokio::time::Instant,
    now: tokio::time::Instant,
) -> Duration {
    let heard = host
        .last_activity(session_id)
        .map(tokio::time::Instant::from_std)
        .unwrap_or(launched_at);
    now.saturating_duration_since(heard)
}

struct SessionEntry {
    info: SessionInfo,
    /// On tokio's clock, like the control server's activity stamps (see [`silent_for`]).
    launched_at: tokio::time::Instant,
    /// On the real clock (input timestamps).
    started: Instant,
    feed: Option<mpsc::UnboundedSender<FeedCmd>>,
    producer: Option<JoinHandle<StreamHandle>>,
}

struct LobbyEntry {
    info: LobbyInfo,
    pin: Option<Vec<u8>>,
    cmds: mpsc::UnboundedSender<LobbyCmd>,
    task: JoinHandle<()>,
}

impl Drop for LobbyEntry {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[derive(Default)]
struct State {
    sessions: HashMap<u64, SessionEntry>,
    lobbies: HashMap<String, LobbyEntry>,
    looks: u64,
    /// The most sessions ever open at once (tests check "never two streams of one identity").
    peak_sessions: usize,
    /// The ids the Wolf API shows for the sessions.
    wolf_ids: wolf_ids::WolfIds,
}

/// The app catalogue, changeable while the host runs (Wolf's `apps/add`, `apps/delete`).
struct DemoApps {
    list: Mutex<Vec<crate::config::AppConfig>>,
}

impl DemoApps {
    fn list(&self) -> Vec<crate::config::AppConfig> {
        lock(&self.list).clone()
    }
    fn add(&self, app: crate::config::AppConfig) {
        let mut list = lock(&self.list);
        list.retain(|a| a.id != app.id);
        list.push(app);
    }
    fn remove(&self, app_id: u32) -> bool {
        let mut list = lock(&self.list);
        let before = list.len();
        list.retain(|a| a.id != app_id);
        list.len() != before
    }
}

impl AppCatalog for DemoApps {
    fn apps(&self) -> Vec<App> {
        lock(&self.list)
            .iter()
            .map(|a| App {
                title: a.title.clone(),
                id: a.id,
                hdr_supported: false,
            })
            .collect()
    }
    fn box_art(&self, app_id: u32) -> Option<Vec<u8>> {
        let list = lock(&self.list);
        let (i, app) = list.iter().enumerate().find(|(_, a)| a.id == app_id)?;
        Some(app.box_art.clone().unwrap_or_else(|| {
            let look = Look::nth(i as u64 + 1000, String::new());
            store::solid_png(32, 48, look.style.color)
        }))
    }
}

struct Inner {
    config: DemoHostConfig,
    apps: Arc<DemoApps>,
    /// Set by the crash fault knob of the Wolf API; the owner drops everything.
    crash: tokio::sync::watch::Sender<bool>,
    cert_pem: String,
    unique_id: String,
    host: Host,
    gate: Arc<Gate>,
    state: Mutex<State>,
    inputs: Arc<InputSink>,
    /// Fork mode's microphone sinks.
    mics: Arc<crate::mic::MicSinks>,
    events: broadcast::Sender<DemoEvent>,
    /// Wolf-strict mode's teardown-order trap (counts nothing when the mode is off).
    strict: Arc<StrictMonitor>,
}

/// A running demo host. [`DemoHost::close`] ends every stream and frees everything; dropping it
/// stops its tasks and listeners. Its queries and commands are [`HostHandle`]'s (reached through
/// `Deref`).
pub struct DemoHost {
    inner: Arc<Inner>,
    handle: HostHandle,
    tasks: Vec<JoinHandle<()>>,
    /// Wolf API servers (Unix socket, TCP); they hold only a weak reference to the host.
    api: Vec<WolfApiServer>,
}

/// The queries and commands of a running host (what [`DemoHost`] derefs to). Not `Clone`: the
/// host's owner is the only one keeping it alive.
pub struct HostHandle {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for HostHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HostHandle")
            .field("ports", &self.ports())
            .finish_non_exhaustive()
    }
}

impl std::ops::Deref for DemoHost {
    type Target = HostHandle;
    fn deref(&self) -> &HostHandle {
        &self.handle
    }
}

impl std::fmt::Debug for DemoHost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DemoHost")
            .field("ports", &self.ports())
            .finish_non_exhaustive()
    }
}

impl DemoHost {
    /// Loads (or creates) the identity and paired clients, binds every listener, starts serving.
    pub async fn start(config: DemoHostConfig) -> Result<DemoHost, DemoHostError> {
        let (identity, paired, unique_id): (Identity, Arc<dyn PairedClients>, String) =
            match &config.data_dir {
                Some(dir) => (
                    store::load_or_create_identity(dir, &config.hostname)?,
                    Arc::new(FilePairedClients::open(dir)?),
                    store::load_or_create_unique_id(dir)?,
                ),
                None => (
                    Identity::new_host(&config.hostname)
                        .map_err(|e| DemoHostError::Identity(e.to_string()))?,
                    Arc::new(InMemoryPairedClients::default()),
                    uuid::Uuid::new_v4().to_string(),
                ),
            };
        let cert_pem = identity.cert_pem.clone();
        let gate = Arc::new(Gate {
            faults: Arc::clone(&config.faults),
            tearing_down: Mutex::new(HashMap::new()),
            inner: std::sync::OnceLock::new(),
        });
        let (http, https, rtsp, control) = config.ports.ports();
        let mut host_config = HostConfig::loopback(identity);
        host_config.bind_ip = config.bind_ip;
        host_config.http_port = http;
        host_config.https_port = https;
        host_config.rtsp_port = rtsp;
        host_config.control_port = control;
        host_config.hostname = config.hostname.clone();
        host_config.unique_id = unique_id.clone();
        host_config.encrypted_rtsp = config.encrypted_rtsp;
        // 7.1.431.-1, as Wolf reports.
        host_config.app_version = AppVersion::SUNSHINE;
        // Offer what the host can send: without these markers a stock client gets H.264 whatever
        // it asked for (see OfferedCodecs).
        let codecs = config.offered_codecs;
        host_config.codec_mode_support = codecs.server_codec_mode_support();
        host_config.describe = DescribeParams::wolf(codecs.hevc, codecs.av1);
        if config.microphone {
            // Fork mode: the mic is offered, and encrypted like Foundation Sunshine asks for.
            host_config.microphone = true;
            host_config.describe.encryption_supported = Some(gamestream::mic::ENCRYPTION_MIC);
            host_config.describe.encryption_requested = Some(gamestream::mic::ENCRYPTION_MIC);
        }
        host_config.live_bitrate = config.live_bitrate;
        let strict = Arc::new(StrictMonitor::new(config.wolf_strict));
        host_config.end_observer = Some(Arc::clone(&strict) as Arc<dyn SessionEndObserver>);
        // Wolf pauses a session whose ENet peer left (clean or timed out): it stays busy until
        // /cancel. A client that dies without /cancel leaves it so, as it leaves a real Wolf.
        host_config.disconnect_pauses = config.wolf_strict;
        host_config.sunshine_extensions = config.sunshine_extensions;
        host_config.video_fec_percent = config.video_fec_percent;
        host_config.media_faults = Some(Arc::clone(config.faults.media()));
        host_config.paired_clients = paired;
        host_config.launch_gate = Some(Arc::clone(&gate) as Arc<dyn LaunchGate>);
        let apps = Arc::new(DemoApps {
            list: Mutex::new(config.apps.clone()),
        });
        let (host, host_events) =
            Host::start(host_config, Arc::clone(&apps) as Arc<dyn AppCatalog>).await?;
        host.nvhttp().set_fixed_pin(config.fixed_pin.clone());
        let (events, _) = broadcast::channel(256);
        let inner = Arc::new(Inner {
            inputs: Arc::new(InputSink::new(config.input_log_capacity)),
            mics: Arc::default(),
            config,
            apps,
            crash: tokio::sync::watch::channel(false).0,
            cert_pem,
            unique_id,
            host,
            gate,
            state: Mutex::new(State::default()),
            events,
            strict,
        });
        let _ = inner.gate.inner.set(Arc::downgrade(&inner));
        let (api_backend, api_events) = api::HostApi::new(&inner);
        let tasks = vec![
            tokio::spawn(pump_host_events(Arc::downgrade(&inner), host_events)),
            tokio::spawn(idle_monitor(Arc::downgrade(&inner))),
            tokio::spawn(pair_watcher(Arc::downgrade(&inner))),
            tokio::spawn(api::translate_events(
                Arc::downgrade(&inner),
                inner.events.subscribe(),
                api_events,
            )),
        ];
        let mut host = DemoHost {
            handle: HostHandle {
                inner: Arc::clone(&inner),
            },
            inner,
            tasks,
            api: Vec::new(),
        };
        // The API comes last: a client that sees the socket finds a running host.
        let api_backend = Arc::new(api_backend);
        let opts = host.inner.config.wolf_api.options.clone();
        if let Some(path) = host.inner.config.wolf_api_socket_path() {
            let server =
                WolfApiServer::serve_unix_with(&path, Arc::clone(&api_backend), opts.clone())
                    .await?;
            tracing::info!(path = %path.display(), "Wolf API on a Unix socket");
            host.api.push(server);
        }
        if let Some(addr) = host.inner.config.wolf_api.tcp {
            let server =
                WolfApiServer::serve_tcp_with(addr, Arc::clone(&api_backend), opts).await?;
            tracing::info!(addr = ?server.tcp_addr(), "Wolf API on TCP");
            host.api.push(server);
        }
        Ok(host)
    }
}

impl HostHandle {
    /// The bound ports.
    pub fn ports(&self) -> HostPorts {
        self.inner.host.ports()
    }

    /// The host certificate (PEM): what clients pin after pairing.
    pub fn certificate_pem(&self) -> &str {
        &self.inner.cert_pem
    }

    /// `uniqueid` in `/serverinfo` (persisted in the data dir).
    pub fn unique_id(&self) -> &str {
        &self.inner.unique_id
    }

    /// Where identity and paired clients are kept (None = in memory).
    pub fn data_dir(&self) -> Option<&std::path::Path> {
        self.inner.config.data_dir.as_deref()
    }

    /// The configuration it runs with.
    pub fn config(&self) -> &DemoHostConfig {
        &self.inner.config
    }

    /// The fault knobs (shared with the configuration; change them at any time).
    pub fn faults(&self) -> &crate::config::Faults {
        &self.inner.config.faults
    }

    /// The gamestream host underneath.
    pub fn gamestream(&self) -> &Host {
        &self.inner.host
    }

    /// Host events from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<DemoEvent> {
        self.inner.events.subscribe()
    }

    /// The app catalogue.
    pub fn apps(&self) -> Vec<crate::config::AppConfig> {
        self.inner.apps.list()
    }

    /// Adds an app to the catalogue (or replaces the one with the same id); `/applist` shows it
    /// from the next request on.
    pub fn add_app(&self, app: crate::config::AppConfig) {
        self.inner.apps.add(app);
    }

    /// Removes an app; true if it was listed. Running sessions of it go on.
    pub fn remove_app(&self, app_id: u32) -> bool {
        self.inner.apps.remove(app_id)
    }

    /// Paired clients.
    pub fn paired_clients(&self) -> Vec<ClientInfo> {
        self.inner
            .host
            .nvhttp()
            .paired_clients()
            .list()
            .into_iter()
            .map(|c| ClientInfo {
                client_id: gamestream::host::client_id_of(&c.cert_der),
                device_name: c.device_name,
                unique_id: c.unique_id,
            })
            .collect()
    }

    /// Unpairs a client; true if it was paired.
    pub fn unpair(&self, client_id: u64) -> bool {
        let store = self.inner.host.nvhttp().paired_clients();
        store
            .list()
            .into_iter()
            .filter(|c| gamestream::host::client_id_of(&c.cert_der) == client_id)
            .map(|c| store.remove(&c.cert_der))
            .filter(|removed| *removed)
            .count()
            > 0
    }

    /// Pairing requests waiting for a PIN (Wolf's `/api/v1/pair/pending`).
    pub fn pending_pairs(&self) -> Vec<PendingPair> {
        self.inner
            .host
            .nvhttp()
            .pending_pairings()
            .into_iter()
            .map(|p| PendingPair {
                pair_secret: p.pair_secret,
                client_ip: p.client_ip,
                device_name: p.device_name,
            })
            .collect()
    }

    /// Gives the PIN for one pending request (Wolf's `/api/v1/pair/client`).
    pub fn submit_pair_pin(&self, pair_secret: &str, pin: &str) -> Result<(), ApiError> {
        if self.inner.host.nvhttp().submit_pin(pair_secret, pin) {
            Ok(())
        } else {
            Err(ApiError::InvalidPairSecret)
        }
    }

    /// Sunshine-style: the PIN the user typed goes to the oldest pending request. False if none
    /// waits (or the PIN is malformed).
    pub fn submit_pin(&self, pin: &str) -> bool {
        self.pending_pairs()
            .first()
            .is_some_and(|p| self.inner.host.nvhttp().submit_pin(&p.pair_secret, pin))
    }

    /// Sets (or clears) a PIN that every pairing uses without waiting.
    pub fn set_fixed_pin(&self, pin: Option<String>) {
        self.inner.host.nvhttp().set_fixed_pin(pin);
    }

    /// Live sessions (launched and not yet stopped).
    pub fn sessions(&self) -> Vec<SessionInfo> {
        let mut list: Vec<SessionInfo> = lock(&self.inner.state)
            .sessions
            .values()
            .map(|s| s.info.clone())
            .collect();
        list.sort_by_key(|s| s.session_id);
        list
    }

    /// The most sessions open at once since start (or the last [`DemoHost::reset_peak_sessions`]).
    pub fn peak_sessions(&self) -> usize {
        lock(&self.inner.state).peak_sessions
    }

    /// Restarts [`DemoHost::peak_sessions`] from the sessions open now.
    pub fn reset_peak_sessions(&self) {
        let mut state = lock(&self.inner.state);
        state.peak_sessions = state.sessions.len();
    }

    /// Wolf-strict mode is on ([`DemoHostConfig::wolf_strict`]).
    pub fn wolf_strict(&self) -> bool {
        self.inner.strict.enabled()
    }

    /// Wolf-strict mode: sessions that a `/cancel` or an API stop ended while their client's ENet
    /// control peer was still connected — each one a crash of a real Wolf (its client's
    /// disconnect necessarily comes after the cancel). Each is also logged at error level
    /// ("wolf-strict: ENet disconnect after /cancel: real Wolf crashes here"). A client must
    /// disconnect ENet first and cancel second; end-to-end tests assert this stays 0. Always 0
    /// when the mode is off. See [`crate::strict::StrictMonitor`] for what counts.
    pub fn disconnects_after_cancel(&self) -> u64 {
        self.inner.strict.disconnects_after_cancel()
    }

    /// Every Wolf-strict violation seen so far (today only
    /// [`HostHandle::disconnects_after_cancel`]); tests assert it is 0.
    pub fn strict_violations(&self) -> u64 {
        self.disconnects_after_cancel()
    }

    /// Sessions still tearing down, per client id.
    pub fn tearing_down(&self) -> usize {
        lock(&self.inner.gate.tearing_down)
            .values()
            .map(|n| *n as usize)
            .sum()
    }

    /// Stops a session (Wolf's `/api/v1/sessions/stop`): the client is told. In Wolf-strict mode
    /// a stop while the client's ENet peer is connected counts in
    /// [`HostHandle::disconnects_after_cancel`], as a `/cancel` does.
    pub fn stop_session(&self, session_id: u64) -> Result<(), ApiError> {
        let host = &self.inner.host;
        let stopped = self.inner.strict.api_stop(session_id, || {
            host.stop_session(session_id, EndReason::Stopped)
        });
        if stopped {
            Ok(())
        } else {
            Err(ApiError::NoSuchSession(session_id))
        }
    }

    /// Lobbies.
    pub fn lobbies(&self) -> Vec<LobbyInfo> {
        let mut list: Vec<LobbyInfo> = lock(&self.inner.state)
            .lobbies
            .values()
            .map(|l| l.info.clone())
            .collect();
        list.sort_by(|a, b| a.name.cmp(&b.name).then(a.id.cmp(&b.id)));
        list
    }

    /// Creates a lobby with its own producer; returns its id.
    pub fn create_lobby(&self, settings: LobbySettings) -> String {
        create_lobby(&self.inner, settings)
    }

    /// Joins a session to a lobby: its picture and sound switch to the lobby's (keyframe first).
    pub fn join_lobby(
        &self,
        lobby_id: &str,
        session_id: u64,
        pin: Option<&[u8]>,
    ) -> Result<(), ApiError> {
        join_lobby(&self.inner, lobby_id, session_id, pin)
    }

    /// Takes a session out of a lobby: it switches back to its own picture and sound. A lobby
    /// with `stop_when_everyone_leaves` stops when its last member leaves. (Wolf's leave takes a
    /// PIN too; it is not needed to leave.)
    pub fn leave_lobby(&self, lobby_id: &str, session_id: u64) -> Result<(), ApiError> {
        leave_lobby(&self.inner, lobby_id, session_id, true)
    }

    /// Stops a lobby; its members switch back to their own producers.
    pub fn stop_lobby(&self, lobby_id: &str, pin: Option<&[u8]>) -> Result<(), ApiError> {
        lock(&self.inner.state).lobby_with_pin(lobby_id, pin)?;
        stop_lobby(&self.inner, lobby_id);
        Ok(())
    }

    /// True once the Wolf API's `crash` fault knob was set: the owner should [`DemoHost::crash`]
    /// (the binary exits). Media and lobbies are already gone at that point.
    pub fn crash_requested(&self) -> bool {
        *self.inner.crash.borrow()
    }

    /// Waits until the Wolf API's `crash` fault knob is set (see [`HostHandle::crash_requested`]).
    pub async fn wait_crash_requested(&self) {
        let mut rx = self.inner.crash.subscribe();
        let _ = rx.wait_for(|c| *c).await;
    }
}

impl DemoHost {
    /// The Wolf API's Unix socket, if served.
    pub fn wolf_api_socket(&self) -> Option<&std::path::Path> {
        self.api.iter().find_map(|s| s.socket_path())
    }

    /// The Wolf API's TCP address, if served.
    pub fn wolf_api_tcp(&self) -> Option<std::net::SocketAddr> {
        self.api.iter().find_map(|s| s.tcp_addr())
    }

    /// Fault: dies like a crashed process — no termination to clients, every task and listener
    /// dropped at once. Clients notice by their control stream timing out.
    pub fn crash(mut self) {
        for t in self.tasks.drain(..) {
            t.abort();
        }
        // Dropping the servers aborts them and removes the socket file.
        self.api.clear();
        let mut state = lock(&self.inner.state);
        for (_, s) in state.sessions.drain() {
            if let Some(p) = s.producer {
                p.abort();
            }
        }
        state.lobbies.clear();
    }

    /// Ends every stream (clients are told), waits for teardowns, stops every listener and task.
    pub async fn close(mut self) {
        for server in self.api.drain(..) {
            server.close().await;
        }
        let ids: Vec<u64> = lock(&self.inner.state).sessions.keys().copied().collect();
        for id in ids {
            self.inner.host.stop_session(id, EndReason::HostShutdown);
        }
        // Teardowns finish within their delay; bounded in case a producer hangs.
        let deadline =
            Instant::now() + self.inner.config.faults.teardown_delay() + Duration::from_secs(5);
        let mut events = self.inner.events.subscribe();
        while self.tearing_down() > 0 && Instant::now() < deadline {
            let _ = tokio::time::timeout(Duration::from_millis(100), events.recv()).await;
        }
        self.inner.host.close().await;
        for t in self.tasks.drain(..) {
            t.abort();
        }
        lock(&self.inner.state).lobbies.clear();
    }
}

impl Drop for DemoHost {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
        let mut state = lock(&self.inner.state);
        for s in state.sessions.values_mut() {
            if let Some(p) = s.producer.take() {
                p.abort();
            }
        }
        state.lobbies.clear();
    }
}

fn emit(inner: &Inner, event: DemoEvent) {
    let _ = inner.events.send(event);
}
