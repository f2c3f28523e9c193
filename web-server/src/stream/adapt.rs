//! Quality that adapts (issue 15, docs/adaptive-quality.md): a ladder of bitrate and resolution
//! rungs under the one the browser asked for, and the controller that picks a rung from what one
//! browser's link did in the last interval.
//!
//! It is a plain state machine, no sockets and no clock of its own, for the same reason as
//! [`super::roster`]: the policy (how fast down, how slowly up, what counts as a spike) is what
//! must not oscillate, and that is only testable when a test can feed it minutes of samples in
//! microseconds. The transports measure; this decides.
//!
//! Why the policy is asymmetric: a link that cannot carry the stream stalls the picture at once
//! (the send queue drops whole frames up to the next keyframe), so stepping down waits only for
//! the congestion to be sustained (two samples in a row); stepping up costs a restream on most
//! hosts (a gap) and a failed step up costs two, so it waits for a long clean spell *and* evidence
//! that the next rung fits (a capacity estimate with headroom), or, with no estimate at all, makes
//! a rare probe whose failure doubles the wait for the next one.
//!
//! WebSocket mode feeds it (`api::ws_stream`, through [`Adaptation::sample`]) from the stream
//! owner's send queue and keepalive round trips; WebRTC mode (`api::host_stream`, through
//! [`Adaptation::sample_peer`]) from the streamer's `Stats`: the peer's send queue and the
//! browser's RTCP receiver reports (loss and round trip). Both act on a change with the
//! streamer's `Restream`.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use thiserror::Error;

/// One quality level: what a (re)launch asks the host for (the IPC `Restream`'s payload).
pub use wire::ipc::Rung;

/// Why a ladder could not be built.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum LadderError {
    /// A requested rung with a zero size, frame rate or bitrate.
    #[error("the requested rung {0:?} has a zero field")]
    Degenerate(Rung),
}

/// The shape of the ladder and the controller's thresholds. The defaults are the policy; tests
/// and a future setting may change them.
#[derive(Debug, Clone)]
pub struct Policy {
    /// The first step down keeps the size at this share of the bitrate.
    pub same_size_share: f64,
    /// Line counts of the smaller sizes, tried in this order (only those under the requested).
    pub heights: Vec<u32>,
    /// A smaller size gets the requested bitrate × its pixel ratio × this: about the same bits
    /// per pixel as asked for (a little less, since the encoder's fixed costs shrink too).
    pub bits_per_pixel_keep: f64,
    /// No rung below this bitrate (unless the requested rung itself is below it).
    pub min_kbps: u32,
    /// A rung is kept only if its bitrate is at most this share of the rung above: closer rungs
    /// are not worth a restream.
    pub min_step: f64,
    /// Consecutive congested samples that step down.
    pub down_after: u32,
    /// Queue delay above its baseline by more than this (ms) is congestion. The WebSocket send
    /// queue's video budget is 100 ms, so 60 ms is most of it.
    pub congested_queue_ms: u32,
    /// Queue delay above its baseline by at most this (ms) is clean.
    pub clean_queue_ms: u32,
    /// RTT above its baseline by more than max(this, the baseline) (ms) is congestion.
    pub congested_rtt_ms: u32,
    /// RTT above its baseline by at most max(this, a quarter of the baseline) (ms) is clean.
    pub clean_rtt_ms: u32,
    /// Packet loss above this (per mille, WebRTC's receiver reports) is congestion: a browser's
    /// jitter buffer hides a little loss with NACKs, not a link that drops one packet in 30.
    pub congested_loss_permille: u32,
    /// Packet loss at most this (per mille) is clean.
    pub clean_loss_permille: u32,
    /// Samples the baselines (windowed minima) are taken over.
    pub baseline_samples: usize,
    /// After any change no sample counts for this long (the restream's gap and the queue
    /// settling).
    pub hold: Duration,
    /// Clean time, with headroom for the next rung, that steps up.
    pub up_after: Duration,
    /// The capacity estimate must exceed the next rung's bitrate by this factor.
    pub headroom: f64,
    /// With no capacity estimate, clean time that steps up anyway (a probe).
    pub probe_after: Duration,
    /// Congestion this soon after a step up means the step failed: the wait for the next step up
    /// grows.
    pub probe_window: Duration,
    /// The longest extra wait after failed steps up.
    pub max_penalty: Duration,
    /// A step down aims at a rung whose bitrate fits this share of what got through.
    pub fit: f64,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            same_size_share: 0.6,
            heights: vec![1440, 1080, 720, 540, 360],
            bits_per_pixel_keep: 0.9,
            min_kbps: 1000,
            min_step: 0.85,
            down_after: 2,
            congested_queue_ms: 60,
            clean_queue_ms: 25,
            congested_rtt_ms: 50,
            clean_rtt_ms: 20,
            congested_loss_permille: 30,
            clean_loss_permille: 5,
            baseline_samples: 30,
            hold: Duration::from_secs(5),
            up_after: Duration::from_secs(10),
            headroom: 1.25,
            probe_after: Duration::from_secs(30),
            probe_window: Duration::from_secs(15),
            max_penalty: Duration::from_secs(300),
            fit: 0.9,
        }
    }
}

/// What one browser's link did over one interval (about a second).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct LinkSample {
    /// How long the interval was.
    pub interval: Duration,
    /// The worst queue delay seen in it (max or p95), ms: in WebSocket mode the age of the
    /// oldest frame in the browser's send queue.
    pub queue_delay_ms: u32,
    /// Round trip, if measured in the interval, ms (WebSocket: our pings' pongs, which queue
    /// behind the socket's send buffer; WebRTC: RTCP receiver reports).
    pub rtt_ms: Option<u32>,
    /// What the link could carry, if the transport estimates it (WebRTC: the TWCC estimate;
    /// WebSocket: bytes written over the time the socket was busy), Kbps.
    pub capacity_kbps: Option<u32>,
    /// Packets lost on the way, per mille, if the transport reports it in the interval (WebRTC:
    /// RTCP receiver reports; a TCP link has none).
    pub loss_permille: Option<u32>,
    /// The video of the interval.
    pub video: VideoSent,
}

/// The video frames of one interval.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct VideoSent {
    /// Frames that went out.
    pub frames: u32,
    /// Frames dropped by the queue (or lost on the way, WebRTC).
    pub dropped: u32,
    /// Bytes that went out: what the link carried, which during congestion is about what it
    /// can carry.
    pub bytes: u64,
}

impl LinkSample {
    /// Kbps that got through in the interval: what went out, less what the receiver reports
    /// lost.
    fn delivered_kbps(&self) -> u64 {
        let ms = self.interval.as_millis().max(1) as u64;
        let kept = 1000 - u64::from(self.loss_permille.unwrap_or(0).min(1000));
        self.video.bytes * 8 / ms * kept / 1000
    }
}

/// Why the rung changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// Sustained congestion.
    Congestion,
    /// A clean spell with measured headroom for the next rung.
    Headroom,
    /// A clean spell with no capacity estimate: trying the next rung.
    Probe,
    /// An administrator moved the stream (`POST /api/admin/streams/{key}/quality`).
    Admin,
}

impl Reason {
    /// Its name toward the browser.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Congestion => "congestion",
            Reason::Headroom => "headroom",
            Reason::Probe => "probe",
            Reason::Admin => "admin",
        }
    }
}

/// A decision: move to `rung` (index `index` of [`Ladder::rungs`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Change {
    pub index: usize,
    pub rung: Rung,
    pub reason: Reason,
}

/// How one sample reads against the baselines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reading {
    Congested,
    Clean,
    /// Neither: resets both runs (the hysteresis band).
    Unclear,
}

/// The rungs and the controller for one stream.
#[derive(Debug)]
pub struct Ladder {
    rungs: Vec<Rung>,
    policy: Policy,
    current: usize,
    rtts: VecDeque<u32>,
    queues: VecDeque<u32>,
    /// Consecutive congested samples and the least Kbps that got through in them.
    congested: u32,
    congested_kbps: u64,
    /// Start of the current clean spell.
    clean_since: Option<Instant>,
    /// Start of the spell in which every capacity estimate showed headroom for the next rung.
    headroom_since: Option<Instant>,
    /// Whether the clean spell saw any capacity estimate (then no probing).
    estimated: bool,
    changed_at: Option<Instant>,
    /// The last step up, while its probe window is open.
    stepped_up_at: Option<Instant>,
    penalty: Duration,
}

impl Ladder {
    /// The ladder under `requested` (its first rung) with the default policy.
    pub fn new(requested: Rung) -> Result<Ladder, LadderError> {
        Ladder::with_policy(requested, Policy::default())
    }

    /// The ladder under `requested` with `policy`.
    pub fn with_policy(requested: Rung, policy: Policy) -> Result<Ladder, LadderError> {
        let r = requested;
        if r.width == 0 || r.height == 0 || r.fps == 0 || r.bitrate_kbps == 0 {
            return Err(LadderError::Degenerate(r));
        }
        let mut candidates = vec![Rung {
            bitrate_kbps: scale(r.bitrate_kbps, policy.same_size_share),
            ..r
        }];
        for &height in policy.heights.iter().filter(|&&h| h < r.height) {
            let width = even(u64::from(r.width) * u64::from(height) / u64::from(r.height));
            let size = Rung { width, height, ..r };
            let ratio = size.pixels() as f64 / r.pixels() as f64;
            candidates.push(Rung {
                bitrate_kbps: scale(r.bitrate_kbps, ratio * policy.bits_per_pixel_keep),
                ..size
            });
        }
        let mut rungs = vec![r];
        for c in candidates {
            let above = rungs[rungs.len() - 1].bitrate_kbps;
            if c.width == 0 || c.height == 0 || c.bitrate_kbps < policy.min_kbps {
                continue;
            }
            if f64::from(c.bitrate_kbps) <= f64::from(above) * policy.min_step {
                rungs.push(c);
            }
        }
        Ok(Ladder {
            rungs,
            policy,
            current: 0,
            rtts: VecDeque::new(),
            queues: VecDeque::new(),
            congested: 0,
            congested_kbps: u64::MAX,
            clean_since: None,
            headroom_since: None,
            estimated: false,
            changed_at: None,
            stepped_up_at: None,
            penalty: Duration::ZERO,
        })
    }

    /// Every rung, the requested first.
    pub fn rungs(&self) -> &[Rung] {
        &self.rungs
    }

    /// The rung in use.
    pub fn current(&self) -> Rung {
        self.rungs[self.current]
    }

    /// Nothing changes for [`Policy::hold`] from `now` (a stream that just started: its first
    /// samples see the decoder waiting for a keyframe, not the link).
    pub fn hold(&mut self, now: Instant) {
        self.changed_at = Some(now);
    }

    /// Its index in [`Ladder::rungs`] (0 is the requested rung).
    #[cfg(test)]
    pub fn index(&self) -> usize {
        self.current
    }

    /// Moves to rung `index` at once (an administrator's choice); adaptation goes on from there
    /// after the hold. `None` if it is the current rung or there is no such rung.
    pub fn force(&mut self, now: Instant, index: usize) -> Option<Change> {
        if index == self.current || index >= self.rungs.len() {
            return None;
        }
        self.stepped_up_at = None;
        Some(self.change(now, index, Reason::Admin))
    }

    /// Feeds one interval's sample, taken at `now`; `Some` when the rung should change.
    pub fn observe(&mut self, now: Instant, sample: LinkSample) -> Option<Change> {
        let reading = self.read(&sample);
        let start = now.checked_sub(sample.interval).unwrap_or(now);
        // A sample whose interval began in the hold saw the restream, not the link.
        if self
            .changed_at
            .is_some_and(|at| start < at + self.policy.hold)
        {
            return None;
        }
        match reading {
            Reading::Congested => {
                self.reset_clean();
                self.congested += 1;
                let through = sample
                    .delivered_kbps()
                    .min(sample.capacity_kbps.map_or(u64::MAX, u64::from));
                self.congested_kbps = self.congested_kbps.min(through);
                if self.congested >= self.policy.down_after && self.current + 1 < self.rungs.len() {
                    if self.stepped_up_at.take().is_some() {
                        // The step up failed: the next one waits longer.
                        self.penalty = (self.penalty * 2)
                            .max(self.policy.probe_after)
                            .min(self.policy.max_penalty);
                    }
                    let index = self.fitting(self.congested_kbps);
                    return Some(self.change(now, index, Reason::Congestion));
                }
            }
            Reading::Unclear => {
                self.reset_congested();
                self.reset_clean();
            }
            Reading::Clean => {
                self.reset_congested();
                if self
                    .stepped_up_at
                    .is_some_and(|at| now.saturating_duration_since(at) >= self.policy.probe_window)
                {
                    // The step up held: the penalty is forgiven.
                    self.stepped_up_at = None;
                    self.penalty = Duration::ZERO;
                }
                let clean_since = *self.clean_since.get_or_insert(start);
                if self.current == 0 {
                    return None;
                }
                let next = self.rungs[self.current - 1];
                if let Some(c) = sample.capacity_kbps {
                    self.estimated = true;
                    if f64::from(c) >= f64::from(next.bitrate_kbps) * self.policy.headroom {
                        self.headroom_since.get_or_insert(start);
                    } else {
                        self.headroom_since = None;
                    }
                }
                let clean = now.saturating_duration_since(clean_since);
                if let Some(since) = self.headroom_since {
                    if now.saturating_duration_since(since) >= self.policy.up_after + self.penalty {
                        return Some(self.change(now, self.current - 1, Reason::Headroom));
                    }
                } else if !self.estimated && clean >= self.policy.probe_after + self.penalty {
                    return Some(self.change(now, self.current - 1, Reason::Probe));
                }
            }
        }
        None
    }

    /// Classifies `sample` against the baselines, then adds it to them.
    fn read(&mut self, sample: &LinkSample) -> Reading {
        let p = &self.policy;
        let queue_base = self.queues.iter().copied().min().unwrap_or(0);
        let rtt_base = self.rtts.iter().copied().min();
        let queue_over = sample.queue_delay_ms.saturating_sub(queue_base);
        let (rtt_high, rtt_clean) = match (sample.rtt_ms, rtt_base) {
            (Some(rtt), Some(base)) => {
                let over = rtt.saturating_sub(base);
                (
                    over > p.congested_rtt_ms.max(base),
                    over <= p.clean_rtt_ms.max(base / 4),
                )
            }
            _ => (false, true),
        };
        let loss = sample.loss_permille.unwrap_or(0);
        let reading = if sample.video.dropped > 0
            || queue_over > p.congested_queue_ms
            || rtt_high
            || loss > p.congested_loss_permille
        {
            Reading::Congested
        } else if queue_over <= p.clean_queue_ms && rtt_clean && loss <= p.clean_loss_permille {
            Reading::Clean
        } else {
            Reading::Unclear
        };
        push_window(&mut self.queues, sample.queue_delay_ms, p.baseline_samples);
        if let Some(rtt) = sample.rtt_ms {
            push_window(&mut self.rtts, rtt, p.baseline_samples);
        }
        reading
    }

    /// The highest rung below the current one whose bitrate fits in `kbps`; at least one down,
    /// at most the last.
    fn fitting(&self, kbps: u64) -> usize {
        let budget = kbps as f64 * self.policy.fit;
        (self.current + 1..self.rungs.len())
            .find(|&i| f64::from(self.rungs[i].bitrate_kbps) <= budget)
            .unwrap_or(self.rungs.len() - 1)
    }

    fn change(&mut self, now: Instant, index: usize, reason: Reason) -> Change {
        if index < self.current {
            self.stepped_up_at = Some(now);
        }
        self.current = index;
        self.changed_at = Some(now);
        self.reset_congested();
        self.reset_clean();
        Change {
            index,
            rung: self.rungs[index],
            reason,
        }
    }

    fn reset_congested(&mut self) {
        self.congested = 0;
        self.congested_kbps = u64::MAX;
    }

    fn reset_clean(&mut self) {
        self.clean_since = None;
        self.headroom_since = None;
        self.estimated = false;
    }
}

fn push_window(window: &mut VecDeque<u32>, value: u32, len: usize) {
    window.push_back(value);
    while window.len() > len.max(1) {
        window.pop_front();
    }
}

fn scale(kbps: u32, share: f64) -> u32 {
    (f64::from(kbps) * share).round() as u32
}

/// Encoders want even sizes.
fn even(n: u64) -> u32 {
    u32::try_from(n & !1).unwrap_or(u32::MAX - 1)
}

/// The rung a stream adapts from, if its client asked for adaptation (`adaptive`) and it is not
/// in a Wolf lobby (the lobby owns its encoder's settings); both transports open streams this way.
pub(crate) fn adapt_from(
    adaptive: Option<bool>,
    in_lobby: bool,
    (width, height, fps, bitrate_kbps): (u32, u32, u32, u32),
) -> Option<Rung> {
    let requested = Rung {
        width,
        height,
        fps,
        bitrate_kbps: bitrate_kbps.max(500),
    };
    (adaptive == Some(true) && !in_lobby && requested.check().is_ok()).then_some(requested)
}

/// Logs a rung change of the stream `key`.
pub(crate) fn log_change(key: &str, from: Rung, change: &Change) {
    let rung = change.rung;
    tracing::info!(
        session = %key, reason = ?change.reason, rung = change.index,
        from = format_args!("{}x{}@{} {} kbit/s", from.width, from.height, from.fps, from.bitrate_kbps),
        width = rung.width, height = rung.height, fps = rung.fps,
        bitrate_kbps = rung.bitrate_kbps, "quality changes: the stream moves to a new rung"
    );
}

/// What the browsers are told of `change` on a ladder of `rungs` rungs.
pub(crate) fn quality_notice(change: &Change, rungs: usize) -> wire::browser::Quality {
    wire::browser::Quality {
        width: change.rung.width,
        height: change.rung.height,
        fps: change.rung.fps,
        bitrate_kbps: change.rung.bitrate_kbps,
        rung: change.index,
        rungs,
        reason: change.reason.as_str().into(),
    }
}

mod control;
mod sampler;

pub use control::RungControls;
pub(crate) use control::{RungControl, RungError};
pub(crate) use sampler::Adaptation;

#[cfg(test)]
mod tests;
