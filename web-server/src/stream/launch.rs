//! The launch path shared by every mode ([`launch`]), and what it checks on the way: the
//! operator's stream caps, the client identity (cached, stored, or paired now) and the host's
//! HTTPS port.

use std::sync::Arc;

use futures_util::SinkExt;
use std::time::{Duration, Instant};

use wire::browser::{self, BrowserError, ErrorCode};
use wire::ipc::{StreamMode, StreamerInit, ToStreamer};
use wire::Secret;

use super::close::Close;
use super::teardown::{teardown, End, Ends, LastWords};
use crate::admin::observer::StreamObserver;
use crate::autopair::ensure_paired;
use crate::launch_gate::LaunchTurn;
use crate::limits::Rejection;
use crate::sessions::{
    register_superseding, supersede_same_client, supersede_same_host, SessionGuard, SessionKey,
    SessionMeta, StopReason,
};
use crate::state::AppState;
use crate::streamer_proc::{self, IpcRx, IpcTx, StreamerChild};
use gamestream::nvhttp::{HostAddress, NvHttpClient};

/// Bounds the gateway's own `/cancel` of a dead streamer's host session (the registry entry, and
/// with it a superseding stream, waits for it).
const HOST_CANCEL_LIMIT: Duration = Duration::from_secs(3);

/// What a stream asks for, whatever the browser transport (WebSocket, WebRTC signaling, WHEP).
#[derive(Debug)]
pub(crate) struct StreamRequest {
    pub(crate) session: Option<String>,
    pub(crate) lobby: Option<String>,
    pub(crate) client: Option<String>,
    /// Index into the host list (Helix sends 0).
    pub(crate) host_index: u32,
    pub(crate) app_id: u32,
    pub(crate) width: u32,
    pub(crate) height: u32,
    pub(crate) fps: u32,
    pub(crate) bitrate_kbps: u32,
    pub(crate) packet_size: u32,
    pub(crate) video_formats: u32,
    pub(crate) play_audio_local: bool,
    /// 2, 6 or 8. WebRTC carries stereo only (the streamer enforces it).
    pub(crate) audio_channels: u8,
    pub(crate) mode: StreamMode,
    pub(crate) remote: Option<String>,
    /// Who opens it: a viewer-only account may not, and the host index counts only the hosts
    /// this caller may use (the list `GET /api/hosts` showed them).
    pub(crate) principal: crate::auth::Principal,
}

/// A launched stream: its registry entry, its streamer and the IPC channel (`Init` sent).
pub(crate) struct Launched {
    pub(crate) key: SessionKey,
    pub(crate) guard: SessionGuard,
    pub(crate) child: StreamerChild,
    pub(crate) ipc_tx: IpcTx,
    pub(crate) ipc_rx: IpcRx,
    /// Feeds the admin view's live row and the metrics, whatever the mode.
    pub(crate) observer: StreamObserver,
    /// This launch's turns on the host, as its streamer asks for them; each mode grants them
    /// ([`LaunchTurn::granted`] → `ToStreamer::LaunchTurn`) and ends the turn at `Started`.
    pub(crate) turn: LaunchTurn,
}

/// The shared launch path of every mode: key → host → registry entry (superseding the same key
/// and older keys of the same client identity) → identity and pairing → streamer spawned and sent
/// `Init`. Any failure is the close to send; nothing is left behind.
pub(crate) async fn launch(state: &AppState, req: StreamRequest) -> Result<Launched, Close> {
    // The launch's place in its host's queue of turns: oldest open first.
    let opened = Instant::now();
    let mode = req.mode;
    // The key.
    let session = req
        .session
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "default".into());
    let lobby = req.lobby.unwrap_or_default();
    let client = req
        .client
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| format!("moongate-{}", uuid::Uuid::new_v4()));
    if [&session, &lobby, &client]
        .iter()
        .any(|s| s.len() > browser::MAX_ID_LEN || s.chars().any(char::is_control))
    {
        return Err(Close::policy(
            ErrorCode::InvalidInit,
            "bad session, lobby or client id",
        ));
    }
    let key = SessionKey::new(session, lobby.clone(), client.clone())
        .map_err(|e| Close::policy(ErrorCode::InvalidInit, e))?;

    if req.principal.role == crate::auth::Role::Viewer {
        return Err(Close::policy(
            ErrorCode::Forbidden,
            "a viewer-only account may not start a stream",
        ));
    }

    // The host: `host_id` is an index into the host list (Helix sends 0).
    let hosts = state
        .store
        .list_hosts()
        .await
        .map_err(|e| Close::failure(ErrorCode::InternalServerError, e))?;
    let Some(host) = hosts
        .into_iter()
        .filter(|h| req.principal.may_use_host(h.id))
        .nth(req.host_index as usize)
    else {
        return Err(Close::failure(
            ErrorCode::HostNotFound,
            format!("no host with index {}", req.host_index),
        ));
    };

    stream_caps(state, &key, host.id).await?;

    // Register, superseding (and awaiting the end of) a live stream with this key.
    let meta = SessionMeta {
        host_id: host.id,
        app_id: req.app_id,
        mode: match mode {
            StreamMode::Websocket => "websocket".into(),
            StreamMode::Webrtc => "webrtc".into(),
        },
        remote: req.remote,
    };
    let mut guard = register_superseding(
        state.sessions.as_ref(),
        key.clone(),
        meta,
        state.config.timeouts.supersede,
    )
    .await
    .map_err(|e| Close::failure(ErrorCode::InternalServerError, e))?;
    // Across the cluster: claim the key, then stop and await its stream on another node.
    let claimed = match &state.cluster {
        Some(cluster) => {
            let claimed = cluster
                .claim(&mut guard)
                .await
                .map_err(|e| Close::failure(ErrorCode::ClusterUnavailable, e))?;
            tokio::select! {
                r = cluster.supersede_previous(&claimed, state.config.timeouts.supersede) => if let Err(e) = r {
                    return Err(Close::failure(ErrorCode::InternalServerError, e));
                },
                reason = guard.stopped() => return Err(stopped_before_launch(state, reason)),
            }
            Some(claimed)
        }
        None => None,
    };
    // Which identity streams: a per-client one where the gateway can pair it itself (a pairing
    // API: the embedded host, a Wolf API), else the one the user paired with a PIN, shared by
    // every browser client of this host.
    let shared_identity = state.pin_submitter_for_host(&host).is_none();
    // One stream per client identity on a host: an older stream of this identity under another
    // key (another lobby, or another browser client on a shared identity) ends before this one
    // launches (lesson 4) — a supersede, never "AlreadyStreaming".
    let limit = state.config.timeouts.supersede;
    let same_identity = async {
        if shared_identity {
            supersede_same_host(state.sessions.as_ref(), &guard, limit).await
        } else {
            supersede_same_client(state.sessions.as_ref(), &guard, limit).await
        }
    };
    tokio::select! {
        r = same_identity => if let Err(e) = r {
            return Err(Close::failure(ErrorCode::InternalServerError, e));
        },
        reason = guard.stopped() => return Err(stopped_before_launch(state, reason)),
    }
    if let (Some(cluster), Some(claimed)) = (&state.cluster, &claimed) {
        tokio::select! {
            r = cluster.supersede_identity(&guard, claimed.gen, shared_identity, limit) => if let Err(e) = r {
                return Err(Close::failure(ErrorCode::InternalServerError, e));
            },
            reason = guard.stopped() => return Err(stopped_before_launch(state, reason)),
        }
    }
    let client = if shared_identity {
        crate::api::GATEWAY_CLIENT_ID.to_string()
    } else {
        client
    };

    // Identity and pairing, abandoned if this stream is stopped meanwhile.
    let prepared = async {
        if shared_identity {
            return shared_gateway_identity(state, &host).await;
        }
        seed_identity_from_store(state, host.id, &client).await;
        let identity = state
            .certs
            .get_or_create(&client)
            .await
            .map_err(|e| internal(format!("client identity: {e}")))?;
        if let Some(cluster) = &state.cluster {
            cluster.touch_client(&client).await;
        }
        let started = Instant::now();
        let paired = ensure_paired(state, &host, &client, &identity)
            .await
            .map_err(|e| BrowserError::new(e.code(), e))?;
        if paired.paired_now {
            tracing::info!(session = %key, ms = started.elapsed().as_millis() as u64, "paired a new client identity");
        }
        let key_pem = identity
            .key_pem()
            .map_err(|e| internal(format!("client key: {e}")))?;
        Ok::<_, BrowserError>((identity, key_pem, paired.host_cert_der))
    };
    let (identity, key_pem, host_cert_der) = tokio::select! {
        r = prepared => r.map_err(Close::failed)?,
        reason = guard.stopped() => return Err(stopped_before_launch(state, reason)),
    };
    let cancel_cert = host_cert_der.clone();
    let https_port = match host.https_port {
        Some(p) => p,
        None => learn_https_port(state, &host, &identity).await,
    };
    let streamer_init = StreamerInit {
        session_key: key.to_string(),
        mode,
        host: wire::ipc::HostAddress {
            address: host.address.clone(),
            http_port: host.http_port,
            https_port,
        },
        host_cert_der,
        client_unique_id: client.clone(),
        client_cert_pem: identity.cert_pem.clone(),
        client_key_pem: Secret::new(key_pem),
        app_id: req.app_id,
        width: req.width,
        height: req.height,
        fps: req.fps,
        bitrate_kbps: req.bitrate_kbps,
        packet_size: req.packet_size,
        video_formats: req.video_formats,
        audio_channels: req.audio_channels,
        play_audio_local: req.play_audio_local,
        lobby_id: (!lobby.is_empty()).then_some(lobby),
        wolf_api: state
            .pin_submitter_for_host(&host)
            .and_then(|p| p.wolf_api()),
        webrtc: (mode == StreamMode::Webrtc).then(|| webrtc_settings(&state.config.webrtc)),
        launch_turns: true,
    };

    // A /cancel still waiting for a dead streamer of this identity would end this stream: this
    // stream owns the host session from here on, and its own teardown ends it.
    state.host_cleanups.take_over(host.id, &client);

    // 6. The streamer. It asks for its turn on the host before each `/launch` (`LaunchTurn`).
    let turn = LaunchTurn::new(
        state.launch_gates.clone(),
        &host.address,
        host.http_port,
        opened,
    );
    let (mut child, mut ipc_tx, ipc_rx) =
        match streamer_proc::spawn(&state.config.streamer_path, &key.to_string()) {
            Ok(c) => c,
            Err(e) => {
                return Err(Close::failure(
                    ErrorCode::InternalServerError,
                    format!(
                        "cannot start the streamer {}: {e}",
                        state.config.streamer_path.display()
                    ),
                ))
            }
        };
    tracing::info!(session = %key, pid = ?child.id(), ?mode, "streamer spawned");
    if let (Some(cluster), Some(claimed), Some(pid)) = (&state.cluster, &claimed, child.id()) {
        cluster.record_streamer(claimed, pid).await;
    }
    child.attach_host_session(
        streamer_proc::HostSession::new(
            NvHttpClient::new(
                HostAddress::with_ports(host.address.clone(), host.http_port, Some(https_port)),
                identity,
                Some(cancel_cert),
            )
            .with_unique_id(client.clone())
            .with_timeout(HOST_CANCEL_LIMIT),
            HOST_CANCEL_LIMIT,
        )
        .with_cleanup(
            Arc::clone(&state.host_cleanups),
            state.config.timeouts.host_cleanup,
            host.id,
            client.clone(),
        ),
    );
    let mut observer = StreamObserver::launched(state, &guard, child.id());
    if ipc_tx
        .send(ToStreamer::Init(Box::new(streamer_init)))
        .await
        .is_err()
    {
        let mut last = LastWords::default();
        let ends = Ends {
            guard,
            child: &mut child,
            observer: &mut observer,
        };
        let close = teardown(
            &key.to_string(),
            &mut last,
            End::StreamerLost,
            ends,
            ipc_tx,
            ipc_rx,
        )
        .await;
        return Err(close);
    }
    Ok(Launched {
        key,
        guard,
        child,
        ipc_tx,
        ipc_rx,
        observer,
        turn,
    })
}

/// The identity of a host without a pairing API: the gateway's, paired once with a PIN
/// (`POST /api/hosts/{id}/pair`). Not paired yet: a clear error naming the way out.
async fn shared_gateway_identity(
    state: &AppState,
    host: &crate::store::HostRecord,
) -> Result<(gamestream::identity::Identity, String, Vec<u8>), BrowserError> {
    let not_paired = || {
        BrowserError::new(
            ErrorCode::HostNotPaired,
            format!(
                "pair this host first: {} has no pairing API, so moongate streams through the \
                 identity you pair with a PIN (POST /api/hosts/{}/pair)",
                host.name, host.id
            ),
        )
    };
    let (identity, pairing) = crate::api::hosts::gateway_identity(state, host.id)
        .await
        .map_err(|e| internal(format!("gateway identity: {}", e.message)))?;
    let Some(server_pem) = host.server_cert_pem.as_deref() else {
        return Err(not_paired());
    };
    if pairing != crate::store::PairingState::Paired {
        return Err(not_paired());
    }
    let host_cert_der = gamestream::identity::cert_der_from_pem(server_pem.as_bytes())
        .map_err(|e| internal(format!("stored host certificate: {e}")))?;
    let key_pem = identity
        .key_pem()
        .map_err(|e| internal(format!("client key: {e}")))?;
    Ok((identity, key_pem, host_cert_der))
}

fn internal(detail: String) -> BrowserError {
    BrowserError::new(ErrorCode::InternalServerError, detail)
}

/// A stream stopped before its streamer was launched (superseded meanwhile, shutdown, admin).
fn stopped_before_launch(state: &AppState, reason: StopReason) -> Close {
    if reason == StopReason::Superseded {
        state.metrics.superseded_before_launch();
    }
    Close::stopped(reason)
}

/// The operator's caps on streams at once: in all (the whole cluster in Redis mode) and per
/// client id ([`crate::limits::check_caps`]).
async fn stream_caps(state: &AppState, key: &SessionKey, host_id: i64) -> Result<(), Close> {
    let limits = state.config.limits;
    if limits.max_streams == 0 && limits.max_streams_per_client == 0 {
        return Ok(());
    }
    let infos: Vec<crate::sessions::SessionInfo> = match &state.cluster {
        Some(cluster) => match cluster.list().await {
            Ok(all) => all.into_iter().map(|s| s.info).collect(),
            // The claim reports Redis trouble with its own close; count this node meanwhile.
            Err(_) => state.sessions.list(),
        },
        None => state.sessions.list(),
    };
    let texts: Vec<String> = infos.iter().map(|s| s.key.to_string()).collect();
    let live: Vec<crate::limits::LiveStream<'_>> = infos
        .iter()
        .zip(&texts)
        .map(|(s, text)| crate::limits::LiveStream {
            key: text,
            client: &s.client_id,
            host_id: s.meta.host_id,
        })
        .collect();
    let text = key.to_string();
    let new = crate::limits::LiveStream {
        key: &text,
        client: &key.client,
        host_id,
    };
    match crate::limits::check_caps(&limits, &live, &new) {
        Ok(()) => Ok(()),
        Err(why) => {
            let detail = match why {
                Rejection::MaxStreamsPerClient => format!(
                    "this client runs its maximum of {} streams",
                    limits.max_streams_per_client
                ),
                _ => format!(
                    "the gateway runs its maximum of {} streams; try again later",
                    limits.max_streams
                ),
            };
            let error = BrowserError::new(ErrorCode::TooManyStreams, detail);
            Err(Close::limit(
                state,
                why,
                crate::limits::CLOSE_TRY_AGAIN_LATER,
                error,
            ))
        }
    }
}

/// A client id not in the certificate cache whose identity for `host_id` is in the store (paired
/// through another gateway of the cluster, or before this gateway restarted) gets that identity
/// back, so it streams without pairing again. A stored key that does not open is left alone:
/// the client gets a fresh identity and pairs, as before.
async fn seed_identity_from_store(state: &AppState, host_id: i64, client: &str) {
    if state.certs.lookup(client).is_some() {
        return;
    }
    let record = match state.store.get_identity(host_id, client).await {
        Ok(Some(r)) => r,
        Ok(None) => return,
        Err(e) => {
            tracing::warn!(host = host_id, error = %e, "cannot read a stored client identity; a new one will pair");
            return;
        }
    };
    match gamestream::identity::Identity::from_pem(&record.cert_pem, &record.key_pem) {
        Ok(identity) => {
            state.certs.insert_if_absent(client, identity);
        }
        Err(e) => {
            tracing::warn!(host = host_id, error = %e, "a stored client identity does not load; a new one will pair")
        }
    }
}

/// The HTTPS port of a host stored without one (added by address and HTTP port only): what its
/// `/serverinfo` says (`HttpsPort`), as every Moonlight client learns it. Sunshine and Wolf on
/// non-default ports do not serve HTTPS on 47984; the default is only the last resort.
async fn learn_https_port(
    state: &AppState,
    host: &crate::store::HostRecord,
    identity: &gamestream::identity::Identity,
) -> u16 {
    let client = NvHttpClient::new(
        HostAddress::with_ports(host.address.clone(), host.http_port, None),
        identity.clone(),
        None,
    )
    .with_timeout(state.config.timeouts.host_request);
    match client.server_info_http().await {
        Ok(info) => info.https_port,
        Err(e) => {
            tracing::warn!(host = host.id, error = %e, "cannot read the host's HTTPS port from /serverinfo; trying the default");
            gamestream::nvhttp::DEFAULT_HTTPS_PORT
        }
    }
}

/// The streamer settings of WebRTC mode, from `[webrtc]`.
pub(crate) fn webrtc_settings(c: &crate::config::WebRtc) -> wire::ipc::WebRtcSettings {
    use crate::config::{NatCandidateType as C, NetworkType as N};
    wire::ipc::WebRtcSettings {
        udp_port_min: c.udp_port_min,
        udp_port_max: c.udp_port_max,
        bind_address: c.bind_address.to_string(),
        nat_1to1_ips: c.nat_1to1_ips.iter().map(ToString::to_string).collect(),
        nat_1to1_candidate_type: match c.nat_candidate_type {
            C::Host => wire::ipc::NatCandidateType::Host,
            C::Srflx => wire::ipc::NatCandidateType::Srflx,
        },
        network_types: c
            .network_types
            .iter()
            .map(|t| match t {
                N::Udp4 => wire::ipc::NetworkType::Udp4,
                N::Udp6 => wire::ipc::NetworkType::Udp6,
            })
            .collect(),
        disconnect_timeout_ms: u32::try_from(c.disconnect_timeout.as_millis()).unwrap_or(u32::MAX),
    }
}
