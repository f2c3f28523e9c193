//! Wolf lobbies: joining the lobby the browser asked for, once the host stream is up.
//!
//! A lobby stream is a normal launch followed by one Wolf API call that moves this client's
//! session into the lobby. The call needs the session the launch created, so it runs after the
//! start, retried briefly; like the start, it must stay answerable to `Stop` and EOF.

use std::time::Duration;

use futures_util::StreamExt;
use tokio::io::AsyncRead;
use tokio_util::codec::FramedRead;
use wire::ipc::{ErrorCode, RemoteSignal, StreamerCodec, StreamerInit, ToStreamer};

use super::early::hold_early_signal;
use super::End;

/// Joins `init`'s lobby, if any, answering `Stop`/EOF meanwhile; WebRTC signals are kept in
/// `signals` for the peer, other input before the join completes is dropped.
pub(super) async fn join<R: AsyncRead + Unpin>(
    init: &StreamerInit,
    rx: &mut FramedRead<R, StreamerCodec>,
    signals: &mut Vec<RemoteSignal>,
) -> Result<(), End> {
    let join = join_lobby(init);
    tokio::pin!(join);
    loop {
        tokio::select! {
            result = &mut join => break result,
            msg = rx.next() => match msg {
                None | Some(Ok(ToStreamer::Stop)) => break Err(End::stopped("stopped while joining the lobby")),
                Some(Ok(ToStreamer::Signal(s))) => hold_early_signal(signals, s),
                Some(Ok(_)) => {}
                Some(Err(e)) => break Err(End::ipc(e)),
            },
        }
    }
}

async fn join_lobby(init: &StreamerInit) -> Result<(), End> {
    let (Some(lobby), Some(api)) = (&init.lobby_id, &init.wolf_api) else {
        return Ok(());
    };
    let api = gamestream::wolf_api::WolfApiClient::parse(api)
        .map_err(|e| End::error(ErrorCode::BadInit, e.to_string()))?;
    let mut last = None;
    // The session exists from /launch on; a few tries absorb a slow API.
    for attempt in 0..5 {
        match api.join_lobby(lobby, &init.client_unique_id).await {
            Ok(session_id) => {
                tracing::info!(lobby = %lobby, session_id = %session_id, "joined the lobby");
                return Ok(());
            }
            Err(e @ gamestream::wolf_api::WolfApiError::SessionNotFound(_)) => last = Some(e),
            Err(e) => {
                return Err(End::error(
                    ErrorCode::StreamSetupFailed,
                    format!("lobby join: {e}"),
                ))
            }
        }
        tokio::time::sleep(Duration::from_millis(100 * (attempt + 1))).await;
    }
    Err(End::error(
        ErrorCode::StreamSetupFailed,
        format!(
            "lobby join: {}",
            last.map(|e| e.to_string()).unwrap_or_default()
        ),
    ))
}
