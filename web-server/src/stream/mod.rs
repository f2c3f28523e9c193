//! The one lifecycle of a stream, whatever carries it to the browser: WebSocket mode
//! (`api::ws_stream`), WebRTC signaling (`api::host_stream`) and WHEP (`api::whep`) are thin
//! transports over it.
//!
//! * [`launch`]: key `{session}-{lobby}-{client}` → host → registry entry (superseding the same
//!   key and older keys of the same client identity) → identity and pairing → the streamer
//!   spawned and sent `Init`, with its turns on the host ([`crate::launch_gate`]).
//! * [`teardown`]: every end, in every mode: `Stop` → the streamer cancels on the host and exits
//!   → reap (kill after a grace period) → the registry entry goes → the close to send; a streamer
//!   that died leaves its host session to be cancelled by the gateway ([`crate::host_cleanup`]).
//! * [`adapt`]: the quality ladder and the controller that picks a rung from a browser's link
//!   (fed by WebSocket mode's `api::ws_stream`, which restreams at the rung it picks).
//! * [`close`]: close codes and reasons toward the browser, and the end reasons counted in the
//!   metrics.

pub(crate) mod adapt;
pub(crate) mod close;
pub(crate) mod launch;
pub(crate) mod roster;
pub(crate) mod teardown;

pub(crate) use close::{clip_reason, Close};
pub(crate) use launch::{launch, Launched, StreamRequest};
pub(crate) use teardown::{ipc_broken, teardown, End, Ends, LastWords};
