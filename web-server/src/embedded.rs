//! The embedded demo host: when no host is configured, `demo-host` runs inside the server and
//! appears as a paired host, so `moongate` alone streams a test pattern.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use demo_host::{DemoHost, DemoHostConfig, PortPlan, WolfApiConfig, WolfApiSocket};

use crate::api::GATEWAY_CLIENT_ID;
use crate::autopair::{ensure_paired, DemoHostPins};
use crate::config::{Config, HostSeed};
use crate::server::{preload_hosts, HostProvider, ProvidedHost, ProviderError};
use crate::state::AppState;
use crate::store::StoreError;

/// The name under which the embedded host is stored (stale entries of earlier runs, on other
/// ephemeral ports, are replaced by it).
pub const EMBEDDED_HOST_NAME: &str = "moongate demo host (embedded)";

/// Starts a demo host for `config`: loopback, ephemeral ports, identity kept under
/// `<data_dir>/demo-host`. Returns the host (tests use its input and session API) and what the
/// server needs to know about it.
pub async fn start_demo_host(
    config: &Config,
) -> Result<(Arc<DemoHost>, ProvidedHost), ProviderError> {
    let dir = std::path::absolute(config.data_dir.join("demo-host"))?;
    std::fs::create_dir_all(&dir)?;
    // The Wolf API (lobby joins) on a 0600 Unix socket in the data dir; a path too long for a
    // Unix socket address (108 bytes) falls back to TCP on loopback.
    let socket = dir.join(demo_host::config::WOLF_API_SOCKET_NAME);
    let wolf_api = if socket.as_os_str().len() < 100 {
        WolfApiConfig::default()
    } else {
        WolfApiConfig {
            socket: WolfApiSocket::Off,
            tcp: Some(std::net::SocketAddr::from(([127, 0, 0, 1], 0))),
            ..WolfApiConfig::default()
        }
    };
    let host = Arc::new(
        DemoHost::start(DemoHostConfig {
            ports: PortPlan::Ephemeral,
            data_dir: Some(dir),
            wolf_api,
            wolf_strict: config.demo_host_strict,
            microphone: config.demo_host_microphone,
            live_bitrate: config.demo_host_live_bitrate,
            ..DemoHostConfig::default()
        })
        .await?,
    );
    let wolf_api = host
        .wolf_api_socket()
        .map(|p| p.to_string_lossy().into_owned())
        .or_else(|| host.wolf_api_tcp().map(|a| format!("http://{a}")));
    let ports = host.ports();
    let address = "127.0.0.1".to_string();
    let provided = ProvidedHost {
        seed: HostSeed {
            name: Some(EMBEDDED_HOST_NAME.into()),
            address: address.clone(),
            http_port: Some(ports.http),
            https_port: Some(ports.https),
            mac: None,
            wolf_api: host
                .wolf_api_socket()
                .map(|p| p.to_string_lossy().into_owned()),
        },
        keepalive: Box::new(Arc::clone(&host)),
        pins: Some(Arc::new(DemoHostPins::new(
            Arc::clone(&host),
            address,
            wolf_api,
        ))),
    };
    Ok((host, provided))
}

/// The [`HostProvider`] of the `moongate` binary: a demo host when `config.hosts` is empty.
#[derive(Debug, Clone, Copy, Default)]
pub struct EmbeddedDemoHost;

impl HostProvider for EmbeddedDemoHost {
    fn provide(
        self: Box<Self>,
        config: &Config,
    ) -> Pin<Box<dyn Future<Output = Result<Option<ProvidedHost>, ProviderError>> + Send>> {
        if !config.hosts.is_empty() {
            return Box::pin(std::future::ready(Ok(None)));
        }
        let config = config.clone();
        Box::pin(async move { Ok(Some(start_demo_host(&config).await?.1)) })
    }
}

/// Makes a provided host usable: removes stale entries of an earlier run of the embedded host,
/// stores it, registers its PIN path and pairs the gateway's own identity (so the REST API
/// shows it as paired). Returns its host id.
pub async fn install(state: &AppState, provided: &ProvidedHost) -> Result<i64, ProviderError> {
    let seed = &provided.seed;
    let http_port = seed
        .http_port
        .unwrap_or(gamestream::nvhttp::DEFAULT_HTTP_PORT);
    for h in state.store.list_hosts().await? {
        let same = h.address == seed.address && h.http_port == http_port;
        if !same && seed.name.as_deref() == Some(EMBEDDED_HOST_NAME) && h.name == EMBEDDED_HOST_NAME
        {
            state.store.remove_host(h.id).await?;
        }
    }
    preload_hosts(state.store.as_ref(), std::slice::from_ref(seed)).await?;
    let host = state
        .store
        .list_hosts()
        .await?
        .into_iter()
        .find(|h| h.address == seed.address && h.http_port == http_port)
        .ok_or_else(|| StoreError::Corrupt("the provided host vanished".into()))?;
    if let Some(pins) = &provided.pins {
        state.add_pin_submitter(Arc::clone(pins));
        let (identity, _) = crate::api::hosts::gateway_identity(state, host.id)
            .await
            .map_err(|e| e.message)?;
        // Re-read the host: the pinned certificate may have been set by an earlier run.
        ensure_paired(state, &host, GATEWAY_CLIENT_ID, &identity).await?;
    }
    Ok(host.id)
}
