//! The `demo-host` binary: `--help` documents every option, and a plain run prints its ports,
//! the Wolf API socket, the data dir and how to pair, serves the API, and removes the socket on
//! a `quit` typed on standard input.

use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};
use tokio::time::timeout;

const BIN: &str = env!("CARGO_BIN_EXE_demo-host");

/// Types `quit` on the host's stdin: it exits 0 (bounded).
async fn quit_cleanly(stdin: &mut ChildStdin, child: &mut Child) {
    stdin.write_all(b"quit\n").await.unwrap();
    let status = timeout(Duration::from_secs(30), child.wait())
        .await
        .expect("exit timed out")
        .unwrap();
    assert!(status.success(), "{status}");
}

/// Spawns `cmd` (no `WOLF_SOCKET_PATH` from the environment, quiet logs, stdio piped) and reads
/// its start banner, up to the `apps:` line (bounded): the child, the rest of its stdout, and the
/// banner's text.
async fn spawn_to_banner(mut cmd: Command) -> (Child, Lines<BufReader<ChildStdout>>, String) {
    let mut child = cmd
        .env_remove("WOLF_SOCKET_PATH")
        .env("RUST_LOG", "warn")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn demo-host");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut banner = Vec::new();
    timeout(Duration::from_secs(60), async {
        while let Some(line) = lines.next_line().await.expect("stdout") {
            let done = line == "apps:";
            banner.push(line);
            if done {
                break;
            }
        }
    })
    .await
    .expect("banner timed out");
    let text = banner.join("\n");
    (child, lines, text)
}

#[tokio::test]
async fn help_documents_every_option() {
    let out = timeout(
        Duration::from_secs(30),
        Command::new(BIN).arg("--help").output(),
    )
    .await
    .expect("--help timed out")
    .expect("runs");
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    for option in [
        "--bind",
        "--port-offset",
        "--ephemeral-ports",
        "--hostname",
        "--data-dir",
        "--pin",
        "--replay",
        "--idle-timeout-secs",
        "--idle-check-secs",
        "--sunshine-extensions",
        "--encrypted-rtsp",
        "--drop-percent",
        "--reorder-percent",
        "--delay-percent",
        "--delay-ms",
        "--teardown-delay-ms",
        "--refuse-launches",
        "--wolf-socket",
        "--no-wolf-socket",
        "--wolf-api-tcp",
        "--wolf-status-codes",
        "--no-pairing-api",
        "--strict",
        "DEMO_HOST_STRICT",
        "--h264-only",
        "WOLF_SOCKET_PATH",
    ] {
        assert!(help.contains(option), "--help lacks {option}:\n{help}");
    }
}

#[tokio::test]
async fn plain_run_prints_where_it_listens_and_serves_the_api() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut cmd = Command::new(BIN);
    cmd.args(["--ephemeral-ports", "--bind", "127.0.0.1", "--data-dir"])
        .arg(&data);
    let (mut child, _lines, text) = spawn_to_banner(cmd).await;
    let socket = data.join("wolf.sock");
    for want in [
        "HTTP ",
        "HTTPS ",
        "RTSP ",
        "control ",
        &format!("Wolf API unix:{}", socket.display()),
        &format!("data dir {}", data.display()),
        "pairing: ",
        "pin <",
    ] {
        assert!(text.contains(want), "banner lacks {want:?}:\n{text}");
    }
    assert!(socket.exists());

    // The API answers on the printed socket.
    let mut c = tokio::net::UnixStream::connect(&socket).await.unwrap();
    c.write_all(b"GET /api/v1/apps HTTP/1.0\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    let mut reply = String::new();
    timeout(
        Duration::from_secs(10),
        tokio::io::AsyncReadExt::read_to_string(&mut c, &mut reply),
    )
    .await
    .expect("api reply timed out")
    .unwrap();
    assert!(reply.starts_with("HTTP/1.0 200"), "{reply}");
    assert!(reply.contains("Test Pattern"), "{reply}");

    // `quit` shuts it down cleanly: exit 0 and the socket file is gone.
    let mut stdin = child.stdin.take().unwrap();
    quit_cleanly(&mut stdin, &mut child).await;
    assert!(!socket.exists(), "socket removed on shutdown");
}

/// `--no-pairing-api` (Sunshine style) serves no Wolf API at all, and `DEMO_HOST_STRICT=1` turns on
/// Wolf-strict mode, whose counter the `stats` command prints.
#[tokio::test]
async fn no_pairing_api_and_strict_from_the_environment() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut cmd = Command::new(BIN);
    cmd.args([
        "--ephemeral-ports",
        "--bind",
        "127.0.0.1",
        "--no-pairing-api",
        "--data-dir",
    ])
    .arg(&data)
    .env("DEMO_HOST_STRICT", "1");
    let (mut child, mut lines, text) = spawn_to_banner(cmd).await;
    for want in ["Wolf API none", "mode     wolf-strict", "(no pairing API)"] {
        assert!(text.contains(want), "banner lacks {want:?}:\n{text}");
    }
    assert!(!data.join("wolf.sock").exists(), "no API socket");
    assert!(std::fs::read_dir(&data)
        .unwrap()
        .all(|e| e.unwrap().file_name() != "wolf.sock"));

    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(b"stats\n").await.unwrap();
    let stats = timeout(Duration::from_secs(10), async {
        loop {
            let line = lines.next_line().await.unwrap().expect("stdout open");
            if line.starts_with("wolf-strict") {
                return line;
            }
        }
    })
    .await
    .expect("stats timed out");
    assert_eq!(
        stats,
        "wolf-strict on disconnects-after-cancel 0 violations 0 sessions 0 peak 0"
    );
    quit_cleanly(&mut stdin, &mut child).await;
}
