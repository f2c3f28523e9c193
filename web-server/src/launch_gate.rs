//! Launches on one host take turns, oldest open first.
//!
//! Wolf (and the Wolf-strict demo host, embedded or not) finds the session of a plain RTSP request
//! by the client's IP address alone, and every stream of a gateway comes from the gateway's
//! address: two launches whose handshakes overlap on one host get each other's session (the second
//! ANNOUNCE fails with 455, "method not valid in this state", or a control stream lands on the
//! other session). The chaos suite (`tests/chaos.rs`) hit this with 20 browsers opening at once.
//!
//! So a streamer asks for its host's turn right before each `/launch` attempt
//! (`FromStreamer::LaunchTurn`), and holds it until it reports `Started` (its `/launch`, RTSP and
//! ENet handshakes done), gives it back (the host refused the launch; it retries later), ends, or
//! has held it for [`LAUNCH_TURN_MAX`]. The spawn, the process start and the waits between
//! retries are outside the turn, so a queue of browsers opening at once waits only for the
//! handshakes that must not overlap.
//!
//! **Order.** Waiting launches are served by the time their browser opened, not by the time of
//! their request: a launch the host refused (503 while it still stops the client's previous
//! stream, or a host refusing for a while) asks again later, and in arrival order it would go to
//! the back of a queue that newer opens had joined meanwhile. Oldest-open-first is
//! earliest-deadline-first for the one deadline every open has (its answer), which keeps the
//! longest answer time as short as the serial handshakes allow; a newer open never overtakes an
//! older one, so nothing starves.
//!
//! **Grants are pushed.** A turn is handed to the waiting stream through a channel and its
//! [`LAUNCH_TURN_MAX`] runs from that moment, whether or not the stream's loop is polling (one in
//! its teardown is not): a stream that stops waiting hands a turn it was sent straight back.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::sync::oneshot;
use wire::ipc::TurnRequest;

/// The longest one launch keeps its turn on a host: a launch normally has it for tens of
/// milliseconds, but one whose host refuses launches keeps its streamer retrying for seconds, and
/// the launches behind it should not wait for that.
const LAUNCH_TURN_MAX: Duration = Duration::from_secs(1);

/// A host by (address, HTTP port).
type HostKey = (String, u16);

/// One granted turn; a ticket that is no longer the host's holder releases nothing.
type Ticket = u64;

/// The turns of every host this gateway launches on.
#[derive(Debug, Default, Clone)]
pub struct LaunchGates {
    inner: Arc<Mutex<Hosts>>,
}

#[derive(Debug, Default)]
struct Hosts {
    /// Hosts are few; an idle host's entry (a few bytes) stays.
    queues: HashMap<HostKey, HostQueue>,
    /// Tickets and waiter ids, unique for the gateway's life.
    next_id: u64,
}

#[derive(Debug, Default)]
struct HostQueue {
    holder: Option<Ticket>,
    /// By (the browser's open time, a tie-breaking id).
    waiting: BTreeMap<(Instant, u64), oneshot::Sender<Ticket>>,
}

impl LaunchGates {
    fn lock(&self) -> MutexGuard<'_, Hosts> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Joins the queue of the host `key` for a launch whose browser opened at `opened`; the
    /// ticket arrives on the receiver when it is this launch's turn.
    fn enqueue(&self, key: &HostKey, opened: Instant) -> (u64, oneshot::Receiver<Ticket>) {
        let (tx, rx) = oneshot::channel();
        let mut hosts = self.lock();
        hosts.next_id += 1;
        let id = hosts.next_id;
        hosts
            .queues
            .entry(key.clone())
            .or_default()
            .waiting
            .insert((opened, id), tx);
        drop(hosts);
        self.grant_next(key);
        (id, rx)
    }

    /// Leaves the queue (a wait that ended before its grant).
    fn dequeue(&self, key: &HostKey, opened: Instant, id: u64) {
        if let Some(q) = self.lock().queues.get_mut(key) {
            q.waiting.remove(&(opened, id));
        }
    }

    /// Ends the turn `ticket` if it is still the host's, and gives the next one.
    fn release(&self, key: &HostKey, ticket: Ticket) {
        {
            let mut hosts = self.lock();
            let Some(q) = hosts.queues.get_mut(key) else {
                return;
            };
            if q.holder != Some(ticket) {
                return;
            }
            q.holder = None;
        }
        self.grant_next(key);
    }

    /// A free host's turn goes to its oldest waiting launch that still waits, with the
    /// [`LAUNCH_TURN_MAX`] clock started now.
    fn grant_next(&self, key: &HostKey) {
        let mut hosts = self.lock();
        hosts.next_id += 1;
        let ticket = hosts.next_id;
        let Some(q) = hosts.queues.get_mut(key) else {
            return;
        };
        if q.holder.is_some() {
            return;
        }
        while let Some((_, waiter)) = q.waiting.pop_first() {
            if waiter.send(ticket).is_ok() {
                q.holder = Some(ticket);
                let (gates, key) = (self.clone(), key.clone());
                tokio::spawn(async move {
                    tokio::time::sleep(LAUNCH_TURN_MAX).await;
                    if gates.holds(&key, ticket) {
                        tracing::debug!(
                            "a launch kept its turn on the host for {LAUNCH_TURN_MAX:?}; the next one goes"
                        );
                        gates.release(&key, ticket);
                    }
                });
                return;
            }
        }
    }

    fn holds(&self, key: &HostKey, ticket: Ticket) -> bool {
        self.lock()
            .queues
            .get(key)
            .is_some_and(|q| q.holder == Some(ticket))
    }
}

/// A stream's side of the turn protocol: what its streamer asked for, the wait for the turn, and
/// the turn while held. The stream's loop polls [`LaunchTurn::granted`] and tells the streamer
/// (`ToStreamer::LaunchTurn`); dropping it ends a wait or a turn.
pub(crate) struct LaunchTurn {
    gates: LaunchGates,
    host: HostKey,
    /// When the browser opened this stream: its place in the host's queue.
    opened: Instant,
    waiting: Option<Waiting>,
    held: Option<Ticket>,
}

/// A place in the host's queue.
struct Waiting {
    id: u64,
    ticket: oneshot::Receiver<Ticket>,
}

impl std::fmt::Debug for LaunchTurn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LaunchTurn")
            .field("host", &format_args!("{}:{}", self.host.0, self.host.1))
            .field("waiting", &self.waiting.is_some())
            .field("held", &self.held.is_some())
            .finish()
    }
}

impl LaunchTurn {
    /// No turn asked for yet on the host at `address`:`port`, for a stream whose browser opened
    /// at `opened`.
    pub(crate) fn new(gates: LaunchGates, address: &str, port: u16, opened: Instant) -> Self {
        LaunchTurn {
            gates,
            host: (address.to_string(), port),
            opened,
            waiting: None,
            held: None,
        }
    }

    /// The streamer's `LaunchTurn` message. Asking again while holding the turn queues anew
    /// (a streamer only does that after giving it back, so this is a misbehaving one).
    pub(crate) fn on_request(&mut self, request: TurnRequest) {
        self.release();
        if request == TurnRequest::Ask {
            let (id, ticket) = self.gates.enqueue(&self.host, self.opened);
            self.waiting = Some(Waiting { id, ticket });
        }
    }

    /// Resolves when an asked-for turn is given (then held until [`LaunchTurn::release`]); never
    /// while nothing was asked. Cancel-safe: the wait survives a `select!` that drops this.
    pub(crate) async fn granted(&mut self) {
        let Some(waiting) = self.waiting.as_mut() else {
            return std::future::pending().await;
        };
        // The sender goes only with a grant, or with the gates (never dropped while streams run).
        let Ok(ticket) = (&mut waiting.ticket).await else {
            return std::future::pending().await;
        };
        self.waiting = None;
        self.held = Some(ticket);
    }

    /// The stream's loop no longer polls [`LaunchTurn::granted`] (its teardown runs): a place in
    /// the queue is given up, and a turn sent meanwhile goes straight to the next launch. A turn
    /// the streamer was told of stays held (its `/launch` may be under way) until `release`.
    pub(crate) fn stop_waiting(&mut self) {
        let Some(mut waiting) = self.waiting.take() else {
            return;
        };
        waiting.ticket.close();
        match waiting.ticket.try_recv() {
            Ok(ticket) => self.gates.release(&self.host, ticket),
            Err(_) => self.gates.dequeue(&self.host, self.opened, waiting.id),
        }
    }

    /// `Started`, a give-back, or the stream's end: the next launch on the host may go.
    pub(crate) fn release(&mut self) {
        self.stop_waiting();
        if let Some(ticket) = self.held.take() {
            self.gates.release(&self.host, ticket);
        }
    }
}

impl Drop for LaunchTurn {
    fn drop(&mut self) {
        self.release();
    }
}

#[cfg(test)]
mod tests;
