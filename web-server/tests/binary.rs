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

/// `moongate` alone streams: the embedded demo host, the streamer next to the binary, a Helix-style
/// WebSocket client; SIGTERM afterwards still exits cleanly.
#[tokio::test]
async fn alone_it_streams_the_embedded_test_pattern() {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    use tokio_tungstenite::tungstenite::Message as WsMessage;
    use wire::browser::Message;

    let exe = std::path::PathBuf::from(env!("CARGO_BIN_EXE_moongate"));
    let streamer = exe.with_file_name("streamer");
    assert!(
        streamer.exists(),
        "{} missing: run `cargo build -p streamer` first",
        streamer.display()
    );
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(&exe)
        .env("MOONGATE_BIND", "127.0.0.1:0")
        .env("MOONGATE_DATA_DIR", dir.path())
        .env_remove("MOONGATE_CREDENTIALS")
        .env_remove("MOONGATE_CONFIG")
        .env_remove("MOONGATE_STREAMER")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut out = Vec::new();
    while out.len() < 3 {
        let line = timeout(T, lines.next_line())
            .await
            .expect("no output")
            .unwrap()
            .expect("stdout closed");
        out.push(line);
    }
    let authority = out[0]
        .split_whitespace()
        .find_map(|w| w.strip_prefix("http://"))
        .expect("URL printed")
        .trim_end_matches('/')
        .to_string();
    let credential = out[1].rsplit(' ').next().unwrap().to_string();
    assert!(
        out[2].starts_with("embedded demo host on 127.0.0.1:"),
        "{out:?}"
    );

    let opened = std::time::Instant::now();
    let mut req = format!("ws://{authority}/api/ws/stream?session_id=alone-hq")
        .into_client_request()
        .unwrap();
    req.headers_mut().insert(
        "authorization",
        format!("Bearer {credential}").parse().unwrap(),
    );
    let (mut ws, _) = timeout(T, tokio_tungstenite::connect_async(req))
        .await
        .unwrap()
        .unwrap();
    let init = serde_json::json!({
        "type": "init", "host_id": 0, "app_id": 1, "session_id": "alone-hq",
        "width": 1280, "height": 720, "fps": 60, "bitrate": 10000, "packet_size": 1024,
        "play_audio_local": false, "video_supported_formats": 1,
        "client_unique_id": "helix-agent-alone",
    });
    ws.send(WsMessage::Text(init.to_string().into()))
        .await
        .unwrap();
    let (mut init_seen, mut complete, mut keyframes) = (false, false, 0);
    while keyframes == 0 {
        let msg = timeout(T, ws.next())
            .await
            .expect("stream stalled")
            .expect("socket ended")
            .unwrap();
        match msg {
            WsMessage::Binary(b) => match Message::decode(&b).unwrap() {
                Message::StreamInit(si) => {
                    assert_eq!((si.width, si.height), (1280, 720));
                    init_seen = true;
                }
                Message::VideoFrame(f) => {
                    assert!(
                        init_seen && complete,
                        "video before StreamInit/ConnectionComplete"
                    );
                    assert!(f.keyframe);
                    keyframes += 1;
                }
                _ => {}
            },
            WsMessage::Text(t) => {
                assert!(!t.contains("\"error\""), "{t}");
                complete |= t.contains("ConnectionComplete");
            }
            WsMessage::Ping(_) | WsMessage::Pong(_) => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    println!(
        "moongate alone: WS open → first keyframe {} ms",
        opened.elapsed().as_millis()
    );
    ws.close(None).await.unwrap();
    let pid = child.id().expect("running");
    let status = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let exit = timeout(T, child.wait()).await.expect("no exit").unwrap();
    assert!(exit.success(), "{exit:?}");
}
