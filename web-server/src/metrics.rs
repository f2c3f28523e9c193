//! `/metrics`: Prometheus text format (0.0.4).
//!
//! Crate: `prometheus` 0.14 with default features off (no protobuf). Why this one: its
//! `TextEncoder` writes the classic Prometheus text format that every scraper and text parser
//! reads (counters keep their `_total` names, no OpenMetrics `# EOF`), a [`Registry`] is a plain
//! value, so each [`crate::AppState`] owns its own (tests run many gateways in one process; the
//! `metrics` facade's global recorder would mix them), and with defaults off it adds only small,
//! mostly already present crates (parking_lot, fnv, memchr) — build time matters on 2 cores.
//!
//! Live-stream gauges are not kept by increments: [`Metrics::render`] reads the session registry
//! (the one source of truth) at scrape time, so the gauge cannot drift from what is streaming.

use prometheus::{
    Encoder, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

use crate::certs::CertCacheStats;
use crate::sessions::SessionInfo;

/// How a stream ended, as the `reason` label of `moongate_stream_ends_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndLabel {
    /// The browser closed its socket.
    BrowserClosed,
    /// The browser went silent.
    BrowserGone,
    /// A newer connection took over.
    Superseded,
    /// An administrator ended it.
    AdminKill,
    /// Server shutdown.
    Shutdown,
    /// The host ended the stream.
    HostEnded,
    /// The streamer reported an error.
    StreamerError,
    /// The streamer died without `Ended`.
    StreamerCrash,
    /// The streamer ended on its own with `Ended{Stopped}`.
    Stopped,
    /// The browser sent something unusable (bad signaling JSON or SDP).
    Refused,
}

impl EndLabel {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            EndLabel::BrowserClosed => "browser_closed",
            EndLabel::BrowserGone => "browser_gone",
            EndLabel::Superseded => "superseded",
            EndLabel::AdminKill => "admin_kill",
            EndLabel::Shutdown => "shutdown",
            EndLabel::HostEnded => "host_ended",
            EndLabel::StreamerError => "streamer_error",
            EndLabel::StreamerCrash => "streamer_crash",
            EndLabel::Stopped => "stopped",
            EndLabel::Refused => "refused",
        }
    }
}

/// Counter increments derived from one `Stats` sample (see [`crate::admin::live`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Relayed {
    /// Video frames delivered.
    pub video_frames: u64,
    /// Video bytes.
    pub video_bytes: u64,
    /// Audio bytes.
    pub audio_bytes: u64,
    /// Frames dropped (streamer and gateway queues).
    pub dropped: u64,
    /// IDR requests sent to the host.
    pub idr_requests: u64,
}

/// The gateway's metrics (cheap to share behind an `Arc`).
pub struct Metrics {
    registry: Registry,
    streams: IntGaugeVec,
    starts: IntCounterVec,
    ends: IntCounterVec,
    supersedes: IntCounter,
    restreams: IntCounter,
    crashes: IntCounter,
    frames: IntCounter,
    bytes: IntCounterVec,
    dropped: IntCounter,
    idr: IntCounter,
    queue_delay: Histogram,
    first_frame: Histogram,
    cert_size: IntGauge,
    cert_evictions: IntCounter,
    host_cleanups: IntGauge,
    cluster_streams: IntGaugeVec,
    cluster_ops: IntCounterVec,
    rejections: IntCounterVec,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

const CONSTANT: &str = "constant, valid metric definition";

/// The stream modes always present in `moongate_streams` (0 when none).
const MODES: [&str; 2] = ["websocket", "webrtc"];

fn mode_label(mode: &str) -> &str {
    if MODES.contains(&mode) {
        mode
    } else {
        "other"
    }
}

impl Metrics {
    /// Fresh metrics in their own registry.
    pub fn new() -> Self {
        let registry = Registry::new();
        // Names, help texts and label sets are constants (valid, checked by the unit test below):
        // construction cannot fail; a duplicate registration would be a programming error.
        fn reg<T: prometheus::core::Collector + Clone + 'static>(r: &Registry, m: T) -> T {
            if let Err(e) = r.register(Box::new(m.clone())) {
                tracing::error!(error = %e, "metric registration");
            }
            m
        }
        let counter =
            |name: &str, help: &str| reg(&registry, IntCounter::new(name, help).expect(CONSTANT));
        let counter_vec = |name: &str, help: &str, label: &str| {
            reg(
                &registry,
                IntCounterVec::new(Opts::new(name, help), &[label]).expect(CONSTANT),
            )
        };
        let histogram = |name: &str, help: &str, buckets: Vec<f64>| {
            reg(
                &registry,
                Histogram::with_opts(HistogramOpts::new(name, help).buckets(buckets))
                    .expect(CONSTANT),
            )
        };
        let streams = reg(
            &registry,
            IntGaugeVec::new(
                Opts::new(
                    "moongate_streams",
                    "Live streams by mode (from the registry)",
                ),
                &["mode"],
            )
            .expect(CONSTANT),
        );
        let m = Metrics {
            streams,
            starts: counter_vec(
                "moongate_stream_starts_total",
                "Streams launched (streamer spawned), by mode",
                "mode",
            ),
            ends: counter_vec(
                "moongate_stream_ends_total",
                "Launched streams that ended, by reason",
                "reason",
            ),
            supersedes: counter(
                "moongate_stream_supersedes_total",
                "Streams stopped because a newer connection of the same client took over",
            ),
            restreams: counter(
                "moongate_stream_restreams_total",
                "Host streams started again at another quality rung (adaptive quality)",
            ),
            crashes: counter(
                "moongate_streamer_crashes_total",
                "Streamer processes that died without reporting an end",
            ),
            frames: counter(
                "moongate_video_frames_relayed_total",
                "Video frames delivered toward browsers",
            ),
            bytes: counter_vec(
                "moongate_relayed_bytes_total",
                "Media bytes delivered toward browsers, by kind",
                "kind",
            ),
            dropped: counter(
                "moongate_video_frames_dropped_total",
                "Video frames dropped on purpose (backpressure, waiting for a keyframe)",
            ),
            idr: counter(
                "moongate_idr_requests_total",
                "Keyframe (IDR) requests sent to hosts",
            ),
            queue_delay: histogram(
                "moongate_send_queue_delay_seconds",
                "Age of the oldest queued video frame toward the browser, sampled about once a second per stream",
                vec![0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0],
            ),
            first_frame: histogram(
                "moongate_first_frame_seconds",
                "From the browser connection to the first keyframe sent to it",
                vec![0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0],
            ),
            cert_size: reg(
                &registry,
                IntGauge::new(
                    "moongate_cert_cache_size",
                    "Client certificates in the cache",
                )
                .expect(CONSTANT),
            ),
            cert_evictions: counter(
                "moongate_cert_cache_evictions_total",
                "Client certificates evicted after their idle time",
            ),
            host_cleanups: reg(
                &registry,
                IntGauge::new(
                    "moongate_host_cleanups_pending",
                    "Host sessions of streamers that died mid-stream, waiting out the host's ENet timeout before their /cancel",
                )
                .expect(CONSTANT),
            ),
            cluster_streams: reg(
                &registry,
                IntGaugeVec::new(
                    Opts::new(
                        "moongate_cluster_streams",
                        "Live streams of the whole cluster by node and mode (Redis mode only)",
                    ),
                    &["node", "mode"],
                )
                .expect(CONSTANT),
            ),
            cluster_ops: counter_vec(
                "moongate_cluster_ops_total",
                "This node's cluster operations: claims, remote supersedes, stops received, keys freed from dead nodes, Redis errors",
                "op",
            ),
            rejections: counter_vec(
                "moongate_rejections_total",
                "Requests and streams refused by an operator's limit, by reason",
                "reason",
            ),
            registry,
        };
        for r in crate::limits::Rejection::ALL {
            m.rejections.with_label_values(&[r.as_str()]);
        }
        for mode in MODES {
            m.starts.with_label_values(&[mode]);
        }
        m
    }

    /// A stream was launched (its streamer spawned).
    pub fn stream_started(&self, mode: &str) {
        self.starts.with_label_values(&[mode_label(mode)]).inc();
    }

    /// A launched stream ended.
    pub fn stream_ended(&self, reason: EndLabel) {
        self.ends.with_label_values(&[reason.as_str()]).inc();
        match reason {
            EndLabel::StreamerCrash => self.crashes.inc(),
            EndLabel::Superseded => self.supersedes.inc(),
            _ => {}
        }
    }

    /// A limit refused something.
    pub fn rejected(&self, why: crate::limits::Rejection) {
        self.rejections.with_label_values(&[why.as_str()]).inc();
    }

    /// A stream was superseded before it launched (not counted as an end: it never started).
    pub fn superseded_before_launch(&self) {
        self.supersedes.inc();
    }

    /// The quality controller restarted a stream at another rung.
    pub fn restreamed(&self) {
        self.restreams.inc();
    }

    /// Adds one `Stats` sample's increments.
    pub fn relayed(&self, r: Relayed) {
        self.frames.inc_by(r.video_frames);
        self.bytes
            .with_label_values(&["video"])
            .inc_by(r.video_bytes);
        self.bytes
            .with_label_values(&["audio"])
            .inc_by(r.audio_bytes);
        self.dropped.inc_by(r.dropped);
        self.idr.inc_by(r.idr_requests);
    }

    /// One send-queue delay sample.
    pub fn queue_delay_ms(&self, ms: u64) {
        self.queue_delay.observe(ms as f64 / 1000.0);
    }

    /// Time from the connection to the first keyframe.
    pub fn first_frame(&self, d: std::time::Duration) {
        self.first_frame.observe(d.as_secs_f64());
    }

    /// The cluster's streams (every node's, read from Redis at this scrape) and this node's
    /// cluster counters.
    pub fn set_cluster(&self, sessions: &[SessionInfo], stats: crate::cluster::ClusterStats) {
        self.cluster_streams.reset();
        for s in sessions {
            self.cluster_streams
                .with_label_values(&[s.node.as_str(), mode_label(&s.meta.mode)])
                .inc();
        }
        for (op, value) in [
            ("claim", stats.claims),
            ("remote_supersede", stats.remote_supersedes),
            ("stop_received", stats.stops_received),
            ("key_freed", stats.keys_freed),
            ("redis_error", stats.redis_errors),
        ] {
            let c = self.cluster_ops.with_label_values(&[op]);
            let seen = c.get();
            if value > seen {
                c.inc_by(value - seen);
            }
        }
    }

    /// The text exposition, with the live gauges read from `sessions`, `certs` and the pending
    /// host cleanups now.
    pub fn render(
        &self,
        sessions: &[SessionInfo],
        certs: CertCacheStats,
        host_cleanups_pending: usize,
    ) -> String {
        // Rebuilt from the registry at every scrape: a mode that no longer streams reads 0.
        self.streams.reset();
        for mode in MODES {
            let n = sessions.iter().filter(|s| s.meta.mode == mode).count();
            self.streams.with_label_values(&[mode]).set(n as i64);
        }
        let other = sessions
            .iter()
            .filter(|s| !MODES.contains(&s.meta.mode.as_str()))
            .count();
        if other > 0 {
            self.streams.with_label_values(&["other"]).set(other as i64);
        }
        self.cert_size.set(certs.size as i64);
        self.host_cleanups.set(host_cleanups_pending as i64);
        let seen = self.cert_evictions.get();
        if certs.evicted > seen {
            self.cert_evictions.inc_by(certs.evicted - seen);
        }
        let mut out = Vec::new();
        if let Err(e) = TextEncoder::new().encode(&self.registry.gather(), &mut out) {
            tracing::warn!(error = %e, "encoding metrics");
        }
        String::from_utf8(out).unwrap_or_default()
    }
}

/// The content type of [`Metrics::render`].
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_metric_renders_and_counts() {
        let m = Metrics::new();
        m.stream_started("websocket");
        m.stream_ended(EndLabel::StreamerCrash);
        m.relayed(Relayed {
            video_frames: 3,
            video_bytes: 100,
            ..Relayed::default()
        });
        m.queue_delay_ms(12);
        m.first_frame(std::time::Duration::from_millis(80));
        let text = m.render(&[], CertCacheStats::default(), 0);
        for name in [
            "moongate_streams{mode=\"websocket\"} 0",
            "moongate_stream_starts_total{mode=\"websocket\"} 1",
            "moongate_stream_ends_total{reason=\"streamer_crash\"} 1",
            "moongate_streamer_crashes_total 1",
            "moongate_stream_supersedes_total 0",
            "moongate_video_frames_relayed_total 3",
            "moongate_relayed_bytes_total{kind=\"video\"} 100",
            "moongate_video_frames_dropped_total 0",
            "moongate_idr_requests_total 0",
            "moongate_send_queue_delay_seconds_count 1",
            "moongate_first_frame_seconds_count 1",
            "moongate_cert_cache_size 0",
            "moongate_cert_cache_evictions_total 0",
        ] {
            assert!(text.contains(name), "{name} missing in\n{text}");
        }
    }
}
