//! Wiring: the shared state every route sees, serving with graceful shutdown, host preloading, and
//! the seam for an embedded host.

use std::any::Any;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use tokio::net::TcpListener;

use crate::api::pair::Pairings;
use crate::auth::Credentials;
use crate::autopair::PinSubmitter;
use crate::certs::{CertCacheConfig, ClientCertCache, Clock};
use crate::config::{Config, HostSeed};
use crate::sessions::{MemoryRegistry, SessionRegistry, StopReason};
use crate::store::{HostStore, NewHost, StoreError};

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
    pub launch_gates: Arc<crate::launch_gate::LaunchGates>,
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
    /// State with an in-process session registry and the certificate cache on `clock` (needs a
    /// tokio runtime: the cache starts its sweeper). The admin credential is
    /// `config.admin_credentials`, else a random one nobody knows until
    /// [`AppState::with_admin_credentials`] sets the loaded or generated one.
    pub fn new(
        config: Config,
        credentials: Credentials,
        store: Arc<dyn HostStore>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        let certs = ClientCertCache::new(
            CertCacheConfig {
                idle_ttl: config.timeouts.cert_idle,
                sweep_every: config.timeouts.cert_sweep,
            },
            clock,
        );
        let admin_credentials = config
            .admin_credentials
            .as_deref()
            .map(Credentials::new)
            .unwrap_or_else(Credentials::generate);
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
            launch_gates: Arc::default(),
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

/// Adds each seed whose address and HTTP port are not yet in the store; returns how many.
pub async fn preload_hosts(store: &dyn HostStore, seeds: &[HostSeed]) -> Result<usize, StoreError> {
    let existing = store.list_hosts().await?;
    let mut added = 0;
    for seed in seeds {
        let http_port = seed
            .http_port
            .unwrap_or(gamestream::nvhttp::DEFAULT_HTTP_PORT);
        if existing
            .iter()
            .any(|h| h.address == seed.address && h.http_port == http_port)
        {
            continue;
        }
        store
            .add_host(NewHost {
                name: seed.name.clone().unwrap_or_else(|| seed.address.clone()),
                address: seed.address.clone(),
                http_port,
                https_port: seed.https_port,
                mac: seed.mac.clone(),
                wolf_api: seed.wolf_api.clone(),
            })
            .await?;
        added += 1;
    }
    Ok(added)
}

/// Serves the REST API on `listener` until `shutdown` completes; then asks every live stream to
/// stop (close code 1001) and lets in-flight requests finish. Handlers can extract
/// `ConnectInfo<SocketAddr>` (the peer address, e.g. for [`crate::sessions::SessionMeta::remote`]).
///
/// Served with hyper's HTTP/1 connection builder rather than `axum::serve`, which sets no timer
/// and so no header timeout: a client that never finishes its request headers (slow-loris, or a
/// socket opened and left idle, also between keep-alive requests) is closed after
/// `[limits] upgrade_timeout_secs` and counted as `upgrade_timeout`. An upgraded WebSocket is
/// hyper's no longer and is not affected.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    use hyper_util::rt::{TokioIo, TokioTimer};
    use tokio::sync::watch;

    let sessions = Arc::clone(&state.sessions);
    let metrics = Arc::clone(&state.metrics);
    let header_timeout = state.config.limits.upgrade_timeout;
    let app = crate::api::router(state);

    // Dropped when `shutdown` completes: stop accepting, ask each connection to finish.
    let (signal_tx, signal_rx) = watch::channel(());
    tokio::spawn(async move {
        shutdown.await;
        sessions.stop_all(StopReason::Shutdown);
        drop(signal_rx);
    });
    // Each connection task holds a receiver; the server returns once all are gone.
    let (close_tx, close_rx) = watch::channel(());

    loop {
        let (tcp, remote) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    accept_error(e).await;
                    continue;
                }
            },
            _ = signal_tx.closed() => break,
        };
        // TCP_NODELAY: a video message (tens of kB) is smaller than loopback's 64 kB MSS, so with
        // Nagle it waits behind the ACK of the previous write (measured by `benches/gateway.rs`:
        // ~16 ms, one frame, host → browser on loopback). Media must go out as soon as it is
        // written.
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!("TCP_NODELAY on an accepted connection: {e}");
        }
        let router = app.clone();
        let service = hyper::service::service_fn(move |mut req: hyper::Request<_>| {
            req.extensions_mut()
                .insert(axum::extract::ConnectInfo(remote));
            let mut router = router.clone();
            async move {
                <axum::Router as tower_service::Service<hyper::Request<hyper::body::Incoming>>>::call(
                    &mut router,
                    req,
                )
                .await
            }
        });
        let signal_tx = signal_tx.clone();
        let close_rx = close_rx.clone();
        let metrics = Arc::clone(&metrics);
        tokio::spawn(async move {
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder
                .timer(TokioTimer::new())
                .header_read_timeout(header_timeout);
            let conn = builder
                .serve_connection(TokioIo::new(tcp), service)
                .with_upgrades();
            let mut conn = std::pin::pin!(conn);
            let mut signal_closed = std::pin::pin!(signal_tx.closed());
            let mut shutting_down = false;
            loop {
                tokio::select! {
                    result = conn.as_mut() => {
                        if let Err(e) = result {
                            if e.is_timeout() {
                                metrics.rejected(crate::limits::Rejection::UpgradeTimeout);
                                tracing::debug!(%remote, "closed a connection that sent no complete request headers in {header_timeout:?}");
                            } else {
                                tracing::trace!(%remote, "connection: {e}");
                            }
                        }
                        break;
                    }
                    _ = &mut signal_closed, if !shutting_down => {
                        shutting_down = true;
                        conn.as_mut().graceful_shutdown();
                    }
                }
            }
            drop(close_rx);
        });
    }
    drop(close_rx);
    drop(listener);
    close_tx.closed().await;
    Ok(())
}

/// An accept error: a peer that gave up is nothing; anything else (out of file descriptors:
/// `EMFILE`) is logged and the loop pauses, so that connections can end and free descriptors
/// (what hyper 0.14 and axum do).
async fn accept_error(e: std::io::Error) {
    use std::io::ErrorKind;
    if matches!(
        e.kind(),
        ErrorKind::ConnectionRefused | ErrorKind::ConnectionAborted | ErrorKind::ConnectionReset
    ) {
        return;
    }
    tracing::error!("accept error: {e}");
    tokio::time::sleep(std::time::Duration::from_millis(250)).await;
}

/// A host provided at startup by a [`HostProvider`] (e.g. the in-process `demo-host`).
pub struct ProvidedHost {
    /// How to reach it; preloaded into the store like a configured host.
    pub seed: HostSeed,
    /// Keeps the host running; dropped at shutdown, after the server has stopped.
    pub keepalive: Box<dyn Any + Send + Sync>,
    /// Enters pairing PINs on this host, so browser identities pair automatically.
    pub pins: Option<Arc<dyn PinSubmitter>>,
}

impl std::fmt::Debug for ProvidedHost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProvidedHost")
            .field("seed", &self.seed)
            .finish_non_exhaustive()
    }
}

/// Boxed error of a host provider.
pub type ProviderError = Box<dyn std::error::Error + Send + Sync>;

/// The seam for an embedded host: called once at startup with the effective configuration.
/// The integrator's implementation starts `demo-host` in-process when `config.hosts` is empty.
pub trait HostProvider: Send {
    /// Starts a host, or returns `None` when none is wanted.
    fn provide(
        self: Box<Self>,
        config: &Config,
    ) -> Pin<Box<dyn Future<Output = Result<Option<ProvidedHost>, ProviderError>> + Send>>;
}

/// Provides no host (only configured or added hosts are used).
#[derive(Debug, Clone, Copy, Default)]
pub struct NoEmbeddedHost;

impl HostProvider for NoEmbeddedHost {
    fn provide(
        self: Box<Self>,
        _config: &Config,
    ) -> Pin<Box<dyn Future<Output = Result<Option<ProvidedHost>, ProviderError>> + Send>> {
        Box::pin(std::future::ready(Ok(None)))
    }
}
