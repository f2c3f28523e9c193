//! A `demo-host` child process as the multi-process suites drive it: spawned Wolf-strict with its
//! Wolf API on `dir/wolf.sock`, its stdout drained into a channel (so it never blocks on a full
//! pipe), and its stdin console (`stats`, `peak-reset`) and Wolf API read back. The ephemeral-port
//! host ([`super::spawn_demo_host`]) and the fixed-port one ([`super::FixedHost`]) share it.

use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};
use tokio::process::{Child, ChildStdin};
use tokio::sync::mpsc::UnboundedReceiver;
use tokio::time::timeout;

use super::sibling_exe;

/// Spawns `demo-host --bind 127.0.0.1 --strict {args} --data-dir dir/host-data --wolf-socket
/// dir/wolf.sock`, stdin piped: the child and its stdout lines.
pub fn spawn_strict_demo_host(dir: &Path, args: &[&str]) -> (Child, UnboundedReceiver<String>) {
    let mut child = tokio::process::Command::new(sibling_exe("demo-host"))
        .args(["--bind", "127.0.0.1", "--strict"])
        .args(args)
        .arg("--data-dir")
        .arg(dir.join("host-data"))
        .arg("--wolf-socket")
        .arg(dir.join("wolf.sock"))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn demo-host");
    let mut out = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let (tx, lines) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok(Some(line)) = out.next_line().await {
            // Nobody listening: keep draining anyway.
            let _ = tx.send(line);
        }
    });
    (child, lines)
}

/// A demo-host child's stdin console and its Wolf API socket.
pub struct HostConsole {
    stdin: ChildStdin,
    lines: UnboundedReceiver<String>,
    pub socket: PathBuf,
}

/// One `stats` answer, e.g. `wolf-strict on violations 0 sessions 1 peak 2`.
pub struct HostStats {
    pub line: String,
}

impl HostStats {
    /// The number after the word `name`.
    pub fn get(&self, name: &str) -> u64 {
        let mut it = self.line.split_whitespace();
        while let Some(w) = it.next() {
            if w == name {
                return it.next().unwrap().parse().unwrap();
            }
        }
        panic!("{name} not in {:?}", self.line)
    }
}

impl HostConsole {
    /// The console of `child` (takes its stdin), whose stdout lines are `lines`, with its Wolf
    /// API on `dir/wolf.sock`.
    pub fn new(child: &mut Child, lines: UnboundedReceiver<String>, dir: &Path) -> HostConsole {
        HostConsole {
            stdin: child.stdin.take().unwrap(),
            lines,
            socket: dir.join("wolf.sock"),
        }
    }

    /// Sends one console command (a line).
    pub async fn command(&mut self, line: &str) {
        self.stdin
            .write_all(format!("{line}\n").as_bytes())
            .await
            .unwrap();
    }

    /// `stats` (older output dropped first); asserts the host runs Wolf-strict.
    pub async fn stats(&mut self) -> HostStats {
        while self.lines.try_recv().is_ok() {}
        self.command("stats").await;
        let lines = &mut self.lines;
        let line = timeout(Duration::from_secs(5), async {
            loop {
                let l = lines.recv().await.expect("host stdout");
                if l.starts_with("wolf-strict") {
                    return l;
                }
            }
        })
        .await
        .expect("stats answer");
        assert!(
            line.starts_with("wolf-strict on"),
            "the host runs Wolf-strict: {line}"
        );
        HostStats { line }
    }

    /// Clients paired with the host, as its Wolf API lists them (`/api/v1/clients`).
    pub async fn paired_clients(&self) -> usize {
        let mut s = tokio::net::UnixStream::connect(&self.socket).await.unwrap();
        s.write_all(b"GET /api/v1/clients HTTP/1.0\r\nHost: wolf\r\n\r\n")
            .await
            .unwrap();
        let mut text = String::new();
        timeout(Duration::from_secs(5), s.read_to_string(&mut text))
            .await
            .unwrap()
            .unwrap();
        let body = text.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
        let v: serde_json::Value = serde_json::from_str(body).unwrap();
        v["clients"].as_array().map(Vec::len).unwrap()
    }
}
