//! The session ids the Wolf API shows.
//!
//! Wolf names a session by its client's id (`state::get_client_id`, a hash of the paired
//! certificate): `session_id` and `client_id` are the same number, and a client that stops and
//! launches again gets the same session id back. The host half numbers its sessions with a counter
//! instead, which keeps its own bookkeeping safe when a client relaunches while its old session's
//! control registration is still draining. So the API translates at its edge, and a gateway sees
//! the ids a real Wolf would give it. Ended sessions are remembered (the last
//! [`REMEMBERED`]), so their input log and microphone report stay reachable by the Wolf id.

use std::collections::{HashMap, VecDeque};

use super::{lock, HostHandle};

/// Ended sessions whose Wolf id is remembered (as many as the input logs kept).
const REMEMBERED: usize = 64;

/// Host-half session ids and their clients' ids, newest last.
#[derive(Default)]
pub(super) struct WolfIds {
    client_of: HashMap<u64, u64>,
    order: VecDeque<u64>,
}

impl WolfIds {
    /// Notes a new session of `client_id`.
    pub(super) fn note(&mut self, session_id: u64, client_id: u64) {
        if self.client_of.insert(session_id, client_id).is_none() {
            self.order.push_back(session_id);
        }
        while self.order.len() > REMEMBERED {
            if let Some(old) = self.order.pop_front() {
                self.client_of.remove(&old);
            }
        }
    }

    /// The Wolf id of a host-half session (its client's id), if it is remembered.
    pub(super) fn wolf_id(&self, session_id: u64) -> Option<u64> {
        self.client_of.get(&session_id).copied()
    }

    /// The newest host-half session whose Wolf id is `wolf_id`, live or ended.
    pub(super) fn newest(&self, wolf_id: u64) -> Option<u64> {
        self.order
            .iter()
            .rev()
            .copied()
            .find(|s| self.client_of.get(s) == Some(&wolf_id))
    }
}

impl super::State {
    /// See [`HostHandle::wolf_session_id`].
    pub(super) fn wolf_id_of(&self, session_id: u64) -> u64 {
        self.wolf_ids.wolf_id(session_id).unwrap_or(session_id)
    }
}

impl HostHandle {
    /// The id the Wolf API shows for host-half session `session_id`: its client's id (the session
    /// id itself if the session is long forgotten).
    pub fn wolf_session_id(&self, session_id: u64) -> u64 {
        lock(&self.inner.state).wolf_id_of(session_id)
    }

    /// The live host-half session the Wolf API calls `wolf_id` (what `sessions/stop` and the lobby
    /// calls act on).
    pub fn live_session(&self, wolf_id: u64) -> Option<u64> {
        lock(&self.inner.state)
            .sessions
            .values()
            .find(|s| s.info.client_id == wolf_id)
            .map(|s| s.info.session_id)
    }

    /// The newest host-half session, live or ended, the Wolf API calls `wolf_id` (whose input log
    /// and microphone report it serves).
    pub fn newest_session(&self, wolf_id: u64) -> Option<u64> {
        lock(&self.inner.state).wolf_ids.newest(wolf_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_relaunch_keeps_the_wolf_id_and_the_newest_session_wins() {
        let mut ids = WolfIds::default();
        ids.note(1, 77);
        ids.note(2, 88);
        ids.note(3, 77);
        assert_eq!(ids.wolf_id(1), Some(77));
        assert_eq!(ids.wolf_id(3), Some(77));
        assert_eq!(ids.newest(77), Some(3));
        assert_eq!(ids.newest(88), Some(2));
        assert_eq!(ids.newest(99), None);
    }

    #[test]
    fn only_the_newest_sessions_are_remembered() {
        let mut ids = WolfIds::default();
        for s in 0..(REMEMBERED as u64 + 10) {
            ids.note(s, 1000 + s);
        }
        assert_eq!(ids.wolf_id(0), None);
        assert_eq!(ids.newest(1000), None);
        let last = REMEMBERED as u64 + 9;
        assert_eq!(ids.wolf_id(last), Some(1000 + last));
        assert_eq!(ids.client_of.len(), REMEMBERED);
    }
}
