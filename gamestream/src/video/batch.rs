//! Batched datagram I/O for video: segmented sends for the host, batched reads for the client.
//!
//! A 1080p60 stream at 20 Mbit/s is about 3 000 datagrams a second, and one `recvfrom` per
//! datagram was most of what the streamer still spent (one syscall and one trip through the
//! reactor each). A frame arrives as a burst, so one `recvmmsg` usually returns many of its
//! shards at once; where the NIC coalesces same-sized datagrams (UDP GRO), one buffer even holds
//! several of them, split again at `stride`. `quinn-udp` does both portably (falling back to one
//! datagram per call where the platform has neither), so none of that `unsafe` is ours.

use quinn_udp::{RecvMeta, Transmit, UdpSockRef, UdpSocketState};
use std::io::{self, IoSliceMut};
use std::net::SocketAddr;
use tokio::io::Interest;
use tokio::net::UdpSocket;

/// Room for one read: the largest UDP payload, which also bounds a GRO-coalesced buffer.
const SLOT_BYTES: usize = 65_536;

/// Reusable buffers and the socket's platform state for batched reads.
///
/// Untouched pages of the slots are never faulted in: datagrams of a few kB touch one page of
/// each slot, so the batch costs about `BATCH_SIZE` pages of memory, not 2 MB.
#[derive(Debug)]
pub(crate) struct BatchReceiver {
    state: UdpSocketState,
    slots: Vec<u8>,
    meta: Vec<RecvMeta>,
    /// Filled entries of `meta` after the last successful [`BatchReceiver::try_recv`].
    filled: usize,
}

impl BatchReceiver {
    /// Prepares `socket` for batched (and, where supported, GRO) reads.
    pub(crate) fn new(socket: &UdpSocket) -> io::Result<Self> {
        let state = UdpSocketState::new(UdpSockRef::from(socket))?;
        let batch = quinn_udp::BATCH_SIZE;
        Ok(Self {
            state,
            slots: vec![0; batch * SLOT_BYTES],
            meta: vec![RecvMeta::default(); batch],
            filled: 0,
        })
    }

    /// Reads what the socket holds now without waiting; `WouldBlock` when it holds nothing, which
    /// also clears tokio's readiness so that the next `readable()` waits.
    pub(crate) fn try_recv(&mut self, socket: &UdpSocket) -> io::Result<usize> {
        let Self {
            state,
            slots,
            meta,
            filled,
        } = self;
        *filled = 0;
        let mut chunks = slots.chunks_mut(SLOT_BYTES);
        let mut bufs: [IoSliceMut<'_>; quinn_udp::BATCH_SIZE] =
            std::array::from_fn(|_| IoSliceMut::new(chunks.next().unwrap_or_default()));
        let n = socket.try_io(Interest::READABLE, || {
            state.recv(UdpSockRef::from(socket), &mut bufs, meta)
        })?;
        *filled = n;
        Ok(n)
    }

    /// The datagrams of the last read, in arrival order.
    pub(crate) fn datagrams(&self) -> impl Iterator<Item = &[u8]> + '_ {
        self.slots
            .chunks(SLOT_BYTES)
            .zip(&self.meta)
            .take(self.filled)
            .flat_map(|(slot, meta)| {
                let len = meta.len.min(slot.len());
                // `stride` is 0 only if the platform reported nothing; treat it as one datagram.
                let stride = if meta.stride == 0 {
                    len.max(1)
                } else {
                    meta.stride
                };
                slot[..len].chunks(stride)
            })
    }
}

/// The IPv4/IPv6 length fields cap one segmented send at 64 KiB of payload.
const MAX_SEGMENTED_BYTES: usize = 65_000;

/// Sends a frame's shards in as few syscalls as the platform allows: one segmented (UDP GSO)
/// send per up to 64 KiB where the kernel has it, as Sunshine sends a frame. The client then
/// wakes once per frame instead of once per shard or two.
#[derive(Debug)]
pub(super) struct BatchSender {
    state: UdpSocketState,
}

impl BatchSender {
    /// `None` where the socket cannot be set up for it: the caller sends one datagram at a time.
    pub(super) fn new(socket: &UdpSocket) -> Option<Self> {
        match UdpSocketState::new(UdpSockRef::from(socket)) {
            Ok(state) => Some(Self { state }),
            Err(e) => {
                tracing::debug!(error = %e, "video socket: segmented sends unavailable");
                None
            }
        }
    }

    /// Sends `datagrams` (back to back, `stride` bytes each) to `to`. On an error, also says how
    /// many bytes went out before it, so that the caller sends the rest singly (a kernel or NIC
    /// that refuses segmentation) without repeating any.
    pub(super) async fn send(
        &self,
        socket: &UdpSocket,
        datagrams: &[u8],
        stride: usize,
        to: SocketAddr,
    ) -> Result<(), (usize, io::Error)> {
        let per_send = self
            .state
            .max_gso_segments()
            .min(MAX_SEGMENTED_BYTES / stride.max(1))
            .max(1);
        let mut sent = 0;
        for group in datagrams.chunks(per_send * stride) {
            let transmit = Transmit {
                destination: to,
                ecn: None,
                contents: group,
                segment_size: (group.len() > stride).then_some(stride),
                src_ip: None,
            };
            socket
                .async_io(Interest::WRITABLE, || {
                    self.state.try_send(UdpSockRef::from(socket), &transmit)
                })
                .await
                .map_err(|e| (sent, e))?;
            sent += group.len();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    #[tokio::test]
    async fn a_burst_comes_back_in_order_in_few_reads() {
        let rx = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
        let tx = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
        let to = rx.local_addr().unwrap();
        let mut batch = BatchReceiver::new(&rx).unwrap();
        // Sizes vary so that no two neighbours could be mistaken for each other.
        let sent: Vec<Vec<u8>> = (0..100u32)
            .map(|i| vec![i as u8; 100 + (i as usize * 13) % 1300])
            .collect();
        for d in &sent {
            tx.send_to(d, to).await.unwrap();
        }
        let mut got: Vec<Vec<u8>> = Vec::new();
        let mut reads = 0;
        while got.len() < sent.len() {
            rx.readable().await.unwrap();
            match batch.try_recv(&rx) {
                Ok(_) => {
                    reads += 1;
                    got.extend(batch.datagrams().map(<[u8]>::to_vec));
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => panic!("recv: {e}"),
            }
        }
        assert_eq!(got, sent);
        println!("100 datagrams in {reads} reads");
        assert!(reads < 100, "no batching: {reads} reads for 100 datagrams");
    }

    #[tokio::test]
    async fn a_segmented_send_arrives_as_separate_datagrams() {
        let rx = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
        let tx = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
        let mut batch = BatchReceiver::new(&rx).unwrap();
        let sender = BatchSender::new(&tx).unwrap();
        // 120 shards of 1024 bytes: more than one segmented send's worth.
        let stride = 1024;
        let shards: Vec<u8> = (0..120u32)
            .flat_map(|i| std::iter::repeat_n(i as u8, stride))
            .collect();
        sender
            .send(&tx, &shards, stride, rx.local_addr().unwrap())
            .await
            .unwrap();
        let mut got: Vec<Vec<u8>> = Vec::new();
        while got.len() < 120 {
            rx.readable().await.unwrap();
            if batch.try_recv(&rx).is_ok() {
                got.extend(batch.datagrams().map(<[u8]>::to_vec));
            }
        }
        let want: Vec<Vec<u8>> = shards.chunks(stride).map(<[u8]>::to_vec).collect();
        assert_eq!(got, want);
    }

    #[tokio::test]
    async fn an_empty_socket_would_block() {
        let rx = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
        let mut batch = BatchReceiver::new(&rx).unwrap();
        let err = batch.try_recv(&rx).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::WouldBlock);
        assert_eq!(batch.datagrams().count(), 0);
    }
}
