//! Client half of the control stream: a tokio driver over one ENet peer.
//!
//! [`ControlClient::connect`] performs the ENet connect (48 channels, connect data, 10 s), sends
//! Start A and Start B, then hands the ENet host to a background task that services it, sends the
//! periodic ping (or loss statistics for hosts below 7.1.415) and turns host messages into
//! [`ClientEvent`]s. The task ends on [`ControlClient::close`], when the handle is dropped, on a
//! host termination, or when the peer disconnects/times out.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusty_enet::{EventNoRef, Host, PeerID};
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use super::codec::{ControlCodec, IvStyle, Side};
use super::enet_io::{new_host, packet, readable_or_tick, TokioUdp};
use super::error::ControlError;
use super::ids::Generation;
use super::message::{ClientMessage, HdrMetadata, HostMessage};
use super::route::{InputRoute, Route, CHANNEL_COUNT};
use super::termination::{Termination, TerminationReason};
use crate::version::AppVersion;

/// Everything needed to open a control stream to one launched session.
#[derive(Clone)]
pub struct ControlConfig {
    /// ENet CONNECT data: `X-SS-Connect-Data` from the SETUP reply, else 0.
    pub connect_data: u32,
    /// The launch `rikey`.
    pub key: [u8; 16],
    /// IV style of the encrypted wrapper (`V2` when `encryptionEnabled` has bit 0x01).
    pub iv_style: IvStyle,
    /// The host's `appversion`.
    pub app_version: AppVersion,
    /// Time allowed for the ENet connect (moonlight: 10 s).
    pub connect_timeout: Duration,
    /// ENet peer timeout once connected, used as min = max with limit 2 (moonlight: 10 s).
    pub peer_timeout: Duration,
    /// How long [`ControlClient::close`] waits for the disconnect ack (moonlight: 2 s).
    pub linger: Duration,
    /// Local address to bind; `None` = the wildcard address of the host's family, port 0.
    pub bind: Option<SocketAddr>,
}

impl ControlConfig {
    /// moonlight-common-c's timings for a stream with `key` to a host with `app_version`.
    pub fn new(
        connect_data: u32,
        key: [u8; 16],
        iv_style: IvStyle,
        app_version: AppVersion,
    ) -> Self {
        Self {
            connect_data,
            key,
            iv_style,
            app_version,
            connect_timeout: Duration::from_secs(10),
            peer_timeout: Duration::from_secs(10),
            linger: Duration::from_secs(2),
            bind: None,
        }
    }
}

impl std::fmt::Debug for ControlConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ControlConfig")
            .field("connect_data", &self.connect_data)
            .field("key", &"<redacted>")
            .field("iv_style", &self.iv_style)
            .field("app_version", &self.app_version)
            .field("connect_timeout", &self.connect_timeout)
            .field("peer_timeout", &self.peer_timeout)
            .field("linger", &self.linger)
            .field("bind", &self.bind)
            .finish()
    }
}

/// Why the control stream ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DisconnectReason {
    /// The host disconnected the ENet peer, or it timed out (ENet reports both the same way).
    Peer {
        /// ENet disconnect data.
        data: u32,
    },
    /// The host sent a termination message (already reported as [`ClientEvent::Termination`]).
    Terminated,
    /// We closed it ([`ControlClient::close`]).
    Closed,
    /// The socket failed.
    Error(String),
}

/// What the control stream reports to the client application. The last event is always
/// [`ClientEvent::Disconnected`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientEvent {
    /// The ENet connection is up and Start A/B were sent.
    Connected,
    /// The host ended the stream; `reason` is classified with whether a frame was seen.
    Termination {
        /// Raw code and form.
        termination: Termination,
        /// Meaning.
        reason: TerminationReason,
    },
    /// Controller rumble.
    Rumble {
        /// Controller.
        controller: u16,
        /// Low-frequency motor.
        low_freq: u16,
        /// High-frequency motor.
        high_freq: u16,
    },
    /// HDR mode change.
    Hdr {
        /// Enabled.
        enabled: bool,
        /// Sunshine metadata.
        metadata: Option<HdrMetadata>,
    },
    /// Any other host message (triggers, motion, LED, unknown types).
    Message(HostMessage),
    /// The stream is over.
    Disconnected {
        /// Why.
        reason: DisconnectReason,
    },
}

enum Command {
    Send(ClientMessage, Route),
    Close(oneshot::Sender<()>),
}

/// Frame bookkeeping shared with the driver: RFI-as-IDR ranges, loss stats and the
/// graceful/early classification of a termination need it.
#[derive(Debug, Default)]
struct Frames {
    last_seen: AtomicU32,
    last_good: AtomicU32,
    /// ENet's smoothed round-trip time to the host in ms (0 until the driver has serviced once).
    /// moonlight-common-c reports the same ENet figure as the stream's RTT.
    rtt_ms: AtomicU32,
}

/// Handle on a running client control stream. Dropping it stops the driver (without the graceful
/// linger); prefer [`ControlClient::close`].
#[derive(Debug)]
pub struct ControlClient {
    cmd_tx: mpsc::UnboundedSender<Command>,
    frames: Arc<Frames>,
    version: AppVersion,
    local_addr: SocketAddr,
    closed: Mutex<bool>,
}

impl ControlClient {
    /// Connects to the host's control port and starts the stream.
    ///
    /// Returns the handle and the event receiver (first event: [`ClientEvent::Connected`]).
    pub async fn connect(
        host_addr: SocketAddr,
        config: ControlConfig,
    ) -> Result<(ControlClient, mpsc::UnboundedReceiver<ClientEvent>), ControlError> {
        let generation = Generation::of(config.app_version);
        if !generation.uses_enet() {
            return Err(ControlError::Unsupported {
                what: "TCP control stream",
                generation,
            });
        }
        let bind = config.bind.unwrap_or(match host_addr.ip() {
            IpAddr::V4(_) => SocketAddr::new(Ipv4Addr::UNSPECIFIED.into(), 0),
            IpAddr::V6(_) => SocketAddr::new(Ipv6Addr::UNSPECIFIED.into(), 0),
        });
        let (mut host, sock) = new_host(bind, 1).await?;
        let local_addr = sock.local_addr()?;
        let peer = host
            .connect(host_addr, CHANNEL_COUNT, config.connect_data)
            .map_err(|e| ControlError::Enet(e.to_string()))?
            .id();
        wait_connected(&mut host, &sock, peer, config.connect_timeout).await?;
        let timeout_ms = u32::try_from(config.peer_timeout.as_millis()).unwrap_or(u32::MAX);
        host.peer_mut(peer).set_timeout(2, timeout_ms, timeout_ms);
        host.flush();

        let (cmd_tx, cmd_rx) = mpsc::unbounded_channel();
        let (events_tx, events_rx) = mpsc::unbounded_channel();
        let frames = Arc::new(Frames::default());
        let mut driver = Driver {
            host,
            sock,
            peer,
            codec: ControlCodec::new(
                &config.key,
                config.iv_style,
                Side::Client,
                config.app_version,
            ),
            events: events_tx,
            frames: frames.clone(),
            linger: config.linger,
            cmd_rx,
        };
        let _ = driver.events.send(ClientEvent::Connected);
        driver.send(
            &ClientMessage::StartA,
            Route::for_message(&ClientMessage::StartA, config.app_version),
        );
        driver.send(
            &ClientMessage::StartB,
            Route::for_message(&ClientMessage::StartB, config.app_version),
        );
        driver.host.flush();
        tokio::spawn(driver.run());
        let client = ControlClient {
            cmd_tx,
            frames,
            version: config.app_version,
            local_addr,
            closed: Mutex::new(false),
        };
        Ok((client, events_rx))
    }

    /// The local UDP address of the control socket.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Records that frame `frame_index` was seen (drives RFI-as-IDR and graceful/early termination).
    pub fn note_frame_seen(&self, frame_index: u32) {
        self.frames.last_seen.store(frame_index, Ordering::Relaxed);
    }

    /// The control stream's round-trip time to the host (ENet's smoothed estimate), once known.
    pub fn rtt(&self) -> Option<Duration> {
        match self.frames.rtt_ms.load(Ordering::Relaxed) {
            0 => None,
            ms => Some(Duration::from_millis(u64::from(ms))),
        }
    }

    /// Records the last completely received frame (reported in loss statistics).
    pub fn note_frame_complete(&self, frame_index: u32) {
        self.frames.last_good.store(frame_index, Ordering::Relaxed);
    }

    /// Asks for an IDR frame: the IDR request message where the host has one, else RFI-as-IDR.
    pub fn request_idr(&self) -> Result<(), ControlError> {
        let last_seen = self.frames.last_seen.load(Ordering::Relaxed);
        self.send(ClientMessage::idr_request_for(self.version, last_seen))
    }

    /// Invalidates reference frames `first..=last`.
    pub fn invalidate_refs(&self, first: u32, last: u32) -> Result<(), ControlError> {
        self.send(ClientMessage::Rfi { first, last })
    }

    /// Sends one input packet (as produced by the input module) along the input module's route.
    pub fn send_input(&self, bytes: Vec<u8>, route: InputRoute) -> Result<(), ControlError> {
        let route = Route::for_input(route, self.version);
        self.cmd(Command::Send(ClientMessage::Input(bytes), route))
    }

    /// Sends any client message along its standard route.
    pub fn send(&self, msg: ClientMessage) -> Result<(), ControlError> {
        let route = Route::for_message(&msg, self.version);
        self.cmd(Command::Send(msg, route))
    }

    fn cmd(&self, c: Command) -> Result<(), ControlError> {
        self.cmd_tx.send(c).map_err(|_| ControlError::Closed)
    }

    /// Graceful disconnect: waits up to the linger time for the host's ack, then stops the driver.
    /// Returns at once if the stream already ended.
    pub async fn close(&self) {
        {
            let mut closed = self.closed.lock().unwrap_or_else(|e| e.into_inner());
            if *closed {
                return;
            }
            *closed = true;
        }
        let (tx, rx) = oneshot::channel();
        if self.cmd_tx.send(Command::Close(tx)).is_ok() {
            let _ = rx.await;
        }
    }
}

/// Services `host` until `peer` is connected, refused, or `timeout` passes.
async fn wait_connected(
    host: &mut Host<TokioUdp>,
    sock: &UdpSocket,
    peer: PeerID,
    timeout: Duration,
) -> Result<(), ControlError> {
    let deadline = Instant::now() + timeout;
    loop {
        while let Some(ev) = host.service()? {
            match ev.no_ref() {
                EventNoRef::Connect { peer: p, .. } if p == peer => return Ok(()),
                EventNoRef::Disconnect { peer: p, .. } if p == peer => {
                    return Err(ControlError::ConnectTimeout)
                }
                _ => {}
            }
        }
        if Instant::now() >= deadline {
            host.peer_mut(peer).reset();
            return Err(ControlError::ConnectTimeout);
        }
        readable_or_tick(sock).await;
    }
}

struct Driver {
    host: Host<TokioUdp>,
    sock: Arc<UdpSocket>,
    peer: PeerID,
    codec: ControlCodec,
    events: mpsc::UnboundedSender<ClientEvent>,
    frames: Arc<Frames>,
    linger: Duration,
    cmd_rx: mpsc::UnboundedReceiver<Command>,
}

/// Periodic ping interval (>= 7.1.415) and loss-statistics interval (older hosts).
const PING_INTERVAL: Duration = Duration::from_millis(100);
const LOSS_STATS_INTERVAL: Duration = Duration::from_millis(50);

impl Driver {
    fn send(&mut self, msg: &ClientMessage, route: Route) {
        match self.codec.encode_client(msg) {
            Ok(bytes) => {
                let peer = self.host.peer_mut(self.peer);
                let route = route.fit_channels(peer.channel_count());
                if let Err(e) = peer.send(route.channel, &packet(bytes, route)) {
                    tracing::debug!("control send failed: {e}");
                }
            }
            Err(e) => tracing::debug!("control message not encodable: {e}"),
        }
    }

    fn periodic_message(&self) -> (ClientMessage, Duration) {
        if self.codec.version().has_periodic_ping() {
            (ClientMessage::PeriodicPing, PING_INTERVAL)
        } else {
            let last_good_frame = u64::from(self.frames.last_good.load(Ordering::Relaxed));
            (
                ClientMessage::LossStats {
                    lost_packets: 0,
                    last_good_frame,
                },
                LOSS_STATS_INTERVAL,
            )
        }
    }

    /// Services ENet; `Some(reason)` when the stream has ended.
    fn service(&mut self) -> Option<DisconnectReason> {
        loop {
            let ev = match self.host.service() {
                Ok(Some(ev)) => ev.no_ref(),
                Ok(None) => {
                    let rtt = self.host.peer_mut(self.peer).round_trip_time();
                    let ms = u32::try_from(rtt.as_millis()).unwrap_or(u32::MAX).max(1);
                    self.frames.rtt_ms.store(ms, Ordering::Relaxed);
                    return None;
                }
                Err(e) => {
                    tracing::warn!("control socket error: {e}");
                    return Some(DisconnectReason::Error(e.to_string()));
                }
            };
            match ev {
                EventNoRef::Receive { peer, packet, .. } if peer == self.peer => {
                    if let Some(reason) = self.on_packet(packet.data()) {
                        return Some(reason);
                    }
                }
                EventNoRef::Disconnect { peer, data } if peer == self.peer => {
                    return Some(DisconnectReason::Peer { data })
                }
                _ => {}
            }
        }
    }

    fn on_packet(&mut self, data: &[u8]) -> Option<DisconnectReason> {
        let msg = match self.codec.decode_host(data) {
            Ok(m) => m,
            Err(e) => {
                tracing::debug!("dropping control packet: {e}");
                return None;
            }
        };
        let event = match msg {
            HostMessage::Termination(termination) => {
                let saw_frame = self.frames.last_seen.load(Ordering::Relaxed) != 0;
                let reason = termination.reason(saw_frame);
                let _ = self.events.send(ClientEvent::Termination {
                    termination,
                    reason,
                });
                // Like moonlight: end at once, without waiting for a disconnect ack.
                self.host.peer_mut(self.peer).disconnect_now(0);
                return Some(DisconnectReason::Terminated);
            }
            HostMessage::Rumble {
                controller,
                low_freq,
                high_freq,
            } => ClientEvent::Rumble {
                controller,
                low_freq,
                high_freq,
            },
            HostMessage::HdrMode { enabled, metadata } => ClientEvent::Hdr { enabled, metadata },
            other => ClientEvent::Message(other),
        };
        let _ = self.events.send(event);
        None
    }

    async fn run(mut self) {
        let (_, interval) = self.periodic_message();
        let mut next_periodic = Instant::now();
        let reason = loop {
            if let Some(reason) = self.service() {
                break reason;
            }
            if Instant::now() >= next_periodic {
                let (msg, _) = self.periodic_message();
                let route = Route::for_message(&msg, self.codec.version());
                self.send(&msg, route);
                next_periodic = Instant::now() + interval;
                self.host.flush();
            }
            tokio::select! {
                cmd = self.cmd_rx.recv() => match cmd {
                    Some(Command::Send(msg, route)) => {
                        self.send(&msg, route);
                        self.host.flush();
                    }
                    Some(Command::Close(done)) => {
                        let reason = self.graceful_close().await;
                        let _ = self.events.send(ClientEvent::Disconnected { reason });
                        let _ = done.send(());
                        return;
                    }
                    None => {
                        // Owner dropped: tell the host and stop.
                        self.host.peer_mut(self.peer).disconnect_now(0);
                        self.host.flush();
                        break DisconnectReason::Closed;
                    }
                },
                _ = readable_or_tick(&self.sock) => {}
            }
        };
        let _ = self.events.send(ClientEvent::Disconnected { reason });
    }

    async fn graceful_close(&mut self) -> DisconnectReason {
        self.host.peer_mut(self.peer).disconnect_later(0);
        let deadline = Instant::now() + self.linger;
        while Instant::now() < deadline {
            match self.host.service() {
                Ok(Some(ev)) => {
                    if let EventNoRef::Disconnect { peer, .. } = ev.no_ref() {
                        if peer == self.peer {
                            return DisconnectReason::Closed;
                        }
                    }
                }
                Ok(None) => readable_or_tick(&self.sock).await,
                Err(_) => break,
            }
        }
        self.host.peer_mut(self.peer).reset();
        DisconnectReason::Closed
    }
}
