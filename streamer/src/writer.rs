//! The IPC writer: one task owns stdout and sends frames through a [`wire::backpressure`] queue.
//!
//! The session never waits on the pipe: media goes into a bounded channel with `try_send`, and the
//! writer drains the channel into a time-budgeted [`SendQueue`] before every write. If the
//! web-server reads slowly, stale video is dropped up to the next keyframe and a keyframe request
//! comes back to the session; control frames (`Started`, `Stats`, `Error`, `Ended`) go first.
//! `Ended` is the last frame written: the writer flushes after it and ends.
//!
//! In WebSocket mode the writer is the session's [`MediaSink`]: media, and rumble, go to the
//! web-server, which relays them to the browser. Media frames are written as the browser's own
//! VideoFrame and AudioFrame messages, so the web-server forwards their bytes without a copy.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::SinkExt;
use tokio::io::AsyncWrite;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::codec::FramedWrite;
use wire::backpressure::{QueueConfig, QueueStats, SendQueue};
use wire::browser::StreamInit;
use wire::ipc::{Audio, FromStreamer, Rumble, StreamerCodec, Video};

use crate::session::forward::{MediaSink, Sent, SinkStats, VideoUnit};

const CHANNEL: usize = 1024;

/// One frame for the writer, stamped when it was produced.
#[derive(Debug)]
struct Item {
    at: Instant,
    msg: FromStreamer,
}

/// Why a media frame was not queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// The channel is full (the writer is stuck on the pipe).
    Full,
    /// The writer is gone (stdout closed).
    Closed,
}

/// The session's handle on the writer task.
pub struct Writer {
    tx: Option<mpsc::Sender<Item>>,
    stats: Arc<Mutex<QueueStats>>,
    task: JoinHandle<()>,
    /// What the browser messages of this stream carry besides the media: width, height and
    /// audio channels, from the stream's `StreamInit` ([`Writer::for_stream`]).
    stream: (u16, u16, u8),
}

impl Writer {
    /// Starts the writer task on `output`. The receiver yields a value whenever the send queue
    /// dropped frames and the host must be asked for a keyframe.
    pub fn spawn<W: AsyncWrite + Unpin + Send + 'static>(
        output: W,
        config: QueueConfig,
    ) -> (Self, mpsc::Receiver<()>) {
        let (tx, rx) = mpsc::channel(CHANNEL);
        let (idr_tx, keyframe_requests) = mpsc::channel(1);
        let stats = Arc::new(Mutex::new(QueueStats::default()));
        let task = tokio::spawn(write_loop(
            FramedWrite::new(output, StreamerCodec::new()),
            rx,
            idr_tx,
            SendQueue::new(config),
            Arc::clone(&stats),
        ));
        (
            Writer {
                tx: Some(tx),
                stats,
                task,
                stream: (0, 0, 0),
            },
            keyframe_requests,
        )
    }

    /// The writer of the stream `init` describes: its media frames are the browser's messages,
    /// which name the size and the channel count.
    pub fn for_stream(mut self, init: &StreamInit) -> Self {
        self.stream = (init.width, init.height, init.audio_channels);
        self
    }

    /// Queues a media frame without waiting.
    pub fn media(&self, msg: FromStreamer) -> Result<(), Refused> {
        let tx = self.tx.as_ref().ok_or(Refused::Closed)?;
        tx.try_send(Item {
            at: Instant::now(),
            msg,
        })
        .map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => Refused::Full,
            mpsc::error::TrySendError::Closed(_) => Refused::Closed,
        })
    }

    /// Queues a control frame, waiting for room (bounded by the caller's own timeouts).
    pub async fn control(&self, msg: FromStreamer) -> Result<(), Refused> {
        let tx = self.tx.as_ref().ok_or(Refused::Closed)?;
        tx.send(Item {
            at: Instant::now(),
            msg,
        })
        .await
        .map_err(|_| Refused::Closed)
    }

    /// Resolves when the writer has ended (stdout closed or broken).
    pub async fn closed(&self) {
        match &self.tx {
            Some(tx) => tx.closed().await,
            None => std::future::pending().await,
        }
    }

    /// Queue counters (drops, depth).
    pub fn stats(&self) -> QueueStats {
        *self.stats.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Sends `last` (normally `Ended`) after everything queued, flushes and ends the task; waits
    /// at most `wait`.
    pub async fn finish(mut self, last: FromStreamer, wait: Duration) {
        let deadline = tokio::time::Instant::now() + wait;
        if let Some(tx) = self.tx.take() {
            let item = Item {
                at: Instant::now(),
                msg: last,
            };
            let _ = tokio::time::timeout_at(deadline, tx.send(item)).await;
        }
        if tokio::time::timeout_at(deadline, &mut self.task)
            .await
            .is_err()
        {
            tracing::warn!("IPC writer did not finish in time");
            self.task.abort();
        }
    }
}

impl MediaSink for Writer {
    fn video(&mut self, unit: VideoUnit) -> Sent {
        let (width, height, _) = self.stream;
        let video = Video::new(
            unit.keyframe,
            unit.pts_us,
            unit.codec,
            width,
            height,
            unit.data,
        );
        sent(self.media(FromStreamer::Video(video)))
    }

    fn audio(&mut self, data: bytes::Bytes, pts_us: u64) -> Sent {
        let audio = Audio::new(self.stream.2, pts_us, data);
        sent(self.media(FromStreamer::Audio(audio)))
    }

    /// Rumble goes to the web-server, which sends it to the browser.
    fn rumble(&mut self, controller: u16, triggers: bool, low: u16, high: u16) {
        // The browser numbers pads 0..15; anything else has no pad to shake.
        let Ok(controller) = u8::try_from(controller) else {
            return;
        };
        let rumble = FromStreamer::Rumble(Rumble {
            controller,
            triggers,
            low,
            high,
        });
        if self.media(rumble).is_err() {
            tracing::debug!(controller, "rumble not forwarded: IPC queue full or closed");
        }
    }

    fn stats(&self) -> SinkStats {
        SinkStats {
            queue: Writer::stats(self),
            frames_dropped: 0,
        }
    }
}

fn sent(result: Result<(), Refused>) -> Sent {
    match result {
        Ok(()) => Sent::Queued,
        Err(Refused::Full) => Sent::Full,
        Err(Refused::Closed) => Sent::Closed,
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn push(queue: &mut SendQueue<FromStreamer>, item: Item) {
    match item.msg {
        FromStreamer::Video(ref v) => {
            let (bytes, key) = (v.data.len(), v.keyframe);
            queue.push_video(item.msg, bytes, key, item.at);
        }
        FromStreamer::Audio(ref a) => {
            let bytes = a.data.len();
            queue.push_audio(item.msg, bytes, item.at);
        }
        other => queue.push_control(other),
    }
}

async fn write_loop<W: AsyncWrite + Unpin>(
    mut sink: FramedWrite<W, StreamerCodec>,
    mut rx: mpsc::Receiver<Item>,
    idr_tx: mpsc::Sender<()>,
    mut queue: SendQueue<FromStreamer>,
    stats: Arc<Mutex<QueueStats>>,
) {
    // The session forwards a keyframe first; the queue only has to refuse what precedes it.
    let mut open = true;
    loop {
        if queue.is_empty() && open {
            // Nothing buffered may wait behind an idle channel.
            if let Err(e) = sink.flush().await {
                tracing::warn!(error = %e, "IPC output failed; the web-server is gone");
                return;
            }
            match rx.recv().await {
                Some(item) => push(&mut queue, item),
                None => open = false,
            }
        }
        while open {
            match rx.try_recv() {
                Ok(item) => push(&mut queue, item),
                Err(mpsc::error::TryRecvError::Empty) => break,
                Err(mpsc::error::TryRecvError::Disconnected) => open = false,
            }
        }
        let now = Instant::now();
        if queue.take_keyframe_request(now) {
            let _ = idr_tx.try_send(());
        }
        let next = queue.pop(now);
        *stats.lock().unwrap_or_else(|p| p.into_inner()) = queue.stats(now);
        let Some(msg) = next else {
            if open {
                continue;
            }
            break;
        };
        let last = matches!(msg, FromStreamer::Ended(_));
        // `feed` buffers; flush when nothing else is waiting, so bursts go out in one write.
        let result = if last || rx.is_empty() && queue.is_empty() {
            sink.send(msg).await
        } else {
            sink.feed(msg).await
        };
        if let Err(e) = result {
            tracing::warn!(error = %e, "IPC output failed; the web-server is gone");
            return;
        }
        if last {
            break;
        }
    }
    let _ = sink.flush().await;
}
