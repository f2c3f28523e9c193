//! This streamer's turn to launch on the host, handed out by the web-server.
//!
//! Wolf (and the Wolf-strict demo host) finds the session of an RTSP request by the client's IP
//! address alone, and every streamer of one gateway has the gateway's address, so two launches
//! on one host must not overlap from `/launch` to the ENet connect. The web-server keeps one
//! queue per host (`web-server/src/launch_gate.rs`). The streamer asks for its turn right before
//! each `/launch` attempt, not at its spawn, and gives it back when the host refuses the launch
//! (503 while this client's previous stream is still stopping): the wait before the retry then
//! holds up no other browser. Spawn, process start and the wait between retries stay outside the
//! turn; only the handshakes that must not overlap are inside it.

use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::Notify;
use wire::ipc::{FromStreamer, TurnRequest};

use crate::writer::Writer;

/// The turn protocol of one start ([`wire::ipc::StreamerInit::launch_turns`]).
pub struct LaunchTurns<'w> {
    /// `None`: nobody hands out turns (a streamer driven by hand); launch at once.
    writer: Option<&'w Writer>,
    granted: Notify,
    /// A launch is under way on the host: from the grant until the host refused it, or for the
    /// rest of the start once it went through.
    launching: AtomicBool,
}

impl<'w> LaunchTurns<'w> {
    /// Turns from the web-server when `enabled`, otherwise every launch goes at once.
    pub fn new(writer: &'w Writer, enabled: bool) -> Self {
        LaunchTurns {
            writer: enabled.then_some(writer),
            granted: Notify::new(),
            // Without turns nothing tells when a launch is under way: assume one always is.
            launching: AtomicBool::new(!enabled),
        }
    }

    /// Asks for the turn and waits until it is given. If the web-server is gone, this never
    /// returns: the caller's loop sees the closed pipe and ends the start.
    pub async fn take(&self) {
        let Some(writer) = self.writer else { return };
        if writer
            .control(FromStreamer::LaunchTurn(TurnRequest::Ask))
            .await
            .is_err()
        {
            std::future::pending::<()>().await;
        }
        self.granted.notified().await;
        self.launching.store(true, Ordering::Release);
    }

    /// The host refused the launch: nothing of ours is starting there, and others may go first.
    pub async fn give_back(&self) {
        let Some(writer) = self.writer else { return };
        self.launching.store(false, Ordering::Release);
        // A closed pipe ends the start through the caller's loop.
        let _ = writer
            .control(FromStreamer::LaunchTurn(TurnRequest::GiveBack))
            .await;
    }

    /// The web-server's `ToStreamer::LaunchTurn`. A grant nobody asked for is kept until the next
    /// ask, which then goes at once: harmless, since the web-server only grants what was asked.
    pub fn granted(&self) {
        self.granted.notify_one();
    }

    /// Whether a `/launch` may be under way, so that a stop must let it finish and end it on the
    /// host; false while the start waits for its turn or before a retry.
    pub fn launching(&self) -> bool {
        self.launching.load(Ordering::Acquire)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::StreamExt;
    use std::time::Duration;
    use tokio_util::codec::FramedRead;
    use wire::ipc::ServerCodec;

    #[tokio::test]
    async fn asks_waits_for_the_grant_and_gives_back() {
        let (ours, theirs) = tokio::net::unix::pipe::pipe().unwrap();
        let writer = Writer::new(ours);
        let mut from_streamer = FramedRead::new(theirs, ServerCodec::new());
        let turns = LaunchTurns::new(&writer, true);
        assert!(!turns.launching());

        let take = turns.take();
        tokio::pin!(take);
        // Not given yet: the start waits, and the web-server has been asked.
        assert!(tokio::time::timeout(Duration::from_millis(50), &mut take)
            .await
            .is_err());
        assert_eq!(
            from_streamer.next().await.unwrap().unwrap(),
            FromStreamer::LaunchTurn(TurnRequest::Ask)
        );
        assert!(!turns.launching(), "waiting for a turn launches nothing");
        turns.granted();
        tokio::time::timeout(Duration::from_secs(1), take)
            .await
            .expect("the grant did not end the wait");
        assert!(turns.launching());

        turns.give_back().await;
        assert!(!turns.launching());
        assert_eq!(
            from_streamer.next().await.unwrap().unwrap(),
            FromStreamer::LaunchTurn(TurnRequest::GiveBack)
        );
    }

    #[tokio::test]
    async fn without_turns_every_launch_goes_at_once() {
        let (ours, _theirs) = tokio::net::unix::pipe::pipe().unwrap();
        let writer = Writer::new(ours);
        let turns = LaunchTurns::new(&writer, false);
        assert!(turns.launching(), "unknown: a stop must assume a launch");
        tokio::time::timeout(Duration::from_millis(100), turns.take())
            .await
            .expect("a turn was awaited though nobody hands them out");
        turns.give_back().await;
    }
}
