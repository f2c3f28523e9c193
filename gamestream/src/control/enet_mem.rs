//! ENet without I/O: `rusty_enet` over in-memory datagram queues and a clock we set.
//!
//! `rusty_enet` is synchronous and takes its transport ([`Socket`]) and its time source
//! (`HostSettings::time`) as parameters, so the control stream's protocol state can live in a
//! plain object that the caller feeds with datagrams and instants: the sans-IO cores
//! ([`super::ControlCore`], the host half's session core) and the in-memory pair test, where the
//! clock is virtual and a whole session runs in milliseconds.

use std::collections::VecDeque;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rusty_enet::{Host, HostSettings, PacketReceived, Socket, MTU_MAX};

use super::error::ControlError;

/// ENet's clock starts here rather than at 0: ENet keeps timestamps as wrapping u32 milliseconds
/// and treats some zero values as "unset", so a fresh host must never see time 0.
const TIME_BASE_MS: u64 = 1_000;

/// A datagram queue pair that ENet reads and writes instead of a socket.
#[derive(Debug, Default)]
pub(crate) struct QueueSocket {
    inbox: VecDeque<(SocketAddr, Vec<u8>)>,
    outbox: VecDeque<(SocketAddr, Vec<u8>)>,
}

impl QueueSocket {
    /// Queues one received datagram for ENet's next service call.
    pub(crate) fn deliver(&mut self, from: SocketAddr, datagram: &[u8]) {
        self.inbox.push_back((from, datagram.to_vec()));
    }

    /// The oldest datagram ENet has sent and nobody has taken yet.
    pub(crate) fn take_sent(&mut self) -> Option<(SocketAddr, Vec<u8>)> {
        self.outbox.pop_front()
    }
}

impl Socket for QueueSocket {
    type Address = SocketAddr;
    type Error = io::Error;

    fn send(&mut self, address: SocketAddr, buffer: &[u8]) -> Result<usize, io::Error> {
        self.outbox.push_back((address, buffer.to_vec()));
        Ok(buffer.len())
    }

    fn receive(
        &mut self,
        buffer: &mut [u8; MTU_MAX],
    ) -> Result<Option<(SocketAddr, PacketReceived)>, io::Error> {
        let Some((from, datagram)) = self.inbox.pop_front() else {
            return Ok(None);
        };
        if datagram.len() > MTU_MAX {
            // Larger than anything ENet sends: not ours (the trait's contract is to discard it).
            return Ok(Some((from, PacketReceived::Partial)));
        }
        buffer[..datagram.len()].copy_from_slice(&datagram);
        Ok(Some((from, PacketReceived::Complete(datagram.len()))))
    }
}

/// The time ENet sees: the caller's last `now`, as milliseconds since the core was made.
#[derive(Debug, Clone)]
pub(crate) struct EnetClock {
    epoch: Instant,
    millis: Arc<AtomicU64>,
}

impl EnetClock {
    fn new(epoch: Instant) -> Self {
        Self {
            epoch,
            millis: Arc::new(AtomicU64::new(TIME_BASE_MS)),
        }
    }

    /// Moves ENet's clock to `now` (never backwards).
    pub(crate) fn set(&self, now: Instant) {
        let ms = TIME_BASE_MS + now.saturating_duration_since(self.epoch).as_millis() as u64;
        self.millis.fetch_max(ms, Ordering::Relaxed);
    }
}

/// An ENet host over a [`QueueSocket`] whose clock is `now` at creation and moves only by
/// [`EnetClock::set`]. `seed` fixes ENet's random connect ids (tests); `None` seeds randomly.
pub(crate) fn queue_host(
    peer_limit: usize,
    now: Instant,
    seed: Option<u32>,
) -> Result<(Host<QueueSocket>, EnetClock), ControlError> {
    let clock = EnetClock::new(now);
    let millis = Arc::clone(&clock.millis);
    let settings = HostSettings {
        peer_limit,
        channel_limit: 255,
        time: Box::new(move || Duration::from_millis(millis.load(Ordering::Relaxed))),
        seed,
        ..Default::default()
    };
    let host = Host::new(QueueSocket::default(), settings)
        .map_err(|e| ControlError::Enet(e.to_string()))?;
    Ok((host, clock))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queue_socket_passes_datagrams_in_order_and_discards_oversized_ones() {
        let mut s = QueueSocket::default();
        let from: SocketAddr = "127.0.0.1:9".parse().unwrap();
        s.deliver(from, b"one");
        s.deliver(from, &vec![0u8; MTU_MAX + 1]);
        let mut buf = [0u8; MTU_MAX];
        assert!(matches!(
            s.receive(&mut buf).unwrap(),
            Some((_, PacketReceived::Complete(3)))
        ));
        assert_eq!(&buf[..3], b"one");
        assert!(matches!(
            s.receive(&mut buf).unwrap(),
            Some((_, PacketReceived::Partial))
        ));
        assert!(s.receive(&mut buf).unwrap().is_none());
        s.send(from, b"out").unwrap();
        assert_eq!(s.take_sent(), Some((from, b"out".to_vec())));
    }

    #[test]
    fn clock_never_goes_back() {
        let t0 = Instant::now();
        let clock = EnetClock::new(t0);
        clock.set(t0 + Duration::from_millis(50));
        clock.set(t0 + Duration::from_millis(10));
        assert_eq!(clock.millis.load(Ordering::Relaxed), TIME_BASE_MS + 50);
    }
}
