//! WebRTC signals that arrive before the peer exists.
//!
//! The browser starts negotiating as soon as its socket is open, while the host stream (and so the
//! peer, which needs the host's codec) is still starting. Those signals are held, in order, and
//! handed to the peer once it exists. The bound is per kind, so that a flood of candidates (a
//! hostile or broken browser) cannot push out the offer behind it.

use wire::ipc::RemoteSignal;

/// Trickled candidates held while the host stream starts.
const MAX_EARLY_CANDIDATES: usize = 256;
/// Descriptions (and offer requests) held while the host stream starts: a browser sends one.
const MAX_EARLY_DESCRIPTIONS: usize = 4;

/// Keeps a signal that came before the peer exists, in order. Candidates and descriptions are
/// bounded apart: a flood of candidates (a hostile or broken browser) must not push out the offer
/// that follows it, which would leave the negotiation hanging with no error.
pub(super) fn hold_early_signal(held: &mut Vec<RemoteSignal>, signal: RemoteSignal) {
    let is_candidate = matches!(signal, RemoteSignal::Candidate(_));
    let count = held
        .iter()
        .filter(|s| matches!(s, RemoteSignal::Candidate(_)) == is_candidate)
        .count();
    let limit = if is_candidate {
        MAX_EARLY_CANDIDATES
    } else {
        MAX_EARLY_DESCRIPTIONS
    };
    if count < limit {
        held.push(signal);
    } else {
        tracing::debug!(
            is_candidate,
            "early signal dropped: too many before the stream started"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flood_of_early_candidates_never_pushes_out_the_offer() {
        let candidate = |i: u32| {
            RemoteSignal::Candidate(wire::ipc::IceCandidate {
                candidate: format!("candidate:{i} 1 UDP 2122252543 192.0.2.1 {i} typ host"),
                sdp_mid: Some("0".into()),
                sdp_mline_index: Some(0),
                username_fragment: None,
            })
        };
        let offer = |n: usize| {
            RemoteSignal::Description(wire::ipc::SessionDescription {
                ty: wire::ipc::SdpType::Offer,
                sdp: format!("v=0 {n}"),
            })
        };
        let mut held = Vec::new();
        for i in 0..1000 {
            hold_early_signal(&mut held, candidate(i));
        }
        hold_early_signal(&mut held, offer(0));
        hold_early_signal(&mut held, candidate(5000));
        assert_eq!(held.len(), MAX_EARLY_CANDIDATES + 1);
        assert_eq!(
            held[MAX_EARLY_CANDIDATES],
            offer(0),
            "the offer is kept, in order"
        );
        // Descriptions are bounded too.
        for n in 1..10 {
            hold_early_signal(&mut held, offer(n));
        }
        let descriptions = held
            .iter()
            .filter(|s| matches!(s, RemoteSignal::Description(_)))
            .count();
        assert_eq!(descriptions, MAX_EARLY_DESCRIPTIONS);
        hold_early_signal(&mut held, RemoteSignal::CreateOffer);
        assert_eq!(held.len(), MAX_EARLY_CANDIDATES + MAX_EARLY_DESCRIPTIONS);
    }
}
