//! FEC recovery of the block being received: Reed–Solomon rebuild of missing data shards in the
//! slot buffer, then staging the block's data shards for frame assembly. Kept apart from the
//! packet queue (`depacketizer.rs`) because it only runs once a block has enough shards.

use super::*;

impl VideoDepacketizer {
    /// MLC `reconstructFrame`: true when every data shard of the block is present (received or
    /// rebuilt and checked).
    pub(super) fn reconstruct_block(&mut self, now: Instant) -> bool {
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
    pub(super) fn stage_block(&mut self) {
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
                let header = super::frame::parse_frame_header(&self.config.host_version, payload);
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
}
