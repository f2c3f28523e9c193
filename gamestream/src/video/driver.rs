//! The host's video sender: a thin tokio driver that moves the sans-IO packetizer's datagrams over
//! UDP, to the address learned from the client's ping (§1–2). The client's side is
//! [`crate::client::ClientCore`] with its one driver task.
//!
//! The ping formats are parsed privately here: 4-byte `PING`, or the 20-byte `SS_PING`
//! (16-byte payload from `X-SS-Ping-Payload` ‖ BE32 sequence starting at 1).

use super::batch::BatchSender;
use super::packetizer::{FrameInfo, PacketizerConfig, VideoPacketizer};
use super::VideoError;
use crate::host::{LossInjection, MediaOut};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::UdpSocket;
use tokio::sync::watch;
use tokio::task::JoinHandle;

const LEGACY_PING: &[u8; 4] = b"PING";
/// Socket buffer size asked for: a 4K keyframe arrives as a burst of several hundred datagrams,
/// far more than Linux's default ~200 KiB receive buffer holds.
const SOCKET_BUFFER_BYTES: usize = 4 << 20;

/// Best effort: the kernel may cap the value (net.core.rmem_max / wmem_max).
pub(crate) fn enlarge_buffers(socket: &UdpSocket) {
    let sock = socket2::SockRef::from(socket);
    if let Err(e) = sock.set_recv_buffer_size(SOCKET_BUFFER_BYTES) {
        tracing::debug!(error = %e, "video socket: SO_RCVBUF not set");
    }
    if let Err(e) = sock.set_send_buffer_size(SOCKET_BUFFER_BYTES) {
        tracing::debug!(error = %e, "video socket: SO_SNDBUF not set");
    }
}
const SS_PING_LEN: usize = 20;

/// Host-side settings.
#[derive(Debug, Clone)]
pub struct VideoSenderConfig {
    /// Where to bind the video port (port 0 = ephemeral).
    pub bind: SocketAddr,
    /// `X-SS-Ping-Payload` given to the client; when set, a datagram of 20+ bytes is a ping only if
    /// its first 16 bytes match. `None` accepts any datagram of 20+ bytes (as Wolf does).
    pub ping_payload: Option<[u8; 16]>,
    /// Accept legacy 4-byte pings (Sunshine refuses them when the client set `ML_FF_SESSION_ID_V1`).
    pub accept_legacy_ping: bool,
    /// Packetizer settings.
    pub packetizer: PacketizerConfig,
    /// Test knob: probability (0..1) of silently dropping each datagram (applied by the host
    /// half's sending wrapper, `host::faults`).
    pub drop_probability: f64,
}

/// The host's video sender.
#[derive(Debug)]
pub struct VideoSender {
    out: MediaOut,
    packetizer: VideoPacketizer,
    client: watch::Receiver<Option<SocketAddr>>,
    ping_task: JoinHandle<()>,
    /// Segmented sends; `None` = one datagram per send (no platform support, or it failed once).
    batch: Option<BatchSender>,
}

impl VideoSender {
    /// Binds the socket and starts listening for the client's ping.
    pub async fn bind(config: VideoSenderConfig) -> Result<Self, VideoError> {
        let socket = UdpSocket::bind(config.bind).await?;
        Self::with_socket(socket, config)
    }

    /// Uses an already bound socket (`config.bind` is ignored). A host binds its media ports when it
    /// answers `/launch`, before it knows the stream's settings, because SETUP must report them.
    pub fn with_socket(socket: UdpSocket, config: VideoSenderConfig) -> Result<Self, VideoError> {
        let packetizer = VideoPacketizer::new(config.packetizer)?;
        enlarge_buffers(&socket);
        let batch = BatchSender::new(&socket);
        let socket = Arc::new(socket);
        let (tx, client) = watch::channel(None);
        let ping_task = tokio::spawn(listen_for_ping(
            Arc::clone(&socket),
            config.ping_payload,
            config.accept_legacy_ping,
            tx,
        ));
        let loss = LossInjection {
            probability: config.drop_probability,
            drop_data_sequences: Vec::new(),
        };
        Ok(Self {
            out: MediaOut::new(socket, loss, true),
            packetizer,
            client,
            ping_task,
            batch,
        })
    }

    /// The bound address (give its port to the client in RTSP SETUP).
    pub fn local_addr(&self) -> Result<SocketAddr, VideoError> {
        Ok(self.out.socket().local_addr()?)
    }

    /// The client's media address, once a valid ping arrived.
    pub fn client_addr(&self) -> Option<SocketAddr> {
        *self.client.borrow()
    }

    /// Waits up to `timeout` for the first valid ping (Wolf waits 4 s).
    pub async fn wait_for_client(&mut self, timeout: Duration) -> Result<SocketAddr, VideoError> {
        let wait = self.client.wait_for(Option::is_some);
        match tokio::time::timeout(timeout, wait).await {
            Ok(Ok(addr)) => (*addr).ok_or(VideoError::NoClient),
            _ => Err(VideoError::NoClient),
        }
    }

    /// Packetizes one access unit and sends its datagrams to the client; returns how many were
    /// sent. Fails with [`VideoError::NoClient`] before the first ping.
    pub async fn send_frame(&mut self, au: &[u8], info: FrameInfo) -> Result<usize, VideoError> {
        let client = self.client_addr().ok_or(VideoError::NoClient)?;
        let batch = self.packetizer.packetize(au, info)?;
        let mut skip = 0;
        if let Some(sender) = self.batch.as_ref().filter(|_| self.out.is_plain()) {
            let stride = batch.stride();
            match sender
                .send(self.out.socket(), batch.as_bytes(), stride, client)
                .await
            {
                Ok(()) => return Ok(batch.len()),
                // A stale ICMP "port unreachable": the client may be restarting; the control
                // stream, not the media socket, decides the session's fate.
                Err((_, e)) if e.kind() == std::io::ErrorKind::ConnectionRefused => return Ok(0),
                Err((done, e)) => {
                    // E.g. a NIC or path that refuses segmentation: single datagrams from now
                    // on, starting with what this frame has left.
                    tracing::debug!(error = %e, "segmented send refused; sending datagrams singly");
                    self.batch = None;
                    skip = done / stride;
                }
            }
        }
        let sent = self.out.send_all(client, batch.iter().skip(skip)).await?;
        Ok(skip + sent)
    }

    /// Test knob: live-adjustable drop/reorder/delay of this sender's datagrams.
    pub fn set_faults(&mut self, faults: Option<Arc<crate::host::MediaFaults>>) {
        self.out.set_faults(faults);
    }

    /// Stops the ping listener and closes the socket.
    pub async fn close(mut self) {
        self.ping_task.abort();
        let _ = (&mut self.ping_task).await;
    }
}

impl Drop for VideoSender {
    fn drop(&mut self) {
        self.ping_task.abort();
    }
}

/// Accepts the first valid ping and publishes its source address.
async fn listen_for_ping(
    socket: Arc<UdpSocket>,
    payload: Option<[u8; 16]>,
    accept_legacy: bool,
    client: watch::Sender<Option<SocketAddr>>,
) {
    let mut buf = [0u8; 64];
    loop {
        let Ok((len, from)) = socket.recv_from(&mut buf).await else {
            // ICMP errors surface as recv errors on some platforms; keep listening.
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        if client.borrow().is_some() {
            continue;
        }
        let ping = &buf[..len];
        let valid = if len == LEGACY_PING.len() {
            accept_legacy && ping == LEGACY_PING
        } else if len >= SS_PING_LEN {
            payload.is_none_or(|p| ping[..16] == p)
        } else {
            false
        };
        if valid {
            tracing::debug!(%from, "video ping: client address learned");
            let _ = client.send(Some(from));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::depacketizer::{
        DepacketizerConfig, VideoCodec, VideoDepacketizer, VideoEvent,
    };
    use super::super::wire::FrameType;
    use super::*;
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

    #[test]
    fn ping_vectors_8_7() {
        let mut ping = [0u8; SS_PING_LEN];
        ping[..16].copy_from_slice(b"0123456789ABCDEF");
        ping[16..].copy_from_slice(&1u32.to_be_bytes());
        assert_eq!(
            hex::encode(ping),
            "3031323334353637383941424344454600000001"
        );
        assert_eq!(hex::encode(LEGACY_PING), "50494e47");
    }
}
