//! The browser's side of WebRTC signaling for tests with the str0m test peer
//! ([`super::rtc_peer`]): offer and trickle on `WebRtcConfig`, relay the answer and candidates,
//! and watch the negotiation until a condition holds.

#![allow(dead_code)]

use std::collections::HashSet;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use tokio::time::timeout;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use wire::browser::signaling::{
    ClientMessage, RtcIceCandidate, RtcSdpType, RtcSessionDescription, ServerMessage, Signaling,
};

use super::common::Ws;
use super::rtc_peer::{PeerEvent, RtcPeer};

/// Sends our description (`ty`) and our one host candidate, as the browser does.
pub async fn send_description(ws: &mut Ws, ty: RtcSdpType, peer: &RtcPeer) {
    ws.send(signal(Signaling::Description(RtcSessionDescription {
        ty,
        sdp: peer.offer.clone(),
    })))
    .await
    .unwrap();
    ws.send(signal(Signaling::AddIceCandidate(RtcIceCandidate {
        candidate: peer.local_candidate.clone(),
        sdp_mid: Some("0".into()),
        sdp_mline_index: Some(0),
        username_fragment: None,
    })))
    .await
    .unwrap();
}

pub fn signal(s: Signaling) -> WsMessage {
    let text = serde_json::to_string(&ClientMessage::Signaling(s)).unwrap();
    WsMessage::Text(text.into())
}

/// Progress of one negotiation as seen by the browser side.
#[derive(Default)]
pub struct Seen {
    pub stages: Vec<String>,
    pub config: bool,
    pub answer: bool,
    pub complete: Option<(u32, u32)>,
    pub connected: bool,
    pub channels: HashSet<String>,
    pub first_video: Option<Instant>,
    pub server_candidates: usize,
    pub video: usize,
    pub audio: usize,
    /// Access units from the first IDR on.
    pub frames: Vec<Vec<u8>>,
}

/// A new peer negotiated on `ws` until its first video frame, within `within`.
pub async fn first_video(ws: &mut Ws, within: Duration) -> RtcPeer {
    let mut peer = RtcPeer::start();
    let mut seen = Seen::default();
    negotiate(ws, &mut peer, &mut seen, within, |s| {
        s.first_video.is_some()
    })
    .await;
    peer
}

/// Reads the socket until `WebRtcConfig`, then offers (+ trickles the host candidate) and
/// relays the answer and candidates to the peer. Returns the peer once `until(seen)` holds.
pub async fn negotiate(
    ws: &mut Ws,
    peer: &mut RtcPeer,
    seen: &mut Seen,
    within: Duration,
    until: impl Fn(&Seen) -> bool,
) {
    let deadline = Instant::now() + within;
    let mut offered = false;
    while !until(seen) {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(
            !left.is_zero(),
            "negotiation timed out: video {} audio {} connected {}, answer {}, stages {:?}, channels {:?}, complete {:?}",
            seen.video,
            seen.audio,
            seen.connected,
            seen.answer,
            seen.stages,
            seen.channels,
            seen.complete
        );
        tokio::select! {
            msg = timeout(left, ws.next()) => {
                let Ok(msg) = msg else { continue };
                let msg = msg.expect("socket ended").expect("socket error");
                let WsMessage::Text(t) = msg else {
                    if let WsMessage::Close(c) = msg { panic!("closed during negotiation: {c:?}"); }
                    continue;
                };
                match ServerMessage::parse(&t).unwrap_or_else(|e| panic!("bad server JSON {t}: {e}")) {
                    ServerMessage::StageStarting { stage } | ServerMessage::StageComplete { stage } => seen.stages.push(stage),
                    ServerMessage::WebRtcConfig { .. } => {
                        seen.config = true;
                        if !offered {
                            offered = true;
                            send_description(ws, RtcSdpType::Offer, peer).await;
                        }
                    }
                    ServerMessage::Signaling(Signaling::Description(d)) => {
                        assert_eq!(d.ty, RtcSdpType::Answer);
                        seen.answer = true;
                        peer.accept_answer(&d.sdp);
                    }
                    ServerMessage::Signaling(Signaling::AddIceCandidate(c)) => {
                        seen.server_candidates += 1;
                        peer.add_remote_candidate(&c.candidate);
                    }
                    ServerMessage::ConnectionComplete { width, height, .. } => seen.complete = Some((width, height)),
                    other => panic!("unexpected server message during negotiation: {other:?}"),
                }
            }
            ev = peer.events.recv() => match ev.expect("peer loop ended") {
                PeerEvent::Connected => seen.connected = true,
                PeerEvent::ChannelOpen(l) => { seen.channels.insert(l); }
                PeerEvent::Video(au, idr, _) => {
                    seen.video += 1;
                    if idr && seen.first_video.is_none() {
                        seen.first_video = Some(Instant::now());
                    }
                    if seen.first_video.is_some() {
                        seen.frames.push(au);
                    }
                }
                PeerEvent::Audio(_) => seen.audio += 1,
                PeerEvent::Closed(e) => panic!("peer closed: {e:?}"),
                _ => {}
            }
        }
    }
}
