//! The host's receiving end of one session's microphone: a task that owns the session's mic UDP
//! socket and its [`MicDepacketizer`], and hands each Opus packet to the application.
//!
//! A task of its own rather than a branch of the session's media driver: nothing it does depends
//! on the media streams (no ping opens it; the datagrams' source IP is checked against the client
//! that launched, as the fork hosts match by IP), and it must live exactly as long as the session,
//! which [`MicTask`] ties it to by aborting it on drop. The queue to the application is bounded
//! and lossy, like the network: a consumer that falls behind loses packets, never memory.

use std::net::IpAddr;

use tokio::net::UdpSocket;
use tokio::sync::mpsc;

use super::{MicDepacketizer, MicFrame, MAX_MIC_DATAGRAM};

/// Packets queued for a slow consumer: 2.5 s of 20 ms packets.
const QUEUE: usize = 128;

/// The application's end: the client's Opus packets, in order.
pub type MicReceiver = mpsc::Receiver<MicFrame>;

/// The running receiver; dropping it stops the task and frees the socket.
#[derive(Debug)]
pub struct MicTask(tokio::task::AbortHandle);

impl Drop for MicTask {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Starts receiving on `socket`, accepting datagrams from `client_ip` only.
pub fn spawn(
    socket: UdpSocket,
    client_ip: IpAddr,
    depacketizer: MicDepacketizer,
) -> (MicTask, MicReceiver) {
    let (tx, rx) = mpsc::channel(QUEUE);
    let task = tokio::spawn(run(socket, client_ip.to_canonical(), depacketizer, tx));
    (MicTask(task.abort_handle()), rx)
}

async fn run(
    socket: UdpSocket,
    client_ip: IpAddr,
    mut depacketizer: MicDepacketizer,
    tx: mpsc::Sender<MicFrame>,
) {
    // One byte more than the largest datagram, so an oversized one is seen as such.
    let mut buf = vec![0u8; MAX_MIC_DATAGRAM + 1];
    loop {
        let (len, from) = tokio::select! {
            r = socket.recv_from(&mut buf) => match r {
                Ok(r) => r,
                // ICMP errors surface as receive errors on some platforms; keep listening.
                Err(e) => {
                    tracing::debug!("mic socket: {e}");
                    tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                    continue;
                }
            },
            () = tx.closed() => return,
        };
        if from.ip().to_canonical() != client_ip || len > MAX_MIC_DATAGRAM {
            continue;
        }
        match depacketizer.push(&buf[..len]) {
            Ok(frame) => match tx.try_send(frame) {
                Ok(()) | Err(mpsc::error::TrySendError::Full(_)) => {}
                Err(mpsc::error::TrySendError::Closed(_)) => return,
            },
            Err(e) => tracing::debug!(%from, "mic datagram refused: {e}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;
    use std::time::Duration;

    use super::*;
    use crate::mic::MicPacketizer;

    /// A receiver for `client_ip` on loopback, and a client socket with the receiver's address.
    async fn receiver(client_ip: &str) -> (MicTask, MicReceiver, UdpSocket, SocketAddr) {
        let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = socket.local_addr().unwrap();
        let ip = client_ip.parse().unwrap();
        let (task, rx) = spawn(socket, ip, MicDepacketizer::new(None));
        let client = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        (task, rx, client, addr)
    }

    async fn next(rx: &mut MicReceiver, within: Duration) -> Option<Option<MicFrame>> {
        tokio::time::timeout(within, rx.recv()).await.ok()
    }

    #[tokio::test]
    async fn delivers_the_clients_packets_and_stops_with_its_task() {
        let (task, mut rx, client, addr) = receiver("127.0.0.1").await;
        client.send_to(b"garbage", addr).await.unwrap();
        let datagram = MicPacketizer::new(None).push(b"\xfc\x01", 960).unwrap();
        client.send_to(&datagram, addr).await.unwrap();
        let frame = next(&mut rx, Duration::from_secs(5)).await.flatten();
        assert_eq!(frame.unwrap().opus, b"\xfc\x01");
        drop(task);
        assert_eq!(next(&mut rx, Duration::from_secs(5)).await, Some(None));
    }

    #[tokio::test]
    async fn ignores_other_addresses() {
        let (_task, mut rx, client, addr) = receiver("127.0.0.2").await;
        let datagram = MicPacketizer::new(None).push(b"\xfc", 960).unwrap();
        client.send_to(&datagram, addr).await.unwrap();
        let got = next(&mut rx, Duration::from_millis(300)).await;
        assert!(got.is_none(), "a datagram from another IP was delivered");
    }
}
