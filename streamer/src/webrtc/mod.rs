//! WebRTC mode: the streamer owns the browser's peer connection (issue 5, contract §1.5/§3).
//!
//! **Why str0m** (0.25, pinned): it is sans-IO — no threads or tasks of its own, driven from the
//! session's `select!` on the existing tokio runtime — and it leaves the socket to us, so the
//! configured UDP port range and NAT 1:1 addresses are a few lines ([`net`]). It packetizes
//! H.264 (single NAL/STAP-A/FU-A, packetization-mode 1), HEVC and AV1, sends Opus, supports the
//! playout-delay header extension on writes, turns RTCP PLI/FIR into `Event::KeyframeRequest`,
//! and has SCTP data channels. webrtc-rs 0.21 has a TURN client and a browser-like API, but it
//! binds its own sockets (no port range) and runs its own tasks; the project's probe
//! (`dependencies.md` §1) measured both. What str0m lacks — a TURN client — the browser covers:
//! it gets the ICE servers and reaches our host/NAT 1:1 candidates through its relay.
//!
//! * [`net`]: bind one UDP socket in the range; host + NAT 1:1 candidates.
//! * [`channels`]: the contract's data channels ↔ moongate input messages, rumble.
//! * [`peer`]: the peer in two halves. `peer::core` is sans-IO (the `Rtc`, signaling, media
//!   through the bounded keyframe-aware [`wire::backpressure::SendQueue`], the disconnect and
//!   connect timeouts, time passed in) and is tested without a network; `Peer` is its driver
//!   (the UDP socket, its backlog, the timer).

pub mod channels;
pub mod net;
pub mod peer;

pub use peer::{Peer, PeerEnd, PeerLink, PeerOut, StreamInfo};
