//! Media fault injection for tests: drop, reorder, delay or corrupt a share of media datagrams.
//! Shared by every sender of a host and adjustable while streams run (all zero = no effect, no
//! cost).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rand::Rng;
use tokio::net::UdpSocket;

/// Live-adjustable media faults.
#[derive(Debug, Default)]
pub struct MediaFaults {
    drop_percent: AtomicU32,
    reorder_percent: AtomicU32,
    delay_percent: AtomicU32,
    delay_ms: AtomicU32,
    corrupt_percent: AtomicU32,
}

impl MediaFaults {
    /// Drops this percentage (0-100) of datagrams.
    pub fn set_drop_percent(&self, percent: u32) {
        self.drop_percent.store(percent.min(100), Ordering::Relaxed);
    }
    /// Holds back this percentage of video datagrams until after the next one (swap).
    pub fn set_reorder_percent(&self, percent: u32) {
        self.reorder_percent
            .store(percent.min(100), Ordering::Relaxed);
    }
    /// Delays this percentage of datagrams by `delay`.
    pub fn set_delay(&self, percent: u32, delay: Duration) {
        self.delay_percent
            .store(percent.min(100), Ordering::Relaxed);
        self.delay_ms.store(
            delay.as_millis().min(u128::from(u32::MAX)) as u32,
            Ordering::Relaxed,
        );
    }
    /// Replaces this percentage (0-100) of datagrams with random bytes of a random length
    /// (1-1500): what a hostile or broken host puts on the wire, for the client's parsers.
    pub fn set_corrupt_percent(&self, percent: u32) {
        self.corrupt_percent
            .store(percent.min(100), Ordering::Relaxed);
    }
    /// Current corrupt percentage.
    pub fn corrupt_percent(&self) -> u32 {
        self.corrupt_percent.load(Ordering::Relaxed)
    }
    /// Current drop percentage.
    pub fn drop_percent(&self) -> u32 {
        self.drop_percent.load(Ordering::Relaxed)
    }
    /// Current reorder percentage.
    pub fn reorder_percent(&self) -> u32 {
        self.reorder_percent.load(Ordering::Relaxed)
    }
    /// Current delay percentage and delay.
    pub fn delay(&self) -> (u32, Duration) {
        (
            self.delay_percent.load(Ordering::Relaxed),
            Duration::from_millis(u64::from(self.delay_ms.load(Ordering::Relaxed))),
        )
    }

    /// True when no fault is set: senders may take their fast path.
    pub fn is_idle(&self) -> bool {
        self.drop_percent() == 0
            && self.reorder_percent() == 0
            && self.delay().0 == 0
            && self.corrupt_percent() == 0
    }

    fn roll(percent: u32) -> bool {
        percent > 0 && rand::thread_rng().gen_range(0..100) < percent
    }

    /// Sends `datagrams` to `to` through `socket` with the faults applied (`reorder` only where
    /// the caller allows it). Returns how many were sent or scheduled.
    pub(crate) async fn send_all<'a>(
        faults: Option<&MediaFaults>,
        socket: &Arc<UdpSocket>,
        to: SocketAddr,
        datagrams: impl Iterator<Item = &'a [u8]>,
        reorder: bool,
    ) -> std::io::Result<usize> {
        let Some(f) = faults else {
            let mut sent = 0;
            for d in datagrams {
                send_one(socket, d, to).await?;
                sent += 1;
            }
            return Ok(sent);
        };
        let (drop, reorder_p) = (f.drop_percent(), f.reorder_percent());
        let (delay_p, delay) = f.delay();
        let corrupt = f.corrupt_percent();
        let mut held: Option<Vec<u8>> = None;
        let mut sent = 0;
        for d in datagrams {
            if Self::roll(drop) {
                continue;
            }
            if Self::roll(corrupt) {
                let junk: Vec<u8> = {
                    let mut rng = rand::thread_rng();
                    let len = rng.gen_range(1..=1500);
                    (0..len).map(|_| rng.gen()).collect()
                };
                send_one(socket, &junk, to).await?;
                sent += 1;
                continue;
            }
            if reorder && held.is_none() && Self::roll(reorder_p) {
                held = Some(d.to_vec());
                continue;
            }
            if Self::roll(delay_p) && !delay.is_zero() {
                let (socket, data) = (Arc::clone(socket), d.to_vec());
                tokio::spawn(async move {
                    tokio::time::sleep(delay).await;
                    let _ = socket.send_to(&data, to).await;
                });
            } else {
                send_one(socket, d, to).await?;
            }
            sent += 1;
            if let Some(h) = held.take() {
                send_one(socket, &h, to).await?;
                sent += 1;
            }
        }
        if let Some(h) = held {
            send_one(socket, &h, to).await?;
            sent += 1;
        }
        Ok(sent)
    }
}

async fn send_one(socket: &UdpSocket, data: &[u8], to: SocketAddr) -> std::io::Result<()> {
    match socket.send_to(data, to).await {
        Ok(_) => Ok(()),
        // A stale ICMP "port unreachable" from an earlier datagram: the control stream, not the
        // media socket, decides the session's fate.
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => Ok(()),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn run(faults: &MediaFaults, reorder: bool, n: u8) -> Vec<u8> {
        let rx = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let tx = Arc::new(UdpSocket::bind("127.0.0.1:0").await.unwrap());
        let to = rx.local_addr().unwrap();
        let data: Vec<[u8; 1]> = (0..n).map(|i| [i]).collect();
        let sent =
            MediaFaults::send_all(Some(faults), &tx, to, data.iter().map(|d| &d[..]), reorder)
                .await
                .unwrap();
        let mut got = Vec::new();
        let mut buf = [0u8; 8];
        for _ in 0..sent {
            let (len, _) = tokio::time::timeout(Duration::from_secs(2), rx.recv_from(&mut buf))
                .await
                .expect("datagram")
                .unwrap();
            got.push(buf[..len][0]);
        }
        got
    }

    #[tokio::test]
    async fn drop_reorder_and_delay() {
        let f = MediaFaults::default();
        assert_eq!(
            run(&f, true, 4).await,
            vec![0, 1, 2, 3],
            "no faults: untouched"
        );
        f.set_reorder_percent(100);
        assert_eq!(run(&f, true, 4).await, vec![1, 0, 3, 2], "pairs swapped");
        assert_eq!(
            run(&f, false, 3).await,
            vec![0, 1, 2],
            "audio is never reordered"
        );
        f.set_reorder_percent(0);
        f.set_delay(100, Duration::from_millis(30));
        assert_eq!(run(&f, true, 3).await.len(), 3, "delayed, not lost");
        f.set_delay(0, Duration::ZERO);
        f.set_drop_percent(100);
        assert!(run(&f, true, 5).await.is_empty(), "all dropped");
    }

    #[tokio::test]
    async fn corrupt_replaces_datagrams_with_random_bytes() {
        let f = MediaFaults::default();
        f.set_corrupt_percent(100);
        assert!(!f.is_idle());
        let rx = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let tx = Arc::new(UdpSocket::bind("127.0.0.1:0").await.unwrap());
        let data = [[7u8; 4]; 20];
        let sent = MediaFaults::send_all(
            Some(&f),
            &tx,
            rx.local_addr().unwrap(),
            data.iter().map(|d| &d[..]),
            true,
        )
        .await
        .unwrap();
        assert_eq!(sent, 20, "replaced, not dropped");
        let mut lens = std::collections::HashSet::new();
        let mut buf = [0u8; 2048];
        for _ in 0..sent {
            let (len, _) = tokio::time::timeout(Duration::from_secs(2), rx.recv_from(&mut buf))
                .await
                .expect("datagram")
                .unwrap();
            assert!((1..=1500).contains(&len));
            assert_ne!(
                &buf[..len],
                &[7u8; 4][..],
                "an original datagram got through"
            );
            lens.insert(len);
        }
        assert!(lens.len() > 1, "random lengths");
    }
}
