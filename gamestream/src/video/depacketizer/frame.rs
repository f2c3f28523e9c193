//! Frame assembly: turning the staged shards of a finished frame into a [`VideoFrame`], the
//! continuity and IDR-wait checks that decide between delivery and drop, and the loss and FEC
//! reports that follow. Kept apart from the packet queue (`depacketizer.rs`) because it works on
//! whole frames, not packets.

use super::*;

impl VideoDepacketizer {
    /// MLC `processRtpPayload` over the frame's data shards, then delivery or drop.
    pub(super) fn complete_frame(&mut self) {
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
    pub(super) fn check_frame(
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
    pub(super) fn corrupt_frame(&mut self, frame_index: u32) {
        self.next_frame_number = frame_index.wrapping_add(1);
        self.stats.frames_dropped += 1;
        self.notify_frame_lost(frame_index);
    }

    /// MLC `notifyFrameLost`.
    pub(super) fn notify_frame_lost(&mut self, frame: u32) {
        self.drop_frame_state();
        if !self.waiting_for_idr {
            // RFI will repair the references: the lost frame is no longer expected.
            self.next_frame_number = frame.wrapping_add(1);
        }
        self.report_loss(self.start_frame_number, frame);
    }

    /// MLC `connectionDetectedFrameLoss`: frames `first..=last` are unusable.
    pub(super) fn report_loss(&mut self, first: u32, last: u32) {
        self.stats.frames_lost += 1;
        let first = if is_before32(last, first) {
            last
        } else {
            first
        };
        self.events.push(VideoEvent::FrameLost { first, last });
    }

    /// MLC `dropFrameState`.
    pub(super) fn drop_frame_state(&mut self) {
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

    pub(super) fn purge_staged(&mut self) {
        self.staged.clear();
        self.staged_shards.clear();
        self.staged_header = None;
        self.staged_recovered = 0;
    }

    pub(super) fn purge_frame(&mut self) {
        self.block.pending = 0;
        self.purge_staged();
    }

    /// MLC `reportFinalFrameFecStatus`.
    pub(super) fn report_fec_status(&mut self) {
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
pub(super) fn parse_frame_header(version: &AppVersion, payload: &[u8]) -> HeaderInfo {
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
