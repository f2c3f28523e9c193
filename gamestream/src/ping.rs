//! UDP pings that open the media paths (media spec §2).
//!
//! Both RTP streams flow host → client only, so the client sends a small ping every 500 ms from its
//! receive socket to the host's video and audio ports. The host learns the client's (possibly NATed)
//! address from the first ping that matches the session and sends media there.
//!
//! Two formats exist: the legacy 4-byte ASCII `PING`, and Sunshine's `SS_PING` (the 16-character
//! `X-SS-Ping-Payload` from the RTSP SETUP reply followed by a BE32 sequence number starting at 1).

/// The legacy ping datagram.
pub const LEGACY_PING: [u8; 4] = *b"PING";

/// Length of an `X-SS-Ping-Payload` value.
pub const SS_PING_PAYLOAD_LEN: usize = 16;

/// Length of an SS_PING datagram (payload + BE32 sequence number).
pub const SS_PING_LEN: usize = SS_PING_PAYLOAD_LEN + 4;

/// How often clients ping (moonlight-common-c's ping threads).
pub const PING_INTERVAL: std::time::Duration = std::time::Duration::from_millis(500);

/// A parsed ping.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ping {
    /// The 4-byte `PING` (or, in lenient mode, any datagram that is not an SS_PING).
    Legacy,
    /// Sunshine's ping: the session's 16-byte payload and the ping counter (first ping = 1).
    Sunshine {
        /// The `X-SS-Ping-Payload` bytes.
        payload: [u8; SS_PING_PAYLOAD_LEN],
        /// BE32 counter.
        sequence: u32,
    },
}

/// Encodes the legacy ping.
pub fn encode_legacy_ping() -> [u8; 4] {
    LEGACY_PING
}

/// Encodes an SS_PING; `sequence` is 1 for the first ping of a stream.
pub fn encode_ss_ping(payload: &[u8; SS_PING_PAYLOAD_LEN], sequence: u32) -> [u8; SS_PING_LEN] {
    let mut out = [0u8; SS_PING_LEN];
    out[..SS_PING_PAYLOAD_LEN].copy_from_slice(payload);
    out[SS_PING_PAYLOAD_LEN..].copy_from_slice(&sequence.to_be_bytes());
    out
}

/// Turns an `X-SS-Ping-Payload` header value into ping bytes; `None` unless it is exactly 16 bytes
/// (moonlight-common-c falls back to legacy pings in that case).
pub fn ss_ping_payload_from_header(value: &str) -> Option<[u8; SS_PING_PAYLOAD_LEN]> {
    value.as_bytes().try_into().ok()
}

/// Parses a datagram received on a media port.
///
/// A datagram of at least 20 bytes is an SS_PING (Sunshine matches on the first 16 bytes and
/// ignores anything past the counter). Exactly `PING` is a legacy ping. With `any_datagram_is_ping`
/// (Wolf's behaviour: it matches by source IP only) every other datagram counts as a legacy ping too;
/// otherwise it is `None`.
pub fn parse_ping(datagram: &[u8], any_datagram_is_ping: bool) -> Option<Ping> {
    if datagram.len() >= SS_PING_LEN {
        let mut payload = [0u8; SS_PING_PAYLOAD_LEN];
        payload.copy_from_slice(&datagram[..SS_PING_PAYLOAD_LEN]);
        let mut seq = [0u8; 4];
        seq.copy_from_slice(&datagram[SS_PING_PAYLOAD_LEN..SS_PING_LEN]);
        return Some(Ping::Sunshine {
            payload,
            sequence: u32::from_be_bytes(seq),
        });
    }
    if datagram == LEGACY_PING || any_datagram_is_ping {
        return Some(Ping::Legacy);
    }
    None
}

/// Host-side rule for which pings bind a session's media destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PingMatcher {
    /// The session's `X-SS-Ping-Payload`, if one was sent in SETUP.
    pub payload: Option<[u8; SS_PING_PAYLOAD_LEN]>,
    /// Accept legacy `PING` (Sunshine does only if the client did not set `ML_FF_SESSION_ID_V1`).
    pub accept_legacy: bool,
    /// Wolf mode: any datagram counts as a (legacy) ping. Implies `accept_legacy`.
    pub any_datagram_is_ping: bool,
}

impl PingMatcher {
    /// True if `datagram` is a ping for this session.
    pub fn matches(&self, datagram: &[u8]) -> bool {
        match parse_ping(datagram, self.any_datagram_is_ping) {
            Some(Ping::Sunshine { payload, .. }) => {
                self.payload == Some(payload) || self.any_datagram_is_ping
            }
            Some(Ping::Legacy) => self.accept_legacy || self.any_datagram_is_ping,
            None => false,
        }
    }
}

/// Client-side ping generator for one stream: legacy or SS_PING with a running counter.
#[derive(Debug, Clone)]
pub struct PingSender {
    payload: Option<[u8; SS_PING_PAYLOAD_LEN]>,
    sequence: u32,
}

impl PingSender {
    /// `payload` = the SETUP reply's `X-SS-Ping-Payload` (None → legacy pings).
    pub fn new(payload: Option<[u8; SS_PING_PAYLOAD_LEN]>) -> Self {
        Self {
            payload,
            sequence: 0,
        }
    }

    /// The next ping datagram to send.
    pub fn next_ping(&mut self) -> Vec<u8> {
        match &self.payload {
            Some(p) => {
                self.sequence = self.sequence.wrapping_add(1);
                encode_ss_ping(p, self.sequence).to_vec()
            }
            None => LEGACY_PING.to_vec(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vector_8_7() {
        let payload = ss_ping_payload_from_header("0123456789ABCDEF").unwrap();
        assert_eq!(
            hex::encode(encode_ss_ping(&payload, 1)),
            "3031323334353637383941424344454600000001"
        );
        assert_eq!(hex::encode(encode_legacy_ping()), "50494e47");
        let mut s = PingSender::new(Some(payload));
        assert_eq!(
            hex::encode(s.next_ping()),
            "3031323334353637383941424344454600000001"
        );
        assert_eq!(
            hex::encode(s.next_ping()),
            "3031323334353637383941424344454600000002"
        );
        assert_eq!(PingSender::new(None).next_ping(), b"PING");
    }

    #[test]
    fn parse_kinds() {
        let payload = *b"0123456789ABCDEF";
        assert_eq!(
            parse_ping(&encode_ss_ping(&payload, 7), false),
            Some(Ping::Sunshine {
                payload,
                sequence: 7
            })
        );
        assert_eq!(parse_ping(b"PING", false), Some(Ping::Legacy));
        assert_eq!(parse_ping(b"PONG", false), None);
        assert_eq!(parse_ping(b"", false), None);
        assert_eq!(parse_ping(b"xyz", true), Some(Ping::Legacy));
        assert!(ss_ping_payload_from_header("short").is_none());
    }

    #[test]
    fn matcher() {
        let payload = *b"0123456789ABCDEF";
        let m = PingMatcher {
            payload: Some(payload),
            accept_legacy: false,
            any_datagram_is_ping: false,
        };
        assert!(m.matches(&encode_ss_ping(&payload, 1)));
        assert!(!m.matches(&encode_ss_ping(b"FEDCBA9876543210", 1)));
        assert!(!m.matches(b"PING"));
        let legacy = PingMatcher {
            payload: None,
            accept_legacy: true,
            any_datagram_is_ping: false,
        };
        assert!(legacy.matches(b"PING"));
        assert!(!legacy.matches(b"junk"));
        let wolf = PingMatcher {
            payload: None,
            accept_legacy: false,
            any_datagram_is_ping: true,
        };
        assert!(wolf.matches(b"junk"));
        assert!(wolf.matches(&encode_ss_ping(&payload, 1)));
    }
}
