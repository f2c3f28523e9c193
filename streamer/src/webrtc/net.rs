//! The peer's one UDP socket and its ICE candidates.
//!
//! str0m is sans-IO: the streamer binds the socket, so the configured port range is simply "try
//! each port in turn". One socket serves every candidate: host candidates for the bound address
//! (for a wildcard bind, loopback and the address of the default route), plus the NAT 1:1 public
//! addresses on the same port. str0m matches an incoming STUN request to a local host candidate
//! by the packet's destination address, which a wildcard socket does not report, so
//! [`Candidates::destination_for`] infers it from the source (loopback ↔ loopback, otherwise the
//! default-route address of the same family); a multi-homed gateway should bind one address.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use str0m::Candidate;
use tokio::net::UdpSocket;
use wire::ipc::{NatCandidateType, NetworkType, WebRtcSettings};

/// Why the socket could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    /// Nothing in the range could be bound.
    #[error("no free UDP port in {min}-{max} on {addr}")]
    NoPort {
        /// Range start.
        min: u16,
        /// Range end.
        max: u16,
        /// Bind address.
        addr: IpAddr,
    },
    /// A setting does not parse or contradicts another.
    #[error("bad WebRTC settings: {0}")]
    Settings(String),
    /// Binding failed for another reason than "in use".
    #[error("binding UDP {addr}: {source}")]
    Bind {
        /// Address tried.
        addr: SocketAddr,
        /// Cause.
        source: std::io::Error,
    },
}

/// Binds one UDP socket on `settings.bind_address`, trying each port of the range in order
/// (`0`/`0` = any port).
pub async fn bind(settings: &WebRtcSettings) -> Result<UdpSocket, NetError> {
    let ip: IpAddr = settings
        .bind_address
        .parse()
        .map_err(|_| NetError::Settings(format!("bind_address {:?}", settings.bind_address)))?;
    let (min, max) = (settings.udp_port_min, settings.udp_port_max);
    if min == 0 && max == 0 {
        let addr = SocketAddr::new(ip, 0);
        return UdpSocket::bind(addr)
            .await
            .map_err(|source| NetError::Bind { addr, source });
    }
    if min == 0 || max < min {
        return Err(NetError::Settings(format!("UDP port range {min}-{max}")));
    }
    for port in min..=max {
        let addr = SocketAddr::new(ip, port);
        match UdpSocket::bind(addr).await {
            Ok(s) => return Ok(s),
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => continue,
            Err(source) => return Err(NetError::Bind { addr, source }),
        }
    }
    Err(NetError::NoPort { min, max, addr: ip })
}

/// The local candidates of one socket and the addresses they stand for.
#[derive(Debug, Clone)]
pub struct Candidates {
    /// Every candidate to add to the `Rtc`, host ones first.
    pub all: Vec<Candidate>,
    /// Local (host) addresses, the possible destinations of incoming packets.
    local: Vec<SocketAddr>,
}

impl Candidates {
    /// Works out the candidates for a socket bound to `bound`.
    pub fn new(bound: SocketAddr, settings: &WebRtcSettings) -> Result<Self, NetError> {
        let allowed = |ip: &IpAddr| {
            settings.network_types.is_empty()
                || settings.network_types.contains(if ip.is_ipv4() {
                    &NetworkType::Udp4
                } else {
                    &NetworkType::Udp6
                })
        };
        let port = bound.port();
        let mut local = Vec::new();
        if bound.ip().is_unspecified() {
            let (loopback, probe): (IpAddr, IpAddr) = if bound.is_ipv4() {
                (
                    Ipv4Addr::LOCALHOST.into(),
                    Ipv4Addr::new(192, 0, 2, 1).into(),
                )
            } else {
                (
                    Ipv6Addr::LOCALHOST.into(),
                    Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1).into(),
                )
            };
            local.push(SocketAddr::new(loopback, port));
            if let Some(ip) = default_route_ip(probe) {
                local.push(SocketAddr::new(ip, port));
            }
        } else {
            local.push(bound);
        }
        local.retain(|a| allowed(&a.ip()));
        let mut all = Vec::new();
        for addr in &local {
            all.push(
                Candidate::host(*addr, "udp")
                    .map_err(|e| NetError::Settings(format!("host candidate {addr}: {e}")))?,
            );
        }
        for ip in &settings.nat_1to1_ips {
            let ip: IpAddr = ip
                .parse()
                .map_err(|_| NetError::Settings(format!("NAT 1:1 IP {ip:?}")))?;
            if !allowed(&ip) {
                continue;
            }
            let public = SocketAddr::new(ip, port);
            let candidate = match settings.nat_1to1_candidate_type {
                NatCandidateType::Host => Candidate::host(public, "udp"),
                NatCandidateType::Srflx => {
                    let Some(base) = local
                        .iter()
                        .find(|a| a.is_ipv4() == ip.is_ipv4() && !a.ip().is_loopback())
                        .or_else(|| local.iter().find(|a| a.is_ipv4() == ip.is_ipv4()))
                    else {
                        continue;
                    };
                    Candidate::server_reflexive(public, *base, "udp")
                }
            }
            .map_err(|e| NetError::Settings(format!("NAT 1:1 candidate {public}: {e}")))?;
            all.push(candidate);
        }
        if all.is_empty() {
            return Err(NetError::Settings(format!(
                "no candidate for {bound} with network types {:?}",
                settings.network_types
            )));
        }
        Ok(Candidates { all, local })
    }

    /// The local address a packet from `source` was (most likely) sent to.
    pub fn destination_for(&self, source: SocketAddr) -> Option<SocketAddr> {
        let same_family = |a: &&SocketAddr| a.is_ipv4() == source.is_ipv4();
        let loopback = source.ip().is_loopback();
        self.local
            .iter()
            .filter(same_family)
            .find(|a| a.ip().is_loopback() == loopback)
            .or_else(|| self.local.iter().find(same_family))
            .copied()
    }
}

/// The address the kernel would send from toward `probe` (no packet is sent: a UDP `connect`
/// only picks the route).
fn default_route_ip(probe: IpAddr) -> Option<IpAddr> {
    let any: SocketAddr = if probe.is_ipv4() {
        (Ipv4Addr::UNSPECIFIED, 0).into()
    } else {
        (Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let s = std::net::UdpSocket::bind(any).ok()?;
    s.connect((probe, 9)).ok()?;
    let ip = s.local_addr().ok()?.ip();
    (!ip.is_unspecified() && !ip.is_loopback()).then_some(ip)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(min: u16, max: u16) -> WebRtcSettings {
        WebRtcSettings {
            udp_port_min: min,
            udp_port_max: max,
            bind_address: "127.0.0.1".into(),
            ..WebRtcSettings::default()
        }
    }

    #[tokio::test]
    async fn binds_inside_the_range_and_fails_clearly_beyond_it() {
        // Find 3 consecutive free ports by holding them, then release them for the test.
        let base = loop {
            let probe = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
            let p = probe.local_addr().unwrap().port();
            if p < 65000 {
                break p;
            }
        };
        let s = settings(base, base + 2);
        let mut held = Vec::new();
        for _ in 0..3 {
            match bind(&s).await {
                Ok(sock) => {
                    let port = sock.local_addr().unwrap().port();
                    assert!((base..=base + 2).contains(&port));
                    held.push(sock);
                }
                // Another process took a port of the range meanwhile: still a clear error.
                Err(e) => {
                    assert!(matches!(e, NetError::NoPort { .. }));
                    return;
                }
            }
        }
        let err = bind(&s).await.unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("no free UDP port in {base}-{} on 127.0.0.1", base + 2)
        );
        assert!(matches!(
            bind(&settings(10, 5)).await,
            Err(NetError::Settings(_))
        ));
    }

    #[test]
    fn candidates_for_wildcard_and_nat() {
        let s = WebRtcSettings {
            nat_1to1_ips: vec!["203.0.113.7".into()],
            nat_1to1_candidate_type: NatCandidateType::Host,
            network_types: vec![NetworkType::Udp4],
            ..WebRtcSettings::default()
        };
        let c = Candidates::new("0.0.0.0:40000".parse().unwrap(), &s).unwrap();
        let lines: Vec<String> = c.all.iter().map(|c| c.to_sdp_string()).collect();
        assert!(lines[0].contains("127.0.0.1 40000 typ host"), "{lines:?}");
        assert!(
            lines
                .iter()
                .any(|l| l.contains("203.0.113.7 40000 typ host")),
            "{lines:?}"
        );
        assert_eq!(
            c.destination_for("127.0.0.1:5555".parse().unwrap()),
            Some("127.0.0.1:40000".parse().unwrap())
        );
        let srflx = WebRtcSettings {
            nat_1to1_candidate_type: NatCandidateType::Srflx,
            bind_address: "127.0.0.1".into(),
            ..s
        };
        let c = Candidates::new("127.0.0.1:40000".parse().unwrap(), &srflx).unwrap();
        assert!(c.all[1]
            .to_sdp_string()
            .contains("203.0.113.7 40000 typ srflx"));
        // Only udp6 allowed on an IPv4 socket: nothing to offer, a clear error.
        let v6 = WebRtcSettings {
            network_types: vec![NetworkType::Udp6],
            nat_1to1_ips: vec![],
            ..WebRtcSettings::default()
        };
        assert!(Candidates::new("127.0.0.1:4".parse().unwrap(), &v6).is_err());
        let bad = WebRtcSettings {
            nat_1to1_ips: vec!["not-an-ip".into()],
            ..WebRtcSettings::default()
        };
        assert!(Candidates::new("127.0.0.1:4".parse().unwrap(), &bad).is_err());
    }
}
