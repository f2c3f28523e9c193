//! Small value parsers for RTSP headers and launch parameters, each matching how moonlight-common-c
//! reads the value (so we interoperate with the same hosts it does).

use super::RtspError;

/// Parses like C `strtoul(s, NULL, 0)` and truncates to 32 bits the way a cast to `uint32_t` does:
/// leading whitespace, optional sign, `0x` hex / leading-`0` octal / decimal, stop at the first
/// invalid digit, overflow saturates, no digits ⇒ 0.
pub fn strtoul0(s: &str) -> u32 {
    let b = s.as_bytes();
    let mut i = 0;
    while b
        .get(i)
        .is_some_and(|c| matches!(c, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c))
    {
        i += 1;
    }
    let mut negative = false;
    if let Some(&c @ (b'+' | b'-')) = b.get(i) {
        negative = c == b'-';
        i += 1;
    }
    let mut radix = 10;
    if b.get(i) == Some(&b'0') {
        if matches!(b.get(i + 1), Some(b'x' | b'X'))
            && b.get(i + 2).is_some_and(|c| c.is_ascii_hexdigit())
        {
            radix = 16;
            i += 2;
        } else {
            radix = 8;
        }
    }
    let mut value: u64 = 0;
    let mut overflow = false;
    while let Some(d) = b.get(i).and_then(|&c| (c as char).to_digit(radix)) {
        match value
            .checked_mul(u64::from(radix))
            .and_then(|v| v.checked_add(u64::from(d)))
        {
            Some(v) => value = v,
            None => overflow = true,
        }
        i += 1;
    }
    if overflow {
        return u32::MAX;
    }
    let value = if negative {
        value.wrapping_neg()
    } else {
        value
    };
    value as u32
}

/// Leading ASCII decimal digits of `s` as a number, `None` if there are none or it overflows.
fn leading_decimal(s: &str) -> Option<u64> {
    let digits = s.bytes().take_while(u8::is_ascii_digit).count();
    s.get(..digits)
        .filter(|d| !d.is_empty())
        .and_then(|d| d.parse().ok())
}

/// The port in a `Transport` header: the decimal after `server_port=` anywhere in the value, read
/// like C `strtol(…, 10)` up to the first non-digit; `None` if absent, ≤ 0 or above 65535 (the
/// caller then uses the default).
pub fn server_port(transport: &str) -> Option<u16> {
    let start = transport.find("server_port=")? + "server_port=".len();
    let rest = transport
        .get(start..)?
        .trim_start_matches([' ', '\t', '\n', '\r', '\x0b', '\x0c']);
    let rest = match rest.strip_prefix('-') {
        // Any negative value is ≤ 0 and rejected.
        Some(_) => return None,
        None => rest.strip_prefix('+').unwrap_or(rest),
    };
    let port = leading_decimal(rest)?;
    u16::try_from(port).ok().filter(|&p| p != 0)
}

/// The session id in a `Session` header: the text before the first `;`, trimmed; empty ⇒ error.
pub fn session_id(session: &str) -> Result<String, RtspError> {
    let id = session.split(';').next().unwrap_or_default().trim();
    if id.is_empty() {
        return Err(RtspError::MissingSession);
    }
    Ok(id.to_string())
}

/// The host part of an RTSP URL as moonlight-common-c extracts it for the `Host` header: after the
/// `//`, up to and including a `]` (IPv6), else up to the last `:` or the first `/` after the host.
/// `None` when there is no `//`.
pub fn url_host(url: &str) -> Option<&str> {
    let start = url.find("//")? + 2;
    let rest = url.get(start..)?;
    if let Some(end) = url.find(']') {
        return url.get(start..=end).or(Some(""));
    }
    match url.rfind(':') {
        Some(colon) if colon >= start => url.get(start..colon),
        _ => Some(rest.split('/').next().unwrap_or(rest)),
    }
}

/// `X-SS-Ping-Payload`: used only when it is exactly 16 bytes; anything else means legacy pings.
pub fn ping_payload(value: &str) -> Option<[u8; 16]> {
    value.as_bytes().try_into().ok()
}

/// `X-SS-Connect-Data`, parsed with `strtoul(…, 0)` like moonlight-common-c.
pub fn connect_data(value: &str) -> u32 {
    strtoul0(value)
}

/// The RTSP port in `sessionUrl0`: the decimal after the **last** `:`. `None` when there is no port
/// (e.g. `rtsp://10.0.0.1` or a bracketed IPv6 address without port); the caller uses 48010.
pub fn port_from_session_url(url: &str) -> Option<u16> {
    let (_, tail) = url.rsplit_once(':')?;
    if tail.contains(']') {
        return None;
    }
    u16::try_from(leading_decimal(tail)?)
        .ok()
        .filter(|&p| p != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checklist_transport_port() {
        assert_eq!(
            server_port("server_port=48000-48001;source=1.2.3.4"),
            Some(48000)
        );
        assert_eq!(server_port("unicast;server_port=48100"), Some(48100));
        assert_eq!(server_port("unicast"), None);
        assert_eq!(server_port("server_port=0"), None);
        assert_eq!(server_port("server_port=65536"), None);
        assert_eq!(server_port("server_port=99999999999999999999999"), None);
        assert_eq!(server_port("server_port="), None);
        assert_eq!(server_port("server_port= +47999;x"), Some(47999));
        assert_eq!(server_port("server_port=-1"), None);
    }

    #[test]
    fn checklist_session_id() {
        assert_eq!(
            session_id("DEADBEEFCAFE;timeout = 90").unwrap(),
            "DEADBEEFCAFE"
        );
        assert_eq!(session_id("abc").unwrap(), "abc");
        assert!(matches!(session_id(";x"), Err(RtspError::MissingSession)));
        assert!(session_id("").is_err());
    }

    #[test]
    fn checklist_strtoul() {
        assert_eq!(strtoul0(" 3"), 3);
        assert_eq!(strtoul0("0x7"), 7);
        assert_eq!(strtoul0("010"), 8);
        assert_eq!(strtoul0("12abc"), 12);
        assert_eq!(strtoul0("abc"), 0);
        assert_eq!(strtoul0("0x"), 0);
        assert_eq!(strtoul0("-1"), u32::MAX);
        assert_eq!(strtoul0("4294967296"), 0); // wraps like the cast to uint32_t
        assert_eq!(strtoul0("99999999999999999999999"), u32::MAX);
        assert_eq!(connect_data("3735928559"), 0xDEADBEEF);
        assert_eq!(connect_data("0xDEADBEEF"), 0xDEADBEEF);
    }

    #[test]
    fn ping_payload_exactly_16() {
        assert_eq!(ping_payload("0123456789abcdef"), Some(*b"0123456789abcdef"));
        assert_eq!(ping_payload("0123456789abcde"), None);
        assert_eq!(ping_payload("0123456789abcdef0"), None);
    }

    #[test]
    fn url_host_extraction() {
        assert_eq!(
            url_host("rtspenc://192.168.1.10:48010"),
            Some("192.168.1.10")
        );
        assert_eq!(url_host("rtsp://[fe80::1]:48010"), Some("[fe80::1]"));
        assert_eq!(url_host("rtsp://10.0.0.1"), Some("10.0.0.1"));
        assert_eq!(url_host("rtsp://10.0.0.1/path"), Some("10.0.0.1"));
        assert_eq!(url_host("10.0.0.1:48010"), None);
        assert_eq!(url_host("rtsp://]x"), Some("]"));
        assert_eq!(url_host("]rtsp://x"), Some(""));
    }

    #[test]
    fn session_url_port() {
        assert_eq!(
            port_from_session_url("rtsp://192.168.1.10:48010"),
            Some(48010)
        );
        assert_eq!(
            port_from_session_url("rtspenc://10.0.0.1:12345"),
            Some(12345)
        );
        assert_eq!(port_from_session_url("rtsp://[fe80::1]:48010"), Some(48010));
        assert_eq!(port_from_session_url("rtsp://[fe80::1]"), None);
        assert_eq!(port_from_session_url("rtsp://10.0.0.1"), None);
        assert_eq!(port_from_session_url(""), None);
    }
}
