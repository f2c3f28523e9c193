//! Host AudioSender → client AudioReceiver over 127.0.0.1 with injected loss.

use std::time::Duration;

use gamestream::audio::{
    AudioDepacketizerConfig, AudioEncryption, AudioEvent, AudioPacketizerConfig, AudioReceiver,
    AudioReceiverConfig, AudioSender, AudioSenderConfig, LossInjection,
};
use gamestream::ping::PingMatcher;
use tokio::sync::mpsc;

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

async fn setup(
    loss: LossInjection,
    ss_ping: bool,
) -> (AudioSender, AudioReceiver, mpsc::Receiver<AudioEvent>) {
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
    let mut cfg = AudioReceiverConfig::new(
        sender.local_addr(),
        ss_ping.then_some(PAYLOAD),
        AudioDepacketizerConfig::new(5, Some(encryption())),
    );
    cfg.bind = Some("127.0.0.1:0".parse().unwrap());
    let (receiver, events) = AudioReceiver::start(cfg).await.unwrap();
    let client = sender
        .wait_for_client(Duration::from_secs(5))
        .await
        .expect("ping arrives");
    assert_eq!(client, receiver.local_addr());
    (sender, receiver, events)
}

async fn send_and_collect(
    sender: &AudioSender,
    events: &mut mpsc::Receiver<AudioEvent>,
    n: usize,
    expect: usize,
) -> Vec<AudioEvent> {
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
            AudioEvent::Packet {
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
            AudioEvent::Lost { sequence } => {
                assert!(
                    [16, 17, 18].contains(sequence),
                    "unexpected loss {sequence}"
                );
            }
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
            AudioEvent::Packet {
                sequence, opus: o, ..
            } => {
                assert_eq!(o, &opus(usize::from(*sequence)));
                *sequence
            }
            AudioEvent::Lost { sequence } => *sequence,
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
