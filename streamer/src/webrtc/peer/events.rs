//! str0m's events (ICE and DTLS state, m-lines, data channels, keyframe requests, the browser's
//! microphone) → the peer's state and the session's [`PeerOut`]s; queued media → str0m's writers.
//!
//! Kept apart from the core's drive loop because this is where the contract lives: which state
//! the browser is told, which channel carries what, and which payload type the host's codec goes
//! out on, and which incoming audio counts as the microphone.
//!
//! The microphone is the browser's upward Opus track (the audio m-line we receive on). Its
//! packets go to the session as they are, with their length in 48 kHz samples read from the TOC
//! byte as for a WebSocket-mode MicOpus, because the hosts' mic stream takes Opus packets and a
//! sample count; nothing is decoded or re-encoded here.

use std::time::Instant;

use str0m::channel::ChannelConfig;
use str0m::format::{Codec, PayloadParams};
use str0m::media::{Direction, Frequency, MediaData, MediaKind, MediaTime, Mid};
use str0m::{Event, IceConnectionState};
use wire::browser::{MicOpus, MAX_OPUS_PACKET};
use wire::ipc::{ErrorCode, PeerState};

use super::codec::{choose_video_pt, codec_matches, h264_profile_idc};
use super::core::{Media, PeerCore, PeerLink, PeerOut};
use crate::webrtc::channels::{self, ChannelKind};

impl PeerCore {
    pub(super) fn event(&mut self, event: Event, now: Instant) {
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
            Event::MediaAdded(m) => self.media_added(m.mid, m.kind, m.direction),
            Event::MediaData(d) => self.media_data(d),
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
            Event::MediaEgressStats(m) if self.video.is_some_and(|(mid, _)| mid == m.mid) => {
                self.link.observe(&m);
            }
            Event::Closed => {
                self.state(PeerState::Closed);
                self.gone("the browser closed the peer connection".into());
            }
            _ => {}
        }
    }

    /// `direction` is ours: the host's audio goes out on the first audio m-line we send on, the
    /// microphone comes in on the first one we receive on (one sendrecv line may be both).
    fn media_added(&mut self, mid: Mid, kind: MediaKind, direction: Direction) {
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
            MediaKind::Audio => {
                if direction.is_sending() && self.audio.is_none() {
                    self.audio = Some((mid, None));
                }
                if direction.is_receiving() && self.mic.is_none() {
                    self.mic = Some(mid);
                }
            }
            _ => {}
        }
    }

    /// Media from the browser: Opus on the microphone's m-line becomes a [`PeerOut::Mic`];
    /// anything else (another m-line, another codec, a malformed packet) is dropped.
    fn media_data(&mut self, d: MediaData) {
        if self.mic != Some(d.mid) {
            tracing::debug!(mid = %d.mid, "media from the browser outside the microphone's m-line dropped");
            return;
        }
        let codec = d.params.spec().codec;
        if codec != Codec::Opus {
            tracing::debug!(?codec, "microphone packet dropped: not Opus");
            return;
        }
        if d.data.len() > MAX_OPUS_PACKET {
            tracing::debug!(
                bytes = d.data.len(),
                "microphone packet dropped: too long for Opus"
            );
            return;
        }
        let samples = MicOpus {
            timestamp: 0,
            data: &d.data,
        }
        .samples();
        match samples {
            Some(samples) => self.out.push_back(PeerOut::Mic(d.data.to_vec(), samples)),
            None => tracing::debug!(
                bytes = d.data.len(),
                "microphone packet dropped: malformed Opus"
            ),
        }
    }

    /// Writes one queued unit on its track; the track's payload type is chosen at its first
    /// unit (for video from the stream's H.264 profile: see [`choose_video_pt`]).
    pub(super) fn write_media(&mut self, media: Media, now: Instant) {
        let (video, data, pts_us) = match media {
            Media::Video { data, pts_us } => (true, data, pts_us),
            Media::Audio { data, pts_us } => (false, data, pts_us),
        };
        let Some(rtc) = self.rtc.as_mut() else {
            return;
        };
        let track = if video {
            self.video.as_mut()
        } else {
            self.audio.as_mut()
        };
        let Some((mid, pt)) = track else {
            return;
        };
        let Some(writer) = rtc.writer(*mid) else {
            return;
        };
        let pt = match pt {
            Some(pt) => *pt,
            None if video => {
                let profile = h264_profile_idc(&data);
                let Some(p) = choose_video_pt(self.info.codec, profile, writer.payload_params())
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
        if video {
            let time = MediaTime::new(pts_us.saturating_mul(9) / 100, Frequency::NINETY_KHZ);
            if let Err(e) = writer
                .playout_delay(MediaTime::ZERO, MediaTime::ZERO)
                .write(pt, now, time, data.to_vec())
            {
                tracing::debug!(error = %e, "video not written");
            }
        } else {
            let time = MediaTime::new(pts_us.saturating_mul(48) / 1000, Frequency::FORTY_EIGHT_KHZ);
            if let Err(e) = writer.write(pt, now, time, data.to_vec()) {
                tracing::debug!(error = %e, "audio not written");
            }
        }
    }
}

impl PeerLink {
    /// One interval of str0m's egress stats for the video m-line.
    fn observe(&mut self, m: &str0m::stats::MediaEgressStats) {
        if let Some(rtt) = m.rtt {
            self.rtt_ms = u32::try_from(rtt.as_millis()).unwrap_or(u32::MAX).max(1);
        }
        if let Some(loss) = m.loss {
            self.loss_permille = (loss.clamp(0.0, 1.0) * 1000.0).round() as u32;
            self.reports += 1;
        }
        self.nacks = self.nacks_before + m.nacks;
    }

    /// A new connection replaces the old one: str0m's counters start again.
    pub(super) fn new_connection(&mut self) {
        self.nacks_before = self.nacks;
    }
}
