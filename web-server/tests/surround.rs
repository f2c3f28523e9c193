//! Surround audio in WebSocket mode, end to end: a browser asks for 5.1 or 7.1 in its init, the
//! streamer negotiates it with the embedded demo host, and StreamInit carries the Opus layout that
//! a decoder needs. The test decodes the AudioFrames with that layout alone and checks that every
//! speaker plays its own pitch (the demo host's speaker test), so the channel order is right.

mod common;

use common::*;
use std::time::{Duration, Instant};

use demo_host::media::SPEAKER_PITCH;
use futures_util::StreamExt;
use opus_rs::multistream::{ChannelMappingTable, MultistreamDecoder};
use tokio::time::timeout;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use wire::browser::{Message, OpusLayout, StreamInit};

/// Audio to decode per case: 1.5 s of 5 ms packets.
const PACKETS: usize = 300;
/// Decoded samples skipped while the decoder settles.
const WARM_UP: usize = 4_800;

fn init_with_audio(session: &str, client: &str, channels: u32) -> String {
    let mut init: serde_json::Value =
        serde_json::from_str(&init_json(session, client, 640, 360, 30)).unwrap();
    init["audio_channels"] = channels.into();
    // The Opus layout is a moongate extension: protocol 2 (a Helix-protocol client gets the core
    // 13-byte StreamInit).
    init["protocol_version"] = 2.into();
    init.to_string()
}

/// Reads StreamInit, then `PACKETS` audio payloads.
async fn stream_init_and_audio(ws: &mut Ws) -> (StreamInit, Vec<Vec<u8>>) {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut init = None;
    let mut packets = Vec::with_capacity(PACKETS);
    while packets.len() < PACKETS {
        assert!(Instant::now() < deadline, "{} audio packets", packets.len());
        let msg = timeout(Duration::from_secs(10), ws.next())
            .await
            .expect("stream stalled")
            .expect("socket ended")
            .expect("socket error");
        match msg {
            WsMessage::Binary(b) => match Message::decode(&b).unwrap() {
                Message::StreamInit(si) => init = Some(si),
                Message::AudioFrame(a) => {
                    assert!(init.is_some(), "audio before StreamInit");
                    packets.push(a.data.to_vec());
                }
                _ => {}
            },
            WsMessage::Text(t) => assert!(!t.contains("\"error\""), "server error: {t}"),
            WsMessage::Close(c) => panic!("closed: {c:?}"),
            _ => {}
        }
    }
    (init.expect("StreamInit"), packets)
}

/// Decodes with the layout StreamInit gave; one sample vector per speaker.
fn decode(layout: &OpusLayout, packets: &[Vec<u8>]) -> Vec<Vec<f32>> {
    let channels = usize::from(layout.channels());
    let table = ChannelMappingTable {
        channels: layout.channels(),
        stream_count: layout.streams(),
        coupled_count: layout.coupled_streams(),
        mapping: layout.mapping().to_vec(),
    };
    let mut decoder = MultistreamDecoder::new(48_000, table).unwrap();
    let mut out = vec![0f32; 2880 * channels];
    let mut pcm = vec![Vec::new(); channels];
    for p in packets {
        let n = decoder.decode(p, 2880, &mut out).unwrap();
        for frame in out[..n * channels].chunks_exact(channels) {
            for (speaker, &s) in pcm.iter_mut().zip(frame) {
                speaker.push(s);
            }
        }
    }
    pcm
}

/// The pitch of a steady tone, from its zero crossings.
fn pitch_hz(samples: &[f32]) -> f64 {
    let crossings = samples
        .windows(2)
        .filter(|w| (w[0] < 0.0) != (w[1] < 0.0))
        .count();
    crossings as f64 / 2.0 / (samples.len() as f64 / 48_000.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn surround_reaches_the_browser_with_its_layout_and_every_speaker_in_place() {
    let _serial = SERIAL.lock().await;
    let gw = gateway().await;
    for channels in [2u8, 6, 8] {
        let session = format!("surround-{channels}");
        let init = init_with_audio(&session, "surround-client", channels.into());
        let mut ws = connect_init(&gw, &session, init).await;
        let (si, packets) = stream_init_and_audio(&mut ws).await;
        assert_eq!((si.audio_channels, si.sample_rate), (channels, 48_000));
        let layout = si.opus.expect("StreamInit carries the Opus layout");
        assert_eq!(layout.channels(), channels);
        println!(
            "{channels} ch: {} streams, {} coupled, mapping {:?}",
            layout.streams(),
            layout.coupled_streams(),
            layout.mapping()
        );

        let pcm = decode(&layout, &packets);
        let base = pitch_hz(&pcm[0][WARM_UP..]);
        assert!(base > 100.0, "front left is silent or wrong: {base:.0} Hz");
        for (speaker, samples) in pcm.iter().enumerate() {
            let got = pitch_hz(&samples[WARM_UP..]);
            let want = base * SPEAKER_PITCH[speaker];
            println!("  speaker {speaker}: {got:.0} Hz (want {want:.0})");
            assert!(
                (got - want).abs() <= want * 0.03 + 3.0,
                "{channels} ch, speaker {speaker}: {got:.0} Hz, want {want:.0}"
            );
        }
        ws.close(None).await.unwrap();
        assert!(
            gw.registry_empty(Duration::from_secs(10)).await,
            "{channels} ch: the session outlived its socket"
        );
    }
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_helix_protocol_client_gets_the_core_13_byte_stream_init() {
    let _serial = SERIAL.lock().await;
    let gw = gateway().await;
    let mut ws = connect(&gw, "surround-helix", "helix-client", 640, 360, 30).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    let raw = loop {
        assert!(Instant::now() < deadline, "no StreamInit");
        let msg = timeout(Duration::from_secs(10), ws.next())
            .await
            .expect("stream stalled")
            .expect("socket ended")
            .expect("socket error");
        if let WsMessage::Binary(b) = msg {
            if b.first() == Some(&0x30) {
                break b;
            }
        }
    };
    assert_eq!(raw.len(), wire::browser::STREAM_INIT_LEN, "{raw:02x?}");
    close_until_registry_empty(&gw, &mut ws).await;
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_audio_channel_count_no_host_offers_is_refused_with_1008() {
    let _serial = SERIAL.lock().await;
    let gw = gateway().await;
    let init = init_with_audio("surround-bad", "surround-client", 4);
    let mut ws = connect_init(&gw, "surround-bad", init).await;
    let (close, _) = read_until_close(&mut ws, Duration::from_secs(10)).await;
    let (code, reason) = close.expect("a close frame");
    assert_eq!(code, 1008);
    assert!(reason.contains("audio_channels"), "reason: {reason}");
    gw.stop().await;
}
