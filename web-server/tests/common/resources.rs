//! The leak check the cycle suites (WebSocket and WebRTC) end with: what the process held before
//! the cycles, and whether the host, the fds, the children and the threads came back to it.

use std::future::Future;
use std::time::{Duration, Instant};

use super::{children, eventually, fd_count, thread_count, Gateway};

/// The process's open fds, threads and child processes at one moment.
#[derive(Debug, Clone, Copy)]
pub struct Baseline {
    pub fds: usize,
    pub threads: usize,
    pub kids: usize,
}

/// Whether each resource came back to its [`Baseline`] within its bound.
#[derive(Debug)]
pub struct Settled {
    pub base: Baseline,
    pub host_clean: bool,
    pub fds_back: bool,
    pub kids_back: bool,
    pub threads_back: bool,
}

impl Baseline {
    pub fn now() -> Baseline {
        Baseline {
            fds: fd_count(),
            threads: thread_count(),
            kids: children().len(),
        }
    }

    /// Waits (bounded) for the host to hold no session (and tear none down) and for the fds,
    /// children and threads to come back to this baseline; the figures are printed before
    /// [`Settled::assert`] so a failure shows them.
    pub async fn settle(self, gw: &Gateway) -> Settled {
        let host_clean = eventually(Duration::from_secs(5), || {
            gw.host.sessions().is_empty() && gw.host.tearing_down() == 0
        })
        .await;
        let fds_back = eventually(Duration::from_secs(5), || fd_count() <= self.fds).await;
        let kids_back = eventually(Duration::from_secs(5), || children().len() <= self.kids).await;
        // tokio's blocking pool keeps idle threads for 10 s: wait for them (bounded).
        let threads_back =
            eventually(Duration::from_secs(12), || thread_count() <= self.threads).await;
        Settled {
            base: self,
            host_clean,
            fds_back,
            kids_back,
            threads_back,
        }
    }
}

impl Settled {
    /// Asserts the host, the registry, the fds, the children and the threads are all back.
    pub fn assert(&self, gw: &Gateway) {
        let Baseline { fds, threads, kids } = self.base;
        assert!(
            self.host_clean,
            "host sessions left: {:?}",
            gw.host.sessions()
        );
        assert!(gw.state.sessions.list().is_empty(), "registry not empty");
        assert!(self.fds_back, "fds {fds} → {}", fd_count());
        assert!(self.kids_back, "children {kids} → {:?}", children());
        assert!(self.threads_back, "threads {threads} → {}", thread_count());
    }
}

/// What a run of stream cycles measured.
#[derive(Debug)]
pub struct CycleRun {
    /// Taken after the warm-up, before the measured cycles.
    pub base: Baseline,
    /// The measured cycles' wall time.
    pub elapsed: Duration,
    /// The slowest and the sum of the cycles' own figures (their time to the first keyframe).
    pub worst: Duration,
    pub total: Duration,
}

/// Warms up with cycles 0 and 1 (pairing, pools, lazily created state), waits (5 s) for the host
/// to hold no session, takes the [`Baseline`] (and calls `at_baseline`, for figures of the
/// caller's own), then runs cycles 2..n+2; a cycle over 1 s is printed.
pub async fn run_cycles<F, Fut>(
    gw: &Gateway,
    n: u32,
    at_baseline: impl FnOnce(),
    mut cycle: F,
) -> CycleRun
where
    F: FnMut(u32) -> Fut,
    Fut: Future<Output = Duration>,
{
    cycle(0).await;
    cycle(1).await;
    assert!(eventually(Duration::from_secs(5), || gw.host.sessions().is_empty()).await);
    let base = Baseline::now();
    at_baseline();
    let t = Instant::now();
    let (mut worst, mut total) = (Duration::ZERO, Duration::ZERO);
    for i in 2..n + 2 {
        let took = cycle(i).await;
        if took > Duration::from_secs(1) {
            println!("cycle {i}: first keyframe after {} ms", took.as_millis());
        }
        worst = worst.max(took);
        total += took;
    }
    CycleRun {
        base,
        elapsed: t.elapsed(),
        worst,
        total,
    }
}
