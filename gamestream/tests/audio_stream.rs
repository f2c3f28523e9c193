//! Host AudioSender (the host's media driver) → a client's [`ClientCore`] over 127.0.0.1 with
//! injected loss: the client core pings the audio port from its audio socket and depacketizes
//! what comes back, as the client's stream driver does.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use gamestream::audio::{
    AudioDepacketizerConfig, AudioEncryption, AudioPacketizerConfig, AudioSender,
    AudioSenderConfig, AudioStats, LossInjection,
};
use gamestream::client::{ClientCore, SessionEvent, StreamParams, StreamSocket};
use gamestream::control::{ControlConfig, IvStyle};
use gamestream::ping::{PingMatcher, PING_INTERVAL};
use gamestream::video::{DepacketizerConfig, VideoCodec};
use gamestream::AppVersion;
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

const PAYLOAD: [u8; 16] = *b"0123456789ABCDEF";

fn encryption() -> AudioEncryption {
    AudioEncryption::new(core::array::from_fn(|i| (i * 7) as u8), 0x7fff_fff0)
}

fn opus(k: usize) -> Vec<u8> {
    // Constant size like CBR Opus.
    let mut p = vec![0xfc; 40];
    p[..8].copy_from_slice(&(k as u64).to_be_bytes());
    p
}

/// The client's audio path: a [`ClientCore`] on one audio socket. Its video pings and ENet
/// connect go nowhere (no such host ports here); its audio events come out on a channel.
struct AudioClient {
    local_addr: SocketAddr,
    stats: Arc<Mutex<AudioStats>>,
    task: JoinHandle<()>,
}

impl AudioClient {
    async fn start(
        host: SocketAddr,
        ping_payload: Option<[u8; 16]>,
        depacketizer: AudioDepacketizerConfig,
    ) -> (Self, mpsc::UnboundedReceiver<SessionEvent>) {
        let socket = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
        let local_addr = socket.local_addr().unwrap();
        let version = AppVersion::SUNSHINE;
        let core = ClientCore::new(
            StreamParams {
                host_ip: host.ip(),
                video_port: 9,
                audio_port: host.port(),
                control_port: 9,
                video_ping_payload: None,
                audio_ping_payload: ping_payload,
                ping_interval: PING_INTERVAL,
                video: DepacketizerConfig {
                    packet_size: 1024,
                    host_version: version,
                    codec: VideoCodec::H264,
                    key: None,
                },
                audio: depacketizer,
                control: ControlConfig::new(0, [0; 16], IvStyle::V2, version),
                ri_key_id: 0,
                live_bitrate: false,
                seed: Some(1),
            },
            Instant::now(),
        )
        .unwrap();
        let stats = Arc::new(Mutex::new(AudioStats::default()));
        let (tx, events) = mpsc::unbounded_channel();
        let task = tokio::spawn(drive(core, socket, Arc::clone(&stats), tx));
        let client = Self {
            local_addr,
            stats,
            task,
        };
        (client, events)
    }

    fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    fn stats(&self) -> AudioStats {
        *self.stats.lock().unwrap()
    }

    async fn close(self) {
        self.task.abort();
        let _ = self.task.await;
    }
}

/// The client core's loop, for its audio socket only.
async fn drive(
    mut core: ClientCore,
    socket: UdpSocket,
    stats: Arc<Mutex<AudioStats>>,
    events: mpsc::UnboundedSender<SessionEvent>,
) {
    let mut buf = vec![0u8; 2048];
    loop {
        while let Some(t) = core.poll_transmit() {
            if t.socket == StreamSocket::Audio {
                socket.send_to(&t.payload, t.to).await.unwrap();
            }
        }
        while let Some(event) = core.poll_event() {
            if matches!(
                event,
                SessionEvent::Audio { .. } | SessionEvent::AudioLost { .. }
            ) {
                let _ = events.send(event);
            }
        }
        *stats.lock().unwrap() = core.stats().audio;
        let Some(at) = core.poll_timeout() else {
            return;
        };
        tokio::select! {
            () = tokio::time::sleep_until(at.into()) => core.handle_timeout(Instant::now()),
            received = socket.recv_from(&mut buf) => {
                let (n, from) = received.unwrap();
                core.handle_input(Instant::now(), StreamSocket::Audio, from, &buf[..n]);
            }
        }
    }
}

async fn setup(
    loss: LossInjection,
    ss_ping: bool,
) -> (
    AudioSender,
    AudioClient,
    mpsc::UnboundedReceiver<SessionEvent>,
) {
    let sender = AudioSender::bind(AudioSenderConfig {
        bind: "127.0.0.1:0".parse().unwrap(),
        packetizer: AudioPacketizerConfig {
            packet_duration_ms: 5,
            encryption: Some(encryption()),
        },
        pings: PingMatcher {
            payload: ss_ping.then_some(PAYLOAD),
            accept_legacy: !ss_ping,
            any_datagram_is_ping: false,
        },
        expected_client_ip: Some("127.0.0.1".parse().unwrap()),
        loss,
    })
    .await
    .unwrap();
    let (receiver, events) = AudioClient::start(
        sender.local_addr(),
        ss_ping.then_some(PAYLOAD),
        AudioDepacketizerConfig::new(5, Some(encryption())),
    )
    .await;
    let client = sender
        .wait_for_client(Duration::from_secs(5))
        .await
        .expect("ping arrives");
    assert_eq!(client, receiver.local_addr());
    (sender, receiver, events)
}

async fn send_and_collect(
    sender: &AudioSender,
    events: &mut mpsc::UnboundedReceiver<SessionEvent>,
    n: usize,
    expect: usize,
) -> Vec<SessionEvent> {
    for k in 0..n {
        assert!(sender.send_opus(&opus(k)).await.unwrap());
        if k % 8 == 7 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
    let mut out = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while out.len() < expect {
        match tokio::time::timeout_at(deadline, events.recv()).await {
            Ok(Some(ev)) => out.push(ev),
            _ => break,
        }
    }
    out
}

#[tokio::test]
async fn fec_recovers_single_losses_and_plc_reports_the_rest() {
    // Block 0: one loss (recovered). Block 2: two losses (RS(4,2) still recovers). Block 4: three
    // losses (unrecoverable → Lost).
    let loss = LossInjection {
        probability: 0.0,
        drop_data_sequences: vec![1, 9, 10, 16, 17, 18],
    };
    let (sender, receiver, mut events) = setup(loss, true).await;
    let got = send_and_collect(&sender, &mut events, 40, 40).await;
    assert_eq!(got.len(), 40, "{got:?}");
    for (k, ev) in got.iter().enumerate() {
        match ev {
            SessionEvent::Audio {
                sequence,
                timestamp,
                opus: o,
                recovered,
            } => {
                assert_eq!(usize::from(*sequence), k);
                assert_eq!(*timestamp as usize, k * 5);
                assert_eq!(o, &opus(k));
                assert_eq!(*recovered, [1, 9, 10].contains(&k), "seq {k}");
            }
            SessionEvent::AudioLost { sequence } => {
                assert!(
                    [16, 17, 18].contains(sequence),
                    "unexpected loss {sequence}"
                );
            }
            other => panic!("not an audio event: {other:?}"),
        }
    }
    let stats = receiver.stats();
    assert_eq!((stats.recovered, stats.lost), (3, 3));
    receiver.close().await;
    sender.close().await;
}

#[tokio::test]
async fn random_loss_keeps_order_and_reports_gaps() {
    let loss = LossInjection {
        probability: 0.05,
        drop_data_sequences: vec![],
    };
    let (sender, receiver, mut events) = setup(loss, false).await;
    // The last few packets may stay pending in the reorder window; expect at least 180 events.
    let got = send_and_collect(&sender, &mut events, 200, 180).await;
    assert!(got.len() >= 180, "only {} events", got.len());
    let seqs: Vec<u16> = got
        .iter()
        .map(|e| match e {
            SessionEvent::Audio {
                sequence, opus: o, ..
            } => {
                assert_eq!(o, &opus(usize::from(*sequence)));
                *sequence
            }
            SessionEvent::AudioLost { sequence } => *sequence,
            other => panic!("not an audio event: {other:?}"),
        })
        .collect();
    for w in seqs.windows(2) {
        assert_eq!(w[1], w[0] + 1, "events must be consecutive");
    }
    receiver.close().await;
    sender.close().await;
}

#[tokio::test]
async fn sender_sends_nothing_before_a_ping() {
    let sender = AudioSender::bind(AudioSenderConfig {
        bind: "127.0.0.1:0".parse().unwrap(),
        packetizer: AudioPacketizerConfig {
            packet_duration_ms: 5,
            encryption: None,
        },
        pings: PingMatcher {
            payload: Some(PAYLOAD),
            accept_legacy: false,
            any_datagram_is_ping: false,
        },
        expected_client_ip: None,
        loss: LossInjection::default(),
    })
    .await
    .unwrap();
    assert!(!sender.send_opus(b"x").await.unwrap());
    // A wrong ping does not bind the client.
    let sock = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    sock.send_to(b"PING", sender.local_addr()).await.unwrap();
    assert!(sender
        .wait_for_client(Duration::from_millis(200))
        .await
        .is_none());
    sock.send_to(
        &gamestream::ping::encode_ss_ping(&PAYLOAD, 1),
        sender.local_addr(),
    )
    .await
    .unwrap();
    assert_eq!(
        sender.wait_for_client(Duration::from_secs(5)).await,
        Some(sock.local_addr().unwrap())
    );
    assert!(sender.send_opus(b"x").await.unwrap());
    let mut buf = [0u8; 64];
    let n = tokio::time::timeout(Duration::from_secs(5), sock.recv(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        &buf[..n],
        &hex::decode("806100000000000000000000")
            .unwrap()
            .into_iter()
            .chain(*b"x")
            .collect::<Vec<_>>()[..]
    );
    sender.close().await;
}
