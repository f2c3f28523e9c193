//! Per-stream live data for the admin view: streamer pid and the latest rates.
//!
//! Why a separate in-process table and not fields of the registry entry: the registry
//! ([`crate::sessions::SessionRegistry`]) holds what identifies and controls a stream — key, host,
//! app, mode, start time, the stop signal — and is meant to become shareable (a Redis-backed
//! implementation). A pid and once-a-second rates are meaningful only on the node that owns the
//! streamer (a pid is per machine, `/proc` is local) and would turn a shared registry into a
//! write-heavy stats store. So the registry stays the source of truth for *which* streams exist
//! (the admin list is the registry's list), and this table only decorates each entry, keyed by
//! the registry's `entry_id` (unique per registration, so a superseding entry of the same key
//! never reads its predecessor's row). A row lives exactly as long as its [`LiveSlot`], owned by
//! the stream's task next to its registry guard.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, Weak};

use serde::Serialize;
use wire::ipc::Stats;

use crate::metrics::Relayed;

/// What the admin view shows of a live stream beyond its registry entry.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct LiveStats {
    /// The streamer's process id (None before spawn).
    pub pid: Option<u32>,
    /// Frames per second received from the host.
    pub fps_in: f64,
    /// Frames per second delivered toward the browser.
    pub fps_out: f64,
    /// Video bitrate, kbit/s.
    pub bitrate_kbps: f64,
    /// Age of the oldest video frame waiting to be sent to the browser, ms.
    pub send_queue_ms: u64,
    /// Frames dropped on purpose (streamer and gateway queues), cumulative.
    pub dropped_frames: u64,
    /// IDR requests sent to the host, cumulative.
    pub idr_requests: u64,
    /// Round trip to the host, ms (0 = unknown).
    pub rtt_ms: u32,
    /// Video frames delivered, cumulative.
    pub video_frames: u64,
    /// Connection to first keyframe, ms.
    pub first_frame_ms: Option<u64>,
    /// Stats samples received.
    pub samples: u64,
    /// Restarts of the host stream at another quality rung (adaptive quality), cumulative.
    pub restreams: u64,
    /// The last restart's gap, ms (the old stream's last frame to the new one's keyframe).
    pub restream_gap_ms: u64,
}

/// The gateway's side of a sample (WebSocket mode: its own browser-bound queue).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GatewaySide {
    /// Video frames the gateway has actually handed to the socket writer, cumulative (None when
    /// the streamer delivers media itself, WebRTC).
    pub frames_out: Option<u64>,
    /// Frames the gateway's queue dropped, cumulative.
    pub dropped: u64,
    /// Age of its oldest queued video frame, ms.
    pub queue_ms: u64,
}

/// Rates from consecutive cumulative samples (sans-IO: the caller feeds samples).
#[derive(Debug, Clone, Default)]
pub struct RateTracker {
    last: Option<(Stats, GatewaySide)>,
}

impl RateTracker {
    /// Folds one sample into `into`; returns the counter increments since the last sample.
    pub fn sample(&mut self, st: &Stats, gw: GatewaySide, into: &mut LiveStats) -> Relayed {
        let prev = self.last.replace((*st, gw));
        let (p, pg) = prev.unwrap_or_default();
        // A streamer restart would make counters go back: treat that as a fresh start.
        let d = |now: u64, before: u64| now.saturating_sub(before);
        let dt_ms = d(st.uptime_ms, p.uptime_ms);
        if dt_ms > 0 && prev.is_some() {
            let per_s = 1000.0 / dt_ms as f64;
            let in_now = st.video_frames + st.video_frames_dropped;
            let in_before = p.video_frames + p.video_frames_dropped;
            into.fps_in = d(in_now, in_before) as f64 * per_s;
            into.fps_out = match (gw.frames_out, pg.frames_out) {
                (Some(now), Some(before)) => d(now, before) as f64 * per_s,
                _ => d(st.video_frames, p.video_frames) as f64 * per_s,
            };
            into.bitrate_kbps = d(st.video_bytes, p.video_bytes) as f64 * 8.0 * per_s / 1000.0;
        }
        into.send_queue_ms = gw.queue_ms.max(st.send_queue_ms);
        into.dropped_frames = st.video_frames_dropped + gw.dropped;
        into.idr_requests = st.idr_requests;
        into.rtt_ms = st.host_rtt_ms;
        into.video_frames = st.video_frames;
        into.restreams = st.restreams;
        into.restream_gap_ms = st.restream_gap_ms;
        into.samples += 1;
        Relayed {
            video_frames: d(st.video_frames, p.video_frames),
            video_bytes: d(st.video_bytes, p.video_bytes),
            audio_bytes: d(st.audio_bytes, p.audio_bytes),
            dropped: d(
                st.video_frames_dropped + gw.dropped,
                p.video_frames_dropped + pg.dropped,
            ),
            idr_requests: d(st.idr_requests, p.idr_requests),
        }
    }
}

type Rows = Mutex<HashMap<u64, LiveStats>>;

/// The table of live rows, by registry `entry_id`.
#[derive(Debug, Default, Clone)]
pub struct LiveTable {
    rows: Arc<Rows>,
}

fn lock(rows: &Rows) -> MutexGuard<'_, HashMap<u64, LiveStats>> {
    // Single-row updates: a poisoned map is still consistent.
    rows.lock().unwrap_or_else(|p| p.into_inner())
}

impl LiveTable {
    /// A row for `entry_id`, removed when the slot is dropped.
    pub fn insert(&self, entry_id: u64) -> LiveSlot {
        lock(&self.rows).insert(entry_id, LiveStats::default());
        LiveSlot {
            rows: Arc::downgrade(&self.rows),
            entry_id,
            tracker: RateTracker::default(),
        }
    }

    /// The row of `entry_id`, if its stream is live on this node.
    pub fn get(&self, entry_id: u64) -> Option<LiveStats> {
        lock(&self.rows).get(&entry_id).cloned()
    }

    /// Number of rows.
    pub fn len(&self) -> usize {
        lock(&self.rows).len()
    }

    /// No rows.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// One stream's row; owned by the stream's task.
#[derive(Debug)]
pub struct LiveSlot {
    rows: Weak<Rows>,
    entry_id: u64,
    tracker: RateTracker,
}

impl LiveSlot {
    fn update(&self, f: impl FnOnce(&mut LiveStats)) {
        if let Some(rows) = self.rows.upgrade() {
            if let Some(row) = lock(&rows).get_mut(&self.entry_id) {
                f(row);
            }
        }
    }

    /// The streamer's pid.
    pub fn set_pid(&self, pid: Option<u32>) {
        self.update(|r| r.pid = pid);
    }

    /// The first keyframe reached the browser `ms` after the connection opened.
    pub fn set_first_frame(&self, ms: u64) {
        self.update(|r| r.first_frame_ms = Some(ms));
    }

    /// A `Stats` sample; returns the metric increments.
    pub fn sample(&mut self, st: &Stats, gw: GatewaySide) -> Relayed {
        let mut relayed = Relayed::default();
        let tracker = &mut self.tracker;
        if let Some(rows) = self.rows.upgrade() {
            if let Some(row) = lock(&rows).get_mut(&self.entry_id) {
                relayed = tracker.sample(st, gw, row);
            }
        }
        relayed
    }
}

impl Drop for LiveSlot {
    fn drop(&mut self) {
        if let Some(rows) = self.rows.upgrade() {
            lock(&rows).remove(&self.entry_id);
        }
    }
}

/// Threads and resident memory of a process, from `/proc/<pid>/status`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ProcUsage {
    /// `Threads:`.
    pub threads: u32,
    /// `VmRSS:` in KiB.
    pub rss_kb: u64,
}

/// Reads `/proc/<pid>/status`; None if the process is gone or this is not Linux.
pub fn proc_usage(pid: u32) -> Option<ProcUsage> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    Some(parse_status(&text))
}

fn parse_status(text: &str) -> ProcUsage {
    let mut u = ProcUsage::default();
    for line in text.lines() {
        let value = |rest: &str| {
            rest.split_whitespace()
                .next()
                .and_then(|v| v.parse::<u64>().ok())
        };
        if let Some(rest) = line.strip_prefix("Threads:") {
            u.threads = value(rest).unwrap_or(0) as u32;
        } else if let Some(rest) = line.strip_prefix("VmRSS:") {
            u.rss_kb = value(rest).unwrap_or(0);
        }
    }
    u
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_from_deltas() {
        let table = LiveTable::default();
        let mut slot = table.insert(7);
        let st = |uptime_ms, frames, bytes| Stats {
            uptime_ms,
            video_frames: frames,
            video_bytes: bytes,
            ..Stats::default()
        };
        let gw = |out| GatewaySide {
            frames_out: Some(out),
            dropped: 1,
            queue_ms: 4,
        };
        let r = slot.sample(&st(1000, 60, 100_000), gw(58));
        assert_eq!(r.video_frames, 60);
        let r = slot.sample(&st(2000, 120, 350_000), gw(116));
        assert_eq!(r.video_frames, 60);
        assert_eq!(r.video_bytes, 250_000);
        assert_eq!(r.dropped, 0);
        let row = table.get(7).unwrap();
        assert_eq!(row.fps_in, 60.0);
        assert_eq!(row.fps_out, 58.0);
        assert_eq!(row.bitrate_kbps, 2000.0);
        assert_eq!(row.send_queue_ms, 4);
        assert_eq!(row.dropped_frames, 1);
        assert_eq!(row.samples, 2);
        slot.set_pid(Some(42));
        assert_eq!(table.get(7).unwrap().pid, Some(42));
        drop(slot);
        assert!(table.is_empty());
    }

    #[test]
    fn proc_status_fields() {
        let u = parse_status("Name:\tstreamer\nVmRSS:\t  12345 kB\nThreads:\t5\n");
        assert_eq!(
            u,
            ProcUsage {
                threads: 5,
                rss_kb: 12345
            }
        );
        let me = proc_usage(std::process::id()).unwrap();
        assert!(me.threads >= 1 && me.rss_kb > 0);
    }
}
