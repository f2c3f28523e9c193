//! The video stream: host packetizer, client depacketizer, and their tokio drivers.
//!
//! A frame (access unit) travels as shards of `packetSize + 16` bytes, grouped in up to four
//! Reed–Solomon FEC blocks, optionally AES-GCM encrypted per shard (gamestream-protocol-2-media.md
//! §3). [`VideoPacketizer`] is Sunshine's sender algorithm, byte for byte; [`VideoDepacketizer`] is
//! moonlight-common-c's receive queue and depacketizer (reassembly, FEC recovery, loss detection,
//! waiting for an IDR after a loss). Both are sans-IO; the host's per-session media driver
//! ([`VideoSender`] is its handle) runs the packetizer inside [`crate::host::HostMediaCore`] and
//! sends through `driver`'s segmented sends, and the client's stream driver (`crate::client`)
//! feeds the depacketizer.

mod batch;
mod depacketizer;
mod driver;
mod packetizer;
pub mod wire;

/// Re-exported where the video layer always had them; they are handles on the host's media driver.
pub use crate::host::{VideoSender, VideoSenderConfig};
pub use depacketizer::{
    DepacketizerConfig, VideoCodec, VideoDepacketizer, VideoEvent, VideoFrame, VideoStats,
};
pub use packetizer::{FrameInfo, PacketBatch, PacketizerConfig, VideoPacketizer};
pub use wire::{FecStatus, FrameType};
pub(crate) use {
    batch::BatchReceiver,
    driver::{enlarge_buffers, VideoOut},
};

/// Errors of the video layer.
#[derive(Debug, thiserror::Error)]
pub enum VideoError {
    /// Input shorter than the structure being parsed.
    #[error("truncated video packet")]
    Truncated,
    /// A configuration value outside what the wire format can carry.
    #[error("invalid video configuration: {0}")]
    InvalidConfig(&'static str),
    /// The access unit needs more shards than the 10-bit shard index allows.
    #[error("frame too large: {shards} shards in one FEC block (max 1023)")]
    FrameTooLarge {
        /// Shards the largest block would need.
        shards: usize,
    },
    /// FEC encoding failed (only with inconsistent shard counts; a bug if seen).
    #[error("FEC: {0}")]
    Fec(#[from] crate::fec::FecError),
    /// No client has pinged the host's video port yet.
    #[error("no client address yet (waiting for a ping)")]
    NoClient,
    /// Socket error.
    #[error("I/O: {0}")]
    Io(#[from] std::io::Error),
}
