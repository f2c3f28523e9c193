//! Host half of the control stream: one ENet host serving every registered session.
//!
//! The host application registers each launched session (key, IV style, the version it reports and
//! how to recognise the client). A CONNECT is bound to a session by its connect data when the
//! session has one, else by the client's IP (as Wolf does); unknown peers are disconnected at once.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use rusty_enet::{EventNoRef, Host, PeerID};
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use super::codec::{ControlCodec, IvStyle, Side};
use super::enet_io::{new_host, packet, readable_or_tick, TokioUdp};
use super::error::ControlError;
use super::ids::{Generation, TERMINATION_EXTENDED, TERMINATION_SHORT};
use super::message::{ClientMessage, HostMessage};
use super::route::Route;
use super::termination::Termination;
use crate::version::AppVersion;

/// How a CONNECT is recognised as belonging to a session. Every field given must match; a session
/// with neither field never matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SessionMatch {
    /// The `X-SS-Connect-Data` value handed out in SETUP (Sunshine style).
    pub connect_data: Option<u32>,
    /// The client's IP (Wolf style).
    pub peer_ip: Option<IpAddr>,
}

/// What the server reports, tagged with the session id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostEvent {
    /// A client connected and was bound to the session.
    Connected {
        /// Its address.
        peer: SocketAddr,
    },
    /// IDR request (0x0302, also Start A on >= 7.1.431): force a keyframe.
    IdrRequest,
    /// Reference frame invalidation (on older clients also their way of asking for an IDR).
    Rfi {
        /// First frame.
        first: u32,
        /// Last frame.
        last: u32,
    },
    /// Input message payload. On >= 7.1.431 this is the plaintext NV input packet; on older
    /// generations (`legacy_encrypted`) it is the `BE32 L ‖ encrypted` blob for the input module.
    Input {
        /// Payload bytes.
        bytes: Vec<u8>,
        /// True when the input module must still decrypt it.
        legacy_encrypted: bool,
    },
    /// Periodic ping (keeps the session alive).
    Ping,
    /// The client sent a termination message.
    Termination,
    /// Any other decoded message (Start A/B, loss stats, LTR ACK, FEC status).
    Message(ClientMessage),
    /// Unknown type, payload verbatim.
    Other(u16, Vec<u8>),
    /// The client's ENet peer disconnected or timed out.
    Disconnected,
}

struct Session {
    matcher: SessionMatch,
    codec: ControlCodec,
    peer: Option<PeerID>,
    last_activity: Instant,
}

#[derive(Default)]
struct Registry {
    sessions: HashMap<u64, Session>,
    peers: HashMap<PeerID, u64>,
}

enum Command {
    Send(u64, HostMessage),
    Disconnect(u64),
    DropPeer(PeerID),
    Close(oneshot::Sender<()>),
}

/// Handle on the host control server. Dropping it stops the driver; prefer [`ControlServer::close`].
#[derive(Debug)]
pub struct ControlServer {
    cmd_tx: mpsc::UnboundedSender<Command>,
    registry: Arc<Mutex<Registry>>,
    local_addr: SocketAddr,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("sessions", &self.sessions.len())
            .field("peers", &self.peers.len())
            .finish()
    }
}

/// Peers one server accepts at once.
const PEER_LIMIT: usize = 64;
/// How long [`ControlServer::close`] waits for peers to acknowledge the disconnect.
const CLOSE_LINGER: Duration = Duration::from_secs(1);

fn lock(m: &Mutex<Registry>) -> MutexGuard<'_, Registry> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl ControlServer {
    /// Binds the control port (`port 0` picks a free one) and starts the driver.
    pub async fn bind(
        addr: SocketAddr,
    ) -> Result<(ControlServer, mpsc::UnboundedReceiver<(u64, HostEvent)>), ControlError> {
        let (host, sock) = new_host(addr, PEER_LIMIT).await?;
        let local_addr = sock.local_addr()?;
        let registry = Arc::new(Mutex::new(Registry::default()));
        let (cmd_tx, cmd_rx) = mpsc::unbounded_channel();
        let (events_tx, events_rx) = mpsc::unbounded_channel();
        let driver = Driver {
            host,
            sock,
            registry: registry.clone(),
            events: events_tx,
            cmd_rx,
        };
        tokio::spawn(driver.run());
        Ok((
            ControlServer {
                cmd_tx,
                registry,
                local_addr,
            },
            events_rx,
        ))
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Registers a launched session; replaces an earlier registration with the same id.
    pub fn register(
        &self,
        session_id: u64,
        matcher: SessionMatch,
        key: [u8; 16],
        iv_style: IvStyle,
        app_version: AppVersion,
    ) {
        let session = Session {
            matcher,
            codec: ControlCodec::new(&key, iv_style, Side::Host, app_version),
            peer: None,
            last_activity: Instant::now(),
        };
        let old = lock(&self.registry).sessions.insert(session_id, session);
        if let Some(peer) = old.and_then(|s| s.peer) {
            let _ = self.cmd_tx.send(Command::DropPeer(peer));
        }
    }

    /// Removes a session; a connected peer is disconnected (without a termination message — call
    /// [`ControlServer::disconnect`] first for that).
    pub fn unregister(&self, session_id: u64) {
        let old = lock(&self.registry).sessions.remove(&session_id);
        if let Some(peer) = old.and_then(|s| s.peer) {
            let _ = self.cmd_tx.send(Command::DropPeer(peer));
        }
    }

    /// When the session's client was last heard from (any ENet event), for the host's idle timeout.
    pub fn last_activity(&self, session_id: u64) -> Option<std::time::Instant> {
        lock(&self.registry)
            .sessions
            .get(&session_id)
            .map(|s| s.last_activity.into_std())
    }

    /// True while a client peer is bound to the session.
    pub fn is_connected(&self, session_id: u64) -> bool {
        lock(&self.registry)
            .sessions
            .get(&session_id)
            .is_some_and(|s| s.peer.is_some())
    }

    /// Sends a host message (termination, rumble, HDR, ...) to the session's client.
    pub fn send(&self, session_id: u64, msg: HostMessage) -> Result<(), ControlError> {
        if !lock(&self.registry).sessions.contains_key(&session_id) {
            return Err(ControlError::UnknownSession(session_id));
        }
        self.cmd_tx
            .send(Command::Send(session_id, msg))
            .map_err(|_| ControlError::Closed)
    }

    /// Ends the session's stream: termination `0x80030023`, then an ENet disconnect once it is sent.
    pub fn disconnect(&self, session_id: u64) -> Result<(), ControlError> {
        if !lock(&self.registry).sessions.contains_key(&session_id) {
            return Err(ControlError::UnknownSession(session_id));
        }
        self.cmd_tx
            .send(Command::Disconnect(session_id))
            .map_err(|_| ControlError::Closed)
    }

    /// Disconnects every client (up to 1 s for their acks) and stops the driver.
    pub async fn close(&self) {
        let (tx, rx) = oneshot::channel();
        if self.cmd_tx.send(Command::Close(tx)).is_ok() {
            let _ = rx.await;
        }
    }
}

struct Driver {
    host: Host<TokioUdp>,
    sock: Arc<UdpSocket>,
    registry: Arc<Mutex<Registry>>,
    events: mpsc::UnboundedSender<(u64, HostEvent)>,
    cmd_rx: mpsc::UnboundedReceiver<Command>,
}

impl Driver {
    async fn run(mut self) {
        loop {
            self.service();
            tokio::select! {
                cmd = self.cmd_rx.recv() => match cmd {
                    Some(Command::Send(id, msg)) => self.send(id, &msg),
                    Some(Command::Disconnect(id)) => {
                        self.send(id, &HostMessage::Termination(Termination::server_closed()));
                        if let Some(peer) = lock(&self.registry).sessions.get(&id).and_then(|s| s.peer) {
                            self.host.peer_mut(peer).disconnect_later(0);
                        }
                        self.host.flush();
                    }
                    Some(Command::DropPeer(peer)) => {
                        lock(&self.registry).peers.remove(&peer);
                        self.host.peer_mut(peer).disconnect(0);
                        self.host.flush();
                    }
                    Some(Command::Close(done)) => {
                        self.close().await;
                        let _ = done.send(());
                        return;
                    }
                    None => {
                        for peer in self.host.connected_peers_mut() {
                            peer.disconnect_now(0);
                        }
                        self.host.flush();
                        return;
                    }
                },
                _ = readable_or_tick(&self.sock) => {}
            }
        }
    }

    async fn close(&mut self) {
        for peer in self.host.connected_peers_mut() {
            peer.disconnect(0);
        }
        let deadline = Instant::now() + CLOSE_LINGER;
        while Instant::now() < deadline && self.host.connected_peers().next().is_some() {
            self.service();
            readable_or_tick(&self.sock).await;
        }
        for peer in self.host.connected_peers_mut() {
            peer.reset();
        }
    }

    fn send(&mut self, id: u64, msg: &HostMessage) {
        let mut reg = lock(&self.registry);
        let Some(session) = reg.sessions.get_mut(&id) else {
            return;
        };
        let Some(peer) = session.peer else {
            tracing::debug!("session {id}: no client connected, dropping host message");
            return;
        };
        match session.codec.encode_host(msg) {
            Ok(bytes) => {
                drop(reg);
                let route = Route::GENERIC_RELIABLE;
                if let Err(e) = self
                    .host
                    .peer_mut(peer)
                    .send(route.channel, &packet(bytes, route))
                {
                    tracing::debug!("session {id}: send failed: {e}");
                }
                self.host.flush();
            }
            Err(e) => tracing::debug!("session {id}: host message not encodable: {e}"),
        }
    }

    fn emit(&self, id: u64, ev: HostEvent) {
        let _ = self.events.send((id, ev));
    }

    fn service(&mut self) {
        loop {
            let ev = match self.host.service() {
                Ok(Some(ev)) => ev.no_ref(),
                Ok(None) => return,
                Err(e) => {
                    tracing::warn!("control server socket error: {e}");
                    return;
                }
            };
            match ev {
                EventNoRef::Connect { peer, data } => self.on_connect(peer, data),
                EventNoRef::Disconnect { peer, .. } => {
                    let mut reg = lock(&self.registry);
                    if let Some(id) = reg.peers.remove(&peer) {
                        if let Some(s) = reg.sessions.get_mut(&id) {
                            if s.peer == Some(peer) {
                                s.peer = None;
                                s.last_activity = Instant::now();
                            }
                        }
                        drop(reg);
                        self.emit(id, HostEvent::Disconnected);
                    }
                }
                EventNoRef::Receive { peer, packet, .. } => self.on_packet(peer, packet.data()),
            }
        }
    }

    fn on_connect(&mut self, peer: PeerID, data: u32) {
        let addr = self.host.peer(peer).address();
        let ip = addr.map(|a| a.ip());
        let mut reg = lock(&self.registry);
        let matches = |m: &SessionMatch| {
            (m.connect_data.is_some() || m.peer_ip.is_some())
                && m.connect_data.is_none_or(|d| d == data)
                && m.peer_ip.is_none_or(|want| Some(want) == ip)
        };
        // Prefer sessions identified by connect data, then unbound ones, then the lowest id.
        let chosen = reg
            .sessions
            .iter()
            .filter(|(_, s)| matches(&s.matcher))
            .min_by_key(|(id, s)| (s.matcher.connect_data.is_none(), s.peer.is_some(), **id))
            .map(|(id, _)| *id);
        let Some(id) = chosen else {
            drop(reg);
            tracing::info!("control: refusing unknown peer {addr:?} (connect data {data})");
            self.host.peer_mut(peer).disconnect(0);
            return;
        };
        let mut superseded = None;
        if let Some(s) = reg.sessions.get_mut(&id) {
            superseded = s.peer.replace(peer);
            s.last_activity = Instant::now();
        }
        if let Some(old) = superseded {
            reg.peers.remove(&old);
        }
        reg.peers.insert(peer, id);
        drop(reg);
        if let Some(old) = superseded {
            self.host.peer_mut(old).disconnect(0);
        }
        if let Some(addr) = addr {
            self.emit(id, HostEvent::Connected { peer: addr });
        }
    }

    fn on_packet(&mut self, peer: PeerID, data: &[u8]) {
        let mut reg = lock(&self.registry);
        let Some(&id) = reg.peers.get(&peer) else {
            return;
        };
        let Some(session) = reg.sessions.get_mut(&id) else {
            return;
        };
        session.last_activity = Instant::now();
        let decoded = classify_client_packet(&session.codec, data);
        drop(reg);
        let ev = match decoded {
            Ok(ev) => ev,
            Err(e) => {
                tracing::debug!("session {id}: dropping control packet: {e}");
                return;
            }
        };
        self.emit(id, ev);
    }
}

/// What one control packet from a client means to the host: opened with the session's codec and
/// sorted into a [`HostEvent`]. Shared by this server and the host half's sans-IO session core.
pub(crate) fn classify_client_packet(
    codec: &ControlCodec,
    data: &[u8],
) -> Result<HostEvent, ControlError> {
    let (ty, payload) = codec.decode_raw(data)?;
    let generation = codec.generation();
    if Some(ty) == generation.ids().input {
        return Ok(HostEvent::Input {
            bytes: payload,
            legacy_encrypted: generation != Generation::Gen7Encrypted,
        });
    }
    if ty == TERMINATION_SHORT || ty == TERMINATION_EXTENDED {
        return Ok(HostEvent::Termination);
    }
    Ok(match ClientMessage::decode(generation, ty, &payload)? {
        ClientMessage::IdrRequest => HostEvent::IdrRequest,
        ClientMessage::Rfi { first, last } => HostEvent::Rfi { first, last },
        ClientMessage::PeriodicPing => HostEvent::Ping,
        ClientMessage::Other { ty, payload } => HostEvent::Other(ty, payload),
        m => HostEvent::Message(m),
    })
}
