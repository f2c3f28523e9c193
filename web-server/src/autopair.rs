//! Automatic pairing of a browser's client identity with a host.
//!
//! Every `client_unique_id` gets its own identity ([`crate::certs::ClientCertCache`]) and must be
//! paired before it can launch. Nobody types a PIN for these: the gateway runs
//! `NvHttpClient::pair(pin)` and, at the same time, hands the same PIN to the host through a
//! [`PinSubmitter`] (the embedded demo host's in-process pending-pair API). Which (host, client id)
//! pairs are paired is recorded in the host store, so a reconnect with the same identity skips the
//! pairing (re-pairing on every connect is what made a competitor's first frame take 3.2 s).

use std::sync::Arc;
use std::time::Duration;

use gamestream::identity::{cert_der_from_pem, Identity};
use gamestream::nvhttp::{HostAddress, NvHttpClient};
use rand::Rng;

use crate::server::AppState;
use crate::store::{ClientIdentityRecord, HostRecord, PairingState, StoreError};

/// Enters a pairing PIN on a host on the gateway's behalf.
pub trait PinSubmitter: Send + Sync {
    /// True if this submitter reaches the host at `address`:`http_port`.
    fn serves(&self, address: &str, http_port: u16) -> bool;
    /// Submits `pin` for the pending pairing whose device name is `device_name`; false if that
    /// pairing is not pending (yet).
    fn submit(&self, device_name: &str, pin: &str) -> bool;
}

/// The embedded demo host's in-process pending-pair API (`pending_pairs` + `submit_pair_pin`).
pub struct DemoHostPins {
    host: Arc<demo_host::DemoHost>,
    address: String,
    http_port: u16,
}

impl DemoHostPins {
    /// Pins for `host`, reachable at `address`.
    pub fn new(host: Arc<demo_host::DemoHost>, address: impl Into<String>) -> Self {
        let http_port = host.ports().http;
        DemoHostPins {
            host,
            address: address.into(),
            http_port,
        }
    }
}

impl PinSubmitter for DemoHostPins {
    fn serves(&self, address: &str, http_port: u16) -> bool {
        self.address == address && self.http_port == http_port
    }

    fn submit(&self, device_name: &str, pin: &str) -> bool {
        self.host
            .pending_pairs()
            .into_iter()
            .find(|p| p.device_name == device_name)
            .is_some_and(|p| self.host.submit_pair_pin(&p.pair_secret, pin).is_ok())
    }
}

/// Why a client identity could not be paired.
#[derive(Debug, thiserror::Error)]
pub enum AutoPairError {
    /// The host needs pairing and the gateway has no way to enter a PIN on it.
    #[error("HostNotPaired: this client is not paired with the host and the gateway cannot enter a PIN on it")]
    NoPinPath,
    /// The pairing exchange failed.
    #[error("HostNotPaired: pairing failed: {0}")]
    Pair(#[from] gamestream::nvhttp::NvHttpError),
    /// The host did not show our pending pairing in time.
    #[error("HostNotPaired: pairing timed out")]
    Timeout,
    /// The store failed.
    #[error("InternalServerError: {0}")]
    Store(#[from] StoreError),
    /// A stored certificate does not parse.
    #[error("InternalServerError: bad certificate: {0}")]
    Certificate(String),
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
            let der = cert_der_from_pem(server_pem.as_bytes())
                .map_err(|e| AutoPairError::Certificate(e.to_string()))?;
            return Ok(Paired {
                host_cert_der: der,
                paired_now: false,
            });
        }
    }
    let submitter = state
        .pin_submitter_for(&host.address, host.http_port)
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
    let pairing = async {
        // The host lists our request once our first pairing call arrived; poll its in-process
        // list (cheap, local) until the PIN is taken, while the exchange runs.
        let exchange = client.pair(&pin, &device_name);
        tokio::pin!(exchange);
        let mut submitted = false;
        loop {
            tokio::select! {
                result = &mut exchange => break result,
                _ = tokio::time::sleep(Duration::from_millis(10)), if !submitted => {
                    submitted = submitter.submit(&device_name, &pin);
                }
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
