//! Tokio NVHTTP host (what Sunshine/Wolf serve on 47989/47984).
//!
//! Pairing state is keyed by `uniqueid@client-ip` (every Moonlight client sends the same
//! `uniqueid`), phases are accepted in strict order, and phase 1 waits until the host app
//! supplies the PIN ([`NvHttpServer::submit_pin`], Wolf's pending-pair shape) unless a fixed PIN
//! is configured ([`NvHttpServer::set_fixed_pin`], Sunshine-CLI style). Every HTTPS endpoint
//! (including `/serverinfo`, like Sunshine and Wolf) and `/applist`, `/appasset`, `/launch`,
//! `/resume`, `/cancel` on any port require a paired TLS client certificate, else XML 401.
//!
//! This file is the listeners, TLS and routing; the pairing flow is in `server/pair.rs`, and the
//! sans-IO answers of `/serverinfo` and the paired endpoints in `server/answer.rs`.

use std::collections::HashMap;
use std::convert::Infallible;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{oneshot, watch};
use tokio::task::{JoinHandle, JoinSet};

use super::types::{App, LaunchRequest, LaunchResponse, ServerInfo};
use super::xml::XmlBuilder;
use super::NvHttpError;
use crate::identity::Identity;
use crate::pairing::{
    HostPairRequest, HostPairing, HostSecrets, HostStep, PairResponse, PairingHash,
};

mod answer;
mod pair;

pub use answer::{answer, query_params, split_target, HttpAnswer, ServerPorts};
use pair::{pair, unpair, PairSession, PendingEntry};

const UNAUTHORIZED: &str = "The client is not authorized. Certificate verification failed.";

/// What the host knows about one request; handed to every [`HostHandler`] call.
#[derive(Debug, Clone)]
pub struct RequestContext {
    /// The client's address.
    pub peer_addr: SocketAddr,
    /// Our address on this connection (use it for `sessionUrl0`).
    pub local_addr: SocketAddr,
    /// Came in over HTTPS.
    pub https: bool,
    /// DER of the TLS client certificate (HTTPS only).
    pub client_cert_der: Option<Vec<u8>>,
    /// The `uniqueid` parameter.
    pub unique_id: Option<String>,
    /// The client certificate is in the paired list.
    pub paired: bool,
}

/// An error a handler returns; sent as `<root status_code=… status_message=…>` with the same
/// HTTP status (Wolf style).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostError {
    /// e.g. 400, 403, 503.
    pub status_code: u16,
    /// Human-readable message.
    pub message: String,
}

impl HostError {
    /// Convenience constructor.
    pub fn new(status_code: u16, message: impl Into<String>) -> Self {
        HostError {
            status_code,
            message: message.into(),
        }
    }
}

/// The host application behind the server. `app_list`, `app_asset`, `launch`, `resume` and
/// `cancel` are only called for paired clients (`ctx.client_cert_der` is set).
pub trait HostHandler: Send + Sync + 'static {
    /// Server info; the server overrides `HttpsPort`, `ExternalPort` and `PairStatus`.
    fn server_info(&self, ctx: &RequestContext) -> ServerInfo;
    /// Apps to list.
    fn app_list(&self, ctx: &RequestContext) -> Vec<App>;
    /// PNG box art of an app, `None` = 404.
    fn app_asset(&self, ctx: &RequestContext, app_id: u32) -> Option<Vec<u8>>;
    /// Start an app and a stream session.
    fn launch(
        &self,
        ctx: &RequestContext,
        request: &LaunchRequest,
    ) -> Result<LaunchResponse, HostError>;
    /// Attach to the running app.
    fn resume(
        &self,
        ctx: &RequestContext,
        request: &LaunchRequest,
    ) -> Result<LaunchResponse, HostError>;
    /// Quit the running app / end this client's session.
    fn cancel(&self, ctx: &RequestContext) -> Result<(), HostError>;
}

/// A client that completed pairing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PairedClient {
    /// `uniqueid` it paired with.
    pub unique_id: String,
    /// `devicename` it paired with.
    pub device_name: String,
    /// Certificate PEM as sent in phase 1.
    pub cert_pem: String,
    /// Its DER (what TLS presents).
    pub cert_der: Vec<u8>,
}

/// Storage of paired client certificates (the host app persists it).
pub trait PairedClients: Send + Sync + 'static {
    /// The certificate (DER) is paired.
    fn is_paired(&self, cert_der: &[u8]) -> bool;
    /// Adds (or replaces, by certificate) a paired client.
    fn add(&self, client: PairedClient);
    /// Removes a certificate; true if it was there.
    fn remove(&self, cert_der: &[u8]) -> bool;
    /// All paired clients.
    fn list(&self) -> Vec<PairedClient>;
}

/// [`PairedClients`] in memory.
#[derive(Debug, Default)]
pub struct InMemoryPairedClients {
    clients: Mutex<Vec<PairedClient>>,
}

impl InMemoryPairedClients {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }
}

impl PairedClients for InMemoryPairedClients {
    fn is_paired(&self, cert_der: &[u8]) -> bool {
        self.clients
            .lock()
            .map(|c| c.iter().any(|p| p.cert_der == cert_der))
            .unwrap_or(false)
    }

    fn add(&self, client: PairedClient) {
        if let Ok(mut c) = self.clients.lock() {
            c.retain(|p| p.cert_der != client.cert_der);
            c.push(client);
        }
    }

    fn remove(&self, cert_der: &[u8]) -> bool {
        self.clients
            .lock()
            .map(|mut c| {
                let before = c.len();
                c.retain(|p| p.cert_der != cert_der);
                c.len() != before
            })
            .unwrap_or(false)
    }

    fn list(&self) -> Vec<PairedClient> {
        self.clients.lock().map(|c| c.clone()).unwrap_or_default()
    }
}

/// A phase-1 request waiting for its PIN.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingPairing {
    /// Random handle to pass to [`NvHttpServer::submit_pin`] (Wolf shows it in its PIN URL).
    pub pair_secret: String,
    /// `uniqueid` of the client.
    pub unique_id: String,
    /// Client IP.
    pub client_ip: IpAddr,
    /// `devicename` of the client.
    pub device_name: String,
}

/// Everything [`NvHttpServer::start`] needs.
pub struct NvHttpServerConfig {
    /// HTTP listen address (port 0 = ephemeral).
    pub http_addr: SocketAddr,
    /// HTTPS listen address (port 0 = ephemeral).
    pub https_addr: SocketAddr,
    /// Host certificate and key (TLS and pairing).
    pub identity: Identity,
    /// The host application.
    pub handler: Arc<dyn HostHandler>,
    /// Paired clients store.
    pub paired_clients: Arc<dyn PairedClients>,
    /// Key that signs the pairing server secret; `None` = `identity`. Only tests of a client's
    /// man-in-the-middle detection set another one.
    pub pairing_signer: Option<Identity>,
    /// How long phase 1 waits for a PIN.
    pub pin_timeout: Duration,
}

impl fmt::Debug for NvHttpServerConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NvHttpServerConfig")
            .field("http_addr", &self.http_addr)
            .field("https_addr", &self.https_addr)
            .field("identity", &self.identity)
            .field("pin_timeout", &self.pin_timeout)
            .finish_non_exhaustive()
    }
}

impl NvHttpServerConfig {
    /// Defaults: in-memory paired store, the identity signs, 5-minute PIN wait.
    pub fn new(
        http_addr: SocketAddr,
        https_addr: SocketAddr,
        identity: Identity,
        handler: Arc<dyn HostHandler>,
    ) -> Self {
        NvHttpServerConfig {
            http_addr,
            https_addr,
            identity,
            handler,
            paired_clients: Arc::new(InMemoryPairedClients::new()),
            pairing_signer: None,
            pin_timeout: Duration::from_secs(300),
        }
    }
}

struct State {
    identity: Identity,
    signer: Identity,
    handler: Arc<dyn HostHandler>,
    paired: Arc<dyn PairedClients>,
    http_port: u16,
    https_port: u16,
    pin_timeout: Duration,
    fixed_pin: Mutex<Option<String>>,
    sessions: Mutex<HashMap<String, PairSession>>,
    pending: Mutex<HashMap<String, PendingEntry>>,
    last_paired: Mutex<HashMap<String, Vec<u8>>>,
}

/// A running NVHTTP host. Dropping it stops accepting; [`close`](Self::close) also waits for
/// every task to end.
pub struct NvHttpServer {
    http_addr: SocketAddr,
    https_addr: SocketAddr,
    state: Arc<State>,
    shutdown: watch::Sender<bool>,
    tasks: tokio::sync::Mutex<Vec<JoinHandle<()>>>,
}

impl fmt::Debug for NvHttpServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NvHttpServer")
            .field("http_addr", &self.http_addr)
            .field("https_addr", &self.https_addr)
            .finish_non_exhaustive()
    }
}

impl NvHttpServer {
    /// Binds both ports with default options (see [`NvHttpServerConfig::new`]).
    pub async fn bind(
        http_addr: SocketAddr,
        https_addr: SocketAddr,
        identity: Identity,
        handler: Arc<dyn HostHandler>,
    ) -> Result<NvHttpServer, NvHttpError> {
        Self::start(NvHttpServerConfig::new(
            http_addr, https_addr, identity, handler,
        ))
        .await
    }

    /// Binds both ports and starts serving.
    pub async fn start(config: NvHttpServerConfig) -> Result<NvHttpServer, NvHttpError> {
        let tls =
            tokio_rustls::TlsAcceptor::from(Arc::new(crate::tls::server_config(&config.identity)?));
        let http = TcpListener::bind(config.http_addr).await?;
        let https = TcpListener::bind(config.https_addr).await?;
        let http_addr = http.local_addr()?;
        let https_addr = https.local_addr()?;
        let state = Arc::new(State {
            signer: config
                .pairing_signer
                .unwrap_or_else(|| config.identity.clone()),
            identity: config.identity,
            handler: config.handler,
            paired: config.paired_clients,
            http_port: http_addr.port(),
            https_port: https_addr.port(),
            pin_timeout: config.pin_timeout,
            fixed_pin: Mutex::new(None),
            sessions: Mutex::new(HashMap::new()),
            pending: Mutex::new(HashMap::new()),
            last_paired: Mutex::new(HashMap::new()),
        });
        let (shutdown, rx) = watch::channel(false);
        let tasks = vec![
            tokio::spawn(accept_loop(http, None, state.clone(), rx.clone())),
            tokio::spawn(accept_loop(https, Some(tls), state.clone(), rx)),
        ];
        Ok(NvHttpServer {
            http_addr,
            https_addr,
            state,
            shutdown,
            tasks: tokio::sync::Mutex::new(tasks),
        })
    }

    /// Bound HTTP address.
    pub fn http_addr(&self) -> SocketAddr {
        self.http_addr
    }

    /// Bound HTTPS address.
    pub fn https_addr(&self) -> SocketAddr {
        self.https_addr
    }

    /// Bound HTTP port.
    pub fn http_port(&self) -> u16 {
        self.http_addr.port()
    }

    /// Bound HTTPS port.
    pub fn https_port(&self) -> u16 {
        self.https_addr.port()
    }

    /// The paired-client store.
    pub fn paired_clients(&self) -> Arc<dyn PairedClients> {
        self.state.paired.clone()
    }

    /// Phase-1 requests currently waiting for a PIN.
    pub fn pending_pairings(&self) -> Vec<PendingPairing> {
        self.state
            .pending
            .lock()
            .map(|p| p.values().map(|e| e.info.clone()).collect())
            .unwrap_or_default()
    }

    /// Delivers the PIN for a pending pairing; false if no such pairing or the PIN is malformed.
    pub fn submit_pin(&self, pair_secret: &str, pin: &str) -> bool {
        if crate::pairing::validate_pin(pin).is_err() {
            return false;
        }
        let entry = self
            .state
            .pending
            .lock()
            .ok()
            .and_then(|mut p| p.remove(pair_secret));
        match entry {
            Some(e) => e.pin_tx.send(pin.to_string()).is_ok(),
            None => false,
        }
    }

    /// With `Some(pin)` every pairing uses that PIN without waiting; `None` restores waiting.
    pub fn set_fixed_pin(&self, pin: Option<String>) {
        if let Ok(mut p) = self.state.fixed_pin.lock() {
            *p = pin;
        }
    }

    /// Stops accepting, aborts open connections (including phase-1 waits) and waits for all
    /// tasks to finish.
    pub async fn close(&self) {
        let _ = self.shutdown.send(true);
        let tasks = std::mem::take(&mut *self.tasks.lock().await);
        for t in tasks {
            let _ = t.await;
        }
    }
}

impl Drop for NvHttpServer {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
    }
}

async fn accept_loop(
    listener: TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    state: Arc<State>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            _ = shutdown.changed() => break,
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
            accepted = listener.accept() => match accepted {
                Ok((tcp, peer)) => {
                    conns.spawn(serve_connection(tcp, peer, tls.clone(), state.clone()));
                }
                Err(e) => {
                    tracing::warn!("NVHTTP accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
        }
    }
    conns.shutdown().await;
}

#[derive(Debug, Clone)]
struct ConnInfo {
    peer: SocketAddr,
    local: SocketAddr,
    https: bool,
    cert: Option<Vec<u8>>,
}

async fn serve_connection(
    tcp: TcpStream,
    peer: SocketAddr,
    tls: Option<tokio_rustls::TlsAcceptor>,
    state: Arc<State>,
) {
    let _ = tcp.set_nodelay(true);
    let Ok(local) = tcp.local_addr() else { return };
    // Dual-stack sockets report IPv4 peers as ::ffff:a.b.c.d; key and report them as IPv4.
    let peer = SocketAddr::new(peer.ip().to_canonical(), peer.port());
    let local = SocketAddr::new(local.ip().to_canonical(), local.port());
    match tls {
        None => {
            serve_http(
                tcp,
                ConnInfo {
                    peer,
                    local,
                    https: false,
                    cert: None,
                },
                state,
            )
            .await
        }
        Some(acceptor) => {
            let stream =
                match tokio::time::timeout(Duration::from_secs(10), acceptor.accept(tcp)).await {
                    Ok(Ok(s)) => s,
                    Ok(Err(e)) => {
                        tracing::debug!("TLS handshake from {peer} failed: {e}");
                        return;
                    }
                    Err(_) => return,
                };
            let cert = crate::tls::peer_cert_der(stream.get_ref().1);
            serve_http(
                stream,
                ConnInfo {
                    peer,
                    local,
                    https: true,
                    cert,
                },
                state,
            )
            .await;
        }
    }
}

async fn serve_http<S>(io: S, conn: ConnInfo, state: Arc<State>)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = service_fn(move |req| {
        let state = state.clone();
        let conn = conn.clone();
        async move { Ok::<_, Infallible>(route(&state, &conn, req).await) }
    });
    let _ = hyper::server::conn::http1::Builder::new()
        .keep_alive(false)
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_secs(10))
        .serve_connection(TokioIo::new(io), service)
        .await;
}

type Resp = http::Response<Full<Bytes>>;

fn respond(status: u16, content_type: &str, body: impl Into<Bytes>) -> Resp {
    let mut r = http::Response::new(Full::new(body.into()));
    *r.status_mut() =
        http::StatusCode::from_u16(status).unwrap_or(http::StatusCode::INTERNAL_SERVER_ERROR);
    if let Ok(v) = http::HeaderValue::from_str(content_type) {
        r.headers_mut().insert(http::header::CONTENT_TYPE, v);
    }
    r
}

fn xml(status: u16, body: String) -> Resp {
    respond(status, "application/xml", body)
}

fn xml_error(code: u16, message: &str) -> Resp {
    let a = HttpAnswer::error(code, message);
    respond(a.status, a.content_type, a.body)
}

fn pair_fail(message: &str) -> Resp {
    xml(400, PairResponse::refused().to_xml(400, Some(message)))
}

async fn route(state: &Arc<State>, conn: &ConnInfo, req: http::Request<Incoming>) -> Resp {
    let params = query_params(req.uri().query());
    let get = |name: &str| {
        params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    let paired = conn
        .cert
        .as_deref()
        .is_some_and(|c| state.paired.is_paired(c));
    let ctx = RequestContext {
        peer_addr: conn.peer,
        local_addr: conn.local,
        https: conn.https,
        client_cert_der: conn.cert.clone(),
        unique_id: get("uniqueid").map(str::to_string),
        paired,
    };
    let path = req.uri().path();
    match path {
        "/pair" => pair(state, &ctx, &params).await,
        "/unpair" => unpair(state, &ctx),
        _ => {
            let ports = ServerPorts {
                http: state.http_port,
                https: state.https_port,
            };
            match answer(state.handler.as_ref(), &ctx, ports, path, &params) {
                Some(a) => respond(a.status, a.content_type, a.body),
                None => xml_error(404, "Not Found"),
            }
        }
    }
}
