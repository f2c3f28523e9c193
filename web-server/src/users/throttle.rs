//! Failed sign-ins are throttled: after [`MAX_FAILURES`] failures within [`WINDOW`] from one
//! address, or against one user name, further attempts are refused (429 with `Retry-After`)
//! until the oldest failure leaves the window. Per address stops one client guessing many names;
//! per name stops many addresses guessing one password. A success clears the name's count.
//! Kept per node, in memory: a cluster of N nodes allows N times the attempts, still a few per
//! minute.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Failures allowed within [`WINDOW`] per address and per name.
pub const MAX_FAILURES: usize = 5;
/// How long a failure counts.
pub const WINDOW: Duration = Duration::from_secs(300);
/// Addresses and names tracked at most; beyond it the oldest quiet ones go first.
const MAX_KEYS: usize = 10_000;

/// The failures of recent sign-ins.
#[derive(Debug, Default)]
pub struct SignInThrottle {
    failures: Mutex<HashMap<String, VecDeque<Instant>>>,
}

impl SignInThrottle {
    /// `Err(wait)` if the address or the name has used up its failures at `now`.
    pub fn check(&self, address: &str, name: &str, now: Instant) -> Result<(), Duration> {
        let mut f = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        let mut wait = Duration::ZERO;
        for key in [addr_key(address), name_key(name)] {
            if let Some(times) = f.get_mut(&key) {
                while times
                    .front()
                    .is_some_and(|t| now.duration_since(*t) >= WINDOW)
                {
                    times.pop_front();
                }
                if times.len() >= MAX_FAILURES {
                    if let Some(oldest) = times.front() {
                        wait = wait.max(WINDOW.saturating_sub(now.duration_since(*oldest)));
                    }
                }
            }
        }
        if wait.is_zero() {
            Ok(())
        } else {
            Err(wait.max(Duration::from_secs(1)))
        }
    }

    /// Counts a failed sign-in.
    pub fn failed(&self, address: &str, name: &str, now: Instant) {
        let mut f = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        if f.len() >= MAX_KEYS {
            f.retain(|_, times| {
                times
                    .back()
                    .is_some_and(|t| now.duration_since(*t) < WINDOW)
            });
            if f.len() >= MAX_KEYS {
                // Still full of live entries (a flood of names): forget the names, keep the
                // addresses, which are what a flood comes from.
                f.retain(|k, _| k.starts_with("addr:"));
            }
        }
        for key in [addr_key(address), name_key(name)] {
            let times = f.entry(key).or_default();
            times.push_back(now);
            if times.len() > MAX_FAILURES {
                times.pop_front();
            }
        }
    }

    /// A successful sign-in: the name's failures are forgotten (the address's stay).
    pub fn succeeded(&self, name: &str) {
        let mut f = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        f.remove(&name_key(name));
    }
}

fn addr_key(a: &str) -> String {
    format!("addr:{a}")
}

fn name_key(n: &str) -> String {
    format!("name:{n}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn five_failures_lock_the_address_and_the_name_until_the_window_passes() {
        let t = SignInThrottle::default();
        let t0 = Instant::now();
        for i in 0..MAX_FAILURES {
            assert!(t.check("10.0.0.1", "alice", t0).is_ok(), "attempt {i}");
            t.failed("10.0.0.1", "alice", t0 + Duration::from_secs(i as u64));
        }
        let now = t0 + Duration::from_secs(10);
        let wait = t.check("10.0.0.1", "bob", now).unwrap_err();
        assert!(
            wait > Duration::from_secs(280) && wait <= WINDOW,
            "{wait:?}"
        );
        // Another address guessing the same name is refused too.
        assert!(t.check("10.0.0.2", "alice", now).is_err());
        // Another address and name are not.
        assert!(t.check("10.0.0.2", "bob", now).is_ok());
        // After the window, both may try again.
        let later = t0 + WINDOW + Duration::from_secs(MAX_FAILURES as u64);
        assert!(t.check("10.0.0.1", "alice", later).is_ok());
    }

    #[test]
    fn a_success_clears_the_name_and_the_table_stays_bounded() {
        let t = SignInThrottle::default();
        let t0 = Instant::now();
        for i in 0..MAX_FAILURES {
            t.failed(&format!("10.0.0.{i}"), "alice", t0);
        }
        assert!(t.check("10.9.9.9", "alice", t0).is_err());
        t.succeeded("alice");
        assert!(t.check("10.9.9.9", "alice", t0).is_ok());
        for i in 0..(MAX_KEYS + 50) {
            t.failed("10.1.1.1", &format!("name{i}"), t0);
        }
        let n = t.failures.lock().unwrap().len();
        assert!(n <= MAX_KEYS, "{n} keys kept");
        assert!(
            t.check("10.1.1.1", "someone", t0).is_err(),
            "the flooding address was forgotten"
        );
    }
}
