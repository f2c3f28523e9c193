//! Limits an operator sets so that no browser (or script) can take the gateway for itself: how
//! many streams run at once (in all, and per client id), how many stream sockets one address may
//! open per minute, how large a browser message may be, how long a client may take to send its
//! request headers (the upgrade of a stream socket, or any request), and how long a new stream
//! socket may stay silent before its first message. Each rejection is answered (HTTP 429, close
//! 1013, 1009 or 1008; a connection without complete headers in time is closed) and counted in
//! `moongate_rejections_total{reason}`.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The configured limits (`[limits]`, `MOONGATE_MAX_*`, ...). `0` means "no limit" for counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Streams at once on this gateway (a cluster: on the whole cluster).
    pub max_streams: usize,
    /// Streams at once of one client id (another key of a live client counts; the same key
    /// supersedes and does not).
    pub max_streams_per_client: usize,
    /// Stream sockets (WebSocket, signaling socket, WHEP offers) one IP address may open per
    /// minute.
    pub opens_per_minute_per_ip: u32,
    /// The largest browser message, in bytes (a larger one closes the socket with 1009).
    pub max_message_bytes: usize,
    /// From the upgrade to the first (init) message of a stream socket.
    pub first_message: Duration,
    /// From a connection's accept (or the end of its previous request) to the end of its request
    /// headers: a slow-loris client, or a socket left idle, is closed after this.
    pub upgrade_timeout: Duration,
}

/// Counts are off by default: a host's capacity is the operator's to know, and behind a reverse
/// proxy every open comes from the proxy's address (set the rate only where moongate faces
/// browsers directly).
impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_streams: 0,
            max_streams_per_client: 0,
            opens_per_minute_per_ip: 0,
            // Input, signaling and SDP messages are a few kB; a pasted clipboard is the largest.
            max_message_bytes: 1 << 20,
            first_message: Duration::from_secs(15),
            // A browser sends its headers in one write; 10 s covers a slow mobile link and frees a
            // descriptor held by a client that never finishes.
            upgrade_timeout: Duration::from_secs(10),
        }
    }
}

/// Why something was refused (the `reason` label of `moongate_rejections_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejection {
    /// Too many stream opens from one address this minute (HTTP 429).
    OpenRate,
    /// The gateway runs its maximum of streams (close 1013).
    MaxStreams,
    /// This client id runs its maximum of streams (close 1013).
    MaxStreamsPerClient,
    /// A browser message over the size limit (close 1009).
    MessageTooBig,
    /// No first message in time (close 1008).
    FirstMessageTimeout,
    /// No complete request headers in time (the connection is closed).
    UpgradeTimeout,
}

impl Rejection {
    /// The metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Rejection::OpenRate => "open_rate",
            Rejection::MaxStreams => "max_streams",
            Rejection::MaxStreamsPerClient => "max_streams_per_client",
            Rejection::MessageTooBig => "message_too_big",
            Rejection::FirstMessageTimeout => "first_message_timeout",
            Rejection::UpgradeTimeout => "upgrade_timeout",
        }
    }

    /// Every reason (pre-registered at 0 in `/metrics`).
    pub const ALL: [Rejection; 6] = [
        Rejection::OpenRate,
        Rejection::MaxStreams,
        Rejection::MaxStreamsPerClient,
        Rejection::MessageTooBig,
        Rejection::FirstMessageTimeout,
        Rejection::UpgradeTimeout,
    ];
}

/// The close of a socket whose browser sent a message over the size limit (1009).
pub const CLOSE_MESSAGE_TOO_BIG: u16 = 1009;
/// The close of a stream refused because a stream limit is reached (1013, "try again later").
pub const CLOSE_TRY_AGAIN_LATER: u16 = 1013;

/// A read error that is the size limit (the WebSocket layer refused an over-size message or
/// frame). Why by text: axum hides its tungstenite error type, and tungstenite's capacity errors
/// say "Space limit exceeded".
pub fn is_too_big(error: &axum::Error) -> bool {
    let text = error.to_string();
    text.contains("Space limit exceeded") || text.contains("too long")
}

/// A live stream as the caps see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveStream<'a> {
    /// Its key (text form).
    pub key: &'a str,
    /// Its client id.
    pub client: &'a str,
    /// Its host.
    pub host_id: i64,
}

/// Whether a new stream (`new`) fits the caps among `live`. Streams it will supersede do not
/// count: the same key, and (lesson 4) the same client id on the same host.
pub fn check_caps(
    limits: &Limits,
    live: &[LiveStream<'_>],
    new: &LiveStream<'_>,
) -> Result<(), Rejection> {
    let staying: Vec<&LiveStream<'_>> = live
        .iter()
        .filter(|s| s.key != new.key && !(s.client == new.client && s.host_id == new.host_id))
        .collect();
    // The client's own cap first: the more specific answer.
    if limits.max_streams_per_client > 0
        && staying.iter().filter(|s| s.client == new.client).count()
            >= limits.max_streams_per_client
    {
        return Err(Rejection::MaxStreamsPerClient);
    }
    if limits.max_streams > 0 && staying.len() >= limits.max_streams {
        return Err(Rejection::MaxStreams);
    }
    Ok(())
}

/// Opens per address in the current one-minute window. Bounded: windows that have ended are
/// dropped when the table grows, so a scan of many addresses cannot grow it without end.
#[derive(Debug, Default)]
pub struct OpenRate {
    windows: Mutex<HashMap<IpAddr, (Instant, u32)>>,
}

/// Addresses kept before ended windows are swept.
const SWEEP_AT: usize = 4096;
const WINDOW: Duration = Duration::from_secs(60);

impl OpenRate {
    /// Counts an open from `ip` at `now`; `false` if it is over `per_minute` (0 = no limit).
    pub fn allow(&self, ip: IpAddr, per_minute: u32, now: Instant) -> bool {
        if per_minute == 0 {
            return true;
        }
        let mut windows = self.windows.lock().unwrap_or_else(|p| p.into_inner());
        if windows.len() >= SWEEP_AT {
            windows.retain(|_, (start, _)| now.saturating_duration_since(*start) < WINDOW);
        }
        let (start, count) = windows.entry(ip).or_insert((now, 0));
        if now.saturating_duration_since(*start) >= WINDOW {
            *start = now;
            *count = 0;
        }
        if *count >= per_minute {
            return false;
        }
        *count += 1;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_gets_its_quota_per_minute_and_others_are_apart() {
        let rate = OpenRate::default();
        let t0 = Instant::now();
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        for _ in 0..3 {
            assert!(rate.allow(a, 3, t0));
        }
        assert!(!rate.allow(a, 3, t0 + Duration::from_secs(10)));
        assert!(rate.allow(b, 3, t0), "another address has its own quota");
        assert!(rate.allow(a, 3, t0 + WINDOW), "a new minute, a new quota");
        assert!(rate.allow(a, 0, t0), "0 = no limit");
    }

    #[test]
    fn caps_count_what_stays_and_not_what_is_superseded() {
        let s = |key: &'static str, client: &'static str, host_id: i64| LiveStream {
            key,
            client,
            host_id,
        };
        let limits = Limits {
            max_streams: 3,
            max_streams_per_client: 1,
            ..Limits::default()
        };
        let live = [
            s("a--c1", "c1", 1),
            s("b--c2", "c2", 1),
            s("d--c3", "c3", 2),
        ];
        // c1 again on host 1 under another key: supersedes its stream there, fits.
        assert_eq!(check_caps(&limits, &live, &s("x--c1", "c1", 1)), Ok(()));
        // c1 on host 2 while it streams on host 1: over its cap of 1.
        assert_eq!(
            check_caps(&limits, &live, &s("y--c1", "c1", 2)),
            Err(Rejection::MaxStreamsPerClient)
        );
        // A fourth client: over the total of 3.
        assert_eq!(
            check_caps(&limits, &live, &s("z--c4", "c4", 1)),
            Err(Rejection::MaxStreams)
        );
        // The same key never counts itself.
        assert_eq!(check_caps(&limits, &live, &s("b--c2", "c2", 1)), Ok(()));
        assert_eq!(
            check_caps(&Limits::default(), &live, &s("z--c4", "c4", 1)),
            Ok(())
        );
    }

    #[test]
    fn the_table_stays_bounded() {
        let rate = OpenRate::default();
        let t0 = Instant::now();
        for i in 0..10_000u32 {
            let ip = IpAddr::from(i.to_be_bytes());
            rate.allow(ip, 1, t0 + Duration::from_secs(61 * (i as u64 / 4000)));
        }
        assert!(rate.windows.lock().unwrap().len() <= SWEEP_AT + 4000);
    }
}
