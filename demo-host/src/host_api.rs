//! The demo host as a [`WolfBackend`]: Wolf's HTTP API mapped onto the host's state.
//!
//! [`HostApi`] holds only a weak reference to the host, so a served API never keeps a closed
//! host alive; once the host is gone every call answers 503. Host events ([`DemoEvent`]) become
//! [`WolfEvent`]s in one task ([`translate_events`]), so the SSE stream keeps the host's order.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use tokio::sync::broadcast;

use super::{
    lock, silent_for, ApiError, DemoEvent, HostHandle, Inner, LobbySettings, LobbyVideo,
    SessionInfo,
};
use crate::config::AppConfig;
use crate::wolf_api::{
    self, ApiResult, AudioSettings, CreateLobbyRequest, FaultKnobs, FaultKnobsPatch,
    InputEventJson, JoinLobbyRequest, LeaveLobbyRequest, Lobby, LobbyCreated, LobbyMembership,
    LobbyStopped, PairRequest, PairSignal, PairedClient, ProducerSwitch, Runner, Secret, Session,
    SessionEvent, SessionId, StopLobbyRequest, VideoSettings, WolfApiError, WolfBackend, WolfEvent,
};

/// Events kept for slow SSE subscribers.
const EVENT_CAPACITY: usize = 256;

/// What the API remembers about lobbies it created (the host itself has no use for them).
#[derive(Clone)]
pub(crate) struct LobbyMeta {
    profile_id: String,
    icon_png_path: Option<String>,
    runner: Runner,
    runner_state_folder: String,
}

/// The far end of [`HostApi`]: where translated events go.
pub(crate) struct Translation {
    to: broadcast::Sender<WolfEvent>,
    lobbies: Arc<Mutex<HashMap<String, LobbyMeta>>>,
}

/// Wolf's API over a running demo host.
pub(crate) struct HostApi {
    inner: Weak<Inner>,
    events: broadcast::Sender<WolfEvent>,
    lobbies: Arc<Mutex<HashMap<String, LobbyMeta>>>,
}

impl HostApi {
    /// The backend and what [`translate_events`] needs (the event sender, lobby metadata).
    pub(crate) fn new(inner: &Arc<Inner>) -> (HostApi, Translation) {
        let (events, _) = broadcast::channel(EVENT_CAPACITY);
        let lobbies = Arc::new(Mutex::new(HashMap::new()));
        (
            HostApi {
                inner: Arc::downgrade(inner),
                events: events.clone(),
                lobbies: Arc::clone(&lobbies),
            },
            Translation {
                to: events,
                lobbies,
            },
        )
    }

    /// The host, unless it is gone or crashed.
    fn host(&self) -> ApiResult<HostHandle> {
        let inner = self
            .inner
            .upgrade()
            .ok_or_else(|| WolfApiError::Unavailable("the host is shutting down".into()))?;
        if *inner.crash.borrow() {
            return Err(WolfApiError::Unavailable("the host crashed".into()));
        }
        Ok(HostHandle { inner })
    }
}

/// The Wolf id of host-half session `session_id` (see `host/wolf_ids.rs`).
fn wolf_id_of(inner: &Inner, session_id: u64) -> u64 {
    lock(&inner.state).wolf_id_of(session_id)
}

/// The live host-half session a Wolf API call names by its Wolf id.
fn live(host: &HostHandle, wolf_id: SessionId) -> ApiResult<u64> {
    host.live_session(wolf_id.0)
        .ok_or_else(|| WolfApiError::NotFound("Invalid session_id".into()))
}

fn map_err(e: ApiError) -> WolfApiError {
    match e {
        ApiError::NoSuchSession(_) => WolfApiError::NotFound("Invalid session_id".into()),
        ApiError::NoSuchLobby(_) => WolfApiError::NotFound("Invalid lobby ID".into()),
        ApiError::WrongPin => WolfApiError::InvalidPin,
        ApiError::LobbyFull(id) => {
            WolfApiError::Conflict(format!("lobby {id} is not multi-user and already in use"))
        }
        ApiError::InvalidPairSecret => WolfApiError::NotFound("Invalid pair secret".into()),
    }
}

/// Lobby PINs are digit arrays; anything else is a bad request.
fn pin_digits(pin: &Option<Secret<Vec<i16>>>) -> ApiResult<Option<Vec<u8>>> {
    match pin {
        None => Ok(None),
        Some(p) => p
            .expose()
            .iter()
            .map(|d| u8::try_from(*d).ok().filter(|d| *d <= 9))
            .collect::<Option<Vec<u8>>>()
            .map(Some)
            .ok_or_else(|| WolfApiError::BadRequest("a lobby PIN is digits 0-9".into())),
    }
}

fn app_json(app: &AppConfig) -> wolf_api::App {
    wolf_api::App {
        title: app.title.clone(),
        id: app.id.to_string(),
        support_hdr: false,
        icon_png_path: None,
        h264_gst_pipeline: String::new(),
        hevc_gst_pipeline: String::new(),
        av1_gst_pipeline: String::new(),
        render_node: String::new(),
        opus_gst_pipeline: String::new(),
        start_virtual_compositor: false,
        start_audio_server: false,
        runner: Runner::default(),
        extra: Default::default(),
    }
}

/// Seconds since the session's client was last heard (as the idle monitor counts them).
fn idle_seconds(inner: &Inner, session_id: u64) -> u64 {
    let Some(launched_at) = lock(&inner.state)
        .sessions
        .get(&session_id)
        .map(|s| s.launched_at)
    else {
        return 0;
    };
    let idle = silent_for(
        &inner.host,
        session_id,
        launched_at,
        tokio::time::Instant::now(),
    );
    idle.as_secs()
}

fn session_json(inner: &Inner, s: &SessionInfo) -> Session {
    Session {
        client_ip: s.client_ip.to_string(),
        // The keys stay in the host half; the API never needs them.
        aes_key: Secret(String::new()),
        aes_iv: Secret(String::new()),
        rtsp_fake_ip: String::new(),
        video_width: s.width as i32,
        video_height: s.height as i32,
        video_refresh_rate: s.fps as i32,
        audio_channel_count: s.audio_channels as i32,
        app_id: Some(s.app_id.to_string()),
        // Wolf's session id is its client's id (see `host/wolf_ids.rs`).
        client_id: Some(s.client_id.to_string()),
        client_settings: None,
        client_unique_id: s.client_unique_id.clone(),
        idle_seconds: idle_seconds(inner, s.session_id),
        immediate_lobby_id: s.lobby.clone(),
    }
}

fn video_json(v: LobbyVideo) -> VideoSettings {
    VideoSettings {
        width: v.width as i32,
        height: v.height as i32,
        refresh_rate: v.refresh_rate as i32,
        wayland_render_node: String::new(),
        runner_render_node: String::new(),
        video_producer_buffer_caps: String::new(),
        video_source_mode: Some("test_pattern".into()),
    }
}

impl WolfBackend for HostApi {
    async fn list_apps(&self) -> ApiResult<Vec<wolf_api::App>> {
        Ok(self.host()?.apps().iter().map(app_json).collect())
    }

    async fn add_app(&self, app: wolf_api::App) -> ApiResult<()> {
        let id = app.id.trim().parse::<u32>().map_err(|_| {
            WolfApiError::BadRequest("Invalid app_id: the demo host needs a number".into())
        })?;
        self.host()?.add_app(AppConfig {
            id,
            title: app.title,
            box_art: None,
            lobby: None,
        });
        Ok(())
    }

    async fn delete_app(&self, id: String) -> ApiResult<()> {
        let host = self.host()?;
        match id.trim().parse::<u32>() {
            Ok(id) if host.remove_app(id) => Ok(()),
            _ => Err(WolfApiError::NotFound("Invalid app_id".into())),
        }
    }

    async fn list_clients(&self) -> ApiResult<Vec<PairedClient>> {
        Ok(self
            .host()?
            .paired_clients()
            .into_iter()
            .map(|c| PairedClient {
                client_id: c.client_id.to_string(),
                app_state_folder: c.client_id.to_string(),
                settings: Default::default(),
            })
            .collect())
    }

    async fn unpair_client(&self, client_id: String) -> ApiResult<()> {
        let host = self.host()?;
        match client_id.trim().parse::<u64>() {
            Ok(id) if host.unpair(id) => Ok(()),
            _ => Err(WolfApiError::NotFound("Client not found".into())),
        }
    }

    async fn list_sessions(&self) -> ApiResult<Vec<Session>> {
        let host = self.host()?;
        Ok(host
            .sessions()
            .iter()
            .map(|s| session_json(&host.inner, s))
            .collect())
    }

    async fn stop_session(&self, session_id: SessionId) -> ApiResult<()> {
        let host = self.host()?;
        host.stop_session(live(&host, session_id)?).map_err(map_err)
    }

    async fn list_lobbies(&self) -> ApiResult<Vec<Lobby>> {
        let host = self.host()?;
        let meta = lock(&self.lobbies).clone();
        Ok(host
            .lobbies()
            .into_iter()
            .map(|l| {
                let m = meta.get(&l.id);
                Lobby {
                    id: l.id.clone(),
                    name: l.name,
                    icon_png_path: m.and_then(|m| m.icon_png_path.clone()),
                    multi_user: l.multi_user,
                    started_by_profile_id: m.map(|m| m.profile_id.clone()).unwrap_or_default(),
                    pin_required: l.has_pin,
                    stop_when_everyone_leaves: l.stop_when_everyone_leaves,
                    runner: m.map(|m| m.runner.clone()).unwrap_or_default(),
                    connected_sessions: l
                        .members
                        .iter()
                        .map(|m| host.wolf_session_id(*m).to_string())
                        .collect(),
                }
            })
            .collect())
    }

    async fn create_lobby(&self, req: CreateLobbyRequest) -> ApiResult<String> {
        let host = self.host()?;
        let dim = |v: i32, what: &str| {
            u32::try_from(v)
                .ok()
                .filter(|v| (1..=8192).contains(v))
                .ok_or_else(|| {
                    WolfApiError::BadRequest(format!("video_settings.{what} out of range"))
                })
        };
        let mut settings = LobbySettings::new(req.name.clone());
        settings.multi_user = req.multi_user;
        settings.stop_when_everyone_leaves = req.stop_when_everyone_leaves;
        settings.pin = pin_digits(&req.pin)?;
        settings.video = LobbyVideo {
            width: dim(req.video_settings.width, "width")?,
            height: dim(req.video_settings.height, "height")?,
            refresh_rate: dim(req.video_settings.refresh_rate, "refresh_rate")?,
        };
        settings.audio_channels = u32::try_from(req.audio_settings.channel_count)
            .ok()
            .filter(|c| (1..=8).contains(c))
            .ok_or_else(|| {
                WolfApiError::BadRequest("audio_settings.channel_count out of range".into())
            })?;
        // The metadata goes in before the lobby exists, so its CreateLobbyEvent can carry it.
        let meta = LobbyMeta {
            profile_id: req.profile_id,
            icon_png_path: req.icon_png_path,
            runner: req.runner,
            runner_state_folder: req.runner_state_folder,
        };
        let pending = format!("pending:{}", req.name);
        lock(&self.lobbies).insert(pending.clone(), meta.clone());
        let id = host.create_lobby(settings);
        let mut lobbies = lock(&self.lobbies);
        lobbies.remove(&pending);
        lobbies.insert(id.clone(), meta);
        Ok(id)
    }

    async fn join_lobby(&self, req: JoinLobbyRequest) -> ApiResult<()> {
        let pin = pin_digits(&req.pin)?;
        let host = self.host()?;
        let session = live(&host, req.moonlight_session_id)?;
        host.join_lobby(&req.lobby_id, session, pin.as_deref())
            .map_err(map_err)
    }

    async fn leave_lobby(&self, req: LeaveLobbyRequest) -> ApiResult<()> {
        let host = self.host()?;
        let session = live(&host, req.moonlight_session_id)?;
        host.leave_lobby(&req.lobby_id, session).map_err(map_err)
    }

    async fn stop_lobby(&self, req: StopLobbyRequest) -> ApiResult<()> {
        let pin = pin_digits(&req.pin)?;
        self.host()?
            .stop_lobby(&req.lobby_id, pin.as_deref())
            .map_err(map_err)?;
        lock(&self.lobbies).remove(&req.lobby_id);
        Ok(())
    }

    async fn pending_pairs(&self) -> ApiResult<Vec<wolf_api::PendingPair>> {
        Ok(self
            .host()?
            .pending_pairs()
            .into_iter()
            .map(|p| wolf_api::PendingPair {
                pair_secret: p.pair_secret,
                client_ip: p.client_ip.to_string(),
                pin: None,
            })
            .collect())
    }

    async fn pair_client(&self, req: PairRequest) -> ApiResult<()> {
        self.host()?
            .submit_pair_pin(&req.pair_secret, req.pin.expose())
            .map_err(map_err)
    }

    fn subscribe(&self) -> broadcast::Receiver<WolfEvent> {
        self.events.subscribe()
    }

    async fn input_events(
        &self,
        session_id: SessionId,
        since: Option<u64>,
    ) -> ApiResult<Vec<wolf_api::InputRecord>> {
        let host = self.host()?;
        let id = host
            .newest_session(session_id.0)
            .ok_or_else(|| WolfApiError::NotFound("Invalid session_id".into()))?;
        let started = lock(&host.inner.state).sessions.get(&id).map(|s| s.started);
        let records = host.inputs(id);
        if started.is_none() && records.is_empty() {
            return Err(WolfApiError::NotFound("Invalid session_id".into()));
        }
        let origin = started
            .or_else(|| records.first().map(|r| r.at))
            .unwrap_or_else(Instant::now);
        Ok(records
            .iter()
            .filter(|r| since.is_none_or(|s| r.seq > s))
            .map(|r| wolf_api::InputRecord {
                seq: r.seq,
                at_ms: r.at.saturating_duration_since(origin).as_millis() as u64,
                event: InputEventJson::from(&r.event),
            })
            .collect())
    }

    async fn mic_report(&self, session_id: SessionId) -> ApiResult<crate::mic::MicReport> {
        let host = self.host()?;
        host.newest_session(session_id.0)
            .and_then(|id| host.mic(id))
            .ok_or_else(|| WolfApiError::NotFound("Invalid session_id".into()))
    }

    async fn strict_status(&self) -> ApiResult<wolf_api::StrictStatus> {
        let host = self.host()?;
        Ok(wolf_api::StrictStatus {
            wolf_strict: host.wolf_strict(),
            disconnects_after_cancel: host.disconnects_after_cancel(),
        })
    }

    async fn faults(&self) -> ApiResult<FaultKnobs> {
        let host = self.host()?;
        Ok(knobs(&host))
    }

    async fn set_faults(&self, patch: FaultKnobsPatch) -> ApiResult<FaultKnobs> {
        patch.validate()?;
        let host = self.host()?;
        let f = host.faults();
        let pct = |v: f64| v.round() as u32;
        if let Some(v) = patch.drop_pct {
            f.set_drop_percent(pct(v));
        }
        if let Some(v) = patch.reorder_pct {
            f.set_reorder_percent(pct(v));
        }
        if let Some(v) = patch.corrupt_pct {
            f.set_corrupt_percent(pct(v));
        }
        if patch.delay_pct.is_some() || patch.delay_ms.is_some() {
            let (p, d) = f.media().delay();
            f.set_delay(
                patch.delay_pct.map_or(p, pct),
                patch.delay_ms.map_or(d, Duration::from_millis),
            );
        }
        if let Some(ms) = patch.slow_teardown_ms {
            f.set_teardown_delay(Duration::from_millis(ms));
        }
        if let Some(v) = patch.refuse_launches {
            f.set_refuse_launches(v);
        }
        let mut after = knobs(&host);
        if patch.crash == Some(true) {
            tracing::warn!("crash requested through the Wolf API (fault injection)");
            crash_now(&host.inner);
            after.crash = true;
        }
        Ok(after)
    }
}

fn knobs(host: &HostHandle) -> FaultKnobs {
    let f = host.faults();
    let (delay_pct, delay) = f.media().delay();
    FaultKnobs {
        drop_pct: f64::from(f.media().drop_percent()),
        reorder_pct: f64::from(f.media().reorder_percent()),
        corrupt_pct: f64::from(f.media().corrupt_percent()),
        delay_pct: f64::from(delay_pct),
        delay_ms: delay.as_millis() as u64,
        slow_teardown_ms: f.teardown_delay().as_millis() as u64,
        refuse_launches: f.refuse_launches(),
        crash: host.crash_requested(),
    }
}

/// What a crash does at once from inside: media and lobbies vanish without a word to clients,
/// the API refuses everything, and the owner is told to drop the rest (the binary exits).
fn crash_now(inner: &Inner) {
    {
        let mut state = lock(&inner.state);
        for s in state.sessions.values_mut() {
            if let Some(p) = s.producer.take() {
                p.abort();
            }
            s.feed = None;
        }
        state.lobbies.clear();
    }
    inner.crash.send_replace(true);
}

/// Turns host events into Wolf events, in order. Ends when the host's event sender is gone.
pub(crate) async fn translate_events(
    inner: Weak<Inner>,
    mut from: broadcast::Receiver<DemoEvent>,
    out: Translation,
) {
    loop {
        let event = match from.recv().await {
            Ok(e) => e,
            Err(broadcast::error::RecvError::Lagged(n)) => {
                tracing::warn!(missed = n, "Wolf API event translation fell behind");
                continue;
            }
            Err(broadcast::error::RecvError::Closed) => return,
        };
        let Some(host) = inner.upgrade() else {
            return;
        };
        for e in translate(&host, &out.lobbies, event) {
            let _ = out.to.send(e);
        }
    }
}

fn translate(
    inner: &Inner,
    lobbies: &Mutex<HashMap<String, LobbyMeta>>,
    event: DemoEvent,
) -> Vec<WolfEvent> {
    match event {
        DemoEvent::SessionStarted {
            session_id,
            client_id,
            app_id,
        } => {
            let info = lock(&inner.state)
                .sessions
                .get(&session_id)
                .map(|s| s.info.clone());
            let session = match info {
                Some(info) => session_json(inner, &info),
                None => Session {
                    client_ip: String::new(),
                    aes_key: Secret(String::new()),
                    aes_iv: Secret(String::new()),
                    rtsp_fake_ip: String::new(),
                    video_width: 0,
                    video_height: 0,
                    video_refresh_rate: 0,
                    audio_channel_count: 0,
                    app_id: Some(app_id.to_string()),
                    client_id: Some(client_id.to_string()),
                    client_settings: None,
                    client_unique_id: String::new(),
                    idle_seconds: 0,
                    immediate_lobby_id: None,
                },
            };
            vec![WolfEvent::SessionStarted(session)]
        }
        // RTSP PLAY has no Wolf event.
        DemoEvent::StreamStarted { .. } => Vec::new(),
        DemoEvent::SessionStopped { client_id, .. } => {
            vec![WolfEvent::SessionStopped(SessionEvent {
                session_id: SessionId(client_id),
            })]
        }
        DemoEvent::LobbyCreated { lobby_id, name } => {
            let info = lock(&inner.state)
                .lobbies
                .get(&lobby_id)
                .map(|l| l.info.clone());
            let (multi_user, stop_when_everyone_leaves, video, audio_channels) = info
                .map(|l| {
                    (
                        l.multi_user,
                        l.stop_when_everyone_leaves,
                        l.video,
                        l.audio_channels,
                    )
                })
                .unwrap_or((true, false, LobbyVideo::default(), 2));
            // Created through the API: its metadata is under the id, or still under the name.
            let meta = {
                let lobbies = lock(lobbies);
                lobbies
                    .get(&lobby_id)
                    .or_else(|| lobbies.get(&format!("pending:{name}")))
                    .cloned()
            };
            vec![WolfEvent::LobbyCreated(LobbyCreated {
                id: lobby_id,
                profile_id: meta
                    .as_ref()
                    .map(|m| m.profile_id.clone())
                    .unwrap_or_default(),
                name,
                icon_png_path: meta.as_ref().and_then(|m| m.icon_png_path.clone()),
                multi_user,
                stop_when_everyone_leaves,
                video_settings: video_json(video),
                audio_settings: AudioSettings {
                    channel_count: audio_channels as i32,
                },
                runner_state_folder: meta
                    .as_ref()
                    .map(|m| m.runner_state_folder.clone())
                    .unwrap_or_default(),
                runner: meta.map(|m| m.runner).unwrap_or_default(),
            })]
        }
        DemoEvent::LobbyStopped { lobby_id } => {
            lock(lobbies).remove(&lobby_id);
            vec![WolfEvent::LobbyStopped(LobbyStopped { lobby_id })]
        }
        DemoEvent::JoinedLobby {
            session_id,
            lobby_id,
        } => {
            let wolf_id = SessionId(wolf_id_of(inner, session_id));
            vec![
                WolfEvent::SessionJoinedLobby(LobbyMembership {
                    lobby_id: lobby_id.clone(),
                    moonlight_session_id: wolf_id,
                }),
                WolfEvent::ProducerSwitched(ProducerSwitch {
                    session_id: wolf_id,
                    interpipe_src_id: format!("{lobby_id}_video"),
                }),
            ]
        }
        DemoEvent::LeftLobby {
            session_id,
            lobby_id,
        } => {
            let wolf_id = SessionId(wolf_id_of(inner, session_id));
            let mut out = vec![WolfEvent::SessionLeftLobby(LobbyMembership {
                lobby_id,
                moonlight_session_id: wolf_id,
            })];
            // A session that is still live switches back to its own producer.
            if lock(&inner.state).sessions.contains_key(&session_id) {
                out.push(WolfEvent::ProducerSwitched(ProducerSwitch {
                    session_id: wolf_id,
                    interpipe_src_id: format!("{wolf_id}_video"),
                }));
            }
            out
        }
        DemoEvent::PairRequested { client_ip, .. } => {
            vec![WolfEvent::PairRequested(PairSignal {
                client_ip: client_ip.to_string(),
                host_ip: inner.config.bind_ip.to_string(),
            })]
        }
    }
}
