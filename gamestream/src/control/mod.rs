//! The ENet control stream (UDP 47999) and its AES-GCM wrapper, both halves.
//!
//! * [`ids`]: message type ids per generation; [`message`]: payload layouts ([`ClientMessage`],
//!   [`HostMessage`]); [`termination`]: what a host's termination code means.
//! * [`codec`]: V1/V2 framing, the encrypted wrapper (both IV styles) and [`ControlCodec`], the
//!   sans-IO per-connection state.
//! * [`route`]: the ENet channel and reliability of each message and input packet.
//! * [`client_core`]: the client's ENet peer and codec as a sans-IO state machine
//!   ([`ControlCore`]); `enet_mem` gives `rusty_enet` in-memory datagram queues and a set clock.
//! * [`client`] / [`server`]: thin tokio drivers ([`ControlClient`] over [`ControlCore`];
//!   [`ControlServer`] over `rusty_enet` on a socket).

pub mod client;
pub mod client_core;
pub mod codec;
pub(crate) mod enet_io;
pub(crate) mod enet_mem;
pub mod error;
pub mod ids;
pub mod message;
pub mod route;
pub mod server;
pub mod termination;

pub use client::{ClientEvent, ControlClient, ControlConfig, DisconnectReason};
pub use client_core::ControlCore;
pub use codec::{ControlCodec, Direction, IvStyle, OpenedMessage, Side};
pub use error::ControlError;
pub use ids::{Generation, MessageIds};
pub use message::{ClientMessage, FecStatus, HdrMetadata, HostMessage, DYNAMIC_PARAM_BITRATE};
pub use route::{channel, Delivery, InputRoute, Route, CHANNEL_COUNT};
pub use server::{ControlServer, HostEvent, SessionMatch};
pub use termination::{Termination, TerminationForm, TerminationReason};
