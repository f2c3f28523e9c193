//! Wolf-strict mode ([`crate::DemoHostConfig::wolf_strict`]): the demo host does what an
//! unmodified Wolf does where a gateway could otherwise get away with something a real Wolf
//! punishes. Every end-to-end test that streams from the demo host runs in this mode, so a gateway
//! change that would crash or confuse a real Wolf fails a test instead of a user's stream.
//!
//! What changes (each item observed against a real Wolf; see Wolf's
//! `src/moonlight-server/gst-plugin/video.hpp`, `rest/endpoints.hpp` and `control/control.cpp`):
//!
//! - every video RTP packet carries timestamp 0 (Wolf's payloader never sets it; the SSRC is 0 in
//!   both modes), so a receiver cannot pace or order frames by RTP time;
//! - every video frame shorter than [`WOLF_MIN_FRAME_BYTES`] is padded to exactly that size
//!   ([`pad_like_wolf`]), so a receiver must cope with bytes after the access unit;
//! - live and replayed H.264 is High profile ([`crate::media::H264Profile::High`]; openh264
//!   writes a High SPS but codes CAVLC, see there);
//! - the encoder target is lowered as Wolf lowers it ([`wolf_bitrate_kbps`]);
//! - **the teardown-order trap**: a `/cancel` or an API stop that ends a session while its
//!   client's ENet control peer is still connected is counted and logged as an error
//!   ([`StrictMonitor`]), because a real Wolf crashes there.
//!
//! [`crate::DemoHostConfig::sunshine_extensions`] stays a separate knob: tests run many clients on
//! 127.0.0.1, which Wolf (matching sessions by IP) cannot tell apart.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use gamestream::host::{EndReason, SessionEndObserver, SessionEnding};

use crate::media::VideoCodec;

/// Wolf pads every video frame shorter than this to exactly this many bytes.
pub const WOLF_MIN_FRAME_BYTES: usize = 1000;

/// Wolf's encoder target for a client's bitrate: observed 5000 kbit/s asked → 3428 kbit/s
/// encoded, so the same ratio is applied to every request.
const WOLF_BITRATE_RATIO: (u64, u64) = (3428, 5000);

/// The encoder target Wolf picks when a client asks for `requested_kbps` (the ratio observed on a
/// real Wolf; at least 1). The test pattern compresses far below any target, so the lowering only
/// shows where a stream is filled to its bitrate.
pub fn wolf_bitrate_kbps(requested_kbps: u32) -> u32 {
    let (num, den) = WOLF_BITRATE_RATIO;
    (u64::from(requested_kbps) * num / den).max(1) as u32
}

/// Pads `frame` to exactly [`WOLF_MIN_FRAME_BYTES`] when it is shorter, as Wolf's frames arrive.
///
/// H.264 and HEVC get trailing zero bytes: in an Annex B byte stream `trailing_zero_8bits` may
/// follow the last NAL unit, so every decoder accepts them. AV1 has no such rule (a zero byte
/// reads as the header of a reserved OBU with no size field), so AV1 frames get a padding OBU of
/// the same total size, which decoders skip.
pub fn pad_like_wolf(codec: VideoCodec, frame: &mut Vec<u8>) {
    if frame.len() >= WOLF_MIN_FRAME_BYTES {
        return;
    }
    match codec {
        VideoCodec::H264 | VideoCodec::Hevc => frame.resize(WOLF_MIN_FRAME_BYTES, 0),
        VideoCodec::Av1 => {
            crate::media::pad::pad_to(codec, frame, WOLF_MIN_FRAME_BYTES);
            // Too close to the size for a padding OBU (under 6 bytes short): a second unit would
            // not fit either, so those frames stay a few bytes short.
        }
    }
}

/// How a session ended, as far as the teardown-order trap is concerned.
fn trap_cause(reason: EndReason, api_stop: bool) -> Option<&'static str> {
    match reason {
        EndReason::Cancelled => Some("/cancel"),
        EndReason::Stopped if api_stop => Some("API stop"),
        _ => None,
    }
}

/// Counts the ends that would crash a real Wolf (only when strict; off = counts nothing).
///
/// Real Wolf's `/cancel` (and its API's `sessions/stop`) removes the session and fires a stop event
/// whose handler sends an encrypted termination to the client's ENet peer, which stays in Wolf's
/// table. When that peer's DISCONNECT arrives afterwards, Wolf no longer has the session and
/// crashes. A client that disconnects ENet first and then sends `/cancel` is safe (Wolf logs
/// "Unable to find enet client" and goes on).
///
/// The rule counted here is therefore **"ended by `/cancel` or an API stop while the control peer
/// is connected"**, decided at the end itself (from the host half's synchronous
/// [`SessionEndObserver`] view), not when a disconnect arrives later: a killed client never sends
/// DISCONNECT, but ENet's timeout of its peer is a disconnect event all the same, so Wolf would
/// run into the same crash. Ends by idle timeout, supersede (a new `/launch`), host shutdown, a
/// client's own termination or disconnect are not counted: Wolf fires no stop for a supersede,
/// and the others either find no peer or are not Wolf's crash path.
#[derive(Debug, Default)]
pub struct StrictMonitor {
    enabled: bool,
    disconnects_after_cancel: AtomicU64,
    /// Sessions being stopped through the API right now (set around the host half's stop call,
    /// which reports the end synchronously).
    api_stops: Mutex<HashSet<u64>>,
}

impl StrictMonitor {
    /// A monitor that counts when `enabled` (Wolf-strict mode).
    pub fn new(enabled: bool) -> Self {
        Self {
            enabled,
            ..Self::default()
        }
    }

    /// Wolf-strict mode is on.
    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// Sessions ended by `/cancel` or an API stop while their ENet control peer was connected.
    pub fn disconnects_after_cancel(&self) -> u64 {
        self.disconnects_after_cancel.load(Ordering::Relaxed)
    }

    /// Runs `stop` (an API stop of `session_id`) so that its end is recognised as one.
    pub(crate) fn api_stop<T>(&self, session_id: u64, stop: impl FnOnce() -> T) -> T {
        lock(&self.api_stops).insert(session_id);
        let out = stop();
        lock(&self.api_stops).remove(&session_id);
        out
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl SessionEndObserver for StrictMonitor {
    fn session_ending(&self, ending: &SessionEnding) {
        if !self.enabled || !ending.control_connected {
            return;
        }
        let api_stop = lock(&self.api_stops).contains(&ending.session_id);
        let Some(cause) = trap_cause(ending.reason, api_stop) else {
            return;
        };
        let n = self
            .disconnects_after_cancel
            .fetch_add(1, Ordering::Relaxed)
            + 1;
        tracing::error!(
            session = ending.session_id,
            client = ending.client_id,
            cause,
            count = n,
            "wolf-strict: ENet disconnect after /cancel: real Wolf crashes here \
             (the session ended by {cause} while its client's ENet peer was still connected; \
             disconnect ENet first, then cancel)"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::sei::{nal_units, obus};

    fn ending(reason: EndReason, connected: bool) -> SessionEnding {
        SessionEnding {
            session_id: 7,
            client_id: 1,
            reason,
            control_connected: connected,
        }
    }

    #[test]
    fn only_cancel_or_api_stop_with_a_connected_peer_counts() {
        let m = StrictMonitor::new(true);
        for reason in [
            EndReason::ClientDisconnected,
            EndReason::ClientTerminated,
            EndReason::Superseded,
            EndReason::Stopped,
            EndReason::HostShutdown,
        ] {
            m.session_ending(&ending(reason, true));
        }
        m.session_ending(&ending(EndReason::Cancelled, false));
        assert_eq!(m.disconnects_after_cancel(), 0);
        m.session_ending(&ending(EndReason::Cancelled, true));
        assert_eq!(m.disconnects_after_cancel(), 1);
        m.api_stop(7, || m.session_ending(&ending(EndReason::Stopped, true)));
        assert_eq!(m.disconnects_after_cancel(), 2);
        // The API stop mark is gone afterwards: an idle stop of the same id does not count.
        m.session_ending(&ending(EndReason::Stopped, true));
        assert_eq!(m.disconnects_after_cancel(), 2);
        // Off: nothing counts.
        let off = StrictMonitor::new(false);
        off.session_ending(&ending(EndReason::Cancelled, true));
        assert_eq!(off.disconnects_after_cancel(), 0);
    }

    #[test]
    fn frames_are_padded_to_exactly_wolfs_size() {
        let mut h = vec![0, 0, 0, 1, 0x65, 0x88, 0x84];
        pad_like_wolf(VideoCodec::H264, &mut h);
        assert_eq!(h.len(), WOLF_MIN_FRAME_BYTES);
        assert!(h[7..].iter().all(|&b| b == 0));
        // The padding adds no NAL unit.
        assert_eq!(nal_units(&h).count(), 1);
        let mut e = vec![0, 0, 0, 1, 0x26, 0x01, 0xAF];
        pad_like_wolf(VideoCodec::Hevc, &mut e);
        assert_eq!(e.len(), WOLF_MIN_FRAME_BYTES);
        let mut a = vec![0x12, 0x00, 0x32, 0x01, 0x07];
        pad_like_wolf(VideoCodec::Av1, &mut a);
        assert_eq!(a.len(), WOLF_MIN_FRAME_BYTES);
        let types: Vec<u8> = obus(&a).map(|(_, t, _)| t).collect();
        assert_eq!(types, [2, 6, 15]);
        // Big frames stay as they are.
        let mut big = vec![7u8; 4000];
        pad_like_wolf(VideoCodec::H264, &mut big);
        assert_eq!(big, vec![7u8; 4000]);
    }

    #[test]
    fn bitrate_is_lowered_like_wolf() {
        assert_eq!(wolf_bitrate_kbps(5000), 3428);
        assert_eq!(wolf_bitrate_kbps(20_000), 13_712);
        assert_eq!(wolf_bitrate_kbps(0), 1);
    }
}
