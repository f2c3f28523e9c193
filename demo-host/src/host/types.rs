//! The host's public data types: its errors, the events it tells observers, and the snapshots
//! its API hands out (sessions, lobbies, clients, pairing requests, input records). Kept apart so
//! `host.rs` reads as the host's state and commands.

use super::*;

/// Errors of starting a demo host.
#[derive(Debug, thiserror::Error)]
pub enum DemoHostError {
    /// On-disk state.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A fresh identity could not be made.
    #[error("identity: {0}")]
    Identity(String),
    /// The host half failed to start (port in use...).
    #[error(transparent)]
    Host(#[from] gamestream::host::HostError),
    /// The Wolf API could not be served (socket in use...).
    #[error(transparent)]
    WolfApi(#[from] ServeError),
}

/// Errors of the session and lobby API.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApiError {
    /// No such session.
    #[error("no session {0}")]
    NoSuchSession(u64),
    /// No such lobby.
    #[error("no lobby {0}")]
    NoSuchLobby(String),
    /// The lobby's PIN was missing or wrong.
    #[error("wrong lobby PIN")]
    WrongPin,
    /// A single-user lobby already has its user.
    #[error("lobby {0} is not multi-user and already in use")]
    LobbyFull(String),
    /// The pairing request is unknown or expired.
    #[error("invalid pair secret")]
    InvalidPairSecret,
}

/// What the host tells its observers (the Wolf API's event stream, tests).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DemoEvent {
    /// `/launch` or `/resume` created a session.
    SessionStarted {
        /// Session id.
        session_id: u64,
        /// Client certificate id.
        client_id: u64,
        /// App.
        app_id: u32,
    },
    /// RTSP PLAY: the session's producer runs.
    StreamStarted {
        /// Session id.
        session_id: u64,
    },
    /// A session is gone (its teardown finished).
    SessionStopped {
        /// Session id.
        session_id: u64,
        /// Client certificate id.
        client_id: u64,
        /// Why.
        reason: EndReason,
    },
    /// A lobby was created.
    LobbyCreated {
        /// Lobby id.
        lobby_id: String,
        /// Its name.
        name: String,
    },
    /// A lobby was stopped.
    LobbyStopped {
        /// Lobby id.
        lobby_id: String,
    },
    /// A session joined a lobby.
    JoinedLobby {
        /// Session id.
        session_id: u64,
        /// Lobby id.
        lobby_id: String,
    },
    /// A session left a lobby.
    LeftLobby {
        /// Session id.
        session_id: u64,
        /// Lobby id.
        lobby_id: String,
    },
    /// A client asked to pair and waits for a PIN.
    PairRequested {
        /// Handle for [`HostHandle::submit_pair_pin`].
        pair_secret: String,
        /// Client IP.
        client_ip: IpAddr,
        /// Its device name.
        device_name: String,
    },
}

/// A live session, for the API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionInfo {
    /// Session id.
    pub session_id: u64,
    /// Client certificate id.
    pub client_id: u64,
    /// App.
    pub app_id: u32,
    /// Client address.
    pub client_ip: IpAddr,
    /// Announced width (0 before RTSP ANNOUNCE/PLAY).
    pub width: u32,
    /// Announced height.
    pub height: u32,
    /// Announced frame rate.
    pub fps: u32,
    /// Announced audio channels.
    pub audio_channels: u32,
    /// The bitrate in force, kbit/s: the announced one (0 before RTSP PLAY), or the last live
    /// change ([`crate::DemoHostConfig::live_bitrate`]).
    pub bitrate_kbps: u32,
    /// The lobby it watches.
    pub lobby: Option<String>,
    /// RTSP PLAY seen, media flowing.
    pub streaming: bool,
    /// The NVHTTP `uniqueid` the client launched with (Wolf's `client_unique_id`; empty if none).
    pub client_unique_id: String,
    /// Colour of its own picture's label band (set at RTSP PLAY; black before).
    pub color: [u8; 3],
}

/// Video settings of a lobby (as Wolf's `video_settings`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LobbyVideo {
    /// Width.
    pub width: u32,
    /// Height.
    pub height: u32,
    /// Refresh rate.
    pub refresh_rate: u32,
}

impl Default for LobbyVideo {
    fn default() -> Self {
        Self {
            width: 1920,
            height: 1080,
            refresh_rate: 60,
        }
    }
}

/// What `create_lobby` takes.
#[derive(Clone, PartialEq, Eq)]
pub struct LobbySettings {
    /// Display name (drawn in its picture).
    pub name: String,
    /// More than one session may join.
    pub multi_user: bool,
    /// Stop when the last member leaves.
    pub stop_when_everyone_leaves: bool,
    /// PIN digits needed to join or stop (never logged).
    pub pin: Option<Vec<u8>>,
    /// Video settings (reported; members receive the format their client announced).
    pub video: LobbyVideo,
    /// Audio channels (reported; members receive the layout their client announced).
    pub audio_channels: u32,
}

impl std::fmt::Debug for LobbySettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LobbySettings")
            .field("name", &self.name)
            .field("multi_user", &self.multi_user)
            .field("stop_when_everyone_leaves", &self.stop_when_everyone_leaves)
            .field("pin", &self.pin.as_ref().map(|_| "<set>"))
            .field("video", &self.video)
            .field("audio_channels", &self.audio_channels)
            .finish()
    }
}

impl LobbySettings {
    /// A multi-user lobby that stays until stopped, 1080p60 stereo, no PIN.
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            multi_user: true,
            stop_when_everyone_leaves: false,
            pin: None,
            video: LobbyVideo::default(),
            audio_channels: 2,
        }
    }
}

/// A lobby, for the API (its PIN is not shown, only whether it has one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LobbyInfo {
    /// Lobby id (a UUID).
    pub id: String,
    /// Name.
    pub name: String,
    /// More than one session may join.
    pub multi_user: bool,
    /// Stops when the last member leaves.
    pub stop_when_everyone_leaves: bool,
    /// Joining needs a PIN.
    pub has_pin: bool,
    /// Video settings.
    pub video: LobbyVideo,
    /// Audio channels.
    pub audio_channels: u32,
    /// Member sessions.
    pub members: Vec<u64>,
    /// Colour of its picture's label band.
    pub color: [u8; 3],
}

/// A paired client, for the API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientInfo {
    /// Stable id (as sessions report it).
    pub client_id: u64,
    /// Its device name at pairing.
    pub device_name: String,
    /// Its `uniqueid`.
    pub unique_id: String,
}

/// A pairing request waiting for its PIN.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingPair {
    /// Handle for [`HostHandle::submit_pair_pin`].
    pub pair_secret: String,
    /// Client IP.
    pub client_ip: IpAddr,
    /// Device name.
    pub device_name: String,
}

/// One recorded input event.
#[derive(Debug, Clone, PartialEq)]
pub struct InputRecord {
    /// 1, 2, 3, ... per session, in arrival order (kept counting when old records are dropped).
    pub seq: u64,
    /// Session it came from.
    pub session_id: u64,
    /// When the host decoded it.
    pub at: Instant,
    /// The event.
    pub event: InputEvent,
}
