//! Wiring: serving the routes with graceful shutdown, host preloading, and the seam for an
//! embedded host. The shared state itself is [`crate::state::AppState`].

use std::any::Any;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use tokio::net::TcpListener;

use crate::autopair::PinSubmitter;
use crate::config::{Config, HostSeed};
use crate::sessions::StopReason;
use crate::store::{HostStore, NewHost, StoreError};

pub use crate::state::AppState;

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
/// Unsent bytes the kernel holds per connection (see the accept loop): 50 ms at 20 Mbit/s.
const NOT_SENT_LOW_WATER: u32 = 128 * 1024;

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
        // TCP_NOTSENT_LOWAT: the kernel takes at most this much not-yet-sent data, so on a link
        // slower than the stream a frame waits in the browser's send queue, whose time budget
        // drops what is too old (and the quality controller sees the queue grow), instead of
        // in a send buffer that autotunes to megabytes: measured on a 5 Mbit/s link
        // (tests/adapt.rs), 1.8 s of delay without it.
        if let Err(e) = socket2::SockRef::from(&tcp).set_tcp_notsent_lowat(NOT_SENT_LOW_WATER) {
            tracing::debug!("TCP_NOTSENT_LOWAT on an accepted connection: {e}");
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
