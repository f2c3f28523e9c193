//! Signaling: the browser's offer or answer and trickled candidates → a (new) str0m `Rtc`; our
//! description and candidates → the browser.
//!
//! A new remote offer, or `CreateOffer`, replaces the `Rtc` (a re-joining browser has new ICE
//! credentials and a new DTLS fingerprint) and resets everything tied to it; the socket and the
//! candidates stay. Separate from the core because it is the one part that talks SDP.

use std::time::Instant;

use str0m::change::{SdpAnswer, SdpOffer};
use str0m::media::{Direction, MediaKind};
use str0m::rtp::Extension;
use str0m::{Candidate, Rtc};
use wire::ipc::{
    ErrorCode, IceCandidate, LocalSignal, PeerState, RemoteSignal, SdpType, SessionDescription,
};

use super::codec::offer_has_codec;
use super::core::{
    PeerCore, PeerOut, CONNECT_TIMEOUT, PLAYOUT_DELAY_EXT_ID, STATS_INTERVAL, STUN_MAX_RETRANSMITS,
    STUN_MAX_RTO,
};
use crate::webrtc::channels::ChannelKind;

impl PeerCore {
    /// Signaling from the browser, at `now`; drive after.
    pub fn signal(&mut self, signal: RemoteSignal, now: Instant) {
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
    }

    /// A fresh `Rtc` with our candidates, replacing any previous one.
    fn new_rtc(&mut self, now: Instant) -> Rtc {
        let mut config = Rtc::builder()
            .clear_codecs()
            .enable_h264(true)
            .enable_h265(true)
            .enable_av1(true)
            .enable_opus(true, false)
            .set_extension(PLAYOUT_DELAY_EXT_ID, Extension::PlayoutDelay)
            // Loss and round trip from the browser's receiver reports, for the quality controller.
            .set_stats_interval(Some(STATS_INTERVAL));
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
        self.mic = None;
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
        self.link.new_connection();
        rtc
    }

    fn accept_offer(&mut self, sdp: &str, now: Instant) {
        let offer = match SdpOffer::from_sdp_string(sdp) {
            Ok(o) => o,
            Err(e) => return self.unparsable("offer", &e),
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
        // The browser's microphone comes up on an m-line of its own (the host's mic stream takes
        // it when the host has one); without a track on the browser's side nothing flows.
        let mic = api.add_media(MediaKind::Audio, Direction::RecvOnly, None, None, None);
        let general = api.add_channel("general".into());
        self.video = Some((video, None));
        self.audio = audio.map(|mid| (mid, None));
        self.mic = Some(mic);
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
            Err(e) => return self.unparsable("answer", &e),
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

    /// A description str0m could not parse. Its parse error quotes the parser's pointer offsets
    /// (memory addresses): the detail stays in the log, the browser is told what was wrong.
    fn unparsable(&mut self, what: &str, e: &dyn std::fmt::Display) {
        tracing::info!(error = %e, "unparsable {what}");
        self.fail(
            ErrorCode::BadSignal,
            format!("unparsable {what}: not valid SDP"),
        );
    }
}
