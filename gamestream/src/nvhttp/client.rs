//! Tokio NVHTTP client (spec §1, §2): serverinfo, pairing, app list, box art, launch/resume/cancel.

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use rustls::pki_types::ServerName;
use tokio::net::TcpStream;

use super::transport::{get, path_with_query};
use super::types::{parse_cancel, App, LaunchRequest, LaunchResponse, ServerInfo};
use super::xml::XmlResponse;
use super::NvHttpError;
use crate::identity::Identity;
use crate::pairing::{ClientPairing, PairRequest, PairResponse, PairedHost, PairingError};

/// What every Moonlight client sends as `uniqueid` (hosts must not rely on it).
pub const UNIQUE_ID: &str = "0123456789ABCDEF";
/// Default HTTP port.
pub const DEFAULT_HTTP_PORT: u16 = 47989;
/// Default HTTPS port (used when `/serverinfo` has no `HttpsPort`).
pub const DEFAULT_HTTPS_PORT: u16 = 47984;

/// The target of one request (`/launch?uniqueid=…&uuid=…&appid=…`): every request carries the
/// client's `uniqueid` and a fresh `uuid` first, then its own parameters (for `/launch`,
/// [`LaunchRequest::to_query`]), form-encoded. Sans-IO, for the in-memory session test.
pub fn request_target(
    path: &str,
    unique_id: &str,
    uuid: &str,
    extra: &[(&'static str, String)],
) -> String {
    let mut params = vec![
        ("uniqueid", unique_id.to_string()),
        ("uuid", uuid.to_string()),
    ];
    params.extend(extra.iter().cloned());
    path_with_query(path, &params)
}

const XML_LIMIT: usize = 1 << 20;
const ASSET_LIMIT: usize = 16 << 20;

/// Where a host listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostAddress {
    /// IP literal (IPv6 without brackets) or host name.
    pub host: String,
    /// HTTP port (47989 by default).
    pub http_port: u16,
    /// HTTPS port if known; otherwise learnt from `/serverinfo`.
    pub https_port: Option<u16>,
}

impl HostAddress {
    /// A host name or IP literal with the default HTTP port.
    pub fn new(host: impl Into<String>) -> Self {
        let host: String = host.into();
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        HostAddress {
            host,
            http_port: DEFAULT_HTTP_PORT,
            https_port: None,
        }
    }

    /// Explicit ports.
    pub fn with_ports(host: impl Into<String>, http_port: u16, https_port: Option<u16>) -> Self {
        HostAddress {
            http_port,
            https_port,
            ..HostAddress::new(host)
        }
    }

    fn authority(&self, port: u16) -> String {
        if self.host.contains(':') {
            format!("[{}]:{port}", self.host)
        } else {
            format!("{}:{port}", self.host)
        }
    }
}

impl From<IpAddr> for HostAddress {
    fn from(ip: IpAddr) -> Self {
        HostAddress::new(ip.to_string())
    }
}

impl From<&str> for HostAddress {
    fn from(host: &str) -> Self {
        HostAddress::new(host)
    }
}

impl From<String> for HostAddress {
    fn from(host: String) -> Self {
        HostAddress::new(host)
    }
}

impl From<SocketAddr> for HostAddress {
    /// The socket address is the HTTP endpoint.
    fn from(addr: SocketAddr) -> Self {
        HostAddress::with_ports(addr.ip().to_string(), addr.port(), None)
    }
}

/// NVHTTP client for one host. HTTPS requests present `identity` and require the host's
/// certificate to equal the pinned one (set by [`NvHttpClient::new`] or by a successful
/// [`NvHttpClient::pair`]).
#[derive(Debug)]
pub struct NvHttpClient {
    address: HostAddress,
    identity: Identity,
    https_port: Mutex<Option<u16>>,
    pinned: Mutex<Option<Vec<u8>>>,
    timeout: Duration,
    unique_id: String,
}

enum Scheme<'a> {
    Http,
    Https(&'a [u8]),
}

impl NvHttpClient {
    /// A client; `pinned_host_cert_der` is the host certificate from an earlier pairing.
    pub fn new(
        address: impl Into<HostAddress>,
        identity: Identity,
        pinned_host_cert_der: Option<Vec<u8>>,
    ) -> Self {
        let address = address.into();
        NvHttpClient {
            https_port: Mutex::new(address.https_port),
            address,
            identity,
            pinned: Mutex::new(pinned_host_cert_der),
            timeout: Duration::from_secs(10),
            unique_id: UNIQUE_ID.to_string(),
        }
    }

    /// The `uniqueid` sent with every request (default [`UNIQUE_ID`]). Wolf keys pairing and
    /// sessions by `uniqueid@ip`, so a gateway serving several clients from one address gives each
    /// client identity its own id.
    pub fn with_unique_id(mut self, unique_id: impl Into<String>) -> Self {
        self.unique_id = unique_id.into();
        self
    }

    /// The `uniqueid` this client sends.
    pub fn unique_id(&self) -> &str {
        &self.unique_id
    }

    /// Timeout of every request except pairing phase 1 (default 10 s).
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The identity presented over HTTPS.
    pub fn identity(&self) -> &Identity {
        &self.identity
    }

    /// The host address.
    pub fn address(&self) -> &HostAddress {
        &self.address
    }

    /// Replaces the pinned host certificate (e.g. after loading a stored pairing).
    pub fn set_pinned_host_cert(&self, host_cert_der: Option<Vec<u8>>) {
        if let Ok(mut p) = self.pinned.lock() {
            *p = host_cert_der;
        }
    }

    /// The pinned host certificate (DER), if any.
    pub fn pinned_host_cert(&self) -> Option<Vec<u8>> {
        self.pinned.lock().ok().and_then(|p| p.clone())
    }

    fn pinned_or_err(&self) -> Result<Vec<u8>, NvHttpError> {
        self.pinned_host_cert().ok_or(NvHttpError::NotPaired)
    }

    fn known_https_port(&self) -> Option<u16> {
        self.https_port.lock().ok().and_then(|p| *p)
    }

    /// `/serverinfo`: learns the HTTPS port over HTTP if needed, then asks over HTTPS when a host
    /// certificate is pinned (only that answer has a meaningful `PairStatus`), falling back to
    /// HTTP if HTTPS fails.
    pub async fn server_info(&self) -> Result<ServerInfo, NvHttpError> {
        let mut http_info = None;
        if self.known_https_port().is_none() {
            http_info = Some(self.server_info_http().await?);
        }
        if self.pinned_host_cert().is_some() {
            match self.server_info_https().await {
                Ok(info) => return Ok(info),
                Err(e) => tracing::debug!("HTTPS /serverinfo failed, falling back to HTTP: {e}"),
            }
        }
        match http_info {
            Some(info) => Ok(info),
            None => self.server_info_http().await,
        }
    }

    /// `/serverinfo` over plain HTTP (records `HttpsPort`).
    pub async fn server_info_http(&self) -> Result<ServerInfo, NvHttpError> {
        let body = self
            .xml_request(Scheme::Http, "/serverinfo", vec![], Some(self.timeout))
            .await?;
        let info = ServerInfo::parse(&body)?;
        if let Ok(mut p) = self.https_port.lock() {
            if p.is_none() || self.address.https_port.is_none() {
                *p = Some(info.https_port);
            }
        }
        Ok(info)
    }

    /// `/serverinfo` over HTTPS with the client certificate and the pinned host certificate.
    pub async fn server_info_https(&self) -> Result<ServerInfo, NvHttpError> {
        let body = self.paired_xml_request("/serverinfo", vec![]).await?;
        ServerInfo::parse(&body)
    }

    /// Pairs with `pin` (which the user enters on the host). Phase 1 waits without timeout for the
    /// PIN. On any failure `/unpair` is called (errors ignored) and the typed error returned
    /// ([`crate::pairing::PairingError::WrongPin`], `ForgedHostCertificate`, …, wrapped in
    /// [`NvHttpError::Pairing`]). On success the host certificate is pinned by this client.
    pub async fn pair(&self, pin: &str, device_name: &str) -> Result<PairedHost, NvHttpError> {
        let result = self.pair_inner(pin, device_name).await;
        if result.is_err() {
            let _ = self.unpair().await;
        }
        result
    }

    async fn pair_inner(&self, pin: &str, device_name: &str) -> Result<PairedHost, NvHttpError> {
        let info = self.server_info_http().await?;
        let mut pairing = ClientPairing::new(self.identity.clone(), pin, &info.app_version())?;
        let req = pairing.start()?;
        // Phase 1 waits for the user to enter the PIN: no timeout.
        let mut resp = self.pair_request(&req, device_name, None, None).await?;
        type Step = fn(&mut ClientPairing, &PairResponse) -> Result<PairRequest, PairingError>;
        let steps: [Step; 4] = [
            ClientPairing::on_server_cert,
            ClientPairing::on_challenge_response,
            ClientPairing::on_pairing_secret,
            ClientPairing::on_secret_ack,
        ];
        for step in steps {
            let req = step(&mut pairing, &resp)?;
            // Phase 5 goes over HTTPS, pinning the certificate the host sent in phase 1.
            let host_cert = req
                .phase
                .over_https()
                .then(|| pairing.host_cert_der().to_vec());
            resp = self
                .pair_request(&req, device_name, host_cert.as_deref(), Some(self.timeout))
                .await?;
        }
        let paired = pairing.on_pair_challenge(&resp)?;
        if let Ok(mut p) = self.pinned.lock() {
            *p = Some(paired.host_cert_der.clone());
        }
        Ok(paired)
    }

    async fn pair_request(
        &self,
        req: &PairRequest,
        device_name: &str,
        https_pin: Option<&[u8]>,
        timeout: Option<Duration>,
    ) -> Result<PairResponse, NvHttpError> {
        let mut params = vec![
            ("devicename", device_name.to_string()),
            ("updateState", "1".to_string()),
        ];
        params.extend(req.params.iter().cloned());
        let scheme = match https_pin {
            Some(cert) => Scheme::Https(cert),
            None => Scheme::Http,
        };
        let (status, body) = self
            .request(scheme, "/pair", params, timeout, XML_LIMIT)
            .await?;
        match PairResponse::parse(&body) {
            Ok(resp) => Ok(resp),
            Err(_) if !(200..300).contains(&status) => Err(NvHttpError::Http {
                status,
                message: "pair".into(),
            }),
            Err(e) => Err(e),
        }
    }

    /// `/applist` (HTTPS).
    pub async fn app_list(&self) -> Result<Vec<App>, NvHttpError> {
        let body = self.paired_xml_request("/applist", vec![]).await?;
        App::parse_list(&body)
    }

    /// `/appasset` box art (HTTPS): the raw PNG bytes.
    pub async fn app_asset(&self, app_id: u32) -> Result<Vec<u8>, NvHttpError> {
        let pinned = self.pinned_or_err()?;
        let params = vec![
            ("appid", app_id.to_string()),
            ("AssetType", "2".to_string()),
            ("AssetIdx", "0".to_string()),
        ];
        let (status, body) = self
            .request(
                Scheme::Https(&pinned),
                "/appasset",
                params,
                Some(self.timeout),
                ASSET_LIMIT,
            )
            .await?;
        check_http(status, &body)?;
        // A host may answer 200 with an XML error envelope.
        if let Ok(x) = XmlResponse::parse(&body) {
            x.ok()?;
        }
        Ok(body.to_vec())
    }

    /// `/launch` (HTTPS).
    pub async fn launch(&self, request: &LaunchRequest) -> Result<LaunchResponse, NvHttpError> {
        self.launch_or_resume(request, false).await
    }

    /// `/resume` (HTTPS).
    pub async fn resume(&self, request: &LaunchRequest) -> Result<LaunchResponse, NvHttpError> {
        self.launch_or_resume(request, true).await
    }

    async fn launch_or_resume(
        &self,
        request: &LaunchRequest,
        resume: bool,
    ) -> Result<LaunchResponse, NvHttpError> {
        let path = if resume { "/resume" } else { "/launch" };
        let body = self.paired_xml_request(path, request.to_query()).await?;
        LaunchResponse::parse(&body, resume)
    }

    /// `/cancel` (HTTPS): quit the running app.
    pub async fn cancel(&self) -> Result<(), NvHttpError> {
        let body = self.paired_xml_request("/cancel", vec![]).await?;
        parse_cancel(&body)
    }

    /// `/unpair` (HTTP). Sunshine does not implement it (404); callers usually ignore errors.
    pub async fn unpair(&self) -> Result<(), NvHttpError> {
        let body = self
            .xml_request(Scheme::Http, "/unpair", vec![], Some(self.timeout))
            .await?;
        XmlResponse::parse(&body)?.ok()?;
        Ok(())
    }

    /// An XML request over HTTPS pinning the paired host's certificate (`NotPaired` without one).
    async fn paired_xml_request(
        &self,
        path: &str,
        params: Vec<(&'static str, String)>,
    ) -> Result<Bytes, NvHttpError> {
        let pinned = self.pinned_or_err()?;
        let scheme = Scheme::Https(&pinned);
        self.xml_request(scheme, path, params, Some(self.timeout))
            .await
    }

    async fn xml_request(
        &self,
        scheme: Scheme<'_>,
        path: &str,
        params: Vec<(&'static str, String)>,
        timeout: Option<Duration>,
    ) -> Result<Bytes, NvHttpError> {
        let (status, body) = self
            .request(scheme, path, params, timeout, XML_LIMIT)
            .await?;
        check_http(status, &body)?;
        Ok(body)
    }

    async fn request(
        &self,
        scheme: Scheme<'_>,
        path: &str,
        extra: Vec<(&'static str, String)>,
        timeout: Option<Duration>,
        limit: usize,
    ) -> Result<(u16, Bytes), NvHttpError> {
        let uuid = uuid::Uuid::new_v4().to_string();
        let target = request_target(path, &self.unique_id, &uuid, &extra);
        let learn_port = matches!(scheme, Scheme::Https(_)) && self.known_https_port().is_none();
        let fut = async move {
            if learn_port {
                self.learn_https_port().await?;
            }
            self.send(scheme, target, limit).await
        };
        match timeout {
            Some(t) => tokio::time::timeout(t, fut)
                .await
                .map_err(|_| NvHttpError::Timeout)?,
            None => fut.await,
        }
    }

    /// TCP connect, bounded by the request timeout even where the request itself is not (phase 1).
    async fn connect(&self, port: u16) -> Result<TcpStream, NvHttpError> {
        let connect = TcpStream::connect((self.address.host.as_str(), port));
        let tcp = tokio::time::timeout(self.timeout, connect)
            .await
            .map_err(|_| NvHttpError::Timeout)??;
        let _ = tcp.set_nodelay(true);
        Ok(tcp)
    }

    /// HTTPS needs the port from HTTP `/serverinfo` when the caller did not give it.
    async fn learn_https_port(&self) -> Result<(), NvHttpError> {
        let params = [
            ("uniqueid", self.unique_id.clone()),
            ("uuid", uuid::Uuid::new_v4().to_string()),
        ];
        let (status, body) = self
            .send(
                Scheme::Http,
                path_with_query("/serverinfo", &params),
                XML_LIMIT,
            )
            .await?;
        check_http(status, &body)?;
        let info = ServerInfo::parse(&body)?;
        if let Ok(mut p) = self.https_port.lock() {
            *p = Some(info.https_port);
        }
        Ok(())
    }

    async fn send(
        &self,
        scheme: Scheme<'_>,
        target: String,
        limit: usize,
    ) -> Result<(u16, Bytes), NvHttpError> {
        match scheme {
            Scheme::Http => {
                let port = self.address.http_port;
                let tcp = self.connect(port).await?;
                get(tcp, &self.address.authority(port), &target, limit).await
            }
            Scheme::Https(pinned) => {
                let port = self.known_https_port().unwrap_or(DEFAULT_HTTPS_PORT);
                let config = crate::tls::client_config(&self.identity, pinned)?;
                let server_name =
                    ServerName::try_from(self.address.host.clone()).unwrap_or_else(|_| {
                        ServerName::try_from("gamestream-host").expect("static name is valid")
                    });
                let tcp = self.connect(port).await?;
                let handshake =
                    tokio_rustls::TlsConnector::from(Arc::new(config)).connect(server_name, tcp);
                let tls = tokio::time::timeout(self.timeout, handshake)
                    .await
                    .map_err(|_| NvHttpError::Timeout)?
                    .map_err(tls_error)?;
                get(tls, &self.address.authority(port), &target, limit).await
            }
        }
    }
}

fn tls_error(e: std::io::Error) -> NvHttpError {
    let inner = e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>());
    match inner {
        Some(r) => NvHttpError::Tls(r.to_string()),
        None if e.kind() == std::io::ErrorKind::InvalidData => NvHttpError::Tls(e.to_string()),
        None => NvHttpError::Io(e),
    }
}

/// Non-2xx is failure; prefer the XML envelope's code/message when there is one (Wolf sends both).
fn check_http(status: u16, body: &[u8]) -> Result<(), NvHttpError> {
    if (200..300).contains(&status) {
        return Ok(());
    }
    match XmlResponse::parse(body) {
        Ok(x) if x.status_code != 200 => Err(NvHttpError::Status {
            code: x.status_code,
            message: x.status_message.unwrap_or_default(),
        }),
        _ => Err(NvHttpError::Http {
            status,
            message: String::from_utf8_lossy(&body[..body.len().min(200)]).into(),
        }),
    }
}
