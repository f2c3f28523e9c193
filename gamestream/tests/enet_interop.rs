//! rusty_enet (our drivers) against C ENet 1.3 (Debian `libenet-dev`) on 127.0.0.1.
//!
//! `tests/c/enet_peer.c` is compiled with `cc ... -lenet` into a temporary directory. It carries
//! opaque payloads; this test encodes them with our codec and decodes what the C side printed.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use gamestream::control::{
    channel, ClientEvent, ClientMessage, ControlClient, ControlCodec, ControlConfig, ControlServer,
    HostEvent, HostMessage, IvStyle, SessionMatch, Side,
};
use gamestream::AppVersion;
use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout, Command};
use tokio::time::timeout;

const KEY: [u8; 16] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15];
const LOCALHOST: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
const WAIT: Duration = Duration::from_secs(10);

/// Compiles the C peer once per test binary run into a unique temp dir.
fn build_c_peer(tag: &str) -> PathBuf {
    let src = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/c/enet_peer.c");
    let dir = std::env::temp_dir().join(format!("gamestream-enet-{}-{tag}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let exe = dir.join("enet_peer");
    let out = std::process::Command::new("cc")
        .arg("-O1")
        .arg("-o")
        .arg(&exe)
        .arg(&src)
        .arg("-lenet")
        .output()
        .expect("running cc (needs a C compiler and Debian's libenet-dev)");
    assert!(
        out.status.success(),
        "compiling enet_peer.c failed (is libenet-dev installed?):\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    exe
}

fn spawn(exe: &PathBuf, args: &[String]) -> (Child, Lines<BufReader<ChildStdout>>) {
    let mut child = Command::new(exe)
        .args(args)
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let lines = BufReader::new(child.stdout.take().unwrap()).lines();
    (child, lines)
}

async fn next_line(lines: &mut Lines<BufReader<ChildStdout>>) -> String {
    let line = timeout(WAIT, lines.next_line())
        .await
        .expect("C peer silent")
        .unwrap()
        .expect("C peer exited early");
    assert!(!line.starts_with("ERROR"), "C peer: {line}");
    line
}

/// Parses `RECV <channel> <hex>`.
fn parse_recv(line: &str) -> (u8, Vec<u8>) {
    let mut it = line.split(' ');
    assert_eq!(it.next(), Some("RECV"), "unexpected line {line}");
    let ch = it.next().unwrap().parse().unwrap();
    (ch, hex::decode(it.next().unwrap_or("")).unwrap())
}

async fn cleanup(mut child: Child, exe: PathBuf) {
    let status = timeout(WAIT, child.wait())
        .await
        .expect("C peer did not exit")
        .unwrap();
    assert!(status.success(), "C peer exit status {status}");
    if let Some(dir) = exe.parent() {
        let _ = std::fs::remove_dir_all(dir);
    }
}

#[tokio::test]
async fn c_client_against_our_server() {
    let exe = build_c_peer("client");
    let (srv, mut hev) = ControlServer::bind(SocketAddr::new(LOCALHOST, 0))
        .await
        .unwrap();
    let version = AppVersion::SUNSHINE;
    srv.register(
        11,
        SessionMatch {
            connect_data: Some(0x1234),
            peer_ip: None,
        },
        KEY,
        IvStyle::V2,
        version,
    );

    // What a client would send: an encrypted input message on the keyboard channel.
    let key_down = hex::decode("0000000a03000000004100000000").unwrap();
    let mut client_codec = ControlCodec::new(&KEY, IvStyle::V2, Side::Client, version);
    let wire = client_codec
        .encode_client(&ClientMessage::Input(key_down.clone()))
        .unwrap();
    let args = vec![
        "client".to_string(),
        srv.local_addr().port().to_string(),
        "0x1234".into(),
        channel::KEYBOARD.to_string(),
        hex::encode(&wire),
    ];
    let (child, mut lines) = spawn(&exe, &args);

    assert_eq!(next_line(&mut lines).await, "CONNECTED 0 48");
    let id_ev = timeout(WAIT, hev.recv()).await.unwrap().unwrap();
    assert!(
        matches!(id_ev, (11, HostEvent::Connected { .. })),
        "{id_ev:?}"
    );
    let id_ev = timeout(WAIT, hev.recv()).await.unwrap().unwrap();
    assert_eq!(
        id_ev,
        (
            11,
            HostEvent::Input {
                bytes: key_down,
                legacy_encrypted: false
            }
        )
    );

    srv.send(
        11,
        HostMessage::Rumble {
            controller: 0,
            low_freq: 0x1111,
            high_freq: 0x2222,
        },
    )
    .unwrap();
    let (ch, bytes) = parse_recv(&next_line(&mut lines).await);
    assert_eq!(ch, 0, "hosts reply on channel 0");
    let client_side = ControlCodec::new(&KEY, IvStyle::V2, Side::Client, version);
    assert_eq!(
        client_side.decode_host(&bytes).unwrap(),
        HostMessage::Rumble {
            controller: 0,
            low_freq: 0x1111,
            high_freq: 0x2222
        }
    );

    assert_eq!(next_line(&mut lines).await, "DISCONNECTED");
    let id_ev = timeout(WAIT, hev.recv()).await.unwrap().unwrap();
    assert_eq!(id_ev, (11, HostEvent::Disconnected));
    cleanup(child, exe).await;
    srv.close().await;
}

#[tokio::test]
async fn our_client_against_c_host() {
    let exe = build_c_peer("server");
    let version = AppVersion::SUNSHINE;
    let mut host_codec = ControlCodec::new(&KEY, IvStyle::Nvidia, Side::Host, version);
    let reply = host_codec
        .encode_host(&HostMessage::Rumble {
            controller: 3,
            low_freq: 7,
            high_freq: 9,
        })
        .unwrap();
    let (child, mut lines) = spawn(
        &exe,
        &["server".to_string(), "2".into(), hex::encode(reply)],
    );
    let port_line = next_line(&mut lines).await;
    let port: u16 = port_line
        .strip_prefix("PORT ")
        .expect("PORT line")
        .parse()
        .unwrap();

    let cfg = ControlConfig::new(0xBEEF, KEY, IvStyle::Nvidia, version);
    let (client, mut cev) = ControlClient::connect(SocketAddr::new(LOCALHOST, port), cfg)
        .await
        .unwrap();
    assert_eq!(
        next_line(&mut lines).await,
        format!("CONNECTED {} 48", 0xBEEF)
    );

    // Start A (= IDR request on >= 7.1.431) then Start B, both reliable on GENERIC.
    let host_side = ControlCodec::new(&KEY, IvStyle::Nvidia, Side::Host, version);
    let (ch, bytes) = parse_recv(&next_line(&mut lines).await);
    assert_eq!(
        (ch, host_side.decode_client(&bytes).unwrap()),
        (0, ClientMessage::IdrRequest)
    );
    let (ch, bytes) = parse_recv(&next_line(&mut lines).await);
    assert_eq!(
        (ch, host_side.decode_client(&bytes).unwrap()),
        (0, ClientMessage::StartB)
    );

    // The C host's reply reaches us as a rumble event.
    let ev = timeout(WAIT, async {
        loop {
            match cev.recv().await.expect("client events ended") {
                ClientEvent::Connected => continue,
                ev => return ev,
            }
        }
    })
    .await
    .unwrap();
    assert_eq!(
        ev,
        ClientEvent::Rumble {
            controller: 3,
            low_freq: 7,
            high_freq: 9
        }
    );

    // An IDR request travels on URGENT; pings on GENERIC keep flowing meanwhile.
    client.request_idr().unwrap();
    let found = timeout(WAIT, async {
        loop {
            let (ch, bytes) = parse_recv(&next_line(&mut lines).await);
            match host_side.decode_client(&bytes).unwrap() {
                ClientMessage::PeriodicPing => assert_eq!(ch, 0),
                ClientMessage::IdrRequest => return ch,
                other => panic!("unexpected {other:?}"),
            }
        }
    })
    .await
    .unwrap();
    assert_eq!(found, channel::URGENT);

    timeout(WAIT, client.close()).await.unwrap();
    let disconnected = timeout(WAIT, async {
        loop {
            let line = next_line(&mut lines).await;
            if line == "DISCONNECTED" {
                return;
            }
            assert!(line.starts_with("RECV "), "{line}");
        }
    })
    .await;
    assert!(disconnected.is_ok());
    cleanup(child, exe).await;
}
