//! The `moongate` binary: prints its URL and (only when generated) the credential once, stores
//! the credential with mode 0600, never logs it, serves with it, and exits cleanly on SIGTERM.

use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};
use tokio::time::timeout;

const T: Duration = Duration::from_secs(30);

struct Run {
    child: Child,
    url: String,
    lines: Vec<String>,
}

async fn start(data_dir: &std::path::Path) -> Run {
    let mut child = Command::new(env!("CARGO_BIN_EXE_moongate"))
        .env("MOONGATE_BIND", "127.0.0.1:0")
        .env("MOONGATE_DATA_DIR", data_dir)
        .env_remove("MOONGATE_CREDENTIALS")
        .env_remove("MOONGATE_CONFIG")
        .env("RUST_LOG", "debug")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut reader = BufReader::new(stdout).lines();
    let mut lines = Vec::new();
    // Two lines: the URL, then the credential line.
    while lines.len() < 2 {
        let line = timeout(T, reader.next_line())
            .await
            .expect("no output")
            .unwrap()
            .expect("stdout closed");
        lines.push(line);
    }
    let url = lines[0]
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .expect("URL printed")
        .to_string();
    Run { child, url, lines }
}

async fn get(url: &str, path: &str, bearer: Option<&str>) -> String {
    let authority = url.trim_start_matches("http://").trim_end_matches('/');
    let mut s = timeout(T, TcpStream::connect(authority))
        .await
        .unwrap()
        .unwrap();
    let auth = bearer
        .map(|b| format!("Authorization: Bearer {b}\r\n"))
        .unwrap_or_default();
    let req =
        format!("GET {path} HTTP/1.1\r\nHost: {authority}\r\n{auth}Connection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    let mut out = String::new();
    timeout(T, s.read_to_string(&mut out))
        .await
        .unwrap()
        .unwrap();
    out
}

async fn sigterm_and_wait(mut run: Run) -> String {
    let pid = run.child.id().expect("running");
    let status = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let exit = timeout(T, run.child.wait())
        .await
        .expect("no exit on SIGTERM")
        .unwrap();
    assert!(exit.success(), "{exit:?}");
    let mut stderr = String::new();
    run.child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .await
        .unwrap();
    stderr
}

#[tokio::test]
async fn first_start_generates_prints_once_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let run = start(dir.path()).await;
    let cred_line = run.lines[1].clone();
    assert!(cred_line.starts_with("Generated credential"), "{cred_line}");
    let credential = cred_line.rsplit(' ').next().unwrap().to_string();
    assert_eq!(credential.len(), 64);
    let stored = std::fs::read_to_string(dir.path().join("credentials")).unwrap();
    assert_eq!(stored.trim(), credential);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join("credentials"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    let health = get(&run.url, "/healthz", None).await;
    assert!(health.starts_with("HTTP/1.1 200"), "{health}");
    let denied = get(&run.url, "/api/hosts", None).await;
    assert!(denied.starts_with("HTTP/1.1 401"), "{denied}");
    let hosts = get(&run.url, "/api/hosts", Some(&credential)).await;
    assert!(hosts.starts_with("HTTP/1.1 200"), "{hosts}");
    // No host configured: the embedded demo host is there, paired.
    assert!(
        hosts.contains("moongate demo host (embedded)") && hosts.contains("\"paired\":true"),
        "{hosts}"
    );

    let logs = sigterm_and_wait(run).await;
    assert!(logs.contains("generated a credential"), "{logs}");
    assert!(
        !logs.contains(&credential),
        "the credential reached the log"
    );

    // Second start: the stored credential is reused and not printed.
    let run = start(dir.path()).await;
    assert!(
        run.lines[1].starts_with("Using the credential stored"),
        "{:?}",
        run.lines
    );
    assert!(!run.lines[1].contains(&credential));
    let hosts = get(&run.url, "/api/hosts", Some(&credential)).await;
    assert!(hosts.starts_with("HTTP/1.1 200"), "{hosts}");
    let logs = sigterm_and_wait(run).await;
    assert!(!logs.contains(&credential));
}
