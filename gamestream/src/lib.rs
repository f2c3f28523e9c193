//! # gamestream
//!
//! The GameStream / Moonlight protocol in pure Rust, both halves (client and host), byte-exact with
//! moonlight-common-c, Sunshine and Wolf.
//!
//! Every protocol layer is a sans-IO core (plain state machines and codecs that take bytes and time
//! and return bytes and events) with a thin tokio driver on top. The layers, in the order a session
//! uses them:
//!
//! | module | what |
//! |---|---|
//! | [`version`] | the host's `appversion`, which selects every generation-specific behaviour |
//! | [`identity`], [`tls`] | RSA-2048 client/host certificates, pinned-certificate TLS |
//! | [`nvhttp`], [`pairing`] | the HTTP(S) API (`/serverinfo`, `/pair`, `/applist`, `/launch`, ...) and PIN pairing |
//! | [`rtsp`] | the RTSP handshake (plain and `rtspenc://`), SDP, port discovery |
//! | [`control`] | the ENet control stream and its AES-GCM wrapper |
//! | [`input`] | every input packet, with the generation-specific wrapping |
//! | [`ping`] | UDP pings that open the media paths |
//! | [`video`], [`fec`] | video packetizer/depacketizer, multi-block Reed–Solomon FEC, encryption |
//! | [`audio`] | Opus RTP, RS(4,2) audio FEC, AES-CBC |
//! | [`mic`] | the Sunshine forks' microphone uplink (client → host Opus) |
//! | [`crypto`] | the AES modes shared by all of the above |
//! | [`wolf_api`] | a client of Wolf's own HTTP API (lobbies, sessions, PIN entry), beside GameStream |

#![forbid(unsafe_op_in_unsafe_fn)]
#![warn(missing_debug_implementations)]

/// `Debug` for a type that holds key material: it prints only `text`, never a secret.
macro_rules! redacted_debug {
    ($ty:ty, $text:literal) => {
        impl std::fmt::Debug for $ty {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str($text)
            }
        }
    };
}

pub mod audio;
pub mod client;
pub mod control;
pub mod crypto;
pub mod fec;
pub mod host;
pub mod identity;
pub mod input;
pub mod mic;
pub mod nvhttp;
pub mod pairing;
pub mod ping;
pub mod rtsp;
pub mod tls;
pub mod version;
pub mod video;
pub mod wolf_api;

pub use version::AppVersion;
