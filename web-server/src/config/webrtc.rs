//! The `[webrtc]` section: ICE servers for the browser and how the streamers' peers bind, with
//! its environment overlay and cross-field checks. Kept apart from `config.rs` because it is the
//! largest section and has its own value parsers (IPs, ports, comma lists).

use super::*;

/// A STUN/TURN server for the browser. The credential is redacted in `Debug`.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IceServer {
    /// `stun:`, `turn:` or `turns:` URLs.
    pub urls: Vec<String>,
    /// TURN user name.
    #[serde(default)]
    pub username: String,
    /// TURN credential.
    #[serde(default)]
    pub credential: String,
}

impl fmt::Debug for IceServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IceServer")
            .field("urls", &self.urls)
            .field("username", &self.username)
            .field("credential", &"<redacted>")
            .finish()
    }
}

/// How NAT 1:1 addresses are advertised.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NatCandidateType {
    /// As host candidates.
    #[default]
    Host,
    /// As server-reflexive candidates.
    Srflx,
}

/// An ICE network type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NetworkType {
    /// UDP over IPv4.
    Udp4,
    /// UDP over IPv6.
    Udp6,
}

/// WebRTC mode: what the browser is told (ICE servers) and how the streamers' peers bind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebRtc {
    /// STUN/TURN servers for the browser.
    pub ice_servers: Vec<IceServer>,
    /// Lowest UDP port (inclusive); 0 with `udp_port_max` 0 = any.
    pub udp_port_min: u16,
    /// Highest UDP port (inclusive).
    pub udp_port_max: u16,
    /// Address the peers bind.
    pub bind_address: std::net::IpAddr,
    /// Public IPs advertised in addition (NAT 1:1).
    pub nat_1to1_ips: Vec<std::net::IpAddr>,
    /// How they are advertised.
    pub nat_candidate_type: NatCandidateType,
    /// Address families used (empty = both).
    pub network_types: Vec<NetworkType>,
    /// A peer disconnected this long ends the stream.
    pub disconnect_timeout: Duration,
}

impl Default for WebRtc {
    fn default() -> Self {
        WebRtc {
            ice_servers: Vec::new(),
            udp_port_min: 0,
            udp_port_max: 0,
            bind_address: std::net::IpAddr::from([0, 0, 0, 0]),
            nat_1to1_ips: Vec::new(),
            nat_candidate_type: NatCandidateType::Host,
            network_types: Vec::new(),
            disconnect_timeout: Duration::from_secs(10),
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileWebRtc {
    #[serde(default)]
    ice_servers: Option<Vec<IceServer>>,
    udp_port_min: Option<u16>,
    udp_port_max: Option<u16>,
    bind_address: Option<String>,
    nat_1to1_ips: Option<Vec<String>>,
    nat_candidate_type: Option<NatCandidateType>,
    network_types: Option<Vec<NetworkType>>,
    disconnect_timeout_secs: Option<u64>,
}

pub(super) fn parse_ip(key: &str, value: &str) -> Result<std::net::IpAddr, ConfigError> {
    value.trim().parse().map_err(|_| ConfigError::Invalid {
        key: key.into(),
        message: format!("{value:?} is not an IP address"),
    })
}

pub(super) fn parse_port(key: &str, value: &str) -> Result<u16, ConfigError> {
    parse_as(key, value, "a port number")
}

pub(super) fn comma_list(value: &str) -> impl Iterator<Item = &str> {
    value.split(',').map(str::trim).filter(|s| !s.is_empty())
}

impl WebRtc {
    pub(super) fn overlay(&mut self, f: FileWebRtc) -> Result<(), ConfigError> {
        if let Some(v) = f.ice_servers {
            self.ice_servers = v;
        }
        if let Some(v) = f.udp_port_min {
            self.udp_port_min = v;
        }
        if let Some(v) = f.udp_port_max {
            self.udp_port_max = v;
        }
        if let Some(v) = f.bind_address {
            self.bind_address = parse_ip("webrtc.bind_address", &v)?;
        }
        if let Some(v) = f.nat_1to1_ips {
            self.nat_1to1_ips = v
                .iter()
                .map(|ip| parse_ip("webrtc.nat_1to1_ips", ip))
                .collect::<Result<_, _>>()?;
        }
        if let Some(v) = f.nat_candidate_type {
            self.nat_candidate_type = v;
        }
        if let Some(v) = f.network_types {
            self.network_types = v;
        }
        if let Some(v) = f.disconnect_timeout_secs {
            self.disconnect_timeout = secs("webrtc.disconnect_timeout_secs", v)?;
        }
        Ok(())
    }

    pub(super) fn overlay_env(
        &mut self,
        env: &impl Fn(&str) -> Option<String>,
    ) -> Result<(), ConfigError> {
        if let Some(v) = env("MOONGATE_WEBRTC_ICE_SERVERS") {
            let v = v.trim();
            self.ice_servers = if v.starts_with('[') {
                serde_json::from_str(v).map_err(|e| ConfigError::Invalid {
                    key: "MOONGATE_WEBRTC_ICE_SERVERS".into(),
                    message: format!("not a JSON array of {{urls, username, credential}}: {e}"),
                })?
            } else {
                comma_list(v)
                    .map(|u| IceServer {
                        urls: vec![u.to_string()],
                        username: String::new(),
                        credential: String::new(),
                    })
                    .collect()
            };
        }
        if let Some(v) = env("MOONGATE_WEBRTC_UDP_PORT_MIN") {
            self.udp_port_min = parse_port("MOONGATE_WEBRTC_UDP_PORT_MIN", &v)?;
        }
        if let Some(v) = env("MOONGATE_WEBRTC_UDP_PORT_MAX") {
            self.udp_port_max = parse_port("MOONGATE_WEBRTC_UDP_PORT_MAX", &v)?;
        }
        if let Some(v) = env("MOONGATE_WEBRTC_BIND_ADDRESS") {
            self.bind_address = parse_ip("MOONGATE_WEBRTC_BIND_ADDRESS", &v)?;
        }
        if let Some(v) = env("MOONGATE_WEBRTC_NAT_1TO1_IPS") {
            self.nat_1to1_ips = comma_list(&v)
                .map(|ip| parse_ip("MOONGATE_WEBRTC_NAT_1TO1_IPS", ip))
                .collect::<Result<_, _>>()?;
        }
        if let Some(v) = env("MOONGATE_WEBRTC_NAT_CANDIDATE_TYPE") {
            self.nat_candidate_type = match v.trim() {
                "host" => NatCandidateType::Host,
                "srflx" => NatCandidateType::Srflx,
                other => {
                    return Err(ConfigError::Invalid {
                        key: "MOONGATE_WEBRTC_NAT_CANDIDATE_TYPE".into(),
                        message: format!("{other:?} is not host or srflx"),
                    })
                }
            };
        }
        if let Some(v) = env("MOONGATE_WEBRTC_NETWORK_TYPES") {
            self.network_types = comma_list(&v)
                .map(|t| match t {
                    "udp4" => Ok(NetworkType::Udp4),
                    "udp6" => Ok(NetworkType::Udp6),
                    other => Err(ConfigError::Invalid {
                        key: "MOONGATE_WEBRTC_NETWORK_TYPES".into(),
                        message: format!("{other:?} is not udp4 or udp6"),
                    }),
                })
                .collect::<Result<_, _>>()?;
        }
        if let Some(v) = env("MOONGATE_WEBRTC_DISCONNECT_TIMEOUT_SECS") {
            let key = "MOONGATE_WEBRTC_DISCONNECT_TIMEOUT_SECS";
            self.disconnect_timeout = secs(key, parse_as(key, &v, "a number of seconds")?)?;
        }
        Ok(())
    }

    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        let (lo, hi) = (self.udp_port_min, self.udp_port_max);
        if (lo == 0) != (hi == 0) || lo > hi {
            return Err(ConfigError::Invalid {
                key: "webrtc.udp_port_min/udp_port_max".into(),
                message: format!("{lo}-{hi} is not a range (both 0 = any port, else min <= max)"),
            });
        }
        for s in &self.ice_servers {
            let ok = !s.urls.is_empty()
                && s.urls.iter().all(|u| {
                    u.starts_with("stun:") || u.starts_with("turn:") || u.starts_with("turns:")
                });
            if !ok {
                return Err(ConfigError::Invalid {
                    key: "webrtc.ice_servers".into(),
                    message: format!("{:?}: URLs must start with stun:, turn: or turns:", s.urls),
                });
            }
        }
        Ok(())
    }
}
