//! One task per session moves its media: it owns the session's video and audio UDP sockets and
//! its [`HostMediaCore`], feeds the core every datagram the sockets receive (the client's pings),
//! packetizes what the application hands its [`VideoSender`](super::VideoSender) and
//! [`AudioSender`](super::AudioSender), and sends the result through the fault wrapper.
//!
//! Why one task: the decisions (which ping opens a stream, sequence numbers, FEC) are the core's,
//! made once for the production host and the in-memory pair test; the task only does I/O. The
//! ENet control stream is not here: the host keeps one control server for all sessions, as Wolf
//! and Sunshine do.
//!
//! A stream's socket is freed as soon as its sender is closed or dropped; the task ends when
//! both are gone.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot, watch};

use super::faults::{LossInjection, MediaFaults, MediaOut};
use super::media_core::HostMediaCore;
use crate::audio::AudioError;
use crate::client::StreamSocket;
use crate::video::{FrameInfo, VideoError, VideoOut};

/// Room for a ping: only the first 20 bytes of a datagram decide whether it is one.
const PING_BUFFER: usize = 256;

/// What a sender asks of the driver.
pub(super) enum Command<J> {
    /// Packetize and send.
    Send(J),
    /// Attach (or remove) the host's live faults.
    Faults(Option<Arc<MediaFaults>>),
    /// Free the stream's socket, then answer.
    Close(oneshot::Sender<()>),
}

/// One access unit to send (what a [`super::VideoSender`] hands its driver).
#[derive(Debug)]
pub struct VideoJob {
    pub(super) access_unit: Vec<u8>,
    pub(super) info: FrameInfo,
    pub(super) reply: oneshot::Sender<Result<usize, VideoError>>,
}

/// One Opus packet to send (what an [`super::AudioSender`] hands its driver).
#[derive(Debug)]
pub struct AudioJob {
    pub(super) opus: Vec<u8>,
    pub(super) reply: oneshot::Sender<Result<bool, AudioError>>,
}

/// The driver's end of one media stream.
struct Port<O, J> {
    socket: Arc<UdpSocket>,
    out: O,
    cmds: mpsc::UnboundedReceiver<Command<J>>,
    client: watch::Sender<Option<SocketAddr>>,
}

/// The sender's end of one media stream.
pub(super) struct Link<J> {
    pub(super) cmds: mpsc::UnboundedSender<Command<J>>,
    pub(super) client: watch::Receiver<Option<SocketAddr>>,
    pub(super) local_addr: SocketAddr,
}

/// One stream's socket and settings, before the driver starts.
pub(super) struct StreamSetup {
    pub(super) socket: UdpSocket,
    pub(super) loss: LossInjection,
}

fn port<O, J>(
    setup: StreamSetup,
    out: impl FnOnce(Arc<UdpSocket>, LossInjection) -> O,
) -> io::Result<(Port<O, J>, Link<J>)> {
    let local_addr = setup.socket.local_addr()?;
    let socket = Arc::new(setup.socket);
    let (cmds_tx, cmds) = mpsc::unbounded_channel();
    let (client, client_rx) = watch::channel(None);
    Ok((
        Port {
            out: out(Arc::clone(&socket), setup.loss),
            socket,
            cmds,
            client,
        },
        Link {
            cmds: cmds_tx,
            client: client_rx,
            local_addr,
        },
    ))
}

/// The senders' ends of the streams a driver was started with.
pub(super) type Links = (Option<Link<VideoJob>>, Option<Link<AudioJob>>);

/// Starts the driver of a session's media (either stream may be absent: a lone sender).
pub(super) fn spawn(
    core: HostMediaCore,
    video: Option<StreamSetup>,
    audio: Option<StreamSetup>,
    faults: Option<Arc<MediaFaults>>,
) -> io::Result<Links> {
    let (video_port, video_link) = match video {
        Some(setup) => {
            let (mut p, l) = port(setup, VideoOut::new)?;
            p.out.out().set_faults(faults.clone());
            (Some(p), Some(l))
        }
        None => (None, None),
    };
    let (audio_port, audio_link) = match audio {
        Some(setup) => {
            let (mut p, l) = port(setup, |s, loss| MediaOut::new(s, loss, false))?;
            p.out.set_faults(faults);
            (Some(p), Some(l))
        }
        None => (None, None),
    };
    let driver = Driver {
        core,
        video: video_port,
        audio: audio_port,
    };
    tokio::spawn(driver.run());
    Ok((video_link, audio_link))
}

struct Driver {
    core: HostMediaCore,
    video: Option<Port<VideoOut, VideoJob>>,
    audio: Option<Port<MediaOut, AudioJob>>,
}

/// What woke the driver.
enum Wake {
    Video(Option<Command<VideoJob>>),
    Audio(Option<Command<AudioJob>>),
    Datagram(StreamSocket, io::Result<(usize, SocketAddr)>),
}

impl Driver {
    async fn run(mut self) {
        let mut video_buf = [0u8; PING_BUFFER];
        let mut audio_buf = [0u8; PING_BUFFER];
        while self.video.is_some() || self.audio.is_some() {
            let (video_cmds, video_socket) = parts(self.video.as_mut());
            let (audio_cmds, audio_socket) = parts(self.audio.as_mut());
            let wake = tokio::select! {
                cmd = next_command(video_cmds) => Wake::Video(cmd),
                cmd = next_command(audio_cmds) => Wake::Audio(cmd),
                r = recv(video_socket, &mut video_buf) => Wake::Datagram(StreamSocket::Video, r),
                r = recv(audio_socket, &mut audio_buf) => Wake::Datagram(StreamSocket::Audio, r),
            };
            match wake {
                Wake::Video(cmd) => self.on_video(cmd).await,
                Wake::Audio(cmd) => self.on_audio(cmd).await,
                Wake::Datagram(socket, Ok((len, from))) => {
                    let buf = match socket {
                        StreamSocket::Video => &video_buf[..len],
                        _ => &audio_buf[..len],
                    };
                    self.on_datagram(socket, from, buf);
                }
                Wake::Datagram(socket, Err(e)) => {
                    // ICMP errors surface as receive errors on some platforms; keep listening.
                    if !matches!(
                        e.kind(),
                        io::ErrorKind::ConnectionReset | io::ErrorKind::ConnectionRefused
                    ) {
                        tracing::debug!(?socket, "media socket: {e}");
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                }
            }
        }
    }

    fn on_datagram(&mut self, socket: StreamSocket, from: SocketAddr, datagram: &[u8]) {
        let Some(client) = self.core.handle_input(socket, from, datagram) else {
            return;
        };
        tracing::debug!(%from, ?socket, "media ping: client address learned");
        let published = match socket {
            StreamSocket::Video => self.video.as_ref().map(|p| &p.client),
            _ => self.audio.as_ref().map(|p| &p.client),
        };
        if let Some(tx) = published {
            tx.send_replace(Some(client));
        }
    }

    async fn on_video(&mut self, cmd: Option<Command<VideoJob>>) {
        let Some(port) = self.video.as_mut() else {
            return;
        };
        match cmd {
            Some(Command::Send(job)) => {
                let sent = send_video(&mut self.core, &mut port.out, &job).await;
                let _ = job.reply.send(sent);
            }
            Some(Command::Faults(f)) => port.out.out().set_faults(f),
            Some(Command::Close(done)) => {
                self.video = None;
                let _ = done.send(());
            }
            None => self.video = None,
        }
    }

    async fn on_audio(&mut self, cmd: Option<Command<AudioJob>>) {
        let Some(port) = self.audio.as_mut() else {
            return;
        };
        match cmd {
            Some(Command::Send(job)) => {
                let sent = send_audio(&mut self.core, &port.out, &job.opus).await;
                let _ = job.reply.send(sent);
            }
            Some(Command::Faults(f)) => port.out.set_faults(f),
            Some(Command::Close(done)) => {
                self.audio = None;
                let _ = done.send(());
            }
            None => self.audio = None,
        }
    }
}

/// Packetizes one access unit and sends its datagrams; [`VideoError::NoClient`] before the
/// client's first ping.
async fn send_video(
    core: &mut HostMediaCore,
    out: &mut VideoOut,
    job: &VideoJob,
) -> Result<usize, VideoError> {
    if core.client(StreamSocket::Video).is_none() {
        return Err(VideoError::NoClient);
    }
    core.send_video(&job.access_unit, job.info)?;
    let mut sent = 0;
    while let Some(burst) = core.poll_burst() {
        match out.send(burst.to, &burst.bytes, burst.stride).await {
            Ok(n) => sent += n,
            Err(e) => {
                // What is left of the frame is not sent, as before the error.
                while core.poll_burst().is_some() {}
                return Err(e.into());
            }
        }
    }
    Ok(sent)
}

/// Packetizes and sends one Opus packet; `false` (no sequence number used) before the client's
/// first ping.
async fn send_audio(
    core: &mut HostMediaCore,
    out: &MediaOut,
    opus: &[u8],
) -> Result<bool, AudioError> {
    let Some(to) = core.client(StreamSocket::Audio) else {
        return Ok(false);
    };
    core.send_audio(opus);
    let bursts: Vec<_> = std::iter::from_fn(|| core.poll_burst()).collect();
    out.send_all(to, bursts.iter().flat_map(|b| b.datagrams()))
        .await?;
    Ok(true)
}

/// A stream's commands and socket, borrowed apart so that the driver waits on both.
fn parts<O, J>(
    port: Option<&mut Port<O, J>>,
) -> (
    Option<&mut mpsc::UnboundedReceiver<Command<J>>>,
    Option<&UdpSocket>,
) {
    match port {
        Some(p) => (Some(&mut p.cmds), Some(&*p.socket)),
        None => (None, None),
    }
}

/// The next command of a stream (never resolves once it is gone).
async fn next_command<J>(
    cmds: Option<&mut mpsc::UnboundedReceiver<Command<J>>>,
) -> Option<Command<J>> {
    match cmds {
        Some(c) => c.recv().await,
        None => std::future::pending().await,
    }
}

/// The next datagram on a stream's socket (never resolves once it is gone).
async fn recv(socket: Option<&UdpSocket>, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
    match socket {
        Some(s) => s.recv_from(buf).await,
        None => std::future::pending().await,
    }
}
