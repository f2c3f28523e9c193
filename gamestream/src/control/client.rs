//! Client half of the control stream: a thin tokio driver over [`ControlCore`].
//!
//! [`ControlClient::connect`] binds the socket and drives the core until the ENet connect is up
//! (48 channels, connect data, 10 s; Start A and Start B follow), then hands it to a background
//! task that feeds it datagrams and timeouts and turns its events into [`ClientEvent`]s. The task
//! ends on [`ControlClient::close`], when the handle is dropped, on a host termination, or when the
//! peer disconnects or times out. A whole stream uses [`crate::client::ClientCore`] instead, which
//! holds this core next to the media receivers in one task.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rusty_enet::MTU_MAX;
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot};

use super::client_core::ControlCore;
use super::codec::IvStyle;
use super::error::ControlError;
use super::message::{ClientMessage, HdrMetadata, HostMessage};
use super::route::InputRoute;
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
    Send(ClientMessage),
    RequestIdr,
    Input(Vec<u8>, InputRoute),
    Close(oneshot::Sender<()>),
}

/// Frame bookkeeping written by the owner and read by the driver before each step (RFI-as-IDR
/// ranges, loss statistics, early-termination classification), and the RTT the driver last saw.
#[derive(Debug, Default)]
struct Frames {
    last_seen: AtomicU32,
    last_good: AtomicU32,
    /// ENet's smoothed round-trip time to the host in ms (0 until measured).
    rtt_ms: AtomicU32,
}

/// Handle on a running client control stream. Dropping it stops the driver (without the graceful
/// linger); prefer [`ControlClient::close`].
#[derive(Debug)]
pub struct ControlClient {
    cmd_tx: mpsc::UnboundedSender<Command>,
    frames: Arc<Frames>,
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
        let core = ControlCore::new(host_addr, &config, Instant::now(), None)?;
        let bind = config.bind.unwrap_or(match host_addr.ip() {
            IpAddr::V4(_) => SocketAddr::new(Ipv4Addr::UNSPECIFIED.into(), 0),
            IpAddr::V6(_) => SocketAddr::new(Ipv6Addr::UNSPECIFIED.into(), 0),
        });
        let sock = UdpSocket::bind(bind).await?;
        let local_addr = sock.local_addr()?;
        let (cmd_tx, cmd_rx) = mpsc::unbounded_channel();
        let (events_tx, events_rx) = mpsc::unbounded_channel();
        let frames = Arc::new(Frames::default());
        let mut driver = Driver {
            core,
            sock,
            events: events_tx,
            frames: frames.clone(),
            cmd_rx,
        };
        driver.flush().await;
        while !driver.core.is_connected() {
            if driver.core.is_ended() {
                driver.flush().await;
                return Err(ControlError::ConnectTimeout);
            }
            driver.step(false).await;
        }
        tokio::spawn(driver.run());
        let client = ControlClient {
            cmd_tx,
            frames,
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
        self.cmd(Command::RequestIdr)
    }

    /// Invalidates reference frames `first..=last`.
    pub fn invalidate_refs(&self, first: u32, last: u32) -> Result<(), ControlError> {
        self.cmd(Command::Send(ClientMessage::Rfi { first, last }))
    }

    /// Sends one input packet (as produced by the input module) along the input module's route.
    pub fn send_input(&self, bytes: Vec<u8>, route: InputRoute) -> Result<(), ControlError> {
        self.cmd(Command::Input(bytes, route))
    }

    /// Sends any client message along its standard route.
    pub fn send(&self, msg: ClientMessage) -> Result<(), ControlError> {
        self.cmd(Command::Send(msg))
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

/// The tokio side of a [`ControlCore`]: one socket, one timer, the owner's commands.
struct Driver {
    core: ControlCore,
    sock: UdpSocket,
    events: mpsc::UnboundedSender<ClientEvent>,
    frames: Arc<Frames>,
    cmd_rx: mpsc::UnboundedReceiver<Command>,
}

impl Driver {
    /// Sends what the core queued and hands its events to the owner.
    async fn flush(&mut self) {
        while let Some((to, datagram)) = self.core.poll_transmit() {
            if let Err(e) = self.sock.send_to(&datagram, to).await {
                tracing::debug!("control datagram not sent: {e}");
            }
        }
        while let Some(event) = self.core.poll_event() {
            let _ = self.events.send(event);
        }
        if let Some(rtt) = self.core.rtt() {
            let ms = u32::try_from(rtt.as_millis()).unwrap_or(u32::MAX).max(1);
            self.frames.rtt_ms.store(ms, Ordering::Relaxed);
        }
    }

    /// Waits for a command (when `commands`), a datagram or the core's next deadline, feeds it,
    /// and flushes. Returns the command, or `Some(None)` when the owner has gone.
    async fn step(&mut self, commands: bool) -> Option<Option<Command>> {
        let deadline = self.core.poll_timeout().unwrap_or_else(Instant::now);
        let mut buf = [0u8; MTU_MAX];
        let mut command = None;
        tokio::select! {
            biased;
            cmd = self.cmd_rx.recv(), if commands => command = Some(cmd),
            received = self.sock.recv_from(&mut buf) => {
                if let Ok((n, from)) = received {
                    self.sync_frames();
                    self.core.handle_input(Instant::now(), from, &buf[..n]);
                }
            }
            () = tokio::time::sleep_until(deadline.into()) => {
                self.sync_frames();
                self.core.handle_timeout(Instant::now());
            }
        }
        self.flush().await;
        command
    }

    /// Hands the core what the owner recorded about frames since the last step.
    fn sync_frames(&mut self) {
        let last_seen = self.frames.last_seen.load(Ordering::Relaxed);
        let last_good = self.frames.last_good.load(Ordering::Relaxed);
        self.core.note_frames(last_seen, last_good);
    }

    fn apply(&mut self, cmd: Command) -> Result<(), ControlError> {
        self.sync_frames();
        match cmd {
            Command::RequestIdr => self.core.request_idr(),
            Command::Send(msg) => self.core.send(msg),
            Command::Input(bytes, route) => self.core.send_input(bytes, route),
            Command::Close(_) => Ok(()),
        }
    }

    async fn run(mut self) {
        while !self.core.is_ended() {
            match self.step(true).await {
                Some(Some(Command::Close(done))) => {
                    self.core.close(Instant::now());
                    self.flush().await;
                    while !self.core.is_ended() {
                        self.step(false).await;
                    }
                    let _ = done.send(());
                    return;
                }
                Some(Some(cmd)) => {
                    if let Err(e) = self.apply(cmd) {
                        tracing::debug!("control command dropped: {e}");
                    }
                    self.flush().await;
                }
                // Owner dropped: tell the host and stop.
                Some(None) => {
                    self.core.abort();
                    self.flush().await;
                    return;
                }
                None => {}
            }
        }
    }
}
