//! The client half of the control stream as a plain state machine: no sockets, no tasks, no clock.
//!
//! [`ControlCore`] is one ENet peer to the host plus the encrypted message codec, driven the way
//! str0m's `Rtc` and quinn-proto's `Connection` are: the caller hands it received datagrams
//! ([`ControlCore::handle_input`]) and the passing of time ([`ControlCore::handle_timeout`]), and
//! takes from it the datagrams to send ([`ControlCore::poll_transmit`]), what happened
//! ([`ControlCore::poll_event`]) and when it next needs the time ([`ControlCore::poll_timeout`]).
//! The tokio driver ([`super::ControlClient`]) and the whole-stream core
//! ([`crate::client::ClientCore`]) own the socket; tests drive it with bytes and a virtual clock.
//!
//! Behaviour follows moonlight-common-c: ENet connect with the launch's connect data, Start A and
//! Start B once connected, a periodic ping every 100 ms (hosts from 7.1.415) or loss statistics
//! every 50 ms (older hosts), an immediate disconnect on a host termination, and on our close a
//! graceful disconnect whose acknowledgement is awaited for at most the linger time.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use rusty_enet::{EventNoRef, Host, PeerID};

use super::client::{ClientEvent, ControlConfig, DisconnectReason};
use super::codec::{ControlCodec, Side};
use super::enet_io::{packet, SERVICE_TICK};
use super::enet_mem::{queue_host, EnetClock, QueueSocket};
use super::error::ControlError;
use super::ids::Generation;
use super::message::{ClientMessage, HostMessage};
use super::route::{InputRoute, Route, CHANNEL_COUNT};

/// Periodic ping interval (>= 7.1.415) and loss-statistics interval (older hosts).
const PING_INTERVAL: Duration = Duration::from_millis(100);
const LOSS_STATS_INTERVAL: Duration = Duration::from_millis(50);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Connecting { deadline: Instant },
    Connected { next_periodic: Instant },
    Closing { deadline: Instant },
    Ended,
}

/// One client control stream, sans I/O. See the module doc.
#[derive(Debug)]
pub struct ControlCore {
    host: Host<QueueSocket>,
    clock: EnetClock,
    peer: PeerID,
    codec: ControlCodec,
    state: State,
    was_connected: bool,
    peer_timeout_ms: u32,
    linger: Duration,
    last_now: Instant,
    last_seen_frame: u32,
    last_good_frame: u32,
    rtt: Option<Duration>,
    events: VecDeque<ClientEvent>,
}

impl ControlCore {
    /// Starts connecting to the host's control port at `host_addr`. `seed` fixes ENet's random
    /// choices (tests); `None` in production.
    pub fn new(
        host_addr: SocketAddr,
        config: &ControlConfig,
        now: Instant,
        seed: Option<u32>,
    ) -> Result<Self, ControlError> {
        let generation = Generation::of(config.app_version);
        if !generation.uses_enet() {
            return Err(ControlError::Unsupported {
                what: "TCP control stream",
                generation,
            });
        }
        let (mut host, clock) = queue_host(1, now, seed)?;
        let peer = host
            .connect(host_addr, CHANNEL_COUNT, config.connect_data)
            .map_err(|e| ControlError::Enet(e.to_string()))?
            .id();
        host.flush();
        Ok(Self {
            host,
            clock,
            peer,
            codec: ControlCodec::new(
                &config.key,
                config.iv_style,
                Side::Client,
                config.app_version,
            ),
            state: State::Connecting {
                deadline: now + config.connect_timeout,
            },
            was_connected: false,
            peer_timeout_ms: u32::try_from(config.peer_timeout.as_millis()).unwrap_or(u32::MAX),
            linger: config.linger,
            last_now: now,
            last_seen_frame: 0,
            last_good_frame: 0,
            rtt: None,
            events: VecDeque::new(),
        })
    }

    /// True once the ENet connection came up (even if it has ended since).
    pub fn was_connected(&self) -> bool {
        self.was_connected
    }

    /// True while messages can be sent.
    pub fn is_connected(&self) -> bool {
        matches!(self.state, State::Connected { .. })
    }

    /// True once the stream is over; only datagrams already queued remain to be sent.
    pub fn is_ended(&self) -> bool {
        self.state == State::Ended
    }

    /// ENet's smoothed round trip to the host, once measured.
    pub fn rtt(&self) -> Option<Duration> {
        self.rtt
    }

    /// One datagram received on the control socket.
    pub fn handle_input(&mut self, now: Instant, from: SocketAddr, datagram: &[u8]) {
        if self.state == State::Ended {
            return;
        }
        self.host.socket_mut().deliver(from, datagram);
        self.service(now);
    }

    /// Time has passed: ENet retransmissions and timeouts, the periodic message, deadlines.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.state == State::Ended {
            return;
        }
        self.service(now);
        match self.state {
            State::Connecting { deadline } if now >= deadline => {
                self.host.peer_mut(self.peer).reset();
                self.end(DisconnectReason::Error("ENet connect timed out".into()));
            }
            State::Connected { next_periodic } if now >= next_periodic => {
                let (msg, interval) = self.periodic_message();
                self.send_routed(&msg, Route::for_message(&msg, self.codec.version()));
                self.state = State::Connected {
                    next_periodic: now + interval,
                };
            }
            State::Closing { deadline } if now >= deadline => {
                self.host.peer_mut(self.peer).reset();
                self.end(DisconnectReason::Closed);
            }
            _ => {}
        }
    }

    /// The next datagram to send, with its destination.
    pub fn poll_transmit(&mut self) -> Option<(SocketAddr, Vec<u8>)> {
        self.host.socket_mut().take_sent()
    }

    /// The next thing that happened. The last event is always [`ClientEvent::Disconnected`].
    pub fn poll_event(&mut self) -> Option<ClientEvent> {
        self.events.pop_front()
    }

    /// When [`ControlCore::handle_timeout`] must be called next; `None` once ended. ENet's own
    /// timers are not exposed, so it is serviced at least every 10 ms while the stream lives.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let tick = self.last_now + SERVICE_TICK;
        match self.state {
            State::Connecting { deadline } | State::Closing { deadline } => {
                Some(tick.min(deadline))
            }
            State::Connected { next_periodic } => Some(tick.min(next_periodic)),
            State::Ended => None,
        }
    }

    /// Records the last frame seen and the last complete one (RFI-as-IDR ranges, loss
    /// statistics, and whether a termination came before any frame).
    pub fn note_frames(&mut self, last_seen: u32, last_good: u32) {
        self.last_seen_frame = last_seen;
        self.last_good_frame = last_good;
    }

    /// Asks for an IDR frame: the IDR request message where the host has one, else RFI-as-IDR.
    pub fn request_idr(&mut self) -> Result<(), ControlError> {
        let msg = ClientMessage::idr_request_for(self.codec.version(), self.last_seen_frame);
        self.send(msg)
    }

    /// Sends any client message along its standard route.
    pub fn send(&mut self, msg: ClientMessage) -> Result<(), ControlError> {
        let route = Route::for_message(&msg, self.codec.version());
        self.send_checked(&msg, route)
    }

    /// Sends one input packet (already encoded, and wrapped where the host wants it) along the
    /// input module's route.
    pub fn send_input(&mut self, bytes: Vec<u8>, route: InputRoute) -> Result<(), ControlError> {
        let route = Route::for_input(route, self.codec.version());
        self.send_checked(&ClientMessage::Input(bytes), route)
    }

    /// Graceful end: ENet disconnect, then [`ClientEvent::Disconnected`] once the host
    /// acknowledges it or the linger time passes.
    pub fn close(&mut self, now: Instant) {
        self.clock.set(now);
        match self.state {
            State::Connected { .. } => {
                self.host.peer_mut(self.peer).disconnect_later(0);
                self.host.flush();
                self.state = State::Closing {
                    deadline: now + self.linger,
                };
            }
            State::Connecting { .. } => {
                self.host.peer_mut(self.peer).reset();
                self.end(DisconnectReason::Closed);
            }
            State::Closing { .. } | State::Ended => {}
        }
    }

    /// Immediate end (the owner went away): one disconnect datagram, no waiting.
    pub fn abort(&mut self) {
        if self.state != State::Ended {
            self.host.peer_mut(self.peer).disconnect_now(0);
            self.host.flush();
            self.end(DisconnectReason::Closed);
        }
    }

    fn send_checked(&mut self, msg: &ClientMessage, route: Route) -> Result<(), ControlError> {
        if !self.is_connected() {
            return Err(ControlError::Closed);
        }
        self.send_routed(msg, route);
        Ok(())
    }

    fn send_routed(&mut self, msg: &ClientMessage, route: Route) {
        match self.codec.encode_client(msg) {
            Ok(bytes) => {
                let peer = self.host.peer_mut(self.peer);
                let route = route.fit_channels(peer.channel_count());
                if let Err(e) = peer.send(route.channel, &packet(bytes, route)) {
                    tracing::debug!("control send failed: {e}");
                }
                self.host.flush();
            }
            Err(e) => tracing::debug!("control message not encodable: {e}"),
        }
    }

    fn periodic_message(&self) -> (ClientMessage, Duration) {
        if self.codec.version().has_periodic_ping() {
            (ClientMessage::PeriodicPing, PING_INTERVAL)
        } else {
            let msg = ClientMessage::LossStats {
                lost_packets: 0,
                last_good_frame: u64::from(self.last_good_frame),
            };
            (msg, LOSS_STATS_INTERVAL)
        }
    }

    fn end(&mut self, reason: DisconnectReason) {
        self.state = State::Ended;
        self.events.push_back(ClientEvent::Disconnected { reason });
    }

    fn service(&mut self, now: Instant) {
        self.last_now = self.last_now.max(now);
        self.clock.set(now);
        loop {
            let ev = match self.host.service() {
                Ok(Some(ev)) => ev.no_ref(),
                Ok(None) => break,
                // The queue socket never fails; keep the match total all the same.
                Err(e) => {
                    self.end(DisconnectReason::Error(e.to_string()));
                    return;
                }
            };
            match ev {
                EventNoRef::Connect { peer, .. } if peer == self.peer => self.on_connected(now),
                EventNoRef::Receive { peer, packet, .. } if peer == self.peer => {
                    self.on_packet(packet.data());
                }
                EventNoRef::Disconnect { peer, data } if peer == self.peer => {
                    let reason = match self.state {
                        State::Closing { .. } => DisconnectReason::Closed,
                        State::Connecting { .. } => {
                            DisconnectReason::Error("the host refused the ENet connect".into())
                        }
                        _ => DisconnectReason::Peer { data },
                    };
                    self.end(reason);
                }
                _ => {}
            }
            if self.state == State::Ended {
                return;
            }
        }
        if self.was_connected {
            let rtt = self.host.peer_mut(self.peer).round_trip_time();
            self.rtt = Some(rtt.max(Duration::from_millis(1)));
        }
        // Anything ENet queued while servicing (acknowledgements) goes out now.
        self.host.flush();
    }

    fn on_connected(&mut self, now: Instant) {
        if !matches!(self.state, State::Connecting { .. }) {
            return;
        }
        let timeout = self.peer_timeout_ms;
        self.host
            .peer_mut(self.peer)
            .set_timeout(2, timeout, timeout);
        self.was_connected = true;
        self.state = State::Connected { next_periodic: now };
        self.events.push_back(ClientEvent::Connected);
        let version = self.codec.version();
        for msg in [ClientMessage::StartA, ClientMessage::StartB] {
            let route = Route::for_message(&msg, version);
            self.send_routed(&msg, route);
        }
    }

    fn on_packet(&mut self, data: &[u8]) {
        let msg = match self.codec.decode_host(data) {
            Ok(m) => m,
            Err(e) => {
                tracing::debug!("dropping control packet: {e}");
                return;
            }
        };
        let event = match msg {
            HostMessage::Termination(termination) => {
                let reason = termination.reason(self.last_seen_frame != 0);
                self.events.push_back(ClientEvent::Termination {
                    termination,
                    reason,
                });
                // Like moonlight: end at once, without waiting for a disconnect ack.
                self.host.peer_mut(self.peer).disconnect_now(0);
                self.host.flush();
                self.end(DisconnectReason::Terminated);
                return;
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
        self.events.push_back(event);
    }
}
