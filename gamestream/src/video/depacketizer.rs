//! Client side: datagrams → frames, with moonlight-common-c's semantics (RtpVideoQueue.c +
//! VideoDepacketizer.c; gamestream-protocol-2-media.md §3.5–3.7).
//!
//! Shards of the current FEC block are copied straight into a reusable slot buffer (slot = shard
//! index), rebuilt there by Reed–Solomon when enough arrived, and the finished block's payloads are
//! appended to the frame under construction; a finished frame hands that buffer over. So a byte is
//! copied twice (datagram → slot → frame) and nothing is allocated per packet.
//!
//! After any loss the decoder's references are gone, so frames are dropped until an IDR arrives
//! (moonlight-common-c's "strict IDR wait", used when reference frame invalidation is off).
//!
//! This file is the packet queue (accepting datagrams into the current FEC block);
//! `depacketizer/block.rs` rebuilds and stages a finished block and `depacketizer/frame.rs`
//! assembles, checks and delivers (or drops) the frame.

use super::wire::{
    frame_header_size, is_before16, is_before24, is_before32, EncPrefix, FecStatus, FrameHeader,
    FrameType, NvVideoPacket, RtpHeader, ENC_PREFIX_LEN, FLAG_CONTAINS_PIC_DATA, FLAG_EOF,
    FLAG_EXTENSION, FLAG_SOF, FRAME_HEADER_LEN, MULTI_FEC_FLAGS, RTP_HEADER_LEN, SHARD_HEADER_LEN,
};
use super::VideoError;
use crate::crypto::{GcmIv, GcmKey, GCM_TAG_LEN};
use crate::fec::{ReedSolomon, MAX_TOTAL_SHARDS};
use crate::AppVersion;
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// After out-of-order data, speculative loss reports pause this long (MLC: 5 minutes).
const SPECULATIVE_COOLDOWN: Duration = Duration::from_secs(300);
/// After this many dropped frames in a row an IDR is requested again.
const CONSECUTIVE_DROP_LIMIT: u32 = 120;
/// Shard indices are 10 bits, so no real block has more shards.
const MAX_BLOCK_SHARDS: usize = 1024;

/// The negotiated codec: decides whether the last packet is trimmed with `lastPayloadLen`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VideoCodec {
    /// H.264 Annex B (trailing zero padding is kept, as Annex B allows).
    H264,
    /// HEVC Annex B (padding kept).
    Hevc,
    /// AV1 OBUs (padding trimmed with `lastPayloadLen`).
    Av1,
}

impl VideoCodec {
    fn is_annex_b(self) -> bool {
        matches!(self, VideoCodec::H264 | VideoCodec::Hevc)
    }
}

/// Depacketizer settings, fixed for a session.
#[derive(Clone)]
pub struct DepacketizerConfig {
    /// The `packetSize` the client sent in SDP (already reduced by 32 when encrypting).
    pub packet_size: usize,
    /// The host's `appversion` (frame header size, multi-FEC support, latency field).
    pub host_version: AppVersion,
    /// Negotiated codec.
    pub codec: VideoCodec,
    /// The session's `rikey` when video encryption is on.
    pub key: Option<[u8; 16]>,
}

impl std::fmt::Debug for DepacketizerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DepacketizerConfig")
            .field("packet_size", &self.packet_size)
            .field("host_version", &self.host_version)
            .field("codec", &self.codec)
            .field("encrypted", &self.key.is_some())
            .finish()
    }
}

/// One reassembled access unit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VideoFrame {
    /// Host frame number.
    pub frame_index: u32,
    /// The frame header's type byte.
    pub frame_type: FrameType,
    /// Key frame: type 2, or (H.264/HEVC) the bitstream starts with a parameter set.
    pub is_idr: bool,
    /// 90 kHz RTP timestamp.
    pub rtp_timestamp: u32,
    /// Host processing latency in 0.1 ms units (Sunshine hosts; 0 = unknown).
    pub host_processing_latency: u16,
    /// Bitstream with the frame header removed. H.264/HEVC keep the zero padding of the last
    /// shard (like moonlight-common-c); other codecs are trimmed to the exact length.
    pub data: Vec<u8>,
    /// Data shards of this frame that were rebuilt by FEC.
    pub recovered_shards: u32,
}

/// What the depacketizer reports to the session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VideoEvent {
    /// A complete, decodable frame.
    Frame(VideoFrame),
    /// Frames `first..=last` cannot be decoded. The caller sends an IDR request (0x0302), or RFI
    /// (0x0301) for this range when the host supports it.
    FrameLost {
        /// First frame of the invalidated range (the one after the last delivered frame).
        first: u32,
        /// Last lost frame.
        last: u32,
    },
    /// Frames keep arriving but none can be decoded before an IDR: send an IDR request now.
    /// (Emitted at the first complete frame after a loss, and every 120 dropped frames.)
    RequestIdr,
    /// `SS_FRAME_FEC_STATUS` to send to a Sunshine host (control type 0x5502) if negotiated.
    FecStatus(FecStatus),
}

impl VideoEvent {
    /// The frame this event delivers, if it is [`VideoEvent::Frame`].
    pub fn frame(&self) -> Option<&VideoFrame> {
        match self {
            VideoEvent::Frame(f) => Some(f),
            _ => None,
        }
    }
}

/// Counters for logs and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct VideoStats {
    /// Datagrams given to [`VideoDepacketizer::push`].
    pub packets_received: u64,
    /// Datagrams rejected (short, malformed, stale, duplicate, out of window, failed decryption).
    pub packets_dropped: u64,
    /// Datagrams whose GCM tag did not verify.
    pub decrypt_failures: u64,
    /// Frames delivered.
    pub frames_ok: u64,
    /// Delivered frames that needed FEC.
    pub frames_recovered: u64,
    /// Loss reports ([`VideoEvent::FrameLost`]).
    pub frames_lost: u64,
    /// Complete frames dropped while waiting for an IDR, or found corrupt.
    pub frames_dropped: u64,
    /// Data shards rebuilt by FEC.
    pub shards_recovered: u64,
    /// Times the receive window was moved to the incoming packets after a stall
    /// ([`RESYNC_AFTER`]).
    pub resyncs: u64,
}

/// Packets keep coming but no frame gets through the queue and the continuity checks for this
/// long: the window has lost the stream, and the next packet starts it again. The window is
/// meant to move forward only, but its positions come from the host's bytes: one datagram of
/// random bytes with a plausible header (a broken or hostile host, or a spoofed datagram: video
/// is not encrypted by Wolf) puts the frame, sequence and stream-packet positions anywhere, and
/// every real packet after it is then "old" until the stream catches up, minutes later for a
/// 16-bit sequence. A healthy stream passes a frame every few tens of ms, and one waiting for an
/// IDR still passes the checks.
pub const RESYNC_AFTER: Duration = Duration::from_secs(1);
/// ... and at least this many packets arrived meanwhile (a stalled host is not a lost window).
const RESYNC_PACKETS: u32 = 64;

/// One data shard of a finished block, as the depacketizer checks it.
#[derive(Debug, Clone, Copy)]
struct StagedShard {
    stream_packet_index: u32,
    flags: u8,
    block: u8,
    last_block: u8,
    first_packet: bool,
    /// Payload bytes appended to the frame buffer for this shard.
    len: usize,
}

/// Fields of the frame header, read when the first packet is staged.
#[derive(Debug, Clone, Copy)]
struct HeaderInfo {
    frame_type: FrameType,
    latency: u16,
    last_payload_len: u16,
    header_size: usize,
}

/// The FEC block being received (MLC's `RTP_VIDEO_QUEUE` block fields).
#[derive(Debug, Default)]
struct Block {
    pending: usize,
    failed: bool,
    lowest_seq: u16,
    data_shards: usize,
    parity_shards: usize,
    fec_percent: u8,
    first_parity_seq: u16,
    highest_seq: u16,
    received_data: u16,
    received_parity: u16,
    received_highest_seq: u16,
    missing: u16,
    use_fast_path: bool,
    first_rtp: RtpHeader,
    present: Vec<bool>,
    lens: Vec<usize>,
    slots: Vec<u8>,
}

/// The client's receive path for one video stream (sans-IO).
pub struct VideoDepacketizer {
    config: DepacketizerConfig,
    key: Option<GcmKey>,
    block_size: usize,
    multi_fec_capable: bool,
    codes: HashMap<(usize, usize), ReedSolomon>,
    scratch: Vec<u8>,
    // RtpVideoQueue state.
    current_frame: u32,
    cur_block: u8,
    last_block: u8,
    next_contiguous_seq: u16,
    reported_lost: bool,
    received_oos: bool,
    last_oos: Option<Instant>,
    block: Block,
    // Blocks of the current frame that are complete.
    staged: Vec<u8>,
    staged_shards: Vec<StagedShard>,
    staged_header: Option<HeaderInfo>,
    staged_recovered: u32,
    frame_size_hint: usize,
    // VideoDepacketizer state.
    next_frame_number: u32,
    start_frame_number: u32,
    waiting_for_idr: bool,
    waiting_for_next_success: bool,
    waiting_for_ref_inval: bool,
    idr_processed: bool,
    reference_frame_invalidation: bool,
    last_packet_in_stream: u32,
    consecutive_drops: u32,
    // Stall detection ([`RESYNC_AFTER`]).
    last_progress: Option<Instant>,
    packets_since_progress: u32,
    progressed: bool,
    resync_pending: bool,
    events: Vec<VideoEvent>,
    stats: VideoStats,
}

impl std::fmt::Debug for VideoDepacketizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VideoDepacketizer")
            .field("config", &self.config)
            .field("current_frame", &self.current_frame)
            .field("waiting_for_idr", &self.waiting_for_idr)
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

impl VideoDepacketizer {
    /// Checks the configuration and builds the cipher once.
    pub fn new(config: DepacketizerConfig) -> Result<Self, VideoError> {
        if config.packet_size < 32 || config.packet_size % 16 != 0 || config.packet_size > 16_384 {
            return Err(VideoError::InvalidConfig(
                "packet_size must be a multiple of 16 in 32..=16384",
            ));
        }
        Ok(Self {
            key: config.key.as_ref().map(GcmKey::new),
            block_size: config.packet_size + RTP_HEADER_LEN,
            multi_fec_capable: config.host_version.at_least(7, 1, 431),
            codes: HashMap::new(),
            scratch: Vec::new(),
            current_frame: 1,
            cur_block: 0,
            last_block: 0,
            next_contiguous_seq: 0,
            reported_lost: false,
            received_oos: false,
            last_oos: None,
            block: Block::default(),
            staged: Vec::new(),
            staged_shards: Vec::new(),
            staged_header: None,
            staged_recovered: 0,
            frame_size_hint: 0,
            next_frame_number: 1,
            start_frame_number: 0,
            waiting_for_idr: true,
            // Ask for an IDR at once if the stream does not start with one.
            waiting_for_next_success: true,
            waiting_for_ref_inval: false,
            idr_processed: false,
            reference_frame_invalidation: false,
            last_packet_in_stream: u32::MAX,
            consecutive_drops: 0,
            last_progress: None,
            packets_since_progress: 0,
            progressed: false,
            resync_pending: false,
            events: Vec::new(),
            stats: VideoStats::default(),
            config,
        })
    }

    /// Counters so far.
    pub fn stats(&self) -> VideoStats {
        self.stats
    }

    /// True while frames are dropped until an IDR frame arrives.
    pub fn is_waiting_for_idr(&self) -> bool {
        self.waiting_for_idr
    }

    /// Enables reference frame invalidation mode: use it when the host advertised
    /// `refPicInvalidation` and the decoder copes. After a loss the depacketizer then waits for a
    /// frame of type 4/5 (or an IDR) instead of an IDR, and reports each lost range with
    /// [`VideoEvent::FrameLost`] for an RFI request (0x0301). Off by default: moonlight-common-c's
    /// strict IDR wait, always right for Wolf.
    pub fn set_reference_frame_invalidation(&mut self, enabled: bool) {
        self.reference_frame_invalidation = enabled;
    }

    /// The decoder failed or was reset: drop frames until the next IDR. The caller sends the IDR
    /// request (moonlight-common-c `requestDecoderRefresh`).
    pub fn request_decoder_refresh(&mut self) {
        self.waiting_for_idr = true;
        self.waiting_for_next_success = false;
    }

    /// The frame the receive queue is working on (encrypted packets of older frames are skipped
    /// before decryption).
    pub fn current_frame(&self) -> u32 {
        self.current_frame
    }

    /// Feeds one datagram as received from the host; returns what it completed or detected.
    /// Bad input is counted and dropped, never a panic.
    pub fn push(&mut self, datagram: &[u8], now: Instant) -> Vec<VideoEvent> {
        self.stats.packets_received += 1;
        let since = *self.last_progress.get_or_insert(now);
        self.packets_since_progress = self.packets_since_progress.saturating_add(1);
        if !self.resync_pending
            && self.packets_since_progress >= RESYNC_PACKETS
            && now.saturating_duration_since(since) >= RESYNC_AFTER
        {
            self.resync_pending = true;
            self.stats.resyncs += 1;
        }
        if !self.accept(datagram, now) {
            self.stats.packets_dropped += 1;
        }
        if std::mem::take(&mut self.progressed) {
            self.last_progress = Some(now);
            self.packets_since_progress = 0;
        }
        std::mem::take(&mut self.events)
    }

    /// Moves the whole receive window to this packet ([`RESYNC_AFTER`]): frame, block, sequence,
    /// stream-packet and frame-number positions, with an IDR wanted before the next frame is
    /// delivered.
    fn resync(&mut self, rtp: &RtpHeader, nv: &NvVideoPacket) {
        self.resync_pending = false;
        self.purge_frame();
        self.current_frame = nv.frame_index;
        self.cur_block = 0;
        self.last_block = 0;
        self.next_contiguous_seq = rtp.sequence_number.wrapping_sub(nv.fec().shard_index);
        self.reported_lost = false;
        self.next_frame_number = nv.frame_index;
        self.start_frame_number = nv.frame_index;
        self.last_packet_in_stream = nv.stream_packet_index24().wrapping_sub(1) & 0xFF_FFFF;
        self.waiting_for_idr = true;
        self.waiting_for_next_success = true;
        self.waiting_for_ref_inval = false;
        // Counted again from here: a resync that lands on garbage is retried a period later.
        self.last_progress = None;
        self.packets_since_progress = 0;
    }

    /// Decrypts if needed and queues; false if the datagram was rejected.
    fn accept(&mut self, datagram: &[u8], now: Instant) -> bool {
        let Some(key) = &self.key else {
            // A longer datagram would have been cut by the client's fixed-size receive buffer.
            let len = datagram.len().min(self.block_size);
            return self.add_packet(&datagram[..len], now);
        };
        if datagram.len() < ENC_PREFIX_LEN + SHARD_HEADER_LEN
            || datagram.len() > ENC_PREFIX_LEN + self.block_size
        {
            return false;
        }
        let Ok(prefix) = EncPrefix::parse(datagram) else {
            return false;
        };
        // Untrusted, used only to skip work on frames already behind us (MLC does the same).
        if prefix.frame_number != 0 && prefix.frame_number < self.current_frame {
            return false;
        }
        let mut plain = std::mem::take(&mut self.scratch);
        plain.clear();
        plain.extend_from_slice(&datagram[ENC_PREFIX_LEN..]);
        let tag: &[u8; GCM_TAG_LEN] = &prefix.tag;
        let ok = if key
            .open_in_place(&GcmIv::Twelve(prefix.iv), &mut plain, tag)
            .is_ok()
        {
            self.add_packet(&plain, now)
        } else {
            self.stats.decrypt_failures += 1;
            false
        };
        self.scratch = plain;
        ok
    }

    /// MLC `RtpvAddPacket`: window checks, block bookkeeping, FEC, frame completion.
    fn add_packet(&mut self, pkt: &[u8], now: Instant) -> bool {
        if pkt.len() < SHARD_HEADER_LEN {
            return false;
        }
        let (Ok(rtp), Ok(mut nv)) = (
            RtpHeader::parse(pkt),
            NvVideoPacket::parse(&pkt[RTP_HEADER_LEN..]),
        ) else {
            return false;
        };
        if rtp.header & FLAG_EXTENSION == 0 {
            return false;
        }
        if self.resync_pending {
            self.resync(&rtp, &nv);
        }
        if is_before16(rtp.sequence_number, self.next_contiguous_seq) {
            return false;
        }
        if !self.multi_fec_capable {
            nv.multi_fec_flags = MULTI_FEC_FLAGS;
            nv.multi_fec_blocks = 0;
        }
        if is_before16(nv.frame_index as u16, self.current_frame as u16) {
            return false;
        }
        let fec = nv.fec();
        let block_index = nv.block_index();
        if nv.frame_index == self.current_frame && block_index < self.cur_block {
            return false;
        }
        let starts_block = self.block.pending == 0
            || self.current_frame != nv.frame_index
            || self.cur_block != block_index;
        if starts_block {
            // Refuse blocks no host can produce before touching any state.
            let parity = fec.parity_shards() as usize;
            let data = fec.data_shards as usize;
            if data == 0
                || data + parity > MAX_BLOCK_SHARDS
                || fec.shard_index as usize >= data + parity
            {
                return false;
            }
            if !self.start_block(&rtp, &nv) {
                return false;
            }
        }
        let seq = rtp.sequence_number;
        if is_before16(self.block.highest_seq, seq) || self.block.failed {
            return false;
        }
        let idx = seq.wrapping_sub(self.block.lowest_seq) as usize;
        if idx >= self.block.data_shards + self.block.parity_shards {
            return false;
        }
        let is_parity = !is_before16(seq, self.block.first_parity_seq);
        if !self.queue_packet(pkt, idx, seq, now) {
            return false;
        }
        let b = &mut self.block;
        if b.pending == 1 {
            b.missing = b.missing.wrapping_add(seq.wrapping_sub(b.lowest_seq));
            b.received_highest_seq = seq;
            b.first_rtp = rtp;
        } else if is_before16(b.received_highest_seq, seq) {
            b.missing = b
                .missing
                .wrapping_add(seq.wrapping_sub(b.received_highest_seq).wrapping_sub(1));
            b.received_highest_seq = seq;
        } else {
            b.missing = b.missing.saturating_sub(1);
        }
        if is_parity {
            b.received_parity += 1;
        } else {
            b.received_data += 1;
        }
        if self.reconstruct_block(now) {
            self.stage_block();
            self.block.pending = 0;
            if self.cur_block < self.last_block {
                self.cur_block += 1;
            } else {
                self.complete_frame();
                self.current_frame = self.current_frame.wrapping_add(1);
                self.cur_block = 0;
            }
        }
        true
    }

    /// Gives up on the current frame: purges it, reports the loss (unless already reported since
    /// the last block began) and waits for frame `next` from its first block.
    fn abandon_frame(&mut self, next: u32) {
        self.purge_frame();
        if !self.reported_lost {
            self.notify_frame_lost(self.current_frame);
            self.reported_lost = true;
        }
        self.current_frame = next;
        self.cur_block = 0;
    }

    /// The "new frame or block" branch of `RtpvAddPacket`; false if the packet is rejected.
    fn start_block(&mut self, rtp: &RtpHeader, nv: &NvVideoPacket) -> bool {
        let block_index = nv.block_index();
        if self.block.pending != 0 {
            self.report_fec_status();
            if self.last_block != 0 && self.current_frame == nv.frame_index {
                // A block of this frame is lost: the frame cannot be parsed further.
                self.abandon_frame(self.current_frame.wrapping_add(1));
                return false;
            }
        }
        let expected = if self.current_frame == nv.frame_index {
            self.cur_block
        } else {
            0
        };
        if block_index != expected {
            self.abandon_frame(nv.frame_index.wrapping_add(1));
            return false;
        }
        self.block.pending = 0;
        if self.current_frame != nv.frame_index {
            self.purge_staged();
            // A whole frame went missing (unless speculative loss already reported it).
            if self.current_frame.wrapping_add(1) != nv.frame_index || !self.reported_lost {
                self.notify_frame_lost(nv.frame_index.wrapping_sub(1));
            }
        }
        self.current_frame = nv.frame_index;
        let fec = nv.fec();
        let b = &mut self.block;
        b.failed = false;
        b.lowest_seq = rtp.sequence_number.wrapping_sub(fec.shard_index);
        self.next_contiguous_seq = b.lowest_seq;
        b.received_data = 0;
        b.received_parity = 0;
        b.received_highest_seq = 0;
        b.missing = 0;
        b.use_fast_path = true;
        self.reported_lost = false;
        b.data_shards = fec.data_shards as usize;
        b.fec_percent = fec.fec_percent;
        b.parity_shards = fec.parity_shards() as usize;
        b.first_parity_seq = b.lowest_seq.wrapping_add(fec.data_shards);
        b.highest_seq = b
            .first_parity_seq
            .wrapping_add(b.parity_shards as u16)
            .wrapping_sub(1);
        self.cur_block = block_index;
        self.last_block = nv.last_block_index();
        let total = b.data_shards + b.parity_shards;
        b.present.clear();
        b.present.resize(total, false);
        b.lens.clear();
        b.lens.resize(total, 0);
        if b.slots.len() < total * self.block_size {
            b.slots.resize(total * self.block_size, 0);
        }
        true
    }

    /// MLC `queuePacket`: duplicate and order tracking, then the copy into the block's slot.
    fn queue_packet(&mut self, pkt: &[u8], idx: usize, seq: u16, now: Instant) -> bool {
        let b = &mut self.block;
        let out_of_sequence;
        if b.use_fast_path && seq == self.next_contiguous_seq {
            self.next_contiguous_seq = seq.wrapping_add(1);
            out_of_sequence = false;
        } else {
            if b.present.get(idx).copied().unwrap_or(true) {
                return false;
            }
            out_of_sequence = b.pending > 0 && is_before16(seq, b.received_highest_seq);
            b.use_fast_path = false;
        }
        if out_of_sequence {
            self.last_oos = Some(now);
            self.received_oos = true;
        } else if self.received_oos
            && self
                .last_oos
                .is_some_and(|t| now.saturating_duration_since(t) > SPECULATIVE_COOLDOWN)
        {
            self.received_oos = false;
        }
        let bs = self.block_size;
        let Some(slot) = b.slots.get_mut(idx * bs..(idx + 1) * bs) else {
            return false;
        };
        let len = pkt.len().min(bs);
        slot[..len].copy_from_slice(&pkt[..len]);
        slot[len..].fill(0);
        b.present[idx] = true;
        b.lens[idx] = len;
        b.pending += 1;
        true
    }
}

mod block;
mod frame;

#[cfg(test)]
mod tests;
