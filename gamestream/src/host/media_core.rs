//! The media half of one session as a plain state machine: which client address each media
//! stream goes to (learned from its pings) and the video and audio packetizers. No sockets, no
//! tasks, and no clock: nothing here depends on time.
//!
//! It exists so that the production host and the in-memory host core make the same decisions
//! with the same code. The host's per-session media driver (`host::media_driver`) owns the two
//! UDP sockets and moves [`MediaBurst`]s out of [`HostMediaCore::poll_burst`] (a frame's shards
//! back to back, what one segmented send takes); [`crate::host::HostSessionCore`] adds the
//! session's ENet peer and hands the same datagrams out one [`Transmit`] at a time.

use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr};

use crate::audio::{AudioPacketizer, AudioPacketizerConfig};
use crate::client::{StreamSocket, Transmit};
use crate::ping::{PingMatcher, SS_PING_LEN};
use crate::video::{FrameInfo, PacketizerConfig, VideoError, VideoPacketizer};

/// Which datagrams on one media port open that stream for a client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PingRule {
    /// The ping formats and the session's payload.
    pub matcher: PingMatcher,
    /// Only pings from this IP count (the client that launched), when set.
    pub client_ip: Option<IpAddr>,
    /// When the matcher has no payload, a datagram of SS_PING length or more counts too,
    /// whatever its first 16 bytes: the host's video port has always taken any SS_PING when it
    /// handed out no payload (Wolf mode), while its audio port follows the matcher alone.
    pub any_ss_ping_without_payload: bool,
}

impl From<PingMatcher> for PingRule {
    fn from(matcher: PingMatcher) -> Self {
        Self {
            matcher,
            client_ip: None,
            any_ss_ping_without_payload: false,
        }
    }
}

impl PingRule {
    /// True if `datagram` from `from` is a ping for this stream.
    pub fn matches(&self, from: SocketAddr, datagram: &[u8]) -> bool {
        if self.client_ip.is_some_and(|ip| ip != from.ip()) {
            return false;
        }
        self.matcher.matches(datagram)
            || (self.any_ss_ping_without_payload
                && self.matcher.payload.is_none()
                && datagram.len() >= SS_PING_LEN)
    }
}

/// What the media half of a session is set up with at RTSP ANNOUNCE.
#[derive(Debug, Clone)]
pub struct HostMediaParams {
    /// Which datagrams on the video port are pings for this session.
    pub video_pings: PingRule,
    /// Which datagrams on the audio port are pings for this session.
    pub audio_pings: PingRule,
    /// Video framing, FEC and encryption.
    pub video: PacketizerConfig,
    /// Audio framing and encryption.
    pub audio: AudioPacketizerConfig,
}

/// Datagrams for one media socket and one destination, back to back, `stride` bytes each (the
/// last may be shorter only when `stride` is the one datagram's length).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaBurst {
    /// Video or audio.
    pub socket: StreamSocket,
    /// The client's media address.
    pub to: SocketAddr,
    /// Size of each datagram.
    pub stride: usize,
    /// The datagrams.
    pub bytes: Vec<u8>,
}

impl MediaBurst {
    /// The datagrams in send order.
    pub fn datagrams(&self) -> impl Iterator<Item = &[u8]> + '_ {
        self.bytes.chunks(self.stride.max(1))
    }

    /// Number of datagrams.
    pub fn len(&self) -> usize {
        self.bytes.len().div_ceil(self.stride.max(1))
    }

    /// True if it holds no datagram.
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }
}

/// One session's media half, sans I/O. See the module doc.
#[derive(Debug)]
pub struct HostMediaCore {
    video_pings: PingRule,
    audio_pings: PingRule,
    video_client: Option<SocketAddr>,
    audio_client: Option<SocketAddr>,
    video: VideoPacketizer,
    audio: AudioPacketizer,
    bursts: VecDeque<MediaBurst>,
    /// Bytes of the front burst already handed out by [`HostMediaCore::poll_transmit`].
    front_sent: usize,
}

impl HostMediaCore {
    /// Media waiting for the client's first pings.
    pub fn new(params: HostMediaParams) -> Result<Self, VideoError> {
        Ok(Self {
            video_pings: params.video_pings,
            audio_pings: params.audio_pings,
            video_client: None,
            audio_client: None,
            video: VideoPacketizer::new(params.video)?,
            audio: AudioPacketizer::new(params.audio),
            bursts: VecDeque::new(),
            front_sent: 0,
        })
    }

    /// One datagram that arrived on the session's video or audio socket. Returns the client
    /// address when this datagram is the ping that opened its stream; later pings change nothing.
    pub fn handle_input(
        &mut self,
        socket: StreamSocket,
        from: SocketAddr,
        datagram: &[u8],
    ) -> Option<SocketAddr> {
        let (rule, client) = match socket {
            StreamSocket::Video => (&self.video_pings, &mut self.video_client),
            StreamSocket::Audio => (&self.audio_pings, &mut self.audio_client),
            StreamSocket::Control => return None,
        };
        if client.is_some() || !rule.matches(from, datagram) {
            return None;
        }
        *client = Some(from);
        Some(from)
    }

    /// Where the stream on `socket` goes, once its first ping arrived.
    pub fn client(&self, socket: StreamSocket) -> Option<SocketAddr> {
        match socket {
            StreamSocket::Video => self.video_client,
            StreamSocket::Audio => self.audio_client,
            StreamSocket::Control => None,
        }
    }

    /// Packetizes one access unit for the video client; returns the datagrams queued (0, and no
    /// sequence number used, before the client's first ping).
    pub fn send_video(&mut self, access_unit: &[u8], info: FrameInfo) -> Result<usize, VideoError> {
        let Some(to) = self.video_client else {
            return Ok(0);
        };
        let batch = self.video.packetize(access_unit, info)?;
        let n = batch.len();
        self.bursts.push_back(MediaBurst {
            socket: StreamSocket::Video,
            to,
            stride: batch.stride(),
            bytes: batch.as_bytes().to_vec(),
        });
        Ok(n)
    }

    /// Packetizes one Opus packet (and, at the end of a block, its FEC) for the audio client;
    /// returns the datagrams queued (0, and no sequence number used, before the first ping, so
    /// that the client's first datagram is sequence 0).
    pub fn send_audio(&mut self, opus: &[u8]) -> usize {
        let Some(to) = self.audio_client else {
            return 0;
        };
        let datagrams = self.audio.push(opus);
        let n = datagrams.len();
        self.bursts
            .extend(datagrams.into_iter().map(|bytes| MediaBurst {
                socket: StreamSocket::Audio,
                to,
                stride: bytes.len(),
                bytes,
            }));
        n
    }

    /// The next datagrams to send, a whole frame (or one audio datagram) at a time.
    pub fn poll_burst(&mut self) -> Option<MediaBurst> {
        let mut burst = self.bursts.pop_front()?;
        if self.front_sent > 0 {
            burst.bytes.drain(..self.front_sent);
            self.front_sent = 0;
        }
        Some(burst)
    }

    /// The next datagram to send, one at a time.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        let burst = self.bursts.front()?;
        let start = self.front_sent;
        let end = (start + burst.stride.max(1)).min(burst.bytes.len());
        let transmit = Transmit {
            socket: burst.socket,
            to: burst.to,
            payload: burst.bytes[start..end].to_vec(),
        };
        if end >= burst.bytes.len() {
            self.bursts.pop_front();
            self.front_sent = 0;
        } else {
            self.front_sent = end;
        }
        Some(transmit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::video::FrameType;

    const PAYLOAD: [u8; 16] = *b"0123456789ABCDEF";

    fn core(video: PingRule, audio: PingRule) -> HostMediaCore {
        HostMediaCore::new(HostMediaParams {
            video_pings: video,
            audio_pings: audio,
            video: PacketizerConfig {
                packet_size: 256,
                ..Default::default()
            },
            audio: AudioPacketizerConfig {
                packet_duration_ms: 5,
                encryption: None,
            },
        })
        .unwrap()
    }

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn the_video_rule_without_payload_takes_any_ss_ping_and_legacy_ping_only() {
        let rule = PingRule {
            matcher: PingMatcher {
                payload: None,
                accept_legacy: true,
                any_datagram_is_ping: false,
            },
            client_ip: None,
            any_ss_ping_without_payload: true,
        };
        let from = addr("10.0.0.1:5000");
        assert!(rule.matches(from, b"PING"));
        assert!(rule.matches(from, &crate::ping::encode_ss_ping(b"FEDCBA9876543210", 1)));
        assert!(!rule.matches(from, b"PONG"));
        assert!(!rule.matches(from, &[0u8; 19]));
        let with_payload = PingRule {
            matcher: PingMatcher {
                payload: Some(PAYLOAD),
                ..rule.matcher
            },
            ..rule
        };
        assert!(!with_payload.matches(from, &crate::ping::encode_ss_ping(b"FEDCBA9876543210", 1)));
        assert!(with_payload.matches(from, &crate::ping::encode_ss_ping(&PAYLOAD, 3)));
    }

    #[test]
    fn the_first_matching_ping_opens_a_stream_and_later_ones_change_nothing() {
        let ss = PingMatcher {
            payload: Some(PAYLOAD),
            accept_legacy: false,
            any_datagram_is_ping: false,
        };
        let audio = PingRule {
            client_ip: Some("10.0.0.1".parse().unwrap()),
            ..PingRule::from(ss)
        };
        let mut core = core(ss.into(), audio);
        let ping = crate::ping::encode_ss_ping(&PAYLOAD, 1);
        assert_eq!(core.send_audio(b"x"), 0, "nothing before a ping");
        assert_eq!(
            core.handle_input(StreamSocket::Audio, addr("10.0.0.2:1"), &ping),
            None,
            "another IP"
        );
        assert_eq!(
            core.handle_input(StreamSocket::Audio, addr("10.0.0.1:1"), b"PING"),
            None
        );
        let first = addr("10.0.0.1:7");
        assert_eq!(
            core.handle_input(StreamSocket::Audio, first, &ping),
            Some(first)
        );
        assert_eq!(
            core.handle_input(StreamSocket::Audio, addr("10.0.0.1:8"), &ping),
            None
        );
        assert_eq!(core.client(StreamSocket::Audio), Some(first));
        assert_eq!(core.client(StreamSocket::Video), None);
        assert_eq!(core.send_audio(b"x"), 1);
        let burst = core.poll_burst().unwrap();
        assert_eq!(
            (burst.socket, burst.to, burst.len()),
            (StreamSocket::Audio, first, 1)
        );
        assert_eq!(burst.bytes[..2], [0x80, 0x61], "RTP, PT 97, sequence 0");
        assert_eq!(&burst.bytes[2..4], &[0, 0]);
    }

    #[test]
    fn bursts_and_transmits_carry_the_same_datagrams() {
        let ss = PingMatcher {
            payload: Some(PAYLOAD),
            accept_legacy: false,
            any_datagram_is_ping: false,
        };
        let ping = crate::ping::encode_ss_ping(&PAYLOAD, 1);
        let to = addr("127.0.0.1:9");
        let info = FrameInfo {
            frame_index: 1,
            frame_type: FrameType::Idr,
            rtp_timestamp: 0,
            processing_latency: 0,
        };
        let au: Vec<u8> = (0..3000u32).map(|i| i as u8).collect();
        let mut a = core(ss.into(), ss.into());
        let mut b = core(ss.into(), ss.into());
        for c in [&mut a, &mut b] {
            assert_eq!(c.send_video(&au, info).unwrap(), 0, "nothing before a ping");
            c.handle_input(StreamSocket::Video, to, &ping);
            assert!(c.send_video(&au, info).unwrap() > 1);
        }
        let burst = a.poll_burst().unwrap();
        assert!(a.poll_burst().is_none());
        // Split half way through by one transmit: the burst that follows holds the rest.
        let first = b.poll_transmit().unwrap();
        let rest = b.poll_burst().unwrap();
        let mut from_b = vec![first.payload];
        from_b.extend(rest.datagrams().map(<[u8]>::to_vec));
        let from_a: Vec<Vec<u8>> = burst.datagrams().map(<[u8]>::to_vec).collect();
        assert_eq!(from_a, from_b);
        assert!(from_a.iter().all(|d| d.len() == burst.stride));
        let mut c = core(ss.into(), ss.into());
        c.handle_input(StreamSocket::Video, to, &ping);
        c.send_video(&au, info).unwrap();
        let singly: Vec<Vec<u8>> = std::iter::from_fn(|| c.poll_transmit())
            .map(|t| t.payload)
            .collect();
        assert_eq!(singly, from_a);
    }
}
