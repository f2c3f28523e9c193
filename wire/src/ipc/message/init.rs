//! What the web-server tells a streamer at the start (`Init`: host, identity, stream settings,
//! mode) and the WebRTC signaling both ways. Kept apart from the message enums because it is
//! most of the IPC's vocabulary and all of it is JSON.

use crate::Secret;
use serde::{Deserialize, Serialize};

/// How the streamer delivers media to the browser.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StreamMode {
    /// Media comes back over IPC ([`FromStreamer::Video`]/[`FromStreamer::Audio`]) and the
    /// web-server forwards it on the browser's WebSocket.
    Websocket,
    /// The streamer owns a WebRTC peer connection to the browser.
    Webrtc,
}

/// Where the Moonlight host is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostAddress {
    /// Host name or IP address.
    pub address: String,
    /// nvhttp HTTP port (47989 by default).
    pub http_port: u16,
    /// nvhttp HTTPS port (47984 by default).
    pub https_port: u16,
}

/// Everything a streamer needs to run one session; the first frame the web-server sends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamerInit {
    /// `{session}-{lobby}-{client}`: the registry key, prefixed to every log line.
    pub session_key: String,
    /// WebSocket or WebRTC delivery.
    pub mode: StreamMode,
    /// The host.
    pub host: HostAddress,
    /// The host's certificate (DER) pinned at pairing; hex in the JSON.
    #[serde(with = "hex_bytes")]
    pub host_cert_der: Vec<u8>,
    /// The Moonlight `uniqueid` of the client identity.
    pub client_unique_id: String,
    /// The paired client certificate, PEM.
    pub client_cert_pem: String,
    /// Its private key, PEM. Secret: redacted in `Debug`.
    pub client_key_pem: Secret,
    /// Moonlight app id to launch.
    pub app_id: u32,
    /// Requested width.
    pub width: u32,
    /// Requested height.
    pub height: u32,
    /// Requested frame rate.
    pub fps: u32,
    /// Requested bitrate, kbit/s.
    pub bitrate_kbps: u32,
    /// Moonlight packet size.
    pub packet_size: u32,
    /// What the browser decodes (`SupportedVideoFormats` bits, [`browser::formats`]).
    pub video_formats: u32,
    /// Audio channels to ask for (2, 6 or 8).
    pub audio_channels: u8,
    /// Play audio on the host and do not stream it.
    pub play_audio_local: bool,
    /// Wolf lobby to join, if any.
    #[serde(default)]
    pub lobby_id: Option<String>,
    /// Wolf API: a Unix socket path (starts with `/`) or an `http(s)://` URL.
    #[serde(default)]
    pub wolf_api: Option<String>,
    /// The peer's network settings; used in [`StreamMode::Webrtc`] only (absent → defaults).
    #[serde(default)]
    pub webrtc: Option<WebRtcSettings>,
    /// The web-server hands out turns to launch on this host: ask for one
    /// ([`FromStreamer::LaunchTurn`]) before each `/launch` and wait for
    /// [`ToStreamer::LaunchTurn`]. Absent (a streamer driven by hand): launch at once.
    #[serde(default)]
    pub launch_turns: bool,
}

/// How a NAT 1:1 address is advertised (pion's `NAT1To1IPCandidateType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NatCandidateType {
    /// As an extra host candidate (typ host) on the bound port: the usual choice when the public
    /// address forwards the same port to us.
    #[default]
    Host,
    /// As a server-reflexive candidate (typ srflx, related to the bound address).
    Srflx,
}

/// An ICE network type the peer may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NetworkType {
    /// UDP over IPv4.
    Udp4,
    /// UDP over IPv6.
    Udp6,
}

/// The streamer's WebRTC network settings ([`StreamerInit::webrtc`]). ICE *servers* are not here:
/// the streamer is the ICE-controlled side with its own host (and NAT 1:1) candidates and no TURN
/// client; STUN/TURN servers matter only to the browser, which the web-server tells itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct WebRtcSettings {
    /// Lowest UDP port the peer may bind (inclusive). `0` with `udp_port_max` `0` = any port.
    pub udp_port_min: u16,
    /// Highest UDP port (inclusive).
    pub udp_port_max: u16,
    /// Address to bind, e.g. `0.0.0.0` (every local address becomes a host candidate) or one IP.
    pub bind_address: String,
    /// Public addresses to advertise in addition (NAT 1:1), on the bound port.
    pub nat_1to1_ips: Vec<String>,
    /// How the NAT 1:1 addresses are advertised.
    pub nat_1to1_candidate_type: NatCandidateType,
    /// Which address families become candidates (empty = both).
    pub network_types: Vec<NetworkType>,
    /// A peer whose ICE state stays disconnected this long ends the stream (default 10 s).
    pub disconnect_timeout_ms: u32,
}

impl Default for WebRtcSettings {
    fn default() -> Self {
        WebRtcSettings {
            udp_port_min: 0,
            udp_port_max: 0,
            bind_address: "0.0.0.0".into(),
            nat_1to1_ips: Vec::new(),
            nat_1to1_candidate_type: NatCandidateType::Host,
            network_types: Vec::new(),
            disconnect_timeout_ms: 10_000,
        }
    }
}

/// Descriptions and candidates are the Helix contract's own (§3.2): they pass between the
/// browser's signaling socket and the streamer unchanged, so the IPC speaks the same types.
pub use crate::browser::signaling::{
    RtcIceCandidate as IceCandidate, RtcSdpType as SdpType,
    RtcSessionDescription as SessionDescription,
};

/// The streamer's peer connection state, reported as it changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PeerState {
    /// ICE is checking.
    Checking,
    /// ICE and DTLS are up: media flows.
    Connected,
    /// ICE lost the peer; the stream ends if it stays so for the disconnect timeout.
    Disconnected,
    /// ICE failed; the stream ends.
    Failed,
    /// The peer connection is closed.
    Closed,
    /// A state added by a newer streamer.
    #[serde(other)]
    Other,
}

/// `ToStreamer::Signal` (JSON): signaling from the browser (or WHEP), relayed by the web-server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum RemoteSignal {
    /// The browser's description: an offer (the streamer answers with a
    /// [`LocalSignal::Description`]) or the answer to the streamer's offer.
    Description(SessionDescription),
    /// A trickled remote candidate.
    Candidate(IceCandidate),
    /// Make an offer (contract §1.5: the server offers in `join` mode); the streamer answers with
    /// a [`LocalSignal::Description`] of type offer and waits for the answer.
    CreateOffer,
}

/// `FromStreamer::Signal` (JSON): signaling for the browser, which the web-server translates to
/// the Helix JSON (§3.3) or to WHEP.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum LocalSignal {
    /// The streamer's answer or offer. All its candidates are already in the SDP (the streamer
    /// knows them before it writes it), so WHEP can return it as is.
    Description(SessionDescription),
    /// A local candidate (also in the SDP; sent for trickle-style clients).
    Candidate(IceCandidate),
    /// The peer connection state changed.
    State(PeerState),
}

mod hex_bytes {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(v))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let s = String::deserialize(d)?;
        hex::decode(s).map_err(serde::de::Error::custom)
    }
}
