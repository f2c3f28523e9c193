//! Host routes: CRUD, status, Wake-on-LAN, apps, box art, cancel.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::{JsonRejection, PathRejection};
use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use gamestream::identity::{cert_der_from_pem, Identity};
use gamestream::nvhttp::{HostAddress, NvHttpClient, NvHttpError};
use serde::{Deserialize, Serialize};

use super::{body, path, GATEWAY_CLIENT_ID};
use crate::error::ApiError;
use crate::state::AppState;
use crate::store::{ClientIdentityRecord, HostRecord, NewHost, PairingState, StoreError};
use crate::wol::{self, Mac};

/// A host as the API shows it (no certificates).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostView {
    /// Store id.
    pub id: i64,
    /// Display name.
    pub name: String,
    /// Host name or IP.
    pub address: String,
    /// NVHTTP port.
    pub http_port: u16,
    /// HTTPS port, if known.
    pub https_port: Option<u16>,
    /// MAC for Wake-on-LAN.
    pub mac: Option<String>,
    /// The gateway's identity is paired with this host.
    pub paired: bool,
    /// Unix seconds.
    pub added_at: i64,
    /// Wolf API (a Unix socket path or `http://host:port`): with it, every browser client gets
    /// its own automatically paired identity; without it, streams use the PIN-paired one.
    pub wolf_api: Option<String>,
}

/// `POST /api/hosts` body.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddHost {
    /// Display name (default: the address).
    pub name: Option<String>,
    /// Host name or IP literal.
    pub address: String,
    /// NVHTTP port (default 47989).
    pub http_port: Option<u16>,
    /// HTTPS port (default: from `/serverinfo`).
    pub https_port: Option<u16>,
    /// MAC for Wake-on-LAN.
    pub mac: Option<String>,
    /// Wolf API location (a Unix socket path or `http://host:port`), as a config-file host has.
    pub wolf_api: Option<String>,
}

/// `GET /api/hosts/{id}/status` answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostStatus {
    /// `/serverinfo` answered.
    pub online: bool,
    /// The host says our identity is paired (HTTPS `PairStatus`).
    pub paired: bool,
    /// The host is streaming.
    pub busy: bool,
    /// Running app id (0 = none).
    pub current_app: u32,
    /// `appversion`.
    pub app_version: Option<String>,
    /// `hostname`.
    pub hostname: Option<String>,
    /// Why it is offline.
    pub error: Option<String>,
}

/// An app of a host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppView {
    /// App id.
    pub id: u32,
    /// Title.
    pub title: String,
    /// HDR supported.
    pub hdr_supported: bool,
}

pub(crate) fn store_error(e: StoreError) -> ApiError {
    match e {
        StoreError::NoSuchHost(id) => ApiError::host_not_found(id),
        other => ApiError::internal(other),
    }
}

/// Maps an NVHTTP failure to a stable API error.
pub(crate) fn host_error(e: NvHttpError) -> ApiError {
    match e {
        NvHttpError::NotPaired => ApiError::new(
            StatusCode::CONFLICT,
            "host_not_paired",
            "pair with this host first",
        ),
        NvHttpError::Io(_) | NvHttpError::Timeout | NvHttpError::Tls(_) => ApiError::new(
            StatusCode::BAD_GATEWAY,
            "host_unreachable",
            format!("the host did not answer: {e}"),
        ),
        other => ApiError::new(
            StatusCode::BAD_GATEWAY,
            "host_error",
            format!("the host failed the request: {other}"),
        ),
    }
}

pub(crate) async fn load_host(state: &AppState, id: i64) -> Result<HostRecord, ApiError> {
    state
        .store
        .get_host(id)
        .await
        .map_err(store_error)?
        .ok_or_else(|| ApiError::host_not_found(id))
}

/// The gateway's identity for `host_id`, created (and stored) on first use.
pub(crate) async fn gateway_identity(
    state: &AppState,
    host_id: i64,
) -> Result<(Identity, PairingState), ApiError> {
    if let Some(rec) = state
        .store
        .get_identity(host_id, GATEWAY_CLIENT_ID)
        .await
        .map_err(store_error)?
    {
        let identity =
            Identity::from_pem(&rec.cert_pem, &rec.key_pem).map_err(ApiError::internal)?;
        return Ok((identity, rec.pairing));
    }
    let identity = tokio::task::spawn_blocking(Identity::new_client)
        .await
        .map_err(ApiError::internal)?
        .map_err(ApiError::internal)?;
    let key_pem = identity.key_pem().map_err(ApiError::internal)?;
    // Two first requests may race: the store keeps the first identity and both use it.
    let stored = state
        .store
        .insert_identity_if_absent(ClientIdentityRecord {
            host_id,
            client_id: GATEWAY_CLIENT_ID.into(),
            cert_pem: identity.cert_pem.clone(),
            key_pem,
            pairing: PairingState::Unpaired,
            updated_at: 0,
        })
        .await
        .map_err(store_error)?;
    if stored.cert_pem == identity.cert_pem {
        return Ok((identity, stored.pairing));
    }
    let identity =
        Identity::from_pem(&stored.cert_pem, &stored.key_pem).map_err(ApiError::internal)?;
    Ok((identity, stored.pairing))
}

/// An NVHTTP client for `host` with the gateway identity and the pinned host certificate.
pub(crate) async fn host_client(
    state: &AppState,
    host: &HostRecord,
) -> Result<Arc<NvHttpClient>, ApiError> {
    let (identity, _) = gateway_identity(state, host.id).await?;
    let pinned = host
        .server_cert_pem
        .as_deref()
        .and_then(|pem| cert_der_from_pem(pem.as_bytes()).ok());
    Ok(Arc::new(
        NvHttpClient::new(
            HostAddress::with_ports(host.address.clone(), host.http_port, host.https_port),
            identity,
            pinned,
        )
        .with_timeout(state.config.timeouts.host_request),
    ))
}

async fn view(state: &AppState, h: HostRecord) -> Result<HostView, ApiError> {
    let paired = h.server_cert_pem.is_some()
        && state
            .store
            .get_identity(h.id, GATEWAY_CLIENT_ID)
            .await
            .map_err(store_error)?
            .is_some_and(|i| i.pairing == PairingState::Paired);
    Ok(HostView {
        id: h.id,
        name: h.name,
        address: h.address,
        http_port: h.http_port,
        https_port: h.https_port,
        mac: h.mac,
        paired,
        added_at: h.added_at,
        wolf_api: h.wolf_api,
    })
}

/// `GET /api/hosts`.
/// Only the hosts the caller may use ([`crate::auth::Principal`]); a stream's `host_id` indexes
/// this list.
pub async fn list(
    State(state): State<AppState>,
    axum::Extension(who): axum::Extension<crate::auth::Principal>,
) -> Result<Json<Vec<HostView>>, ApiError> {
    let hosts = state.store.list_hosts().await.map_err(store_error)?;
    let mut out = Vec::with_capacity(hosts.len());
    for h in hosts.into_iter().filter(|h| who.may_use_host(h.id)) {
        out.push(view(&state, h).await?);
    }
    Ok(Json(out))
}

/// `POST /api/hosts`.
/// The longest display name of a host.
const MAX_NAME_CHARS: usize = 128;

/// `POST /api/hosts`: every field is checked (length, characters, format) before it is stored.
pub async fn add(
    State(state): State<AppState>,
    req: Result<Json<AddHost>, JsonRejection>,
) -> Result<(StatusCode, Json<HostView>), ApiError> {
    let req = body(req)?;
    let address = req.address.trim().to_string();
    // 253: the longest DNS name; an IPv6 literal is shorter.
    if address.is_empty()
        || address.len() > 253
        || address
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || c == '/')
    {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_address",
            "address must be a host name or IP literal (at most 253 characters)",
        ));
    }
    if let Some(name) = &req.name {
        if name.chars().count() > MAX_NAME_CHARS || name.chars().any(char::is_control) {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_name",
                format!("a host name for display has at most {MAX_NAME_CHARS} characters and no control characters"),
            ));
        }
    }
    if req.wolf_api.as_ref().is_some_and(|w| w.len() > 1024) {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_wolf_api",
            "wolf_api is at most 1024 characters",
        ));
    }
    if let Some(mac) = &req.mac {
        mac.parse::<Mac>()
            .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "invalid_mac", e.to_string()))?;
    }
    let wolf_api = req
        .wolf_api
        .map(|w| w.trim().to_string())
        .filter(|w| !w.is_empty());
    if let Some(location) = &wolf_api {
        crate::autopair::WolfApiClient::parse(location).map_err(|e| {
            ApiError::new(StatusCode::BAD_REQUEST, "invalid_wolf_api", e.to_string())
        })?;
    }
    if req.http_port == Some(0) || req.https_port == Some(0) {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_port",
            "ports must be 1-65535",
        ));
    }
    let record = state
        .store
        .add_host(NewHost {
            name: req
                .name
                .filter(|n| !n.trim().is_empty())
                .unwrap_or_else(|| address.clone()),
            address,
            http_port: req
                .http_port
                .unwrap_or(gamestream::nvhttp::DEFAULT_HTTP_PORT),
            https_port: req.https_port,
            mac: req.mac,
            wolf_api,
        })
        .await
        .map_err(store_error)?;
    Ok((StatusCode::CREATED, Json(view(&state, record).await?)))
}

/// `DELETE /api/hosts/{id}`: also stops a running pairing with it.
pub async fn remove(
    State(state): State<AppState>,
    id: Result<Path<i64>, PathRejection>,
) -> Result<StatusCode, ApiError> {
    let id = path(id)?;
    state.pairings.forget(id);
    if state.store.remove_host(id).await.map_err(store_error)? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::host_not_found(id))
    }
}

/// `GET /api/hosts/{id}/status`: an unreachable host is `online: false`, not an error.
pub async fn status(
    State(state): State<AppState>,
    id: Result<Path<i64>, PathRejection>,
) -> Result<Json<HostStatus>, ApiError> {
    let host = load_host(&state, path(id)?).await?;
    let client = host_client(&state, &host).await?;
    Ok(Json(match client.server_info().await {
        Ok(info) => HostStatus {
            online: true,
            paired: info.pair_status,
            busy: info.is_busy(),
            current_app: info.running_app(),
            app_version: Some(info.app_version.clone()),
            hostname: Some(info.hostname.clone()),
            error: None,
        },
        Err(e) => HostStatus {
            online: false,
            paired: false,
            busy: false,
            current_app: 0,
            app_version: None,
            hostname: None,
            error: Some(e.to_string()),
        },
    }))
}

/// `POST /api/hosts/{id}/wake`.
pub async fn wake(
    State(state): State<AppState>,
    id: Result<Path<i64>, PathRejection>,
) -> Result<StatusCode, ApiError> {
    let host = load_host(&state, path(id)?).await?;
    let Some(mac) = host.mac.as_deref() else {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "no_mac",
            "this host has no MAC address; add one to wake it",
        ));
    };
    let mac: Mac = mac
        .parse()
        .map_err(|e: wol::BadMac| ApiError::internal(e))?;
    wol::wake(mac, state.config.wol_target).await.map_err(|e| {
        ApiError::new(
            StatusCode::BAD_GATEWAY,
            "wake_failed",
            format!("could not send the Wake-on-LAN packet: {e}"),
        )
    })?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /api/hosts/{id}/apps`.
pub async fn apps(
    State(state): State<AppState>,
    id: Result<Path<i64>, PathRejection>,
) -> Result<Json<Vec<AppView>>, ApiError> {
    let host = load_host(&state, path(id)?).await?;
    let client = host_client(&state, &host).await?;
    let apps = client.app_list().await.map_err(host_error)?;
    Ok(Json(
        apps.into_iter()
            .map(|a| AppView {
                id: a.id,
                title: a.title,
                hdr_supported: a.hdr_supported,
            })
            .collect(),
    ))
}

/// `GET /api/hosts/{id}/apps/{app}/boxart`: PNG bytes.
pub async fn boxart(
    State(state): State<AppState>,
    ids: Result<Path<(i64, u32)>, PathRejection>,
) -> Result<Response, ApiError> {
    let (id, app) = path(ids)?;
    let host = load_host(&state, id).await?;
    let client = host_client(&state, &host).await?;
    let png = client.app_asset(app).await.map_err(host_error)?;
    Ok((
        [
            (header::CONTENT_TYPE, "image/png"),
            (header::CACHE_CONTROL, "private, max-age=3600"),
        ],
        Bytes::from(png),
    )
        .into_response())
}

/// `POST /api/hosts/{id}/cancel`: quits the running app on the host.
pub async fn cancel(
    State(state): State<AppState>,
    id: Result<Path<i64>, PathRejection>,
) -> Result<StatusCode, ApiError> {
    let host = load_host(&state, path(id)?).await?;
    let client = host_client(&state, &host).await?;
    client.cancel().await.map_err(host_error)?;
    Ok(StatusCode::NO_CONTENT)
}
