//! The IPC writer: the session loop writes stdout itself, without a task or a queue of its own.
//!
//! **Why no queue here.** A frame bound for the browser waits in one send queue: the gateway's
//! `Outbox`, at the browser's side, where the WebSocket's pace is known and where its time budget
//! and keyframe gate act. Between the streamer and the gateway there is only the pipe, a kernel
//! buffer at the process boundary. A second queue in front of it (this module used to have one,
//! behind a task and a channel) only added latency, a task hop and a second place that dropped
//! frames.
//!
//! **What a full pipe means.** The gateway reads the pipe as fast as it can and hands each frame
//! to its `Outbox` without waiting, so a pipe that stops taking bytes means the gateway is
//! stalled. Media is then refused at the source: [`Writer::media`] never waits, and a frame that
//! finds bytes still unwritten is not begun ([`Refused::Full`]). The session's forwarding
//! ([`crate::session::forward`]) then drops video up to the next keyframe and asks the host for
//! one, so that no frame whose reference was dropped is ever written; audio is simply lost.
//!
//! **Whole frames.** The pipe carries IPC frames back to back, so a frame is written whole or
//! not begun: what the pipe does not take of a frame stays in a small buffer (the unwritten tail
//! of frames already begun) and goes first when the pipe is writable again
//! ([`Writer::drained`], a branch of the session loop). Control frames (`Started`, `Error`,
//! `Ended`, `LaunchTurn`) wait for the pipe ([`Writer::control`]) and are never dropped; WebRTC
//! signals, which come from code that cannot wait, are appended after the tail
//! ([`Writer::control_now`]). Frames reach the pipe in the order they were accepted.
//!
//! The state sits behind a `std` mutex that is never held across an `.await`: the start hands
//! `&Writer` to its launch turns while it also waits for [`Writer::closed`].
//!
//! In WebSocket mode the writer is the session's [`MediaSink`]: media, and rumble, go to the
//! web-server, which relays them to the browser. Media frames are written as the browser's own
//! VideoFrame and AudioFrame messages, so the web-server forwards their bytes without a copy.

use std::io;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::{Buf, BytesMut};
use tokio::io::Interest;
use tokio::net::unix::pipe;
use tokio_util::codec::Encoder;
use wire::backpressure::QueueStats;
use wire::browser::StreamInit;
use wire::ipc::{Audio, FromStreamer, Rumble, StreamerCodec, Video};

use crate::session::forward::{MediaSink, Sent, SinkStats, VideoUnit};

/// Why a frame was not begun.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// Bytes of earlier frames are still unwritten: the gateway is not reading.
    Full,
    /// The pipe is closed (the gateway is gone) or broken.
    Closed,
}

/// What the writer keeps between writes.
struct State {
    codec: StreamerCodec,
    /// The unwritten bytes of frames already begun.
    pending: BytesMut,
    /// Since when `pending` has been waiting for the pipe.
    since: Option<Instant>,
    closed: bool,
}

/// The session's writer on the IPC pipe (stdout).
pub struct Writer {
    pipe: pipe::Sender,
    state: Mutex<State>,
    /// What the browser messages of this stream carry besides the media: width, height and
    /// audio channels, from the stream's `StreamInit` ([`Writer::for_stream`]).
    stream: (u16, u16, u8),
}

impl Writer {
    /// A writer on `pipe`, the write end of the IPC pipe.
    pub fn new(pipe: pipe::Sender) -> Self {
        Writer {
            pipe,
            state: Mutex::new(State {
                codec: StreamerCodec::new(),
                pending: BytesMut::new(),
                since: None,
                closed: false,
            }),
            stream: (0, 0, 0),
        }
    }

    /// The writer of the stream `init` describes: its media frames are the browser's messages,
    /// which name the size and the channel count.
    pub fn for_stream(mut self, init: &StreamInit) -> Self {
        self.stream = (init.width, init.height, init.audio_channels);
        self
    }

    /// Begins a media frame (or `Stats`, rumble) without waiting: refused while bytes of earlier
    /// frames are still unwritten.
    pub fn media(&self, msg: FromStreamer) -> Result<(), Refused> {
        let mut state = self.lock();
        if state.closed {
            return Err(Refused::Closed);
        }
        if !state.pending.is_empty() {
            return Err(Refused::Full);
        }
        self.begin(&mut state, msg)
    }

    /// Writes a control frame once the pipe has taken everything before it, and waits until the
    /// pipe has taken it whole (bounded by the caller's own timeouts). Never dropped.
    pub async fn control(&self, msg: FromStreamer) -> Result<(), Refused> {
        self.flush().await?;
        {
            let mut state = self.lock();
            if state.closed {
                return Err(Refused::Closed);
            }
            if state.pending.is_empty() {
                self.begin(&mut state, msg)?;
            } else {
                // Media came in while this waited; the control frame goes right after it.
                Self::encode(&mut state, msg)?;
            }
        }
        self.flush().await
    }

    /// Appends a control frame after whatever is unwritten, without waiting; for code that cannot
    /// wait (the WebRTC peer's signals, which must not be lost and are few).
    pub fn control_now(&self, msg: FromStreamer) -> Result<(), Refused> {
        let mut state = self.lock();
        if state.closed {
            return Err(Refused::Closed);
        }
        if state.pending.is_empty() {
            self.begin(&mut state, msg)
        } else {
            Self::encode(&mut state, msg)
        }
    }

    /// Resolves once the bytes that were unwritten have all gone into the pipe; stays pending
    /// while nothing is unwritten. Cancel-safe: a `select!` branch of the session loop.
    pub async fn drained(&self) -> Result<(), Refused> {
        if self.lock().pending.is_empty() {
            return std::future::pending().await;
        }
        self.flush().await
    }

    /// Resolves when the pipe is closed (the gateway is gone) or broken.
    pub async fn closed(&self) {
        if self.lock().closed {
            return;
        }
        // A pipe whose reader is gone reports an error to its writer (EPOLLERR); a live pipe,
        // full or not, never does.
        let _ = self.pipe.ready(Interest::ERROR).await;
        self.close();
    }

    /// Writer counters: how long unwritten bytes have waited for the pipe.
    pub fn stats(&self) -> QueueStats {
        let state = self.lock();
        QueueStats {
            video_depth_ms: state.since.map_or(0, |t| t.elapsed().as_millis() as u64),
            video_bytes: state.pending.len(),
            ..QueueStats::default()
        }
    }

    /// Writes `last` (normally `Ended`) after everything begun and flushes; waits at most `wait`.
    pub async fn finish(self, last: FromStreamer, wait: Duration) {
        match tokio::time::timeout(wait, self.control(last)).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) => tracing::debug!("IPC output closed before Ended"),
            Err(_) => tracing::warn!("IPC writer did not finish in time"),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn close(&self) {
        let mut state = self.lock();
        state.closed = true;
        state.pending.clear();
        state.since = None;
    }

    /// Encodes `msg` after the unwritten bytes; a frame that cannot be encoded (over the IPC
    /// payload limit) leaves nothing behind and is refused like a frame that found no room.
    fn encode(state: &mut State, msg: FromStreamer) -> Result<(), Refused> {
        // The codec leaves nothing of a frame it could not encode.
        if let Err(e) = state.codec.encode(msg, &mut state.pending) {
            tracing::warn!(error = %e, "IPC frame not written");
            return Err(Refused::Full);
        }
        Ok(())
    }

    /// Encodes `msg` and writes what the pipe takes of it now.
    fn begin(&self, state: &mut State, msg: FromStreamer) -> Result<(), Refused> {
        Self::encode(state, msg)?;
        self.write_some(state)
    }

    /// Writes unwritten bytes until they are gone or the pipe is full.
    fn write_some(&self, state: &mut State) -> Result<(), Refused> {
        while !state.pending.is_empty() {
            match self.pipe.try_write(&state.pending) {
                Ok(n) => state.pending.advance(n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    state.since.get_or_insert_with(Instant::now);
                    return Ok(());
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    tracing::warn!(error = %e, "IPC output failed; the web-server is gone");
                    state.closed = true;
                    state.pending.clear();
                    state.since = None;
                    return Err(Refused::Closed);
                }
            }
        }
        state.since = None;
        Ok(())
    }

    /// Waits until every unwritten byte is in the pipe.
    async fn flush(&self) -> Result<(), Refused> {
        loop {
            {
                let state = self.lock();
                if state.closed {
                    return Err(Refused::Closed);
                }
                if state.pending.is_empty() {
                    return Ok(());
                }
            }
            if self.pipe.writable().await.is_err() {
                self.close();
                return Err(Refused::Closed);
            }
            self.write_some(&mut self.lock())?;
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
            tracing::debug!(controller, "rumble not forwarded: IPC pipe full or closed");
        }
    }

    /// The forwarding counts the frames refused here; the writer adds how long the pipe stalled.
    fn stats(&self) -> SinkStats {
        SinkStats {
            queue: Writer::stats(self),
            ..SinkStats::default()
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

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use futures_util::StreamExt;
    use tokio_util::codec::FramedRead;
    use wire::ipc::{EndReason, Ended, ServerCodec};

    fn video(n: u8, len: usize) -> FromStreamer {
        let data = Bytes::from(vec![n; len]);
        FromStreamer::Video(Video::new(n == 0, u64::from(n), 1, 64, 64, data))
    }

    fn ended() -> FromStreamer {
        FromStreamer::Ended(Ended {
            reason: EndReason::Stopped,
            message: None,
        })
    }

    /// Begins frames until the pipe refuses one, without waiting; how many were begun.
    async fn fill(writer: &Writer) -> u8 {
        // tokio knows the pipe is writable once its reactor said so.
        writer.pipe.writable().await.unwrap();
        let mut begun = 0u8;
        while writer.media(video(begun, 7_000)).is_ok() {
            begun += 1;
            assert!(begun < 200, "the pipe never filled");
        }
        assert_eq!(writer.media(video(begun, 7_000)), Err(Refused::Full));
        begun
    }

    #[tokio::test]
    async fn a_stalled_reader_gets_refusals_then_whole_frames() {
        let (tx, rx) = pipe::pipe().unwrap();
        let writer = Writer::new(tx);
        // Nobody reads: frames are begun until the pipe is full, then refused, without waiting.
        let accepted = fill(&writer).await;
        assert!(accepted > 2, "a 64 KiB pipe takes several 7 kB frames");
        assert!(writer.stats().video_bytes > 0, "a frame's tail waits");
        assert_eq!(writer.media(video(200, 10)), Err(Refused::Full));
        // The reader resumes: the session loop's branch writes the tail, then frames go again.
        let mut reader = FramedRead::new(rx, ServerCodec::new());
        let mut expected = Vec::new();
        for n in 0..accepted {
            expected.push(video(n, 7_000));
        }
        let reading = tokio::spawn(async move {
            let mut got = Vec::new();
            while let Some(frame) = reader.next().await {
                got.push(frame.expect("a torn frame"));
            }
            got
        });
        tokio::time::timeout(Duration::from_secs(5), writer.drained())
            .await
            .expect("the tail was not written")
            .unwrap();
        assert_eq!(writer.stats().video_bytes, 0);
        writer.media(video(201, 10)).unwrap();
        expected.push(video(201, 10));
        writer.finish(ended(), Duration::from_secs(5)).await;
        expected.push(ended());
        let got = tokio::time::timeout(Duration::from_secs(5), reading)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            got, expected,
            "every frame whole, in order, none after a refusal"
        );
    }

    #[tokio::test]
    async fn control_waits_for_the_pipe_and_closed_sees_the_reader_go() {
        let (tx, rx) = pipe::pipe().unwrap();
        let writer = Writer::new(tx);
        assert!(fill(&writer).await > 2);
        let control = writer.control(ended());
        tokio::pin!(control);
        let r = tokio::time::timeout(Duration::from_millis(50), &mut control).await;
        assert!(r.is_err(), "a control frame waits for a full pipe: {r:?}");
        closed_once_the_reader_goes(&writer, rx, "a full pipe").await;
        assert_eq!(control.await, Err(Refused::Closed));
    }

    #[tokio::test]
    async fn closed_resolves_for_an_idle_pipe_whose_reader_goes() {
        let (tx, rx) = pipe::pipe().unwrap();
        let writer = Writer::new(tx);
        writer.media(video(0, 10)).unwrap();
        closed_once_the_reader_goes(&writer, rx, "a writable pipe").await;
    }

    /// `closed()` stays pending while `rx` reads from a pipe in the state `what`, and resolves once
    /// it is gone; then nothing more is begun.
    async fn closed_once_the_reader_goes(writer: &Writer, rx: pipe::Receiver, what: &str) {
        let early = tokio::time::timeout(Duration::from_millis(50), writer.closed()).await;
        assert!(early.is_err(), "{what} is not a closed one");
        drop(rx);
        tokio::time::timeout(Duration::from_secs(1), writer.closed())
            .await
            .expect("the reader's close was not seen");
        assert_eq!(writer.media(video(1, 10)), Err(Refused::Closed));
    }
}
