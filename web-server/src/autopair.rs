//! Automatic pairing of a browser's client identity with a host.
//!
//! Every `client_unique_id` gets its own identity ([`crate::certs::ClientCertCache`]) and must be
//! paired before it can launch. Nobody types a PIN for these: the gateway runs
//! `NvHttpClient::pair(pin)` and, at the same time, hands the same PIN to the host through a
//! [`PinSubmitter`] (the embedded demo host's in-process pending-pair API). Which (host, client id)
//! pairs are paired is recorded in the host store, so a reconnect with the same identity skips the
//! pairing (re-pairing on every connect is what made a competitor's first frame take 3.2 s).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use gamestream::identity::{cert_der_from_pem, Identity};
use gamestream::nvhttp::{HostAddress, NvHttpClient};
use rand::Rng;

use crate::state::AppState;
use crate::store::{ClientIdentityRecord, HostRecord, PairingState, StoreError};

/// A boxed future of a [`PinSubmitter`].
pub type SubmitFuture<'a> = Pin<Box<dyn Future<Output = bool> + Send + 'a>>;

/// Enters a pairing PIN on a host on the gateway's behalf.
pub trait PinSubmitter: Send + Sync {
    /// True if this submitter reaches the host at `address`:`http_port`.
    fn serves(&self, address: &str, http_port: u16) -> bool;
    /// Submits `pin` for the pending pairing whose device name is `device_name`; false if that
    /// pairing is not pending (yet).
    fn submit<'a>(&'a self, device_name: &'a str, pin: &'a str) -> SubmitFuture<'a>;
    /// The host's Wolf API location (Unix socket path or `http://host:port`), if it has one:
    /// the streamer joins lobbies through it.
    fn wolf_api(&self) -> Option<String> {
        None
    }
    /// A lock that pairings through this submitter take turns on, when the host cannot tell two
    /// pending pairings apart (Wolf's pending list names no device): two pairings of this gateway
    /// in the same instant would otherwise cross their PINs and both fail. `None`: no need.
    fn pairing_turn(&self) -> Option<&tokio::sync::Mutex<()>> {
        None
    }
}

/// The embedded demo host's in-process pending-pair API (`pending_pairs` + `submit_pair_pin`).
pub struct DemoHostPins {
    host: Arc<demo_host::DemoHost>,
    address: String,
    http_port: u16,
    wolf_api: Option<String>,
}

impl DemoHostPins {
    /// Pins for `host`, reachable at `address`, whose Wolf API is at `wolf_api`.
    pub fn new(
        host: Arc<demo_host::DemoHost>,
        address: impl Into<String>,
        wolf_api: Option<String>,
    ) -> Self {
        let http_port = host.ports().http;
        DemoHostPins {
            host,
            address: address.into(),
            http_port,
            wolf_api,
        }
    }
}

impl PinSubmitter for DemoHostPins {
    fn serves(&self, address: &str, http_port: u16) -> bool {
        self.address == address && self.http_port == http_port
    }

    fn submit<'a>(&'a self, device_name: &'a str, pin: &'a str) -> SubmitFuture<'a> {
        let done = self
            .host
            .pending_pairs()
            .into_iter()
            .find(|p| p.device_name == device_name)
            .is_some_and(|p| self.host.submit_pair_pin(&p.pair_secret, pin).is_ok());
        Box::pin(std::future::ready(done))
    }

    fn wolf_api(&self) -> Option<String> {
        self.wolf_api.clone()
    }
}

/// An external Wolf's HTTP API (`GET /api/v1/pair/pending`, `POST /api/v1/pair/client`).
///
/// Wolf's pending list carries no device name (spec media §7.3), so the PIN goes to the first
/// pending request this gateway has not answered yet. This gateway's own pairings with one host
/// take turns ([`PinSubmitter::pairing_turn`]); two gateways pairing with one Wolf in the same
/// instant may still cross PINs, and both pairings then fail cleanly and are retried.
pub struct WolfApiPins {
    address: String,
    http_port: u16,
    api: WolfApiClient,
    answered: std::sync::Mutex<std::collections::HashSet<String>>,
    /// See [`PinSubmitter::pairing_turn`].
    turn: tokio::sync::Mutex<()>,
}

impl WolfApiPins {
    /// PINs for the host at `address`:`http_port` through the Wolf API at `location`.
    pub fn new(
        address: impl Into<String>,
        http_port: u16,
        location: &str,
    ) -> Result<Self, WolfApiError> {
        Ok(WolfApiPins {
            address: address.into(),
            http_port,
            api: WolfApiClient::parse(location)?,
            answered: Default::default(),
            turn: Default::default(),
        })
    }
}

impl PinSubmitter for WolfApiPins {
    fn serves(&self, address: &str, http_port: u16) -> bool {
        self.address == address && self.http_port == http_port
    }

    fn submit<'a>(&'a self, _device_name: &'a str, pin: &'a str) -> SubmitFuture<'a> {
        Box::pin(async move {
            let pending = match self.api.call("GET", "/api/v1/pair/pending", None).await {
                Ok(v) => v,
                Err(e) => {
                    tracing::debug!(error = %e, "Wolf API: pending pairings");
                    return false;
                }
            };
            let secret = {
                let answered = self.answered.lock().unwrap_or_else(|p| p.into_inner());
                pending
                    .get("requests")
                    .and_then(serde_json::Value::as_array)
                    .into_iter()
                    .flatten()
                    .filter_map(|r| r.get("pair_secret")?.as_str())
                    .find(|s| !answered.contains(*s))
                    .map(str::to_string)
            };
            let Some(secret) = secret else { return false };
            let body = serde_json::json!({"pair_secret": secret, "pin": pin});
            match self
                .api
                .call("POST", "/api/v1/pair/client", Some(&body))
                .await
            {
                Ok(_) => {
                    self.answered
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .insert(secret);
                    true
                }
                Err(e) => {
                    tracing::warn!(error = %e, "Wolf API: entering the pairing PIN failed");
                    false
                }
            }
        })
    }

    fn wolf_api(&self) -> Option<String> {
        Some(self.api.location().to_string())
    }

    fn pairing_turn(&self) -> Option<&tokio::sync::Mutex<()>> {
        Some(&self.turn)
    }
}

pub use gamestream::wolf_api::{WolfApiClient, WolfApiError};

/// Why a client identity could not be paired. The texts are details: the browser is told
/// [`AutoPairError::code`] next to them.
#[derive(Debug, thiserror::Error)]
pub enum AutoPairError {
    /// The host needs pairing and the gateway has no way to enter a PIN on it.
    #[error("this client is not paired with the host and the gateway cannot enter a PIN on it")]
    NoPinPath,
    /// The pairing exchange failed.
    #[error("pairing failed: {0}")]
    Pair(#[from] gamestream::nvhttp::NvHttpError),
    /// The host did not show our pending pairing in time.
    #[error("pairing timed out")]
    Timeout,
    /// The store failed.
    #[error("{0}")]
    Store(#[from] StoreError),
    /// A stored certificate does not parse.
    #[error("bad certificate: {0}")]
    Certificate(String),
}

impl AutoPairError {
    /// What the browser is told.
    pub fn code(&self) -> wire::browser::ErrorCode {
        use wire::browser::ErrorCode;
        match self {
            AutoPairError::NoPinPath | AutoPairError::Pair(_) | AutoPairError::Timeout => {
                ErrorCode::HostNotPaired
            }
            AutoPairError::Store(_) | AutoPairError::Certificate(_) => {
                ErrorCode::InternalServerError
            }
        }
    }
}

/// The result of [`ensure_paired`].
#[derive(Debug, Clone)]
pub struct Paired {
    /// The host certificate (DER) to pin.
    pub host_cert_der: Vec<u8>,
    /// True if a pairing exchange ran now (false: the store said it was paired already).
    pub paired_now: bool,
}

/// Makes sure `identity` (the identity of `client_id`) is paired with `host`: a no-op when the
/// store records it as paired, otherwise a PIN pairing through a [`PinSubmitter`].
pub async fn ensure_paired(
    state: &AppState,
    host: &HostRecord,
    client_id: &str,
    identity: &Identity,
) -> Result<Paired, AutoPairError> {
    let record = state.store.get_identity(host.id, client_id).await?;
    if let (Some(rec), Some(server_pem)) = (&record, &host.server_cert_pem) {
        if rec.pairing == PairingState::Paired && rec.cert_pem == identity.cert_pem {
            crate::identities::touch(state, host.id, client_id).await;
            let der = cert_der_from_pem(server_pem.as_bytes())
                .map_err(|e| AutoPairError::Certificate(e.to_string()))?;
            return Ok(Paired {
                host_cert_der: der,
                paired_now: false,
            });
        }
    }
    let submitter = state
        .pin_submitter_for_host(host)
        .ok_or(AutoPairError::NoPinPath)?;
    let pin = format!("{:04}", rand::rngs::OsRng.gen_range(0..10_000u32));
    let device_name = format!(
        "moongate-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    );
    let client = NvHttpClient::new(
        HostAddress::with_ports(host.address.clone(), host.http_port, host.https_port),
        identity.clone(),
        None,
    )
    .with_unique_id(client_id)
    .with_timeout(state.config.timeouts.host_request);
    let limit = state.config.timeouts.pairing;
    // Found by the chaos suite: 20 identities paired at once through the Wolf API got each
    // other's PINs ("wrong PIN").
    let _turn = match submitter.pairing_turn() {
        Some(turn) => Some(turn.lock().await),
        None => None,
    };
    let pairing = async {
        // The host lists our request once our first pairing call arrived; poll its in-process
        // list (cheap, local) until the PIN is taken, while the exchange runs.
        let exchange = client.pair(&pin, &device_name);
        tokio::pin!(exchange);
        let mut submitted = false;
        loop {
            tokio::select! {
                result = &mut exchange => break result,
                done = async {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    submitter.submit(&device_name, &pin).await
                }, if !submitted => submitted = done,
            }
        }
    };
    let paired = tokio::time::timeout(limit, pairing)
        .await
        .map_err(|_| AutoPairError::Timeout)??;
    state
        .store
        .set_server_cert(host.id, Some(paired.host_cert_pem.clone()))
        .await?;
    let key_pem = identity
        .key_pem()
        .map_err(|e| AutoPairError::Certificate(e.to_string()))?;
    state
        .store
        .put_identity(ClientIdentityRecord {
            host_id: host.id,
            client_id: client_id.to_string(),
            cert_pem: identity.cert_pem.clone(),
            key_pem,
            pairing: PairingState::Paired,
            updated_at: 0,
        })
        .await?;
    tracing::info!(
        host_id = host.id,
        client_id,
        "client identity paired with the host"
    );
    Ok(Paired {
        host_cert_der: paired.host_cert_der,
        paired_now: true,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use wire::browser::ErrorCode;

    #[test]
    fn pairing_errors_have_codes_and_plain_texts() {
        assert_eq!(AutoPairError::Timeout.code(), ErrorCode::HostNotPaired);
        assert_eq!(AutoPairError::NoPinPath.code(), ErrorCode::HostNotPaired);
        let bad = AutoPairError::Certificate("not PEM".into());
        assert_eq!(bad.code(), ErrorCode::InternalServerError);
        // The text is the detail; the browser gets the code in front of it.
        assert_eq!(bad.to_string(), "bad certificate: not PEM");
        let e =
            wire::browser::BrowserError::new(AutoPairError::Timeout.code(), AutoPairError::Timeout);
        assert_eq!(e.text, "HostNotPaired: pairing timed out");
    }
}
