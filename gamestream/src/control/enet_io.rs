//! Glue between `rusty_enet` (synchronous, non-blocking) and tokio.
//!
//! ENet owns a [`TokioUdp`]; the driver task keeps a second handle on the same socket so it can sleep
//! until the socket is readable, a command arrives, or the short service tick elapses (ENet's
//! retransmission and ping timers need regular servicing even when nothing arrives).

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use rusty_enet::{Host, HostSettings, Packet, PacketKind, PacketReceived, Socket, MTU_MAX};
use tokio::net::UdpSocket;

use super::error::ControlError;
use super::route::{Delivery, Route};

/// How often ENet is serviced when neither the socket nor a command wakes the driver: only its
/// timers need it (retransmissions, its pings, timeouts), since a datagram or a command wakes
/// the driver at once. moonlight-common-c sleeps until the next ENet timer; a fixed 10 ms bounds a
/// retransmission's extra delay at 10 ms while waking a streamer 100 times a second, not 500
/// (the 2 ms tick this replaced was a quarter of an idle streamer's wake-ups).
pub(crate) const SERVICE_TICK: Duration = Duration::from_millis(10);

/// A tokio UDP socket as an ENet transport.
///
/// Receives go through tokio (so that a `WouldBlock` clears tokio's readiness and the driver can
/// sleep on `readable()`), but sends use a plain clone of the same socket: tokio's `try_send_to`
/// refuses to even try until the reactor has reported the socket writable, so the very first
/// datagram of a fresh socket (ENet's CONNECT) would be dropped and only retransmitted after ENet's
/// 500 ms initial timeout.
#[derive(Debug)]
pub(crate) struct TokioUdp {
    pub(crate) recv: Arc<UdpSocket>,
    send: std::net::UdpSocket,
}

impl Socket for TokioUdp {
    type Address = SocketAddr;
    type Error = io::Error;

    fn send(&mut self, address: SocketAddr, buffer: &[u8]) -> Result<usize, io::Error> {
        match self.send.send_to(buffer, address) {
            Ok(n) => Ok(n),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(0),
            Err(e) => Err(e),
        }
    }

    fn receive(
        &mut self,
        buffer: &mut [u8; MTU_MAX],
    ) -> Result<Option<(SocketAddr, PacketReceived)>, io::Error> {
        match self.recv.try_recv_from(buffer) {
            Ok((n, from)) => Ok(Some((from, PacketReceived::Complete(n)))),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(None),
            // ICMP errors surfaced on UDP receive are not fatal for a multi-peer host.
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::ConnectionRefused | io::ErrorKind::ConnectionReset
                ) =>
            {
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }
}

/// Binds a UDP socket and wraps it in an ENet host. Must run inside a tokio runtime.
pub(crate) async fn new_host(
    bind: SocketAddr,
    peer_limit: usize,
) -> Result<(Host<TokioUdp>, Arc<UdpSocket>), ControlError> {
    let std_sock = std::net::UdpSocket::bind(bind)?;
    std_sock.set_nonblocking(true)?;
    let send = std_sock.try_clone()?;
    let sock = Arc::new(UdpSocket::from_std(std_sock)?);
    let settings = HostSettings {
        peer_limit,
        channel_limit: 255,
        ..Default::default()
    };
    let transport = TokioUdp {
        recv: sock.clone(),
        send,
    };
    let host = Host::new(transport, settings).map_err(|e| ControlError::Enet(e.to_string()))?;
    Ok((host, sock))
}

/// The ENet packet for `bytes` sent along `route`.
pub(crate) fn packet(bytes: Vec<u8>, route: Route) -> Packet {
    let kind = match route.delivery {
        Delivery::Reliable => PacketKind::Reliable,
        Delivery::Unreliable => PacketKind::Unreliable { sequenced: true },
        Delivery::Unsequenced => PacketKind::Unreliable { sequenced: false },
    };
    Packet::new(bytes, kind)
}

/// Waits for the socket to become readable or one service tick, whichever comes first.
pub(crate) async fn readable_or_tick(sock: &UdpSocket) {
    tokio::select! {
        r = sock.readable() => { let _ = r; }
        _ = tokio::time::sleep(SERVICE_TICK) => {}
    }
}
