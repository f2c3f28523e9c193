//! Tokio drivers: they only move datagrams between a UDP socket and the sans-IO cores.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;

use super::depacketizer::{AudioDepacketizer, AudioDepacketizerConfig, AudioEvent, AudioStats};
use super::packetizer::{AudioPacketizer, AudioPacketizerConfig};
use super::rtp::MAX_PACKET_SIZE;
use super::AudioError;
use crate::host::{LossInjection, MediaOut};
use crate::ping::{PingMatcher, PingSender, PING_INTERVAL, SS_PING_PAYLOAD_LEN};

/// Settings of an [`AudioSender`].
#[derive(Debug, Clone)]
pub struct AudioSenderConfig {
    /// Local address to bind (port 0 = ephemeral; report [`AudioSender::local_addr`] in SETUP).
    pub bind: SocketAddr,
    /// Packetizer settings.
    pub packetizer: AudioPacketizerConfig,
    /// Which pings bind the client address.
    pub pings: PingMatcher,
    /// Accept pings only from this IP (the client that launched the session), if set.
    pub expected_client_ip: Option<IpAddr>,
    /// Deliberate loss, for tests.
    pub loss: LossInjection,
}

/// Host audio driver: waits for the client's ping, then sends packetized Opus to its address.
#[derive(Debug)]
pub struct AudioSender {
    out: MediaOut,
    local_addr: SocketAddr,
    packetizer: Mutex<AudioPacketizer>,
    client: watch::Receiver<Option<SocketAddr>>,
    ping_task: Option<JoinHandle<()>>,
}

impl AudioSender {
    /// Binds the socket and starts listening for pings.
    pub async fn bind(config: AudioSenderConfig) -> Result<Self, AudioError> {
        let socket = UdpSocket::bind(config.bind).await?;
        Self::with_socket(socket, config)
    }

    /// Uses an already bound socket (`config.bind` is ignored). A host binds its media ports when it
    /// answers `/launch`, before it knows the stream's settings, because SETUP must report them.
    pub fn with_socket(socket: UdpSocket, config: AudioSenderConfig) -> Result<Self, AudioError> {
        let socket = Arc::new(socket);
        let local_addr = socket.local_addr()?;
        let (tx, rx) = watch::channel(None);
        let task = tokio::spawn(listen_for_pings(
            socket.clone(),
            config.pings,
            config.expected_client_ip,
            tx,
        ));
        Ok(Self {
            out: MediaOut::new(socket, config.loss, false),
            local_addr,
            packetizer: Mutex::new(AudioPacketizer::new(config.packetizer)),
            client: rx,
            ping_task: Some(task),
        })
    }

    /// The bound address (the audio `server_port` to announce).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The client address learned from its first matching ping.
    pub fn client_addr(&self) -> Option<SocketAddr> {
        *self.client.borrow()
    }

    /// Waits up to `timeout` for the first matching ping (Wolf waits 4 s).
    pub async fn wait_for_client(&self, timeout: Duration) -> Option<SocketAddr> {
        let mut rx = self.client.clone();
        let result = tokio::time::timeout(timeout, rx.wait_for(Option::is_some)).await;
        match result {
            Ok(Ok(addr)) => *addr,
            _ => None,
        }
    }

    /// Packetizes and sends one Opus packet. Returns `false` (and consumes no sequence number) while
    /// no client has pinged yet, so the client's first datagram is sequence 0.
    pub async fn send_opus(&self, opus: &[u8]) -> Result<bool, AudioError> {
        let Some(client) = self.client_addr() else {
            return Ok(false);
        };
        let datagrams = match self.packetizer.lock() {
            Ok(mut p) => p.push(opus),
            Err(poisoned) => poisoned.into_inner().push(opus),
        };
        self.out
            .send_all(client, datagrams.iter().map(|d| &d[..]))
            .await?;
        Ok(true)
    }

    /// Test knob: live-adjustable drop/delay of this sender's datagrams.
    pub fn set_faults(&mut self, faults: Option<Arc<crate::host::MediaFaults>>) {
        self.out.set_faults(faults);
    }

    /// Stops the ping listener and closes the socket.
    pub async fn close(mut self) {
        if let Some(task) = self.ping_task.take() {
            task.abort();
            let _ = task.await;
        }
    }
}

impl Drop for AudioSender {
    fn drop(&mut self) {
        if let Some(task) = &self.ping_task {
            task.abort();
        }
    }
}

async fn listen_for_pings(
    socket: Arc<UdpSocket>,
    matcher: PingMatcher,
    expected_ip: Option<IpAddr>,
    client: watch::Sender<Option<SocketAddr>>,
) {
    let mut buf = [0u8; 256];
    loop {
        let (n, from) = match socket.recv_from(&mut buf).await {
            Ok(r) => r,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::ConnectionRefused
                ) =>
            {
                continue
            }
            Err(e) => {
                tracing::debug!("audio ping listener stopped: {e}");
                return;
            }
        };
        if expected_ip.is_some_and(|ip| ip != from.ip()) {
            continue;
        }
        if client.borrow().is_none() && matcher.matches(&buf[..n]) {
            tracing::debug!(%from, "audio client address learned from ping");
            client.send_replace(Some(from));
        }
    }
}

/// Settings of an [`AudioReceiver`].
#[derive(Debug, Clone)]
pub struct AudioReceiverConfig {
    /// The host's audio address (RTSP SETUP `server_port`).
    pub host: SocketAddr,
    /// Local bind address; `None` = unspecified address of the host's family, port 0.
    pub bind: Option<SocketAddr>,
    /// `X-SS-Ping-Payload` from the audio SETUP reply; `None` = legacy `PING`.
    pub ping_payload: Option<[u8; SS_PING_PAYLOAD_LEN]>,
    /// Ping period (500 ms like moonlight-common-c).
    pub ping_interval: Duration,
    /// Depacketizer settings.
    pub depacketizer: AudioDepacketizerConfig,
    /// Capacity of the event channel; events are dropped (not queued) when the consumer lags.
    pub channel_capacity: usize,
}

impl AudioReceiverConfig {
    /// Defaults: 500 ms pings, unspecified bind, 1024 queued events.
    pub fn new(
        host: SocketAddr,
        ping_payload: Option<[u8; SS_PING_PAYLOAD_LEN]>,
        depacketizer: AudioDepacketizerConfig,
    ) -> Self {
        Self {
            host,
            bind: None,
            ping_payload,
            ping_interval: PING_INTERVAL,
            depacketizer,
            channel_capacity: 1024,
        }
    }
}

/// Client audio driver: pings the host from the moment it starts and delivers [`AudioEvent`]s.
#[derive(Debug)]
pub struct AudioReceiver {
    local_addr: SocketAddr,
    stats: Arc<Mutex<AudioStats>>,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl AudioReceiver {
    /// Binds an ephemeral socket, starts pinging and receiving. Events arrive on the returned channel
    /// (in sequence order); it closes when the receiver stops.
    pub async fn start(
        config: AudioReceiverConfig,
    ) -> Result<(Self, mpsc::Receiver<AudioEvent>), AudioError> {
        let bind = config.bind.unwrap_or(match config.host {
            SocketAddr::V4(_) => SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0),
            SocketAddr::V6(_) => SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), 0),
        });
        let socket = UdpSocket::bind(bind).await?;
        let local_addr = socket.local_addr()?;
        let stats = Arc::new(Mutex::new(AudioStats::default()));
        let (tx, rx) = mpsc::channel(config.channel_capacity.max(1));
        let (shutdown_tx, shutdown_rx) = oneshot::channel();
        let task = tokio::spawn(receive_loop(socket, config, stats.clone(), tx, shutdown_rx));
        Ok((
            Self {
                local_addr,
                stats,
                shutdown: Some(shutdown_tx),
                task: Some(task),
            },
            rx,
        ))
    }

    /// The local socket address (the source of the pings).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Depacketizer counters.
    pub fn stats(&self) -> AudioStats {
        match self.stats.lock() {
            Ok(s) => *s,
            Err(poisoned) => *poisoned.into_inner(),
        }
    }

    /// Stops pinging and receiving, and waits for the task to end.
    pub async fn close(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for AudioReceiver {
    fn drop(&mut self) {
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}

async fn receive_loop(
    socket: UdpSocket,
    config: AudioReceiverConfig,
    stats: Arc<Mutex<AudioStats>>,
    events: mpsc::Sender<AudioEvent>,
    mut shutdown: oneshot::Receiver<()>,
) {
    let mut pinger = PingSender::new(config.ping_payload);
    let mut depacketizer = AudioDepacketizer::new(config.depacketizer.clone());
    let mut ticker = tokio::time::interval(config.ping_interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut buf = vec![0u8; MAX_PACKET_SIZE + 512];
    loop {
        tokio::select! {
            _ = &mut shutdown => return,
            _ = ticker.tick() => {
                if let Err(e) = socket.send_to(&pinger.next_ping(), config.host).await {
                    tracing::debug!("audio ping failed: {e}");
                }
            }
            received = socket.recv_from(&mut buf) => {
                let Ok((n, from)) = received else { continue };
                if from.ip() != config.host.ip() {
                    continue;
                }
                for event in depacketizer.push(&buf[..n]) {
                    if let Err(mpsc::error::TrySendError::Closed(_)) = events.try_send(event) {
                        return;
                    }
                }
                if let Ok(mut s) = stats.lock() {
                    *s = depacketizer.stats();
                }
            }
        }
    }
}
