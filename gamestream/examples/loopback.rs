//! A complete GameStream session on loopback between our host half and our client half: PIN
//! pairing, launch, encrypted RTSP, the ENet control stream, encrypted video and audio with
//! injected packet loss, input, and `/cancel`, with a line of live statistics every second.
//!
//! ```text
//! cargo run --release -p gamestream --example loopback -- [--seconds N] [--loss PERCENT] [--fps N]
//! ```

#[path = "common/synthetic.rs"]
mod synthetic;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use gamestream::client::{ClientSession, SessionConfig, SessionEvent};
use gamestream::host::{Host, HostConfig, HostEvent, StaticApps};
use gamestream::identity::Identity;
use gamestream::input::InputEvent;
use gamestream::nvhttp::{App, HostAddress, NvHttpClient};
use gamestream::rtsp::describe::DescribeParams;
use gamestream::rtsp::StreamSettings;

struct Args {
    seconds: u64,
    loss_percent: f64,
    fps: u32,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        seconds: 10,
        loss_percent: 5.0,
        fps: 60,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = |name: &str| it.next().ok_or(format!("{name} needs a value"));
        match flag.as_str() {
            "--seconds" => {
                args.seconds = value("--seconds")?
                    .parse()
                    .map_err(|e| format!("--seconds: {e}"))?
            }
            "--loss" => {
                args.loss_percent = value("--loss")?
                    .parse()
                    .map_err(|e| format!("--loss: {e}"))?
            }
            "--fps" => args.fps = value("--fps")?.parse().map_err(|e| format!("--fps: {e}"))?,
            "-h" | "--help" => {
                println!("usage: loopback [--seconds N (10)] [--loss PERCENT (5)] [--fps N (60)]");
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument {other}")),
        }
    }
    if !(0.0..=50.0).contains(&args.loss_percent) || args.fps == 0 || args.fps > 1000 {
        return Err("--loss must be within 0..50 and --fps within 1..1000".into());
    }
    Ok(args)
}

#[tokio::main]
async fn main() {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(2);
        }
    };
    if let Err(e) = run(args).await {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

async fn run(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    let mut config = HostConfig::loopback(Identity::new_host("moongate-loopback")?);
    config.describe = DescribeParams::sunshine(false, false);
    config.media_drop_probability = args.loss_percent / 100.0;
    let apps = StaticApps {
        apps: vec![(
            App {
                title: "Synthetic".into(),
                id: 1,
                hdr_supported: false,
            },
            None,
        )],
    };
    let (host, mut host_events) = Host::start(config, Arc::new(apps)).await?;
    let ports = host.ports();
    println!(
        "host: http 127.0.0.1:{} https :{} rtsp :{} control :{}",
        ports.http, ports.https, ports.rtsp, ports.control
    );

    let pin = format!("{:04}", rand::random::<u16>() % 10_000);
    host.nvhttp().set_fixed_pin(Some(pin.clone()));
    let http = Arc::new(NvHttpClient::new(
        HostAddress::with_ports("127.0.0.1", ports.http, Some(ports.https)),
        Identity::new_client()?,
        None,
    ));
    let started = Instant::now();
    http.pair(&pin, "loopback").await?;
    println!(
        "paired with PIN {pin} in {:.0} ms",
        started.elapsed().as_secs_f64() * 1000.0
    );

    let settings = StreamSettings {
        want_video_encryption: true,
        want_audio_encryption: true,
        fps: args.fps,
        ..StreamSettings::default()
    };
    let launch = Instant::now();
    let (session, mut events) =
        ClientSession::start(Arc::clone(&http), SessionConfig::new(1, settings)).await?;
    let outcome = session.outcome();
    println!(
        "streaming {}x{}@{} packet {} B, video {}, audio {}, control IVs {}, {} % loss injected",
        outcome.announce.width,
        outcome.announce.height,
        outcome.announce.fps,
        outcome.announce.wire_packet_size(),
        if outcome.video_encryption {
            "AES-GCM"
        } else {
            "plain"
        },
        if outcome.audio_encryption {
            "AES-CBC"
        } else {
            "plain"
        },
        if outcome.control_v2 { "V2" } else { "NVIDIA" },
        args.loss_percent
    );

    let inputs = Arc::new(Mutex::new(Vec::new()));
    let producer = loop {
        match host_events.recv().await {
            Some(HostEvent::StreamStarted(stream)) => {
                break tokio::spawn(synthetic::produce(
                    *stream,
                    Duration::from_secs(1) / args.fps,
                    Arc::clone(&inputs),
                ))
            }
            Some(_) => continue,
            None => return Err("host stopped".into()),
        }
    };

    let end = Instant::now() + Duration::from_secs(args.seconds);
    let mut next_report = Instant::now() + Duration::from_secs(1);
    let (mut frames, mut bytes, mut lost, mut audio, mut corrupt) = (0u64, 0u64, 0u64, 0u64, 0u64);
    let mut first_frame = None;
    let mut key = 0u16;
    while Instant::now() < end {
        let timeout = tokio::time::sleep_until(next_report.min(end).into());
        tokio::select! {
            event = events.recv() => match event {
                Some(SessionEvent::Video(frame)) => {
                    first_frame.get_or_insert_with(|| launch.elapsed());
                    frames += 1;
                    bytes += frame.data.len() as u64;
                    if synthetic::check_video_au(&frame.data).is_err() {
                        corrupt += 1;
                    }
                    // Type a key now and then, as a user would.
                    if frames % 30 == 0 {
                        key = 0x41 + (key + 1) % 26;
                        session.send_input(&InputEvent::KeyDown { flags: 0, key_code: key, modifiers: 0 })?;
                        session.send_input(&InputEvent::KeyUp { flags: 0, key_code: key, modifiers: 0 })?;
                    }
                }
                Some(SessionEvent::VideoLost { .. }) => lost += 1,
                Some(SessionEvent::Audio { opus, .. }) => {
                    audio += 1;
                    if synthetic::check_opus(&opus).is_err() {
                        corrupt += 1;
                    }
                }
                Some(SessionEvent::Ended(cause)) => return Err(format!("stream ended: {cause:?}").into()),
                Some(_) => {}
                None => return Err("stream ended".into()),
            },
            _ = timeout => {
                let s = session.stats();
                println!(
                    "frames {frames:>5} ({:.1} Mbit/s)  FEC-rebuilt shards {:>4}  lost frames {lost}  IDR requests {}  audio {audio} (FEC {})  corrupt {corrupt}  host inputs {}",
                    bytes as f64 * 8.0 / 1e6 / launch.elapsed().as_secs_f64(),
                    s.video.shards_recovered,
                    s.idr_requests,
                    s.audio.recovered,
                    inputs.lock().map(|v| v.len()).unwrap_or(0),
                );
                next_report += Duration::from_secs(1);
            }
        }
    }
    let stop = Instant::now();
    session.stop().await?;
    let report = producer.await?;
    println!(
        "first frame {:.0} ms after launch; stop (cancel + close) {:.1} ms; host sent {} frames ({} keyframes, {} requested); host sessions left: {}",
        first_frame.unwrap_or_default().as_secs_f64() * 1000.0,
        stop.elapsed().as_secs_f64() * 1000.0,
        report.frames,
        report.keyframes,
        report.keyframe_requests,
        host.sessions().len()
    );
    host.close().await;
    if corrupt > 0 {
        return Err(format!("{corrupt} corrupt media units").into());
    }
    Ok(())
}
