//! # Wolf's HTTP API for the demo host
//!
//! Wolf (games-on-whales/wolf) is driven by a JSON HTTP API on a Unix socket; HELIX and Wolf's own
//! UI use it to list apps and sessions, manage lobbies, answer pairing requests and follow host
//! events. The demo host serves the same API so that moongate and its tests can drive it exactly as
//! they drive Wolf. This module is only the HTTP face: the host implements [`WolfBackend`] and
//! [`WolfApiServer`] turns requests into calls on it.
//!
//! [`crate::DemoHost::start`] serves it for the demo host (a backend holding a weak reference to
//! the host) where [`crate::DemoHostConfig::wolf_api`] says: `<data_dir>/wolf.sock` by default,
//! optionally TCP.
//!
//! ## Use
//!
//! ```ignore
//! // The host implements WolfBackend (write `async fn` for each method) and keeps an Arc of it.
//! let host: Arc<MyHost> = ...;
//! let api = WolfApiServer::serve_unix("/tmp/wolf.sock", host.clone()).await?;
//! // tests may add: WolfApiServer::serve_tcp("127.0.0.1:0".parse()?, host.clone()).await?.tcp_addr()
//! ...
//! api.close().await; // ends SSE streams, waits for open requests (bounded), removes the socket
//! ```
//!
//! Events reach `/api/v1/events` through [`WolfBackend::subscribe`]: the host keeps a
//! `tokio::sync::broadcast::Sender<WolfEvent>` and sends one [`WolfEvent`] per state change.
//!
//! ## Transport
//!
//! - A Unix socket ([`WolfApiServer::serve_unix`], Wolf's default path is `/tmp/wolf.sock`,
//!   `$WOLF_SOCKET_PATH`), created with mode 0600; a stale socket file left by a dead host is
//!   removed first, a live one is an error. Optionally TCP ([`WolfApiServer::serve_tcp`]) for tests.
//! - HTTP/1.0 (what Wolf speaks: `HTTP/1.0 200 OK` + `Content-Length`, connection closed after the
//!   reply; the SSE body is close-delimited) and HTTP/1.1 (keep-alive; chunked request bodies are
//!   accepted, unlike Wolf). No HTTP/2. A request head must arrive within 30 s.
//! - Request bodies are JSON; `Content-Type` is not required (Wolf ignores it too). Bodies above
//!   2 MiB are refused.
//!
//! ## Replies and errors
//!
//! Success: `200` with `{"success":true, ...}`. Failure: `{"success":false,"error":"<message>"}`
//! with the status of the [`WolfApiError`] variant. Messages are Wolf's where Wolf has one
//! (`Invalid pair secret`, `Invalid session_id`, `Invalid lobby ID`, `Invalid PIN`, `Invalid
//! app_id`, `Client not found`).
//!
//! | variant | moongate status | Wolf status ([`StatusStyle::Wolf`]) |
//! |---|---|---|
//! | `BadRequest` (bad JSON, missing/ill-typed field, bad query) | 400 | 500 |
//! | `NotFound` (unknown session, lobby, app, client, pair secret) | 404 | 500 |
//! | `InvalidPin` | 403 | 500 |
//! | `Conflict` (e.g. joining a single-user lobby that is full) | 409 | 500 |
//! | `Unavailable` (launches refused by a fault knob, host shutting down) | 503 | 500 |
//! | `Unsupported` (endpoint the backend does not implement) | 501 | 500 |
//! | `Internal` | 500 | 500 |
//!
//! Unknown paths get 404 and a wrong method 405, both with the JSON error body. Wolf's clients
//! (HELIX, Wolf UI) only test `status == 200`, so either style works for them.
//!
//! ## Endpoints (Wolf)
//!
//! | method | path | body | reply (besides `success`) |
//! |---|---|---|---|
//! | GET | `/api/v1/events` | – | SSE, see below |
//! | GET | `/api/v1/pair/pending` | – | `requests: [{pair_secret, client_ip}]` |
//! | POST | `/api/v1/pair/client` | `{pair_secret, pin}` | – |
//! | POST | `/api/v1/unpair/client` | `{client_id}` | – |
//! | GET | `/api/v1/clients` | – | `clients: [{client_id, app_state_folder, settings}]` |
//! | GET | `/api/v1/apps` | – | `apps: [App]` |
//! | POST | `/api/v1/apps/add` | `App` | – |
//! | POST | `/api/v1/apps/delete` | `{id}` | – |
//! | GET | `/api/v1/sessions` | – | `sessions: [Session]` |
//! | POST | `/api/v1/sessions/add` | `Session` | `session_id` |
//! | POST | `/api/v1/sessions/stop` | `{session_id}` | – |
//! | GET | `/api/v1/lobbies` | – | `lobbies: [Lobby]` |
//! | POST | `/api/v1/lobbies/create` | `CreateLobbyRequest` | `lobby_id` |
//! | POST | `/api/v1/lobbies/join` | `{lobby_id, moonlight_session_id, pin?}` | – |
//! | POST | `/api/v1/lobbies/leave` | `{lobby_id, moonlight_session_id}` | – |
//! | POST | `/api/v1/lobbies/stop` | `{lobby_id, pin?}` | – |
//! | GET | `/api/v1/openapi-schema` | – | an OpenAPI 3.1 document (no `success`) |
//!
//! Shapes (see [`types`] for every field):
//! - `App` = `{title, id, support_hdr, icon_png_path?, h264_gst_pipeline, hevc_gst_pipeline,
//!   av1_gst_pipeline, render_node, opus_gst_pipeline, start_virtual_compositor,
//!   start_audio_server, runner:{type, ...}}` plus any extra fields, kept verbatim.
//! - `Session` = `{client_ip, aes_key, aes_iv, rtsp_fake_ip, video_width, video_height,
//!   video_refresh_rate, audio_channel_count, app_id?, client_id?, client_settings?,
//!   client_unique_id, idle_seconds, immediate_lobby_id?}`; in lists `client_id` is the session id.
//! - `Lobby` = `{id, name, icon_png_path?, multi_user, started_by_profile_id, pin_required,
//!   stop_when_everyone_leaves, runner, connected_sessions:[session id]}`.
//! - Session ids are 64-bit and written as **decimal strings** (`"moonlight_session_id":"123"`);
//!   numbers are accepted too.
//! - Lobby PINs are arrays of digits (`"pin":[1,2,3,4]`); pairing PINs are strings (`"1234"`).
//!
//! Examples:
//!
//! ```text
//! $ curl -s --unix-socket /tmp/wolf.sock http://localhost/api/v1/lobbies/create -d '{
//!     "profile_id":"moongate","name":"demo","multi_user":true,"stop_when_everyone_leaves":false,
//!     "video_settings":{"width":1280,"height":720,"refresh_rate":60},
//!     "audio_settings":{"channel_count":2},"runner":{"type":"process","run_cmd":"true"}}'
//! {"success":true,"lobby_id":"5e0c…"}
//! $ curl -s --unix-socket /tmp/wolf.sock http://localhost/api/v1/lobbies/join \
//!     -d '{"lobby_id":"5e0c…","moonlight_session_id":"1234567"}'
//! {"success":true}
//! $ curl -s --unix-socket /tmp/wolf.sock http://localhost/api/v1/sessions/stop -d '{"session_id":"42"}'
//! {"success":false,"error":"Invalid session_id"}        # HTTP 404
//! ```
//!
//! ## Events (`GET /api/v1/events`)
//!
//! `text/event-stream`; one SSE event per [`WolfEvent`]:
//!
//! ```text
//! event: wolf::core::events::JoinLobbyEvent
//! data: {"lobby_id":"5e0c…","moonlight_session_id":"1234567"}
//!
//! :keepalive
//!
//! ```
//!
//! The `event:` name is Wolf's C++ type name (`rfl::type_name_t`), see [`WolfEvent::type_name`].
//! `:keepalive` comes after 15 s without an event ([`ApiOptions::keepalive`]). A subscriber that
//! falls more than the backend's broadcast capacity behind gets a `: lagged <n>` comment and
//! continues. The stream ends when the server closes or the backend drops its event sender; a
//! client that goes away frees its stream at once (no task per subscriber). Unlike Wolf, the data
//! of lobby events never carries the lobby PIN.
//!
//! ## moongate extensions (`/api/v1/moongate/...`)
//!
//! | method | path | body | reply (besides `success`) |
//! |---|---|---|---|
//! | GET | `/api/v1/moongate/input?session_id=<id>&since=<seq>` | – | `session_id`, `events: [InputRecord]` (seq > since) |
//! | GET | `/api/v1/moongate/faults` | – | `faults: FaultKnobs` |
//! | POST | `/api/v1/moongate/faults` | `FaultKnobsPatch` (any subset) | `faults: FaultKnobs` (after the change) |
//! | GET | `/api/v1/moongate/strict` | – | `strict: {wolf_strict, disconnects_after_cancel}` ([`StrictStatus`]) |
//! | GET | `/api/v1/moongate/mic?session_id=<id>` | – | `session_id`, `packets`, `undecodable`, `lost`, `pitch_hz` ([`crate::MicReport`], fork mode) |
//!
//! `InputRecord` = `{seq, at_ms, event:{type:"key_down", key_code, ...}}` ([`input`]);
//! `FaultKnobs` = `{drop_pct, reorder_pct, corrupt_pct, delay_pct, delay_ms, slow_teardown_ms, refuse_launches,
//! crash}` ([`types::FaultKnobs`]). Percentages outside 0..=100 and unknown fields are 400.

pub mod input;
mod openapi;
mod server;
pub mod types;

use std::future::Future;

pub use input::{InputEventJson, InputRecord};
pub use server::{ApiOptions, ListenAddr, ServeError, StatusStyle, WolfApiServer};
pub use types::*;

/// Why an API call failed. The server maps each variant to an HTTP status (see the module docs)
/// and to `{"success":false,"error":"<Display>"}`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WolfApiError {
    /// Malformed request: bad JSON, a missing or ill-typed field, a bad query parameter.
    #[error("{0}")]
    BadRequest(String),
    /// An unknown id; the message is Wolf's (e.g. `Invalid lobby ID`).
    #[error("{0}")]
    NotFound(String),
    /// A lobby PIN that does not match.
    #[error("Invalid PIN")]
    InvalidPin,
    /// The request clashes with the host's state (e.g. a full single-user lobby).
    #[error("{0}")]
    Conflict(String),
    /// The host will not do it now (launches refused by a fault knob, shutting down).
    #[error("{0}")]
    Unavailable(String),
    /// The backend does not implement this endpoint.
    #[error("not supported by this host: {0}")]
    Unsupported(&'static str),
    /// Anything else.
    #[error("{0}")]
    Internal(String),
}

impl WolfApiError {
    /// The status moongate uses (see [`StatusStyle::Moongate`]).
    pub fn status_code(&self) -> u16 {
        match self {
            WolfApiError::BadRequest(_) => 400,
            WolfApiError::NotFound(_) => 404,
            WolfApiError::InvalidPin => 403,
            WolfApiError::Conflict(_) => 409,
            WolfApiError::Unavailable(_) => 503,
            WolfApiError::Unsupported(_) => 501,
            WolfApiError::Internal(_) => 500,
        }
    }
}

/// Result of a backend call.
pub type ApiResult<T> = Result<T, WolfApiError>;

/// What the API needs from the host. Every method may be called concurrently from many
/// connections. The futures must be `Send`; implementors write `async fn`.
///
/// Methods with a default body are optional: the default answers
/// [`WolfApiError::Unsupported`] (HTTP 501).
pub trait WolfBackend: Send + Sync + 'static {
    /// `GET /api/v1/apps`.
    fn list_apps(&self) -> impl Future<Output = ApiResult<Vec<App>>> + Send;
    /// `POST /api/v1/apps/add`.
    fn add_app(&self, app: App) -> impl Future<Output = ApiResult<()>> + Send;
    /// `POST /api/v1/apps/delete`. Wolf answers success for an unknown id; a backend may say
    /// `NotFound("Invalid app_id")`.
    fn delete_app(&self, id: String) -> impl Future<Output = ApiResult<()>> + Send;

    /// `GET /api/v1/clients`.
    fn list_clients(&self) -> impl Future<Output = ApiResult<Vec<PairedClient>>> + Send;
    /// `POST /api/v1/unpair/client`; unknown → `NotFound("Client not found")`.
    fn unpair_client(&self, client_id: String) -> impl Future<Output = ApiResult<()>> + Send {
        let _ = client_id;
        async { Err(WolfApiError::Unsupported("unpair/client")) }
    }

    /// `GET /api/v1/sessions`.
    fn list_sessions(&self) -> impl Future<Output = ApiResult<Vec<Session>>> + Send;
    /// `POST /api/v1/sessions/add`: create a session without /launch; returns its id.
    fn add_session(&self, session: Session) -> impl Future<Output = ApiResult<SessionId>> + Send {
        let _ = session;
        async { Err(WolfApiError::Unsupported("sessions/add")) }
    }
    /// `POST /api/v1/sessions/stop`; unknown → `NotFound("Invalid session_id")`.
    fn stop_session(&self, session_id: SessionId) -> impl Future<Output = ApiResult<()>> + Send;

    /// `GET /api/v1/lobbies`.
    fn list_lobbies(&self) -> impl Future<Output = ApiResult<Vec<Lobby>>> + Send;
    /// `POST /api/v1/lobbies/create`; returns the new lobby id.
    fn create_lobby(
        &self,
        req: CreateLobbyRequest,
    ) -> impl Future<Output = ApiResult<String>> + Send;
    /// `POST /api/v1/lobbies/join`; unknown lobby → `NotFound("Invalid lobby ID")`, wrong PIN →
    /// `InvalidPin`, unknown session → `NotFound("Invalid session_id")`.
    fn join_lobby(&self, req: JoinLobbyRequest) -> impl Future<Output = ApiResult<()>> + Send;
    /// `POST /api/v1/lobbies/leave`.
    fn leave_lobby(&self, req: LeaveLobbyRequest) -> impl Future<Output = ApiResult<()>> + Send;
    /// `POST /api/v1/lobbies/stop`; same errors as join.
    fn stop_lobby(&self, req: StopLobbyRequest) -> impl Future<Output = ApiResult<()>> + Send;

    /// `GET /api/v1/pair/pending`.
    fn pending_pairs(&self) -> impl Future<Output = ApiResult<Vec<PendingPair>>> + Send;
    /// `POST /api/v1/pair/client`; unknown secret → `NotFound("Invalid pair secret")`.
    fn pair_client(&self, req: PairRequest) -> impl Future<Output = ApiResult<()>> + Send;

    /// A new subscription to host events (one per `/api/v1/events` connection). Dropping the
    /// sender side ends every stream.
    fn subscribe(&self) -> tokio::sync::broadcast::Receiver<WolfEvent>;

    /// Input events of a session with `seq > since` (all if `None`); unknown session →
    /// `NotFound("Invalid session_id")`.
    fn input_events(
        &self,
        session_id: SessionId,
        since: Option<u64>,
    ) -> impl Future<Output = ApiResult<Vec<InputRecord>>> + Send;

    /// Current fault knobs.
    fn faults(&self) -> impl Future<Output = ApiResult<FaultKnobs>> + Send;
    /// Change some knobs (already validated by the server); returns the knobs after the change.
    fn set_faults(
        &self,
        patch: FaultKnobsPatch,
    ) -> impl Future<Output = ApiResult<FaultKnobs>> + Send;

    /// `GET /api/v1/moongate/mic`: what a session's microphone delivered (fork mode); a session
    /// without a microphone → `NotFound("Invalid session_id")`.
    fn mic_report(
        &self,
        session_id: SessionId,
    ) -> impl Future<Output = ApiResult<crate::mic::MicReport>> + Send {
        let _ = session_id;
        async { Err(WolfApiError::Unsupported("moongate/mic")) }
    }

    /// `GET /api/v1/moongate/strict`: Wolf-strict mode and its violation counter.
    fn strict_status(&self) -> impl Future<Output = ApiResult<StrictStatus>> + Send {
        async { Err(WolfApiError::Unsupported("moongate/strict")) }
    }
}
