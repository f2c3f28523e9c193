//! The state every route and every stream sees ([`AppState`]): configuration, credentials, the
//! host store, the certificate cache, the session registry and the per-host launch turns.
//!
//! Kept apart from [`crate::server`] (which serves it) so that the routes and the stream
//! lifecycle depend on the state, not on the server that wires them together.

use std::sync::Arc;

use crate::api::pair::Pairings;
use crate::auth::Credentials;
use crate::autopair::PinSubmitter;
use crate::certs::{CertCacheConfig, ClientCertCache};
use crate::config::Config;
use crate::sessions::{MemoryRegistry, SessionRegistry};
use crate::store::HostStore;

/// State shared by every route (cheap to clone). Dropping the last clone ends every background
/// task it owns (certificate sweeper, running pairings).
#[derive(Clone)]
pub struct AppState {
    /// Effective configuration.
    pub config: Arc<Config>,
    /// The bearer credential.
    pub credentials: Credentials,
    /// Hosts, identities, pairing state.
    pub store: Arc<dyn HostStore>,
    /// Client certificates per browser client id.
    pub certs: ClientCertCache,
    /// Live streams: the one source of truth.
    pub sessions: Arc<dyn SessionRegistry>,
    /// The admin credential (`/api/admin/*`, `/metrics`).
    pub admin_credentials: Credentials,
    /// Per-stream pid and rates on this node, by registry entry id ([`crate::admin::live`]).
    pub live: crate::admin::live::LiveTable,
    /// Prometheus metrics.
    pub metrics: Arc<crate::metrics::Metrics>,
    /// Recent log lines and the live feed (process-wide).
    pub logs: &'static crate::admin::logs::LogBuffer,
    pub(crate) pairings: Arc<Pairings>,
    /// `/cancel`s waiting out a host's ENet timeout after a streamer died mid-stream.
    pub host_cleanups: Arc<crate::host_cleanup::HostCleanups>,
    /// This gateway's membership in a cluster (Redis); `None` on a single node.
    pub cluster: Option<crate::cluster::Cluster>,
    /// Stream opens per address this minute ([`crate::limits`]).
    pub open_rate: Arc<crate::limits::OpenRate>,
    /// Launches on one host take turns ([`crate::launch_gate`]).
    pub launch_gates: crate::launch_gate::LaunchGates,
    /// Sign-in through an OpenID Connect provider; `None` when `[users.oidc]` is off.
    pub oidc: Option<Arc<crate::users::oidc::Oidc>>,
    /// WebSocket-mode streams that viewers can join ([`crate::api::Watches`]).
    pub watches: Arc<crate::api::Watches>,
    /// WebRTC streams' quality ladders, for the administrator ([`crate::stream::adapt`]).
    pub rung_controls: Arc<crate::stream::adapt::RungControls>,
    /// Failed sign-ins per address and name ([`crate::users::throttle`]).
    pub sign_ins: Arc<crate::users::throttle::SignInThrottle>,
    /// Who can enter pairing PINs on which host (the embedded demo host).
    pins: Arc<std::sync::RwLock<Vec<Arc<dyn PinSubmitter>>>>,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState")
            .field("config", &self.config)
            .field("certs", &self.certs)
            .finish_non_exhaustive()
    }
}

impl AppState {
    /// State with an in-process session registry and the certificate cache on tokio's clock
    /// (needs a tokio runtime: the cache starts its sweeper). The admin credential is
    /// `config.admin_credentials`, else a random one nobody knows until
    /// [`AppState::with_admin_credentials`] sets the loaded or generated one.
    pub fn new(config: Config, credentials: Credentials, store: Arc<dyn HostStore>) -> Self {
        let certs = ClientCertCache::new(CertCacheConfig {
            idle_ttl: config.timeouts.cert_idle,
            sweep_every: config.timeouts.cert_sweep,
        });
        let admin_credentials = config
            .admin_credentials
            .as_deref()
            .map(Credentials::new)
            .unwrap_or_else(Credentials::generate);
        // A provider that cannot be set up (its CA file) leaves sign-in through it off; the
        // binary refuses to start then (`main.rs`), so this is only what a library user sees.
        let oidc = config.users.oidc.clone().and_then(|c| {
            crate::users::oidc::Oidc::new(c)
                .map_err(|e| tracing::error!("OIDC sign-in is off: {e}"))
                .ok()
        });
        AppState {
            config: Arc::new(config),
            credentials,
            store,
            certs,
            sessions: Arc::new(MemoryRegistry::new()),
            admin_credentials,
            live: Default::default(),
            metrics: Arc::default(),
            logs: crate::admin::logs::global(),
            pairings: Arc::new(Pairings::default()),
            host_cleanups: Arc::default(),
            cluster: None,
            open_rate: Arc::default(),
            launch_gates: Default::default(),
            watches: Default::default(),
            rung_controls: Arc::default(),
            oidc,
            sign_ins: Arc::default(),
            pins: Arc::default(),
        }
    }

    /// Joins the cluster on Redis: this node's streams carry its id, and the session registry,
    /// the certificate cache's idle times and (with [`crate::cluster::store::RedisStore`] as the
    /// store) hosts and identities are shared with the other nodes.
    pub async fn with_cluster(
        mut self,
        config: &crate::config::RedisConfig,
        client: redis::Client,
        conn: redis::aio::ConnectionManager,
    ) -> Result<Self, crate::cluster::ClusterError> {
        let registry: Arc<dyn SessionRegistry> =
            Arc::new(MemoryRegistry::with_node(config.node_id.clone()));
        let cluster =
            crate::cluster::Cluster::join(config, client, conn, Arc::clone(&registry)).await?;
        cluster.share_cert_cache(self.certs.clone(), self.config.timeouts.cert_idle);
        self.sessions = registry;
        self.cluster = Some(cluster);
        Ok(self)
    }

    /// Replaces the admin credential.
    pub fn with_admin_credentials(mut self, admin: Credentials) -> Self {
        self.admin_credentials = admin;
        self
    }

    /// Counts a stream socket opened from `ip`; an [`ApiError`] 429 (and a metric) over the
    /// operator's per-minute limit.
    pub fn allow_open(&self, ip: std::net::IpAddr) -> Result<(), crate::error::ApiError> {
        let per_minute = self.config.limits.opens_per_minute_per_ip;
        if self
            .open_rate
            .allow(ip, per_minute, std::time::Instant::now())
        {
            return Ok(());
        }
        self.metrics.rejected(crate::limits::Rejection::OpenRate);
        tracing::info!(%ip, per_minute, "refused a stream open over the per-address rate");
        Err(crate::error::ApiError::new(
            axum::http::StatusCode::TOO_MANY_REQUESTS,
            "too_many_opens",
            format!(
                "more than {per_minute} stream opens a minute from this address; try again shortly"
            ),
        ))
    }

    /// Registers a way to enter pairing PINs on a host (see [`crate::autopair`]).
    pub fn add_pin_submitter(&self, submitter: Arc<dyn PinSubmitter>) {
        self.pins
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .push(submitter);
    }

    /// The way to enter PINs on `host`: a registered submitter (the embedded host, a config-file
    /// `wolf_api`), else one built from the host's stored `wolf_api` (added through the REST API),
    /// registered for next time. `None`: the host has no pairing API, so its streams use the
    /// identity paired with a PIN ([`crate::api::GATEWAY_CLIENT_ID`]).
    pub fn pin_submitter_for_host(
        &self,
        host: &crate::store::HostRecord,
    ) -> Option<Arc<dyn PinSubmitter>> {
        if let Some(p) = self.pin_submitter_for(&host.address, host.http_port) {
            return Some(p);
        }
        let location = host.wolf_api.as_deref()?;
        match crate::autopair::WolfApiPins::new(host.address.clone(), host.http_port, location) {
            Ok(pins) => {
                let pins: Arc<dyn PinSubmitter> = Arc::new(pins);
                self.add_pin_submitter(Arc::clone(&pins));
                Some(pins)
            }
            Err(e) => {
                tracing::warn!(host = host.id, error = %e, "stored wolf_api unusable");
                None
            }
        }
    }

    /// The PIN submitter for the host at `address`:`http_port`, if any.
    pub fn pin_submitter_for(
        &self,
        address: &str,
        http_port: u16,
    ) -> Option<Arc<dyn PinSubmitter>> {
        self.pins
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .find(|s| s.serves(address, http_port))
            .cloned()
    }
}
