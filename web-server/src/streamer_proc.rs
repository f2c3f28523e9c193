//! One `streamer` child process per browser connection.
//!
//! IPC runs on the child's stdin/stdout ([`wire::ipc::ServerCodec`]); its stderr lines are
//! re-emitted as this server's `tracing` lines tagged with the session key. Ending a stream means
//! the child exits: [`StreamerChild::reap`] waits for that (after `Stop`) and kills it after a
//! timeout, so no child outlives its connection; `kill_on_drop` is the last resort if the owner
//! is dropped early (a panic, a cancelled task).

use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::process::{ExitStatus, Stdio};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_util::Stream;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, ChildStderr, ChildStdin, ChildStdout, Command};
use tokio::task::JoinHandle;
use tokio_util::codec::{FramedRead, FramedWrite};
use wire::ipc::ServerCodec;

use crate::host_cleanup::HostCleanups;

/// IPC toward the streamer.
pub type IpcTx = FramedWrite<ChildStdin, ServerCodec>;
/// How long a frame the streamer has begun may stay unfinished. A streamer writes a frame in one
/// go (a 16 MiB one crosses the pipe in milliseconds), so a partial frame that sits for seconds
/// is a hung or corrupted process; without a limit nothing would decode and nothing would end
/// the stream (tests/hostile_net.rs: "half a frame, then hangs").
const PARTIAL_FRAME_LIMIT: Duration = Duration::from_secs(5);

/// IPC from the streamer: its decoded frames, or an error that ends the stream. A frame begun and
/// left unfinished for [`PARTIAL_FRAME_LIMIT`] is [`wire::ipc::IpcError::Stalled`].
pub struct IpcRx {
    frames: FramedRead<ChildStdout, ServerCodec>,
    /// Armed while a partial frame waits in the decoder's buffer.
    partial_since: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl IpcRx {
    fn new(stdout: ChildStdout) -> Self {
        IpcRx {
            frames: FramedRead::new(stdout, ServerCodec::new()),
            partial_since: None,
        }
    }
}

impl Stream for IpcRx {
    type Item = Result<wire::ipc::FromStreamer, wire::ipc::IpcError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        if let Poll::Ready(item) = Pin::new(&mut this.frames).poll_next(cx) {
            this.partial_since = None;
            return Poll::Ready(item);
        }
        let pending = this.frames.read_buffer().len();
        if pending == 0 {
            this.partial_since = None;
            return Poll::Pending;
        }
        let deadline = this
            .partial_since
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(PARTIAL_FRAME_LIMIT)));
        if deadline.as_mut().poll(cx).is_ready() {
            this.partial_since = None;
            return Poll::Ready(Some(Err(wire::ipc::IpcError::Stalled {
                pending,
                secs: PARTIAL_FRAME_LIMIT.as_secs(),
            })));
        }
        Poll::Pending
    }
}

/// A running streamer.
pub struct StreamerChild {
    child: Child,
    log_task: Option<JoinHandle<()>>,
    host_session: Option<HostSession>,
}

/// How the gateway ends a stream's host session itself when the streamer cannot (it was killed or
/// crashed before its own teardown): `/cancel` on the stream's host with the stream's own client
/// identity — the host keys sessions by client certificate, so any other identity would cancel
/// nothing (or someone else's stream).
pub struct HostSession {
    client: gamestream::nvhttp::NvHttpClient,
    limit: Duration,
    /// Where a `/cancel` that must wait out the host's ENet timeout is left
    /// ([`crate::host_cleanup`]), with that wait, the host's id and the identity's client id.
    cleanup: Option<(Arc<HostCleanups>, Duration, i64, String)>,
}

impl HostSession {
    /// `client` carries the host address, the stream's identity and the pinned host certificate;
    /// `limit` bounds the whole `/cancel`.
    pub fn new(client: gamestream::nvhttp::NvHttpClient, limit: Duration) -> Self {
        HostSession {
            client,
            limit,
            cleanup: None,
        }
    }

    /// Where [`HostSession::cancel_later`] leaves its `/cancel`: `cleanups`, after `after`, keyed
    /// by host and client id (so a new stream of that identity can take over).
    pub fn with_cleanup(
        mut self,
        cleanups: Arc<HostCleanups>,
        after: Duration,
        host_id: i64,
        client_id: String,
    ) -> Self {
        self.cleanup = Some((cleanups, after, host_id, client_id));
        self
    }

    /// `/cancel`, bounded by the limit.
    pub async fn cancel(&self) -> Result<(), CancelError> {
        use gamestream::nvhttp::NvHttpError as E;
        match tokio::time::timeout(self.limit, self.client.cancel()).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(CancelError {
                // The host answered, with an error status or a body we could not use.
                answered: !matches!(e, E::Io(_) | E::Tls(_) | E::TlsConfig(_) | E::Timeout),
                message: e.to_string(),
            }),
            Err(_) => Err(CancelError {
                answered: false,
                message: format!("no answer within {:?}", self.limit),
            }),
        }
    }

    /// Whether the host answers at all (plain-HTTP `/serverinfo`, bounded by the limit): tells a
    /// host that refused a `/cancel` from one that is down or hung ([`crate::host_cleanup`]).
    pub async fn reachable(&self) -> bool {
        matches!(
            tokio::time::timeout(self.limit, self.client.server_info_http()).await,
            Ok(Ok(_))
        )
    }

    /// The streamer died with its ENet peer connected on the host: `/cancel` once the host's ENet
    /// timeout has passed ([`crate::host_cleanup`]). Returns the wait, or None when no cleanup
    /// registry was attached (nothing is sent then: an early `/cancel` is what crashes Wolf).
    pub fn cancel_later(mut self) -> Option<Duration> {
        let (cleanups, after, host_id, client_id) = self.cleanup.take()?;
        cleanups.schedule(host_id, &client_id, self, after);
        Some(after)
    }
}

/// A failed [`HostSession::cancel`].
#[derive(Debug)]
pub struct CancelError {
    /// The host answered (an error status: it has no such session); false when it could not be
    /// reached or did not answer in time (down, hung, rebooting).
    pub answered: bool,
    message: String,
}

impl std::fmt::Display for CancelError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::fmt::Debug for StreamerChild {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamerChild")
            .field("pid", &self.child.id())
            .finish()
    }
}

/// Spawns `path` with piped stdio; returns the child and both IPC halves.
pub fn spawn(path: &Path, session_key: &str) -> std::io::Result<(StreamerChild, IpcTx, IpcRx)> {
    let mut child = Command::new(path)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()?;
    let missing = || std::io::Error::other("child stdio not piped");
    let stdin = child.stdin.take().ok_or_else(missing)?;
    let stdout = child.stdout.take().ok_or_else(missing)?;
    let stderr = child.stderr.take().ok_or_else(missing)?;
    // Ends at EOF on stderr, i.e. when the child exits; owned (and awaited) by the StreamerChild.
    let log_task = tokio::spawn(relay_logs(stderr, session_key.to_string()));
    Ok((
        StreamerChild {
            child,
            log_task: Some(log_task),
            host_session: None,
        },
        FramedWrite::new(stdin, ServerCodec::new()),
        IpcRx::new(stdout),
    ))
}

impl StreamerChild {
    /// The process id (None once reaped).
    pub fn id(&self) -> Option<u32> {
        self.child.id()
    }

    /// Records the host session this streamer runs, for [`HostSession::cancel`] after its death.
    pub fn attach_host_session(&mut self, session: HostSession) {
        self.host_session = Some(session);
    }

    /// The host session this streamer runs, if attached (taken by the one who ends it).
    pub fn take_host_session(&mut self) -> Option<HostSession> {
        self.host_session.take()
    }

    /// Waits up to `grace` for the child to exit on its own, then kills it; returns its status.
    pub async fn reap(&mut self, grace: Duration) -> std::io::Result<ExitStatus> {
        let status = match tokio::time::timeout(grace, self.child.wait()).await {
            Ok(status) => status?,
            Err(_) => {
                tracing::warn!(pid = ?self.child.id(), "streamer did not exit in time; killing it");
                self.child.kill().await?;
                self.child.wait().await?
            }
        };
        if let Some(task) = self.log_task.take() {
            // stderr reaches EOF with the exit; bounded anyway (a grandchild could hold it).
            if tokio::time::timeout(Duration::from_secs(1), task)
                .await
                .is_err()
            {
                tracing::debug!("streamer log relay outlived the process");
            }
        }
        Ok(status)
    }
}

impl Drop for StreamerChild {
    fn drop(&mut self) {
        if let Some(task) = self.log_task.take() {
            task.abort();
        }
    }
}

/// The level word of a `tracing_subscriber::fmt` line (`<time>  INFO target: msg`).
fn level_of(line: &str) -> tracing::Level {
    for word in line.split_whitespace().take(3) {
        match word {
            "ERROR" => return tracing::Level::ERROR,
            "WARN" => return tracing::Level::WARN,
            "INFO" => return tracing::Level::INFO,
            "DEBUG" => return tracing::Level::DEBUG,
            "TRACE" => return tracing::Level::TRACE,
            _ => {}
        }
    }
    tracing::Level::INFO
}

/// The longest streamer log line relayed; the rest of a longer line is dropped. A streamer's stderr
/// is bytes from another process: one that writes without newlines (corrupted, or looping on a
/// `write`) must not grow the gateway's memory, so a line is never buffered beyond this.
const MAX_LOG_LINE: usize = 16 * 1024;

/// Relays the child's stderr line by line (lossy UTF-8, each line cut at [`MAX_LOG_LINE`]) until
/// EOF. It keeps draining whatever the bytes are: a line that is not UTF-8 does not stop it, so
/// the child never blocks on a full stderr pipe.
async fn relay_logs(stderr: ChildStderr, session: String) {
    let mut reader = BufReader::new(stderr);
    let mut line: Vec<u8> = Vec::with_capacity(256);
    let mut cut = false;
    while let Ok(buf) = reader.fill_buf().await {
        if buf.is_empty() {
            if !line.is_empty() {
                relay_line(&line, cut, &session);
            }
            break;
        }
        let newline = buf.iter().position(|&b| b == b'\n');
        let chunk = &buf[..newline.unwrap_or(buf.len())];
        let room = MAX_LOG_LINE.saturating_sub(line.len());
        cut |= chunk.len() > room;
        line.extend_from_slice(&chunk[..chunk.len().min(room)]);
        let used = newline.map_or(buf.len(), |i| i + 1);
        reader.consume(used);
        if newline.is_some() {
            relay_line(&line, cut, &session);
            line.clear();
            cut = false;
        }
    }
}

/// One relayed line at the level its text names.
fn relay_line(bytes: &[u8], cut: bool, session: &str) {
    let text = String::from_utf8_lossy(bytes);
    let text = text.trim_end_matches('\r');
    let line = if cut {
        format!("{text} … (line cut at {MAX_LOG_LINE} bytes)")
    } else {
        text.to_string()
    };
    match level_of(&line) {
        tracing::Level::ERROR => {
            tracing::error!(target: "streamer", session = %session, "{line}")
        }
        tracing::Level::WARN => {
            tracing::warn!(target: "streamer", session = %session, "{line}")
        }
        tracing::Level::INFO => {
            tracing::info!(target: "streamer", session = %session, "{line}")
        }
        tracing::Level::DEBUG => {
            tracing::debug!(target: "streamer", session = %session, "{line}")
        }
        tracing::Level::TRACE => {
            tracing::trace!(target: "streamer", session = %session, "{line}")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_from_fmt_lines() {
        assert_eq!(
            level_of("2026-01-01T00:00:00.000000Z  WARN streamer::session: slow"),
            tracing::Level::WARN
        );
        assert_eq!(
            level_of("2026-01-01T00:00:00Z ERROR streamer: boom"),
            tracing::Level::ERROR
        );
        assert_eq!(level_of("no level here"), tracing::Level::INFO);
    }
}
