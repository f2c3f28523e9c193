//! The JSON shapes of Wolf's HTTP API, as plain serde types.
//!
//! Field names follow Wolf's reflectors (`api/api.hpp`, `events/reflectors.hpp`, `events/events.hpp`
//! of games-on-whales/wolf) and the later-Wolf fields HELIX reads (`api/pkg/wolf/client.go`,
//! `wolf_client_generated.go`). Inputs are lenient where Wolf's own defaults are obvious (missing
//! booleans and strings take Wolf's defaults) and strict on what the host needs (ids, sizes).
//!
//! Secrets (pairing PINs, lobby PINs, AES keys) are wrapped in [`Secret`], whose `Debug` prints
//! `<redacted>`, so they never reach a log line through `{:?}`.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};
use std::fmt;

use super::WolfApiError;

/// A value that must never appear in logs: serialised as itself, `Debug` prints `<redacted>`.
#[derive(Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secret<T>(pub T);

impl<T> fmt::Debug for Secret<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl<T> Secret<T> {
    /// The wrapped value.
    pub fn expose(&self) -> &T {
        &self.0
    }
}

/// A stream-session id. Wolf's ids are 64-bit (`std::size_t`) and travel as **decimal strings**
/// (`Reflector<std::size_t>`), because JSON has no unsigned 64-bit integers; some Wolf events carry
/// them as numbers, so both forms are accepted on input. Always written as a string.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionId(pub u64);

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl std::str::FromStr for SessionId {
    type Err = WolfApiError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        s.trim()
            .parse::<u64>()
            .map(SessionId)
            .map_err(|_| WolfApiError::BadRequest("Invalid session_id".into()))
    }
}

impl Serialize for SessionId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for SessionId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Num(u64),
            Str(String),
        }
        match Raw::deserialize(d)? {
            Raw::Num(n) => Ok(SessionId(n)),
            Raw::Str(s) => s
                .trim()
                .parse::<u64>()
                .map(SessionId)
                .map_err(|_| serde::de::Error::custom("session id must be a decimal u64")),
        }
    }
}

/// An app runner: Wolf's tagged union on `type` (`process` {run_cmd}, `docker` {name, image, mounts,
/// env, devices, ports, base_create_json?}, `child_session` {parent_session_id}). The demo host runs
/// none of them, so the other fields are kept verbatim for round trips.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Runner {
    /// `process`, `docker` or `child_session`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The variant's fields, as sent.
    #[serde(flatten)]
    pub fields: Map<String, Value>,
}

impl Default for Runner {
    fn default() -> Self {
        Runner {
            kind: "process".into(),
            fields: Map::new(),
        }
    }
}

/// A Moonlight app (`rfl::Reflector<events::App>::ReflType`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct App {
    /// Shown in Moonlight's app grid.
    pub title: String,
    /// Wolf's app id (a string; Moonlight sees a number derived from it).
    pub id: String,
    /// HDR support.
    #[serde(default)]
    pub support_hdr: bool,
    /// Icon path on the host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub icon_png_path: Option<String>,
    /// GStreamer pipeline (empty = Wolf's default); the demo host ignores it.
    #[serde(default)]
    pub h264_gst_pipeline: String,
    /// As above.
    #[serde(default)]
    pub hevc_gst_pipeline: String,
    /// As above.
    #[serde(default)]
    pub av1_gst_pipeline: String,
    /// GPU render node.
    #[serde(default)]
    pub render_node: String,
    /// As above.
    #[serde(default)]
    pub opus_gst_pipeline: String,
    /// Start a virtual Wayland compositor.
    #[serde(default)]
    pub start_virtual_compositor: bool,
    /// Start a virtual audio sink.
    #[serde(default)]
    pub start_audio_server: bool,
    /// What runs in the session.
    #[serde(default)]
    pub runner: Runner,
    /// Any other fields (later Wolf: `video_producer_source`, `joypad_type`, ...), kept verbatim.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// Body of `POST /api/v1/apps/delete`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppDeleteRequest {
    /// App id.
    pub id: String,
}

/// Per-client settings (`config::ClientSettings`). Missing fields take Wolf's defaults.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ClientSettings {
    /// uid the runner runs as.
    pub run_uid: u32,
    /// gid the runner runs as.
    pub run_gid: u32,
    /// `XBOX`, `PS`, `NINTENDO`, `AUTO`.
    pub controllers_override: Vec<String>,
    /// Mouse acceleration factor.
    pub mouse_acceleration: f64,
    /// Vertical scroll factor.
    pub v_scroll_acceleration: f64,
    /// Horizontal scroll factor.
    pub h_scroll_acceleration: f64,
}

impl Default for ClientSettings {
    fn default() -> Self {
        ClientSettings {
            run_uid: 1000,
            run_gid: 1000,
            controllers_override: Vec::new(),
            mouse_acceleration: 1.0,
            v_scroll_acceleration: 1.0,
            h_scroll_acceleration: 1.0,
        }
    }
}

/// A paired Moonlight client (`GET /api/v1/clients`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PairedClient {
    /// Decimal string: a hash of the client's certificate.
    pub client_id: String,
    /// Where the client's app state lives.
    #[serde(default)]
    pub app_state_folder: String,
    /// Settings.
    #[serde(default)]
    pub settings: ClientSettings,
}

/// Body of `POST /api/v1/unpair/client`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnpairRequest {
    /// Client id (decimal string).
    pub client_id: String,
}

/// A stream session (`Reflector<events::StreamSession>::ReflType` plus later-Wolf fields). Also the
/// body of `POST /api/v1/sessions/add` and the data of the `StreamSession` event.
///
/// `client_id` is the **session id** (Wolf: `std::to_string(session.session_id)`), not a paired
/// client's id.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Session {
    /// Client IP.
    #[serde(default)]
    pub client_ip: String,
    /// AES key (hex) of the session's media and control.
    #[serde(default)]
    pub aes_key: Secret<String>,
    /// AES IV (hex).
    #[serde(default)]
    pub aes_iv: Secret<String>,
    /// Fake IP the host sent the client in `sessionUrl0` to find the session again in RTSP.
    #[serde(default)]
    pub rtsp_fake_ip: String,
    /// Video width.
    pub video_width: i32,
    /// Video height.
    pub video_height: i32,
    /// Video refresh rate.
    pub video_refresh_rate: i32,
    /// Audio channels.
    pub audio_channel_count: i32,
    /// App id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_id: Option<String>,
    /// The session id (decimal string); on `sessions/add`, a paired client's id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// Settings of the session's client.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_settings: Option<ClientSettings>,
    /// Moonlight's `uniqueid` of the client (later Wolf).
    #[serde(default)]
    pub client_unique_id: String,
    /// Seconds since the last ENet packet (later Wolf; idle timeout is 60 s).
    #[serde(default)]
    pub idle_seconds: u64,
    /// If set, the session attaches straight to this lobby's producer (later Wolf).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub immediate_lobby_id: Option<String>,
}

/// Body of `POST /api/v1/sessions/stop`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionStopRequest {
    /// Session id (decimal string).
    pub session_id: SessionId,
}

/// A lobby (`Reflector<events::Lobby>::ReflType`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Lobby {
    /// Lobby id (a UUID string).
    pub id: String,
    /// Name.
    pub name: String,
    /// Icon path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub icon_png_path: Option<String>,
    /// Several sessions may join.
    pub multi_user: bool,
    /// Profile that created it.
    pub started_by_profile_id: String,
    /// A PIN is needed to join or stop it (the PIN itself is never listed).
    pub pin_required: bool,
    /// Stop when the last session leaves.
    pub stop_when_everyone_leaves: bool,
    /// What runs in it.
    pub runner: Runner,
    /// Session ids (decimal strings) currently joined.
    pub connected_sessions: Vec<String>,
}

/// Video settings of a lobby.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VideoSettings {
    /// Width.
    pub width: i32,
    /// Height.
    pub height: i32,
    /// Refresh rate.
    pub refresh_rate: i32,
    /// Wayland render node.
    #[serde(default)]
    pub wayland_render_node: String,
    /// Runner render node.
    #[serde(default)]
    pub runner_render_node: String,
    /// GStreamer caps of the producer.
    #[serde(default)]
    pub video_producer_buffer_caps: String,
    /// Later Wolf: where the lobby's video comes from (e.g. a test pattern).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub video_source_mode: Option<String>,
}

/// Audio settings of a lobby.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AudioSettings {
    /// Channels.
    pub channel_count: i32,
}

fn yes() -> bool {
    true
}

/// Body of `POST /api/v1/lobbies/create` (`CreateLobbyRequest`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CreateLobbyRequest {
    /// Creating profile.
    #[serde(default)]
    pub profile_id: String,
    /// Name.
    pub name: String,
    /// Icon path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub icon_png_path: Option<String>,
    /// Default true (Wolf's default).
    #[serde(default = "yes")]
    pub multi_user: bool,
    /// Digits needed to join/stop; absent = open lobby.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pin: Option<Secret<Vec<i16>>>,
    /// Default true (Wolf's default).
    #[serde(default = "yes")]
    pub stop_when_everyone_leaves: bool,
    /// Video.
    pub video_settings: VideoSettings,
    /// Audio.
    pub audio_settings: AudioSettings,
    /// Partial client settings, kept verbatim.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_settings: Option<Value>,
    /// Runner state folder.
    #[serde(default)]
    pub runner_state_folder: String,
    /// What runs in the lobby.
    #[serde(default)]
    pub runner: Runner,
}

/// Body of `POST /api/v1/lobbies/join` (`events::JoinLobbyEvent`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JoinLobbyRequest {
    /// Lobby id.
    pub lobby_id: String,
    /// Session id (decimal string).
    pub moonlight_session_id: SessionId,
    /// The lobby's PIN digits, if it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pin: Option<Secret<Vec<i16>>>,
}

/// Body of `POST /api/v1/lobbies/leave` (`events::LeaveLobbyEvent`; `pin` is a moongate leniency).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LeaveLobbyRequest {
    /// Lobby id.
    pub lobby_id: String,
    /// Session id (decimal string).
    pub moonlight_session_id: SessionId,
    /// Ignored by Wolf; accepted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pin: Option<Secret<Vec<i16>>>,
}

/// Body of `POST /api/v1/lobbies/stop` (`events::StopLobbyEvent`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StopLobbyRequest {
    /// Lobby id.
    pub lobby_id: String,
    /// The lobby's PIN digits, if it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pin: Option<Secret<Vec<i16>>>,
}

/// One client waiting for its PIN (`GET /api/v1/pair/pending`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PendingPair {
    /// Handle to answer with `POST /api/v1/pair/client`.
    pub pair_secret: String,
    /// IP of the Moonlight client.
    pub client_ip: String,
    /// Only when the host already knows it (tests); Wolf never sends one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pin: Option<Secret<String>>,
}

/// Body of `POST /api/v1/pair/client`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PairRequest {
    /// From `pair/pending`.
    pub pair_secret: String,
    /// The PIN shown by the Moonlight client.
    pub pin: Secret<String>,
}

/// `PairSignal` event data: a client started pairing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PairSignal {
    /// Client IP.
    pub client_ip: String,
    /// Host IP the client reached.
    pub host_ip: String,
}

/// Event data holding only a session id (`StopStreamEvent`, `PauseStreamEvent`,
/// `ResumeStreamEvent`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionEvent {
    /// Session id (decimal string).
    pub session_id: SessionId,
}

/// `CreateLobbyEvent` data. The PIN is left out (Wolf sends it; moongate keeps secrets off the
/// event stream), `client_settings` too.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LobbyCreated {
    /// Lobby id.
    pub id: String,
    /// Creating profile.
    pub profile_id: String,
    /// Name.
    pub name: String,
    /// Icon path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub icon_png_path: Option<String>,
    /// Multi-user.
    pub multi_user: bool,
    /// Stop when empty.
    pub stop_when_everyone_leaves: bool,
    /// Video.
    pub video_settings: VideoSettings,
    /// Audio.
    pub audio_settings: AudioSettings,
    /// Runner state folder.
    pub runner_state_folder: String,
    /// Runner.
    pub runner: Runner,
}

/// `StopLobbyEvent` data (PIN left out).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LobbyStopped {
    /// Lobby id.
    pub lobby_id: String,
}

/// `JoinLobbyEvent` / `LeaveLobbyEvent` data (PIN left out).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LobbyMembership {
    /// Lobby id.
    pub lobby_id: String,
    /// Session id (decimal string).
    pub moonlight_session_id: SessionId,
}

/// `SwitchStreamProducerEvents` data: a session's consumer now reads another producer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProducerSwitch {
    /// Session id (decimal string).
    pub session_id: SessionId,
    /// `<lobby_id>_video` or `<session_id>_video` in Wolf.
    pub interpipe_src_id: String,
}

/// Host events sent on `/api/v1/events`. Each is written as `event: <Wolf's C++ type name>` +
/// `data: <json>`; see [`WolfEvent::type_name`].
#[derive(Debug, Clone, PartialEq)]
pub enum WolfEvent {
    /// A Moonlight client asked to pair (`wolf::core::events::PairSignal`).
    PairRequested(PairSignal),
    /// A session was created by /launch or `sessions/add` (`wolf::core::events::StreamSession`).
    SessionStarted(Session),
    /// A session ended (`wolf::core::events::StopStreamEvent`).
    SessionStopped(SessionEvent),
    /// Snapshot Wolf: ENet disconnect (`wolf::core::events::PauseStreamEvent`).
    SessionPaused(SessionEvent),
    /// ENet connect (`wolf::core::events::ResumeStreamEvent`).
    SessionResumed(SessionEvent),
    /// A lobby was created (`wolf::core::events::CreateLobbyEvent`).
    LobbyCreated(LobbyCreated),
    /// A lobby was stopped (`wolf::core::events::StopLobbyEvent`).
    LobbyStopped(LobbyStopped),
    /// A session joined a lobby (`wolf::core::events::JoinLobbyEvent`).
    SessionJoinedLobby(LobbyMembership),
    /// A session left a lobby (`wolf::core::events::LeaveLobbyEvent`).
    SessionLeftLobby(LobbyMembership),
    /// A session's producer changed (`wolf::core::events::SwitchStreamProducerEvents`).
    ProducerSwitched(ProducerSwitch),
}

impl WolfEvent {
    /// The SSE `event:` name: Wolf's `rfl::type_name_t` of the C++ event struct.
    pub fn type_name(&self) -> &'static str {
        match self {
            WolfEvent::PairRequested(_) => "wolf::core::events::PairSignal",
            WolfEvent::SessionStarted(_) => "wolf::core::events::StreamSession",
            WolfEvent::SessionStopped(_) => "wolf::core::events::StopStreamEvent",
            WolfEvent::SessionPaused(_) => "wolf::core::events::PauseStreamEvent",
            WolfEvent::SessionResumed(_) => "wolf::core::events::ResumeStreamEvent",
            WolfEvent::LobbyCreated(_) => "wolf::core::events::CreateLobbyEvent",
            WolfEvent::LobbyStopped(_) => "wolf::core::events::StopLobbyEvent",
            WolfEvent::SessionJoinedLobby(_) => "wolf::core::events::JoinLobbyEvent",
            WolfEvent::SessionLeftLobby(_) => "wolf::core::events::LeaveLobbyEvent",
            WolfEvent::ProducerSwitched(_) => "wolf::core::events::SwitchStreamProducerEvents",
        }
    }

    /// The SSE `data:` line: compact JSON (no newlines).
    pub fn data_json(&self) -> Result<String, serde_json::Error> {
        match self {
            WolfEvent::PairRequested(e) => serde_json::to_string(e),
            WolfEvent::SessionStarted(e) => serde_json::to_string(e),
            WolfEvent::SessionStopped(e)
            | WolfEvent::SessionPaused(e)
            | WolfEvent::SessionResumed(e) => serde_json::to_string(e),
            WolfEvent::LobbyCreated(e) => serde_json::to_string(e),
            WolfEvent::LobbyStopped(e) => serde_json::to_string(e),
            WolfEvent::SessionJoinedLobby(e) | WolfEvent::SessionLeftLobby(e) => {
                serde_json::to_string(e)
            }
            WolfEvent::ProducerSwitched(e) => serde_json::to_string(e),
        }
    }
}

/// The host's fault knobs (moongate extension, `/api/v1/moongate/faults`). Percentages are 0..=100
/// and apply to outgoing media packets (video and audio) of every session.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct FaultKnobs {
    /// Drop this % of media packets.
    pub drop_pct: f64,
    /// Swap this % of media packets with the next one.
    pub reorder_pct: f64,
    /// Replace this % of media packets with random bytes of a random length.
    pub corrupt_pct: f64,
    /// Delay this % of media packets by `delay_ms`.
    pub delay_pct: f64,
    /// Delay of a delayed packet.
    pub delay_ms: u64,
    /// Sleep this long before a session or lobby teardown completes.
    pub slow_teardown_ms: u64,
    /// Refuse `/launch` (and `sessions/add`) with an error.
    pub refuse_launches: bool,
    /// Set to crash the host: every socket and session dropped with no teardown. One-shot: the
    /// host decides whether it ever reads back as `true`.
    pub crash: bool,
}

/// Wolf-strict mode and its violation counter (moongate extension, `/api/v1/moongate/strict`):
/// what an end-to-end test reads to assert that its gateway did nothing a real Wolf crashes on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct StrictStatus {
    /// Wolf-strict mode is on.
    pub wolf_strict: bool,
    /// Sessions a `/cancel` or API stop ended while their ENet peer was still connected (a crash
    /// of a real Wolf each); always 0 when the mode is off.
    pub disconnects_after_cancel: u64,
}

/// Body of `POST /api/v1/moongate/faults`: only the fields given change.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultKnobsPatch {
    /// See [`FaultKnobs`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drop_pct: Option<f64>,
    /// See [`FaultKnobs`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reorder_pct: Option<f64>,
    /// See [`FaultKnobs`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub corrupt_pct: Option<f64>,
    /// See [`FaultKnobs`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay_pct: Option<f64>,
    /// See [`FaultKnobs`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay_ms: Option<u64>,
    /// See [`FaultKnobs`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slow_teardown_ms: Option<u64>,
    /// See [`FaultKnobs`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refuse_launches: Option<bool>,
    /// See [`FaultKnobs`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crash: Option<bool>,
}

impl FaultKnobsPatch {
    /// Percentages must be finite and in 0..=100.
    pub fn validate(&self) -> Result<(), WolfApiError> {
        for (name, v) in [
            ("drop_pct", self.drop_pct),
            ("reorder_pct", self.reorder_pct),
            ("corrupt_pct", self.corrupt_pct),
            ("delay_pct", self.delay_pct),
        ] {
            if let Some(v) = v {
                if !(v.is_finite() && (0.0..=100.0).contains(&v)) {
                    return Err(WolfApiError::BadRequest(format!(
                        "{name} must be within 0..=100"
                    )));
                }
            }
        }
        Ok(())
    }
}

impl FaultKnobs {
    /// Apply a (validated) patch.
    pub fn apply(&mut self, patch: &FaultKnobsPatch) -> Result<(), WolfApiError> {
        patch.validate()?;
        if let Some(v) = patch.drop_pct {
            self.drop_pct = v;
        }
        if let Some(v) = patch.reorder_pct {
            self.reorder_pct = v;
        }
        if let Some(v) = patch.corrupt_pct {
            self.corrupt_pct = v;
        }
        if let Some(v) = patch.delay_pct {
            self.delay_pct = v;
        }
        if let Some(v) = patch.delay_ms {
            self.delay_ms = v;
        }
        if let Some(v) = patch.slow_teardown_ms {
            self.slow_teardown_ms = v;
        }
        if let Some(v) = patch.refuse_launches {
            self.refuse_launches = v;
        }
        if let Some(v) = patch.crash {
            self.crash = v;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
