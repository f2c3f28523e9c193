//! The one task of a running stream: it owns the three UDP sockets and the timer, feeds the
//! [`ClientCore`] and carries out what it asks for.
//!
//! This replaced four tasks (video receiver, audio receiver, ENet driver and the pump that joined
//! them) and the atomics they shared: a video datagram now goes from the socket through the core
//! to the consumer's channel without crossing another queue.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use super::core::{ClientCore, StreamSocket};
use super::{ClientError, SessionEvent, SessionStats};
use crate::control::ControlError;
use crate::input::InputEvent;
use crate::video::{enlarge_buffers, BatchReceiver};

/// Room for one audio or control datagram.
const DATAGRAM_BYTES: usize = 2048;
/// Events queued for a consumer that is busy: about 8 s of 60 fps video with audio.
const EVENT_QUEUE: usize = 512;

pub(super) enum Command {
    Input(Box<InputEvent>),
    RequestIdr,
    Close(oneshot::Sender<()>),
}

/// The owner's side of the driver.
#[derive(Debug)]
pub(super) struct DriverHandle {
    pub(super) commands: mpsc::UnboundedSender<Command>,
    pub(super) stats: Arc<Mutex<SessionStats>>,
    pub(super) task: JoinHandle<()>,
}

impl DriverHandle {
    pub(super) fn command(&self, c: Command) -> Result<(), ClientError> {
        self.commands
            .send(c)
            .map_err(|_| ClientError::Control(ControlError::Closed))
    }

    pub(super) fn stats(&self) -> SessionStats {
        *self.stats.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The local address for a socket that talks to `host`: loopback for a loopback host (so a
/// stream on one machine never leaves it), else the wildcard address of its family.
fn bind_address(host: IpAddr) -> SocketAddr {
    match host {
        IpAddr::V4(ip) if ip.is_loopback() => (Ipv4Addr::LOCALHOST, 0).into(),
        IpAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
        IpAddr::V6(ip) if ip.is_loopback() => (Ipv6Addr::LOCALHOST, 0).into(),
        IpAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
    }
}

struct VideoSocket {
    socket: UdpSocket,
    batch: BatchReceiver,
}

struct Driver {
    core: ClientCore,
    host_ip: IpAddr,
    video: Option<VideoSocket>,
    audio: Option<UdpSocket>,
    control: UdpSocket,
    events: mpsc::Sender<SessionEvent>,
    stats: Arc<Mutex<SessionStats>>,
    commands: mpsc::UnboundedReceiver<Command>,
    /// Answered once a close has ended the stream.
    closing: Option<oneshot::Sender<()>>,
}

/// Binds the sockets, brings the control stream up (the core's connect deadline bounds it) and
/// leaves the driver running. Fails like the ENet connect does.
pub(super) async fn start(
    core: ClientCore,
    host_ip: IpAddr,
) -> Result<(DriverHandle, mpsc::Receiver<SessionEvent>), ClientError> {
    let bind = bind_address(host_ip);
    let video = UdpSocket::bind(bind).await?;
    enlarge_buffers(&video);
    let batch = BatchReceiver::new(&video)?;
    let audio = UdpSocket::bind(bind).await?;
    let control = UdpSocket::bind(bind).await?;
    let (events_tx, events_rx) = mpsc::channel(EVENT_QUEUE);
    let (commands_tx, commands_rx) = mpsc::unbounded_channel();
    let stats = Arc::new(Mutex::new(core.stats()));
    let mut driver = Driver {
        core,
        host_ip,
        video: Some(VideoSocket {
            socket: video,
            batch,
        }),
        audio: Some(audio),
        control,
        events: events_tx,
        stats: Arc::clone(&stats),
        commands: commands_rx,
        closing: None,
    };
    driver.flush().await;
    while !driver.core.is_connected() {
        if driver.core.is_ended() {
            return Err(ClientError::Control(ControlError::ConnectTimeout));
        }
        driver.step().await;
    }
    let task = tokio::spawn(driver.run());
    let handle = DriverHandle {
        commands: commands_tx,
        stats,
        task,
    };
    Ok((handle, events_rx))
}

/// What woke the driver.
enum Wake {
    Command(Option<Command>),
    Video,
    Audio(usize, SocketAddr),
    Control(usize, SocketAddr),
    Timeout,
    Nothing,
}

impl Driver {
    async fn run(mut self) {
        while !self.core.is_ended() {
            self.step().await;
            if !self.core.media_open() {
                // Closing or ended: the media sockets go now, as a stopped client's would.
                self.video = None;
                self.audio = None;
            }
        }
        if let Some(done) = self.closing.take() {
            let _ = done.send(());
        }
    }

    fn apply(&mut self, command: Option<Command>) {
        let result = match command {
            Some(Command::Input(event)) => self.core.send_input(&event),
            Some(Command::RequestIdr) => self.core.request_idr(),
            Some(Command::Close(done)) => {
                self.closing = Some(done);
                self.core.close(Instant::now());
                Ok(())
            }
            None => {
                self.core.abort();
                Ok(())
            }
        };
        if let Err(e) = result {
            tracing::debug!("stream command not carried out: {e}");
        }
    }

    /// Waits for a command, a datagram or the core's deadline, feeds it, and flushes.
    async fn step(&mut self) {
        let deadline = self.core.poll_timeout().unwrap_or_else(Instant::now);
        let mut buf = [0u8; DATAGRAM_BYTES];
        let mut audio_buf = [0u8; DATAGRAM_BYTES];
        let accept_commands = self.closing.is_none();
        let wake = tokio::select! {
            biased;
            command = self.commands.recv(), if accept_commands => Wake::Command(command),
            ready = readable(self.video.as_ref()) => match ready {
                Ok(()) => Wake::Video,
                Err(_) => Wake::Nothing,
            },
            received = recv(self.audio.as_ref(), &mut audio_buf) => match received {
                Ok((n, from)) => Wake::Audio(n, from),
                Err(_) => Wake::Nothing,
            },
            received = self.control.recv_from(&mut buf) => match received {
                Ok((n, from)) => Wake::Control(n, from),
                Err(_) => Wake::Nothing,
            },
            () = tokio::time::sleep_until(deadline.into()) => Wake::Timeout,
        };
        let now = Instant::now();
        match wake {
            Wake::Command(command) => self.apply(command),
            Wake::Video => self.read_video(),
            Wake::Audio(n, from) => {
                self.core
                    .handle_input(now, StreamSocket::Audio, from, &audio_buf[..n]);
            }
            Wake::Control(n, from) => {
                self.core
                    .handle_input(now, StreamSocket::Control, from, &buf[..n]);
            }
            Wake::Timeout => self.core.handle_timeout(now),
            Wake::Nothing => {}
        }
        self.flush().await;
    }

    fn read_video(&mut self) {
        let Some(video) = self.video.as_mut() else {
            return;
        };
        // `WouldBlock` (a spurious wake-up) and transient errors (ICMP) alike: nothing to feed.
        if video.batch.try_recv(&video.socket).is_err() {
            return;
        }
        let now = Instant::now();
        // Batched reads do not say where each datagram came from; the core checks video by its
        // framing and keys, not by its source, so the host's address stands in.
        let from = SocketAddr::new(self.host_ip, 0);
        for datagram in video.batch.datagrams() {
            self.core
                .handle_input(now, StreamSocket::Video, from, datagram);
        }
    }

    /// Sends what the core queued, hands its events to the consumer, publishes the counters.
    async fn flush(&mut self) {
        while let Some(t) = self.core.poll_transmit() {
            let socket = match t.socket {
                StreamSocket::Video => self.video.as_ref().map(|v| &v.socket),
                StreamSocket::Audio => self.audio.as_ref(),
                StreamSocket::Control => Some(&self.control),
            };
            // Pings before the host has bound (ICMP) and late pings after close are not fatal.
            if let Some(Err(e)) = match socket {
                Some(s) => Some(s.send_to(&t.payload, t.to).await),
                None => None,
            } {
                tracing::debug!("{:?} datagram not sent: {e}", t.socket);
            }
        }
        while let Some(event) = self.core.poll_event() {
            // A consumer that went away still gets its stream ended properly by close or drop.
            let _ = self.events.send(event).await;
        }
        *self.stats.lock().unwrap_or_else(|p| p.into_inner()) = self.core.stats();
    }
}

async fn readable(video: Option<&VideoSocket>) -> std::io::Result<()> {
    match video {
        Some(v) => v.socket.readable().await,
        None => std::future::pending().await,
    }
}

async fn recv(socket: Option<&UdpSocket>, buf: &mut [u8]) -> std::io::Result<(usize, SocketAddr)> {
    match socket {
        Some(s) => s.recv_from(buf).await,
        None => std::future::pending().await,
    }
}
