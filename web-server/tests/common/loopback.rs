//! Loopback services that need nothing else from the test crate, so the cluster benchmark can
//! include this file by path as well: a free port, and a throwaway `redis-server` (its own port
//! and data directory, AOF with `appendfsync always`, the setting `deploy/` recommends).

// The benchmark uses a part of it.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::process::{Child, Command};

/// A TCP port free on loopback now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A `redis-server` child on its own port and data directory.
pub struct Redis {
    pub child: Child,
    pub port: u16,
    dir: PathBuf,
}

impl Redis {
    /// Starts one under `dir/redis` on a free port; returns once it accepts connections.
    pub async fn start(dir: &Path) -> Redis {
        let dir = dir.join("redis");
        std::fs::create_dir_all(&dir).unwrap();
        let port = free_port();
        let child = Self::spawn(&dir, port).await;
        Redis { child, port, dir }
    }

    async fn spawn(dir: &Path, port: u16) -> Child {
        let child = Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
            .arg("--dir")
            .arg(dir)
            .args([
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
                "--save",
                "",
            ])
            .args(["--daemonize", "no", "--protected-mode", "yes"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("redis-server (Debian's package; scripts/install-test-deps.sh installs it)");
        let deadline = Instant::now() + Duration::from_secs(10);
        while tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err()
        {
            assert!(
                Instant::now() < deadline,
                "redis-server did not listen on {port}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        child
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// SIGKILL, then a new server on the same port and data directory (its AOF).
    pub async fn crash_and_restart(&mut self, down_for: Duration) {
        self.child.start_kill().unwrap();
        let _ = self.child.wait().await;
        tokio::time::sleep(down_for).await;
        self.child = Self::spawn(&self.dir, self.port).await;
    }
}
