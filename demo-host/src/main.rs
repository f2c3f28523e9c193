//! `demo-host`: a Wolf-compatible Moonlight host with test-pattern video and a tone, on its own.
//!
//! Commands on standard input (one per line) drive it while it runs: `pin <digits>` answers the
//! oldest pairing request, `pending`, `sessions`, `lobbies`, `stop <session>`, `refuse on|off`,
//! `teardown-ms <n>`, `drop-percent <n>`, `corrupt-percent <n>`, `reorder-percent <n>`, `peak-reset`, `stats` (alias `violations`:
//! Wolf-strict mode and its violation counter), `crash`, `quit`.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use demo_host::media::SourceKind;
use demo_host::wolf_api::{ApiOptions, StatusStyle};
use demo_host::{DemoHost, DemoHostConfig, OfferedCodecs, PortPlan, WolfApiConfig, WolfApiSocket};
use tokio::io::AsyncBufReadExt;

/// A Wolf-compatible Moonlight host (test pattern, tone, lobbies) for moongate and its tests.
#[derive(Debug, Parser)]
#[command(name = "demo-host", version)]
struct Args {
    /// Address every listener binds.
    #[arg(long, default_value = "0.0.0.0", env = "DEMO_HOST_BIND")]
    bind: IpAddr,
    /// Added to the standard ports (HTTP 47989, HTTPS 47984, RTSP 48010, control 47999) so that
    /// several hosts run side by side.
    #[arg(long, default_value_t = 0, env = "DEMO_HOST_PORT_OFFSET")]
    port_offset: u16,
    /// Bind every listener on an ephemeral port instead (printed at start).
    #[arg(long, conflicts_with = "port_offset")]
    ephemeral_ports: bool,
    /// Host name in /serverinfo.
    #[arg(long, default_value = "moongate-demo")]
    hostname: String,
    /// Directory for the host identity (key mode 0600) and paired clients.
    #[arg(long, default_value = "./demo-host-data", env = "DEMO_HOST_DATA_DIR")]
    data_dir: PathBuf,
    /// A fixed pairing PIN (4 digits): every pairing uses it without asking. Without it, type
    /// `pin <digits>` on standard input when a client pairs.
    #[arg(long, env = "DEMO_HOST_PIN")]
    pin: Option<String>,
    /// Replay pre-encoded frames instead of encoding live (load tests).
    #[arg(long)]
    replay: bool,
    /// Stop a session after this many seconds without control traffic (Wolf: 60).
    #[arg(long, default_value_t = 60)]
    idle_timeout_secs: u64,
    /// How often the idle monitor looks, in seconds (Wolf: 10).
    #[arg(long, default_value_t = 10)]
    idle_check_secs: u64,
    /// Send Sunshine's per-session ping payload / connect data (tells apart clients on one IP).
    /// Off = pure Wolf (sessions matched by client IP).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    sunshine_extensions: bool,
    /// Answer encrypted RTSP to clients that ask (Sunshine); Wolf never does.
    #[arg(long)]
    encrypted_rtsp: bool,
    /// Fault: drop this percentage of media packets.
    #[arg(long, default_value_t = 0)]
    drop_percent: u32,
    /// Fault: replace this percentage of media packets with random bytes of a random length.
    #[arg(long, default_value_t = 0)]
    corrupt_percent: u32,
    /// Fault: swap this percentage of video packets with the next one.
    #[arg(long, default_value_t = 0)]
    reorder_percent: u32,
    /// Fault: delay this percentage of media packets by --delay-ms.
    #[arg(long, default_value_t = 0)]
    delay_percent: u32,
    /// Fault: the delay of --delay-percent, in ms.
    #[arg(long, default_value_t = 0)]
    delay_ms: u64,
    /// Fault: a stopping session takes this many ms to tear down (launches of its client get 503
    /// meanwhile).
    #[arg(long, default_value_t = 0)]
    teardown_delay_ms: u64,
    /// Fault: refuse every launch with 503.
    #[arg(long)]
    refuse_launches: bool,
    /// Unix socket of the Wolf API (mode 0600). Default: `wolf.sock` in the data dir. Wolf's own
    /// default is /tmp/wolf.sock.
    #[arg(long, env = "WOLF_SOCKET_PATH", conflicts_with = "no_wolf_socket")]
    wolf_socket: Option<PathBuf>,
    /// Do not serve the Wolf API on a Unix socket.
    #[arg(long)]
    no_wolf_socket: bool,
    /// Also serve the Wolf API on this TCP address (e.g. 127.0.0.1:8080). It has no
    /// authentication: keep it on loopback.
    #[arg(long, env = "DEMO_HOST_WOLF_API_TCP")]
    wolf_api_tcp: Option<std::net::SocketAddr>,
    /// Wolf's error statuses in the API (500 for every error) instead of 400/403/404/409/503.
    #[arg(long)]
    wolf_status_codes: bool,
    /// No pairing API (Sunshine style): no Wolf API on a Unix socket nor on TCP; clients pair
    /// only with a PIN typed here (`pin <digits>`) or given by --pin.
    #[arg(long, conflicts_with_all = ["wolf_socket", "wolf_api_tcp", "wolf_status_codes"])]
    no_pairing_api: bool,
    /// Wolf-strict mode: behave like an unmodified Wolf (video RTP timestamp 0, frames padded to
    /// 1000 bytes, High-profile H.264, Wolf's lowered bitrate) and log an error, counted by the
    /// `stats` command, for every /cancel or API stop while the client's ENet peer is connected
    /// (real Wolf crashes there).
    #[arg(long, env = "DEMO_HOST_STRICT", value_parser = clap::builder::BoolishValueParser::new(),
          default_value_t = false, num_args = 0..=1, default_missing_value = "true")]
    strict: bool,
    /// Offer H.264 only (no HEVC/AV1 in /serverinfo and RTSP DESCRIBE).
    #[arg(long)]
    h264_only: bool,
    /// Fork mode: offer the Sunshine forks' microphone stream (`streamid=mic`) and decode what
    /// clients send into a per-session sink (`GET /api/v1/moongate/mic?session_id=<id>`).
    #[arg(long, env = "DEMO_HOST_MICROPHONE")]
    microphone: bool,
    /// Foundation Sunshine's live bitrate: report its `SunshineVersion` in /serverinfo and
    /// re-target a session's encoder when its client sends a dynamic bitrate (0x5506).
    #[arg(long, env = "DEMO_HOST_LIVE_BITRATE")]
    live_bitrate: bool,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let args = Args::parse();
    let config = DemoHostConfig {
        bind_ip: args.bind,
        ports: if args.ephemeral_ports {
            PortPlan::Ephemeral
        } else {
            PortPlan::Offset(args.port_offset)
        },
        hostname: args.hostname.clone(),
        data_dir: Some(args.data_dir.clone()),
        fixed_pin: args.pin.clone(),
        source_kind: if args.replay {
            SourceKind::Replay
        } else {
            SourceKind::Live
        },
        idle_timeout: Duration::from_secs(args.idle_timeout_secs),
        idle_check_interval: Duration::from_secs(args.idle_check_secs.max(1)),
        sunshine_extensions: args.sunshine_extensions,
        encrypted_rtsp: args.encrypted_rtsp,
        wolf_api: if args.no_pairing_api {
            WolfApiConfig::none()
        } else {
            WolfApiConfig {
                socket: match (&args.wolf_socket, args.no_wolf_socket) {
                    (_, true) => WolfApiSocket::Off,
                    (Some(p), false) => WolfApiSocket::Path(p.clone()),
                    (None, false) => WolfApiSocket::InDataDir,
                },
                tcp: args.wolf_api_tcp,
                options: ApiOptions {
                    status_style: if args.wolf_status_codes {
                        StatusStyle::Wolf
                    } else {
                        StatusStyle::Moongate
                    },
                    ..ApiOptions::default()
                },
            }
        },
        wolf_strict: args.strict,
        offered_codecs: if args.h264_only {
            OfferedCodecs::H264_ONLY
        } else {
            OfferedCodecs::ALL
        },
        microphone: args.microphone,
        live_bitrate: args.live_bitrate,
        ..DemoHostConfig::default()
    };
    config.faults.set_drop_percent(args.drop_percent);
    config.faults.set_reorder_percent(args.reorder_percent);
    config.faults.set_corrupt_percent(args.corrupt_percent);
    config
        .faults
        .set_delay(args.delay_percent, Duration::from_millis(args.delay_ms));
    config
        .faults
        .set_teardown_delay(Duration::from_millis(args.teardown_delay_ms));
    config.faults.set_refuse_launches(args.refuse_launches);
    let host = DemoHost::start(config)
        .await
        .context("starting the demo host")?;
    let ports = host.ports();
    println!(
        "demo-host {} listening on {}:",
        env!("CARGO_PKG_VERSION"),
        args.bind
    );
    println!("  HTTP     {}", ports.http);
    println!("  HTTPS    {}", ports.https);
    println!("  RTSP     {}", ports.rtsp);
    println!("  control  {} (ENet, UDP)", ports.control);
    println!("  media    one video and one audio UDP port per session, ephemeral");
    match host.wolf_api_socket() {
        Some(p) => println!(
            "  Wolf API unix:{}  (curl --unix-socket {} http://localhost/api/v1/apps)",
            p.display(),
            p.display()
        ),
        None if args.no_pairing_api => {
            println!("  Wolf API none (--no-pairing-api: pair with a PIN typed here)")
        }
        None => println!("  Wolf API no Unix socket (--no-wolf-socket)"),
    }
    if let Some(a) = host.wolf_api_tcp() {
        println!("  Wolf API http://{a}/api/v1/");
    }
    println!("  data dir {}", args.data_dir.display());
    if args.strict {
        println!("  mode     wolf-strict (type `stats` for the violation counter)");
    }
    println!("  uniqueid {}", host.unique_id());
    match &args.pin {
        Some(_) => println!("pairing: every client pairs with the PIN given by --pin"),
        None if args.no_pairing_api => println!(
            "pairing: start pairing in Moonlight, then type `pin <the 4 digits it shows>` here \
             (no pairing API)"
        ),
        None => println!(
            "pairing: start pairing in Moonlight, then type `pin <the 4 digits it shows>` here \
             (or answer through the Wolf API: GET /api/v1/pair/pending, POST /api/v1/pair/client)"
        ),
    }
    println!("apps:");
    for app in host.apps() {
        println!("  {:>3} {}", app.id, app.title);
    }

    let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
    let mut events = host.subscribe();
    loop {
        tokio::select! {
            _ = shutdown_signal() => break,
            _ = host.wait_crash_requested() => {
                eprintln!("crashing (fault injection through the Wolf API)");
                host.crash();
                std::process::exit(101);
            }
            event = events.recv() => match event {
                Ok(demo_host::DemoEvent::PairRequested { client_ip, device_name, .. }) => {
                    println!("pairing request from {device_name} ({client_ip}): type `pin <digits>`");
                }
                Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                Err(_) => break,
            },
            line = lines.next_line() => match line {
                Ok(Some(line)) => {
                    if !command(&host, line.trim()) {
                        if line.trim() == "crash" {
                            eprintln!("crashing (fault injection)");
                            host.crash();
                            std::process::exit(101);
                        }
                        break;
                    }
                }
                // Standard input closed (daemonised): keep serving until Ctrl-C.
                Ok(None) | Err(_) => {
                    tokio::select! {
                        _ = shutdown_signal() => {}
                        _ = host.wait_crash_requested() => {
                            eprintln!("crashing (fault injection through the Wolf API)");
                            host.crash();
                            std::process::exit(101);
                        }
                    }
                    break;
                }
            },
        }
    }
    println!("shutting down");
    host.close().await;
    Ok(())
}

/// Ctrl-C or SIGTERM (so the API socket file is removed on an ordinary stop).
async fn shutdown_signal() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(t) => t,
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

/// Runs one standard-input command; false = leave the loop (`quit`, `crash`).
fn command(host: &DemoHost, line: &str) -> bool {
    let mut words = line.split_whitespace();
    let word = words.next().unwrap_or("");
    let arg = words.next();
    match (word, arg) {
        ("", _) => {}
        ("quit" | "exit", _) | ("crash", _) => return false,
        ("pin", Some(pin)) => {
            if host.submit_pin(pin) {
                println!("PIN submitted");
            } else {
                println!("no pairing request is waiting (or the PIN is not 4 digits)");
            }
        }
        ("pending", _) => {
            for p in host.pending_pairs() {
                println!("  {} ({})", p.device_name, p.client_ip);
            }
        }
        ("sessions", _) => {
            for s in host.sessions() {
                println!(
                    "  {} client {} app {} {}x{}@{} lobby {:?}",
                    s.session_id, s.client_id, s.app_id, s.width, s.height, s.fps, s.lobby
                );
            }
        }
        ("lobbies", _) => {
            for l in host.lobbies() {
                println!("  {} {} members {:?}", l.id, l.name, l.members);
            }
        }
        ("stop", Some(id)) => match id.parse() {
            Ok(id) => match host.stop_session(id) {
                Ok(()) => println!("stopped {id}"),
                Err(e) => println!("{e}"),
            },
            Err(_) => println!("usage: stop <session id>"),
        },
        ("stats" | "violations", _) => println!(
            "wolf-strict {} disconnects-after-cancel {} violations {} sessions {} peak {}",
            if host.wolf_strict() { "on" } else { "off" },
            host.disconnects_after_cancel(),
            host.strict_violations(),
            host.sessions().len(),
            host.peak_sessions()
        ),
        ("peak-reset", _) => {
            host.reset_peak_sessions();
            println!("peak {}", host.peak_sessions());
        }
        ("refuse", Some(v)) => host.faults().set_refuse_launches(v == "on"),
        ("teardown-ms", Some(v)) => match v.parse() {
            Ok(ms) => host.faults().set_teardown_delay(Duration::from_millis(ms)),
            Err(_) => println!("usage: teardown-ms <n>"),
        },
        ("drop-percent", Some(v)) => match v.parse() {
            Ok(p) => host.faults().set_drop_percent(p),
            Err(_) => println!("usage: drop-percent <n>"),
        },
        ("corrupt-percent", Some(v)) => match v.parse() {
            Ok(p) => host.faults().set_corrupt_percent(p),
            Err(_) => println!("usage: corrupt-percent <n>"),
        },
        ("reorder-percent", Some(v)) => match v.parse() {
            Ok(p) => host.faults().set_reorder_percent(p),
            Err(_) => println!("usage: reorder-percent <n>"),
        },
        _ => println!(
            "commands: pin <digits> | pending | sessions | lobbies | stop <id> | stats | refuse on|off | teardown-ms <n> | drop-percent <n> | corrupt-percent <n> | reorder-percent <n> | crash | quit"
        ),
    }
    true
}
