//! The video sender over loopback: pings, frames byte-exact through a depacketizer, injected
//! loss answered with IDRs.

use super::*;
use crate::video::{DepacketizerConfig, FrameType, VideoCodec, VideoDepacketizer, VideoEvent};
use crate::AppVersion;
use std::net::Ipv4Addr;
use std::time::Instant;

const PAYLOAD: [u8; 16] = *b"0123456789ABCDEF";

fn sender_config(
    ping_payload: Option<[u8; 16]>,
    drop_probability: f64,
    key: Option<[u8; 16]>,
) -> VideoSenderConfig {
    VideoSenderConfig {
        bind: (Ipv4Addr::LOCALHOST, 0).into(),
        ping_payload,
        accept_legacy_ping: ping_payload.is_none(),
        packetizer: PacketizerConfig {
            packet_size: 1024,
            fec_percent: 50,
            key,
            ..Default::default()
        },
        drop_probability,
    }
}

/// The client end for these tests: a socket that pings the sender, and a depacketizer.
struct TestReceiver {
    socket: UdpSocket,
    depacketizer: VideoDepacketizer,
}

impl TestReceiver {
    async fn start(host: SocketAddr, ping: Option<[u8; 16]>, key: Option<[u8; 16]>) -> Self {
        let socket = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
        let mut pings = crate::ping::PingSender::new(ping);
        socket.send_to(&pings.next_ping(), host).await.unwrap();
        let depacketizer = VideoDepacketizer::new(DepacketizerConfig {
            packet_size: 1024,
            host_version: AppVersion::SUNSHINE,
            codec: VideoCodec::Av1,
            key,
        })
        .unwrap();
        Self {
            socket,
            depacketizer,
        }
    }

    /// The events of the datagrams that arrive before `deadline`, until `until` says stop.
    async fn events_until(
        &mut self,
        deadline: tokio::time::Instant,
        mut until: impl FnMut(&VideoEvent) -> bool,
    ) -> Vec<VideoEvent> {
        let mut events = Vec::new();
        let mut buf = [0u8; 2048];
        while let Ok(Ok((n, _))) =
            tokio::time::timeout_at(deadline, self.socket.recv_from(&mut buf)).await
        {
            for event in self.depacketizer.push(&buf[..n], Instant::now()) {
                let stop = until(&event);
                events.push(event);
                if stop {
                    return events;
                }
            }
        }
        events
    }
}

fn au(index: u32) -> Vec<u8> {
    (0..3000 + index * 997)
        .map(|i| (i.wrapping_mul(31) ^ index) as u8)
        .collect()
}

/// Streams `frames` frames; the host answers loss reports with an IDR. Returns delivered frames.
async fn stream(
    drop_probability: f64,
    key: Option<[u8; 16]>,
    ping: Option<[u8; 16]>,
    frames: u32,
) -> Vec<u32> {
    let mut sender = VideoSender::bind(sender_config(ping, drop_probability, key))
        .await
        .unwrap();
    let host = sender.local_addr().unwrap();
    let mut receiver = TestReceiver::start(host, ping, key).await;
    let client = sender
        .wait_for_client(Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(client, receiver.socket.local_addr().unwrap());
    let mut delivered = Vec::new();
    let mut need_idr = true;
    for index in 1..=frames {
        let frame_type = if need_idr || index % 10 == 0 {
            FrameType::Idr
        } else {
            FrameType::P
        };
        need_idr = false;
        let info = FrameInfo {
            frame_index: index,
            frame_type,
            rtp_timestamp: index * 1500,
            processing_latency: 0,
        };
        sender.send_frame(&au(index), info).await.unwrap();
        // Collect what arrived for this frame (bounded wait).
        let deadline = tokio::time::Instant::now() + Duration::from_millis(200);
        let events = receiver
            .events_until(
                deadline,
                |e| matches!(e, VideoEvent::Frame(f) if f.frame_index == index),
            )
            .await;
        for event in events {
            match event {
                VideoEvent::Frame(f) => {
                    assert_eq!(f.data, au(f.frame_index), "frame {} corrupt", f.frame_index);
                    delivered.push(f.frame_index);
                }
                VideoEvent::FrameLost { .. } | VideoEvent::RequestIdr => need_idr = true,
                VideoEvent::FecStatus(_) => {}
            }
        }
    }
    assert_eq!(
        receiver.depacketizer.stats().frames_ok,
        delivered.len() as u64
    );
    sender.close().await;
    delivered
}

#[tokio::test]
async fn frames_flow_over_loopback_with_ss_ping() {
    let delivered = stream(0.0, None, Some(PAYLOAD), 12).await;
    assert_eq!(delivered, (1..=12).collect::<Vec<_>>());
}

#[tokio::test]
async fn encrypted_frames_with_legacy_ping_and_injected_loss() {
    let delivered = stream(0.05, Some([9; 16]), None, 30).await;
    assert!(
        delivered.len() >= 15,
        "only {} frames delivered",
        delivered.len()
    );
}

#[tokio::test]
async fn wrong_ping_payload_is_ignored() {
    let mut sender = VideoSender::bind(sender_config(Some(PAYLOAD), 0.0, None))
        .await
        .unwrap();
    let host = sender.local_addr().unwrap();
    let _receiver = TestReceiver::start(host, Some(*b"FEDCBA9876543210"), None).await;
    assert!(sender
        .wait_for_client(Duration::from_millis(300))
        .await
        .is_err());
    let info = FrameInfo {
        frame_index: 1,
        frame_type: FrameType::Idr,
        rtp_timestamp: 0,
        processing_latency: 0,
    };
    assert!(matches!(
        sender.send_frame(b"x", info).await,
        Err(VideoError::NoClient)
    ));
    sender.close().await;
}
