//! [`ClientSession`]: a [`ClientStream`] driven by a task of its own, its events on a channel.
//!
//! For callers that hold no loop of their own around the stream (tools, tests, the demo host's
//! checks). The streamer drives its [`ClientStream`] in place instead, with no task or channel
//! between the sockets and the browser-bound sink.

use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use super::{ClientError, ClientStream, SessionEvent, SessionStats};
use crate::input::InputEvent;
use crate::rtsp::RtspOutcome;
use crate::AppVersion;

/// Events queued for a consumer that is busy: about 8 s of 60 fps video with audio.
const EVENT_QUEUE: usize = 512;

enum Command {
    Input(Box<InputEvent>),
    RequestIdr,
    Bitrate(u32),
    Mic(Vec<u8>, u32),
    Stop(oneshot::Sender<Result<(), ClientError>>),
}

/// A running stream from one host, handled from outside its task. Dropped without
/// [`ClientSession::stop`], the task sends one ENet disconnect and ends; nothing is awaited and
/// `/cancel` is not sent.
#[derive(Debug)]
pub struct ClientSession {
    version: AppVersion,
    outcome: RtspOutcome,
    has_mic: bool,
    live_bitrate: bool,
    commands: mpsc::UnboundedSender<Command>,
    stats: tokio::sync::watch::Receiver<SessionStats>,
    task: JoinHandle<()>,
}

impl ClientSession {
    /// Starts the task that drives `stream`.
    pub(super) fn spawn(stream: ClientStream) -> (Self, mpsc::Receiver<SessionEvent>) {
        let (events_tx, events_rx) = mpsc::channel(EVENT_QUEUE);
        let (commands_tx, commands) = mpsc::unbounded_channel();
        let (stats_tx, stats) = tokio::sync::watch::channel(stream.stats());
        let session = ClientSession {
            version: stream.app_version(),
            outcome: stream.outcome().clone(),
            has_mic: stream.has_mic(),
            live_bitrate: stream.has_live_bitrate(),
            commands: commands_tx,
            stats,
            task: tokio::spawn(drive(stream, commands, events_tx, stats_tx)),
        };
        (session, events_rx)
    }

    /// The host's appversion.
    pub fn app_version(&self) -> AppVersion {
        self.version
    }

    /// What RTSP negotiated (ports, codec, encryption, audio layout).
    pub fn outcome(&self) -> &RtspOutcome {
        &self.outcome
    }

    /// Sends one input event, encoded and wrapped for this host's generation.
    pub fn send_input(&self, event: &InputEvent) -> Result<(), ClientError> {
        if !event.supported_by(self.version) {
            return Err(ClientError::UnsupportedInput(self.version));
        }
        self.command(Command::Input(Box::new(event.clone())))
    }

    /// True if the host took the microphone stream ([`crate::mic`]).
    pub fn has_mic(&self) -> bool {
        self.has_mic
    }

    /// Queues one Opus packet of `samples` samples (48 kHz, mono) for the host's microphone
    /// ([`ClientStream::send_mic`]); dropped when the session has no microphone stream.
    pub fn send_mic(&self, opus: &[u8], samples: u32) -> Result<(), ClientError> {
        self.command(Command::Mic(opus.to_vec(), samples))
    }

    /// Asks the host for a keyframe (e.g. after a decoder reset).
    pub fn request_idr(&self) -> Result<(), ClientError> {
        self.command(Command::RequestIdr)
    }

    /// Whether [`ClientSession::set_bitrate`] reaches the host's encoder.
    pub fn has_live_bitrate(&self) -> bool {
        self.live_bitrate
    }

    /// Asks the host's encoder for `kbps` ([`ClientStream::set_bitrate`]); `Ok(false)` from a
    /// host without live bitrate control.
    pub fn set_bitrate(&self, kbps: u32) -> Result<bool, ClientError> {
        if !self.live_bitrate {
            return Ok(false);
        }
        self.command(Command::Bitrate(kbps)).map(|()| true)
    }

    /// Counters as of the last event.
    pub fn stats(&self) -> SessionStats {
        *self.stats.borrow()
    }

    /// Ends the stream as [`ClientStream::stop`] does (ENet disconnect acknowledged, then
    /// `/cancel` awaited) and waits for the task.
    pub async fn stop(mut self) -> Result<(), ClientError> {
        let (done_tx, done) = oneshot::channel();
        self.command(Command::Stop(done_tx))?;
        let result = done.await.unwrap_or(Err(ClientError::Control(
            crate::control::ControlError::Closed,
        )));
        let _ = (&mut self.task).await;
        result
    }

    fn command(&self, c: Command) -> Result<(), ClientError> {
        self.commands
            .send(c)
            .map_err(|_| ClientError::Control(crate::control::ControlError::Closed))
    }
}

async fn drive(
    mut stream: ClientStream,
    mut commands: mpsc::UnboundedReceiver<Command>,
    events: mpsc::Sender<SessionEvent>,
    stats: tokio::sync::watch::Sender<SessionStats>,
) {
    match pump(&mut stream, &mut commands, &events, &stats).await {
        Ending::Stop(done) => {
            let _ = done.send(stream.stop().await);
        }
        Ending::OwnerGone => {}
    }
}

/// Forwards events and carries out commands until `Stop` or the owner's going away.
async fn pump(
    stream: &mut ClientStream,
    commands: &mut mpsc::UnboundedReceiver<Command>,
    events: &mpsc::Sender<SessionEvent>,
    stats: &tokio::sync::watch::Sender<SessionStats>,
) -> Ending {
    loop {
        tokio::select! {
            biased;
            command = commands.recv() => if let Err(ending) = apply(stream, command) {
                return ending;
            },
            event = stream.next_event() => {
                let Some(event) = event else {
                    // Ended: wait for `Stop` (for `/cancel`) or for the owner to go away.
                    while let Some(command) = commands.recv().await {
                        if let Command::Stop(done) = command {
                            return Ending::Stop(done);
                        }
                    }
                    return Ending::OwnerGone;
                };
                stats.send_replace(stream.stats());
                // A consumer that went away still gets its stream ended by stop or drop. One that
                // stopped reading (its queue full) must not keep `Stop` from being carried out:
                // commands are handled while the event waits for room.
                let send = events.send(event);
                tokio::pin!(send);
                loop {
                    tokio::select! {
                        biased;
                        command = commands.recv() => if let Err(ending) = apply(stream, command) {
                            return ending;
                        },
                        _ = &mut send => break,
                    }
                }
            }
        }
    }
}

/// Why the task ends.
enum Ending {
    /// `Stop`: the task stops the stream (ENet disconnect, `/cancel`) and answers.
    Stop(oneshot::Sender<Result<(), ClientError>>),
    /// The owner went away: `Drop` sends the disconnect.
    OwnerGone,
}

/// Carries out one command; `Err` for those that end the task (`Stop` needs the stream by value).
fn apply(stream: &mut ClientStream, command: Option<Command>) -> Result<(), Ending> {
    let result = match command {
        Some(Command::Input(event)) => stream.send_input(&event),
        Some(Command::RequestIdr) => stream.request_idr(),
        Some(Command::Bitrate(kbps)) => stream.set_bitrate(kbps).map(drop),
        Some(Command::Mic(opus, samples)) => {
            if let Err(e) = stream.send_mic(&opus, samples) {
                tracing::debug!("mic packet not sent: {e}");
            }
            Ok(())
        }
        Some(Command::Stop(done)) => return Err(Ending::Stop(done)),
        None => return Err(Ending::OwnerGone),
    };
    if let Err(e) = result {
        tracing::debug!("stream command not carried out: {e}");
    }
    Ok(())
}
