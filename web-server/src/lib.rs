//! moongate's web-server: the long-lived process that owns all shared state.
//!
//! * [`config`]: TOML file + environment (env wins).
//! * [`auth`]: the bearer credential (generated at first start if none is configured), the
//!   WebSocket `Origin` check and the first-message credential check.
//! * [`store`]: hosts, our client identities per host and pairing state, behind a trait
//!   ([`store::HostStore`]) with a SQLite implementation.
//! * [`certs`]: the client-certificate cache keyed by the browser's client id, with a clock the
//!   tests control.
//! * [`sessions`]: the session registry, the one source of truth for live streams.
//! * [`state`]: [`AppState`], what every route and stream sees.
//! * [`api`]: the REST API (axum) and the stream sockets (`GET /api/ws/stream`,
//!   `/api/host/stream`, WHEP): thin transports over [`stream`], the one stream lifecycle
//!   (launch, teardown, close codes, end reasons); [`server`]: wiring and serving.
//! * [`autopair`]: automatic pairing of each browser client id's identity with a host.
//! * [`streamer_proc`]: one `streamer` child per connection (IPC on stdio, logs relayed);
//!   [`launch_gate`]: launches on one host take turns (Wolf matches RTSP sessions by IP).
//! * [`embedded`]: the in-process demo host used when no host is configured.
//! * [`datadir`], [`store_key`]: owner-only file modes in the data directory and the key that
//!   encrypts client private keys in the store.
//! * [`identities`]: last use, idle expiry and revocation of client identities in the store.
//! * [`admin`]: the operator's API (`/api/admin/*`, live logs), [`metrics`]: `/metrics`.

pub mod admin;
pub mod api;
pub mod auth;
pub mod autopair;
pub mod certs;
pub mod cluster;
pub mod config;
pub mod datadir;
pub mod embedded;
pub mod error;
pub mod host_cleanup;
pub mod identities;
pub mod launch_gate;
pub mod limits;
pub mod metrics;
pub mod server;
pub mod sessions;
pub mod state;
pub mod store;
pub mod store_key;
pub mod stream;
pub mod streamer_proc;
pub mod users;
pub mod web_ui;
pub mod wol;

pub use config::Config;
pub use error::ApiError;
pub use server::{HostProvider, NoEmbeddedHost, ProvidedHost};
pub use state::AppState;
