//! A malicious or broken Moonlight host, on loopback: hand-written listeners whose `/serverinfo`
//! (HTTP, and the HTTPS port the gateway is given) answers with 64 MiB or endless XML, malformed
//! or deeply nested XML, a trickle, silence, endless headers or random bytes, added to a
//! `moongate` process of its own and polled and streamed from; RTSP servers whose reply never ends,
//! trickles or never comes, against gamestream's RTSP client (what the streamer runs); and a real
//! `demo-host` whose media packets are replaced by random bytes (`corrupt-percent`) while a
//! browser streams through the gateway. Each case must end with a clear error within a bound,
//! with the gateway's memory bounded, no panic in its log (its streamers' included) and nothing
//! left behind. Every test prints what it tried and what happened.
//!
//! Needs `cargo build --bins -p streamer -p demo-host -p web-server`.

mod common;
#[path = "common/gateway_proc.rs"]
mod gateway_proc;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::*;
use futures_util::StreamExt;
use gateway_proc::{assert_peak_growth, GatewayProc};
use rand::{Rng, SeedableRng};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::timeout;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use wire::browser::Message;

const MIB: usize = 1 << 20;
/// Every fake connection ends by itself after this, whatever the client does.
const FAKE_LIFETIME: Duration = Duration::from_secs(40);
/// The gateway's NVHTTP request timeout in these tests (`MOONGATE_HOST_REQUEST_TIMEOUT_SECS`).
const HOST_REQUEST_SECS: u64 = 3;

/// How a fake host answers an HTTP request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Answer {
    /// 200, `Content-Length: 64 MiB`, an XML start then 64 MiB of one text node.
    Huge,
    /// 200, chunked, an endless body (until the client goes or the lifetime ends).
    Endless,
    /// 200 with broken XML.
    Malformed,
    /// 200 with 200 000 nested elements.
    Deep,
    /// 200 and a valid start, then one byte every 200 ms.
    Trickle,
    /// Reads the request and never answers.
    Silent,
    /// A status line, then header lines without end.
    EndlessHeaders,
    /// 1 MiB of random bytes, then close.
    Random,
    /// 200 and a JSON body (not XML at all).
    Json,
}

const XML_START: &[u8] =
    b"<?xml version=\"1.0\" encoding=\"utf-8\"?><root status_code=\"200\"><hostname>";

/// Writes `data` unless the lifetime is over; false when the client is gone.
async fn put(s: &mut TcpStream, data: &[u8], until: Instant) -> bool {
    Instant::now() < until && s.write_all(data).await.is_ok()
}

/// Writes `byte` every `every` until the client goes or the lifetime ends; the bytes written.
async fn trickle(s: &mut TcpStream, byte: &[u8], every: Duration, until: Instant) -> usize {
    let mut sent = 0;
    while put(s, byte, until).await {
        sent += 1;
        tokio::time::sleep(every).await;
    }
    sent
}

/// Holds the connection open, reading, until the client goes or the lifetime ends.
async fn hold_open(s: &mut TcpStream, buf: &mut [u8], until: Instant) {
    let left = until.saturating_duration_since(Instant::now());
    let _ = timeout(left, s.read(buf)).await;
}

/// Serves one connection of a fake NVHTTP host: reads the request head (at most 16 kB), then
/// answers as told. Every loop ends when the client goes or at [`FAKE_LIFETIME`]; returns the
/// bytes written.
async fn fake_http_conn(mut s: TcpStream, answer: Answer, seed: u64) -> usize {
    let until = Instant::now() + FAKE_LIFETIME;
    let mut head = Vec::new();
    let mut buf = [0u8; 4096];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 16 * 1024 {
        match timeout(Duration::from_secs(5), s.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => head.extend_from_slice(&buf[..n]),
            // TLS (the HTTPS port) or nothing: answer anyway.
            _ => break,
        }
    }
    let mut sent = 0usize;
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let ok_head = |extra: &str| format!("HTTP/1.1 200 OK\r\nContent-Type: text/xml\r\n{extra}\r\n");
    match answer {
        Answer::Huge => {
            let total = 64 * MIB;
            let h = ok_head(&format!("Content-Length: {total}\r\n"));
            if !put(&mut s, h.as_bytes(), until).await || !put(&mut s, XML_START, until).await {
                return sent;
            }
            sent += XML_START.len();
            let chunk = vec![b'A'; 64 * 1024];
            while sent < total {
                let n = chunk.len().min(total - sent);
                if !put(&mut s, &chunk[..n], until).await {
                    break;
                }
                sent += n;
            }
        }
        Answer::Endless => {
            let h = ok_head("Transfer-Encoding: chunked\r\n");
            if !put(&mut s, h.as_bytes(), until).await {
                return sent;
            }
            let mut chunk = format!("{:x}\r\n", 64 * 1024).into_bytes();
            chunk.extend(std::iter::repeat_n(b'A', 64 * 1024));
            chunk.extend_from_slice(b"\r\n");
            while put(&mut s, &chunk, until).await {
                sent += 64 * 1024;
            }
        }
        Answer::Malformed | Answer::Deep | Answer::Json => {
            let body: Vec<u8> = match answer {
                Answer::Malformed => {
                    b"<?xml version=\"1.0\"?><root status_code=\"200\"><hostname>x</hostnam><<&&;<HttpsPort>-1</root"
                        .to_vec()
                }
                Answer::Deep => {
                    let mut b = b"<root status_code=\"200\">".to_vec();
                    b.extend(b"<a>".repeat(200_000));
                    b
                }
                _ => br#"{"hostname": "not xml", "HttpsPort": 47984}"#.to_vec(),
            };
            let h = ok_head(&format!("Content-Length: {}\r\n", body.len()));
            if put(&mut s, h.as_bytes(), until).await && put(&mut s, &body, until).await {
                sent = body.len();
            }
        }
        Answer::Trickle => {
            let h = ok_head("Content-Length: 1000000\r\n");
            if !put(&mut s, h.as_bytes(), until).await || !put(&mut s, XML_START, until).await {
                return sent;
            }
            sent = trickle(&mut s, b"A", Duration::from_millis(200), until).await;
        }
        Answer::Silent => hold_open(&mut s, &mut buf, until).await,
        Answer::EndlessHeaders => {
            if !put(&mut s, b"HTTP/1.1 200 OK\r\n", until).await {
                return sent;
            }
            let line =
                b"X-Junk: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n";
            let block = line.repeat(1000);
            while sent < 256 * MIB && put(&mut s, &block, until).await {
                sent += block.len();
            }
        }
        Answer::Random => {
            let junk: Vec<u8> = (0..MIB).map(|_| rng.gen()).collect();
            if put(&mut s, &junk, until).await {
                sent = junk.len();
            }
        }
    }
    sent
}

/// A fake host listening on an ephemeral loopback port: every connection answered with `answer`
/// (each in its own task). Returns the port and the listener task (abort it to stop).
async fn fake_http_host(answer: Answer, seed: u64) -> (u16, tokio::task::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let task = tokio::spawn(async move {
        while let Ok((s, _)) = listener.accept().await {
            tokio::spawn(fake_http_conn(s, answer, seed));
        }
    });
    (port, task)
}

async fn json_request(
    gw: &GatewayProc,
    method: &str,
    path: &str,
    body: Option<serde_json::Value>,
) -> (u16, String) {
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    raw_http(
        &gw.addr,
        &format!(
            "{method} {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {SECRET}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        ),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_with_huge_endless_or_malformed_serverinfo_gets_clear_errors_in_bounded_time() {
    let _serial = SERIAL.lock().await;
    let gw = gateway_proc::start(&[(
        "MOONGATE_HOST_REQUEST_TIMEOUT_SECS",
        HOST_REQUEST_SECS.to_string(),
    )])
    .await;
    let seed: u64 = rand::thread_rng().gen();
    let before = gw.memory();
    let bound = Duration::from_secs(HOST_REQUEST_SECS * 2 + 2);
    let answers = [
        Answer::Huge,
        Answer::Endless,
        Answer::Malformed,
        Answer::Deep,
        Answer::Trickle,
        Answer::Silent,
        Answer::EndlessHeaders,
        Answer::Random,
        Answer::Json,
    ];
    let mut report = Vec::new();
    for answer in answers {
        // The HTTP port and the HTTPS port both answer this way.
        let (http, http_task) = fake_http_host(answer, seed).await;
        let (https, https_task) = fake_http_host(answer, seed).await;
        let (status, body) = json_request(
            &gw,
            "POST",
            "/api/hosts",
            Some(serde_json::json!({
                "name": format!("{answer:?}"), "address": "127.0.0.1",
                "http_port": http, "https_port": https,
            })),
        )
        .await;
        assert_eq!(status, 201, "{answer:?}: add: {body}");
        let id = serde_json::from_str::<serde_json::Value>(&body).unwrap()["id"]
            .as_i64()
            .unwrap();

        // Its status: offline with the reason, within the request timeout (twice: HTTP, then
        // HTTPS where the client tries it).
        let t0 = Instant::now();
        let (status, body) =
            json_request(&gw, "GET", &format!("/api/hosts/{id}/status"), None).await;
        let status_took = t0.elapsed();
        assert_eq!(status, 200, "{answer:?}: status: {body}");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["online"], false, "{answer:?}: {body}");
        let error = v["error"].as_str().unwrap_or_default().to_string();
        assert!(!error.is_empty(), "{answer:?}: no error text: {body}");
        assert!(
            status_took < bound,
            "{answer:?}: status took {status_took:?}"
        );

        // The host list still answers (it reads only the store).
        let t0 = Instant::now();
        let (status, list) = json_request(&gw, "GET", "/api/hosts", None).await;
        assert_eq!(status, 200);
        let list_took = t0.elapsed();
        let index = serde_json::from_str::<serde_json::Value>(&list)
            .unwrap()
            .as_array()
            .unwrap()
            .iter()
            .position(|h| h["id"].as_i64() == Some(id))
            .expect("the host is listed");

        // Its apps: a clear error.
        let t0 = Instant::now();
        let (apps_status, apps_body) =
            json_request(&gw, "GET", &format!("/api/hosts/{id}/apps"), None).await;
        let apps_took = t0.elapsed();
        assert!(
            (400..600).contains(&apps_status),
            "{answer:?}: apps: {apps_status} {apps_body}"
        );
        assert!(apps_took < bound, "{answer:?}: apps took {apps_took:?}");

        // A stream from it: a close with a clear error, within a bound.
        let t0 = Instant::now();
        let session = format!("evil{index}");
        let mut init: serde_json::Value =
            serde_json::from_str(&init_json(&session, "evil-client", 640, 360, 30)).unwrap();
        init["host_id"] = serde_json::json!(index);
        let mut ws = connect_at(
            &gw.addr,
            &format!("?session_id={session}"),
            init.to_string(),
        )
        .await;
        let (close, error_text) = read_until_close(&mut ws, Duration::from_secs(30)).await;
        let stream_took = t0.elapsed();
        let (code, reason) = close.unwrap_or_else(|| panic!("{answer:?}: stream: no close frame"));
        assert!(
            code == 1011 || code == 1008,
            "{answer:?}: stream closed {code} {reason:?}"
        );
        assert!(!reason.is_empty(), "{answer:?}: an empty close reason");
        assert!(
            gw.settled(Duration::from_secs(20)).await,
            "{answer:?}: left behind: {:?}",
            gw.children()
        );
        report.push(format!(
            "{answer:?}: status in {} ms (online false, {:?}); list in {} ms; apps {apps_status} in {} ms; stream closed {code} {reason:?} in {} ms{}",
            status_took.as_millis(),
            error.chars().take(100).collect::<String>(),
            list_took.as_millis(),
            apps_took.as_millis(),
            stream_took.as_millis(),
            error_text.map(|e| format!(" (text {})", e.chars().take(100).collect::<String>())).unwrap_or_default()
        ));
        let (status, _) = json_request(&gw, "DELETE", &format!("/api/hosts/{id}"), None).await;
        assert_eq!(status, 204);
        http_task.abort();
        https_task.abort();
    }
    let after = gw.memory();
    // The embedded host still streams through the gateway.
    let (ws, first) = stream_at(&gw.addr, "good").await;
    drop(ws);
    assert!(gw.settled(Duration::from_secs(20)).await);
    let panics = gw.panics();
    assert!(panics.is_empty(), "panics: {panics:?}");
    figure!("malicious /serverinfo: seed {seed}, request timeout {HOST_REQUEST_SECS} s");
    for line in &report {
        figure!("malicious /serverinfo: {line}");
    }
    let then = format!(
        "the embedded host then streamed (first keyframe {} ms); no panic",
        first.as_millis()
    );
    // Bodies are read up to 1 MiB each; 64 MiB (or endless) must not be held.
    let why = "a host's body was held";
    assert_peak_growth(
        "malicious /serverinfo",
        before,
        after,
        &then,
        16 * 1024,
        why,
    );
    gw.stop().await;
}

/// A fake RTSP server's behaviour.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Rtsp {
    /// A reply that never ends: RTSP text as fast as the client reads.
    Flood,
    /// A reply that begins and then trickles a byte every 100 ms.
    Trickle,
    /// Accepts, reads the request, never replies.
    Silent,
}

async fn fake_rtsp(kind: Rtsp) -> (SocketAddr, tokio::task::JoinHandle<usize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let Ok((mut s, _)) = listener.accept().await else {
            return 0;
        };
        let until = Instant::now() + FAKE_LIFETIME;
        let mut buf = [0u8; 4096];
        let _ = timeout(Duration::from_secs(5), s.read(&mut buf)).await;
        let mut sent = 0;
        match kind {
            Rtsp::Flood => {
                let mut block = b"RTSP/1.0 200 OK\r\nCSeq: 1\r\n".to_vec();
                block.extend(b"X-Never-Ends: yes\r\n".repeat(3000));
                while put(&mut s, &block, until).await {
                    sent += block.len();
                }
            }
            Rtsp::Trickle => {
                if put(&mut s, b"RTSP/1.0 200 OK\r\nCSeq: 1\r\n", until).await {
                    sent = trickle(&mut s, b"X", Duration::from_millis(100), until).await;
                }
            }
            Rtsp::Silent => hold_open(&mut s, &mut buf, until).await,
        }
        sent
    });
    (addr, task)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_rtsp_reply_that_never_ends_or_never_comes_is_a_typed_error_within_a_bound() {
    use gamestream::rtsp::client::{transact, READ_TIMEOUT};
    use gamestream::rtsp::RtspError;
    let request =
        b"OPTIONS rtsp://127.0.0.1:48010 RTSP/1.0\r\nCSeq: 1\r\nX-GS-ClientVersion: 14\r\n\r\n";
    let rss0 = gateway_proc::status_kb(std::process::id(), "VmRSS");
    let mut report = Vec::new();
    let mut runs = Vec::new();
    for kind in [Rtsp::Flood, Rtsp::Trickle, Rtsp::Silent] {
        let (addr, server) = fake_rtsp(kind).await;
        runs.push(tokio::spawn(async move {
            let t0 = Instant::now();
            let result = transact(addr, request).await;
            let took = t0.elapsed();
            server.abort();
            (kind, result, took)
        }));
    }
    for run in runs {
        let (kind, result, took) = run.await.unwrap();
        let err = result.expect_err("a reply was accepted");
        report.push(format!(
            "{kind:?}: {err:?} ({err}) after {} ms",
            took.as_millis()
        ));
        match kind {
            Rtsp::Flood => {
                assert!(matches!(err, RtspError::TooLarge), "{kind:?}: {err:?}");
                assert!(took < Duration::from_secs(5), "{kind:?}: {took:?}");
            }
            // A reply that stalls (Trickle: mid-response; Silent: before a byte) times out on
            // the read bound.
            Rtsp::Trickle | Rtsp::Silent => {
                let phase = if kind == Rtsp::Trickle {
                    "response"
                } else {
                    "read"
                };
                assert!(
                    matches!(err, RtspError::Timeout(p) if p == phase),
                    "{kind:?}: {err:?}"
                );
                assert!(
                    took < READ_TIMEOUT + Duration::from_secs(2),
                    "{kind:?}: {took:?}"
                );
            }
        }
    }
    let hwm = gateway_proc::status_kb(std::process::id(), "VmHWM");
    for line in &report {
        figure!("malicious RTSP: {line}");
    }
    figure!(
        "malicious RTSP: this test process (client) RSS {rss0} kB at the start, peak {hwm} kB (a reply is read up to 1 MiB)"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_bytes_in_the_hosts_media_do_not_stop_the_stream_or_panic() {
    use tokio::io::AsyncWriteExt as _;
    let _serial = SERIAL.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let (mut host, http_port, https_port, _host_lines) = spawn_demo_host(dir.path()).await;
    let mut console = host.stdin.take().unwrap();
    let toml = format!(
        "[[hosts]]\nname = \"corrupting host\"\naddress = \"127.0.0.1\"\nhttp_port = {http_port}\nhttps_port = {https_port}\nwolf_api = \"{}\"\n",
        dir.path().join("wolf.sock").display()
    );
    let gw = gateway_proc::start_with_config(Some(&toml), &[]).await;
    let (mut ws, _) = stream_at(&gw.addr, "noisy").await;

    // Phases: clean, 5 % corrupt, 100 % corrupt (nothing valid), clean again.
    let phases: [(u32, u64); 4] = [(0, 2), (5, 6), (100, 2), (0, 5)];
    let mut report = Vec::new();
    let mut counts = Vec::new();
    for (percent, secs) in phases {
        console
            .write_all(format!("corrupt-percent {percent}\n").as_bytes())
            .await
            .unwrap();
        let (mut frames, mut keyframes, mut audio, mut first_frame) = (0, 0, 0, None);
        let start = Instant::now();
        let until = start + Duration::from_secs(secs);
        loop {
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            match timeout(left, ws.next()).await {
                Err(_) => break,
                Ok(Some(Ok(WsMessage::Binary(b)))) => match Message::decode(&b) {
                    Ok(Message::VideoFrame(f)) => {
                        frames += 1;
                        if f.keyframe {
                            keyframes += 1;
                        }
                        first_frame.get_or_insert(start.elapsed());
                    }
                    Ok(Message::AudioFrame(_)) => audio += 1,
                    _ => {}
                },
                Ok(Some(Ok(WsMessage::Close(c)))) => {
                    panic!("{percent} % corrupt: the stream closed: {c:?}")
                }
                Ok(None) | Ok(Some(Err(_))) => panic!("{percent} % corrupt: the stream ended"),
                Ok(Some(Ok(_))) => {}
            }
        }
        report.push(format!(
            "{percent:>3} % of media packets random for {secs} s: {frames} video frames ({keyframes} keyframes), {audio} audio packets{}",
            first_frame
                .map(|t| format!(", first frame after {} ms", t.as_millis()))
                .unwrap_or_default()
        ));
        counts.push((percent, frames, keyframes));
    }
    ws.close(None).await.unwrap();
    let _ = read_until_close(&mut ws, Duration::from_secs(10)).await;
    assert!(
        gw.settled(Duration::from_secs(20)).await,
        "left behind: {:?}",
        gw.children()
    );
    // The host is free.
    let serverinfo = || {
        http(
            SocketAddr::from(([127, 0, 0, 1], http_port)),
            "GET",
            "/serverinfo?uniqueid=0123456789ABCDEF&uuid=00000000-0000-0000-0000-000000000000",
            None,
            None,
        )
    };
    let free = eventually_async(Duration::from_secs(10), || async {
        serverinfo().await.body.contains("SUNSHINE_SERVER_FREE")
    })
    .await;
    assert!(free, "the host is still busy: {}", serverinfo().await.body);
    let panics = gw.panics();
    let log = gw.log_text();
    let streamer_lines = log.lines().filter(|l| l.contains("streamer")).count();
    for line in &report {
        figure!("corrupt media: {line}");
    }
    figure!(
        "corrupt media: stream closed by the browser, 0 streamers and 0 sessions left, the host free; {streamer_lines} streamer log lines, {} panics",
        panics.len()
    );
    assert!(panics.is_empty(), "panics: {panics:?}");
    let (_, clean_frames, _) = counts[0];
    let (_, noisy_frames, _) = counts[1];
    let (_, after_frames, after_keyframes) = counts[3];
    assert!(clean_frames >= 30, "{clean_frames} frames in 2 s clean");
    assert!(
        noisy_frames >= 30,
        "{noisy_frames} frames in 6 s at 5 % corrupt"
    );
    assert!(
        after_frames >= 30 && after_keyframes >= 1,
        "after the corruption: {after_frames} frames, {after_keyframes} keyframes"
    );
    let _ = console.write_all(b"quit\n").await;
    let _ = timeout(Duration::from_secs(10), host.wait()).await;
    gw.stop().await;
}

/// Polls the async `cond` every 100 ms until true or `within` passes.
async fn eventually_async<F, Fut>(within: Duration, mut cond: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + within;
    loop {
        if cond().await {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
