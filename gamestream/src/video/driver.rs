//! The host video port's way out: a frame's shards in as few segmented (UDP GSO) sends as the
//! platform allows, or one by one through the host's fault wrapper when test faults are on.
//! It lives beside the segmented sender it uses; the session's media driver (`host::media_driver`)
//! owns one per session and feeds it the frames its [`crate::host::HostMediaCore`] packetized.
//!
//! Also here: the socket buffer sizes both ends of a video stream ask for.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::UdpSocket;

use super::batch::BatchSender;
use crate::host::{LossInjection, MediaOut};

/// Socket buffer size asked for: a 4K keyframe arrives as a burst of several hundred datagrams,
/// far more than Linux's default ~200 KiB receive buffer holds.
const SOCKET_BUFFER_BYTES: usize = 4 << 20;

/// Best effort: the kernel may cap the value (net.core.rmem_max / wmem_max).
pub(crate) fn enlarge_buffers(socket: &UdpSocket) {
    let sock = socket2::SockRef::from(socket);
    if let Err(e) = sock.set_recv_buffer_size(SOCKET_BUFFER_BYTES) {
        tracing::debug!(error = %e, "video socket: SO_RCVBUF not set");
    }
    if let Err(e) = sock.set_send_buffer_size(SOCKET_BUFFER_BYTES) {
        tracing::debug!(error = %e, "video socket: SO_SNDBUF not set");
    }
}

/// The host's video socket on the way out.
#[derive(Debug)]
pub(crate) struct VideoOut {
    out: MediaOut,
    /// Segmented sends; `None` = one datagram per send (no platform support, or it failed once).
    batch: Option<BatchSender>,
}

impl VideoOut {
    /// Datagrams to `socket` (its buffers enlarged), less `loss`; video may be reordered by the
    /// live faults.
    pub(crate) fn new(socket: Arc<UdpSocket>, loss: LossInjection) -> Self {
        enlarge_buffers(&socket);
        let batch = BatchSender::new(&socket);
        Self {
            out: MediaOut::new(socket, loss, true),
            batch,
        }
    }

    /// The fault wrapper (live faults, the socket).
    pub(crate) fn out(&mut self) -> &mut MediaOut {
        &mut self.out
    }

    /// Sends one frame's datagrams (back to back, `stride` bytes each) to `to`; returns how many
    /// were sent or scheduled.
    pub(crate) async fn send(
        &mut self,
        to: SocketAddr,
        datagrams: &[u8],
        stride: usize,
    ) -> io::Result<usize> {
        let count = datagrams.len().div_ceil(stride.max(1));
        let mut skip = 0;
        if let Some(sender) = self.batch.as_ref().filter(|_| self.out.is_plain()) {
            match sender.send(self.out.socket(), datagrams, stride, to).await {
                Ok(()) => return Ok(count),
                // A stale ICMP "port unreachable": the client may be restarting; the control
                // stream, not the media socket, decides the session's fate.
                Err((_, e)) if e.kind() == io::ErrorKind::ConnectionRefused => return Ok(0),
                Err((done, e)) => {
                    // E.g. a NIC or path that refuses segmentation: single datagrams from now
                    // on, starting with what this frame has left.
                    tracing::debug!(error = %e, "segmented send refused; sending datagrams singly");
                    self.batch = None;
                    skip = done / stride.max(1);
                }
            }
        }
        let rest = datagrams.chunks(stride.max(1)).skip(skip);
        let sent = self.out.send_all(to, rest).await?;
        Ok(skip + sent)
    }
}
