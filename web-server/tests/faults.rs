//! Host faults mid-stream, against a real `demo-host` process in Wolf-strict mode on fixed ports
//! (so it can hang and come back, or be restarted as a rebooted host machine is):
//!
//! - **hang**: the host is SIGSTOPped for 30 s. The browser gets 1011 with a reason within
//!   [`LOSS_CLOSED_WITHIN`] (the control stream's ENet peer timeout, about 10 s, then a teardown
//!   bounded by the streamer's stop timeout: its ENet disconnect and `/cancel` get no answer from a
//!   stopped host). The streamer exits while the host is still stopped. After SIGCONT the same
//!   client streams again at once, without a new pairing and without restarting the gateway.
//! - **restart**: the host is SIGKILLed and a new process starts on the same ports and state
//!   directory. Same close bound; the next stream of the same client needs no pairing (the host
//!   kept its paired clients on disk, the gateway its identity).
//!
//! The crash without restart is `host_loss.rs`. Every test ends with 0 host sessions and 0
//! Wolf-strict violations.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::*;
use tokio::time::timeout;

/// ENet's peer timeout for a silent peer (about 10 s on loopback, moonlight-common-c's and ours)
/// plus the streamer's bounded teardown (5 s) plus slack for a loaded 2-core machine.
const LOSS_CLOSED_WITHIN: Duration = Duration::from_secs(25);
/// After the hung host resumes: the gateway's probe (every 2 s), the host's ENet timeout waited
/// out again (the tests' 10 s `host_cleanup`), the `/cancel`, and slack.
const HOST_FREED_WITHIN: Duration = Duration::from_secs(25);
/// How long the host hangs.
const HANG: Duration = Duration::from_secs(30);

/// Streams `client` from host index 1 until its first keyframe; returns the socket and the time
/// from the open to that keyframe.
async fn stream(gw: &Gateway, session: &str, client: &str) -> (Ws, Duration) {
    let t0 = Instant::now();
    let mut ws = connect_host(gw, 1, session, client).await;
    handshake(&mut ws).await;
    let first = first_keyframe(&mut ws, t0).await;
    (ws, first)
}

/// Streams `client` (the first stream, so it pairs the gateway with the host: one PIN).
async fn first_stream(
    gw: &Gateway,
    pins: &AtomicUsize,
    session: &str,
    client: &str,
) -> (Ws, Duration) {
    let first = stream(gw, session, client).await;
    assert_eq!(pins.load(Ordering::SeqCst), 1, "the first stream paired");
    first
}

/// Closes `ws` normally and waits for the gateway and the host to be free.
async fn close_and_settle(gw: &Gateway, host: &mut FixedHost, mut ws: Ws, what: &str) {
    ws.close(None).await.unwrap();
    let _ = read_until_close(&mut ws, Duration::from_secs(10)).await;
    assert!(
        gw.registry_empty(Duration::from_secs(10)).await,
        "{what}: registry empty"
    );
    assert_eq!(
        host.wait_sessions(0, Duration::from_secs(10)).await,
        Ok(()),
        "{what}: the host holds no session"
    );
}

/// Reads `ws` to its close (within [`LOSS_CLOSED_WITHIN`]) after the host was lost at `lost` by
/// `cause`, prints when it came, and asserts it is a 1011 that names the lost host; the time from
/// the loss to the close.
async fn assert_closed_for_lost_host(
    ws: &mut Ws,
    lost: Instant,
    (label, cause): (&str, &str),
    what: &str,
) -> Duration {
    let (close, error) = read_until_close(ws, LOSS_CLOSED_WITHIN).await;
    let closed_after = lost.elapsed();
    figure!(
        "{label}: browser closed {} ms after {cause} with {close:?} ({error:?})",
        closed_after.as_millis()
    );
    assert_lost_host_close(close, what);
    closed_after
}

fn assert_lost_host_close(close: Option<(u16, String)>, what: &str) {
    let (code, reason) =
        close.unwrap_or_else(|| panic!("{what}: a close frame, not a dropped socket"));
    assert_eq!(code, 1011, "{what}: an internal-error close ({reason})");
    assert!(
        reason.contains("ConnectionLost") || reason.to_lowercase().contains("host"),
        "{what}: a reason that names the lost host: {reason}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_hung_for_30_s_closes_within_bound_and_the_gateway_ends_its_stale_session() {
    hung_host(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_hung_for_30_s_then_the_same_client_at_once_takes_its_stale_session_over() {
    hung_host(true).await;
}

/// The host SIGSTOPped mid-stream for [`HANG`], then SIGCONTed. `at_once`: the same client streams
/// again right after SIGCONT, while the host still holds its stale session (the launch takes it
/// over, and the gateway's pending `/cancel` of it is dropped: the new stream outlives it).
/// Otherwise the gateway ends the stale session by itself, then the client streams.
async fn hung_host(at_once: bool) {
    let (_serial, gw, _dir, mut host, pins) = gateway_with_fixed_host().await;
    let baseline = streamer_children().len();
    let (mut ws, first) = first_stream(&gw, &pins, "ses_hang", "helix-agent-hang").await;
    assert_eq!(host.paired_clients().await, 1);
    assert_eq!(streamer_children().len(), baseline + 1);

    host.signal(libc::SIGSTOP);
    let stopped = Instant::now();
    let closed_after =
        assert_closed_for_lost_host(&mut ws, stopped, ("host hung", "SIGSTOP"), "hang").await;
    // The streamer's teardown is bounded although the host answers neither its ENet disconnect
    // nor its `/cancel`: it exits while the host is still stopped.
    assert!(
        eventually(Duration::from_secs(10), || streamer_children().len()
            == baseline)
        .await,
        "the streamer exited while the host hangs"
    );
    let streamer_gone = stopped.elapsed();
    assert!(
        streamer_gone < HANG,
        "the streamer exited before the host came back ({streamer_gone:?})"
    );
    assert!(gw.registry_empty(Duration::from_secs(5)).await);

    // The host comes back after 30 s (the fault's length, not a synchronisation).
    tokio::time::sleep_until((stopped + HANG).into()).await;
    host.signal(libc::SIGCONT);
    let resumed = Instant::now();
    // The host comes back holding the stream's session (its ENet peer timed out: paused, as Wolf
    // does); the gateway cancels it once the host answers and its ENet timeout has passed (10 s
    // here), without a new stream.
    let held = host.stats().await.1;
    assert_eq!(
        held, 1,
        "the resumed host kept the stream's session (Wolf's pause)"
    );
    if at_once {
        let (mut ws, first_again) = stream(&gw, "ses_hang", "helix-agent-hang").await;
        assert_eq!(
            host.stats().await.1,
            1,
            "the launch took the stale session over"
        );
        // Past the moment the gateway's cleanup would have cancelled the stale session.
        let frames = frames_for(&mut ws, HOST_FREED_WITHIN).await;
        assert!(frames > 100, "the new stream went on ({frames} frames)");
        assert_eq!(
            pins.load(Ordering::SeqCst),
            1,
            "no new pairing after the hang"
        );
        figure!(
            "host hung 30 s, the same client at once after SIGCONT: first keyframe {} ms after its \
             open, {frames} frames in the next {} s with the stale session taken over",
            first_again.as_millis(),
            HOST_FREED_WITHIN.as_secs()
        );
        close_and_settle(&gw, &mut host, ws, "after the hang").await;
        assert_eq!(host.stats().await.0, 0, "0 Wolf-strict violations");
        gw.stop().await;
        return;
    }
    let freed = host.wait_sessions(0, HOST_FREED_WITHIN).await;
    let freed_after = resumed.elapsed();
    figure!(
        "after SIGCONT: the host held {held} session(s), 0 after {} ms",
        freed_after.as_millis()
    );
    assert_eq!(
        freed,
        Ok(()),
        "the gateway ended the session the hung host kept"
    );
    // The same client streams again, with no pairing and no restart of the gateway.
    let (ws, first_again) = stream(&gw, "ses_hang", "helix-agent-hang").await;
    assert_eq!(
        pins.load(Ordering::SeqCst),
        1,
        "no new pairing after the hang"
    );
    assert_eq!(host.paired_clients().await, 1);
    figure!(
        "host hung 30 s: first keyframe {} ms; close 1011 {} ms after SIGSTOP; streamer gone {} ms \
         after SIGSTOP; host free {} ms after SIGCONT; the same client's next stream: first keyframe {} ms \
         after its open",
        first.as_millis(),
        closed_after.as_millis(),
        streamer_gone.as_millis(),
        freed_after.as_millis(),
        first_again.as_millis(),
    );
    close_and_settle(&gw, &mut host, ws, "after the hang").await;
    assert_eq!(host.stats().await.0, 0, "0 Wolf-strict violations");
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_restarted_mid_stream_closes_within_bound_and_streams_again_without_pairing() {
    let (_serial, gw, _dir, mut host, pins) = gateway_with_fixed_host().await;
    let baseline = streamer_children().len();
    let (mut ws, first) = first_stream(&gw, &pins, "ses_restart", "helix-agent-restart").await;
    let identities = gw.state.store.list_identities().await.unwrap();

    host.kill().await;
    let killed = Instant::now();
    host.restart().await;
    let back = killed.elapsed();
    assert_eq!(
        host.paired_clients().await,
        1,
        "the restarted host kept its paired client (state dir)"
    );
    let restarted = ("host restarted", "the kill");
    let closed_after = assert_closed_for_lost_host(&mut ws, killed, restarted, "restart").await;
    assert!(
        eventually(Duration::from_secs(10), || streamer_children().len()
            == baseline)
        .await,
        "the streamer exited"
    );
    assert!(gw.registry_empty(Duration::from_secs(5)).await);

    let t0 = Instant::now();
    let (ws, first_again) = stream(&gw, "ses_restart", "helix-agent-restart").await;
    assert_eq!(
        pins.load(Ordering::SeqCst),
        1,
        "no new pairing after the restart"
    );
    assert_eq!(host.paired_clients().await, 1);
    let after = gw.state.store.list_identities().await.unwrap();
    assert_eq!(
        identities
            .iter()
            .map(|i| (i.host_id, &i.client_id, i.created_at))
            .collect::<Vec<_>>(),
        after
            .iter()
            .map(|i| (i.host_id, &i.client_id, i.created_at))
            .collect::<Vec<_>>(),
        "the gateway kept the same identities"
    );
    figure!(
        "host restarted mid-stream: first keyframe {} ms; new host up {} ms after the kill; close \
         1011 {} ms after the kill; next stream's first keyframe {} ms after its open, no pairing",
        first.as_millis(),
        back.as_millis(),
        closed_after.as_millis(),
        t0.elapsed().min(first_again).as_millis()
    );
    close_and_settle(&gw, &mut host, ws, "after the restart").await;
    assert_eq!(host.stats().await.0, 0, "0 Wolf-strict violations");
    gw.stop().await;
}

// ---- The gateway SIGKILLed with 10 live streams ----

/// How many streams are live when the gateway is killed.
const LIVE_STREAMS: usize = 10;
/// The streamers see EOF on their IPC stdin and run their one teardown (ENet disconnect, then
/// `/cancel`, each bounded: 5 s in all) and exit; with slack for ten at once on two cores.
const ORPHANS_GONE_WITHIN: Duration = Duration::from_secs(20);

/// A live (not zombie) `streamer` process with this pid.
fn streamer_alive(pid: u32) -> bool {
    let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let zombie = stat
        .rsplit_once(')')
        .and_then(|(_, rest)| rest.split_whitespace().next())
        == Some("Z");
    comm.trim() == "streamer" && !zombie
}

/// A `moongate` process on a fixed port and data directory (so it can be SIGKILLed and started
/// again on both), streaming from `host`. Its user and admin credentials are generated on the
/// first start and read from its output.
struct Moongate {
    child: tokio::process::Child,
    addr: String,
    user: String,
    admin: String,
    /// What the start printed about each credential ("Generated …" or "Using … stored in …").
    credential_lines: Vec<String>,
}

impl Moongate {
    async fn start(data: &std::path::Path, port: u16, host: &FixedHost) -> Moongate {
        use tokio::io::AsyncBufReadExt;
        let config = OneHostConfig {
            bind: &format!("127.0.0.1:{port}"),
            host_name: "faults host",
            http_port: host.http,
            https_port: host.https,
            wolf_api: &host.socket,
        }
        .write(data);
        let mut child = tokio::process::Command::new(sibling_exe("moongate"))
            .arg("--config")
            .arg(&config)
            .env("MOONGATE_DATA_DIR", data)
            .env("MOONGATE_STREAMER", streamer_exe())
            .env_remove("MOONGATE_CREDENTIALS")
            .env_remove("MOONGATE_ADMIN_CREDENTIALS")
            // The streamers inherit it: they log at `info`, their default, so that a streamer whose
            // logging breaks when the gateway is gone (stderr: EPIPE) shows here.
            .env(
                "RUST_LOG",
                std::env::var("MOONGATE_TEST_LOG").unwrap_or_else(|_| "warn,streamer=info".into()),
            )
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(if std::env::var_os("MOONGATE_TEST_LOG").is_some() {
                std::process::Stdio::inherit()
            } else {
                std::process::Stdio::null()
            })
            .kill_on_drop(true)
            .spawn()
            .expect("spawn moongate");
        let mut out = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
        let (mut addr, mut user, mut admin, mut credential_lines) = (None, None, None, Vec::new());
        timeout(Duration::from_secs(30), async {
            while addr.is_none() || user.is_none() || admin.is_none() {
                let line = out
                    .next_line()
                    .await
                    .unwrap()
                    .expect("moongate exited before it was up");
                if let Some(rest) = line.strip_prefix("moongate is listening on http://") {
                    addr = Some(rest.trim_end_matches('/').to_string());
                    continue;
                }
                let admin_line = line.contains("admin credential");
                if !(line.contains("credential")
                    && (line.starts_with("Generated") || line.starts_with("Using")))
                {
                    continue;
                }
                credential_lines.push(line.clone());
                let secret = if line.starts_with("Generated") {
                    line.rsplit_once(": ").map(|(_, s)| s.trim().to_string())
                } else {
                    // "Using the … credential stored in <path>": the file holds it.
                    line.rsplit_once(" stored in ")
                        .and_then(|(_, p)| std::fs::read_to_string(p.trim()).ok())
                        .map(|s| s.trim().to_string())
                };
                let secret = secret.unwrap_or_else(|| panic!("no credential in {line:?}"));
                if admin_line {
                    admin = Some(secret);
                } else {
                    user = Some(secret);
                }
            }
        })
        .await
        .expect("moongate did not start");
        tokio::spawn(async move { while let Ok(Some(_)) = out.next_line().await {} });
        Moongate {
            child,
            addr: addr.unwrap(),
            user: user.unwrap(),
            admin: admin.unwrap(),
            credential_lines,
        }
    }

    async fn get(&self, path: &str, bearer: &str) -> (u16, serde_json::Value) {
        let (status, body) = raw_http(
            &self.addr,
            &format!("GET {path} HTTP/1.0\r\nHost: x\r\nAuthorization: Bearer {bearer}\r\n\r\n"),
        )
        .await;
        (
            status,
            serde_json::from_str(&body).unwrap_or(serde_json::Value::Null),
        )
    }

    /// Opens a stream of `client` from host index 0 with the user credential.
    async fn open(&self, session: &str, client: &str) -> Ws {
        let mut ws = upgrade(
            &format!("ws://{}/api/ws/stream?session_id={session}", self.addr),
            Some(&self.user),
            Duration::from_secs(5),
        )
        .await;
        send_ping_and_init(&mut ws, init_json(session, client, 320, 240, 30)).await;
        ws
    }

    /// The streams' (key, streamer pid) as the admin API lists them.
    async fn streamer_pids(&self) -> Vec<(String, u32)> {
        let (status, rows) = self.get("/api/admin/sessions", &self.admin).await;
        assert_eq!(status, 200, "{rows}");
        rows.as_array()
            .unwrap()
            .iter()
            .map(|r| {
                (
                    r["key"].as_str().unwrap().to_string(),
                    r["pid"].as_u64().expect("a pid per stream") as u32,
                )
            })
            .collect()
    }

    /// Identities as (host, client, pairing, created): what must survive a restart.
    async fn identities(&self) -> Vec<(i64, String, String, i64)> {
        let (status, rows) = self.get("/api/admin/identities", &self.admin).await;
        assert_eq!(status, 200, "{rows}");
        let mut v: Vec<_> = rows
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                (
                    r["host_id"].as_i64().unwrap(),
                    r["client_id"].as_str().unwrap().to_string(),
                    r["pairing"].to_string().to_lowercase(),
                    r["created_at"].as_i64().unwrap(),
                )
            })
            .collect();
        v.sort();
        v
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_killed_with_10_live_streams_leaves_no_orphan_nor_busy_host_and_restarts_intact() {
    let _serial = SERIAL.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let mut host = FixedHost::start(dir.path()).await;
    let data = dir.path().join("moongate-data");
    let port = free_port();
    let mut gw = Moongate::start(&data, port, &host).await;
    assert!(
        gw.credential_lines
            .iter()
            .all(|l| l.starts_with("Generated")),
        "the first start generates both credentials: {:?}",
        gw.credential_lines
    );

    let mut sockets = Vec::new();
    let t0 = Instant::now();
    for i in 0..LIVE_STREAMS {
        let mut ws = gw
            .open(&format!("ses_gwkill{i}"), &format!("gwkill-client-{i}"))
            .await;
        handshake(&mut ws).await;
        first_keyframe(&mut ws, Instant::now()).await;
        sockets.push(ws);
    }
    let opened = t0.elapsed();
    let pids = gw.streamer_pids().await;
    assert_eq!(pids.len(), LIVE_STREAMS, "{pids:?}");
    assert!(pids.iter().all(|(_, pid)| streamer_alive(*pid)), "{pids:?}");
    assert_eq!(
        host.stats().await.1,
        LIVE_STREAMS,
        "the host streams {LIVE_STREAMS} sessions"
    );
    assert_eq!(host.paired_clients().await, LIVE_STREAMS);
    let (status, hosts_before) = gw.get("/api/hosts", &gw.user).await;
    assert_eq!(status, 200, "{hosts_before}");
    let identities_before = gw.identities().await;
    assert_eq!(
        identities_before.len(),
        LIVE_STREAMS,
        "{identities_before:?}"
    );
    assert!(
        identities_before
            .iter()
            .all(|i| i.2.contains("paired") && !i.2.contains("unpaired")),
        "{identities_before:?}"
    );
    let (user, admin) = (gw.user.clone(), gw.admin.clone());

    // kill -9: no shutdown, no Stop to any streamer; their IPC stdin reaches EOF.
    gw.child.start_kill().unwrap();
    let killed = Instant::now();
    let _ = timeout(Duration::from_secs(5), gw.child.wait()).await;
    let all_gone = eventually(ORPHANS_GONE_WITHIN, || {
        pids.iter().all(|(_, pid)| !streamer_alive(*pid))
    })
    .await;
    let orphans_gone = killed.elapsed();
    let left: Vec<_> = pids.iter().filter(|(_, p)| streamer_alive(*p)).collect();
    assert!(all_gone, "streamers outlived the gateway: {left:?}");
    assert_eq!(
        host.wait_sessions(0, ORPHANS_GONE_WITHIN).await,
        Ok(()),
        "the host is left busy"
    );
    let host_free = killed.elapsed();
    let (violations, _) = host.stats().await;
    assert_eq!(
        violations, 0,
        "0 Wolf-strict violations: each streamer disconnected, then cancelled"
    );
    // Every browser socket was dropped (no close frame can come from a killed process).
    for (i, ws) in sockets.iter_mut().enumerate() {
        let ended = timeout(Duration::from_secs(10), async {
            loop {
                match futures_util::StreamExt::next(ws).await {
                    None | Some(Err(_)) => return true,
                    Some(Ok(tokio_tungstenite::tungstenite::Message::Close(_))) => return true,
                    Some(Ok(_)) => {}
                }
            }
        })
        .await;
        assert_eq!(ended, Ok(true), "browser socket {i} ended");
    }

    // The same data directory and port: the store is intact, and streams work at once.
    let restarted = Instant::now();
    gw = Moongate::start(&data, port, &host).await;
    let up = restarted.elapsed();
    assert_eq!(gw.addr, format!("127.0.0.1:{port}"));
    assert_eq!(
        (gw.user.as_str(), gw.admin.as_str()),
        (user.as_str(), admin.as_str()),
        "credentials kept"
    );
    assert!(
        gw.credential_lines.iter().all(|l| l.starts_with("Using")),
        "the restart uses the stored credentials: {:?}",
        gw.credential_lines
    );
    let (status, hosts_after) = gw.get("/api/hosts", &user).await;
    assert_eq!(status, 200, "the old user credential works: {hosts_after}");
    assert_eq!(hosts_before, hosts_after, "hosts intact");
    assert_eq!(
        gw.identities().await,
        identities_before,
        "identities and pairings intact"
    );
    assert!(
        gw.streamer_pids().await.is_empty(),
        "no stream survived in the registry"
    );
    let t = Instant::now();
    let mut ws = gw.open("ses_gwkill0", "gwkill-client-0").await;
    handshake(&mut ws).await;
    first_keyframe(&mut ws, t).await;
    let streamed = restarted.elapsed();
    assert_eq!(host.paired_clients().await, LIVE_STREAMS, "no new pairing");
    figure!(
        "gateway SIGKILLed with {LIVE_STREAMS} live streams (opened in {} ms): the last streamer exited {} ms \
         after the kill, the host was free (0 sessions, 0 violations) {} ms after it; the restarted \
         gateway listened {} ms after its start and streamed (first keyframe) {} ms after it",
        opened.as_millis(),
        orphans_gone.as_millis(),
        host_free.as_millis(),
        up.as_millis(),
        streamed.as_millis()
    );
    ws.close(None).await.unwrap();
    let _ = read_until_close(&mut ws, Duration::from_secs(10)).await;
    assert_eq!(host.wait_sessions(0, Duration::from_secs(10)).await, Ok(()));
    assert_eq!(host.stats().await.0, 0);
    gw.child.start_kill().unwrap();
    let _ = gw.child.wait().await;
}
