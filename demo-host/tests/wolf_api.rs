//! The Wolf HTTP API served from an in-memory backend, driven over a real Unix socket and real TCP
//! with hand-written HTTP/1.0 (what Wolf speaks) and with hyper's HTTP/1.1 client (what HELIX's Go
//! client speaks).

#[path = "common/wolf_http.rs"]
mod wolf_http;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use demo_host::wolf_api::*;
use gamestream::input::InputEvent;
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::sync::broadcast;
use wolf_http::{Io, Reply, Target};

const T: Duration = Duration::from_secs(10);

// ---------------------------------------------------------------------------------------------
// In-memory backend: a small real host state machine (apps, clients, sessions, lobbies, pairs).

struct LobbyState {
    lobby: Lobby,
    pin: Option<Vec<i16>>,
}

#[derive(Default)]
struct State {
    apps: Vec<App>,
    clients: Vec<PairedClient>,
    sessions: BTreeMap<u64, Session>,
    next_session: u64,
    lobbies: Vec<LobbyState>,
    next_lobby: u64,
    pairs: Vec<(String, String)>,
    inputs: BTreeMap<u64, Vec<InputRecord>>,
    faults: FaultKnobs,
}

struct MemHost {
    st: Mutex<State>,
    events: broadcast::Sender<WolfEvent>,
}

fn nf(msg: &str) -> WolfApiError {
    WolfApiError::NotFound(msg.into())
}

/// Removes the items `matches` picks; `NotFound(missing)` if there were none.
fn remove_or_not_found<T>(
    list: &mut Vec<T>,
    matches: impl Fn(&T) -> bool,
    missing: &str,
) -> ApiResult<()> {
    let n = list.len();
    list.retain(|x| !matches(x));
    if list.len() == n {
        return Err(nf(missing));
    }
    Ok(())
}

impl MemHost {
    fn new() -> Arc<Self> {
        Arc::new(MemHost {
            st: Mutex::new(State::default()),
            events: broadcast::channel(64).0,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.st.lock().expect("state lock")
    }

    fn emit(&self, ev: WolfEvent) {
        let _ = self.events.send(ev);
    }

    /// A Moonlight client starts pairing (what /pair phase 1 does in the real host).
    fn request_pair(&self, client_ip: &str) -> String {
        let secret = format!("secret-{}", self.lock().pairs.len() + 1);
        self.lock()
            .pairs
            .push((secret.clone(), client_ip.to_string()));
        self.emit(WolfEvent::PairRequested(PairSignal {
            client_ip: client_ip.into(),
            host_ip: "127.0.0.1".into(),
        }));
        secret
    }

    /// What the control stream does when it decodes an input packet.
    fn push_input(&self, session: u64, ev: &InputEvent) {
        let mut st = self.lock();
        if let Some(list) = st.inputs.get_mut(&session) {
            let seq = list.len() as u64 + 1;
            list.push(InputRecord {
                seq,
                at_ms: seq * 10,
                event: InputEventJson::from(ev),
            });
        }
    }

    fn lobby_check<'a>(
        st: &'a mut State,
        id: &str,
        pin: &Option<Secret<Vec<i16>>>,
    ) -> ApiResult<&'a mut LobbyState> {
        let l = st
            .lobbies
            .iter_mut()
            .find(|l| l.lobby.id == id)
            .ok_or_else(|| nf("Invalid lobby ID"))?;
        if l.pin.as_ref() != pin.as_ref().map(|p| &p.0) {
            return Err(WolfApiError::InvalidPin);
        }
        Ok(l)
    }
}

impl WolfBackend for MemHost {
    async fn list_apps(&self) -> ApiResult<Vec<App>> {
        Ok(self.lock().apps.clone())
    }
    async fn add_app(&self, app: App) -> ApiResult<()> {
        let mut st = self.lock();
        if st.apps.iter().any(|a| a.id == app.id) {
            return Err(WolfApiError::Conflict("app id exists".into()));
        }
        st.apps.push(app);
        Ok(())
    }
    async fn delete_app(&self, id: String) -> ApiResult<()> {
        remove_or_not_found(&mut self.lock().apps, |a| a.id == id, "Invalid app_id")
    }
    async fn list_clients(&self) -> ApiResult<Vec<PairedClient>> {
        Ok(self.lock().clients.clone())
    }
    async fn unpair_client(&self, client_id: String) -> ApiResult<()> {
        remove_or_not_found(
            &mut self.lock().clients,
            |c| c.client_id == client_id,
            "Client not found",
        )
    }
    async fn list_sessions(&self) -> ApiResult<Vec<Session>> {
        Ok(self.lock().sessions.values().cloned().collect())
    }
    async fn add_session(&self, mut s: Session) -> ApiResult<SessionId> {
        let ev = {
            let mut st = self.lock();
            if st.faults.refuse_launches {
                return Err(WolfApiError::Unavailable("launches refused".into()));
            }
            if let Some(app) = &s.app_id {
                if !st.apps.iter().any(|a| &a.id == app) {
                    return Err(nf("Invalid app_id"));
                }
            }
            st.next_session += 1;
            let id = st.next_session;
            s.client_id = Some(id.to_string());
            st.sessions.insert(id, s.clone());
            st.inputs.insert(id, Vec::new());
            (id, s)
        };
        self.emit(WolfEvent::SessionStarted(ev.1));
        Ok(SessionId(ev.0))
    }
    async fn stop_session(&self, id: SessionId) -> ApiResult<()> {
        let left: Vec<String> = {
            let mut st = self.lock();
            if st.sessions.remove(&id.0).is_none() {
                return Err(nf("Invalid session_id"));
            }
            st.inputs.remove(&id.0);
            let sid = id.to_string();
            let mut left = Vec::new();
            for l in &mut st.lobbies {
                if l.lobby.connected_sessions.contains(&sid) {
                    l.lobby.connected_sessions.retain(|s| s != &sid);
                    left.push(l.lobby.id.clone());
                }
            }
            left
        };
        for lobby_id in left {
            self.emit(WolfEvent::SessionLeftLobby(LobbyMembership {
                lobby_id,
                moonlight_session_id: id,
            }));
        }
        self.emit(WolfEvent::SessionStopped(SessionEvent { session_id: id }));
        Ok(())
    }
    async fn list_lobbies(&self) -> ApiResult<Vec<Lobby>> {
        Ok(self
            .lock()
            .lobbies
            .iter()
            .map(|l| l.lobby.clone())
            .collect())
    }
    async fn create_lobby(&self, req: CreateLobbyRequest) -> ApiResult<String> {
        let id = {
            let mut st = self.lock();
            st.next_lobby += 1;
            let id = format!("lobby-{}", st.next_lobby);
            st.lobbies.push(LobbyState {
                lobby: Lobby {
                    id: id.clone(),
                    name: req.name.clone(),
                    icon_png_path: req.icon_png_path.clone(),
                    multi_user: req.multi_user,
                    started_by_profile_id: req.profile_id.clone(),
                    pin_required: req.pin.is_some(),
                    stop_when_everyone_leaves: req.stop_when_everyone_leaves,
                    runner: req.runner.clone(),
                    connected_sessions: Vec::new(),
                },
                pin: req.pin.as_ref().map(|p| p.0.clone()),
            });
            id
        };
        self.emit(WolfEvent::LobbyCreated(LobbyCreated {
            id: id.clone(),
            profile_id: req.profile_id,
            name: req.name,
            icon_png_path: req.icon_png_path,
            multi_user: req.multi_user,
            stop_when_everyone_leaves: req.stop_when_everyone_leaves,
            video_settings: req.video_settings,
            audio_settings: req.audio_settings,
            runner_state_folder: req.runner_state_folder,
            runner: req.runner,
        }));
        Ok(id)
    }
    async fn join_lobby(&self, req: JoinLobbyRequest) -> ApiResult<()> {
        {
            let mut st = self.lock();
            if !st.sessions.contains_key(&req.moonlight_session_id.0) {
                // Checked after the lobby/PIN, as Wolf does; reorder by re-checking below.
                Self::lobby_check(&mut st, &req.lobby_id, &req.pin)?;
                return Err(nf("Invalid session_id"));
            }
            let l = Self::lobby_check(&mut st, &req.lobby_id, &req.pin)?;
            let sid = req.moonlight_session_id.to_string();
            if !l.lobby.multi_user && !l.lobby.connected_sessions.is_empty() {
                return Err(WolfApiError::Conflict("lobby is single-user".into()));
            }
            if !l.lobby.connected_sessions.contains(&sid) {
                l.lobby.connected_sessions.push(sid);
            }
        }
        self.emit(WolfEvent::SessionJoinedLobby(LobbyMembership {
            lobby_id: req.lobby_id,
            moonlight_session_id: req.moonlight_session_id,
        }));
        Ok(())
    }
    async fn leave_lobby(&self, req: LeaveLobbyRequest) -> ApiResult<()> {
        let stop = {
            let mut st = self.lock();
            let l = st
                .lobbies
                .iter_mut()
                .find(|l| l.lobby.id == req.lobby_id)
                .ok_or_else(|| nf("Invalid lobby ID"))?;
            let sid = req.moonlight_session_id.to_string();
            if !l.lobby.connected_sessions.contains(&sid) {
                return Err(nf("Invalid session_id"));
            }
            l.lobby.connected_sessions.retain(|s| s != &sid);
            let stop = l.lobby.connected_sessions.is_empty() && l.lobby.stop_when_everyone_leaves;
            if stop {
                st.lobbies.retain(|l| l.lobby.id != req.lobby_id);
            }
            stop
        };
        self.emit(WolfEvent::SessionLeftLobby(LobbyMembership {
            lobby_id: req.lobby_id.clone(),
            moonlight_session_id: req.moonlight_session_id,
        }));
        if stop {
            self.emit(WolfEvent::LobbyStopped(LobbyStopped {
                lobby_id: req.lobby_id,
            }));
        }
        Ok(())
    }
    async fn stop_lobby(&self, req: StopLobbyRequest) -> ApiResult<()> {
        {
            let mut st = self.lock();
            Self::lobby_check(&mut st, &req.lobby_id, &req.pin)?;
            st.lobbies.retain(|l| l.lobby.id != req.lobby_id);
        }
        self.emit(WolfEvent::LobbyStopped(LobbyStopped {
            lobby_id: req.lobby_id,
        }));
        Ok(())
    }
    async fn pending_pairs(&self) -> ApiResult<Vec<PendingPair>> {
        Ok(self
            .lock()
            .pairs
            .iter()
            .map(|(s, ip)| PendingPair {
                pair_secret: s.clone(),
                client_ip: ip.clone(),
                pin: None,
            })
            .collect())
    }
    async fn pair_client(&self, req: PairRequest) -> ApiResult<()> {
        let mut st = self.lock();
        let i = st
            .pairs
            .iter()
            .position(|(s, _)| s == &req.pair_secret)
            .ok_or_else(|| nf("Invalid pair secret"))?;
        st.pairs.remove(i);
        let n = st.clients.len();
        st.clients.push(PairedClient {
            client_id: format!("{}", 1_000_000_007u64 + n as u64),
            app_state_folder: format!("/state/{n}"),
            settings: ClientSettings::default(),
        });
        Ok(())
    }
    fn subscribe(&self) -> broadcast::Receiver<WolfEvent> {
        self.events.subscribe()
    }
    async fn input_events(
        &self,
        session_id: SessionId,
        since: Option<u64>,
    ) -> ApiResult<Vec<InputRecord>> {
        let st = self.lock();
        let list = st
            .inputs
            .get(&session_id.0)
            .ok_or_else(|| nf("Invalid session_id"))?;
        Ok(list
            .iter()
            .filter(|r| since.is_none_or(|s| r.seq > s))
            .cloned()
            .collect())
    }
    async fn faults(&self) -> ApiResult<FaultKnobs> {
        Ok(self.lock().faults.clone())
    }
    async fn set_faults(&self, patch: FaultKnobsPatch) -> ApiResult<FaultKnobs> {
        let mut st = self.lock();
        st.faults.apply(&patch)?;
        Ok(st.faults.clone())
    }
}

// ---------------------------------------------------------------------------------------------
// A hand-written HTTP/1.0 client (Wolf's protocol), over a Unix socket or TCP.

/// The Wolf API `server` listens on.
fn target_of(server: &WolfApiServer) -> Target {
    match server.listen_addr() {
        ListenAddr::Unix(p) => Target::Unix(p.clone()),
        ListenAddr::Tcp(a) => Target::Tcp(*a),
    }
}

async fn http10(target: &Target, method: &str, path: &str, body: Option<&str>) -> Reply {
    wolf_http::http10(target, method, path, body, T).await
}

async fn raw(target: &Target, request: &[u8]) -> Reply {
    wolf_http::raw(target, request, T).await
}

/// A request that must succeed: status 200 and `"success": true`; the reply.
async fn succeeds(target: &Target, method: &str, path: &str, body: Option<&str>) -> Value {
    let r = http10(target, method, path, body).await;
    assert_eq!(
        r.status,
        200,
        "{method} {path}: {}",
        String::from_utf8_lossy(&r.body)
    );
    let v = r.json();
    assert_eq!(v["success"], true, "{v}");
    v
}

async fn get(target: &Target, path: &str) -> Value {
    succeeds(target, "GET", path, None).await
}

async fn post(target: &Target, path: &str, body: Value) -> Value {
    succeeds(target, "POST", path, Some(&body.to_string())).await
}

/// POST expecting an error: checks the status and the Wolf error envelope, returns the message.
async fn post_err(target: &Target, path: &str, body: &str, status: u16) -> String {
    let r = http10(target, "POST", path, Some(body)).await;
    assert_eq!(
        r.status,
        status,
        "POST {path} {body}: {}",
        String::from_utf8_lossy(&r.body)
    );
    let v = r.json();
    assert_eq!(v["success"], false, "{v}");
    let obj = v.as_object().expect("object");
    assert_eq!(obj.len(), 2, "only success and error: {v}");
    v["error"].as_str().expect("error string").to_string()
}

/// [`post_err`], asserting the message is `message`.
async fn assert_post_err(target: &Target, path: &str, body: &str, status: u16, message: &str) {
    assert_eq!(
        post_err(target, path, body, status).await,
        message,
        "POST {path} {body}"
    );
}

/// POSTs `body` to `path`, which succeeds; the same request again is a 404 with `gone` (the
/// first one took effect, once).
async fn post_then_gone(target: &Target, path: &str, body: Value, gone: &str) {
    post(target, path, body.clone()).await;
    assert_post_err(target, path, &body.to_string(), 404, gone).await;
}

/// [`get_err`], asserting the message is `message`.
async fn assert_get_err(target: &Target, path: &str, status: u16, message: &str) {
    assert_eq!(get_err(target, path, status).await, message, "GET {path}");
}

async fn get_err(target: &Target, path: &str, status: u16) -> String {
    let r = http10(target, "GET", path, None).await;
    assert_eq!(r.status, status, "GET {path}");
    let v = r.json();
    assert_eq!(v["success"], false, "{v}");
    v["error"].as_str().expect("error string").to_string()
}

/// The Wolf API of `host` ([`fast_opts`]) on a Unix socket in a fresh directory: the server, the
/// socket's path and the directory (which must outlive the server).
async fn serve_on_unix(host: &Arc<MemHost>) -> (WolfApiServer, PathBuf, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("wolf.sock");
    let server = WolfApiServer::serve_unix_with(&path, host.clone(), fast_opts())
        .await
        .expect("serve");
    (server, path, dir)
}

/// The Wolf API of `host` on an ephemeral loopback TCP port.
async fn serve_on_loopback(host: &Arc<MemHost>, opts: ApiOptions) -> WolfApiServer {
    WolfApiServer::serve_tcp_with("127.0.0.1:0".parse().expect("addr"), host.clone(), opts)
        .await
        .expect("serve")
}

/// [`fast_opts`] with this close grace period.
fn closing_within(close_grace: Duration) -> ApiOptions {
    ApiOptions {
        close_grace,
        ..fast_opts()
    }
}

fn fast_opts() -> ApiOptions {
    ApiOptions {
        keepalive: Duration::from_millis(200),
        ..ApiOptions::default()
    }
}

fn lobby_body(pin: Option<Vec<i16>>) -> Value {
    let mut v = json!({
        "profile_id": "moongate",
        "name": "Lobby A",
        "multi_user": true,
        "stop_when_everyone_leaves": false,
        "video_settings": {"width": 1280, "height": 720, "refresh_rate": 60,
            "wayland_render_node": "/dev/dri/renderD128", "runner_render_node": "/dev/dri/renderD128",
            "video_producer_buffer_caps": "video/x-raw"},
        "audio_settings": {"channel_count": 2},
        "runner_state_folder": "/state/lobby",
        "runner": {"type": "process", "run_cmd": "sleep infinity"}
    });
    if let Some(p) = pin {
        v["pin"] = json!(p);
    }
    v
}

fn session_body(app_id: &str) -> Value {
    json!({
        "app_id": app_id,
        "client_id": "1000000007",
        "client_ip": "10.0.0.7",
        "client_unique_id": "0123456789ABCDEF",
        "aes_key": "00112233445566778899aabbccddeeff",
        "aes_iv": "0000000000000000000000000000abcd",
        "rtsp_fake_ip": "169.254.0.1",
        "video_width": 1920,
        "video_height": 1080,
        "video_refresh_rate": 60,
        "audio_channel_count": 2,
        "client_settings": {"run_uid": 1000, "run_gid": 1000, "controllers_override": ["XBOX"],
            "mouse_acceleration": 1.5, "v_scroll_acceleration": 1.0, "h_scroll_acceleration": 1.0}
    })
}

/// Drives every endpoint once through `target`, checking Wolf's JSON shapes field by field.
async fn exercise_all(target: &Target, host: &MemHost) {
    // --- pairing ---------------------------------------------------------------------------
    assert_eq!(
        get(target, "/api/v1/pair/pending").await["requests"],
        json!([])
    );
    let secret = host.request_pair("10.0.0.7");
    let v = get(target, "/api/v1/pair/pending").await;
    assert_eq!(
        v,
        json!({"success": true, "requests": [{"pair_secret": secret, "client_ip": "10.0.0.7"}]})
    );
    assert_post_err(
        target,
        "/api/v1/pair/client",
        r#"{"pair_secret":"nope","pin":"1234"}"#,
        404,
        "Invalid pair secret",
    )
    .await;
    assert_eq!(
        post(
            target,
            "/api/v1/pair/client",
            json!({"pair_secret": secret, "pin": "1234"})
        )
        .await,
        json!({"success": true})
    );
    assert_eq!(
        get(target, "/api/v1/pair/pending").await["requests"],
        json!([])
    );
    let v = get(target, "/api/v1/clients").await;
    let clients = v["clients"].as_array().expect("clients");
    assert_eq!(clients.len(), 1);
    let c = &clients[0];
    assert_eq!(c["client_id"], "1000000007");
    assert!(c["client_id"].is_string(), "client_id is a decimal string");
    assert_eq!(c["app_state_folder"], "/state/0");
    assert_eq!(
        c["settings"],
        json!({"run_uid": 1000, "run_gid": 1000, "controllers_override": [],
            "mouse_acceleration": 1.0, "v_scroll_acceleration": 1.0, "h_scroll_acceleration": 1.0})
    );

    // --- apps ------------------------------------------------------------------------------
    assert_eq!(
        get(target, "/api/v1/apps").await,
        json!({"success": true, "apps": []})
    );
    post(
        target,
        "/api/v1/apps/add",
        json!({"title": "Test Pattern", "id": "pattern", "support_hdr": false,
            "h264_gst_pipeline": "", "hevc_gst_pipeline": "", "av1_gst_pipeline": "",
            "render_node": "/dev/dri/renderD128", "opus_gst_pipeline": "",
            "start_virtual_compositor": false, "start_audio_server": false,
            "runner": {"type": "docker", "name": "x", "image": "img", "mounts": [], "env": ["A=1"],
                "devices": [], "ports": []},
            "video_producer_source": "pattern"}),
    )
    .await;
    // Minimal app: Wolf's defaults fill the rest.
    post(
        target,
        "/api/v1/apps/add",
        json!({"title": "Minimal", "id": "min"}),
    )
    .await;
    let v = get(target, "/api/v1/apps").await;
    let apps = v["apps"].as_array().expect("apps");
    assert_eq!(apps.len(), 2);
    assert_eq!(
        apps[0],
        json!({"title": "Test Pattern", "id": "pattern", "support_hdr": false,
            "h264_gst_pipeline": "", "hevc_gst_pipeline": "", "av1_gst_pipeline": "",
            "render_node": "/dev/dri/renderD128", "opus_gst_pipeline": "",
            "start_virtual_compositor": false, "start_audio_server": false,
            "runner": {"type": "docker", "name": "x", "image": "img", "mounts": [], "env": ["A=1"],
                "devices": [], "ports": []},
            "video_producer_source": "pattern"})
    );
    assert_eq!(apps[1]["runner"], json!({"type": "process"}));
    assert_eq!(apps[1]["start_audio_server"], false);
    assert!(apps[1].get("icon_png_path").is_none());
    post(target, "/api/v1/apps/delete", json!({"id": "min"})).await;
    for (path, body, status, message) in [
        (
            "/api/v1/apps/delete",
            r#"{"id":"min"}"#,
            404,
            "Invalid app_id",
        ),
        (
            "/api/v1/apps/add",
            r#"{"title":"dup","id":"pattern"}"#,
            409,
            "app id exists",
        ),
    ] {
        assert_post_err(target, path, body, status, message).await;
    }

    // --- sessions --------------------------------------------------------------------------
    assert_eq!(get(target, "/api/v1/sessions").await["sessions"], json!([]));
    let v = post(target, "/api/v1/sessions/add", session_body("pattern")).await;
    assert_eq!(v, json!({"success": true, "session_id": "1"}));
    let v = get(target, "/api/v1/sessions").await;
    let s = &v["sessions"][0];
    assert_eq!(s["client_id"], "1", "client_id is the session id");
    assert_eq!(s["app_id"], "pattern");
    assert_eq!(s["client_ip"], "10.0.0.7");
    assert_eq!(s["client_unique_id"], "0123456789ABCDEF");
    assert_eq!(s["aes_key"], "00112233445566778899aabbccddeeff");
    assert_eq!(s["aes_iv"], "0000000000000000000000000000abcd");
    assert_eq!(s["rtsp_fake_ip"], "169.254.0.1");
    assert_eq!(s["video_width"], 1920);
    assert_eq!(s["video_height"], 1080);
    assert_eq!(s["video_refresh_rate"], 60);
    assert_eq!(s["audio_channel_count"], 2);
    assert_eq!(s["idle_seconds"], 0);
    assert_eq!(
        s["client_settings"]["controllers_override"],
        json!(["XBOX"])
    );
    assert_eq!(s["client_settings"]["mouse_acceleration"], 1.5);
    assert!(s.get("immediate_lobby_id").is_none());
    assert_post_err(
        target,
        "/api/v1/sessions/add",
        &session_body("nope").to_string(),
        404,
        "Invalid app_id",
    )
    .await;
    let v = post(target, "/api/v1/sessions/add", session_body("pattern")).await;
    assert_eq!(v["session_id"], "2");

    // --- input sink (moongate) -------------------------------------------------------------
    host.push_input(
        1,
        &InputEvent::KeyDown {
            flags: 0,
            key_code: 0x41,
            modifiers: 0,
        },
    );
    host.push_input(1, &InputEvent::MouseMoveRelative { dx: -3, dy: 7 });
    let v = get(target, "/api/v1/moongate/input?session_id=1").await;
    assert_eq!(v["session_id"], "1");
    assert_eq!(
        v["events"],
        json!([
            {"seq": 1, "at_ms": 10, "event": {"type": "key_down", "flags": 0, "key_code": 65, "modifiers": 0}},
            {"seq": 2, "at_ms": 20, "event": {"type": "mouse_move_relative", "dx": -3, "dy": 7}}
        ])
    );
    let v = get(target, "/api/v1/moongate/input?session_id=1&since=1").await;
    assert_eq!(v["events"].as_array().map(Vec::len), Some(1));
    assert_eq!(v["events"][0]["seq"], 2);
    assert_eq!(
        get(target, "/api/v1/moongate/input?session_id=2").await["events"],
        json!([])
    );
    assert_get_err(
        target,
        "/api/v1/moongate/input?session_id=99",
        404,
        "Invalid session_id",
    )
    .await;
    get_err(target, "/api/v1/moongate/input", 400).await;
    get_err(target, "/api/v1/moongate/input?session_id=abc", 400).await;
    get_err(target, "/api/v1/moongate/input?session_id=1&since=x", 400).await;

    // --- lobbies ---------------------------------------------------------------------------
    assert_eq!(get(target, "/api/v1/lobbies").await["lobbies"], json!([]));
    let v = post(
        target,
        "/api/v1/lobbies/create",
        lobby_body(Some(vec![1, 2, 3, 4])),
    )
    .await;
    let lobby_id = v["lobby_id"].as_str().expect("lobby_id string").to_string();
    assert_eq!(v.as_object().map(|o| o.len()), Some(2));
    let v = get(target, "/api/v1/lobbies").await;
    assert_eq!(
        v["lobbies"],
        json!([{"id": lobby_id, "name": "Lobby A", "multi_user": true,
            "started_by_profile_id": "moongate", "pin_required": true,
            "stop_when_everyone_leaves": false,
            "runner": {"type": "process", "run_cmd": "sleep infinity"},
            "connected_sessions": []}])
    );
    let join = |pin: Value, sid: Value| {
        let mut b = json!({"lobby_id": lobby_id, "moonlight_session_id": sid});
        if !pin.is_null() {
            b["pin"] = pin;
        }
        b.to_string()
    };
    for (path, body, status, message) in [
        (
            "/api/v1/lobbies/join",
            join(Value::Null, json!("1")).as_str(),
            403,
            "Invalid PIN",
        ),
        (
            "/api/v1/lobbies/join",
            join(json!([4, 3, 2, 1]), json!("1")).as_str(),
            403,
            "Invalid PIN",
        ),
        (
            "/api/v1/lobbies/join",
            r#"{"lobby_id":"nope","moonlight_session_id":"1"}"#,
            404,
            "Invalid lobby ID",
        ),
        (
            "/api/v1/lobbies/join",
            join(json!([1, 2, 3, 4]), json!("77")).as_str(),
            404,
            "Invalid session_id",
        ),
    ] {
        assert_post_err(target, path, body, status, message).await;
    }
    post(
        target,
        "/api/v1/lobbies/join",
        serde_json::from_str(&join(json!([1, 2, 3, 4]), json!("1"))).expect("json"),
    )
    .await;
    // A numeric session id is accepted too.
    post(
        target,
        "/api/v1/lobbies/join",
        serde_json::from_str(&join(json!([1, 2, 3, 4]), json!(2))).expect("json"),
    )
    .await;
    let v = get(target, "/api/v1/lobbies").await;
    assert_eq!(v["lobbies"][0]["connected_sessions"], json!(["1", "2"]));
    post_then_gone(
        target,
        "/api/v1/lobbies/leave",
        json!({"lobby_id": lobby_id, "moonlight_session_id": "2"}),
        "Invalid session_id",
    )
    .await;
    let v = get(target, "/api/v1/lobbies").await;
    assert_eq!(v["lobbies"][0]["connected_sessions"], json!(["1"]));

    // --- stop session / lobby --------------------------------------------------------------
    post_then_gone(
        target,
        "/api/v1/sessions/stop",
        json!({"session_id": "1"}),
        "Invalid session_id",
    )
    .await;
    let v = get(target, "/api/v1/lobbies").await;
    assert_eq!(v["lobbies"][0]["connected_sessions"], json!([]));
    let stop = "/api/v1/lobbies/stop";
    let no_pin = json!({"lobby_id": lobby_id}).to_string();
    assert_post_err(target, stop, &no_pin, 403, "Invalid PIN").await;
    post(
        target,
        stop,
        json!({"lobby_id": lobby_id, "pin": [1, 2, 3, 4]}),
    )
    .await;
    assert_eq!(get(target, "/api/v1/lobbies").await["lobbies"], json!([]));
    assert_post_err(target, stop, &no_pin, 404, "Invalid lobby ID").await;

    // --- unpair ----------------------------------------------------------------------------
    post_then_gone(
        target,
        "/api/v1/unpair/client",
        json!({"client_id": "1000000007"}),
        "Client not found",
    )
    .await;
    assert_eq!(get(target, "/api/v1/clients").await["clients"], json!([]));

    // --- fault knobs (moongate) ------------------------------------------------------------
    let v = get(target, "/api/v1/moongate/faults").await;
    assert_eq!(
        v["faults"],
        json!({"drop_pct": 0.0, "reorder_pct": 0.0, "corrupt_pct": 0.0, "delay_pct": 0.0,
            "delay_ms": 0, "slow_teardown_ms": 0, "refuse_launches": false, "crash": false})
    );
    let v = post(
        target,
        "/api/v1/moongate/faults",
        json!({"drop_pct": 5.5, "corrupt_pct": 2, "delay_pct": 10, "delay_ms": 40,
            "refuse_launches": true}),
    )
    .await;
    assert_eq!(
        v["faults"],
        json!({"drop_pct": 5.5, "reorder_pct": 0.0, "corrupt_pct": 2.0, "delay_pct": 10.0,
            "delay_ms": 40, "slow_teardown_ms": 0, "refuse_launches": true, "crash": false})
    );
    assert_eq!(
        get(target, "/api/v1/moongate/faults").await["faults"]["refuse_launches"],
        true
    );
    assert_post_err(
        target,
        "/api/v1/sessions/add",
        &session_body("pattern").to_string(),
        503,
        "launches refused",
    )
    .await;
    let e = post_err(
        target,
        "/api/v1/moongate/faults",
        r#"{"drop_pct":101}"#,
        400,
    )
    .await;
    assert!(e.contains("drop_pct"), "{e}");
    let e = post_err(
        target,
        "/api/v1/moongate/faults",
        r#"{"corrupt_pct":-1}"#,
        400,
    )
    .await;
    assert!(e.contains("corrupt_pct"), "{e}");
    let e = post_err(target, "/api/v1/moongate/faults", r#"{"bogus":1}"#, 400).await;
    assert!(e.contains("bogus"), "{e}");
    post(
        target,
        "/api/v1/moongate/faults",
        json!({"refuse_launches": false, "corrupt_pct": 0, "slow_teardown_ms": 250}),
    )
    .await;
    assert_eq!(
        get(target, "/api/v1/moongate/faults").await["faults"]["slow_teardown_ms"],
        250
    );

    // --- openapi ---------------------------------------------------------------------------
    let r = http10(target, "GET", "/api/v1/openapi-schema", None).await;
    assert_eq!(r.status, 200);
    // Wolf's reply framing: an HTTP/1.0 status line and a Content-Length.
    assert!(r.head.starts_with("HTTP/1.0 200 OK\r\n"), "{}", r.head);
    let head = r.head.to_ascii_lowercase();
    assert!(head.contains("content-type: application/json"), "{head}");
    assert!(
        head.contains(&format!("content-length: {}", r.body.len())),
        "{head}"
    );
    let v = r.json();
    assert_eq!(v["openapi"], "3.1.0");
    for p in [
        "/api/v1/events",
        "/api/v1/pair/pending",
        "/api/v1/pair/client",
        "/api/v1/clients",
        "/api/v1/apps",
        "/api/v1/apps/add",
        "/api/v1/apps/delete",
        "/api/v1/sessions",
        "/api/v1/sessions/add",
        "/api/v1/sessions/stop",
        "/api/v1/lobbies",
        "/api/v1/lobbies/create",
        "/api/v1/lobbies/join",
        "/api/v1/lobbies/leave",
        "/api/v1/lobbies/stop",
        "/api/v1/moongate/input",
        "/api/v1/moongate/faults",
        "/api/v1/moongate/strict",
    ] {
        assert!(v["paths"].get(p).is_some(), "openapi lacks {p}");
    }
    assert!(v["paths"]["/api/v1/moongate/faults"].get("post").is_some());
    assert!(v["paths"]["/api/v1/moongate/faults"].get("get").is_some());
}

fn socket_mode(p: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p)
        .expect("socket metadata")
        .permissions()
        .mode()
        & 0o777
}

#[tokio::test]
async fn every_endpoint_over_a_unix_socket() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("wolf.sock");
    // A stale socket left by a dead host: bound, then the listener dropped (file stays).
    drop(std::os::unix::net::UnixListener::bind(&path).expect("stale bind"));
    assert!(path.exists());

    let host = MemHost::new();
    let server = WolfApiServer::serve_unix(&path, host.clone())
        .await
        .expect("serve unix");
    assert_eq!(server.socket_path(), Some(path.as_path()));
    assert_eq!(server.tcp_addr(), None);
    assert_eq!(socket_mode(&path), 0o600);

    let target = target_of(&server);
    exercise_all(&target, &host).await;

    server.close().await;
    assert!(!path.exists(), "socket file removed on close");
}

#[tokio::test]
async fn every_endpoint_over_tcp() {
    let host = MemHost::new();
    let server = WolfApiServer::serve_tcp("127.0.0.1:0".parse().expect("addr"), host.clone())
        .await
        .expect("serve tcp");
    let addr = server.tcp_addr().expect("tcp addr");
    assert_ne!(addr.port(), 0, "bound port reported");
    assert!(addr.ip().is_loopback());
    exercise_all(&Target::Tcp(addr), &host).await;
    server.close().await;
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "nothing listens after close"
    );
}

#[tokio::test]
async fn bad_requests_get_clear_errors() {
    let host = MemHost::new();
    let server = WolfApiServer::serve_tcp("127.0.0.1:0".parse().expect("addr"), host.clone())
        .await
        .expect("serve tcp");
    let t = target_of(&server);

    let e = post_err(&t, "/api/v1/lobbies/create", "{not json", 400).await;
    assert!(e.starts_with("invalid JSON body"), "{e}");
    let e = post_err(&t, "/api/v1/pair/client", "", 400).await;
    assert!(e.contains("empty body"), "{e}");
    let e = post_err(&t, "/api/v1/pair/client", r#"{"pair_secret":"x"}"#, 400).await;
    assert!(e.contains("missing field `pin`"), "{e}");
    let e = post_err(&t, "/api/v1/sessions/stop", r#"{"session_id":"12x"}"#, 400).await;
    assert!(e.contains("decimal"), "{e}");
    let e = post_err(&t, "/api/v1/sessions/stop", r#"{"session_id":-1}"#, 400).await;
    assert!(e.starts_with("invalid JSON body"), "{e}");
    let e = post_err(
        &t,
        "/api/v1/lobbies/create",
        r#"{"name":"x","video_settings":{"width":"wide","height":1,"refresh_rate":1},"audio_settings":{"channel_count":2}}"#,
        400,
    )
    .await;
    assert!(e.contains("invalid type"), "{e}");
    let e = post_err(&t, "/api/v1/lobbies/join", "[1,2,3]", 400).await;
    assert!(e.starts_with("invalid JSON body"), "{e}");
    let e = post_err(&t, "/api/v1/apps/add", "\u{0}\u{1}\u{2}", 400).await;
    assert!(e.starts_with("invalid JSON body"), "{e}");

    // Unknown endpoint and wrong method: JSON errors too.
    let e = get_err(&t, "/api/v1/nope", 404).await;
    assert!(e.contains("/api/v1/nope"), "{e}");
    let e = get_err(&t, "/api/v1/lobbies/create", 405).await;
    assert!(e.contains("method"), "{e}");

    // Garbage instead of HTTP: an error status, the server lives on.
    let r = raw(&t, b"\x16\x03\x01garbage\r\n\r\n").await;
    assert!(r.status >= 400, "{}", r.head);
    assert_eq!(get(&t, "/api/v1/lobbies").await["lobbies"], json!([]));

    // Chunked request bodies are fine here (Wolf refuses them).
    let body = r#"{"title":"Chunked","id":"ch"}"#;
    let req = format!(
        "POST /api/v1/apps/add HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n{body}\r\n0\r\n\r\n",
        body.len()
    );
    let r = raw(&t, req.as_bytes()).await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(get(&t, "/api/v1/apps").await["apps"][0]["id"], "ch");

    server.close().await;
}

#[tokio::test]
async fn wolf_status_style_answers_500() {
    let host = MemHost::new();
    let server = serve_on_loopback(
        &host,
        ApiOptions {
            status_style: StatusStyle::Wolf,
            ..ApiOptions::default()
        },
    )
    .await;
    let t = target_of(&server);
    assert_post_err(
        &t,
        "/api/v1/sessions/stop",
        r#"{"session_id":"5"}"#,
        500,
        "Invalid session_id",
    )
    .await;
    post_err(&t, "/api/v1/sessions/stop", "{", 500).await;
    server.close().await;
}

#[tokio::test]
async fn socket_path_in_use_or_not_a_socket_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("wolf.sock");
    let host = MemHost::new();
    let live = WolfApiServer::serve_unix(&path, host.clone())
        .await
        .expect("serve");
    match WolfApiServer::serve_unix(&path, host.clone()).await {
        Err(ServeError::InUse(p)) => assert_eq!(p, path),
        other => panic!("expected InUse, got {other:?}"),
    }
    // The live server still answers.
    assert_eq!(
        get(&Target::Unix(path.clone()), "/api/v1/apps").await["apps"],
        json!([])
    );
    live.close().await;

    let file = dir.path().join("plain-file");
    std::fs::write(&file, b"keep me").expect("write");
    match WolfApiServer::serve_unix(&file, host.clone()).await {
        Err(ServeError::NotASocket(p)) => assert_eq!(p, file),
        other => panic!("expected NotASocket, got {other:?}"),
    }
    assert_eq!(std::fs::read(&file).expect("read"), b"keep me");
}

// ---------------------------------------------------------------------------------------------
// SSE

/// Reads one SSE block (up to a blank line) from an HTTP/1.0 close-delimited body.
async fn next_block(r: &mut BufReader<Box<dyn Io>>) -> Option<String> {
    let mut block = String::new();
    loop {
        let mut line = String::new();
        let n = tokio::time::timeout(T, r.read_line(&mut line))
            .await
            .expect("sse read timeout")
            .expect("sse read");
        if n == 0 {
            return if block.is_empty() { None } else { Some(block) };
        }
        if line == "\n" {
            return Some(block);
        }
        block.push_str(&line);
    }
}

/// Reads an event stream to its end, asserting that nothing but keepalives comes before.
async fn keepalives_until_eof(r: &mut BufReader<Box<dyn Io>>) {
    while let Some(block) = next_block(r).await {
        assert_eq!(block, ":keepalive\n", "only keepalives before EOF");
    }
}

async fn open_sse(target: &Target) -> BufReader<Box<dyn Io>> {
    let mut c = target.connect(T).await;
    c.write_all(b"GET /api/v1/events HTTP/1.0\r\nHost: localhost\r\n\r\n")
        .await
        .expect("write");
    let mut r = BufReader::new(c);
    let mut head = String::new();
    loop {
        let mut line = String::new();
        let n = tokio::time::timeout(T, r.read_line(&mut line))
            .await
            .expect("head timeout")
            .expect("head read");
        assert!(n > 0, "eof in head: {head}");
        if line == "\r\n" {
            break;
        }
        head.push_str(&line);
    }
    assert!(head.starts_with("HTTP/1."), "{head}");
    assert!(head.contains(" 200 "), "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: text/event-stream"),
        "{head}"
    );
    r
}

/// Skips keepalives; returns (event name, data JSON).
async fn next_event(r: &mut BufReader<Box<dyn Io>>) -> (String, Value) {
    loop {
        let b = next_block(r).await.expect("stream ended early");
        if b == ":keepalive\n" {
            continue;
        }
        let mut lines = b.lines();
        let ev = lines
            .next()
            .and_then(|l| l.strip_prefix("event: "))
            .unwrap_or_else(|| panic!("no event line in {b:?}"))
            .to_string();
        let data = lines
            .next()
            .and_then(|l| l.strip_prefix("data: "))
            .unwrap_or_else(|| panic!("no data line in {b:?}"));
        assert!(lines.next().is_none(), "one data line: {b:?}");
        return (ev, serde_json::from_str(data).expect("data json"));
    }
}

/// Waits (bounded) until the backend has exactly `n` subscribers. There is no event for "a
/// connection was dropped by the server", so this polls.
async fn wait_subscribers(host: &MemHost, n: usize) {
    let deadline = Instant::now() + T;
    while host.events.receiver_count() != n {
        assert!(
            Instant::now() < deadline,
            "subscribers: {} != {n}",
            host.events.receiver_count()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn sse_delivers_events_in_order_with_keepalive_and_ends_on_close() {
    let host = MemHost::new();
    let (server, path, _dir) = serve_on_unix(&host).await;
    let t = target_of(&server);

    let mut a = open_sse(&t).await;
    let mut b = open_sse(&t).await;
    wait_subscribers(&host, 2).await;

    // A keepalive arrives on an idle stream, byte-exact.
    assert_eq!(
        next_block(&mut a).await.as_deref(),
        Some(":keepalive\n"),
        "first block on an idle stream"
    );

    host.request_pair("10.1.2.3");
    post(&t, "/api/v1/apps/add", json!({"title": "P", "id": "p"})).await;
    let sid = post(&t, "/api/v1/sessions/add", session_body("p")).await["session_id"]
        .as_str()
        .expect("sid")
        .to_string();
    let lobby = post(&t, "/api/v1/lobbies/create", lobby_body(Some(vec![9, 9]))).await["lobby_id"]
        .as_str()
        .expect("lobby id")
        .to_string();
    post(
        &t,
        "/api/v1/lobbies/join",
        json!({"lobby_id": lobby, "moonlight_session_id": sid, "pin": [9, 9]}),
    )
    .await;
    post(
        &t,
        "/api/v1/lobbies/leave",
        json!({"lobby_id": lobby, "moonlight_session_id": sid}),
    )
    .await;
    post(&t, "/api/v1/sessions/stop", json!({"session_id": sid})).await;
    post(
        &t,
        "/api/v1/lobbies/stop",
        json!({"lobby_id": lobby, "pin": [9, 9]}),
    )
    .await;

    let expected: Vec<(&str, Value)> = vec![
        (
            "wolf::core::events::PairSignal",
            json!({"client_ip": "10.1.2.3", "host_ip": "127.0.0.1"}),
        ),
        ("wolf::core::events::StreamSession", Value::Null),
        (
            "wolf::core::events::CreateLobbyEvent",
            json!({"id": lobby, "profile_id": "moongate", "name": "Lobby A", "multi_user": true,
                "stop_when_everyone_leaves": false,
                "video_settings": {"width": 1280, "height": 720, "refresh_rate": 60,
                    "wayland_render_node": "/dev/dri/renderD128", "runner_render_node": "/dev/dri/renderD128",
                    "video_producer_buffer_caps": "video/x-raw"},
                "audio_settings": {"channel_count": 2}, "runner_state_folder": "/state/lobby",
                "runner": {"type": "process", "run_cmd": "sleep infinity"}}),
        ),
        (
            "wolf::core::events::JoinLobbyEvent",
            json!({"lobby_id": lobby, "moonlight_session_id": sid}),
        ),
        (
            "wolf::core::events::LeaveLobbyEvent",
            json!({"lobby_id": lobby, "moonlight_session_id": sid}),
        ),
        (
            "wolf::core::events::StopStreamEvent",
            json!({"session_id": sid}),
        ),
        (
            "wolf::core::events::StopLobbyEvent",
            json!({"lobby_id": lobby}),
        ),
    ];
    for reader in [&mut a, &mut b] {
        for (name, data) in &expected {
            let (ev, got) = next_event(reader).await;
            assert_eq!(&ev, name);
            if name.ends_with("StreamSession") {
                assert_eq!(got["client_id"], json!(sid));
                assert_eq!(got["app_id"], "p");
                assert_eq!(got["video_width"], 1920);
            } else {
                assert_eq!(&got, data, "{name}");
            }
        }
    }

    // Keepalives keep coming between events.
    let deadline = Instant::now() + T;
    loop {
        let blk = next_block(&mut b).await.expect("open");
        if blk == ":keepalive\n" {
            break;
        }
        assert!(Instant::now() < deadline, "no keepalive");
    }

    // close() ends both streams (EOF) and returns.
    tokio::time::timeout(T, server.close())
        .await
        .expect("close finishes with SSE clients attached");
    for reader in [&mut a, &mut b] {
        keepalives_until_eof(reader).await;
    }
    wait_subscribers(&host, 0).await;
    assert!(!path.exists());
}

#[tokio::test]
async fn sse_over_http11_and_client_going_away_frees_the_stream() {
    use http_body_util::BodyExt;
    use hyper_util::rt::TokioIo;

    let host = MemHost::new();
    let (server, path, _dir) = serve_on_unix(&host).await;

    // Keep-alive: several requests on one HTTP/1.1 connection, as Go's client does.
    let stream = tokio::net::UnixStream::connect(&path)
        .await
        .expect("connect");
    let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .expect("handshake");
    let conn_task = tokio::spawn(conn);
    for _ in 0..3 {
        let req = hyper::Request::get("http://localhost/api/v1/lobbies")
            .body(http_body_util::Full::new(bytes::Bytes::new()))
            .expect("req");
        let res = tokio::time::timeout(T, send.send_request(req))
            .await
            .expect("timeout")
            .expect("response");
        assert_eq!(res.status(), 200);
        let body = res.into_body().collect().await.expect("body").to_bytes();
        let v: Value = serde_json::from_slice(&body).expect("json");
        assert_eq!(v, json!({"success": true, "lobbies": []}));
    }
    let req = hyper::Request::post("http://localhost/api/v1/apps/add")
        .header("content-type", "application/json")
        .body(http_body_util::Full::new(bytes::Bytes::from_static(
            br#"{"title":"H","id":"h"}"#,
        )))
        .expect("req");
    let res = send.send_request(req).await.expect("response");
    assert_eq!(res.status(), 200);
    let body = res.into_body().collect().await.expect("body").to_bytes();
    assert_eq!(
        serde_json::from_slice::<Value>(&body).expect("json"),
        json!({"success": true})
    );

    // SSE on the same connection (chunked transfer in HTTP/1.1).
    let req = hyper::Request::get("http://localhost/api/v1/events")
        .body(http_body_util::Full::new(bytes::Bytes::new()))
        .expect("req");
    let res = send.send_request(req).await.expect("response");
    assert_eq!(res.status(), 200);
    assert_eq!(
        res.headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok()),
        Some("text/event-stream")
    );
    assert_eq!(
        res.headers()
            .get("cache-control")
            .and_then(|v| v.to_str().ok()),
        Some("no-cache")
    );
    let mut body = res.into_body();
    wait_subscribers(&host, 1).await;
    host.request_pair("192.0.2.1");
    let mut text = String::new();
    while !text.contains("\n\n") || text.starts_with(":keepalive") {
        if text.starts_with(":keepalive\n\n") {
            text.drain(..":keepalive\n\n".len());
            continue;
        }
        let frame = tokio::time::timeout(T, body.frame())
            .await
            .expect("frame timeout")
            .expect("frame")
            .expect("frame ok");
        if let Ok(d) = frame.into_data() {
            text.push_str(std::str::from_utf8(&d).expect("utf8"));
        }
    }
    assert!(
        text.starts_with(
            "event: wolf::core::events::PairSignal\ndata: {\"client_ip\":\"192.0.2.1\",\"host_ip\":\"127.0.0.1\"}\n\n"
        ),
        "{text:?}"
    );

    // The client goes away: its stream (and broadcast receiver) is freed without a close.
    drop(body);
    drop(send);
    conn_task.abort();
    wait_subscribers(&host, 0).await;

    // The server still serves new subscribers.
    let mut again = open_sse(&Target::Unix(path.clone())).await;
    wait_subscribers(&host, 1).await;
    host.request_pair("192.0.2.2");
    let (ev, data) = next_event(&mut again).await;
    assert_eq!(ev, "wolf::core::events::PairSignal");
    assert_eq!(data["client_ip"], "192.0.2.2");

    server.close().await;
    assert!(next_block(&mut again)
        .await
        .is_none_or(|b| b == ":keepalive\n"));
    wait_subscribers(&host, 0).await;
}

#[tokio::test]
async fn dropping_the_server_aborts_it_and_frees_streams() {
    let host = MemHost::new();
    let server = serve_on_loopback(&host, fast_opts()).await;
    let t = target_of(&server);
    let addr = server.tcp_addr().expect("addr");
    let mut s = open_sse(&t).await;
    wait_subscribers(&host, 1).await;
    // Dropping the server handle (no close) aborts it: the SSE connection ends.
    drop(server);
    keepalives_until_eof(&mut s).await;
    wait_subscribers(&host, 0).await;
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
}

#[tokio::test]
async fn close_is_graceful_for_idle_keepalive_and_cuts_stuck_requests_after_grace() {
    use hyper_util::rt::TokioIo;

    // An idle HTTP/1.1 keep-alive connection does not hold close() for the grace period.
    let host = MemHost::new();
    let server = serve_on_loopback(&host, closing_within(Duration::from_secs(60))).await;
    let addr = server.tcp_addr().expect("addr");
    let stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .expect("handshake");
    let conn_task = tokio::spawn(conn);
    let req = hyper::Request::get("http://localhost/api/v1/apps")
        .body(http_body_util::Full::new(bytes::Bytes::new()))
        .expect("req");
    let res = send.send_request(req).await.expect("response");
    assert_eq!(res.status(), 200);
    tokio::time::timeout(Duration::from_secs(5), server.close())
        .await
        .expect("close is prompt with an idle keep-alive connection");
    // The server closed the idle connection.
    tokio::time::timeout(T, conn_task)
        .await
        .expect("client connection ends")
        .expect("join")
        .expect("clean close");

    // A client stuck mid-request is cut once the grace period is over.
    let server = serve_on_loopback(&host, closing_within(Duration::from_millis(200))).await;
    let addr = server.tcp_addr().expect("addr");
    let mut stuck = tokio::net::TcpStream::connect(addr).await.expect("connect");
    stuck
        .write_all(b"POST /api/v1/apps/add HTTP/1.0\r\nContent-Length: 100\r\n\r\n{\"ti")
        .await
        .expect("partial write");
    // Make sure the server is reading it: a complete request on another connection is answered.
    assert_eq!(
        get(&Target::Tcp(addr), "/api/v1/apps").await["apps"],
        json!([])
    );
    let started = Instant::now();
    tokio::time::timeout(T, server.close())
        .await
        .expect("close ends after the grace period");
    assert!(started.elapsed() >= Duration::from_millis(200));
    let mut rest = Vec::new();
    let n = tokio::time::timeout(T, stuck.read_to_end(&mut rest))
        .await
        .expect("stuck connection is closed by the server");
    // Cut without a reply (EOF or reset).
    assert!(n.map(|n| n == 0).unwrap_or(true), "{rest:?}");
}

/// Implements only the required methods (delegating to a `MemHost`): the optional ones answer 501.
struct Minimal(Arc<MemHost>);

impl WolfBackend for Minimal {
    async fn list_apps(&self) -> ApiResult<Vec<App>> {
        self.0.list_apps().await
    }
    async fn add_app(&self, app: App) -> ApiResult<()> {
        self.0.add_app(app).await
    }
    async fn delete_app(&self, id: String) -> ApiResult<()> {
        self.0.delete_app(id).await
    }
    async fn list_clients(&self) -> ApiResult<Vec<PairedClient>> {
        self.0.list_clients().await
    }
    async fn list_sessions(&self) -> ApiResult<Vec<Session>> {
        self.0.list_sessions().await
    }
    async fn stop_session(&self, id: SessionId) -> ApiResult<()> {
        self.0.stop_session(id).await
    }
    async fn list_lobbies(&self) -> ApiResult<Vec<Lobby>> {
        self.0.list_lobbies().await
    }
    async fn create_lobby(&self, req: CreateLobbyRequest) -> ApiResult<String> {
        self.0.create_lobby(req).await
    }
    async fn join_lobby(&self, req: JoinLobbyRequest) -> ApiResult<()> {
        self.0.join_lobby(req).await
    }
    async fn leave_lobby(&self, req: LeaveLobbyRequest) -> ApiResult<()> {
        self.0.leave_lobby(req).await
    }
    async fn stop_lobby(&self, req: StopLobbyRequest) -> ApiResult<()> {
        self.0.stop_lobby(req).await
    }
    async fn pending_pairs(&self) -> ApiResult<Vec<PendingPair>> {
        self.0.pending_pairs().await
    }
    async fn pair_client(&self, req: PairRequest) -> ApiResult<()> {
        self.0.pair_client(req).await
    }
    fn subscribe(&self) -> broadcast::Receiver<WolfEvent> {
        self.0.subscribe()
    }
    async fn input_events(&self, id: SessionId, since: Option<u64>) -> ApiResult<Vec<InputRecord>> {
        self.0.input_events(id, since).await
    }
    async fn faults(&self) -> ApiResult<FaultKnobs> {
        self.0.faults().await
    }
    async fn set_faults(&self, patch: FaultKnobsPatch) -> ApiResult<FaultKnobs> {
        self.0.set_faults(patch).await
    }
}

#[tokio::test]
async fn optional_endpoints_not_implemented_answer_501() {
    let server = WolfApiServer::serve_tcp(
        "127.0.0.1:0".parse().expect("addr"),
        Arc::new(Minimal(MemHost::new())),
    )
    .await
    .expect("serve");
    let t = target_of(&server);
    let e = post_err(&t, "/api/v1/unpair/client", r#"{"client_id":"1"}"#, 501).await;
    assert_eq!(e, "not supported by this host: unpair/client");
    let e = post_err(
        &t,
        "/api/v1/sessions/add",
        &session_body("x").to_string(),
        501,
    )
    .await;
    assert_eq!(e, "not supported by this host: sessions/add");
    // Bad input is still a 400 before the backend is asked.
    post_err(&t, "/api/v1/unpair/client", "{}", 400).await;
    server.close().await;
}
