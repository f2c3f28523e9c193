//! ENet channel and reliability of each control message (§4.3).
//!
//! Sunshine-like hosts get per-purpose channels and some unreliable sends; GFE gets everything on
//! channel 0, reliable, exactly as moonlight-common-c does.

use super::message::ClientMessage;
use crate::version::AppVersion;

/// ENet channel numbers used by moonlight-common-c.
pub mod channel {
    /// Start messages, ping, loss stats, FEC status, haptics-enable, termination.
    pub const GENERIC: u8 = 0x00;
    /// IDR request, RFI, LTR ACK.
    pub const URGENT: u8 = 0x01;
    /// Keyboard.
    pub const KEYBOARD: u8 = 0x02;
    /// Mouse move/button/scroll.
    pub const MOUSE: u8 = 0x03;
    /// Pen.
    pub const PEN: u8 = 0x04;
    /// Touch.
    pub const TOUCH: u8 = 0x05;
    /// UTF-8 text.
    pub const UTF8: u8 = 0x06;

    /// Controller `n` (0..15): state, arrival, battery, controller touch.
    pub const fn gamepad(n: u8) -> u8 {
        0x10 + (n & 0x0F)
    }

    /// Controller `n`'s motion sensor.
    pub const fn sensor(n: u8) -> u8 {
        0x20 + (n & 0x0F)
    }
}

/// Channels a client asks for in its ENet CONNECT (`CTRL_CHANNEL_COUNT`).
pub const CHANNEL_COUNT: usize = 0x30;

/// ENet delivery mode of a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Delivery {
    /// Reliable, sequenced.
    Reliable,
    /// Unreliable, sequenced.
    Unreliable,
    /// Unreliable and unsequenced.
    Unsequenced,
}

/// Where and how one packet is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Route {
    /// ENet channel.
    pub channel: u8,
    /// Delivery mode.
    pub delivery: Delivery,
}

/// The route the input module chooses for one NV input packet (before host adjustments).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct InputRoute {
    /// ENet channel (see [`channel`]).
    pub channel: u8,
    /// False only for touch/pen hover-move, controller-touch hover-move and most motion samples.
    pub reliable: bool,
}

impl InputRoute {
    /// Reliable on `channel`.
    pub const fn reliable(channel: u8) -> Self {
        Self {
            channel,
            reliable: true,
        }
    }

    /// Unreliable on `channel`.
    pub const fn unreliable(channel: u8) -> Self {
        Self {
            channel,
            reliable: false,
        }
    }
}

impl Route {
    /// Reliable on GENERIC: what every host → client message uses.
    pub const GENERIC_RELIABLE: Route = Route {
        channel: channel::GENERIC,
        delivery: Delivery::Reliable,
    };

    /// The route of a client message toward a host with `version` (input uses
    /// [`Route::for_input`] with the input module's choice instead).
    pub fn for_message(msg: &ClientMessage, version: AppVersion) -> Route {
        let (channel, delivery) = match msg {
            ClientMessage::IdrRequest
            | ClientMessage::Rfi { .. }
            | ClientMessage::LtrAck { .. } => (channel::URGENT, Delivery::Reliable),
            ClientMessage::LossStats { .. } => (channel::GENERIC, Delivery::Unreliable),
            ClientMessage::FecStatus(_) => (channel::GENERIC, Delivery::Unsequenced),
            _ => (channel::GENERIC, Delivery::Reliable),
        };
        Route { channel, delivery }.toward(version)
    }

    /// The route of an input packet toward a host with `version`.
    pub fn for_input(route: InputRoute, version: AppVersion) -> Route {
        let delivery = if route.reliable {
            Delivery::Reliable
        } else {
            Delivery::Unreliable
        };
        Route {
            channel: route.channel,
            delivery,
        }
        .toward(version)
    }

    /// GFE (non-Sunshine) hosts get everything on channel 0, reliable.
    pub fn toward(self, version: AppVersion) -> Route {
        if version.is_sunshine() {
            self
        } else {
            Self::GENERIC_RELIABLE
        }
    }

    /// Folds the channel into the peer's negotiated channel count, as moonlight-common-c does.
    pub fn fit_channels(self, peer_channel_count: usize) -> Route {
        let channel = match peer_channel_count {
            0 => 0,
            n if usize::from(self.channel) >= n => (usize::from(self.channel) % n) as u8,
            _ => self.channel,
        };
        Route { channel, ..self }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes() {
        let ss = AppVersion::SUNSHINE;
        let gfe = AppVersion::parse("7.1.431.0");
        assert_eq!(
            Route::for_message(&ClientMessage::IdrRequest, ss),
            Route {
                channel: 1,
                delivery: Delivery::Reliable
            }
        );
        assert_eq!(
            Route::for_message(&ClientMessage::StartA, ss),
            Route::GENERIC_RELIABLE
        );
        assert_eq!(
            Route::for_message(&ClientMessage::FecStatus(Default::default()), ss).delivery,
            Delivery::Unsequenced
        );
        assert_eq!(
            Route::for_message(&ClientMessage::Rfi { first: 0, last: 1 }, gfe),
            Route::GENERIC_RELIABLE
        );
        let pad = InputRoute::unreliable(channel::gamepad(3));
        assert_eq!(
            Route::for_input(pad, ss),
            Route {
                channel: 0x13,
                delivery: Delivery::Unreliable
            }
        );
        assert_eq!(Route::for_input(pad, gfe), Route::GENERIC_RELIABLE);
        assert_eq!(channel::sensor(15), 0x2F);
        assert_eq!(
            Route::for_input(InputRoute::reliable(0x2F), ss)
                .fit_channels(32)
                .channel,
            0x0F
        );
        assert_eq!(
            Route::for_input(InputRoute::reliable(5), ss)
                .fit_channels(0)
                .channel,
            0
        );
    }
}
