//! The `/pair` and `/unpair` endpoints: the four-phase pairing exchange keyed by
//! `uniqueid@client-ip`, phase 1 waiting for the host app's PIN (or the fixed PIN), and the
//! pending-pairing bookkeeping that the host app sees. Kept apart from the HTTP plumbing in
//! `server.rs` because it is the one stateful, multi-request flow of the server.

use super::*;

pub(super) struct PendingEntry {
    pub(super) info: PendingPairing,
    pub(super) pin_tx: oneshot::Sender<String>,
}

pub(super) struct PairSession {
    pairing: HostPairing,
    device_name: String,
}

/// Removes a pending pairing when its phase-1 request ends in any way (answered, timed out or
/// its connection aborted).
struct PendingGuard<'a> {
    state: &'a State,
    secret: String,
}

impl Drop for PendingGuard<'_> {
    fn drop(&mut self) {
        if let Ok(mut p) = self.state.pending.lock() {
            p.remove(&self.secret);
        }
    }
}

pub(super) async fn pair(
    state: &Arc<State>,
    ctx: &RequestContext,
    params: &[(String, String)],
) -> Resp {
    let Some(unique_id) = ctx.unique_id.clone() else {
        return xml_error(400, "Missing uniqueid parameter");
    };
    let key = format!("{unique_id}@{}", ctx.peer_addr.ip());
    let device_name = params
        .iter()
        .find(|(k, _)| k == "devicename")
        .map(|(_, v)| v.clone())
        .unwrap_or_default();
    let request = match HostPairRequest::from_query(params) {
        Ok(r) => r,
        Err(e) => {
            remove_session(state, &key);
            return pair_fail(&e.to_string());
        }
    };
    match request {
        HostPairRequest::GetServerCert {
            salt,
            client_cert_pem,
        } => {
            remove_session(state, &key);
            if crate::identity::cert_der_from_pem(&client_cert_pem).is_err() {
                return pair_fail("invalid client certificate");
            }
            let Some(pin) = wait_for_pin(state, ctx, &unique_id, &device_name).await else {
                return pair_fail("PIN entry timed out");
            };
            let pairing = HostPairing::with_options(
                &state.identity,
                &state.signer,
                &salt,
                &client_cert_pem,
                &pin,
                PairingHash::Sha256,
                HostSecrets::random(),
            );
            match pairing {
                Ok(pairing) => {
                    let resp = pairing.server_cert_response();
                    if let Ok(mut s) = state.sessions.lock() {
                        s.insert(
                            key,
                            PairSession {
                                pairing,
                                device_name,
                            },
                        );
                    }
                    xml(200, resp.to_xml(200, None))
                }
                Err(e) => pair_fail(&e.to_string()),
            }
        }
        HostPairRequest::PairChallenge => {
            if ctx.https && ctx.paired {
                xml(
                    200,
                    PairResponse {
                        paired: true,
                        ..PairResponse::default()
                    }
                    .to_xml(200, None),
                )
            } else {
                xml(401, PairResponse::refused().to_xml(401, Some(UNAUTHORIZED)))
            }
        }
        other => {
            let step = {
                let Ok(mut sessions) = state.sessions.lock() else {
                    return pair_fail("internal error");
                };
                let Some(session) = sessions.get_mut(&key) else {
                    return pair_fail("Invalid uniqueid");
                };
                let step = session.pairing.handle(&other);
                let device_name = session.device_name.clone();
                if !matches!(step, Ok(HostStep::Respond(_))) {
                    sessions.remove(&key);
                }
                step.map(|s| (s, device_name))
            };
            match step {
                Ok((HostStep::Respond(resp), _)) => xml(200, resp.to_xml(200, None)),
                Ok((
                    HostStep::Paired {
                        response,
                        client_cert_pem,
                        client_cert_der,
                    },
                    device_name,
                )) => {
                    state.paired.add(PairedClient {
                        unique_id,
                        device_name,
                        cert_pem: String::from_utf8_lossy(&client_cert_pem).into_owned(),
                        cert_der: client_cert_der.clone(),
                    });
                    if let Ok(mut l) = state.last_paired.lock() {
                        l.insert(key, client_cert_der);
                    }
                    xml(200, response.to_xml(200, None))
                }
                Ok((HostStep::Rejected(resp), _)) => xml(200, resp.to_xml(200, None)),
                Err(e) => pair_fail(&e.to_string()),
            }
        }
    }
}

async fn wait_for_pin(
    state: &Arc<State>,
    ctx: &RequestContext,
    unique_id: &str,
    device_name: &str,
) -> Option<String> {
    if let Some(pin) = state.fixed_pin.lock().ok().and_then(|p| p.clone()) {
        return Some(pin);
    }
    let secret = {
        use rand::RngCore;
        let mut b = [0u8; 8];
        rand::rngs::OsRng.fill_bytes(&mut b);
        hex::encode(b)
    };
    let (pin_tx, pin_rx) = oneshot::channel();
    let info = PendingPairing {
        pair_secret: secret.clone(),
        unique_id: unique_id.to_string(),
        client_ip: ctx.peer_addr.ip(),
        device_name: device_name.to_string(),
    };
    state
        .pending
        .lock()
        .ok()?
        .insert(secret.clone(), PendingEntry { info, pin_tx });
    let _guard = PendingGuard { state, secret };
    match tokio::time::timeout(state.pin_timeout, pin_rx).await {
        Ok(Ok(pin)) => Some(pin),
        _ => None,
    }
}

fn remove_session(state: &State, key: &str) {
    if let Ok(mut s) = state.sessions.lock() {
        s.remove(key);
    }
}

pub(super) fn unpair(state: &State, ctx: &RequestContext) -> Resp {
    let key = format!(
        "{}@{}",
        ctx.unique_id.as_deref().unwrap_or_default(),
        ctx.peer_addr.ip()
    );
    remove_session(state, &key);
    let last = state
        .last_paired
        .lock()
        .ok()
        .and_then(|mut l| l.remove(&key));
    if let Some(cert) = ctx.client_cert_der.as_deref().filter(|_| ctx.https) {
        state.paired.remove(cert);
    } else if let Some(cert) = last {
        state.paired.remove(&cert);
    }
    xml(200, XmlBuilder::new(200, None).finish())
}
