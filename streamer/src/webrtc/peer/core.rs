//! The peer's sans-IO core: one str0m `Rtc` (replaceable), its media tracks, data channels,
//! timers and send queue, with time passed in and datagrams passed out.
//!
//! Everything the peer *decides* is here — which payload type, when media may flow, when the
//! browser counts as disconnected or gone, which keyframe requests reach the host — so that it
//! can be tested by feeding it inputs at chosen instants and reading what it produced
//! (`core_tests.rs`), without sockets or a runtime. The driver ([`super::Peer`]) owns the UDP
//! socket and the tokio timer; it hands every datagram to [`PeerCore::receive`], calls
//! [`PeerCore::drive`] after every input, sends what [`PeerCore::poll_transmit`] yields, and
//! sleeps until [`PeerCore::deadline`]. Results for the session come out of
//! [`PeerCore::poll_out`].
//!
//! Signaling is in `signaling.rs`, str0m's events, media writes and the microphone's packets in
//! `events.rs`.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use str0m::change::SdpPendingOffer;
use str0m::channel::ChannelId;
use str0m::media::{Mid, Pt};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Input, Output, Rtc};
use wire::backpressure::{QueueConfig, QueueStats, SendQueue};
use wire::browser::VideoCodec;
use wire::ipc::{ErrorCode, LocalSignal, PeerState, WebRtcSettings};

use super::super::channels::{self, ChannelKind};
use super::super::net::Candidates;

/// A peer that never connects within this long after the descriptions were exchanged has
/// failed (str0m's ICE agent has no "failed" state: it keeps trying while candidates may come).
pub(super) const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// A connected peer from which nothing (RTCP, STUN consent, SCTP) arrived for this long counts
/// as disconnected. Browsers receiving media send RTCP every second and STUN consent checks
/// every few seconds. str0m alone takes ≥ 15 s to notice (a pair stays "possible" for a
/// hard-coded 15 s after the peer's last binding request), which would make "disconnected for
/// 10 s" a 25 s wait.
const PEER_SILENCE: Duration = Duration::from_secs(5);
/// ICE liveness: str0m re-checks the nominated pair every `STUN_MAX_RTO` and calls the peer
/// disconnected after `STUN_MAX_RETRANSMITS` unanswered retransmits (250 ms doubling, capped):
/// 0.25 + 0.5 + 1 + 1 + 1 + 1 ≈ 4.75 s, like pion's 5 s "disconnected". str0m's defaults
/// (3 s, 9) take ≈ 22 s, which would make "disconnected for 10 s" a 32 s wait.
pub(super) const STUN_MAX_RTO: Duration = Duration::from_secs(1);
pub(super) const STUN_MAX_RETRANSMITS: usize = 5;
/// Datagrams held while the socket's send buffer is full; beyond this the oldest go.
/// Browser addresses remembered from STUN requests (host, server-reflexive, relay and a few more).
const ICE_SOURCES: usize = 8;
/// RTP header extension id offered for playout-delay when the streamer makes the offer (an
/// answer uses the browser's id).
pub(super) const PLAYOUT_DELAY_EXT_ID: u8 = 6;
/// How often str0m reports the link (the gateway's quality controller samples once a second).
pub(super) const STATS_INTERVAL: Duration = Duration::from_secs(1);

/// What the peer asks of the session.
#[derive(Debug)]
pub enum PeerOut {
    /// Signaling for the browser.
    Signal(LocalSignal),
    /// A moongate browser input message for the input mapper.
    Input(Vec<u8>),
    /// Ask the host for an IDR (RTCP PLI/FIR, or media restarts after a drop).
    KeyframeRequest(&'static str),
    /// One Opus packet of the browser's microphone (its upward audio track) and its length in
    /// 48 kHz samples, for the host's mic stream (as a WebSocket-mode MicOpus would be).
    Mic(Vec<u8>, u32),
    /// The peer is over: end the stream.
    End(PeerEnd),
}

/// Why the peer ends the stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PeerEnd {
    /// ICE failed or stayed disconnected, or the browser closed the connection.
    Gone(String),
    /// A fatal error (bad signaling, codec mismatch).
    Error(ErrorCode, String),
}

/// Media waiting in the send queue.
pub(super) enum Media {
    Video { data: Bytes, pts_us: u64 },
    Audio { data: Bytes, pts_us: u64 },
}

/// What the peer needs to know about the host stream.
#[derive(Debug, Clone)]
pub struct StreamInfo {
    /// The host's video codec.
    pub codec: VideoCodec,
    /// Audio is streamed.
    pub audio: bool,
    /// The host accepts touch (sent on the `touch` channel when it opens).
    pub touch_supported: bool,
}

/// What the browser's RTCP said about the video it receives (str0m's egress stats, once a
/// second): the link's loss and round trip, for the gateway's quality controller. Cumulative
/// across replaced connections, as the other counters are.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PeerLink {
    /// The last receiver report's round trip, ms (0 = none yet).
    pub rtt_ms: u32,
    /// Loss over the last stats interval with a report, per mille.
    pub loss_permille: u32,
    /// Stats intervals that carried a report.
    pub reports: u64,
    /// NACKs received for video, over every connection so far.
    pub nacks: u64,
    /// NACKs of the connections before the current one (str0m counts per connection).
    pub(super) nacks_before: u64,
}

/// One browser's peer connection (replaceable), without its socket.
pub struct PeerCore {
    pub(super) candidates: Candidates,
    pub(super) disconnect_timeout: Duration,
    pub(super) info: StreamInfo,
    pub(super) rtc: Option<Rtc>,
    pub(super) pending_offer: Option<SdpPendingOffer>,
    pub(super) has_remote_description: bool,
    pub(super) queued_candidates: Vec<Candidate>,
    pub(super) video: Option<(Mid, Option<Pt>)>,
    pub(super) audio: Option<(Mid, Option<Pt>)>,
    /// The audio m-line on which we receive: the browser's microphone.
    pub(super) mic: Option<Mid>,
    pub(super) channels: HashMap<ChannelId, ChannelKind>,
    pub(super) general: Option<ChannelId>,
    pub(super) dtls_connected: bool,
    pub(super) ice_connected: bool,
    pub(super) disconnected_since: Option<Instant>,
    pub(super) connect_deadline: Option<Instant>,
    pub(super) rtc_timeout: Option<Instant>,
    pub(super) last_rx: Option<Instant>,
    pub(super) awaiting_keyframe: bool,
    pub(super) queue: SendQueue<Media>,
    /// Sources of STUN requests for this peer's ICE username (see [`PeerCore::receive`]).
    pub(super) ice_sources: Vec<SocketAddr>,
    pub(super) out: VecDeque<PeerOut>,
    pub(super) active_pads: u16,
    /// Datagrams for the driver to send.
    pub(super) transmit: VecDeque<(SocketAddr, Vec<u8>)>,
    /// Video frames dropped before the queue (not connected, waiting for a keyframe).
    pub(super) frames_dropped: u64,
    pub(super) link: PeerLink,
    pub(super) ended: bool,
}

impl PeerCore {
    /// A core offering `candidates` for the host stream `info`.
    pub fn new(
        candidates: Candidates,
        settings: &WebRtcSettings,
        info: StreamInfo,
        queue: QueueConfig,
    ) -> Self {
        PeerCore {
            candidates,
            disconnect_timeout: Duration::from_millis(u64::from(
                settings.disconnect_timeout_ms.max(1),
            )),
            info,
            rtc: None,
            pending_offer: None,
            has_remote_description: false,
            queued_candidates: Vec::new(),
            video: None,
            audio: None,
            mic: None,
            channels: HashMap::new(),
            general: None,
            dtls_connected: false,
            ice_connected: false,
            disconnected_since: None,
            connect_deadline: None,
            rtc_timeout: None,
            last_rx: None,
            awaiting_keyframe: true,
            queue: SendQueue::new(queue),
            ice_sources: Vec::new(),
            out: VecDeque::new(),
            active_pads: 0,
            transmit: VecDeque::new(),
            frames_dropped: 0,
            link: PeerLink::default(),
            ended: false,
        }
    }

    /// When [`PeerCore::drive`] must run next (str0m's timeout or one of the peer's timers).
    pub fn deadline(&self) -> Option<Instant> {
        let silence = (self.dtls_connected && self.disconnected_since.is_none())
            .then(|| self.last_rx.map(|t| t + PEER_SILENCE))
            .flatten();
        [
            self.rtc_timeout,
            self.connect_deadline,
            silence,
            self.disconnected_since.map(|t| t + self.disconnect_timeout),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// The next result for the session.
    pub fn poll_out(&mut self) -> Option<PeerOut> {
        self.out.pop_front()
    }

    /// The next datagram to send (destination, contents).
    pub fn poll_transmit(&mut self) -> Option<(SocketAddr, Vec<u8>)> {
        self.transmit.pop_front()
    }

    /// Video frames dropped before the queue.
    pub fn frames_dropped(&self) -> u64 {
        self.frames_dropped
    }

    /// What the browser's receiver reports said about the video link.
    pub fn link(&self) -> PeerLink {
        self.link
    }

    /// The send queue's counters.
    pub fn queue_stats(&self, now: Instant) -> QueueStats {
        self.queue.stats(now)
    }

    /// Media flows: ICE and DTLS are up and the video m-line is known.
    pub(super) fn media_ready(&self) -> bool {
        self.dtls_connected && self.ice_connected
    }

    /// One access unit from the host. Returns whether it was queued (else counted as dropped);
    /// drive after a queued one.
    pub fn push_video(&mut self, data: Bytes, keyframe: bool, pts_us: u64, now: Instant) -> bool {
        if !self.media_ready() || (self.awaiting_keyframe && !keyframe) {
            self.awaiting_keyframe = true;
            self.frames_dropped += 1;
            return false;
        }
        self.awaiting_keyframe = false;
        let bytes = data.len();
        self.queue
            .push_video(Media::Video { data, pts_us }, bytes, keyframe, now);
        true
    }

    /// One Opus packet from the host. Returns whether it was queued; drive after a queued one.
    pub fn push_audio(&mut self, data: Bytes, pts_us: u64, now: Instant) -> bool {
        if !self.media_ready() {
            return false;
        }
        let bytes = data.len();
        self.queue
            .push_audio(Media::Audio { data, pts_us }, bytes, now);
        true
    }

    /// Rumble from the host → the `controllers` channel (contract §3.4). Returns false, having
    /// done nothing, for a controller number no browser pad has; drive after true.
    pub fn rumble(&mut self, controller: u16, low: u16, high: u16) -> bool {
        let Ok(id) = u8::try_from(controller) else {
            return false;
        };
        let cid = self
            .channels
            .iter()
            .find(|(_, k)| **k == ChannelKind::Controllers)
            .map(|(id, _)| *id);
        if let (Some(cid), Some(rtc)) = (cid, self.rtc.as_mut()) {
            if let Some(mut ch) = rtc.channel(cid) {
                if let Err(e) = ch.write(true, &channels::rumble(id, low, high)) {
                    tracing::debug!(error = %e, "rumble not sent");
                }
            }
        }
        true
    }

    /// Tells the peer the session's input mapper's gamepad mask.
    pub fn set_active_pads(&mut self, mask: u16) {
        self.active_pads = mask;
    }

    /// Says `"ConnectionTerminated"` on `general` (the first step of closing); drive after.
    pub fn terminate(&mut self) {
        if let (Some(cid), Some(rtc)) = (self.general, self.rtc.as_mut()) {
            if let Some(mut ch) = rtc.channel(cid) {
                let _ = ch.write(false, channels::CONNECTION_TERMINATED.as_bytes());
            }
        }
    }

    /// Closes the peer connection (DTLS close_notify); drive after.
    pub fn disconnect(&mut self) {
        if let Some(rtc) = self.rtc.as_mut() {
            rtc.disconnect();
        }
    }

    pub(super) fn fail(&mut self, code: ErrorCode, message: String) {
        if !self.ended {
            self.ended = true;
            self.out
                .push_back(PeerOut::End(PeerEnd::Error(code, message)));
        }
    }

    pub(super) fn gone(&mut self, message: String) {
        if !self.ended {
            self.ended = true;
            self.out.push_back(PeerOut::End(PeerEnd::Gone(message)));
        }
    }

    pub(super) fn state(&mut self, state: PeerState) {
        self.out
            .push_back(PeerOut::Signal(LocalSignal::State(state)));
    }

    /// A datagram of the peer's socket from `source`, received at `now`; drive after.
    pub fn receive(&mut self, now: Instant, source: SocketAddr, data: &[u8]) {
        let Some(rtc) = self.rtc.as_mut() else {
            return;
        };
        let Some(destination) = self.candidates.destination_for(source) else {
            return;
        };
        let Ok(contents) = data.try_into() else {
            return;
        };
        let input = Input::Receive(
            now,
            Receive {
                proto: Protocol::Udp,
                source,
                destination,
                contents,
            },
        );
        // str0m's `accepts` takes DTLS and SRTP only from a pair its own checks have proven. The
        // browser starts DTLS as soon as *its* check succeeds, often before ours; refusing that
        // ClientHello cost a whole DTLS retransmission (about a second) before the first frame.
        // The socket is this peer's alone, so a source that sent a STUN request for our ICE
        // username is the browser; DTLS then proves it with the certificate fingerprint.
        let stun = data.first().is_some_and(|b| *b < 4);
        let known = !stun && self.ice_sources.contains(&source);
        if !known && !rtc.accepts(&input) {
            return;
        }
        if stun && !self.ice_sources.contains(&source) && self.ice_sources.len() < ICE_SOURCES {
            self.ice_sources.push(source);
        }
        if let Err(e) = rtc.handle_input(input) {
            tracing::info!(error = %e, "peer input failed; closing the peer");
            rtc.disconnect();
        }
        self.last_rx = Some(now);
        // Back from silence (and ICE never gave up): connected again.
        if self.disconnected_since.is_some() && self.ice_connected {
            tracing::info!("the peer is back");
            self.disconnected_since = None;
            self.state(PeerState::Connected);
            self.out
                .push_back(PeerOut::KeyframeRequest("peer reconnected"));
        }
    }

    /// Hands queued media to str0m (only while `socket_ready`: the driver's socket keeps up),
    /// polls str0m until it waits, and checks the peer's timers.
    pub fn drive(&mut self, now: Instant, socket_ready: bool) {
        if self.ended {
            return;
        }
        if self.media_ready() && socket_ready {
            while let Some(media) = self.queue.pop(now) {
                self.write_media(media, now);
            }
        }
        if self.media_ready() && self.queue.take_keyframe_request(now) {
            self.out
                .push_back(PeerOut::KeyframeRequest("WebRTC send queue overflow"));
        }
        // Bounded: str0m always ends with a future Timeout, but a bug there must not hang us.
        for _ in 0..100_000 {
            let Some(rtc) = self.rtc.as_mut() else {
                self.rtc_timeout = None;
                break;
            };
            if !rtc.is_alive() {
                self.rtc_timeout = None;
                self.state(PeerState::Closed);
                self.gone("the peer connection closed".into());
                return;
            }
            match rtc.poll_output() {
                Ok(Output::Timeout(t)) => {
                    self.rtc_timeout = Some(t);
                    // str0m needs a Timeout input to move time forward; give it when due.
                    if t <= now {
                        if let Err(e) = rtc.handle_input(Input::Timeout(now)) {
                            tracing::info!(error = %e, "peer timeout handling failed");
                            rtc.disconnect();
                        }
                        continue;
                    }
                    break;
                }
                Ok(Output::Transmit(t)) => {
                    let data: &[u8] = &t.contents;
                    self.transmit.push_back((t.destination, data.to_vec()));
                }
                Ok(Output::Event(e)) => self.event(e, now),
                Err(e) => {
                    tracing::info!(error = %e, "peer failed");
                    rtc.disconnect();
                }
            }
        }
        self.check_timers(now);
    }

    fn check_timers(&mut self, now: Instant) {
        if self.dtls_connected && self.disconnected_since.is_none() {
            if let Some(t) = self.last_rx {
                if now.duration_since(t) >= PEER_SILENCE {
                    tracing::info!(
                        silent_ms = now.duration_since(t).as_millis() as u64,
                        "nothing from the peer: disconnected"
                    );
                    self.disconnected_since = Some(now);
                    self.state(PeerState::Disconnected);
                }
            }
        }
        if let Some(since) = self.disconnected_since {
            if now.duration_since(since) >= self.disconnect_timeout {
                self.state(PeerState::Failed);
                return self.gone(format!(
                    "the peer stayed disconnected for {} ms",
                    self.disconnect_timeout.as_millis()
                ));
            }
        }
        if let Some(deadline) = self.connect_deadline {
            if now >= deadline {
                self.state(PeerState::Failed);
                self.gone(format!(
                    "ICE failed: no connection within {} s",
                    CONNECT_TIMEOUT.as_secs()
                ));
            }
        }
    }
}
