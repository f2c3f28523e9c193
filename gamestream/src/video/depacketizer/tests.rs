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
    events.iter().filter_map(VideoEvent::frame).collect()
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
    let delivered = |e: &[VideoEvent]| frames(e).iter().map(|f| f.frame_index).collect::<Vec<_>>();
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
