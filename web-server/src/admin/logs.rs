//! Live logs for the admin view: a `tracing` [`CaptureLayer`] copies every event (the server's
//! own lines and the streamers' stderr lines, which [`crate::streamer_proc`] re-emits tagged with
//! their session key) into a bounded in-memory ring ([`LogBuffer`], the last
//! [`DEFAULT_CAPACITY`] lines) and a broadcast channel that `GET /api/admin/logs` streams as SSE.
//!
//! The buffer is process-wide ([`global`]) because a process has one `tracing` subscriber: the
//! binary installs the layer once in `main`; every [`crate::AppState`] reads the same buffer.
//! Secrets never reach a log line in the first place (the rule everywhere), so the buffer holds
//! nothing the stderr log does not.

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;
use tokio::sync::broadcast;
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::layer::Context;
use tracing_subscriber::Layer;

/// Lines kept in memory.
pub const DEFAULT_CAPACITY: usize = 2000;

/// One captured line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LogLine {
    /// Sequence number (increasing; a gap in a stream means lines were skipped).
    pub seq: u64,
    /// Unix milliseconds.
    pub ts_ms: u64,
    /// `error` … `trace`.
    pub level: &'static str,
    /// The event's target (`streamer` for a streamer's stderr line).
    pub target: String,
    /// The `session` field (the session key), if the event has one.
    pub session: Option<String>,
    /// The message.
    pub message: String,
    /// Other fields, `k=v` separated by spaces.
    pub fields: String,
}

/// The ring of recent lines and the live feed.
#[derive(Debug)]
pub struct LogBuffer {
    capacity: usize,
    lines: Mutex<VecDeque<Arc<LogLine>>>,
    next_seq: AtomicU64,
    live: broadcast::Sender<Arc<LogLine>>,
}

impl LogBuffer {
    /// A buffer keeping the last `capacity` lines.
    pub fn new(capacity: usize) -> Self {
        LogBuffer {
            capacity: capacity.max(1),
            lines: Mutex::new(VecDeque::with_capacity(capacity.min(4096))),
            next_seq: AtomicU64::new(1),
            live: broadcast::channel(1024).0,
        }
    }

    /// Appends a line (assigning its sequence number) and broadcasts it.
    pub fn push(&self, mut line: LogLine) {
        line.seq = self.next_seq.fetch_add(1, Ordering::Relaxed);
        let line = Arc::new(line);
        {
            let mut lines = self.lines.lock().unwrap_or_else(|p| p.into_inner());
            if lines.len() == self.capacity {
                lines.pop_front();
            }
            lines.push_back(Arc::clone(&line));
        }
        // No subscriber is fine.
        let _ = self.live.send(line);
    }

    /// The last `n` lines matching `session` (all when `None`), oldest first.
    pub fn tail(&self, n: usize, session: Option<&str>) -> Vec<Arc<LogLine>> {
        let lines = self.lines.lock().unwrap_or_else(|p| p.into_inner());
        let mut out: Vec<Arc<LogLine>> = lines
            .iter()
            .rev()
            .filter(|l| matches_session(l, session))
            .take(n)
            .cloned()
            .collect();
        out.reverse();
        out
    }

    /// Lines from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<LogLine>> {
        self.live.subscribe()
    }
}

/// True if `line` belongs to `session` (or no filter).
pub fn matches_session(line: &LogLine, session: Option<&str>) -> bool {
    match session {
        None => true,
        Some(s) => line.session.as_deref() == Some(s),
    }
}

/// The process-wide buffer.
pub fn global() -> &'static LogBuffer {
    static BUFFER: OnceLock<LogBuffer> = OnceLock::new();
    BUFFER.get_or_init(|| LogBuffer::new(DEFAULT_CAPACITY))
}

/// Copies events into [`global`] (or another buffer).
#[derive(Debug, Clone, Copy)]
pub struct CaptureLayer {
    buffer: &'static LogBuffer,
}

impl Default for CaptureLayer {
    fn default() -> Self {
        CaptureLayer { buffer: global() }
    }
}

impl CaptureLayer {
    /// A layer writing into `buffer`.
    pub fn new(buffer: &'static LogBuffer) -> Self {
        CaptureLayer { buffer }
    }
}

#[derive(Default)]
struct Fields {
    message: String,
    session: Option<String>,
    rest: String,
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        match field.name() {
            "message" => self.message.push_str(value),
            "session" => self.session = Some(value.to_string()),
            name if name.starts_with("log.") => {}
            name => {
                let _ = write!(self.rest, "{}{name}={value}", sep(&self.rest));
            }
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        match field.name() {
            "message" => {
                let _ = write!(self.message, "{value:?}");
            }
            "session" => self.session = Some(format!("{value:?}")),
            // `log` records bridged into tracing carry their origin as fields: noise here.
            name if name.starts_with("log.") => {}
            name => {
                let _ = write!(self.rest, "{}{name}={value:?}", sep(&self.rest));
            }
        }
    }
}

fn sep(s: &str) -> &'static str {
    if s.is_empty() {
        ""
    } else {
        " "
    }
}

/// Removes ANSI escape sequences (a streamer's stderr may be coloured).
fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // CSI: ESC [ params final-byte (0x40..=0x7e).
            if chars.next() == Some('[') {
                for c in chars.by_ref() {
                    if ('\u{40}'..='\u{7e}').contains(&c) {
                        break;
                    }
                }
            }
            continue;
        }
        out.push(c);
    }
    out
}

/// A streamer's stderr line without its own `<timestamp>  LEVEL ` prefix (the captured line has
/// both already).
fn without_fmt_prefix(line: &str) -> &str {
    let mut rest = line.trim_start();
    for _ in 0..2 {
        let (word, tail) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
        if matches!(word, "ERROR" | "WARN" | "INFO" | "DEBUG" | "TRACE") {
            return tail.trim_start();
        }
        rest = tail.trim_start();
    }
    line
}

impl<S: Subscriber> Layer<S> for CaptureLayer {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let meta = event.metadata();
        let mut fields = Fields::default();
        event.record(&mut fields);
        let mut message = if fields.message.contains('\u{1b}') {
            strip_ansi(&fields.message)
        } else {
            fields.message
        };
        if meta.target() == "streamer" {
            message = without_fmt_prefix(&message).to_string();
        }
        let ts_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        self.buffer.push(LogLine {
            seq: 0,
            ts_ms,
            level: match *meta.level() {
                tracing::Level::ERROR => "error",
                tracing::Level::WARN => "warn",
                tracing::Level::INFO => "info",
                tracing::Level::DEBUG => "debug",
                tracing::Level::TRACE => "trace",
            },
            target: meta.target().to_string(),
            session: fields.session,
            message,
            fields: fields.rest,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracing_subscriber::layer::SubscriberExt;

    #[test]
    fn ring_keeps_the_last_lines_and_filters_by_session() {
        let buf: &'static LogBuffer = Box::leak(Box::new(LogBuffer::new(3)));
        let subscriber = tracing_subscriber::registry().with(CaptureLayer::new(buf));
        let mut live = buf.subscribe();
        tracing::subscriber::with_default(subscriber, || {
            tracing::info!(session = %"a-b-c", n = 1, "one");
            tracing::warn!("two");
            tracing::info!(target: "streamer", session = %"a-b-c", "\u{1b}[32mthree\u{1b}[0m");
            tracing::error!(session = %"x-y-z", "four");
        });
        let all = buf.tail(10, None);
        assert_eq!(all.len(), 3, "capacity 3");
        assert_eq!(all[0].message, "two");
        assert_eq!(all[2].level, "error");
        let mine = buf.tail(10, Some("a-b-c"));
        assert_eq!(mine.len(), 1);
        assert_eq!(mine[0].message, "three");
        assert_eq!(
            without_fmt_prefix("2026-11-22T04:39:04.385575Z  INFO streamer::session: up"),
            "streamer::session: up"
        );
        assert_eq!(without_fmt_prefix("no prefix here"), "no prefix here");
        assert_eq!(mine[0].target, "streamer");
        let first = live.try_recv().unwrap();
        assert_eq!(first.fields, "n=1");
        assert_eq!(first.session.as_deref(), Some("a-b-c"));
        assert!(all.windows(2).all(|w| w[0].seq < w[1].seq));
    }
}
