//! Client side: audio datagrams → in-order Opus packets, with RS(4,2) recovery and loss reports.

use super::rtp::{parse_audio_packet, AudioFecHeader, AudioPacket, DATA_SHARDS, FEC_SHARDS};
use super::AudioEncryption;
use crate::fec::ReedSolomon;

/// Settings of an [`AudioDepacketizer`].
#[derive(Debug, Clone)]
pub struct AudioDepacketizerConfig {
    /// Packet duration in ms (the value the client put in SDP); used for timestamps of recovered
    /// packets.
    pub packet_duration_ms: u32,
    /// AES-CBC decryption, when the session negotiated audio encryption.
    pub encryption: Option<AudioEncryption>,
    /// How many packets past a missing one we wait (for reordering and FEC) before reporting it
    /// lost. 8 = two FEC blocks.
    pub reorder_window: u16,
    /// Use FEC packets (off for hosts older than 7.1.415, whose audio FEC is incompatible).
    pub fec: bool,
}

impl AudioDepacketizerConfig {
    /// Defaults for a modern host: FEC on, window of 8 packets.
    pub fn new(packet_duration_ms: u32, encryption: Option<AudioEncryption>) -> Self {
        Self {
            packet_duration_ms,
            encryption,
            reorder_window: 8,
            fec: true,
        }
    }

    /// Defaults for `version`: FEC only for hosts ≥ 7.1.415 (moonlight-common-c turns it off for
    /// older GFE, whose audio FEC breaks the 4-packet block invariants).
    pub fn for_host(
        version: crate::version::AppVersion,
        packet_duration_ms: u32,
        encryption: Option<AudioEncryption>,
    ) -> Self {
        Self {
            fec: version.at_least(7, 1, 415),
            ..Self::new(packet_duration_ms, encryption)
        }
    }
}

/// What the depacketizer hands to the decoder, in sequence order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AudioEvent {
    /// An Opus packet (decrypted).
    Packet {
        /// RTP sequence number.
        sequence: u16,
        /// RTP timestamp (ms).
        timestamp: u32,
        /// The Opus packet.
        opus: Vec<u8>,
        /// True if it was rebuilt from FEC.
        recovered: bool,
    },
    /// This packet is gone for good: run packet-loss concealment (decode with no data).
    Lost {
        /// RTP sequence number.
        sequence: u16,
    },
}

/// Counters for diagnostics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AudioStats {
    /// Data datagrams received.
    pub data_packets: u64,
    /// FEC datagrams received.
    pub fec_packets: u64,
    /// Packets delivered (received or recovered).
    pub delivered: u64,
    /// Packets rebuilt from FEC.
    pub recovered: u64,
    /// Packets reported lost.
    pub lost: u64,
    /// Duplicate datagrams dropped.
    pub duplicates: u64,
    /// Datagrams for packets already delivered or given up.
    pub stale: u64,
    /// Unparsable or inconsistent datagrams.
    pub invalid: u64,
    /// Packets whose decryption failed (reported as lost).
    pub decrypt_failures: u64,
    /// Times the stream was re-synchronised after a large jump.
    pub resyncs: u64,
}

/// A forward jump larger than this many packets re-synchronises instead of reporting every packet
/// in between as lost.
const RESYNC_GAP: i32 = 256;
/// This many consecutive stale datagrams mean the sender restarted its sequence.
const RESYNC_STALE_RUN: u32 = 64;
/// Blocks kept at most (bounded memory whatever the peer sends).
const MAX_BLOCKS: usize = 16;

#[derive(Debug)]
struct Block {
    base: u16,
    data: [Option<(u32, Vec<u8>)>; DATA_SHARDS],
    parity: [Option<Vec<u8>>; FEC_SHARDS],
    fec_header: Option<AudioFecHeader>,
    shard_len: Option<usize>,
    /// Shards of unequal length seen: FEC is unusable for this block.
    inconsistent: bool,
    recovered: [bool; DATA_SHARDS],
}

impl Block {
    fn new(base: u16) -> Self {
        Self {
            base,
            data: Default::default(),
            parity: Default::default(),
            fec_header: None,
            shard_len: None,
            inconsistent: false,
            recovered: [false; DATA_SHARDS],
        }
    }

    fn note_len(&mut self, len: usize) {
        match self.shard_len {
            None => self.shard_len = Some(len),
            Some(l) if l != len => self.inconsistent = true,
            _ => {}
        }
    }
}

/// Sans-IO audio depacketizer (the client's `RtpAudioQueue`). Never panics on any input.
#[derive(Debug)]
pub struct AudioDepacketizer {
    config: AudioDepacketizerConfig,
    rs: ReedSolomon,
    next: Option<u16>,
    highest: u16,
    blocks: Vec<Block>,
    stale_run: u32,
    stats: AudioStats,
}

fn diff(a: u16, b: u16) -> i32 {
    i32::from(a.wrapping_sub(b) as i16)
}

fn block_base(seq: u16) -> u16 {
    seq - seq % DATA_SHARDS as u16
}

impl AudioDepacketizer {
    /// A depacketizer that synchronises on the first data packet it sees.
    pub fn new(config: AudioDepacketizerConfig) -> Self {
        Self {
            config,
            rs: ReedSolomon::audio(),
            next: None,
            highest: 0,
            blocks: Vec::new(),
            stale_run: 0,
            stats: AudioStats::default(),
        }
    }

    /// Counters so far.
    pub fn stats(&self) -> AudioStats {
        self.stats
    }

    /// Feeds one datagram; returns the events it made ready, in sequence order.
    pub fn push(&mut self, datagram: &[u8]) -> Vec<AudioEvent> {
        let mut events = Vec::new();
        match parse_audio_packet(datagram) {
            Ok(AudioPacket::Data { rtp, payload }) => {
                self.stats.data_packets += 1;
                self.on_data(rtp.sequence, rtp.timestamp, payload, &mut events);
            }
            Ok(AudioPacket::Fec { fec, parity, .. }) => {
                self.stats.fec_packets += 1;
                if self.config.fec {
                    self.on_fec(fec, parity);
                }
            }
            Err(_) => self.stats.invalid += 1,
        }
        self.drain(&mut events);
        events
    }

    fn resync(&mut self, seq: u16) {
        self.blocks.clear();
        self.next = Some(seq);
        self.highest = seq;
        self.stale_run = 0;
    }

    fn block_mut(&mut self, base: u16) -> &mut Block {
        let idx = match self.blocks.iter().position(|b| b.base == base) {
            Some(i) => i,
            None => {
                if self.blocks.len() >= MAX_BLOCKS {
                    // Evict the block furthest from the play-out point.
                    let next = self.next.unwrap_or(base);
                    if let Some((i, _)) = self
                        .blocks
                        .iter()
                        .enumerate()
                        .max_by_key(|(_, b)| diff(b.base, next))
                    {
                        self.blocks.swap_remove(i);
                    }
                }
                self.blocks.push(Block::new(base));
                self.blocks.len() - 1
            }
        };
        &mut self.blocks[idx]
    }

    fn on_data(&mut self, seq: u16, ts: u32, payload: &[u8], events: &mut Vec<AudioEvent>) {
        let Some(next) = self.next else {
            self.resync(seq);
            return self.store_data(seq, ts, payload);
        };
        let d = diff(seq, next);
        if d < 0 {
            self.stats.stale += 1;
            self.stale_run += 1;
            if self.stale_run >= RESYNC_STALE_RUN {
                self.stats.resyncs += 1;
                self.resync(seq);
                self.store_data(seq, ts, payload);
            }
            return;
        }
        self.stale_run = 0;
        if d > RESYNC_GAP {
            self.stats.resyncs += 1;
            self.drain(events);
            self.resync(seq);
        }
        self.store_data(seq, ts, payload);
    }

    fn store_data(&mut self, seq: u16, ts: u32, payload: &[u8]) {
        let base = block_base(seq);
        let slot = usize::from(seq % DATA_SHARDS as u16);
        let block = self.block_mut(base);
        if block.data[slot].is_some() {
            self.stats.duplicates += 1;
            return;
        }
        block.note_len(payload.len());
        block.data[slot] = Some((ts, payload.to_vec()));
        if diff(seq, self.highest) > 0 {
            self.highest = seq;
        }
    }

    fn on_fec(&mut self, fec: AudioFecHeader, parity: &[u8]) {
        let Some(next) = self.next else { return };
        let last = fec.base_sequence.wrapping_add(DATA_SHARDS as u16 - 1);
        if diff(last, next) < 0 {
            self.stats.stale += 1;
            return;
        }
        if diff(fec.base_sequence, next) > RESYNC_GAP {
            self.stats.invalid += 1;
            return;
        }
        let block = self.block_mut(fec.base_sequence);
        let i = usize::from(fec.shard_index).min(FEC_SHARDS - 1);
        if block.parity[i].is_some() {
            self.stats.duplicates += 1;
            return;
        }
        if block
            .fec_header
            .is_some_and(|h| h.base_timestamp != fec.base_timestamp)
        {
            self.stats.invalid += 1;
            return;
        }
        block.note_len(parity.len());
        block.fec_header = Some(fec);
        block.parity[i] = Some(parity.to_vec());
        if diff(last, self.highest) > 0 {
            self.highest = last;
        }
        self.try_recover(fec.base_sequence);
    }

    fn try_recover(&mut self, base: u16) {
        let duration = self.config.packet_duration_ms;
        let Some(block) = self.blocks.iter_mut().find(|b| b.base == base) else {
            return;
        };
        let missing = block.data.iter().filter(|d| d.is_none()).count();
        let have = DATA_SHARDS - missing + block.parity.iter().filter(|p| p.is_some()).count();
        let (Some(len), Some(header)) = (block.shard_len, block.fec_header) else {
            return;
        };
        if missing == 0 || have < DATA_SHARDS || block.inconsistent {
            return;
        }
        let mut shards: Vec<Vec<u8>> = Vec::with_capacity(DATA_SHARDS + FEC_SHARDS);
        let mut present = Vec::with_capacity(DATA_SHARDS + FEC_SHARDS);
        for d in &block.data {
            present.push(d.is_some());
            shards.push(
                d.as_ref()
                    .map_or_else(|| vec![0u8; len], |(_, p)| p.clone()),
            );
        }
        for p in &block.parity {
            present.push(p.is_some());
            shards.push(p.clone().unwrap_or_else(|| vec![0u8; len]));
        }
        if self.rs.reconstruct(&mut shards, &present).is_err() {
            return;
        }
        for (i, shard) in shards.into_iter().take(DATA_SHARDS).enumerate() {
            if block.data[i].is_none() {
                let ts = header
                    .base_timestamp
                    .wrapping_add(duration.wrapping_mul(i as u32));
                block.data[i] = Some((ts, shard));
                block.recovered[i] = true;
            }
        }
    }

    fn emit(
        &mut self,
        seq: u16,
        ts: u32,
        payload: Vec<u8>,
        recovered: bool,
        events: &mut Vec<AudioEvent>,
    ) {
        let opus = match &self.config.encryption {
            Some(enc) => match enc.decrypt(seq, &payload) {
                Ok(p) => p,
                Err(_) => {
                    self.stats.decrypt_failures += 1;
                    self.stats.lost += 1;
                    events.push(AudioEvent::Lost { sequence: seq });
                    return;
                }
            },
            None => payload,
        };
        self.stats.delivered += 1;
        if recovered {
            self.stats.recovered += 1;
        }
        events.push(AudioEvent::Packet {
            sequence: seq,
            timestamp: ts,
            opus,
            recovered,
        });
    }

    fn drain(&mut self, events: &mut Vec<AudioEvent>) {
        let window = i32::from(self.config.reorder_window.max(1));
        while let Some(next) = self.next {
            let base = block_base(next);
            let slot = usize::from(next % DATA_SHARDS as u16);
            let ready = self
                .blocks
                .iter_mut()
                .find(|b| b.base == base)
                .and_then(|b| {
                    b.data[slot]
                        .as_ref()
                        .map(|(ts, p)| (*ts, p.clone(), b.recovered[slot]))
                });
            match ready {
                Some((ts, payload, recovered)) => self.emit(next, ts, payload, recovered, events),
                None if diff(self.highest, next) >= window => {
                    self.stats.lost += 1;
                    events.push(AudioEvent::Lost { sequence: next });
                }
                None => break,
            }
            let advanced = next.wrapping_add(1);
            self.next = Some(advanced);
            if diff(advanced, self.highest) > 0 {
                self.highest = next;
            }
            if slot == DATA_SHARDS - 1 {
                self.blocks.retain(|b| diff(b.base, advanced) >= 0);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::{AudioPacketizer, AudioPacketizerConfig};
    use super::*;

    fn key() -> [u8; 16] {
        core::array::from_fn(|i| i as u8)
    }

    fn stream(n: usize, enc: Option<AudioEncryption>) -> Vec<(Vec<u8>, Option<u16>)> {
        // (datagram, Some(data seq) or None for FEC)
        let mut p = AudioPacketizer::new(AudioPacketizerConfig {
            packet_duration_ms: 5,
            encryption: enc,
        });
        let mut out = Vec::new();
        for k in 0..n {
            let opus = vec![k as u8; 20];
            for d in p.push(&opus) {
                let seq = (d[1] == 97).then(|| u16::from_be_bytes([d[2], d[3]]));
                out.push((d, seq));
            }
        }
        out
    }

    fn run(
        dg: &[(Vec<u8>, Option<u16>)],
        drop: impl Fn(usize, Option<u16>) -> bool,
        enc: Option<AudioEncryption>,
    ) -> (Vec<AudioEvent>, AudioStats) {
        let mut d = AudioDepacketizer::new(AudioDepacketizerConfig::new(5, enc));
        let mut events = Vec::new();
        for (i, (bytes, seq)) in dg.iter().enumerate() {
            if !drop(i, *seq) {
                events.extend(d.push(bytes));
            }
        }
        (events, d.stats())
    }

    fn summary(events: &[AudioEvent]) -> Vec<(u16, char)> {
        events
            .iter()
            .map(|e| match e {
                AudioEvent::Packet {
                    sequence,
                    recovered: false,
                    opus,
                    ..
                } => {
                    assert_eq!(opus, &vec![*sequence as u8; 20]);
                    (*sequence, 'p')
                }
                AudioEvent::Packet {
                    sequence,
                    recovered: true,
                    opus,
                    timestamp,
                } => {
                    assert_eq!(opus, &vec![*sequence as u8; 20]);
                    assert_eq!(*timestamp, u32::from(*sequence) * 5);
                    (*sequence, 'r')
                }
                AudioEvent::Lost { sequence } => (*sequence, 'l'),
            })
            .collect()
    }

    #[test]
    fn lossless_in_order() {
        for enc in [None, Some(AudioEncryption::new(key(), 99))] {
            let dg = stream(40, enc.clone());
            let (events, stats) = run(&dg, |_, _| false, enc);
            let s = summary(&events);
            assert_eq!(s, (0..40).map(|i| (i, 'p')).collect::<Vec<_>>());
            assert_eq!(stats.fec_packets, 20);
        }
    }

    #[test]
    fn fec_recovers_and_plc_reports() {
        let enc = Some(AudioEncryption::new(key(), 0xfffffffe));
        let dg = stream(24, enc.clone());
        // Block 0: lose seq 1 (recoverable). Block 1: lose 5 and 7 (2 losses, both FEC present:
        // recoverable). Block 2: lose 8, 9, 10 (unrecoverable). Block 3: lose 15 and FEC 0.
        let (events, stats) = run(
            &dg,
            |i, seq| {
                matches!(seq, Some(1 | 5 | 7 | 8 | 9 | 10 | 15))
                    || (seq.is_none()
                        && i == dg
                            .iter()
                            .position(|(d, _)| d[1] == 127 && d[15] == 12 && d[12] == 0)
                            .unwrap())
            },
            enc,
        );
        let s = summary(&events);
        let mut expected: Vec<(u16, char)> = (0..24).map(|i| (i, 'p')).collect();
        for r in [1, 5, 7] {
            expected[r].1 = 'r';
        }
        for l in [8, 9, 10] {
            expected[l].1 = 'l';
        }
        expected[15].1 = 'r';
        assert_eq!(s, expected);
        assert_eq!((stats.recovered, stats.lost), (4, 3));
    }

    #[test]
    fn reordering_and_duplicates() {
        let dg = stream(12, None);
        let mut d = AudioDepacketizer::new(AudioDepacketizerConfig::new(5, None));
        let mut events = Vec::new();
        let order = [0usize, 2, 1, 1, 3, 4, 5, 0];
        for &i in &order {
            events.extend(d.push(&dg[i].0));
        }
        for (bytes, _) in &dg[6..] {
            events.extend(d.push(bytes));
        }
        let s = summary(&events);
        assert_eq!(s, (0..12).map(|i| (i, 'p')).collect::<Vec<_>>());
        assert!(d.stats().duplicates + d.stats().stale >= 2);
    }

    #[test]
    fn garbage_never_panics() {
        let mut d = AudioDepacketizer::new(AudioDepacketizerConfig::new(
            5,
            Some(AudioEncryption::new(key(), 1)),
        ));
        let mut x: u32 = 12345;
        for _ in 0..5000 {
            let len = (x % 60) as usize;
            let mut bytes: Vec<u8> = (0..len)
                .map(|_| {
                    x = x.wrapping_mul(1103515245).wrapping_add(12345);
                    (x >> 16) as u8
                })
                .collect();
            if bytes.len() > 2 {
                bytes[1] = if x % 2 == 0 { 97 } else { 127 };
            }
            let _ = d.push(&bytes);
        }
    }

    #[test]
    fn large_jump_resyncs() {
        let mut d = AudioDepacketizer::new(AudioDepacketizerConfig::new(5, None));
        let pkt = |seq: u16| super::super::rtp::encode_data_packet(seq, 0, b"x");
        assert_eq!(d.push(&pkt(0)).len(), 1);
        let ev = d.push(&pkt(30000));
        assert_eq!(ev.len(), 1);
        assert_eq!(d.stats().resyncs, 1);
        // Sender restart: a run of "old" sequence numbers.
        let mut got = 0;
        for s in 0..100u16 {
            got += d.push(&pkt(s)).len();
        }
        assert!(got > 0);
        assert_eq!(d.stats().resyncs, 2);
    }

    proptest::proptest! {
        #[test]
        fn any_loss_pattern_keeps_order(drops in proptest::collection::vec(proptest::bool::weighted(0.15), 96), swaps in proptest::collection::vec(0usize..96, 0..10)) {
            let mut dg = stream(64, None);
            for s in swaps {
                if s + 1 < dg.len() {
                    dg.swap(s, s + 1);
                }
            }
            let (events, _) = run(&dg, |i, _| drops[i], None);
            let s = summary(&events);
            for w in s.windows(2) {
                proptest::prop_assert_eq!(w[1].0, w[0].0 + 1);
            }
            // Every packet that arrived (and is past the first sync point and inside the window) is delivered.
            if let Some(&(first, _)) = s.first() {
                for (i, (_, seq)) in dg.iter().enumerate() {
                    if let Some(seq) = seq {
                        if !drops[i] && *seq > first && *seq + 8 < 64 && *seq < first + s.len() as u16 {
                            proptest::prop_assert_ne!(s[usize::from(*seq - first)].1, 'l');
                        }
                    }
                }
            }
        }
    }
}
