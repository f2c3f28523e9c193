//! Presentation timestamps that the streamer owns (sans-IO).
//!
//! The browser needs a timestamp per frame that only ever moves forward: WebCodecs orders output by
//! it, and a WebRTC receiver closes a video frame when the RTP timestamp changes. A host's own
//! timestamps cannot be trusted for that: Wolf writes 0 into every video RTP packet, a host may
//! restart its clock, and a late packet can carry an older value. So the timestamp toward the
//! browser is built here from two inputs:
//!
//! * the frame's **arrival** at the streamer, which always advances, and
//! * the **host's delta** since the previous frame, where the host clock advances plausibly: it
//!   has no network jitter, so while it agrees with the arrival clock it is used (and gently pulled
//!   toward arrival time so the two never drift apart).
//!
//! A host that sends 0, a constant, a jump or a step back falls back to the arrival clock for that
//! frame. Every result is at least [`MediaClock::min_step`] past the previous one, so no two frames
//! share a timestamp even when they arrive in the same instant (a keyframe burst), and the unit a
//! mode needs (90 kHz RTP, 48 kHz Opus, µs) still sees distinct values.

use std::time::{Duration, Instant};

/// How far the host clock may disagree with the arrival clock before it is ignored.
const MAX_DISAGREEMENT_US: i64 = 250_000;

/// Fraction of the host/arrival disagreement corrected per frame (1/32): slow enough to keep the
/// host's jitter-free spacing, fast enough that a slowly drifting host clock stays within a few
/// frames of real time.
const SLEW_SHIFT: u32 = 5;

/// Turns (arrival time, host timestamp) pairs into strictly increasing µs timestamps.
#[derive(Debug)]
pub struct MediaClock {
    /// Host clock rate in ticks per second (90 000 for video, 1 000 for Moonlight's audio).
    rate: u64,
    /// Smallest step between two results, in µs.
    min_step: u64,
    start: Option<Instant>,
    last: Option<Last>,
}

#[derive(Debug, Clone, Copy)]
struct Last {
    host_ts: u32,
    pts_us: u64,
}

impl MediaClock {
    /// A clock for a host timestamp of `rate` ticks per second whose results are at least
    /// `min_step` apart.
    pub fn new(rate: u64, min_step: Duration) -> Self {
        MediaClock {
            rate: rate.max(1),
            min_step: (min_step.as_micros() as u64).max(1),
            start: None,
            last: None,
        }
    }

    /// Video: 90 kHz host clock; one 90 kHz tick (11.1 µs, rounded up) between frames.
    pub fn video() -> Self {
        MediaClock::new(90_000, Duration::from_micros(12))
    }

    /// Audio: Moonlight's millisecond audio timestamps; one 48 kHz sample between packets.
    pub fn audio() -> Self {
        MediaClock::new(1_000, Duration::from_micros(21))
    }

    /// The timestamp (µs since this clock's first frame) of a frame that arrived at `arrival`
    /// carrying the host timestamp `host_ts`.
    pub fn stamp(&mut self, arrival: Instant, host_ts: u32) -> u64 {
        let start = *self.start.get_or_insert(arrival);
        let arrival_us = arrival.saturating_duration_since(start).as_micros() as u64;
        let pts = match self.last {
            None => arrival_us,
            Some(last) => {
                let from_host = self
                    .host_delta_us(last.host_ts, host_ts)
                    .map(|d| last.pts_us + d);
                let candidate = match from_host {
                    Some(h) if (arrival_us as i64 - h as i64).abs() <= MAX_DISAGREEMENT_US => {
                        let correction = (arrival_us as i64 - h as i64) >> SLEW_SHIFT;
                        h.saturating_add_signed(correction)
                    }
                    _ => arrival_us,
                };
                candidate.max(last.pts_us + self.min_step)
            }
        };
        self.last = Some(Last {
            host_ts,
            pts_us: pts,
        });
        pts
    }

    /// The host clock's advance in µs, if it advanced at all (wrap-around aware).
    fn host_delta_us(&self, previous: u32, now: u32) -> Option<u64> {
        let ticks = now.wrapping_sub(previous) as i32;
        (ticks > 0).then(|| (ticks as u64).saturating_mul(1_000_000) / self.rate)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(start: Instant, us: u64) -> Instant {
        start + Duration::from_micros(us)
    }

    /// Frames every 16 667 µs with arrival jitter of up to ±3 ms.
    fn jittered(n: u64) -> Vec<(u64, i64)> {
        (0..n)
            .map(|i| (i * 16_667, ((i * 7919) % 6001) as i64 - 3000))
            .collect()
    }

    #[test]
    fn a_host_that_sends_zero_gets_arrival_times_strictly_increasing() {
        let t0 = Instant::now();
        let mut c = MediaClock::video();
        let mut last = None;
        for (i, (nominal, _)) in jittered(120).into_iter().enumerate() {
            let pts = c.stamp(at(t0, nominal), 0);
            if let Some(prev) = last {
                assert!(pts > prev, "frame {i}: {pts} after {prev}");
            }
            assert_eq!(pts, nominal, "zero host clock: pts is the arrival time");
            last = Some(pts);
        }
    }

    #[test]
    fn frames_arriving_together_still_differ_by_one_90khz_tick() {
        let t0 = Instant::now();
        let mut c = MediaClock::video();
        let a = c.stamp(t0, 0);
        let b = c.stamp(t0, 0);
        let d = c.stamp(t0, 0);
        assert!(b > a && d > b);
        let tick = |us: u64| us * 9 / 100;
        assert!(
            tick(b) > tick(a) && tick(d) > tick(b),
            "distinct RTP timestamps"
        );
    }

    #[test]
    fn a_good_host_clock_removes_network_jitter() {
        let t0 = Instant::now();
        let mut c = MediaClock::video();
        let mut pts = Vec::new();
        for (i, (nominal, jitter)) in jittered(300).into_iter().enumerate() {
            let arrival = (nominal as i64 + jitter + 3000) as u64;
            pts.push(c.stamp(at(t0, arrival), 1_000 + i as u32 * 1500));
        }
        for w in pts.windows(2) {
            let step = w[1] - w[0];
            // Host spacing 16 667 µs; at most a 1/32 share of ±3 ms jitter leaks through.
            assert!((16_400..=16_900).contains(&step), "step {step}");
        }
    }

    #[test]
    fn a_jump_or_step_back_in_the_host_clock_never_moves_pts_backwards() {
        let t0 = Instant::now();
        let mut c = MediaClock::video();
        let host = [0u32, 1500, 3000, 4_000_000_000, 4500, 4500, 6000, 100];
        let mut last = None;
        for (i, ts) in host.into_iter().enumerate() {
            let pts = c.stamp(at(t0, i as u64 * 16_667), ts);
            if let Some(prev) = last {
                assert!(pts > prev, "frame {i}: {pts} after {prev}");
                assert!(
                    pts.abs_diff(i as u64 * 16_667) < 20_000,
                    "frame {i} near arrival"
                );
            }
            last = Some(pts);
        }
    }

    #[test]
    fn host_clock_wraps_around() {
        let t0 = Instant::now();
        let mut c = MediaClock::audio();
        assert_eq!(c.stamp(t0, u32::MAX - 4), 0);
        assert_eq!(c.stamp(at(t0, 5_000), 0), 5_000);
        assert_eq!(c.stamp(at(t0, 10_000), 5), 10_000);
    }

    #[test]
    fn a_drifting_host_clock_stays_near_real_time() {
        let t0 = Instant::now();
        let mut c = MediaClock::video();
        let mut pts = 0;
        // The host clock runs 1 % fast for 30 s of 60 fps.
        for i in 0..1800u64 {
            pts = c.stamp(at(t0, i * 16_667), (i * 1515) as u32);
        }
        let arrival = 1799 * 16_667;
        assert!(pts.abs_diff(arrival) < 20_000, "{pts} vs {arrival}");
    }
}
