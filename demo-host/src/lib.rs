//! # demo-host
//!
//! A Wolf-compatible Moonlight host inside moongate: the embedded default host of the gateway and
//! the peer of every end-to-end test. Built on `gamestream::host` (the protocol) with Wolf's
//! session lifecycle (gamestream-protocol-2-media.md §7.2): one stream per client, stop (never
//! pause) on disconnect, termination, `/cancel` or 60 s of silence; lobbies with their own
//! producers; an input sink; fault knobs and a replay mode for tests.
//!
//! [`DemoHost::start`] runs one and serves Wolf's HTTP API ([`wolf_api`]) on a Unix socket (by
//! default `<data dir>/wolf.sock`) and optionally TCP ([`WolfApiConfig`]); `demo-host --help` runs
//! one on its own.
//!
//! Modes beyond the default: [`DemoHostConfig::wolf_strict`] (behave like an unmodified Wolf,
//! [`strict`]), [`WolfApiConfig::none`] (no pairing API: PIN typed by hand, as with Sunshine) and
//! [`DemoHostConfig::offered_codecs`] (H.264, HEVC and AV1 to stock Moonlight clients) and
//! [`DemoHostConfig::microphone`] (the Sunshine forks' microphone stream, into a [`mic`] sink).

pub mod config;
mod host;
pub mod media;
pub mod mic;
pub mod producer;
pub mod store;
pub mod strict;
pub mod wolf_api;

pub use config::{
    default_apps, AppConfig, DemoHostConfig, Faults, OfferedCodecs, PortPlan, WolfApiConfig,
    WolfApiSocket,
};
pub use gamestream::host::EndReason;
pub use host::{
    ApiError, ClientInfo, DemoEvent, DemoHost, DemoHostError, HostHandle, InputRecord, LobbyInfo,
    LobbySettings, LobbyVideo, PendingPair, SessionInfo,
};
pub use mic::MicReport;
pub use producer::{MediaFactory, RealMedia};
