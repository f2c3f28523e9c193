//! Encoder cost of the demo host's video sources: `cargo bench -p demo-host --bench encoder`.
//!
//! For live H.264 at 720p60 and 1080p60 it encodes as fast as it can for a few seconds and prints
//! frames/s, process CPU % (CPU time over wall time, from /proc/self/stat; above 100 % means more
//! than one core) and the share of one core a real-time 60 fps stream needs. Then it times the
//! up-front encode of replay mode at 1080p60 and the per-frame cost of replaying.

use std::time::{Duration, Instant};

use demo_host::media::{
    open_video, open_video_with, stamp_send_time, PatternStyle, SourceKind, VideoCodec,
    VideoFormat, VideoOptions,
};

/// Process CPU time (user + system) from /proc/self/stat, in clock ticks of USER_HZ = 100 (the
/// value Linux exports on every architecture). `None` off Linux.
fn cpu_time() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(Duration::from_millis(ticks * 10))
}

fn style() -> PatternStyle {
    PatternStyle {
        label: "bench lobby".into(),
        color: [40, 120, 200],
    }
}

fn format(width: u32, height: u32, bitrate_kbps: u32) -> VideoFormat {
    VideoFormat {
        codec: VideoCodec::H264,
        width,
        height,
        fps: 60,
        bitrate_kbps,
    }
}

fn run(name: &str, kind: SourceKind, fmt: VideoFormat, seconds: f64) {
    let open_wall = Instant::now();
    let open_cpu = cpu_time();
    let mut src = match open_video(kind, fmt, style()) {
        Ok(s) => s,
        Err(e) => {
            println!("{name}: cannot open: {e}");
            return;
        }
    };
    if kind == SourceKind::Replay && fmt.codec == VideoCodec::H264 {
        let cpu = cpu_time().zip(open_cpu).map(|(b, a)| b.saturating_sub(a));
        println!(
            "{name}: up-front encode of {} frames took {:.2?} wall, {:.2?} CPU",
            fmt.fps * 2,
            open_wall.elapsed(),
            cpu.unwrap_or_default()
        );
    }
    let (start_wall, start_cpu) = (Instant::now(), cpu_time());
    let mut frames = 0u64;
    let mut bytes = 0usize;
    while start_wall.elapsed().as_secs_f64() < seconds {
        match src.next_frame(frames % 600 == 599) {
            Ok(f) => bytes += f.data.len(),
            Err(e) => {
                println!("{name}: encode failed: {e}");
                return;
            }
        }
        frames += 1;
    }
    let wall = start_wall.elapsed().as_secs_f64();
    let cpu = cpu_time()
        .zip(start_cpu)
        .map(|(b, a)| b.saturating_sub(a).as_secs_f64());
    let fps = frames as f64 / wall;
    let kbps = bytes as f64 * 8.0 / 1000.0 / (frames as f64 / f64::from(fmt.fps));
    match cpu {
        Some(cpu) => {
            let per_frame_us = cpu * 1e6 / frames as f64;
            println!(
                "{name}: {fps:.0} frames/s, CPU {:.0} %, {per_frame_us:.2} µs CPU/frame, real-time {} fps needs {:.3} % of a core, {kbps:.0} kbit/s",
                cpu / wall * 100.0,
                fmt.fps,
                per_frame_us * f64::from(fmt.fps) / 1e4,
            );
        }
        None => println!("{name}: {fps:.0} frames/s, {kbps:.0} kbit/s (no /proc/self/stat)"),
    }
}

/// Cost of [`stamp_send_time`] on a 1080p60 @ 20 Mbit/s frame filled to its 41 666-byte budget.
fn stamp_cost() {
    let fmt = format(1920, 1080, 20_000);
    let Ok(mut src) = open_video_with(
        SourceKind::Live,
        fmt,
        style(),
        VideoOptions {
            fill_to_bitrate: true,
        },
    ) else {
        println!("stamp: cannot open");
        return;
    };
    src.next_frame(false).ok();
    let Ok(frame) = src.next_frame(false) else {
        println!("stamp: encode failed");
        return;
    };
    let rounds = 20_000u64;
    let t = Instant::now();
    let mut total = 0usize;
    for i in 0..rounds {
        total += stamp_send_time(VideoCodec::H264, &frame.data, i).len();
    }
    let per = t.elapsed() / rounds as u32;
    println!(
        "stamp_send_time on a {}-byte H.264 frame: {per:.2?} per call ({total} bytes out)",
        frame.data.len()
    );
}

fn main() {
    // `cargo bench` passes `--bench`; a filter argument is not supported and ignored.
    println!(
        "demo-host encoder benchmark ({} logical CPUs)",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    run(
        "live H.264 720p60 @ 10 Mbit/s",
        SourceKind::Live,
        format(1280, 720, 10_000),
        5.0,
    );
    run(
        "live H.264 1080p60 @ 20 Mbit/s",
        SourceKind::Live,
        format(1920, 1080, 20_000),
        6.0,
    );
    run(
        "replay H.264 1080p60",
        SourceKind::Replay,
        format(1920, 1080, 20_000),
        2.0,
    );
    stamp_cost();
    run(
        "replay HEVC clip",
        SourceKind::Replay,
        VideoFormat {
            codec: VideoCodec::Hevc,
            ..format(1920, 1080, 20_000)
        },
        1.0,
    );
}
