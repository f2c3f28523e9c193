//! `Restream`'s payload: the size, frame rate and bitrate a running stream is to be started again
//! at (docs/adaptive-quality.md, "Re-streaming at a new rung").
//!
//! Hosts without a runtime bitrate control (upstream Sunshine, Wolf) take new settings only from
//! a new RTSP ANNOUNCE, so the gateway's quality controller changes a stream by having its
//! streamer end the host stream (not the app) and resume it at these settings. The values are
//! checked on both ends of the pipe: a rung the host could not honour (a zero, a size no encoder
//! takes) is refused as a malformed frame when read, and never written.

use serde::{Deserialize, Serialize};

/// Largest width or height a rung may ask for (the streamer's `Init` check uses the same bound).
pub const MAX_RUNG_DIMENSION: u32 = 8192;
/// Highest frame rate a rung may ask for.
pub const MAX_RUNG_FPS: u32 = 480;
/// Highest bitrate a rung may ask for, kbit/s (Foundation Sunshine's own limit is 800 000).
pub const MAX_RUNG_BITRATE_KBPS: u32 = 1_000_000;

/// One rung of the quality ladder: what [`super::ToStreamer::Restream`] asks for (JSON
/// `{width,height,fps,bitrate_kbps}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rung {
    /// Width, pixels (1..=[`MAX_RUNG_DIMENSION`]).
    pub width: u32,
    /// Height, pixels (1..=[`MAX_RUNG_DIMENSION`]).
    pub height: u32,
    /// Frames per second (1..=[`MAX_RUNG_FPS`]).
    pub fps: u32,
    /// Bitrate, kbit/s (1..=[`MAX_RUNG_BITRATE_KBPS`]).
    pub bitrate_kbps: u32,
}

/// Why a [`Rung`] is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RungError {
    /// Width or height is 0 or above [`MAX_RUNG_DIMENSION`].
    #[error("size {width}x{height} outside 1..={MAX_RUNG_DIMENSION}")]
    Size {
        /// Width asked for.
        width: u32,
        /// Height asked for.
        height: u32,
    },
    /// The frame rate is 0 or above [`MAX_RUNG_FPS`].
    #[error("frame rate {0} outside 1..={MAX_RUNG_FPS}")]
    Fps(u32),
    /// The bitrate is 0 or above [`MAX_RUNG_BITRATE_KBPS`].
    #[error("bitrate {0} kbit/s outside 1..={MAX_RUNG_BITRATE_KBPS}")]
    Bitrate(u32),
}

impl Rung {
    /// Pixels per frame.
    pub fn pixels(&self) -> u64 {
        u64::from(self.width) * u64::from(self.height)
    }

    /// Whether only the bitrate differs (a host with bitrate control changes it without a
    /// restream).
    pub fn same_size(&self, other: &Rung) -> bool {
        (self.width, self.height, self.fps) == (other.width, other.height, other.fps)
    }

    /// Checks that a host could be asked for this rung.
    pub fn check(&self) -> Result<(), RungError> {
        let dimension = 1..=MAX_RUNG_DIMENSION;
        if !dimension.contains(&self.width) || !dimension.contains(&self.height) {
            return Err(RungError::Size {
                width: self.width,
                height: self.height,
            });
        }
        if !(1..=MAX_RUNG_FPS).contains(&self.fps) {
            return Err(RungError::Fps(self.fps));
        }
        if !(1..=MAX_RUNG_BITRATE_KBPS).contains(&self.bitrate_kbps) {
            return Err(RungError::Bitrate(self.bitrate_kbps));
        }
        Ok(())
    }
}
