//! A `moongate` process of its own (with its embedded Wolf-strict demo host), for the suites that
//! measure the gateway from outside: its memory (`VmRSS`, `VmHWM`), descriptors and children are
//! read from `/proc/<pid>`, so the test's own sockets and buffers are not in the figures. Its log
//! (stderr) goes to a file that the tests search for panics.
//!
//! Included with `#[path = "common/gateway_proc.rs"] mod gateway_proc;` next to `mod common;`.

#![allow(dead_code)]

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::io::AsyncBufReadExt;
use tokio::time::timeout;

use crate::common::{raw_http, sibling_exe, streamer_exe, ADMIN_SECRET, SECRET};

/// A running `moongate` process.
pub struct GatewayProc {
    pub child: tokio::process::Child,
    pub pid: u32,
    /// `127.0.0.1:port`.
    pub addr: String,
    /// Its stderr (the gateway's and its streamers' logs).
    pub log: PathBuf,
    pub dir: tempfile::TempDir,
}

/// Raises this process's soft descriptor limit to its hard limit (children spawned afterwards
/// inherit it); returns the new soft limit.
pub fn raise_fd_limit() -> u64 {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: plain syscalls on a valid, owned struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return 0;
        }
        lim.rlim_cur = lim.rlim_max;
        libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim);
    }
    lim.rlim_cur
}

/// Starts `moongate` on 127.0.0.1:0 with the test credentials, a 10 s host cleanup, WebRTC on
/// loopback UDP 4, and `env` on top (e.g. `MOONGATE_UPGRADE_TIMEOUT_SECS`, `MOONGATE_STREAMER`).
pub async fn start(env: &[(&str, String)]) -> GatewayProc {
    start_with_config(None, env).await
}

/// [`start`] with a config file of this text (e.g. `[[hosts]]`: then no embedded host).
pub async fn start_with_config(toml: Option<&str>, env: &[(&str, String)]) -> GatewayProc {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("moongate.log");
    let data = dir.path().join("data");
    let mut cmd = tokio::process::Command::new(sibling_exe("moongate"));
    cmd.env("MOONGATE_BIND", "127.0.0.1:0")
        .env("MOONGATE_DATA_DIR", &data)
        .env("MOONGATE_CREDENTIALS", SECRET)
        .env("MOONGATE_ADMIN_CREDENTIALS", ADMIN_SECRET)
        .env("MOONGATE_STREAMER", streamer_exe())
        .env("MOONGATE_HOST_CLEANUP_SECS", "10")
        .env("MOONGATE_WEBRTC_BIND_ADDRESS", "127.0.0.1")
        .env("MOONGATE_WEBRTC_NETWORK_TYPES", "udp4")
        .env_remove("MOONGATE_CONFIG")
        .env("RUST_LOG", "info");
    if let Some(text) = toml {
        let path = dir.path().join("moongate.toml");
        std::fs::write(&path, text).unwrap();
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        }
        cmd.arg("--config").arg(path);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&log).unwrap())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn moongate");
    let pid = child.id().unwrap();
    let mut out = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let addr = timeout(Duration::from_secs(30), async {
        while let Ok(Some(line)) = out.next_line().await {
            if let Some(rest) = line.strip_prefix("moongate is listening on http://") {
                return rest.trim_end_matches('/').to_string();
            }
        }
        panic!("moongate exited before listening")
    })
    .await
    .expect("moongate did not start");
    tokio::spawn(async move { while let Ok(Some(_)) = out.next_line().await {} });
    GatewayProc {
        child,
        pid,
        addr,
        log,
        dir,
    }
}

/// A field of `/proc/<pid>/status` in kB (`VmRSS`, `VmHWM`).
pub fn status_kb(pid: u32, field: &str) -> u64 {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    text.lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// Open descriptors of `pid`.
pub fn fds_of(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0)
}

/// Children of `pid` (zombies included: an unreaped child is a leak), with their `comm`.
pub fn children_of(pid: u32) -> Vec<(u32, String)> {
    let mut out = Vec::new();
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return out;
    };
    for task in tasks.flatten() {
        let Ok(text) = std::fs::read_to_string(task.path().join("children")) else {
            continue;
        };
        for child in text
            .split_whitespace()
            .filter_map(|p| p.parse::<u32>().ok())
        {
            let comm = std::fs::read_to_string(format!("/proc/{child}/comm")).unwrap_or_default();
            out.push((child, comm.trim().to_string()));
        }
    }
    out
}

/// The gateway's resident and peak memory (kB) at one moment.
#[derive(Debug, Clone, Copy)]
pub struct Memory {
    pub rss: u64,
    pub hwm: u64,
}

/// Prints `what`'s memory figures (`then`: what the gateway did after), then asserts its peak grew
/// by less than `limit_kb` over the larger of the start's RSS and peak; `why` says what a larger
/// growth would mean.
pub fn assert_peak_growth(
    what: &str,
    before: Memory,
    after: Memory,
    then: &str,
    limit_kb: u64,
    why: &str,
) {
    let (
        Memory {
            rss: rss0,
            hwm: hwm0,
        },
        Memory {
            rss: rss1,
            hwm: hwm1,
        },
    ) = (before, after);
    let growth = hwm1.saturating_sub(hwm0.max(rss0));
    crate::figure!(
        "{what}: gateway RSS {rss0} kB → {rss1} kB, peak {hwm0} kB → {hwm1} kB (+{growth} kB); {then}"
    );
    assert!(
        growth < limit_kb,
        "the gateway's peak memory grew {growth} kB ({why})"
    );
}

impl GatewayProc {
    /// RSS and peak RSS now.
    pub fn memory(&self) -> Memory {
        Memory {
            rss: self.rss_kb(),
            hwm: self.hwm_kb(),
        }
    }

    /// `VmRSS` in kB.
    pub fn rss_kb(&self) -> u64 {
        status_kb(self.pid, "VmRSS")
    }

    /// `VmHWM` (peak RSS) in kB.
    pub fn hwm_kb(&self) -> u64 {
        status_kb(self.pid, "VmHWM")
    }

    pub fn fds(&self) -> usize {
        fds_of(self.pid)
    }

    pub fn children(&self) -> Vec<(u32, String)> {
        children_of(self.pid)
    }

    /// Still running (not exited, not a zombie).
    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// `GET path` (HTTP/1.0, fresh connection) with `bearer`: status and body.
    pub async fn get(&self, path: &str, bearer: &str) -> (u16, String) {
        raw_http(
            &self.addr,
            &format!("GET {path} HTTP/1.0\r\nHost: x\r\nAuthorization: Bearer {bearer}\r\n\r\n"),
        )
        .await
    }

    /// Live streams in the registry (the admin view).
    pub async fn sessions(&self) -> usize {
        let (status, body) = self.get("/api/admin/sessions", ADMIN_SECRET).await;
        assert_eq!(status, 200, "{body}");
        serde_json::from_str::<serde_json::Value>(&body)
            .unwrap()
            .as_array()
            .map(|a| a.len())
            .unwrap_or(usize::MAX)
    }

    /// `moongate_rejections_total{reason}`.
    pub async fn rejections(&self, reason: &str) -> u64 {
        let (status, body) = self.get("/metrics", ADMIN_SECRET).await;
        assert_eq!(status, 200, "{body}");
        let prefix = format!("moongate_rejections_total{{reason=\"{reason}\"}} ");
        body.lines()
            .find_map(|l| l.strip_prefix(&prefix))
            .and_then(|v| v.trim().parse::<f64>().ok())
            .unwrap_or_else(|| panic!("no {prefix} in /metrics")) as u64
    }

    /// Waits (bounded) until the registry is empty and no child is left; returns whether so.
    pub async fn settled(&self, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        loop {
            if self.children().is_empty() && self.sessions().await == 0 {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The log so far.
    pub fn log_text(&self) -> String {
        String::from_utf8_lossy(&std::fs::read(&self.log).unwrap_or_default()).into_owned()
    }

    /// Panics in the log (the gateway's own, or a streamer's relayed line).
    pub fn panics(&self) -> Vec<String> {
        self.log_text()
            .lines()
            .filter(|l| l.contains("panicked at"))
            .map(String::from)
            .collect()
    }

    /// SIGTERM, then wait (bounded) for the exit.
    pub async fn stop(mut self) {
        // SAFETY: signalling our own child by its pid.
        unsafe {
            libc::kill(self.pid as i32, libc::SIGTERM);
        }
        if timeout(Duration::from_secs(15), self.child.wait())
            .await
            .is_err()
        {
            let _ = self.child.kill().await;
        }
    }
}
