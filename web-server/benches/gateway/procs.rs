//! The processes the bench runs and watches: the `moongate` child (started against the demo
//! host), its `streamer` children, and their CPU and memory figures from `/proc`.

use super::*;

/// The `moongate` child and what the bench needs of it.
pub(crate) struct Gateway {
    pub(crate) child: tokio::process::Child,
    pub(crate) pid: u32,
    pub(crate) addr: SocketAddr,
    pub(crate) _dir: tempfile::TempDir,
}

pub(crate) fn target_dir_file(name: &str) -> PathBuf {
    let moongate = PathBuf::from(env!("CARGO_BIN_EXE_moongate"));
    moongate
        .parent()
        .map(|d| d.join(name))
        .unwrap_or_else(|| PathBuf::from(name))
}

/// The release streamer next to `moongate`, brought up to date with cargo first (cargo bench
/// rebuilds `moongate` but not the other package's binary, and a stale streamer would be
/// measured against a newer gateway).
pub(crate) fn streamer_exe() -> PathBuf {
    if let Some(p) = std::env::var_os("MOONGATE_STREAMER") {
        return PathBuf::from(p);
    }
    let path = target_dir_file("streamer");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let ok = std::process::Command::new(cargo)
        .args(["build", "--release", "-p", "streamer"])
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    assert!(ok && path.exists(), "cannot build {}", path.display());
    path
}

pub(crate) async fn start_gateway(host: &DemoHost, streamer: &std::path::Path) -> Gateway {
    let dir = tempfile::tempdir().expect("tempdir");
    let ports = host.ports();
    let api = host.wolf_api_tcp().expect("wolf api on tcp");
    let config = format!(
        "bind = \"127.0.0.1:0\"\n\
         data_dir = {data:?}\n\
         streamer_path = {streamer:?}\n\
         [[hosts]]\n\
         name = \"bench demo host\"\n\
         address = \"127.0.0.1\"\n\
         http_port = {http}\n\
         https_port = {https}\n\
         wolf_api = \"http://{api}\"\n\
         [webrtc]\n\
         bind_address = \"127.0.0.1\"\n\
         network_types = [\"udp4\"]\n",
        data = dir.path().join("data").display().to_string(),
        streamer = streamer.display().to_string(),
        http = ports.http,
        https = ports.https,
    );
    let config_path = dir.path().join("moongate.toml");
    std::fs::write(&config_path, config).expect("write config");
    let log = std::fs::File::create(dir.path().join("moongate.log")).expect("log file");
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_moongate"))
        .arg("--config")
        .arg(&config_path)
        .env("MOONGATE_CREDENTIALS", SECRET)
        .env("RUST_LOG", "warn")
        .env_remove("MOONGATE_CONFIG")
        .stdout(Stdio::piped())
        .stderr(Stdio::from(log))
        .kill_on_drop(true)
        .spawn()
        .expect("spawn moongate");
    let pid = child.id().expect("moongate pid");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let line = timeout(Duration::from_secs(30), lines.next_line())
        .await
        .expect("moongate printed nothing")
        .expect("stdout")
        .expect("moongate exited");
    let url = line
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .expect("URL line");
    let addr = url
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .parse()
        .expect("address");
    // Keep draining stdout so the child never blocks on it.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    Gateway {
        child,
        pid,
        addr,
        _dir: dir,
    }
}

/// Live `streamer` children of `pid`.
pub(crate) fn streamer_children(pid: u32) -> BTreeSet<u32> {
    let mut out = BTreeSet::new();
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return out;
    };
    for task in tasks.flatten() {
        let text = std::fs::read_to_string(task.path().join("children")).unwrap_or_default();
        for child in text
            .split_whitespace()
            .filter_map(|p| p.parse::<u32>().ok())
        {
            let comm = std::fs::read_to_string(format!("/proc/{child}/comm")).unwrap_or_default();
            if comm.trim() == "streamer" && !exited(child) {
                out.insert(child);
            }
        }
    }
    out
}

/// Gone or a zombie.
pub(crate) fn exited(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(s) => s
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_none_or(|state| state == "Z" || state == "X"),
    }
}

/// utime + stime in clock ticks.
pub(crate) fn cpu_ticks(pid: u32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = s.rsplit_once(')')?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    // After the comm: state is field 3, utime 14, stime 15 (1-based) → indices 11, 12 here.
    Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
}

/// One `kB` field of `/proc/<pid>/status`.
pub(crate) fn status_kb(pid: u32, field: &str) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines()
        .find(|l| l.starts_with(field))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

pub(crate) fn rss_kb(pid: u32) -> Option<u64> {
    status_kb(pid, "VmRSS:")
}

/// The anonymous part of the RSS: what this process alone costs. The rest is mostly the
/// program's text, mapped from the page cache and shared by every streamer.
pub(crate) fn anon_kb(pid: u32) -> Option<u64> {
    status_kb(pid, "RssAnon:")
}

pub(crate) fn clock_ticks_per_sec() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}
