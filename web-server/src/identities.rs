//! The lifecycle of client identities in the store: last use, expiry after an idle time, and
//! revocation. Each identity is a private key a host accepts, so one that nobody uses any more is
//! unpaired on its host (where the host lets us) and deleted, instead of accumulating forever.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use gamestream::identity::{cert_der_from_pem, Identity};
use gamestream::nvhttp::{HostAddress, NvHttpClient};

use crate::autopair::WolfApiClient;
use crate::state::AppState;
use crate::store::{HostRecord, IdentitySummary, StoreError};

/// How often the running server sweeps idle identities.
pub const SWEEP_EVERY: Duration = Duration::from_secs(3600);

/// How the host was told to forget the identity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum HostUnpair {
    /// Wolf's `POST /api/v1/unpair/client`.
    WolfApi,
    /// NVHTTP `/unpair` with the identity itself.
    Nvhttp,
    /// The host could not be told (no API, unreachable, or it refused): removed here only.
    NotDone,
}

/// Now in Unix seconds (the store's time unit).
pub fn now_unix() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Records a use of (host, client) now. Errors are logged, not returned: a failed bookkeeping
/// write must not fail a stream.
pub async fn touch(state: &AppState, host_id: i64, client_id: &str) {
    if let Err(e) = state
        .store
        .touch_identity(host_id, client_id, now_unix())
        .await
    {
        tracing::warn!(host_id, client_id, error = %e, "recording an identity's last use");
    }
}

/// Unpairs (host, client) on the host, removes it from the store and drops it from the
/// certificate cache. `Ok(None)` if the store had no such identity.
pub async fn revoke(
    state: &AppState,
    host_id: i64,
    client_id: &str,
) -> Result<Option<HostUnpair>, StoreError> {
    let record = match state.store.get_identity(host_id, client_id).await {
        Ok(None) => return Ok(None),
        Ok(Some(r)) => Some(r),
        // An undecryptable key still gets removed (it is useless anyway); the host is then told
        // through the Wolf API only, which needs the certificate, not the key.
        Err(StoreError::Decrypt { .. }) | Err(StoreError::KeyRequired) => None,
        Err(e) => return Err(e),
    };
    let host = state.store.get_host(host_id).await?;
    let cert_pem = record.as_ref().map(|r| r.cert_pem.clone());
    let unpaired = match (&host, cert_pem) {
        (Some(host), Some(cert_pem)) => {
            let key_pem = record.as_ref().map(|r| r.key_pem.as_str());
            unpair_on_host(state, host, client_id, &cert_pem, key_pem).await
        }
        _ => HostUnpair::NotDone,
    };
    let removed = state.store.remove_identity(host_id, client_id).await?;
    // The browser's cached identity is the same key for every host: a revoked one must not come
    // back from memory on the next stream.
    state.certs.remove(client_id);
    tracing::info!(host_id, client_id, ?unpaired, "client identity revoked");
    Ok(removed.then_some(unpaired))
}

async fn unpair_on_host(
    state: &AppState,
    host: &HostRecord,
    client_id: &str,
    cert_pem: &str,
    key_pem: Option<&str>,
) -> HostUnpair {
    let wolf = host.wolf_api.clone().or_else(|| {
        state
            .pin_submitter_for(&host.address, host.http_port)
            .and_then(|s| s.wolf_api())
    });
    if let Some(location) = wolf {
        match (
            WolfApiClient::parse(&location),
            cert_der_from_pem(cert_pem.as_bytes()),
        ) {
            (Ok(api), Ok(der)) => {
                let id = gamestream::host::client_id_of(&der).to_string();
                let body = serde_json::json!({ "client_id": id });
                match api.call("POST", "/api/v1/unpair/client", Some(&body)).await {
                    Ok(_) => return HostUnpair::WolfApi,
                    Err(e) => {
                        tracing::warn!(host_id = host.id, client_id, error = %e, "Wolf API unpair")
                    }
                }
            }
            _ => tracing::warn!(
                host_id = host.id,
                client_id,
                "Wolf API unpair: bad location or certificate"
            ),
        }
    }
    let Some(key_pem) = key_pem else {
        return HostUnpair::NotDone;
    };
    let identity = match Identity::from_pem(cert_pem, key_pem) {
        Ok(i) => i,
        Err(e) => {
            tracing::warn!(host_id = host.id, client_id, error = %e, "stored identity unusable");
            return HostUnpair::NotDone;
        }
    };
    let client = NvHttpClient::new(
        HostAddress::with_ports(host.address.clone(), host.http_port, host.https_port),
        identity,
        None,
    )
    .with_unique_id(client_id)
    .with_timeout(state.config.timeouts.host_request);
    match client.unpair().await {
        Ok(()) => HostUnpair::Nvhttp,
        Err(e) => {
            tracing::warn!(host_id = host.id, client_id, error = %e, "NVHTTP unpair");
            HostUnpair::NotDone
        }
    }
}

/// Revokes every identity last used before `now - config.identity_idle`; returns them.
/// `now` is a parameter (Unix seconds) so tests control the clock.
pub async fn sweep_idle(state: &AppState, now: i64) -> Result<Vec<IdentitySummary>, StoreError> {
    let idle = i64::try_from(state.config.identity_idle.as_secs()).unwrap_or(i64::MAX);
    let cutoff = now.saturating_sub(idle);
    let mut expired = Vec::new();
    for ident in state.store.list_identities().await? {
        if ident.last_used < cutoff
            && revoke(state, ident.host_id, &ident.client_id)
                .await?
                .is_some()
        {
            tracing::info!(
                host_id = ident.host_id,
                client_id = %ident.client_id,
                last_used = ident.last_used,
                "idle client identity expired"
            );
            expired.push(ident);
        }
    }
    Ok(expired)
}

/// Sweeps at start and then every [`SWEEP_EVERY`] for the life of the process (the task holds a
/// clone of the state: for the server binary, not for tests that drop their state).
pub fn spawn_sweeper(state: &AppState) {
    let weak = state.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(SWEEP_EVERY);
        loop {
            tick.tick().await;
            match sweep_idle(&weak, now_unix()).await {
                Ok(expired) if !expired.is_empty() => {
                    tracing::info!(count = expired.len(), "expired idle client identities")
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "sweeping idle client identities"),
            }
        }
    });
}
