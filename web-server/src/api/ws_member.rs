//! One browser connection of a WebSocket-mode stream, whether it opened the stream
//! (`ws_stream`) or watches it (`ws_watch`): its [`Outbox`] drained by one writer task, the first
//! text message, the reader that turns the browser's messages into the shared stream's input,
//! and the closing handshake. Both endpoints use these, so an owner and a viewer are answered,
//! kept alive and closed the same way.

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket};
use bytes::Bytes;
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use tokio::sync::{watch, Notify};
use tokio::task::JoinHandle;
use wire::backpressure::{QueueConfig, SendQueue};
use wire::browser::{self, Pong};

use super::socket::{answer_close, await_close_answer, CLOSE_FLUSH};
use super::ws_hub::Hub;
use crate::state::AppState;
use crate::stream::roster::MemberId;
use crate::stream::{clip_reason, Close};

/// A browser that sent nothing (no Ping, no input, no WebSocket pong) for this long is gone.
const BROWSER_SILENCE: Duration = Duration::from_secs(10);
/// WebSocket pings to the browser, so a silent but alive client still answers.
const KEEPALIVE_EVERY: Duration = Duration::from_secs(2);

fn unix_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

/// The clock of the keepalive pings' payloads: they carry their send time, and the browser's
/// pong echoes it (RFC 6455 §5.5.3), which gives the round trip through the socket's send buffer.
fn ping_clock_us() -> u64 {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    EPOCH.get_or_init(Instant::now).elapsed().as_micros() as u64
}

/// The round trip a pong shows, ms (at least 1), if it echoes one of our pings.
fn pong_rtt_ms(payload: &[u8]) -> Option<u32> {
    let sent = u64::from_le_bytes(payload.try_into().ok()?);
    let rtt_us = ping_clock_us().checked_sub(sent)?;
    Some(u32::try_from(rtt_us / 1000).unwrap_or(u32::MAX).max(1))
}

/// The browser-bound side of one connection: a [`SendQueue`] drained by one writer task.
pub(crate) struct Outbox {
    queue: Mutex<SendQueue<Message>>,
    pub(crate) wake: Notify,
    pub(crate) failed: AtomicBool,
    /// The browser sent its Close: the writer answers it at once, ahead of anything queued.
    peer_closed: AtomicBool,
    /// The last keepalive's round trip, ms (0: none answered yet).
    rtt_ms: AtomicU32,
}

impl Outbox {
    fn new() -> Self {
        Outbox {
            queue: Mutex::new(SendQueue::new(QueueConfig::default())),
            wake: Notify::new(),
            failed: AtomicBool::new(false),
            peer_closed: AtomicBool::new(false),
            rtt_ms: AtomicU32::new(0),
        }
    }
    /// The round trip to the browser through this socket measured since the last call, ms.
    pub(crate) fn take_rtt_ms(&self) -> Option<u32> {
        Some(self.rtt_ms.swap(0, Ordering::Relaxed)).filter(|&ms| ms > 0)
    }
    pub(crate) fn queue(&self) -> MutexGuard<'_, SendQueue<Message>> {
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }
    pub(crate) fn control(&self, msg: Message) {
        self.queue().push_control(msg);
        self.wake.notify_one();
    }
    /// The browser's Close arrived: have the writer answer it now, before the teardown (which
    /// may take seconds: the streamer cancels on the host) rather than after it.
    pub(crate) fn peer_closed(&self) {
        self.peer_closed.store(true, Ordering::Release);
        self.wake.notify_one();
    }
    fn is_peer_closed(&self) -> bool {
        self.peer_closed.load(Ordering::Acquire)
    }
    /// Queues the final error (if any) and the Close frame; the writer ends after it.
    pub(crate) fn close(&self, close: &Close) {
        if let Some(error) = &close.error {
            self.control(Message::Text(error.to_json().into()));
        }
        self.control(Message::Close(Some(CloseFrame {
            code: close.code,
            reason: clip_reason(&close.reason).into(),
        })));
    }
}

/// Writes queued messages until the close frame is sent, the browser's Close is answered (see
/// [`answer_close`]) or the socket fails.
async fn write_loop(mut sink: SplitSink<WebSocket, Message>, outbox: Arc<Outbox>) {
    loop {
        if outbox.is_peer_closed() {
            answer_close(&mut sink).await;
            return;
        }
        let next = outbox.queue().pop(Instant::now());
        match next {
            Some(msg) => {
                let last = matches!(msg, Message::Close(_));
                if sink.send(msg).await.is_err() {
                    // The browser may have closed meanwhile: its echo still waits for a flush.
                    answer_close(&mut sink).await;
                    outbox.failed.store(true, Ordering::Relaxed);
                    return;
                }
                if last {
                    return;
                }
            }
            None => outbox.wake.notified().await,
        }
    }
}

/// Answers a Ping (0x40) at once, ahead of all media. Not a Ping: false.
pub(crate) fn answer_ping(data: &[u8], outbox: &Outbox) -> bool {
    if let Ok(browser::Message::Ping(ping)) = browser::Message::decode(data) {
        if let Ok(pong) = browser::Message::Pong(Pong::answer(ping, unix_us())).to_vec() {
            outbox.control(Message::Binary(pong.into()));
        }
        return true;
    }
    false
}

/// One upgraded socket: the browser's messages, the outbox and its writer task.
pub(crate) struct Socket {
    pub(crate) stream: SplitStream<WebSocket>,
    pub(crate) outbox: Arc<Outbox>,
    writer: JoinHandle<()>,
}

impl Socket {
    pub(crate) fn open(socket: WebSocket) -> Socket {
        let (sink, stream) = socket.split();
        let outbox = Arc::new(Outbox::new());
        let writer = tokio::spawn(write_loop(sink, Arc::clone(&outbox)));
        Socket {
            stream,
            outbox,
            writer,
        }
    }

    /// Reads up to the first text message: binary messages before it are skipped (a Ping is
    /// answered). `what` names it in the timeout's close.
    pub(crate) async fn first_text(
        &mut self,
        state: &AppState,
        what: &str,
    ) -> Result<Utf8Bytes, Close> {
        let deadline = tokio::time::Instant::now() + state.config.limits.first_message;
        loop {
            match tokio::time::timeout_at(deadline, self.stream.next()).await {
                Err(_) => return Err(Close::first_message_timeout(state, what)),
                Ok(Some(Ok(Message::Close(_)))) => {
                    self.outbox.peer_closed();
                    return Err(Close::normal(&format!("closed before {what}")));
                }
                Ok(Some(Err(e))) if crate::limits::is_too_big(&e) => {
                    return Err(Close::too_big(state))
                }
                Ok(None) | Ok(Some(Err(_))) => {
                    return Err(Close::normal(&format!("closed before {what}")))
                }
                Ok(Some(Ok(Message::Text(t)))) => return Ok(t),
                Ok(Some(Ok(Message::Binary(b)))) => {
                    answer_ping(&b, &self.outbox);
                }
                Ok(Some(Ok(_))) => {}
            }
        }
    }

    /// Ends the connection. A `close` is sent unless the browser closed first (its Close was
    /// answered by the writer); then the closing handshake is awaited, each step bounded.
    pub(crate) async fn finish(mut self, close: Option<&Close>) {
        let abort = self.writer.abort_handle();
        if self.outbox.is_peer_closed() {
            if let Some(close) = close {
                tracing::info!(code = close.code, reason = %close.reason, "the browser closed the stream socket");
            }
            if tokio::time::timeout(CLOSE_FLUSH, self.writer)
                .await
                .is_err()
            {
                abort.abort();
            }
            return;
        }
        if let Some(close) = close {
            tracing::info!(code = close.code, reason = %close.reason, "closing the stream socket");
            self.outbox.close(close);
        }
        match tokio::time::timeout(CLOSE_FLUSH, self.writer).await {
            Ok(_) if !self.outbox.failed.load(Ordering::Relaxed) => {
                await_close_answer(&mut self.stream).await
            }
            Ok(_) => {}
            Err(_) => abort.abort(),
        }
    }
}

/// Why a member left its stream.
#[derive(Debug)]
pub(crate) enum Leave {
    /// The browser closed the socket, or sending to it failed.
    Closed,
    /// Nothing from the browser for [`BROWSER_SILENCE`].
    Gone,
    /// A message over the size limit; the member is closed with this.
    Refused(Close),
}

/// Reads one member's messages until it leaves (`Some`) or the stream ends (`None`): Pings are
/// answered here, input goes to the hub (which drops it unless the member holds control), and
/// the browser is pinged so a silent but live one still answers.
pub(crate) async fn read_member(
    stream: &mut SplitStream<WebSocket>,
    outbox: &Outbox,
    hub: &Hub,
    id: MemberId,
    mut ended: watch::Receiver<bool>,
) -> Option<Leave> {
    let mut last_heard = Instant::now();
    let mut tick = tokio::time::interval_at(
        tokio::time::Instant::now() + KEEPALIVE_EVERY,
        KEEPALIVE_EVERY,
    );
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = stream_ended(&mut ended) => return None,
            msg = stream.next() => {
                last_heard = Instant::now();
                match msg {
                    Some(Ok(Message::Close(_))) => {
                        outbox.peer_closed();
                        return Some(Leave::Closed);
                    }
                    Some(Err(e)) if crate::limits::is_too_big(&e) => {
                        return Some(Leave::Refused(hub.too_big()));
                    }
                    None | Some(Err(_)) => return Some(Leave::Closed),
                    Some(Ok(Message::Binary(b))) => {
                        if !answer_ping(&b, outbox) {
                            hub.input(id, b).await;
                        }
                    }
                    Some(Ok(Message::Pong(payload))) => {
                        if let Some(rtt) = pong_rtt_ms(&payload) {
                            outbox.rtt_ms.store(rtt, Ordering::Relaxed);
                        }
                    }
                    Some(Ok(_)) => {}
                }
            }
            _ = tick.tick() => {
                if last_heard.elapsed() > BROWSER_SILENCE {
                    tracing::info!(member = id, "browser silent for 10 s: treating it as gone");
                    return Some(Leave::Gone);
                }
                let sent = ping_clock_us().to_le_bytes();
                outbox.control(Message::Ping(Bytes::copy_from_slice(&sent)));
            }
        }
        if outbox.failed.load(Ordering::Relaxed) {
            return Some(Leave::Closed);
        }
    }
}

/// Resolves once the stream has ended (the receiver's guard is dropped here, not held by the
/// caller's `select!`, which must stay `Send`).
async fn stream_ended(ended: &mut watch::Receiver<bool>) {
    let _ = ended.wait_for(|e| *e).await;
}
