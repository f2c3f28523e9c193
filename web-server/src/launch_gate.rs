//! Launches on one host take turns.
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
//! has held it for [`LAUNCH_TURN_MAX`]. Turns are given in arrival order. The spawn, the process
//! start and the waits between retries are outside the turn, so a queue of browsers opening at
//! once waits only for the handshakes that must not overlap.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{oneshot, Semaphore};
use wire::ipc::TurnRequest;

/// The longest one launch keeps its turn on a host: a launch normally has it for tens of
/// milliseconds, but one whose host refuses launches keeps its streamer retrying for seconds, and
/// the launches behind it should not wait for that.
const LAUNCH_TURN_MAX: Duration = Duration::from_secs(1);

/// The turns of every host this gateway launches on, by (address, HTTP port).
#[derive(Debug, Default)]
pub struct LaunchGates {
    /// Hosts are few; a removed host's semaphore (a few bytes) stays.
    hosts: Mutex<HashMap<(String, u16), Arc<Semaphore>>>,
}

impl LaunchGates {
    /// Waits for the turn on the host at `address`:`port`.
    pub(crate) async fn acquire(&self, address: &str, port: u16) -> LaunchGate {
        let gate = {
            let mut hosts = self.hosts.lock().unwrap_or_else(|p| p.into_inner());
            Arc::clone(
                hosts
                    .entry((address.to_string(), port))
                    .or_insert_with(|| Arc::new(Semaphore::new(1))),
            )
        };
        let Ok(permit) = gate.acquire_owned().await else {
            // Never closed; without a semaphore there is no turn to wait for.
            return LaunchGate(None);
        };
        // The turn ends when the launch says so (or drops its gate), or after LAUNCH_TURN_MAX.
        let (done, ended) = oneshot::channel();
        tokio::spawn(async move {
            if tokio::time::timeout(LAUNCH_TURN_MAX, ended).await.is_err() {
                tracing::debug!(
                    "a launch kept its turn on the host for {LAUNCH_TURN_MAX:?}; the next one goes"
                );
            }
            drop(permit);
        });
        LaunchGate(Some(done))
    }
}

/// One launch's turn on its host ([`LaunchGates::acquire`]); dropping it ends the turn too.
#[derive(Debug)]
pub(crate) struct LaunchGate(Option<oneshot::Sender<()>>);

impl LaunchGate {
    /// The streamer reported `Started` (or the stream ends): the next launch on the host may go.
    pub(crate) fn open(&mut self) {
        if let Some(done) = self.0.take() {
            let _ = done.send(());
        }
    }
}

/// A stream's side of the turn protocol: what its streamer asked for, the wait for the turn, and
/// the turn while held. The stream's loop polls [`LaunchTurn::granted`] and tells the streamer
/// (`ToStreamer::LaunchTurn`); dropping it ends a wait or a turn.
pub(crate) struct LaunchTurn {
    gates: Arc<LaunchGates>,
    address: String,
    port: u16,
    waiting: Option<Pin<Box<dyn Future<Output = LaunchGate> + Send>>>,
    held: Option<LaunchGate>,
}

impl std::fmt::Debug for LaunchTurn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LaunchTurn")
            .field("host", &format_args!("{}:{}", self.address, self.port))
            .field("waiting", &self.waiting.is_some())
            .field("held", &self.held.is_some())
            .finish()
    }
}

impl LaunchTurn {
    /// No turn asked for yet on the host at `address`:`port`.
    pub(crate) fn new(gates: Arc<LaunchGates>, address: &str, port: u16) -> Self {
        LaunchTurn {
            gates,
            address: address.to_string(),
            port,
            waiting: None,
            held: None,
        }
    }

    /// The streamer's `LaunchTurn` message. Asking again while holding the turn queues anew
    /// (a streamer only does that after giving it back, so this is a misbehaving one).
    pub(crate) fn on_request(&mut self, request: TurnRequest) {
        self.release();
        if request == TurnRequest::Ask {
            let gates = Arc::clone(&self.gates);
            let (address, port) = (self.address.clone(), self.port);
            self.waiting = Some(Box::pin(async move { gates.acquire(&address, port).await }));
        }
    }

    /// Resolves when an asked-for turn is given (then held until [`LaunchTurn::release`]); never
    /// while nothing was asked. Cancel-safe: the wait survives a `select!` that drops this.
    pub(crate) async fn granted(&mut self) {
        let Some(waiting) = self.waiting.as_mut() else {
            return std::future::pending().await;
        };
        let gate = waiting.await;
        self.waiting = None;
        self.held = Some(gate);
    }

    /// `Started`, a give-back, or the stream's end: the next launch on the host may go.
    pub(crate) fn release(&mut self) {
        self.waiting = None;
        if let Some(mut gate) = self.held.take() {
            gate.open();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn launches_on_one_host_take_turns_and_other_hosts_do_not_wait() {
        let gates = LaunchGates::default();
        let mut first = gates.acquire("10.0.0.1", 47989).await;
        // Another host is not held up.
        let other =
            tokio::time::timeout(Duration::from_millis(200), gates.acquire("10.0.0.2", 47989))
                .await;
        assert!(other.is_ok(), "another host waited for this host's turn");
        // The same host waits until the first launch opens its gate.
        let second = gates.acquire("10.0.0.1", 47989);
        tokio::pin!(second);
        assert!(
            tokio::time::timeout(Duration::from_millis(100), &mut second)
                .await
                .is_err(),
            "two launches on one host at once"
        );
        first.open();
        assert!(
            tokio::time::timeout(Duration::from_millis(500), second)
                .await
                .is_ok(),
            "the turn did not pass on after Started"
        );
    }

    #[tokio::test]
    async fn a_stream_waits_only_while_it_asks_and_gives_back_on_refusal() {
        let gates = Arc::new(LaunchGates::default());
        let mut a = LaunchTurn::new(Arc::clone(&gates), "10.0.0.1", 47989);
        let mut b = LaunchTurn::new(Arc::clone(&gates), "10.0.0.1", 47989);
        let soon = Duration::from_millis(100);
        // Nothing asked: nothing is granted.
        assert!(tokio::time::timeout(soon, a.granted()).await.is_err());
        a.on_request(TurnRequest::Ask);
        tokio::time::timeout(soon, a.granted())
            .await
            .expect("a free host's turn was not given");
        // b waits while a holds the turn; a wait survives being dropped by a select.
        b.on_request(TurnRequest::Ask);
        assert!(tokio::time::timeout(soon, b.granted()).await.is_err());
        assert!(tokio::time::timeout(soon, b.granted()).await.is_err());
        // a's launch is refused: it gives the turn back and b goes while a waits to retry.
        a.on_request(TurnRequest::GiveBack);
        tokio::time::timeout(soon, b.granted())
            .await
            .expect("a given-back turn did not pass on");
        a.on_request(TurnRequest::Ask);
        assert!(tokio::time::timeout(soon, a.granted()).await.is_err());
        // b's stream started: a's retry goes.
        b.release();
        tokio::time::timeout(soon, a.granted())
            .await
            .expect("the turn did not pass on at Started");
        // A stream that ends while waiting leaves the queue.
        let mut c = LaunchTurn::new(Arc::clone(&gates), "10.0.0.1", 47989);
        c.on_request(TurnRequest::Ask);
        assert!(tokio::time::timeout(soon, c.granted()).await.is_err());
        drop(c);
        drop(a);
        let mut d = LaunchTurn::new(gates, "10.0.0.1", 47989);
        d.on_request(TurnRequest::Ask);
        tokio::time::timeout(soon, d.granted())
            .await
            .expect("an ended wait or a dropped turn kept the host");
    }

    #[tokio::test]
    async fn a_turn_held_too_long_passes_on() {
        let gates = LaunchGates::default();
        let _stuck = gates.acquire("10.0.0.1", 47989).await;
        let t = std::time::Instant::now();
        let next =
            tokio::time::timeout(LAUNCH_TURN_MAX * 3, gates.acquire("10.0.0.1", 47989)).await;
        assert!(next.is_ok(), "a held turn never passed on");
        assert!(t.elapsed() >= LAUNCH_TURN_MAX, "{:?}", t.elapsed());
    }
}
