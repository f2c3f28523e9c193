//! What a host keeps of its sessions for tests and the API: the decoded input log and (fork
//! mode) the microphone sinks, and the [`HostHandle`] queries that read them.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use gamestream::input::InputEvent;
use tokio::sync::Notify;

use super::{lock, HostHandle, InputRecord};
use crate::producer::InputRecorder;

/// Sessions whose input logs are kept after they end.
const ENDED_INPUT_LOGS: usize = 64;

/// Per-session logs, plus the order sessions first logged in (to forget the oldest).
type InputLogs = (HashMap<u64, VecDeque<InputRecord>>, VecDeque<u64>);

pub(super) struct InputSink {
    capacity: usize,
    logs: Mutex<InputLogs>,
    changed: Notify,
}

impl InputSink {
    pub(super) fn new(capacity: usize) -> Self {
        Self {
            capacity,
            logs: Mutex::new((HashMap::new(), VecDeque::new())),
            changed: Notify::new(),
        }
    }
}

impl InputRecorder for InputSink {
    fn record(&self, session_id: u64, event: InputEvent) {
        {
            let mut guard = lock(&self.logs);
            let (logs, order) = &mut *guard;
            if !logs.contains_key(&session_id) {
                order.push_back(session_id);
                if order.len() > ENDED_INPUT_LOGS {
                    if let Some(old) = order.pop_front() {
                        logs.remove(&old);
                    }
                }
            }
            let log = logs.entry(session_id).or_default();
            let seq = log.back().map_or(1, |r| r.seq + 1);
            if log.len() >= self.capacity.max(1) {
                log.pop_front();
            }
            log.push_back(InputRecord {
                seq,
                session_id,
                at: Instant::now(),
                event,
            });
        }
        self.changed.notify_waiters();
    }
}

impl HostHandle {
    /// What a session's microphone delivered (fork mode, [`DemoHostConfig::microphone`]); `None`
    /// for a session that set up no microphone. Kept after the session ends (the last few).
    pub fn mic(&self, session_id: u64) -> Option<crate::mic::MicReport> {
        self.inner.mics.report(session_id)
    }

    /// Input events decoded for a session (oldest first; bounded).
    pub fn inputs(&self, session_id: u64) -> Vec<InputRecord> {
        lock(&self.inner.inputs.logs)
            .0
            .get(&session_id)
            .map(|l| l.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// Waits until a session's input log satisfies `pred` (true) or `timeout` passes (false).
    pub async fn wait_for_inputs(
        &self,
        session_id: u64,
        timeout: Duration,
        pred: impl Fn(&[InputRecord]) -> bool,
    ) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let changed = self.inner.inputs.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            if pred(&self.inputs(session_id)) {
                return true;
            }
            if tokio::time::timeout_at(deadline, changed).await.is_err() {
                return pred(&self.inputs(session_id));
            }
        }
    }
}
