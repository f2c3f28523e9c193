//! The streamer's WebRTC peer: one str0m `Rtc` driven on the session's tokio task.
//!
//! str0m is sans-IO: [`Peer::wait`] waits for the one UDP socket or the next timer (cancel-safe,
//! so it is a branch of the session's `select!`), [`Peer::handle`] feeds what came in and drains
//! str0m's output — datagrams go out with `try_send_to`; if the kernel buffer is full they wait
//! in a small bounded backlog and no new media is handed to str0m until it is written, so media
//! piles up in the [`SendQueue`] instead, whose time budget drops whole frames up to the next
//! keyframe (the WebSocket mode's policy, same counters). Results for the session (signals,
//! input, keyframe requests, the end) come out of [`Peer::poll_out`].
//!
//! A new remote offer, or `CreateOffer`, replaces the `Rtc` (a re-joining browser has new ICE
//! credentials and a new DTLS fingerprint); the socket stays.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use str0m::change::{SdpAnswer, SdpOffer, SdpPendingOffer};
use str0m::channel::{ChannelConfig, ChannelId};
use str0m::format::{Codec, PayloadParams};
use str0m::media::{Direction, Frequency, MediaKind, MediaTime, Mid, Pt};
use str0m::net::{Protocol, Receive};
use str0m::rtp::Extension;
use str0m::{Candidate, Event, IceConnectionState, Input, Output, Rtc};
use tokio::net::UdpSocket;
use wire::backpressure::{QueueConfig, QueueStats, SendQueue};
use wire::browser::VideoCodec;
use wire::ipc::{
    ErrorCode, IceCandidate, LocalSignal, PeerState, RemoteSignal, SdpType, SessionDescription,
    WebRtcSettings,
};

use super::channels::{self, ChannelKind};
use super::net::Candidates;

/// A peer that never connects within this long after the descriptions were exchanged has
/// failed (str0m's ICE agent has no "failed" state: it keeps trying while candidates may come).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
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
const STUN_MAX_RTO: Duration = Duration::from_secs(1);
const STUN_MAX_RETRANSMITS: usize = 5;
/// Datagrams held while the socket's send buffer is full; beyond this the oldest go.
const BACKLOG: usize = 1024;
/// Browser addresses remembered from STUN requests (host, server-reflexive, relay and a few more).
const ICE_SOURCES: usize = 8;
/// RTP header extension id offered for playout-delay when the streamer makes the offer (an
/// answer uses the browser's id).
const PLAYOUT_DELAY_EXT_ID: u8 = 6;

/// What the peer asks of the session.
#[derive(Debug)]
pub enum PeerOut {
    /// Signaling for the browser.
    Signal(LocalSignal),
    /// A moongate browser input message for the input mapper.
    Input(Vec<u8>),
    /// Ask the host for an IDR (RTCP PLI/FIR, or media restarts after a drop).
    KeyframeRequest(&'static str),
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

/// What [`Peer::wait`] saw.
#[derive(Debug)]
pub enum PeerIo {
    /// A datagram of this length from this source is in the buffer.
    Received(usize, SocketAddr),
    /// The socket failed to read (logged; transient errors such as ICMP port unreachable).
    ReadError(std::io::Error),
    /// The backlog can be written.
    Writable,
    /// A timer is due.
    Timer,
}

enum Media {
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

/// The peer's counters, for `Stats`.
#[derive(Debug, Clone, Copy, Default)]
pub struct PeerCounters {
    /// Video frames dropped before the queue (peer not connected, waiting for a keyframe).
    pub frames_dropped: u64,
    /// Datagrams dropped because the backlog was full.
    pub datagrams_dropped: u64,
}

/// One browser's peer connection (replaceable) on one UDP socket.
pub struct Peer {
    socket: UdpSocket,
    candidates: Candidates,
    disconnect_timeout: Duration,
    info: StreamInfo,
    rtc: Option<Rtc>,
    pending_offer: Option<SdpPendingOffer>,
    has_remote_description: bool,
    queued_candidates: Vec<Candidate>,
    video: Option<(Mid, Option<Pt>)>,
    audio: Option<(Mid, Option<Pt>)>,
    channels: HashMap<ChannelId, ChannelKind>,
    general: Option<ChannelId>,
    dtls_connected: bool,
    ice_connected: bool,
    disconnected_since: Option<Instant>,
    connect_deadline: Option<Instant>,
    rtc_timeout: Option<Instant>,
    last_rx: Option<Instant>,
    awaiting_keyframe: bool,
    queue: SendQueue<Media>,
    backlog: VecDeque<(SocketAddr, Vec<u8>)>,
    /// Sources of STUN requests for this peer's ICE username (see [`Peer::receive`]).
    ice_sources: Vec<SocketAddr>,
    buf: Vec<u8>,
    out: VecDeque<PeerOut>,
    active_pads: u16,
    counters: PeerCounters,
    ended: bool,
}

impl Peer {
    /// A peer on `socket` (bound by [`super::net::bind`]) for the host stream `info`.
    pub fn new(
        socket: UdpSocket,
        settings: &WebRtcSettings,
        info: StreamInfo,
        queue: QueueConfig,
    ) -> Result<Self, super::net::NetError> {
        let bound = socket
            .local_addr()
            .map_err(|e| super::net::NetError::Settings(format!("socket address: {e}")))?;
        let candidates = Candidates::new(bound, settings)?;
        tracing::info!(
            %bound,
            candidates = ?candidates.all.iter().map(|c| c.to_sdp_string()).collect::<Vec<_>>(),
            "WebRTC peer socket ready"
        );
        Ok(Peer {
            socket,
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
            backlog: VecDeque::new(),
            ice_sources: Vec::new(),
            buf: vec![0; 2048],
            out: VecDeque::new(),
            active_pads: 0,
            counters: PeerCounters::default(),
            ended: false,
        })
    }

    /// Waits for a datagram, writability of the backlog, or the next timer. Cancel-safe.
    pub async fn wait(&mut self) -> PeerIo {
        let silence = (self.dtls_connected && self.disconnected_since.is_none())
            .then(|| self.last_rx.map(|t| t + PEER_SILENCE))
            .flatten();
        let deadline = [
            self.rtc_timeout,
            self.connect_deadline,
            silence,
            self.disconnected_since.map(|t| t + self.disconnect_timeout),
        ]
        .into_iter()
        .flatten()
        .min();
        let timer = async {
            match deadline {
                Some(d) => tokio::time::sleep_until(d.into()).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            r = self.socket.recv_from(&mut self.buf) => match r {
                Ok((n, src)) => PeerIo::Received(n, src),
                Err(e) => PeerIo::ReadError(e),
            },
            r = self.socket.writable(), if !self.backlog.is_empty() => match r {
                Ok(()) => PeerIo::Writable,
                Err(e) => PeerIo::ReadError(e),
            },
            _ = timer => PeerIo::Timer,
        }
    }

    /// Handles what [`Peer::wait`] returned, then drives the peer.
    pub fn handle(&mut self, io: PeerIo) {
        let now = Instant::now();
        match io {
            PeerIo::Received(n, source) => self.receive(n, source, now),
            PeerIo::ReadError(e) => tracing::debug!(error = %e, "UDP socket error"),
            PeerIo::Writable => self.flush_backlog(),
            PeerIo::Timer => {}
        }
        self.drive(now);
    }

    /// The next result for the session.
    pub fn poll_out(&mut self) -> Option<PeerOut> {
        self.out.pop_front()
    }

    /// The peer's counters.
    pub fn counters(&self) -> PeerCounters {
        self.counters
    }

    /// The send queue's counters.
    pub fn queue_stats(&self) -> QueueStats {
        self.queue.stats(Instant::now())
    }

    /// Media flows: ICE and DTLS are up and the video m-line is known.
    fn media_ready(&self) -> bool {
        self.dtls_connected && self.ice_connected
    }

    /// One access unit from the host. Returns whether it was accepted (else counted as dropped).
    pub fn push_video(&mut self, data: Bytes, keyframe: bool, pts_us: u64) -> bool {
        let now = Instant::now();
        if !self.media_ready() || (self.awaiting_keyframe && !keyframe) {
            self.awaiting_keyframe = true;
            self.counters.frames_dropped += 1;
            return false;
        }
        self.awaiting_keyframe = false;
        let bytes = data.len();
        self.queue
            .push_video(Media::Video { data, pts_us }, bytes, keyframe, now);
        self.drive(now);
        true
    }

    /// One Opus packet from the host.
    pub fn push_audio(&mut self, data: Bytes, pts_us: u64) -> bool {
        if !self.media_ready() {
            return false;
        }
        let now = Instant::now();
        let bytes = data.len();
        self.queue
            .push_audio(Media::Audio { data, pts_us }, bytes, now);
        self.drive(now);
        true
    }

    /// Rumble from the host → the `controllers` channel (contract §3.4).
    pub fn rumble(&mut self, controller: u16, low: u16, high: u16) {
        let Ok(id) = u8::try_from(controller) else {
            return;
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
        self.drive(Instant::now());
    }

    /// Tells the peer the session's input mapper's gamepad mask.
    pub fn set_active_pads(&mut self, mask: u16) {
        self.active_pads = mask;
    }

    /// Signaling from the browser.
    pub fn signal(&mut self, signal: RemoteSignal) {
        let now = Instant::now();
        match signal {
            RemoteSignal::Description(d) => match d.ty {
                SdpType::Offer => {
                    // str0m reports the m-lines only once connected; check the codec up front.
                    if offer_has_codec(&d.sdp, self.info.codec) {
                        self.accept_offer(&d.sdp, now);
                    } else {
                        let codec = self.info.codec;
                        self.fail(
                            ErrorCode::UnsupportedCodec,
                            format!("the browser's offer has no video m-line accepting {codec:?}, the host's codec"),
                        );
                    }
                }
                SdpType::Answer => self.accept_answer(&d.sdp),
                other => self.fail(
                    ErrorCode::BadSignal,
                    format!("SDP type {other:?} is not supported"),
                ),
            },
            RemoteSignal::Candidate(c) => self.remote_candidate(&c),
            RemoteSignal::CreateOffer => self.create_offer(now),
        }
        self.drive(now);
    }

    /// Ends the peer: `"ConnectionTerminated"` on `general`, then close (DTLS close_notify).
    pub fn close(&mut self) {
        if let (Some(cid), Some(rtc)) = (self.general, self.rtc.as_mut()) {
            if let Some(mut ch) = rtc.channel(cid) {
                let _ = ch.write(false, channels::CONNECTION_TERMINATED.as_bytes());
            }
        }
        self.drive(Instant::now());
        if let Some(rtc) = self.rtc.as_mut() {
            rtc.disconnect();
        }
        self.drive(Instant::now());
        self.flush_backlog();
    }

    fn fail(&mut self, code: ErrorCode, message: String) {
        if !self.ended {
            self.ended = true;
            self.out
                .push_back(PeerOut::End(PeerEnd::Error(code, message)));
        }
    }

    fn gone(&mut self, message: String) {
        if !self.ended {
            self.ended = true;
            self.out.push_back(PeerOut::End(PeerEnd::Gone(message)));
        }
    }

    fn state(&mut self, state: PeerState) {
        self.out
            .push_back(PeerOut::Signal(LocalSignal::State(state)));
    }

    /// A fresh `Rtc` with our candidates, replacing any previous one.
    fn new_rtc(&mut self, now: Instant) -> Rtc {
        let mut config = Rtc::builder()
            .clear_codecs()
            .enable_h264(true)
            .enable_h265(true)
            .enable_av1(true)
            .enable_opus(true, false)
            .set_extension(PLAYOUT_DELAY_EXT_ID, Extension::PlayoutDelay);
        config.set_max_stun_rto(STUN_MAX_RTO);
        config.set_max_stun_retransmits(STUN_MAX_RETRANSMITS);
        let mut rtc = config.build(now);
        for c in &self.candidates.all {
            rtc.add_local_candidate(c.clone());
        }
        self.pending_offer = None;
        self.has_remote_description = false;
        self.video = None;
        self.audio = None;
        self.channels.clear();
        self.general = None;
        self.dtls_connected = false;
        self.ice_connected = false;
        self.disconnected_since = None;
        self.last_rx = None;
        self.ice_sources.clear();
        self.connect_deadline = Some(now + CONNECT_TIMEOUT);
        self.awaiting_keyframe = true;
        self.queue.reset_video(now);
        rtc
    }

    fn accept_offer(&mut self, sdp: &str, now: Instant) {
        let offer = match SdpOffer::from_sdp_string(sdp) {
            Ok(o) => o,
            Err(e) => {
                // str0m's parse error quotes the parser's pointer offsets (memory addresses):
                // the detail stays in the log, the browser is told what was wrong.
                tracing::info!(error = %e, "unparsable offer");
                return self.fail(
                    ErrorCode::BadSignal,
                    "unparsable offer: not valid SDP".into(),
                );
            }
        };
        if self.rtc.is_some() {
            tracing::info!("a new offer replaces the current peer connection");
        }
        let mut rtc = self.new_rtc(now);
        match rtc.sdp_api().accept_offer(offer) {
            Ok(answer) => {
                self.rtc = Some(rtc);
                self.has_remote_description = true;
                self.add_queued_candidates();
                self.send_description(SdpType::Answer, answer.to_sdp_string());
            }
            Err(e) => self.fail(ErrorCode::BadSignal, format!("offer not accepted: {e}")),
        }
    }

    fn create_offer(&mut self, now: Instant) {
        let mut rtc = self.new_rtc(now);
        let mut api = rtc.sdp_api();
        // Our own m-lines raise no MediaAdded: remember them here.
        let video = api.add_media(MediaKind::Video, Direction::SendOnly, None, None, None);
        let audio = self
            .info
            .audio
            .then(|| api.add_media(MediaKind::Audio, Direction::SendOnly, None, None, None));
        let general = api.add_channel("general".into());
        self.video = Some((video, None));
        self.audio = audio.map(|mid| (mid, None));
        self.general = Some(general);
        self.channels.insert(general, ChannelKind::General);
        match api.apply() {
            Some((offer, pending)) => {
                self.pending_offer = Some(pending);
                self.rtc = Some(rtc);
                self.send_description(SdpType::Offer, offer.to_sdp_string());
            }
            None => self.fail(ErrorCode::Internal, "nothing to offer".into()),
        }
    }

    fn accept_answer(&mut self, sdp: &str) {
        let (Some(rtc), Some(pending)) = (self.rtc.as_mut(), self.pending_offer.take()) else {
            return self.fail(
                ErrorCode::BadSignal,
                "an answer arrived but no offer is pending".into(),
            );
        };
        let answer = match SdpAnswer::from_sdp_string(sdp) {
            Ok(a) => a,
            Err(e) => {
                // str0m's parse error quotes the parser's pointer offsets (memory addresses):
                // the detail stays in the log, the browser is told what was wrong.
                tracing::info!(error = %e, "unparsable answer");
                return self.fail(
                    ErrorCode::BadSignal,
                    "unparsable answer: not valid SDP".into(),
                );
            }
        };
        match rtc.sdp_api().accept_answer(pending, answer) {
            Ok(()) => {
                self.has_remote_description = true;
                self.add_queued_candidates();
            }
            Err(e) => self.fail(ErrorCode::BadSignal, format!("answer not accepted: {e}")),
        }
    }

    fn send_description(&mut self, ty: SdpType, sdp: String) {
        // Trickled copies of the candidates name the first m-line (BUNDLE: one transport) and
        // our ufrag, taken from the SDP itself so they always match it.
        let attr = |name: &str| {
            sdp.lines()
                .find_map(|l| l.trim().strip_prefix(name))
                .map(str::to_string)
        };
        let (mid, ufrag) = (attr("a=mid:"), attr("a=ice-ufrag:"));
        self.out.push_back(PeerOut::Signal(LocalSignal::Description(
            SessionDescription { ty, sdp },
        )));
        for c in &self.candidates.all {
            self.out
                .push_back(PeerOut::Signal(LocalSignal::Candidate(IceCandidate {
                    candidate: c.to_sdp_string(),
                    sdp_mid: mid.clone(),
                    sdp_mline_index: Some(0),
                    username_fragment: ufrag.clone(),
                })));
        }
        self.state(PeerState::Checking);
    }

    fn remote_candidate(&mut self, c: &IceCandidate) {
        let line = c.candidate.trim().trim_start_matches("a=");
        if line.is_empty() {
            return; // end of candidates
        }
        match Candidate::from_sdp_string(line) {
            Ok(candidate) => {
                if let (Some(rtc), true) = (self.rtc.as_mut(), self.has_remote_description) {
                    rtc.add_remote_candidate(candidate);
                } else if self.queued_candidates.len() < 64 {
                    self.queued_candidates.push(candidate);
                }
            }
            // mDNS (`.local`) candidates cannot be resolved here; the browser's peer-reflexive
            // address is learned from its checks anyway.
            Err(e) => tracing::debug!(error = %e, candidate = line, "remote candidate ignored"),
        }
    }

    fn add_queued_candidates(&mut self) {
        if let Some(rtc) = self.rtc.as_mut() {
            for c in self.queued_candidates.drain(..) {
                rtc.add_remote_candidate(c);
            }
        }
    }

    fn receive(&mut self, n: usize, source: SocketAddr, now: Instant) {
        let Some(rtc) = self.rtc.as_mut() else {
            return;
        };
        let Some(destination) = self.candidates.destination_for(source) else {
            return;
        };
        let Ok(contents) = self.buf[..n].try_into() else {
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
        let stun = self.buf.first().is_some_and(|b| *b < 4);
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

    fn send(&mut self, destination: SocketAddr, data: &[u8]) {
        if self.backlog.is_empty() {
            match self.socket.try_send_to(data, destination) {
                Ok(_) => return,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(e) => {
                    tracing::debug!(error = %e, %destination, "UDP send failed");
                    return;
                }
            }
        }
        if self.backlog.len() >= BACKLOG {
            self.backlog.pop_front();
            self.counters.datagrams_dropped += 1;
        }
        self.backlog.push_back((destination, data.to_vec()));
    }

    fn flush_backlog(&mut self) {
        while let Some((dst, data)) = self.backlog.front() {
            match self.socket.try_send_to(data, *dst) {
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return,
                Err(e) => tracing::debug!(error = %e, "UDP send failed"),
            }
            self.backlog.pop_front();
        }
    }

    /// Hands queued media to str0m (only while the socket keeps up), polls str0m until it
    /// waits, and checks the peer's timers.
    fn drive(&mut self, now: Instant) {
        if self.ended {
            return;
        }
        if self.media_ready() && self.backlog.is_empty() {
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
                    let dst = t.destination;
                    let data: &[u8] = &t.contents;
                    let data = data.to_vec();
                    self.send(dst, &data);
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

    fn event(&mut self, event: Event, now: Instant) {
        match event {
            Event::IceConnectionStateChange(s) => {
                tracing::info!(state = ?s, "ICE state");
                match s {
                    IceConnectionState::New | IceConnectionState::Checking => {}
                    IceConnectionState::Connected | IceConnectionState::Completed => {
                        let was = self.ice_connected || self.disconnected_since.is_none();
                        self.ice_connected = true;
                        if self.disconnected_since.take().is_some() || !was {
                            self.state(PeerState::Connected);
                            self.out
                                .push_back(PeerOut::KeyframeRequest("peer reconnected"));
                        }
                    }
                    IceConnectionState::Disconnected => {
                        self.ice_connected = false;
                        if self.disconnected_since.is_none() {
                            self.disconnected_since = Some(now);
                            self.state(PeerState::Disconnected);
                        }
                    }
                }
            }
            Event::Connected => {
                tracing::info!("peer connected (ICE + DTLS)");
                self.dtls_connected = true;
                self.ice_connected = true;
                self.connect_deadline = None;
                self.state(PeerState::Connected);
                self.out
                    .push_back(PeerOut::KeyframeRequest("peer connected"));
                // `general` is ours (contract §3.3); in-band (DCEP) when the browser offered.
                if self.general.is_none() {
                    if let Some(rtc) = self.rtc.as_mut() {
                        let id = rtc.direct_api().create_data_channel(ChannelConfig {
                            label: "general".into(),
                            ..ChannelConfig::default()
                        });
                        self.general = Some(id);
                        self.channels.insert(id, ChannelKind::General);
                    }
                }
            }
            Event::MediaAdded(m) => self.media_added(m.mid, m.kind),
            Event::KeyframeRequest(r) => {
                tracing::debug!(kind = ?r.kind, "browser asked for a keyframe");
                self.out.push_back(PeerOut::KeyframeRequest("RTCP PLI/FIR"));
            }
            Event::ChannelOpen(id, label) => {
                tracing::info!(label = %label, "data channel open");
                match ChannelKind::from_label(&label) {
                    Some(kind) => {
                        self.channels.insert(id, kind);
                        if kind == ChannelKind::General {
                            self.general = Some(id);
                        }
                        if kind == ChannelKind::Touch {
                            let byte = [u8::from(self.info.touch_supported)];
                            if let Some(mut ch) = self.rtc.as_mut().and_then(|r| r.channel(id)) {
                                let _ = ch.write(true, &byte);
                            }
                        }
                    }
                    None => tracing::debug!(label = %label, "unknown data channel ignored"),
                }
            }
            Event::ChannelData(d) => {
                let Some(kind) = self.channels.get(&d.id).copied() else {
                    return;
                };
                if kind == ChannelKind::General {
                    return;
                }
                match channels::to_browser_message(kind, &d.data, self.active_pads) {
                    Ok(msg) => self.out.push_back(PeerOut::Input(msg)),
                    Err(e) => tracing::debug!(error = %e, "data channel input dropped"),
                }
            }
            Event::ChannelClose(id) => {
                self.channels.remove(&id);
            }
            Event::Closed => {
                self.state(PeerState::Closed);
                self.gone("the browser closed the peer connection".into());
            }
            _ => {}
        }
    }

    fn media_added(&mut self, mid: Mid, kind: MediaKind) {
        match kind {
            MediaKind::Video if self.video.is_none() => {
                let offered: Vec<PayloadParams> = self
                    .rtc
                    .as_mut()
                    .and_then(|r| r.writer(mid))
                    .map(|w| w.payload_params().cloned().collect())
                    .unwrap_or_default();
                if !offered.iter().any(|p| codec_matches(self.info.codec, p)) {
                    let names: Vec<String> = offered
                        .iter()
                        .map(|p| format!("{:?}", p.spec().codec))
                        .collect();
                    return self.fail(
                        ErrorCode::UnsupportedCodec,
                        format!(
                            "the host streams {:?} but the browser offered only {names:?}",
                            self.info.codec
                        ),
                    );
                }
                self.video = Some((mid, None));
            }
            MediaKind::Audio if self.audio.is_none() => self.audio = Some((mid, None)),
            _ => {}
        }
    }

    fn write_media(&mut self, media: Media, now: Instant) {
        let Some(rtc) = self.rtc.as_mut() else {
            return;
        };
        match media {
            Media::Video { data, pts_us } => {
                let Some((mid, pt)) = self.video.as_mut() else {
                    return;
                };
                let Some(writer) = rtc.writer(*mid) else {
                    return;
                };
                let pt = match pt {
                    Some(pt) => *pt,
                    None => {
                        let profile = h264_profile_idc(&data);
                        let Some(p) =
                            choose_video_pt(self.info.codec, profile, writer.payload_params())
                        else {
                            let codec = self.info.codec;
                            return self.fail(
                                ErrorCode::UnsupportedCodec,
                                format!("the browser did not accept {codec:?}, the host's codec"),
                            );
                        };
                        tracing::info!(pt = %p, codec = ?self.info.codec, ?profile, "video payload type");
                        *pt = Some(p);
                        p
                    }
                };
                let time = MediaTime::new(pts_us.saturating_mul(9) / 100, Frequency::NINETY_KHZ);
                if let Err(e) = writer
                    .playout_delay(MediaTime::ZERO, MediaTime::ZERO)
                    .write(pt, now, time, data.to_vec())
                {
                    tracing::debug!(error = %e, "video not written");
                }
            }
            Media::Audio { data, pts_us } => {
                let Some((mid, pt)) = self.audio.as_mut() else {
                    return;
                };
                let Some(writer) = rtc.writer(*mid) else {
                    return;
                };
                let pt = match pt {
                    Some(pt) => *pt,
                    None => {
                        let Some(p) = writer
                            .payload_params()
                            .find(|p| p.spec().codec == Codec::Opus)
                            .map(|p| p.pt())
                        else {
                            return;
                        };
                        *pt = Some(p);
                        p
                    }
                };
                let time =
                    MediaTime::new(pts_us.saturating_mul(48) / 1000, Frequency::FORTY_EIGHT_KHZ);
                if let Err(e) = writer.write(pt, now, time, data.to_vec()) {
                    tracing::debug!(error = %e, "audio not written");
                }
            }
        }
    }
}

fn codec_matches(codec: VideoCodec, p: &PayloadParams) -> bool {
    let spec = p.spec();
    match codec {
        VideoCodec::H264 | VideoCodec::H264High444 => {
            spec.codec == Codec::H264 && spec.format.packetization_mode.unwrap_or(0) == 1
        }
        VideoCodec::HevcMain
        | VideoCodec::HevcMain10
        | VideoCodec::HevcRext8_444
        | VideoCodec::HevcRext10_444 => spec.codec == Codec::H265,
        VideoCodec::Av1Main8
        | VideoCodec::Av1Main10
        | VideoCodec::Av1High8_444
        | VideoCodec::Av1High10_444 => spec.codec == Codec::Av1,
    }
}

/// The payload type for the host's codec: for H.264 packetization-mode 1, the one whose
/// profile matches the stream's SPS if offered (constrained baseline 0x42, main 0x4d, high 0x64),
/// else the first.
fn choose_video_pt<'a>(
    codec: VideoCodec,
    profile_idc: Option<u8>,
    params: impl Iterator<Item = &'a PayloadParams>,
) -> Option<Pt> {
    let matching: Vec<&PayloadParams> = params.filter(|p| codec_matches(codec, p)).collect();
    let by_profile = profile_idc.and_then(|idc| {
        matching.iter().find(|p| {
            p.spec()
                .format
                .profile_level_id
                .is_some_and(|id| (id >> 16) as u8 == idc)
        })
    });
    by_profile.or(matching.first()).map(|p| p.pt())
}

/// Whether an offer has a video m-line with the host's codec (H.264 only in packetization-mode
/// 1, which the packetizer produces).
fn offer_has_codec(sdp: &str, codec: VideoCodec) -> bool {
    let name = match codec {
        VideoCodec::H264 | VideoCodec::H264High444 => "h264/90000",
        VideoCodec::HevcMain
        | VideoCodec::HevcMain10
        | VideoCodec::HevcRext8_444
        | VideoCodec::HevcRext10_444 => "h265/90000",
        VideoCodec::Av1Main8
        | VideoCodec::Av1Main10
        | VideoCodec::Av1High8_444
        | VideoCodec::Av1High10_444 => "av1/90000",
    };
    let sdp = sdp.to_ascii_lowercase();
    sdp.split("\nm=").skip(1).any(|section| {
        if !section.starts_with("video ") {
            return false;
        }
        let pts: Vec<&str> = section
            .lines()
            .filter_map(|l| l.trim().strip_prefix("a=rtpmap:"))
            .filter_map(|l| l.split_once(' '))
            .filter(|(_, enc)| enc.trim().starts_with(name))
            .map(|(pt, _)| pt)
            .collect();
        if name != "h264/90000" {
            return !pts.is_empty();
        }
        section.lines().any(|l| {
            l.trim()
                .strip_prefix("a=fmtp:")
                .and_then(|l| l.split_once(' '))
                .is_some_and(|(pt, params)| {
                    pts.contains(&pt) && params.contains("packetization-mode=1")
                })
        })
    })
}

/// `profile_idc` of the first H.264 SPS in an Annex B access unit.
fn h264_profile_idc(au: &[u8]) -> Option<u8> {
    let mut i = 0;
    while i + 4 < au.len() {
        if au[i] == 0 && au[i + 1] == 0 && au[i + 2] == 1 {
            if au[i + 3] & 0x1f == 7 {
                return au.get(i + 4).copied();
            }
            i += 3;
        } else {
            i += 1;
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offer_codec_check() {
        let offer = "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=rtpmap:111 opus/48000/2\r\n\
                     m=video 9 UDP/TLS/RTP/SAVPF 96 102 45\r\na=rtpmap:96 VP8/90000\r\n\
                     a=rtpmap:102 H264/90000\r\n\
                     a=fmtp:102 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f\r\n\
                     a=rtpmap:45 AV1/90000\r\n";
        assert!(offer_has_codec(offer, VideoCodec::H264));
        assert!(offer_has_codec(offer, VideoCodec::Av1Main8));
        assert!(!offer_has_codec(offer, VideoCodec::HevcMain));
        let mode0 = offer.replace("packetization-mode=1", "packetization-mode=0");
        assert!(!offer_has_codec(&mode0, VideoCodec::H264));
        assert!(!offer_has_codec("garbage", VideoCodec::H264));
    }

    #[test]
    fn sps_profile() {
        assert_eq!(
            h264_profile_idc(&[0, 0, 0, 1, 0x67, 0x64, 0, 0x1f, 0, 0, 1, 0x68]),
            Some(0x64)
        );
        assert_eq!(h264_profile_idc(&[0, 0, 1, 0x65, 0x88]), None);
        assert_eq!(h264_profile_idc(&[0, 0, 1, 0x67]), None);
        assert_eq!(h264_profile_idc(&[]), None);
    }
}
