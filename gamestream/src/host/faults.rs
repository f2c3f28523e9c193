//! Media fault injection for tests: drop, reorder, delay or corrupt a share of media datagrams.
//!
//! All of it lives in one sending wrapper of the host half, [`MediaOut`]: each session's media
//! driver (`host::media_driver`) hands it the datagrams of its video and audio sockets, and
//! neither the driver nor the sans-IO [`super::HostMediaCore`] rolls dice itself. [`MediaFaults`] is shared by
//! every sender of a host and adjustable while streams run (all zero = no effect, no cost);
//! [`LossInjection`] is a sender's fixed loss, set when it is made.

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
}

/// Fixed loss of one sender, for tests: a share of all datagrams, and chosen RTP sequence numbers
/// of audio data packets.
#[derive(Debug, Clone, Default)]
pub struct LossInjection {
    /// Probability (0..1) of dropping any datagram (data or FEC).
    pub probability: f64,
    /// Audio data packets (by RTP sequence) always dropped.
    pub drop_data_sequences: Vec<u16>,
}

impl LossInjection {
    fn is_none(&self) -> bool {
        self.probability <= 0.0 && self.drop_data_sequences.is_empty()
    }

    fn should_drop(&self, datagram: &[u8]) -> bool {
        if self.probability > 0.0 && rand::thread_rng().gen_bool(self.probability.min(1.0)) {
            return true;
        }
        match datagram {
            [_, pt, hi, lo, ..] if *pt == crate::audio::rtp::PT_AUDIO => self
                .drop_data_sequences
                .contains(&u16::from_be_bytes([*hi, *lo])),
            _ => false,
        }
    }
}

/// The way out of one media sender: its socket, with the test faults applied on the way.
#[derive(Debug)]
pub(crate) struct MediaOut {
    socket: Arc<UdpSocket>,
    loss: LossInjection,
    faults: Option<Arc<MediaFaults>>,
    /// Reordering is for video: audio packets are never swapped.
    reorder: bool,
}

impl MediaOut {
    /// Datagrams to `socket`, less `loss`; `reorder` allows the live faults to swap datagrams.
    pub(crate) fn new(socket: Arc<UdpSocket>, loss: LossInjection, reorder: bool) -> Self {
        Self {
            socket,
            loss,
            faults: None,
            reorder,
        }
    }

    /// The socket, for the video port's own fast path (segmented sends).
    pub(crate) fn socket(&self) -> &Arc<UdpSocket> {
        &self.socket
    }

    /// Attaches (or removes) the host's live faults.
    pub(crate) fn set_faults(&mut self, faults: Option<Arc<MediaFaults>>) {
        self.faults = faults;
    }

    /// True when nothing would be dropped, delayed or changed: the sender may send its own way.
    pub(crate) fn is_plain(&self) -> bool {
        self.loss.is_none() && self.faults.as_ref().is_none_or(|f| f.is_idle())
    }

    /// Sends `datagrams` to `to` with the faults applied. Returns how many were sent or scheduled.
    pub(crate) async fn send_all<'a>(
        &self,
        to: SocketAddr,
        datagrams: impl Iterator<Item = &'a [u8]>,
    ) -> std::io::Result<usize> {
        let socket = &self.socket;
        let kept = datagrams.filter(|d| !self.loss.should_drop(d));
        let Some(f) = self.faults.as_deref().filter(|f| !f.is_idle()) else {
            let mut sent = 0;
            for d in kept {
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
        for d in kept {
            if MediaFaults::roll(drop) {
                continue;
            }
            if MediaFaults::roll(corrupt) {
                let junk: Vec<u8> = {
                    let mut rng = rand::thread_rng();
                    let len = rng.gen_range(1..=1500);
                    (0..len).map(|_| rng.gen()).collect()
                };
                send_one(socket, &junk, to).await?;
                sent += 1;
                continue;
            }
            if self.reorder && held.is_none() && MediaFaults::roll(reorder_p) {
                held = Some(d.to_vec());
                continue;
            }
            if MediaFaults::roll(delay_p) && !delay.is_zero() {
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

    /// The next `n` datagrams `rx` receives, each within 2 s.
    async fn received(rx: &UdpSocket, n: usize) -> Vec<Vec<u8>> {
        let mut got = Vec::new();
        let mut buf = [0u8; 2048];
        for _ in 0..n {
            let (len, _) = tokio::time::timeout(Duration::from_secs(2), rx.recv_from(&mut buf))
                .await
                .expect("datagram")
                .unwrap();
            got.push(buf[..len].to_vec());
        }
        got
    }

    async fn run(faults: &Arc<MediaFaults>, reorder: bool, n: u8) -> Vec<u8> {
        let rx = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let tx = Arc::new(UdpSocket::bind("127.0.0.1:0").await.unwrap());
        let to = rx.local_addr().unwrap();
        let data: Vec<[u8; 1]> = (0..n).map(|i| [i]).collect();
        let mut out = MediaOut::new(tx, LossInjection::default(), reorder);
        out.set_faults(Some(Arc::clone(faults)));
        let sent = out.send_all(to, data.iter().map(|d| &d[..])).await.unwrap();
        let got = received(&rx, sent).await;
        got.iter().map(|d| d[0]).collect()
    }

    #[tokio::test]
    async fn drop_reorder_and_delay() {
        let f = Arc::new(MediaFaults::default());
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
        let f = Arc::new(MediaFaults::default());
        f.set_corrupt_percent(100);
        assert!(!f.is_idle());
        let rx = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let tx = Arc::new(UdpSocket::bind("127.0.0.1:0").await.unwrap());
        let data = [[7u8; 4]; 20];
        let mut out = MediaOut::new(tx, LossInjection::default(), true);
        out.set_faults(Some(f));
        assert!(!out.is_plain());
        let sent = out
            .send_all(rx.local_addr().unwrap(), data.iter().map(|d| &d[..]))
            .await
            .unwrap();
        assert_eq!(sent, 20, "replaced, not dropped");
        let mut lens = std::collections::HashSet::new();
        for datagram in received(&rx, sent).await {
            assert!((1..=1500).contains(&datagram.len()));
            assert_ne!(
                &datagram[..],
                &[7u8; 4][..],
                "an original datagram got through"
            );
            lens.insert(datagram.len());
        }
        assert!(lens.len() > 1, "random lengths");
    }
}
