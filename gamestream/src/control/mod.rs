//! The ENet control stream (UDP 47999) and its AES-GCM wrapper, both halves.
//!
//! * [`ids`]: message type ids per generation; [`message`]: payload layouts ([`ClientMessage`],
//!   [`HostMessage`]); [`termination`]: what a host's termination code means.
//! * [`codec`]: V1/V2 framing, the encrypted wrapper (both IV styles) and [`ControlCodec`], the
//!   sans-IO per-connection state.
//! * [`route`]: the ENet channel and reliability of each message and input packet.
//! * [`client`] / [`server`]: thin tokio drivers over `rusty_enet` ([`ControlClient`],
//!   [`ControlServer`]).

pub mod client;
pub mod codec;
mod enet_io;
pub mod error;
pub mod ids;
pub mod message;
pub mod route;
pub mod server;
pub mod termination;

pub use client::{ClientEvent, ControlClient, ControlConfig, DisconnectReason};
pub use codec::{ControlCodec, Direction, IvStyle, OpenedMessage, Side};
pub use error::ControlError;
pub use ids::{Generation, MessageIds};
pub use message::{ClientMessage, FecStatus, HdrMetadata, HostMessage};
pub use route::{channel, Delivery, InputRoute, Route, CHANNEL_COUNT};
pub use server::{ControlServer, HostEvent, SessionMatch};
pub use termination::{Termination, TerminationForm, TerminationReason};
