//! Wake-on-LAN: the magic packet is 6 × `0xFF` then the MAC 16 times (102 bytes), sent over UDP to
//! a broadcast address (port 9 by convention).

use std::net::{Ipv4Addr, SocketAddr};

use tokio::net::UdpSocket;

/// A MAC address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mac(pub [u8; 6]);

/// A malformed MAC.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid MAC address {0:?} (expected six hex bytes like 00:11:22:33:44:55)")]
pub struct BadMac(pub String);

impl std::str::FromStr for Mac {
    type Err = BadMac;

    /// `00:11:22:33:44:55`, `00-11-22-33-44-55` or `001122334455`.
    fn from_str(s: &str) -> Result<Self, BadMac> {
        let hex: String = s.chars().filter(|c| *c != ':' && *c != '-').collect();
        let bad = || BadMac(s.to_string());
        if hex.len() != 12 || !hex.is_ascii() {
            return Err(bad());
        }
        let mut mac = [0u8; 6];
        for (i, byte) in mac.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).map_err(|_| bad())?;
        }
        Ok(Mac(mac))
    }
}

/// The 102-byte magic packet.
pub fn magic_packet(mac: Mac) -> [u8; 102] {
    let mut p = [0xFFu8; 102];
    for chunk in p[6..].chunks_exact_mut(6) {
        chunk.copy_from_slice(&mac.0);
    }
    p
}

/// Sends the magic packet for `mac` to `target`.
pub async fn wake(mac: Mac, target: SocketAddr) -> std::io::Result<()> {
    let bind: SocketAddr = if target.is_ipv4() {
        (Ipv4Addr::UNSPECIFIED, 0).into()
    } else {
        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let socket = UdpSocket::bind(bind).await?;
    socket.set_broadcast(true)?;
    socket.send_to(&magic_packet(mac), target).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mac_forms() {
        let m: Mac = "00:11:22:aa:BB:ff".parse().unwrap();
        assert_eq!(m.0, [0, 0x11, 0x22, 0xaa, 0xbb, 0xff]);
        assert_eq!("00-11-22-aa-bb-ff".parse::<Mac>().unwrap(), m);
        assert_eq!("001122aabbff".parse::<Mac>().unwrap(), m);
        assert!("00:11:22:aa:bb".parse::<Mac>().is_err());
        assert!("zz:11:22:aa:bb:ff".parse::<Mac>().is_err());
        assert!("é0:11:22:aa:bb:f".parse::<Mac>().is_err());
    }

    #[tokio::test]
    async fn packet_reaches_a_udp_socket() {
        let rx = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let mac: Mac = "01:02:03:04:05:06".parse().unwrap();
        wake(mac, rx.local_addr().unwrap()).await.unwrap();
        let mut buf = [0u8; 200];
        let (n, _) =
            tokio::time::timeout(std::time::Duration::from_secs(5), rx.recv_from(&mut buf))
                .await
                .unwrap()
                .unwrap();
        assert_eq!(n, 102);
        assert_eq!(&buf[..6], &[0xFF; 6]);
        for i in 0..16 {
            assert_eq!(&buf[6 + 6 * i..12 + 6 * i], &[1, 2, 3, 4, 5, 6]);
        }
    }
}
