//! Session lifecycle: the launch gate that refuses a client's launch while its previous session
//! tears down, the pump turning the host half's events into sessions, producers and teardowns,
//! the idle monitor and the pairing watcher. Kept apart from `host.rs` (state and commands) and
//! `lobby.rs` (lobby membership) because this is the host's event-driven side.

use super::*;

/// Refuses launches while the client's previous session tears down, or when told to.
pub(super) struct Gate {
    pub(super) faults: Arc<crate::config::Faults>,
    pub(super) tearing_down: Mutex<HashMap<u64, u32>>,
    /// Set once the host runs; sees sessions that ended but whose end is not processed yet.
    pub(super) inner: std::sync::OnceLock<Weak<Inner>>,
}

impl Gate {
    /// The client has a session the host half already ended (its `SessionEnded` is still queued).
    fn ending(&self, client_id: u64) -> bool {
        let Some(inner) = self.inner.get().and_then(Weak::upgrade) else {
            return false;
        };
        let ours: Vec<u64> = lock(&inner.state)
            .sessions
            .values()
            .filter(|s| s.info.client_id == client_id)
            .map(|s| s.info.session_id)
            .collect();
        if ours.is_empty() {
            return false;
        }
        let live = inner.host.sessions();
        ours.iter()
            .any(|id| !live.iter().any(|l| l.session_id == *id))
    }
}

impl LaunchGate for Gate {
    fn check(&self, client_id: u64, _app_id: u32, _resumed: bool) -> Result<(), NvHttpHostError> {
        if self.faults.refuse_launches() {
            return Err(NvHttpHostError::new(
                503,
                "launch refused (fault injection)",
            ));
        }
        if lock(&self.tearing_down)
            .get(&client_id)
            .copied()
            .unwrap_or(0)
            > 0
            || self.ending(client_id)
        {
            return Err(NvHttpHostError::new(
                503,
                "the previous session of this client is still stopping; retry",
            ));
        }
        Ok(())
    }
}

/// Turns the host half's events into sessions, producers and teardowns. Ends with the host.
pub(super) async fn pump_host_events(
    inner: Weak<Inner>,
    mut events: mpsc::UnboundedReceiver<HostEvent>,
) {
    while let Some(event) = events.recv().await {
        let Some(inner) = inner.upgrade() else {
            return;
        };
        match event {
            HostEvent::Launched {
                session_id,
                client_id,
                app_id,
                unique_id,
                ..
            } => on_launched(&inner, session_id, client_id, app_id, unique_id),
            HostEvent::StreamStarted(handle) => on_stream_started(&inner, *handle),
            HostEvent::SessionEnded { session_id, reason } => {
                on_session_ended(&inner, session_id, reason)
            }
        }
    }
}

pub(super) fn on_launched(
    inner: &Arc<Inner>,
    session_id: u64,
    client_id: u64,
    app_id: u32,
    unique_id: Option<String>,
) {
    let client_ip = inner
        .host
        .sessions()
        .into_iter()
        .find(|s| s.session_id == session_id)
        .map(|s| s.client_ip)
        .unwrap_or(inner.config.bind_ip);
    let mut state = lock(&inner.state);
    state.sessions.insert(
        session_id,
        SessionEntry {
            info: SessionInfo {
                session_id,
                client_id,
                app_id,
                client_ip,
                width: 0,
                height: 0,
                fps: 0,
                audio_channels: 0,
                bitrate_kbps: 0,
                lobby: None,
                streaming: false,
                client_unique_id: unique_id.unwrap_or_default(),
                color: [0, 0, 0],
            },
            launched_at: tokio::time::Instant::now(),
            started: Instant::now(),
            feed: None,
            producer: None,
        },
    );
    state.peak_sessions = state.peak_sessions.max(state.sessions.len());
    state.wolf_ids.note(session_id, client_id);
    drop(state);
    tracing::info!(
        session = session_id,
        client = client_id,
        app = app_id,
        "session started"
    );
    emit(
        inner,
        DemoEvent::SessionStarted {
            session_id,
            client_id,
            app_id,
        },
    );
    // Apps that are a shared desktop put the session in their lobby.
    let lobby_name = inner
        .apps
        .list()
        .into_iter()
        .find(|a| a.id == app_id)
        .and_then(|a| a.lobby);
    if let Some(name) = lobby_name {
        let existing = lock(&inner.state)
            .lobbies
            .values()
            .find(|l| l.info.name == name)
            .map(|l| l.info.id.clone());
        let lobby_id = existing.unwrap_or_else(|| {
            let mut settings = LobbySettings::new(name);
            settings.stop_when_everyone_leaves = true;
            create_lobby(inner, settings)
        });
        if let Err(e) = join_lobby(inner, &lobby_id, session_id, None) {
            tracing::warn!(session = session_id, "cannot join the app's lobby: {e}");
        }
    }
}

pub(super) fn on_stream_started(inner: &Arc<Inner>, mut handle: StreamHandle) {
    let session_id = handle.session_id;
    if let Some(mic) = handle.mic.take() {
        inner.mics.spawn(session_id, mic);
    }
    let (feed_tx, feed_rx) = mpsc::unbounded_channel();
    let mut state = lock(&inner.state);
    state.looks += 1;
    let look = Look::nth(state.looks, format!("Session {session_id}"));
    let lobby_cmds = state
        .sessions
        .get(&session_id)
        .and_then(|e| e.info.lobby.clone())
        .and_then(|l| state.lobbies.get(&l).map(|l| l.cmds.clone()));
    let Some(entry) = state.sessions.get_mut(&session_id) else {
        // Ended before PLAY was processed: dropping the handle frees its sockets.
        return;
    };
    entry.info.width = handle.config.width;
    entry.info.height = handle.config.height;
    entry.info.fps = handle.config.fps;
    entry.info.audio_channels = handle.config.audio_channels;
    entry.info.bitrate_kbps = handle.config.bitrate_kbps;
    entry.info.streaming = true;
    entry.info.color = look.style.color;
    if let Some(lobby) = lobby_cmds {
        let _ = feed_tx.send(FeedCmd::Join(lobby));
    }
    let weak = Arc::downgrade(inner);
    let weak_control = Arc::downgrade(inner);
    let weak_bitrate = Arc::downgrade(inner);
    let producer = SessionProducer {
        media: Arc::clone(&inner.config.media),
        kind: inner.config.source_kind,
        wolf_strict: inner.config.wolf_strict,
        look,
        cmds: feed_rx,
        inputs: Arc::clone(&inner.inputs) as Arc<dyn InputRecorder>,
        on_media_error: Box::new(move |_e| {
            if let Some(inner) = weak.upgrade() {
                inner.host.stop_session(session_id, EndReason::Stopped);
            }
        }),
        control: Box::new(move |msg| {
            if let Some(inner) = weak_control.upgrade() {
                if let Err(e) = inner.host.send_control(session_id, msg) {
                    tracing::debug!(session = session_id, "control message not sent: {e}");
                }
            }
        }),
        on_bitrate: Box::new(move |kbps| {
            if let Some(inner) = weak_bitrate.upgrade() {
                if let Some(entry) = lock(&inner.state).sessions.get_mut(&session_id) {
                    entry.info.bitrate_kbps = kbps;
                }
            }
        }),
    };
    entry.feed = Some(feed_tx);
    entry.producer = Some(tokio::spawn(producer::run_session(handle, producer)));
    drop(state);
    emit(inner, DemoEvent::StreamStarted { session_id });
}

pub(super) fn on_session_ended(inner: &Arc<Inner>, session_id: u64, reason: EndReason) {
    let Some(entry) = lock(&inner.state).sessions.remove(&session_id) else {
        return;
    };
    let client_id = entry.info.client_id;
    *lock(&inner.gate.tearing_down).entry(client_id).or_insert(0) += 1;
    if let Some(lobby) = &entry.info.lobby {
        let _ = leave_lobby(inner, lobby, session_id, false);
    }
    tracing::info!(session = session_id, ?reason, "session stopping");
    let delay = inner.config.faults.teardown_delay();
    let weak = Arc::downgrade(inner);
    let SessionEntry { producer, feed, .. } = entry;
    drop(feed);
    tokio::spawn(async move {
        // The producer returns its handle when it sees the end; sockets are freed after the delay.
        let handle = match producer {
            Some(p) => tokio::time::timeout(Duration::from_secs(10), p)
                .await
                .ok()
                .and_then(Result::ok),
            None => None,
        };
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        drop(handle);
        if let Some(inner) = weak.upgrade() {
            {
                let mut tearing = lock(&inner.gate.tearing_down);
                if let Some(n) = tearing.get_mut(&client_id) {
                    *n = n.saturating_sub(1);
                    if *n == 0 {
                        tearing.remove(&client_id);
                    }
                }
            }
            tracing::info!(session = session_id, "session stopped");
            emit(
                &inner,
                DemoEvent::SessionStopped {
                    session_id,
                    client_id,
                    reason,
                },
            );
        }
    });
}

/// Wolf's idle monitor: every `idle_check_interval`, stop sessions whose client was silent on
/// the control stream (or never connected) for longer than `idle_timeout`.
pub(super) async fn idle_monitor(inner: Weak<Inner>) {
    let every = match inner.upgrade() {
        Some(i) => i.config.idle_check_interval.max(Duration::from_millis(10)),
        None => return,
    };
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(inner) = inner.upgrade() else {
            return;
        };
        let now = tokio::time::Instant::now();
        let candidates: Vec<(u64, tokio::time::Instant)> = lock(&inner.state)
            .sessions
            .values()
            .map(|s| (s.info.session_id, s.launched_at))
            .collect();
        for (id, launched_at) in candidates {
            let idle = silent_for(&inner.host, id, launched_at, now);
            if idle > inner.config.idle_timeout {
                tracing::info!(session = id, ?idle, "idle timeout");
                inner.host.stop_session(id, EndReason::Stopped);
            }
        }
    }
}

/// Announces new pairing requests as [`DemoEvent::PairRequested`].
pub(super) async fn pair_watcher(inner: Weak<Inner>) {
    let mut seen: std::collections::HashSet<String> = Default::default();
    let mut tick = tokio::time::interval(Duration::from_millis(200));
    loop {
        tick.tick().await;
        let Some(inner) = inner.upgrade() else {
            return;
        };
        let pending = inner.host.nvhttp().pending_pairings();
        for p in &pending {
            if seen.insert(p.pair_secret.clone()) {
                tracing::info!(client = %p.client_ip, device = %p.device_name, "pairing request waits for a PIN");
                emit(
                    &inner,
                    DemoEvent::PairRequested {
                        pair_secret: p.pair_secret.clone(),
                        client_ip: p.client_ip,
                        device_name: p.device_name.clone(),
                    },
                );
            }
        }
        seen.retain(|s| pending.iter().any(|p| &p.pair_secret == s));
    }
}
