//! Launches on one host take turns.
//!
//! Wolf (and the Wolf-strict demo host, embedded or not) finds the session of a plain RTSP request
//! by the client's IP address alone, and every stream of a gateway comes from the gateway's
//! address: two launches whose handshakes overlap on one host get each other's session (the second
//! ANNOUNCE fails with 455, "method not valid in this state", or a control stream lands on the
//! other session). The chaos suite (`tests/chaos.rs`) hit this with 20 browsers opening at once.
//! So a launch holds its host's turn from the streamer's spawn until it reports `Started` (its
//! `/launch`, RTSP and ENet handshakes done), ends, or has held it for [`LAUNCH_TURN_MAX`]. Turns
//! are given in arrival order. The cost is a queue when many browsers open at once.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{oneshot, Semaphore};

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
