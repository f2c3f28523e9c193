//! `GET /api/ws/watch`: joins a WebSocket-mode stream as a viewer (docs/browser-protocol.md §8).
//!
//! The first text message names the stream and its join token; the viewer then gets what the
//! owner gets (StreamInit, ConnectionComplete, a keyframe, audio) from its own queue, and its
//! input reaches the host only while it holds control. A viewer never starts or stops a host
//! session itself: when it is the last member to leave, the owner's stream task tears down.
//! Viewer-role users may watch, since watching changes nothing on the host.

use std::net::SocketAddr;

use axum::extract::ws::WebSocket;
use axum::extract::{ConnectInfo, State, WebSocketUpgrade};
use axum::http::HeaderMap;
use axum::response::Response;
use serde::Deserialize;
use wire::browser::ErrorCode;

use super::ws_hub::{JoinError, MAX_MEMBERS};
use super::ws_member::{read_member, Leave, Socket};
use crate::auth::{first_message_principal, AllowedOrigin, Principal};
use crate::error::ApiError;
use crate::state::AppState;
use crate::stream::Close;

/// `{"watch":{"stream":…,"token":…},"credentials":…}`.
#[derive(Deserialize)]
struct WatchMessage {
    watch: WatchTarget,
}

#[derive(Deserialize)]
struct WatchTarget {
    stream: String,
    token: String,
}

/// The upgrade handler; authentication as for `/api/ws/stream`.
pub async fn handler(
    State(state): State<AppState>,
    _origin: AllowedOrigin,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    ws: WebSocketUpgrade,
) -> Result<Response, ApiError> {
    super::socket::upgrade(state, peer, &headers, ws, move |state, socket, who| {
        connection(state, socket, who, peer)
    })
    .await
}

async fn connection(state: AppState, socket: WebSocket, who: Option<Principal>, peer: SocketAddr) {
    let mut socket = Socket::open(socket);
    let close = watch(&state, &mut socket, who, peer).await;
    socket.finish(close.as_ref()).await;
}

/// Joins and watches; the close to send, or `None` when the stream's end already queued it.
async fn watch(
    state: &AppState,
    socket: &mut Socket,
    who: Option<Principal>,
    peer: SocketAddr,
) -> Option<Close> {
    let text = match socket.first_text(state, "the watch message").await {
        Ok(text) => text,
        Err(close) => return Some(close),
    };
    let who = match who {
        Some(who) => who,
        None => match first_message_principal(state, text.as_str()).await {
            Ok(who) => who,
            Err(e) => {
                tracing::warn!(%peer, error = %e, "watch socket refused");
                return Some(Close::policy(ErrorCode::Unauthorized, e));
            }
        },
    };
    let target = match serde_json::from_str::<WatchMessage>(text.as_str()) {
        Ok(m) => m.watch,
        Err(e) => {
            return Some(Close::policy(
                ErrorCode::InvalidInit,
                format!("expected {{\"watch\":{{\"stream\":…,\"token\":…}}}}: {e}"),
            ))
        }
    };
    // One answer for an unknown stream and a wrong token: ids cannot be probed.
    let not_found = || {
        Some(Close::policy(
            ErrorCode::SessionNotFound,
            "no stream with that id and join token on this gateway",
        ))
    };
    let Some(hub) = state.watches.find(&target.stream, &target.token) else {
        tracing::info!(%peer, "watch refused: unknown stream or wrong join token");
        return not_found();
    };
    let name = who.user.clone().unwrap_or_else(|| "guest".into());
    let id = match hub.join(&name, std::sync::Arc::clone(&socket.outbox)) {
        Ok(id) => id,
        Err(JoinError::Ended) => return not_found(),
        Err(JoinError::Full) => {
            return Some(Close::policy(
                ErrorCode::TooManyStreams,
                format!("this stream already has its most viewers ({MAX_MEMBERS})"),
            ))
        }
    };
    let why = read_member(&mut socket.stream, &socket.outbox, &hub, id, hub.ended()).await?;
    // A refused viewer gets its own close; the stream sees it leave like any other.
    let (close, why) = match why {
        Leave::Refused(close) => (close, Leave::Closed),
        other => (Close::normal("the viewer left"), other),
    };
    hub.leave(id, why);
    Some(close)
}
