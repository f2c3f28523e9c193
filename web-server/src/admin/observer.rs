//! The streaming path's one handle on the admin view and the metrics: a stream's owner creates a
//! [`StreamObserver`] when its streamer is spawned and feeds it what it sees (video handed to the
//! browser queue, the first keyframe, each IPC `Stats`, the end). Every mode's driver (WebSocket,
//! WebRTC) uses the same few calls, so the dashboard and `/metrics` read the same state the stream
//! updates.

use std::sync::Arc;
use std::time::Duration;

use wire::backpressure::QueueStats;
use wire::ipc::Stats;

use super::live::{GatewaySide, LiveSlot};
use crate::metrics::{EndLabel, Metrics};
use crate::sessions::SessionGuard;
use crate::state::AppState;

/// Observes one launched stream; dropping it removes the stream's live row.
#[derive(Debug)]
pub struct StreamObserver {
    slot: LiveSlot,
    metrics: Arc<Metrics>,
    /// Video frames handed to the gateway's browser-bound queue (WebSocket mode).
    frames_pushed: u64,
    ended: bool,
}

impl StreamObserver {
    /// The streamer of `guard`'s entry was spawned with `pid`: a live row, one start counted.
    pub fn launched(state: &AppState, guard: &SessionGuard, pid: Option<u32>) -> Self {
        let slot = state.live.insert(guard.info().entry_id);
        slot.set_pid(pid);
        state.metrics.stream_started(&guard.info().meta.mode);
        StreamObserver {
            slot,
            metrics: Arc::clone(&state.metrics),
            frames_pushed: 0,
            ended: false,
        }
    }

    /// A video frame was handed to the browser-bound queue (WebSocket mode).
    pub fn video_queued(&mut self) {
        self.frames_pushed += 1;
    }

    /// The first keyframe went to the browser `since_open` after the connection opened.
    pub fn first_keyframe(&self, since_open: Duration) {
        self.slot.set_first_frame(since_open.as_millis() as u64);
        self.metrics.first_frame(since_open);
    }

    /// One IPC `Stats`; `queue` is the gateway's browser-bound queue at `now` (WebSocket mode;
    /// `None` when the streamer sends media itself).
    pub fn stats(&mut self, st: &Stats, queue: Option<QueueStats>) {
        let gw = match queue {
            Some(q) => GatewaySide {
                frames_out: Some(
                    self.frames_pushed
                        .saturating_sub(q.frames_dropped)
                        .saturating_sub(q.video_frames as u64),
                ),
                dropped: q.frames_dropped,
                queue_ms: q.video_depth_ms,
            },
            None => GatewaySide::default(),
        };
        let relayed = self.slot.sample(st, gw);
        self.metrics.relayed(relayed);
        self.metrics
            .queue_delay_ms(gw.queue_ms.max(st.send_queue_ms));
    }

    /// The quality controller asked for the stream at another rung.
    pub fn restream(&self) {
        self.metrics.restreamed();
    }

    /// The stream ended (counted once).
    pub fn ended(&mut self, label: EndLabel) {
        if !std::mem::replace(&mut self.ended, true) {
            self.metrics.stream_ended(label);
        }
    }
}
