//! Property tests: host packetizer → lossy, reordering, duplicating network → client depacketizer.

use gamestream::video::{
    DepacketizerConfig, FrameInfo, FrameType, PacketizerConfig, VideoCodec, VideoDepacketizer,
    VideoEvent, VideoFrame, VideoPacketizer,
};
use gamestream::AppVersion;
use proptest::prelude::*;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use std::time::Instant;

const KEY: [u8; 16] = *b"0123456789abcdef";

/// For each FEC block of a frame: its datagram indices and its parity count.
type Blocks = Vec<(std::ops::Range<usize>, usize)>;

fn au_len() -> impl Strategy<Value = usize> {
    prop_oneof![1usize..2_000, 2_000usize..60_000, 60_000usize..300_000]
}

fn packet_size() -> impl Strategy<Value = usize> {
    (16usize..=87).prop_map(|k| k * 16)
}

/// Host and client for one stream.
struct Pair {
    plain: VideoPacketizer,
    wire: Option<VideoPacketizer>,
    client: VideoDepacketizer,
}

impl Pair {
    fn new(packet_size: usize, fec_percent: u8, encrypted: bool) -> Self {
        Self::with_rfi(packet_size, fec_percent, encrypted, false)
    }

    fn with_rfi(packet_size: usize, fec_percent: u8, encrypted: bool, rfi: bool) -> Self {
        let cfg = PacketizerConfig {
            packet_size,
            fec_percent,
            ..Default::default()
        };
        let key = encrypted.then_some(KEY);
        let mut client = VideoDepacketizer::new(DepacketizerConfig {
            packet_size,
            host_version: AppVersion::SUNSHINE,
            codec: VideoCodec::Av1,
            key,
        })
        .unwrap();
        client.set_reference_frame_invalidation(rfi);
        Self {
            plain: VideoPacketizer::new(cfg.clone()).unwrap(),
            wire: key.map(|k| {
                VideoPacketizer::new(PacketizerConfig {
                    key: Some(k),
                    ..cfg
                })
                .unwrap()
            }),
            client,
        }
    }

    /// Datagrams to send, and for each FEC block the range of datagram indices and its parity count.
    fn packetize(&mut self, au: &[u8], info: FrameInfo) -> (Vec<Vec<u8>>, Blocks) {
        let plain = self.plain.packetize(au, info).unwrap().to_vec();
        let wire = match &mut self.wire {
            Some(w) => w.packetize(au, info).unwrap().to_vec(),
            None => plain.clone(),
        };
        assert_eq!(plain.len(), wire.len());
        let mut blocks: Blocks = Vec::new();
        let mut start = 0;
        for i in 1..=plain.len() {
            if i == plain.len() || plain[i][27] != plain[start][27] {
                let fec = u32::from_le_bytes(plain[start][28..32].try_into().unwrap());
                let data = (fec >> 22) as usize;
                blocks.push((start..i, (i - start) - data));
                start = i;
            }
        }
        (wire, blocks)
    }

    fn push_all(&mut self, datagrams: &[Vec<u8>]) -> Vec<VideoEvent> {
        let now = Instant::now();
        datagrams
            .iter()
            .flat_map(|d| self.client.push(d, now))
            .collect()
    }
}

fn frames(events: &[VideoEvent]) -> Vec<&VideoFrame> {
    events.iter().filter_map(VideoEvent::frame).collect()
}

fn random_au(rng: &mut StdRng, len: usize) -> Vec<u8> {
    let mut au = vec![0u8; len];
    rng.fill(&mut au[..]);
    au
}

/// Drops up to `parity` shards per block (or `parity + 1` in the blocks listed in `overload`),
/// shuffles each block, moves each block's surplus shards (beyond what it needs) to random later
/// positions, and duplicates a few datagrams.
fn network(
    rng: &mut StdRng,
    datagrams: &[Vec<u8>],
    blocks: &[(std::ops::Range<usize>, usize)],
    overload: Option<usize>,
) -> Vec<Vec<u8>> {
    let mut out: Vec<Vec<u8>> = Vec::new();
    // (earliest position, datagram): surplus shards may only come after their block completed.
    let mut late: Vec<(usize, Vec<u8>)> = Vec::new();
    for (b, (range, parity)) in blocks.iter().enumerate() {
        let total = range.len();
        let data = total - parity;
        let lose = if overload == Some(b) {
            parity + 1
        } else {
            rng.gen_range(0..=*parity)
        };
        let mut idx: Vec<usize> = range.clone().collect();
        idx.shuffle(rng);
        idx.truncate(total - lose);
        let keep = idx.len().min(data);
        for &i in &idx[..keep] {
            out.push(datagrams[i].clone());
        }
        for &i in &idx[keep..] {
            late.push((out.len(), datagrams[i].clone()));
        }
    }
    let mut placed: Vec<(usize, Vec<u8>)> = late
        .into_iter()
        .map(|(min, d)| (rng.gen_range(min..=out.len()), d))
        .collect();
    placed.sort_by_key(|(pos, _)| std::cmp::Reverse(*pos));
    for (pos, d) in placed {
        out.insert(pos, d);
    }
    for _ in 0..rng.gen_range(0..4) {
        if out.is_empty() {
            break;
        }
        let i = rng.gen_range(0..out.len());
        let dup = out[i].clone();
        let pos = rng.gen_range(i + 1..=out.len());
        out.insert(pos, dup);
    }
    out
}

fn info(frame_index: u32, frame_type: FrameType) -> FrameInfo {
    FrameInfo {
        frame_index,
        frame_type,
        rtp_timestamp: frame_index.wrapping_mul(1500),
        processing_latency: 12,
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 40, .. ProptestConfig::default() })]

    #[test]
    fn recoverable_loss_reorder_and_duplicates_give_the_exact_frame(
        len in au_len(),
        fec in prop_oneof![Just(0u8), 1u8..=120, 121u8..=255],
        size in packet_size(),
        encrypted in any::<bool>(),
        seed in any::<u64>(),
    ) {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut pair = Pair::new(size, fec, encrypted);
        let au = random_au(&mut rng, len);
        let (datagrams, blocks) = pair.packetize(&au, info(1, FrameType::Idr));
        let sent = network(&mut rng, &datagrams, &blocks, None);
        let events = pair.push_all(&sent);
        let got = frames(&events);
        prop_assert_eq!(got.len(), 1);
        prop_assert_eq!(got[0].frame_index, 1);
        prop_assert!(got[0].is_idr);
        prop_assert_eq!(got[0].rtp_timestamp, 1500);
        prop_assert_eq!(got[0].host_processing_latency, 12);
        prop_assert!(got[0].data == au, "data differs (len {} vs {})", got[0].data.len(), au.len());
    }

    #[test]
    fn loss_beyond_parity_is_reported_and_the_next_idr_recovers(
        len in au_len(),
        fec in 0u8..=100,
        size in packet_size(),
        encrypted in any::<bool>(),
        seed in any::<u64>(),
    ) {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut pair = Pair::new(size, fec, encrypted);
        let aus: Vec<Vec<u8>> = (0..4).map(|_| random_au(&mut rng, len)).collect();
        let types = [FrameType::Idr, FrameType::P, FrameType::P, FrameType::Idr];
        let mut events = Vec::new();
        for (i, au) in aus.iter().enumerate() {
            let (datagrams, blocks) = pair.packetize(au, info(i as u32 + 1, types[i]));
            let overload = (i == 1).then(|| rng.gen_range(0..blocks.len()));
            let sent = if i == 1 { network(&mut rng, &datagrams, &blocks, overload) } else { datagrams };
            events.extend(pair.push_all(&sent));
        }
        let got = frames(&events);
        let indices: Vec<u32> = got.iter().map(|f| f.frame_index).collect();
        prop_assert_eq!(&indices, &vec![1, 4]);
        prop_assert!(got[0].data == aus[0]);
        prop_assert!(got[1].data == aus[3]);
        prop_assert!(events.iter().any(|e| matches!(e, VideoEvent::FrameLost { last: 2, .. })), "{:?}",
            events.iter().filter(|e| !matches!(e, VideoEvent::Frame(_))).collect::<Vec<_>>());
        prop_assert!(events.contains(&VideoEvent::RequestIdr));
        prop_assert_eq!(pair.client.stats().frames_ok, 2);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, .. ProptestConfig::default() })]

    /// A stream with random losses, in order: a frame is delivered exactly when it arrived
    /// recoverable and its references are intact (it is an IDR, every frame since the last
    /// delivered one was delivered, or, with RFI, it is the host's post-invalidation frame after
    /// an IDR was decoded). The host answers loss reports with an IDR, or with RFI when enabled.
    #[test]
    fn frame_sequence_with_random_losses(
        size in packet_size(),
        fec in 0u8..=60,
        encrypted in any::<bool>(),
        rfi in any::<bool>(),
        seed in any::<u64>(),
    ) {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut pair = Pair::with_rfi(size, fec, encrypted, rfi);
        let mut need_idr = true;
        let mut need_repair = false;
        let mut idr_delivered = false;
        let mut chain_ok = false;
        let mut delivered_count = 0;
        for index in 1..=40u32 {
            let frame_type = if need_idr || !idr_delivered {
                FrameType::Idr
            } else if need_repair {
                FrameType::AfterRfi
            } else {
                FrameType::P
            };
            let len = if frame_type == FrameType::Idr { rng.gen_range(20_000..120_000) } else { rng.gen_range(1..30_000) };
            let au = random_au(&mut rng, len);
            let (datagrams, blocks) = pair.packetize(&au, info(index, frame_type));
            let overload = rng.gen_bool(0.2).then(|| rng.gen_range(0..blocks.len()));
            // Per block: lose within parity, or one more in the overloaded block; keep order.
            let mut keep = vec![true; datagrams.len()];
            for (b, (range, parity)) in blocks.iter().enumerate() {
                let lose = if overload == Some(b) { parity + 1 } else { rng.gen_range(0..=*parity) };
                let mut idx: Vec<usize> = range.clone().collect();
                idx.shuffle(&mut rng);
                for &i in &idx[..lose] {
                    keep[i] = false;
                }
            }
            let sent: Vec<Vec<u8>> = datagrams.into_iter().zip(&keep).filter(|(_, k)| **k).map(|(d, _)| d).collect();
            let events = pair.push_all(&sent);
            let recoverable = overload.is_none();
            let repairs = rfi && idr_delivered && frame_type == FrameType::AfterRfi;
            chain_ok = recoverable && (frame_type == FrameType::Idr || chain_ok || repairs);
            let got = frames(&events);
            // A frame whose last block was overloaded is only known lost when the next one arrives,
            // so loss reports may lag; delivery must never.
            if chain_ok {
                prop_assert_eq!(got.len(), 1, "frame {} should be delivered", index);
                prop_assert!(got[0].data == au);
                prop_assert_eq!(got[0].frame_index, index);
                delivered_count += 1;
                if frame_type == FrameType::Idr {
                    idr_delivered = true;
                    need_idr = false;
                }
                if frame_type != FrameType::P {
                    need_repair = false;
                }
            } else {
                prop_assert!(got.is_empty(), "frame {} must not be delivered", index);
            }
            for e in &events {
                match e {
                    VideoEvent::FrameLost { .. } if rfi => need_repair = true,
                    VideoEvent::FrameLost { .. } | VideoEvent::RequestIdr => need_idr = true,
                    _ => {}
                }
            }
        }
        prop_assert_eq!(pair.client.stats().frames_ok, delivered_count);
    }
}
