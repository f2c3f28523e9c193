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

    /// The "new frame or block" branch of `RtpvAddPacket`; false if the packet is rejected.
    fn start_block(&mut self, rtp: &RtpHeader, nv: &NvVideoPacket) -> bool {
        let block_index = nv.block_index();
        if self.block.pending != 0 {
            self.report_fec_status();
            if self.last_block != 0 && self.current_frame == nv.frame_index {
                // A block of this frame is lost: the frame cannot be parsed further.
                self.purge_frame();
                if !self.reported_lost {
                    self.notify_frame_lost(self.current_frame);
                    self.reported_lost = true;
                }
                self.current_frame = self.current_frame.wrapping_add(1);
                self.cur_block = 0;
                return false;
            }
        }
        let expected = if self.current_frame == nv.frame_index {
            self.cur_block
        } else {
            0
        };
        if block_index != expected {
            self.purge_frame();
            if !self.reported_lost {
                self.notify_frame_lost(self.current_frame);
                self.reported_lost = true;
            }
            self.current_frame = nv.frame_index.wrapping_add(1);
            self.cur_block = 0;
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

    /// MLC `reconstructFrame`: true when every data shard of the block is present (received or
    /// rebuilt and checked).
    fn reconstruct_block(&mut self, now: Instant) -> bool {
        let b = &self.block;
        let (d, p) = (b.data_shards, b.parity_shards);
        if b.pending < d {
            if !self.reported_lost && !self.received_oos && usize::from(b.missing) > p {
                // Too many shards are gone already: report before the next frame shows it.
                self.notify_frame_lost(self.current_frame);
                self.reported_lost = true;
            }
            return false;
        }
        if self.reported_lost && !self.received_oos {
            // The speculative report was wrong: stop guessing for a while.
            self.received_oos = true;
            self.last_oos = Some(now);
        }
        if usize::from(b.received_data) == d {
            return true;
        }
        if self.config.host_version.major < 5 || d + p > MAX_TOTAL_SHARDS || p == 0 {
            return false;
        }
        let rs = match self.codes.entry((d, p)) {
            std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::hash_map::Entry::Vacant(e) => match ReedSolomon::new(d, p) {
                Ok(rs) => e.insert(rs),
                Err(_) => return false,
            },
        };
        let bs = self.block_size;
        let b = &mut self.block;
        let missing: Vec<usize> = (0..d).filter(|&i| !b.present[i]).collect();
        if rs
            .reconstruct_contiguous(&mut b.slots[..(d + p) * bs], bs, &b.present)
            .is_err()
        {
            b.failed = true;
            return false;
        }
        let fec_blocks = ((self.last_block << 2) | self.cur_block) << 4;
        for &i in &missing {
            let slot = &mut b.slots[i * bs..(i + 1) * bs];
            // §3.6: columns the host rewrote after encoding come back as garbage; restore them.
            slot[0] = b.first_rtp.header;
            slot[2..4].copy_from_slice(&b.lowest_seq.wrapping_add(i as u16).to_be_bytes());
            slot[4..8].copy_from_slice(&b.first_rtp.timestamp.to_be_bytes());
            slot[8..12].copy_from_slice(&b.first_rtp.ssrc.to_be_bytes());
            slot[RTP_HEADER_LEN + 4..RTP_HEADER_LEN + 8]
                .copy_from_slice(&self.current_frame.to_le_bytes());
            slot[RTP_HEADER_LEN + 11] = fec_blocks;
            let flags = slot[RTP_HEADER_LEN + 8];
            // MLC's sanity rule, except that Wolf marks SOF/EOF only at the frame's ends, so a
            // plain data shard is also fine at an inner block boundary (the stream packet index
            // continuity check still guards those).
            let wolf_inner_start = self.cur_block > 0 && flags == FLAG_CONTAINS_PIC_DATA;
            let wolf_inner_end =
                self.cur_block < self.last_block && flags == FLAG_CONTAINS_PIC_DATA;
            let bad = (i == 0 && flags & FLAG_SOF == 0 && !wolf_inner_start)
                || (i == d - 1 && flags & FLAG_EOF == 0 && !wolf_inner_end)
                || (i > 0 && i < d - 1 && flags & FLAG_CONTAINS_PIC_DATA == 0)
                || flags & !(FLAG_SOF | FLAG_EOF | FLAG_CONTAINS_PIC_DATA) != 0;
            if bad {
                // A corrupt rebuild must never reach the decoder: give the block up.
                b.failed = true;
                return false;
            }
            b.present[i] = true;
            b.lens[i] = bs;
        }
        self.stats.shards_recovered += missing.len() as u64;
        self.staged_recovered += missing.len() as u32;
        self.report_fec_status();
        true
    }

    /// MLC `stageCompleteFecBlock`: appends the block's data payloads to the frame buffer.
    fn stage_block(&mut self) {
        let bs = self.block_size;
        let b = &self.block;
        for i in 0..b.data_shards {
            let Some(shard) = b.slots.get(i * bs..i * bs + b.lens[i]) else {
                continue;
            };
            let Ok(nv) = NvVideoPacket::parse(&shard[RTP_HEADER_LEN..]) else {
                continue;
            };
            let mut payload = &shard[SHARD_HEADER_LEN..];
            let (block, last_block) = if self.multi_fec_capable {
                (nv.block_index(), nv.last_block_index())
            } else {
                (0, 0)
            };
            let flags_no_pic = nv.flags & !FLAG_CONTAINS_PIC_DATA;
            let first_packet =
                (flags_no_pic == FLAG_SOF || flags_no_pic == FLAG_SOF | FLAG_EOF) && block == 0;
            if first_packet && self.staged_shards.is_empty() && !payload.is_empty() {
                let header = parse_frame_header(&self.config.host_version, payload);
                let skip = header.header_size.min(payload.len());
                payload = &payload[skip..];
                self.staged_header = Some(header);
            }
            self.staged.extend_from_slice(payload);
            self.staged_shards.push(StagedShard {
                stream_packet_index: nv.stream_packet_index24(),
                flags: nv.flags,
                block,
                last_block,
                first_packet,
                len: payload.len(),
            });
        }
    }

    /// MLC `processRtpPayload` over the frame's data shards, then delivery or drop.
    fn complete_frame(&mut self) {
        let frame_index = self.current_frame;
        let rtp_timestamp = self.block.first_rtp.timestamp;
        let shards = std::mem::take(&mut self.staged_shards);
        let header = self.staged_header.take();
        let recovered = std::mem::replace(&mut self.staged_recovered, 0);
        let mut data = std::mem::take(&mut self.staged);
        // Recent frame sizes, decaying, so one big keyframe does not inflate every later buffer.
        self.frame_size_hint = data
            .len()
            .max(self.frame_size_hint - self.frame_size_hint / 8);
        self.staged = Vec::with_capacity(self.frame_size_hint);
        let outcome = self.check_frame(frame_index, &shards, header, &mut data);
        self.staged_shards = shards;
        self.staged_shards.clear();
        let Some(header) = outcome else {
            return;
        };
        // The window follows the stream (even if this frame is dropped waiting for an IDR).
        self.progressed = true;
        self.next_frame_number = frame_index.wrapping_add(1);
        let is_idr = header.frame_type == FrameType::Idr
            || (self.config.codec.is_annex_b()
                && starts_with_parameter_set(&data, self.config.codec));
        if is_idr {
            self.waiting_for_idr = false;
            self.waiting_for_ref_inval = false;
            self.waiting_for_next_success = false;
        }
        if self.waiting_for_ref_inval {
            let recovers = if self.config.host_version.at_least(7, 1, 350) {
                matches!(
                    header.frame_type,
                    FrameType::IntraRefresh | FrameType::AfterRfi
                )
            } else {
                // Old hosts do not say which frame follows the invalidation: hope for the best.
                self.report_loss(self.start_frame_number, frame_index.wrapping_sub(1));
                true
            };
            if recovers {
                self.waiting_for_ref_inval = false;
                self.waiting_for_next_success = false;
            }
        }
        if self.waiting_for_idr || self.waiting_for_ref_inval {
            if self.waiting_for_idr {
                if self.waiting_for_next_success {
                    self.events.push(VideoEvent::RequestIdr);
                }
            } else {
                self.report_loss(self.start_frame_number, frame_index);
            }
            self.waiting_for_next_success = false;
            self.drop_frame_state();
            self.stats.frames_dropped += 1;
            return;
        }
        if is_idr {
            self.idr_processed = true;
        }
        self.consecutive_drops = 0;
        self.start_frame_number = self.next_frame_number;
        self.stats.frames_ok += 1;
        if recovered > 0 {
            self.stats.frames_recovered += 1;
        }
        self.events.push(VideoEvent::Frame(VideoFrame {
            frame_index,
            frame_type: header.frame_type,
            is_idr,
            rtp_timestamp,
            host_processing_latency: if self.config.host_version.is_sunshine() {
                header.latency
            } else {
                0
            },
            data,
            recovered_shards: recovered,
        }));
    }

    /// Continuity and framing checks; trims the last shard for non-Annex-B codecs. `None` = the
    /// frame was dropped (and reported).
    fn check_frame(
        &mut self,
        frame_index: u32,
        shards: &[StagedShard],
        header: Option<HeaderInfo>,
        data: &mut Vec<u8>,
    ) -> Option<HeaderInfo> {
        if is_before32(frame_index, self.next_frame_number) {
            return None;
        }
        let count = shards.len();
        for (n, s) in shards.iter().enumerate() {
            let expected = self.last_packet_in_stream.wrapping_add(1) & 0xFF_FFFF;
            let discontinuous = is_before24(s.stream_packet_index, expected)
                || (s.flags & FLAG_SOF == 0 && s.stream_packet_index != expected);
            let is_last = s.flags & FLAG_EOF != 0 && s.block == s.last_block;
            if discontinuous || s.first_packet != (n == 0) || is_last != (n == count - 1) {
                self.corrupt_frame(frame_index);
                return None;
            }
            if n == 0 && is_before32(self.next_frame_number, frame_index) {
                // Frames between were lost (already reported by the queue).
                self.next_frame_number = frame_index;
                self.waiting_for_next_success = true;
                self.drop_frame_state();
            }
            self.last_packet_in_stream = s.stream_packet_index;
        }
        let Some(header) = header else {
            self.corrupt_frame(frame_index);
            return None;
        };
        if !self.config.codec.is_annex_b() {
            let last = shards.last().map_or(0, |s| s.len);
            let (want, ok) = if count == 1 {
                let l = usize::from(header.last_payload_len);
                (
                    l.wrapping_sub(header.header_size),
                    l > header.header_size && l - header.header_size <= last,
                )
            } else {
                let l = usize::from(header.last_payload_len);
                (l, l > 0 && l <= last)
            };
            if !ok {
                self.corrupt_frame(frame_index);
                return None;
            }
            data.truncate(data.len() - (last - want));
        }
        Some(header)
    }

    /// A frame that cannot be used: skip it and report the loss.
    fn corrupt_frame(&mut self, frame_index: u32) {
        self.next_frame_number = frame_index.wrapping_add(1);
        self.stats.frames_dropped += 1;
        self.notify_frame_lost(frame_index);
    }

    /// MLC `notifyFrameLost`.
    fn notify_frame_lost(&mut self, frame: u32) {
        self.drop_frame_state();
        if !self.waiting_for_idr {
            // RFI will repair the references: the lost frame is no longer expected.
            self.next_frame_number = frame.wrapping_add(1);
        }
        self.report_loss(self.start_frame_number, frame);
    }

    /// MLC `connectionDetectedFrameLoss`: frames `first..=last` are unusable.
    fn report_loss(&mut self, first: u32, last: u32) {
        self.stats.frames_lost += 1;
        let first = if is_before32(last, first) {
            last
        } else {
            first
        };
        self.events.push(VideoEvent::FrameLost { first, last });
    }

    /// MLC `dropFrameState`.
    fn drop_frame_state(&mut self) {
        if !self.reference_frame_invalidation || !self.idr_processed || self.waiting_for_idr {
            self.waiting_for_idr = true;
        } else {
            self.waiting_for_ref_inval = true;
        }
        self.consecutive_drops += 1;
        if self.consecutive_drops >= CONSECUTIVE_DROP_LIMIT {
            self.consecutive_drops = 0;
            self.waiting_for_idr = true;
            self.events.push(VideoEvent::RequestIdr);
        }
    }

    fn purge_staged(&mut self) {
        self.staged.clear();
        self.staged_shards.clear();
        self.staged_header = None;
        self.staged_recovered = 0;
    }

    fn purge_frame(&mut self) {
        self.block.pending = 0;
        self.purge_staged();
    }

    /// MLC `reportFinalFrameFecStatus`.
    fn report_fec_status(&mut self) {
        let b = &self.block;
        self.events.push(VideoEvent::FecStatus(FecStatus {
            frame_index: self.current_frame,
            highest_received_sequence_number: b.received_highest_seq,
            next_contiguous_sequence_number: self.next_contiguous_seq,
            missing_packets_before_highest_received: b.missing,
            total_data_packets: b.data_shards as u16,
            total_parity_packets: b.parity_shards as u16,
            received_data_packets: b.received_data,
            received_parity_packets: b.received_parity,
            fec_percentage: b.fec_percent,
            multi_fec_block_index: self.cur_block,
            multi_fec_block_count: self.last_block + 1,
        }));
    }
}

/// Reads the frame header fields the client uses (MLC: type for ≥ 7.1.350, latency for
/// Sunshine, lastPayloadLen for non-Annex-B codecs) and the version-dependent header size.
fn parse_frame_header(version: &AppVersion, payload: &[u8]) -> HeaderInfo {
    let header_size = frame_header_size(version, payload.first().copied().unwrap_or(0));
    let mut padded = [0u8; FRAME_HEADER_LEN];
    let n = payload.len().min(FRAME_HEADER_LEN);
    padded[..n].copy_from_slice(&payload[..n]);
    let h = FrameHeader::parse(&padded).unwrap_or(FrameHeader {
        header_type: 0,
        processing_latency: 0,
        frame_type: FrameType::P,
        last_payload_len: 0,
    });
    let frame_type = if version.at_least(7, 1, 350) && payload.len() >= 4 {
        h.frame_type
    } else {
        FrameType::P
    };
    HeaderInfo {
        frame_type,
        latency: h.processing_latency,
        last_payload_len: h.last_payload_len,
        header_size,
    }
}

/// H.264/HEVC: the first NAL (after an optional AUD and SEIs) is a parameter set, as in an IDR AU.
fn starts_with_parameter_set(data: &[u8], codec: VideoCodec) -> bool {
    let mut pos = 0;
    for _ in 0..16 {
        let Some(start) = next_nal(data, pos) else {
            return false;
        };
        let Some(&byte) = data.get(start) else {
            return false;
        };
        match codec {
            VideoCodec::H264 => match byte & 0x1F {
                9 | 6 => pos = start + 1,
                7 | 8 => return true,
                _ => return false,
            },
            VideoCodec::Hevc => match (byte & 0x7E) >> 1 {
                35 | 39 => pos = start + 1,
                32..=34 => return true,
                _ => return false,
            },
            VideoCodec::Av1 => return false,
        }
    }
    false
}

/// Index of the first byte after the next `00 00 01` start code at or after `from`.
fn next_nal(data: &[u8], from: usize) -> Option<usize> {
    let rest = data.get(from..)?;
    rest.windows(3)
        .position(|w| w == [0, 0, 1])
        .map(|i| from + i + 3)
}

#[cfg(test)]
mod tests {
    use super::super::packetizer::{FrameInfo, PacketizerConfig, VideoPacketizer};
    use super::*;

    fn config(codec: VideoCodec, key: Option<[u8; 16]>) -> DepacketizerConfig {
        DepacketizerConfig {
            packet_size: 48,
            host_version: AppVersion::SUNSHINE,
            codec,
            key,
        }
    }

    fn frames(events: &[VideoEvent]) -> Vec<&VideoFrame> {
        events
            .iter()
            .filter_map(|e| {
                if let VideoEvent::Frame(f) = e {
                    Some(f)
                } else {
                    None
                }
            })
            .collect()
    }

    fn vector_packets() -> Vec<Vec<u8>> {
        let mut au = vec![0, 0, 0, 1, 0x65];
        au.extend(0x10..=0x32u8);
        let mut p = VideoPacketizer::new(PacketizerConfig {
            packet_size: 48,
            ..Default::default()
        })
        .unwrap();
        let info = FrameInfo {
            frame_index: 1,
            frame_type: FrameType::Idr,
            rtp_timestamp: 90000,
            processing_latency: 7,
        };
        p.packetize(&au, info).unwrap().to_vec()
    }

    #[test]
    fn vector_frame_with_pkt0_lost_is_recovered() {
        let pkts = vector_packets();
        let mut d = VideoDepacketizer::new(config(VideoCodec::Av1, None)).unwrap();
        let now = Instant::now();
        let mut events = Vec::new();
        for p in &pkts[1..] {
            events.extend(d.push(p, now));
        }
        let f = frames(&events);
        assert_eq!(f.len(), 1);
        let mut au = vec![0, 0, 0, 1, 0x65];
        au.extend(0x10..=0x32u8);
        assert_eq!(f[0].data, au);
        assert_eq!(
            (
                f[0].frame_index,
                f[0].is_idr,
                f[0].rtp_timestamp,
                f[0].recovered_shards
            ),
            (1, true, 90000, 1)
        );
        assert_eq!(f[0].host_processing_latency, 7);
        assert!(events.iter().any(|e| matches!(e, VideoEvent::FecStatus(_))));
        assert_eq!(d.stats().frames_recovered, 1);
        // Late duplicate is dropped.
        assert!(d.push(&pkts[0], now).is_empty());
    }

    #[test]
    fn h264_keeps_padding() {
        let pkts = vector_packets();
        let mut d = VideoDepacketizer::new(config(VideoCodec::H264, None)).unwrap();
        let now = Instant::now();
        let events: Vec<VideoEvent> = pkts.iter().flat_map(|p| d.push(p, now)).collect();
        let f = frames(&events);
        assert_eq!(f[0].data.len(), 56);
        assert!(f[0].data[40..].iter().all(|b| *b == 0));
    }

    #[test]
    fn too_many_losses_report_the_frame() {
        let pkts = vector_packets();
        let mut d = VideoDepacketizer::new(config(VideoCodec::Av1, None)).unwrap();
        let now = Instant::now();
        // Only seq 3 arrives: 3 missing > 2 parity, so the loss is reported speculatively.
        let events = d.push(&pkts[3], now);
        assert!(
            events.contains(&VideoEvent::FrameLost { first: 0, last: 1 }),
            "{events:?}"
        );
        assert!(frames(&events).is_empty());
        assert!(d.is_waiting_for_idr());
    }

    /// One datagram of random-looking bytes with a plausible header (frame, sequence and stream
    /// positions far ahead) used to make every later real packet "old": no frame for minutes.
    /// The window now follows the stream again [`RESYNC_AFTER`] later, with an IDR wanted.
    #[test]
    fn a_forged_datagram_far_ahead_does_not_freeze_the_stream() {
        let mut d = VideoDepacketizer::new(config(VideoCodec::Av1, None)).unwrap();
        let mut p = VideoPacketizer::new(PacketizerConfig {
            packet_size: 48,
            ..Default::default()
        })
        .unwrap();
        let t0 = Instant::now();
        let mut send = |d: &mut VideoDepacketizer, index: u32, forge: bool| {
            let info = FrameInfo {
                frame_index: index,
                // Every 10th frame an IDR, as a host answering IDR requests would send soon.
                frame_type: if index % 10 == 1 {
                    FrameType::Idr
                } else {
                    FrameType::P
                },
                rtp_timestamp: index,
                processing_latency: 0,
            };
            let pkts = p.packetize(&[index as u8; 100], info).unwrap().to_vec();
            let at = t0 + Duration::from_millis(33 * u64::from(index));
            let mut events = Vec::new();
            if forge {
                let mut g = pkts[0].clone();
                let seq = u16::from_be_bytes([g[2], g[3]]).wrapping_add(30_000);
                g[2..4].copy_from_slice(&seq.to_be_bytes());
                g[16..20].copy_from_slice(&(0x7F_0000u32 << 8).to_le_bytes());
                g[20..24].copy_from_slice(&(index + 30_000).to_le_bytes());
                events.extend(d.push(&g, at));
            }
            for pkt in &pkts {
                events.extend(d.push(pkt, at));
            }
            frames(&events)
                .iter()
                .map(|f| f.frame_index)
                .collect::<Vec<_>>()
        };
        let before: Vec<u32> = (1..=5).flat_map(|i| send(&mut d, i, false)).collect();
        assert_eq!(before, [1, 2, 3, 4, 5]);
        let mut after = send(&mut d, 6, true);
        after.extend((7..=80).flat_map(|i| send(&mut d, i, false)));
        assert!(d.stats().resyncs >= 1, "{:?}", d.stats());
        // Frames resume at the first IDR after the resync (frame 41 at 33 ms a frame).
        assert!(after.contains(&41) && after.contains(&80), "{after:?}");
    }

    #[test]
    fn rfi_mode_waits_for_an_invalidation_frame_not_an_idr() {
        let mut d = VideoDepacketizer::new(config(VideoCodec::Av1, None)).unwrap();
        d.set_reference_frame_invalidation(true);
        let mut p = VideoPacketizer::new(PacketizerConfig {
            packet_size: 48,
            ..Default::default()
        })
        .unwrap();
        let now = Instant::now();
        let mut send = |index: u32, frame_type: FrameType, keep: &dyn Fn(usize, usize) -> bool| {
            let info = FrameInfo {
                frame_index: index,
                frame_type,
                rtp_timestamp: index,
                processing_latency: 0,
            };
            let pkts = p.packetize(&[index as u8; 100], info).unwrap().to_vec();
            let n = pkts.len();
            let mut events = Vec::new();
            for (i, pkt) in pkts.iter().enumerate() {
                if keep(i, n) {
                    events.extend(d.push(pkt, now));
                }
            }
            events
        };
        let all = |_: usize, _: usize| true;
        let delivered =
            |e: &[VideoEvent]| frames(e).iter().map(|f| f.frame_index).collect::<Vec<_>>();
        assert_eq!(delivered(&send(1, FrameType::Idr, &all)), [1]);
        // Frame 2 loses everything but its last shard: reported at once.
        let e = send(2, FrameType::P, &|i, n| i == n - 1);
        assert!(
            e.contains(&VideoEvent::FrameLost { first: 2, last: 2 }),
            "{e:?}"
        );
        // A plain P-frame still references the lost one: dropped, range widened.
        let e = send(3, FrameType::P, &all);
        assert!(delivered(&e).is_empty());
        assert!(
            e.contains(&VideoEvent::FrameLost { first: 2, last: 3 }),
            "{e:?}"
        );
        // The host's post-invalidation frame resumes the stream without an IDR.
        assert_eq!(delivered(&send(4, FrameType::AfterRfi, &all)), [4]);
        assert_eq!(delivered(&send(5, FrameType::P, &all)), [5]);
        assert!(!d.is_waiting_for_idr());
    }

    /// Wolf-style multi-block frame: SOF/EOF only at the frame's ends, stream packet indices
    /// continuous over data shards only; parity recomputed over the shards as sent.
    fn wolf_frame(au: &[u8], frame_index: u32, seq0: u16) -> Vec<Vec<u8>> {
        let b = 64; // packetSize 48
        let payload = 32;
        let mut d = vec![1u8, 0, 0, 2, 0, 0, 0, 0];
        d[4..6].copy_from_slice(&(((au.len() + 8) % payload) as u16).to_le_bytes());
        d.extend_from_slice(au);
        let chunks: Vec<&[u8]> = d.chunks(payload).collect();
        let n = chunks.len();
        let per_block = n.div_ceil(3);
        let mut out = Vec::new();
        let mut seq = seq0;
        for (k, block) in chunks.chunks(per_block).enumerate() {
            let data = block.len();
            let parity = 2usize;
            let mut shards: Vec<Vec<u8>> = Vec::new();
            for (x, c) in block.iter().enumerate() {
                let global = k * per_block + x;
                let mut s = vec![0u8; b];
                s[0] = 0x90;
                s[2..4].copy_from_slice(&seq.wrapping_add(x as u16).to_be_bytes());
                s[16..20].copy_from_slice(&((u32::from(seq0) + global as u32) << 8).to_le_bytes());
                s[20..24].copy_from_slice(&frame_index.to_le_bytes());
                s[24] = FLAG_CONTAINS_PIC_DATA
                    | if global == 0 { FLAG_SOF } else { 0 }
                    | if global == n - 1 { FLAG_EOF } else { 0 };
                s[26] = 0x10;
                s[27] = ((k as u8) << 4) | (2 << 6);
                let fec = crate::video::wire::FecInfo {
                    data_shards: data as u16,
                    shard_index: x as u16,
                    fec_percent: (100 * parity / data) as u8,
                };
                s[28..32].copy_from_slice(&fec.to_raw().to_le_bytes());
                s[32..32 + c.len()].copy_from_slice(c);
                shards.push(s);
            }
            let pct = (100 * parity / data) as u8;
            let parity = crate::video::wire::parity_for(data, pct as usize);
            let mut par = vec![vec![0u8; b]; parity];
            ReedSolomon::new(data, parity)
                .unwrap()
                .encode(&shards, &mut par)
                .unwrap();
            for (j, mut p) in par.into_iter().enumerate() {
                let x = data + j;
                p[0] = 0x90;
                p[2..4].copy_from_slice(&seq.wrapping_add(x as u16).to_be_bytes());
                p[20..24].copy_from_slice(&frame_index.to_le_bytes());
                p[27] = ((k as u8) << 4) | (2 << 6);
                let fec = crate::video::wire::FecInfo {
                    data_shards: data as u16,
                    shard_index: x as u16,
                    fec_percent: pct,
                };
                p[28..32].copy_from_slice(&fec.to_raw().to_le_bytes());
                shards.push(p);
            }
            seq = seq.wrapping_add(shards.len() as u16);
            out.extend(shards);
        }
        out
    }

    #[test]
    fn wolf_multi_block_boundaries_are_recoverable() {
        let au: Vec<u8> = (0..400u32).map(|i| (i * 7 + 3) as u8).collect();
        let pkts = wolf_frame(&au, 1, 100);
        // Drop the first data shard of blocks 1 and 2 and the last data shard of block 0.
        let blocks: Vec<(u8, u16, u16)> = pkts
            .iter()
            .map(|p| {
                let fec = crate::video::wire::FecInfo::from_raw(u32::from_le_bytes(
                    p[28..32].try_into().unwrap(),
                ));
                ((p[27] >> 4) & 3, fec.shard_index, fec.data_shards)
            })
            .collect();
        let lost =
            |&(k, idx, data): &(u8, u16, u16)| (k > 0 && idx == 0) || (k == 0 && idx == data - 1);
        let mut d = VideoDepacketizer::new(config(VideoCodec::Av1, None)).unwrap();
        let now = Instant::now();
        let mut events = Vec::new();
        for (p, info) in pkts.iter().zip(&blocks) {
            if !lost(info) {
                events.extend(d.push(p, now));
            }
        }
        let f = frames(&events);
        assert_eq!(f.len(), 1, "{events:?}");
        assert_eq!(f[0].data, au);
        assert_eq!(f[0].recovered_shards, 3);
    }

    #[test]
    fn garbage_never_panics() {
        let mut d = VideoDepacketizer::new(config(VideoCodec::Av1, Some([1; 16]))).unwrap();
        let mut e = VideoDepacketizer::new(config(VideoCodec::H264, None)).unwrap();
        let now = Instant::now();
        let mut x: u32 = 1;
        for len in 0..400usize {
            let buf: Vec<u8> = (0..len)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 17;
                    x ^= x << 5;
                    x as u8
                })
                .collect();
            d.push(&buf, now);
            let mut b = buf.clone();
            if b.len() > 32 {
                b[0] = 0x90;
            }
            e.push(&b, now);
        }
        assert_eq!(d.stats().packets_dropped, 400);
    }
}
