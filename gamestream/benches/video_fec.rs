//! Video hot paths on one core: depacketize + FEC recovery at 10 % random loss, and packetize.
//!
//! Run: `cargo bench -p gamestream --bench video_fec` (prints MB/s of access-unit bytes).

use gamestream::video::{
    DepacketizerConfig, FrameInfo, FrameType, PacketizerConfig, VideoCodec, VideoDepacketizer,
    VideoEvent, VideoPacketizer,
};
use gamestream::AppVersion;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::time::{Duration, Instant};

const PACKET_SIZE: usize = 1392;
const KEY: [u8; 16] = [0x42; 16];

fn frame_info(index: u32) -> FrameInfo {
    FrameInfo {
        frame_index: index,
        frame_type: FrameType::Idr,
        rtp_timestamp: index * 1500,
        processing_latency: 0,
    }
}

/// Runs `f` repeatedly for about `budget`; returns (iterations, seconds).
fn measure(budget: Duration, mut f: impl FnMut()) -> (u64, f64) {
    f(); // warm-up
    let start = Instant::now();
    let mut n = 0;
    while start.elapsed() < budget {
        f();
        n += 1;
    }
    (n, start.elapsed().as_secs_f64())
}

/// The packetizer both benches feed: 20 % FEC, optionally encrypting with `key`.
fn packetizer(key: Option<[u8; 16]>) -> VideoPacketizer {
    VideoPacketizer::new(PacketizerConfig {
        packet_size: PACKET_SIZE,
        fec_percent: 20,
        key,
        ..Default::default()
    })
    .unwrap()
}

fn depacketize_bench(frame_bytes: usize, frames: u32, loss: f64, encrypted: bool) {
    let mut rng = StdRng::seed_from_u64(7);
    let key = encrypted.then_some(KEY);
    let mut packetizer = packetizer(key);
    let mut datagrams: Vec<Vec<u8>> = Vec::new();
    let mut sent = 0usize;
    let mut total = 0usize;
    for index in 1..=frames {
        let mut au = vec![0u8; frame_bytes];
        rng.fill(&mut au[..]);
        for d in packetizer.packetize(&au, frame_info(index)).unwrap().iter() {
            total += 1;
            if !rng.gen_bool(loss) {
                datagrams.push(d.to_vec());
                sent += 1;
            }
        }
    }
    let au_bytes = frame_bytes as f64 * f64::from(frames);
    let mut delivered = 0;
    let mut recovered = 0;
    let (iters, secs) = measure(Duration::from_secs(2), || {
        let mut d = VideoDepacketizer::new(DepacketizerConfig {
            packet_size: PACKET_SIZE,
            host_version: AppVersion::SUNSHINE,
            codec: VideoCodec::H264,
            key,
        })
        .unwrap();
        let now = Instant::now();
        delivered = 0;
        for dg in &datagrams {
            for e in d.push(dg, now) {
                if let VideoEvent::Frame(f) = e {
                    delivered += 1;
                    std::hint::black_box(&f.data);
                }
            }
        }
        recovered = d.stats().frames_recovered;
    });
    let mbps = au_bytes * iters as f64 / secs / 1e6;
    println!(
        "depacketize{} {:>4} KB frames, {:>4.1}% loss ({} of {} datagrams sent): {:>7.0} MB/s  ({:.1} kfps; {}/{} frames delivered, {} via FEC)",
        if encrypted { "+decrypt" } else { "        " },
        frame_bytes / 1000,
        loss * 100.0,
        sent,
        total,
        mbps,
        f64::from(frames) * iters as f64 / secs / 1e3,
        delivered,
        frames,
        recovered
    );
}

fn packetize_bench(frame_bytes: usize, encrypted: bool) {
    let key = encrypted.then_some(KEY);
    let mut packetizer = packetizer(key);
    let au: Vec<u8> = (0..frame_bytes).map(|i| (i * 7) as u8).collect();
    let mut index = 0;
    let (iters, secs) = measure(Duration::from_secs(1), || {
        index += 1;
        let batch = packetizer.packetize(&au, frame_info(index)).unwrap();
        std::hint::black_box(batch.len());
    });
    println!(
        "packetize{} {:>4} KB frames, 20% FEC: {:>7.0} MB/s",
        if encrypted { "+encrypt" } else { "        " },
        frame_bytes / 1000,
        frame_bytes as f64 * iters as f64 / secs / 1e6
    );
}

fn main() {
    println!("video_fec: packetSize {PACKET_SIZE}, FEC 20 %, one core");
    depacketize_bench(42_000, 200, 0.0, false);
    depacketize_bench(42_000, 200, 0.10, false);
    depacketize_bench(300_000, 30, 0.10, false);
    depacketize_bench(42_000, 200, 0.10, true);
    packetize_bench(42_000, false);
    packetize_bench(300_000, false);
    packetize_bench(42_000, true);
    packetize_bench(300_000, true);
}
