//! Ending the host session of a streamer that died mid-stream, in the order real hosts survive.
//!
//! A streamer that is killed or crashes after `Started` never sends its ENet DISCONNECT nor its
//! `/cancel`. Wolf then keeps the session paused, and busy, until someone cancels it; but a
//! `/cancel` that reaches Wolf while the dead client's ENet peer is still registered is the order
//! that crashes it (the peer's DISCONNECT then finds no session). The host notices the dead peer
//! only at its ENet timeout, which ENet caps at 30 s (`ENET_PEER_TIMEOUT_MAXIMUM`; about 5 s on a
//! quiet LAN). So the gateway waits out that timeout, then `/cancel`s with the stream's own
//! identity: the host is never left busy and never sees the order that crashes it.
//!
//! The same holds for a stream whose host stopped answering mid-stream (`ConnectionLost`: the host
//! hung, crashed or lost its network): the streamer's own `/cancel` then gets no answer, and a
//! host that comes back (SIGCONT, a network that heals) still holds the stream's session — Wolf
//! pauses it on the ENet timeout and keeps it busy until cancelled. So the gateway schedules the
//! same cleanup. Throughout the wait the host is probed (every 2 s, for up to 10 min): a host that
//! stops answering — or whose `/cancel` finds it unreachable — restarts the wait once it answers
//! again, since its ENet clock stood still meanwhile; only a full timeout of a host that answered
//! all along is followed by the `/cancel`.
//! A host that answers the `/cancel` with an error (restarted: no such session) is left alone.
//!
//! A new stream of the same identity on the same host meanwhile **takes over**: the pending
//! `/cancel` is dropped (it would end the new stream, since hosts key sessions by client
//! certificate), and the new stream's own teardown ends the host session for sure.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::task::JoinHandle;

use crate::streamer_proc::HostSession;

/// How long a cleanup keeps trying a host that does not answer (down, hung, rebooting).
const RETRY_FOR: Duration = Duration::from_secs(600);
/// How often it probes such a host.
const PROBE_EVERY: Duration = Duration::from_secs(2);

/// Probes `session`'s host until it answers (true) or `give_up` passes (false).
async fn wait_reachable(session: &HostSession, give_up: tokio::time::Instant) -> bool {
    while tokio::time::Instant::now() < give_up {
        tokio::time::sleep(PROBE_EVERY).await;
        if session.reachable().await {
            return true;
        }
    }
    false
}

/// Waits until the host has answered, without a gap, for `quiet` (its ENet timeout): a probe
/// every [`PROBE_EVERY`], and the wait starts again once a host that stopped answering is back.
/// Why: the host's ENet peer of the dead stream times out on the host's own clock, which stands
/// still while the host is hung (SIGSTOP, a stalled VM); a `/cancel` that arrives right after it
/// resumes would still find the peer registered. False if the host is gone past `give_up`.
async fn wait_out_enet_timeout(
    session: &HostSession,
    quiet: Duration,
    give_up: tokio::time::Instant,
) -> bool {
    let mut until = tokio::time::Instant::now() + quiet;
    loop {
        let now = tokio::time::Instant::now();
        if now >= until {
            return true;
        }
        tokio::time::sleep(PROBE_EVERY.min(until - now)).await;
        if tokio::time::Instant::now() >= until {
            return true;
        }
        if !session.reachable().await {
            if !wait_reachable(session, give_up).await {
                return false;
            }
            until = tokio::time::Instant::now() + quiet;
        }
    }
}

/// Which host session: the host's id in the store and the client identity that streamed.
type Identity = (i64, String);

/// Pending `/cancel`s of streams whose streamer died, one per identity.
#[derive(Debug, Default)]
pub struct HostCleanups {
    pending: Mutex<HashMap<Identity, JoinHandle<()>>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl HostCleanups {
    /// `/cancel`s `session` after `after` (the host's ENet timeout, bounded), unless a new stream
    /// of the same identity takes over first. A cleanup already pending for it is replaced.
    pub fn schedule(
        self: &Arc<Self>,
        host_id: i64,
        client_id: &str,
        session: HostSession,
        after: Duration,
    ) {
        let id: Identity = (host_id, client_id.to_string());
        let weak = Arc::downgrade(self);
        let key = id.clone();
        let mut pending = lock(&self.pending);
        let task = tokio::spawn(async move {
            let give_up = tokio::time::Instant::now() + after + RETRY_FOR;
            loop {
                if !wait_out_enet_timeout(&session, after, give_up).await {
                    tracing::warn!(host_id, client_id = %key.1,
                        "the host did not come back; its left session is not cancelled");
                    break;
                }
                match session.cancel().await {
                    Ok(()) => {
                        tracing::info!(
                            host_id,
                            client_id = %key.1,
                            "cancelled the host session a streamer left (after the host's ENet timeout)"
                        );
                        break;
                    }
                    Err(e) => {
                        // Answered with an error (no such session): nothing is left to end.
                        if e.answered {
                            tracing::info!(host_id, client_id = %key.1, error = %e,
                                "/cancel of a left host session answered with an error");
                            break;
                        }
                        // Back later (it hung, or its network did): its ENet peer of our stream
                        // times out on its own clock from then, so the wait starts again.
                        tracing::warn!(host_id, client_id = %key.1, error = %e,
                            "/cancel of a left host session: the host does not answer; retrying once it is back");
                    }
                }
            }
            if let Some(this) = weak.upgrade() {
                let mut pending = lock(&this.pending);
                // Only our own entry: a newer one for the same identity stays.
                if pending
                    .get(&key)
                    .is_some_and(|t| t.id() == tokio::task::id())
                {
                    pending.remove(&key);
                }
            }
        });
        if let Some(old) = pending.insert(id, task) {
            old.abort();
        }
    }

    /// A new stream of this identity is about to launch: it owns the host session from now on,
    /// so a pending `/cancel` for it is dropped. True if there was one.
    pub fn take_over(&self, host_id: i64, client_id: &str) -> bool {
        let removed = lock(&self.pending).remove(&(host_id, client_id.to_string()));
        match removed {
            Some(task) if !task.is_finished() => {
                task.abort();
                tracing::info!(
                    host_id,
                    client_id,
                    "a new stream of this identity takes over the host session a dead streamer left"
                );
                true
            }
            _ => false,
        }
    }

    /// How many `/cancel`s are waiting (admin view, shutdown, tests).
    pub fn pending(&self) -> usize {
        lock(&self.pending)
            .values()
            .filter(|t| !t.is_finished())
            .count()
    }
}

impl Drop for HostCleanups {
    fn drop(&mut self) {
        for (_, task) in lock(&self.pending).drain() {
            task.abort();
        }
    }
}
