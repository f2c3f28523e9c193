//! What the two stream sockets (`ws_stream`, `host_stream`) share around the WebSocket itself:
//! the upgrade (bearer check, per-IP open limit, message size caps) and the closing handshake's
//! time budgets, so both transports refuse, size and close a socket the same way.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::http::HeaderMap;
use axum::response::Response;
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};

use crate::auth::{optional_principal, Principal};
use crate::error::ApiError;
use crate::state::AppState;

/// How long the final messages and the close frame may take to reach the browser.
pub(crate) const CLOSE_FLUSH: Duration = Duration::from_secs(2);
/// How long the browser may take to answer our Close before the connection is dropped anyway.
pub(crate) const CLOSE_ANSWER: Duration = Duration::from_secs(1);

/// Upgrades a stream socket. A wrong `Authorization` header is refused before the upgrade (the
/// connection is told who a valid one named, else its first message must carry `credentials`);
/// so is a peer over its open limit.
pub(crate) async fn upgrade<F, Fut>(
    state: AppState,
    peer: SocketAddr,
    headers: &HeaderMap,
    ws: WebSocketUpgrade,
    connection: F,
) -> Result<Response, ApiError>
where
    F: FnOnce(AppState, WebSocket, Option<Principal>) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let who = optional_principal(&state, headers, peer).await?;
    state.allow_open(peer.ip())?;
    let max = state.config.limits.max_message_bytes;
    Ok(ws
        .max_message_size(max)
        .max_frame_size(max)
        .on_upgrade(move |socket| connection(state, socket, who)))
}

/// Flushes the sink so an echo of the browser's Close leaves now.
///
/// Why a flush: when tungstenite reads the peer's Close it queues the echo itself and refuses
/// every later write (`SendAfterClosing`, our own Close included); the echo leaves only with the
/// next read, write or flush. Without it the browser waited through the teardown and saw 1006.
pub(crate) async fn answer_close(sink: &mut SplitSink<WebSocket, Message>) {
    let _ = tokio::time::timeout(CLOSE_FLUSH, sink.flush()).await;
}

/// After our own Close: reads until the browser's answer (or the end of the socket) so the
/// closing handshake completes before the connection is dropped.
pub(crate) async fn await_close_answer(stream: &mut SplitStream<WebSocket>) {
    let answer = async {
        while let Some(Ok(msg)) = stream.next().await {
            if matches!(msg, Message::Close(_)) {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(CLOSE_ANSWER, answer).await;
}
