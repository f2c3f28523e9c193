//! RTSP request/response codec.
//!
//! One message travels per TCP connection, so parsing works on a complete byte buffer. What we send
//! follows what Wolf's strict parser accepts: `CSeq` is always the first header, headers are
//! `Name: value\r\n`, and a payload is announced with `Content-length`.

use super::{RtspError, MAX_MESSAGE_SIZE};

/// Ordered `Name: value` headers; lookups are case-insensitive because hosts differ in spelling.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Headers(Vec<(String, String)>);

impl Headers {
    /// Appends a header (duplicates allowed, order kept).
    pub fn push(&mut self, name: impl Into<String>, value: impl Into<String>) {
        self.0.push((name.into(), value.into()));
    }

    /// Replaces the first header of that name, or appends it.
    pub fn set(&mut self, name: &str, value: impl Into<String>) {
        let value = value.into();
        match self
            .0
            .iter_mut()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
        {
            Some(slot) => slot.1 = value,
            None => self.0.push((name.to_string(), value)),
        }
    }

    /// The first value of `name`, if any.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// All headers in order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(n, v)| (n.as_str(), v.as_str()))
    }

    /// One message on the wire: `first_line`, these headers, a blank line, then `payload`.
    fn to_wire(&self, first_line: &str, payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(128 + payload.len());
        out.extend_from_slice(first_line.as_bytes());
        out.extend_from_slice(b"\r\n");
        self.write(&mut out);
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(payload);
        out
    }

    /// Writes `CSeq` first (Wolf requires it), then every other header in insertion order.
    fn write(&self, out: &mut Vec<u8>) {
        let cseq = self
            .0
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case("CSeq"));
        let rest = self
            .0
            .iter()
            .filter(|(n, _)| !n.eq_ignore_ascii_case("CSeq"));
        for (name, value) in cseq.chain(rest) {
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(value.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
    }
}

/// An RTSP request (`COMMAND target RTSP/1.0`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtspRequest {
    /// `OPTIONS`, `DESCRIBE`, `SETUP`, `ANNOUNCE`, `PLAY`, ...
    pub method: String,
    /// The request target, e.g. `rtsp://10.0.0.2:48010` or `streamid=video/0/0`.
    pub target: String,
    /// Headers in wire order.
    pub headers: Headers,
    /// Body (the SDP of ANNOUNCE).
    pub payload: Vec<u8>,
}

/// An RTSP response (`RTSP/1.0 code reason`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtspResponse {
    /// Status code (200 on success).
    pub status: u16,
    /// Reason phrase.
    pub reason: String,
    /// Headers in wire order.
    pub headers: Headers,
    /// Body (the DESCRIBE payload).
    pub payload: Vec<u8>,
}

/// The header accessors requests and responses share.
macro_rules! header_access {
    ($ty:ty) => {
        impl $ty {
            /// Builder-style header append.
            pub fn with_header(mut self, name: &str, value: impl Into<String>) -> Self {
                self.headers.push(name, value);
                self
            }

            /// The `CSeq` value, if present and numeric.
            pub fn cseq(&self) -> Option<u32> {
                self.headers.get("CSeq").and_then(|v| v.trim().parse().ok())
            }
        }
    };
}
header_access!(RtspRequest);
header_access!(RtspResponse);

impl RtspRequest {
    /// A request without headers or payload.
    pub fn new(method: impl Into<String>, target: impl Into<String>) -> Self {
        Self {
            method: method.into(),
            target: target.into(),
            headers: Headers::default(),
            payload: Vec::new(),
        }
    }

    /// Serialises to wire bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let first_line = format!("{} {} RTSP/1.0", self.method, self.target);
        self.headers.to_wire(&first_line, &self.payload)
    }

    /// Parses one complete request.
    pub fn parse(buf: &[u8]) -> Result<Self, RtspError> {
        let raw = RawMessage::parse(buf)?;
        let mut parts = raw.first_line.split(' ').filter(|p| !p.is_empty());
        let (Some(method), Some(target), Some(version), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(RtspError::Malformed("request line"));
        };
        if !version.starts_with("RTSP/") {
            return Err(RtspError::Malformed("request version"));
        }
        Ok(Self {
            method: method.to_string(),
            target: target.to_string(),
            headers: raw.headers,
            payload: raw.payload,
        })
    }
}

impl RtspResponse {
    /// A response with the standard reason phrase for `status`.
    pub fn new(status: u16) -> Self {
        Self {
            status,
            reason: reason_phrase(status).to_string(),
            headers: Headers::default(),
            payload: Vec::new(),
        }
    }

    /// Serialises to wire bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let first_line = format!("RTSP/1.0 {} {}", self.status, self.reason);
        self.headers.to_wire(&first_line, &self.payload)
    }

    /// Parses one complete response (the whole byte stream up to EOF).
    pub fn parse(buf: &[u8]) -> Result<Self, RtspError> {
        let raw = RawMessage::parse(buf)?;
        let rest = raw
            .first_line
            .strip_prefix("RTSP/")
            .ok_or(RtspError::Malformed("status line"))?;
        let mut parts = rest.splitn(3, ' ');
        let _version = parts.next();
        let code = parts.next().ok_or(RtspError::Malformed("status line"))?;
        if code.is_empty() || code.len() > 3 || !code.bytes().all(|b| b.is_ascii_digit()) {
            return Err(RtspError::Malformed("status code"));
        }
        let status = code
            .parse()
            .map_err(|_| RtspError::Malformed("status code"))?;
        let reason = parts.next().unwrap_or("").to_string();
        Ok(Self {
            status,
            reason,
            headers: raw.headers,
            payload: raw.payload,
        })
    }
}

/// The standard reason phrase for the statuses hosts use.
pub fn reason_phrase(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        454 => "Session Not Found",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        _ => "Unknown",
    }
}

struct RawMessage {
    first_line: String,
    headers: Headers,
    payload: Vec<u8>,
}

impl RawMessage {
    fn parse(buf: &[u8]) -> Result<Self, RtspError> {
        if buf.len() > MAX_MESSAGE_SIZE {
            return Err(RtspError::TooLarge);
        }
        let (head_len, body_start) = header_end(buf).ok_or(RtspError::Truncated)?;
        let head = std::str::from_utf8(buf.get(..head_len).unwrap_or_default())
            .map_err(|_| RtspError::Malformed("header block is not UTF-8"))?;
        let mut lines = head.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l));
        let first_line = lines.next().unwrap_or_default().to_string();
        if first_line.is_empty() {
            return Err(RtspError::Malformed("empty first line"));
        }
        let mut headers = Headers::default();
        for line in lines {
            let (name, value) = line
                .split_once(':')
                .ok_or(RtspError::Malformed("header without ':'"))?;
            let name = name.trim();
            if name.is_empty() {
                return Err(RtspError::Malformed("empty header name"));
            }
            headers.push(name, value.trim());
        }
        let body = buf.get(body_start..).unwrap_or_default();
        let payload = match headers.get("Content-length") {
            Some(len) => {
                let len: usize = len
                    .parse()
                    .map_err(|_| RtspError::Malformed("Content-length"))?;
                body.get(..len).ok_or(RtspError::Truncated)?.to_vec()
            }
            None => body.to_vec(),
        };
        Ok(Self {
            first_line,
            headers,
            payload,
        })
    }
}

/// Finds the blank line ending the header block: returns (length of the header lines without the
/// blank line's terminator, offset of the payload). Accepts `\r\n` and bare `\n`.
fn header_end(buf: &[u8]) -> Option<(usize, usize)> {
    let mut line_start = 0;
    for (i, &b) in buf.iter().enumerate() {
        if b != b'\n' {
            continue;
        }
        let line = &buf[line_start..i];
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            // Header lines end just before this blank line; drop the previous line break.
            let head = buf[..line_start]
                .strip_suffix(b"\n")
                .unwrap_or(&buf[..line_start]);
            let head = head.strip_suffix(b"\r").unwrap_or(head);
            return Some((head.len(), i + 1));
        }
        line_start = i + 1;
    }
    None
}

/// How many bytes of `buf` form one complete plain message, if it is complete: the header block plus
/// `Content-length` bytes. Used by the host to know when a request has fully arrived, because clients
/// do not half-close their side.
pub fn plain_message_len(buf: &[u8]) -> Result<Option<usize>, RtspError> {
    let Some((head_len, body_start)) = header_end(buf) else {
        return if buf.len() > MAX_MESSAGE_SIZE {
            Err(RtspError::TooLarge)
        } else {
            Ok(None)
        };
    };
    let head = String::from_utf8_lossy(&buf[..head_len]);
    let mut content_len = 0usize;
    for line in head.split('\n').skip(1) {
        if let Some((name, value)) = line.split_once(':') {
            if name.trim().eq_ignore_ascii_case("Content-length") {
                content_len = value
                    .trim()
                    .parse()
                    .map_err(|_| RtspError::Malformed("Content-length"))?;
            }
        }
    }
    let total = body_start
        .checked_add(content_len)
        .ok_or(RtspError::TooLarge)?;
    if total > MAX_MESSAGE_SIZE {
        return Err(RtspError::TooLarge);
    }
    Ok((buf.len() >= total).then_some(total))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_serialises_cseq_first_with_exact_syntax() {
        let req = RtspRequest::new("OPTIONS", "rtsp://192.168.1.10:48010")
            .with_header("X-GS-ClientVersion", "14")
            .with_header("CSeq", "1")
            .with_header("Host", "192.168.1.10");
        assert_eq!(
            req.to_bytes(),
            b"OPTIONS rtsp://192.168.1.10:48010 RTSP/1.0\r\nCSeq: 1\r\nX-GS-ClientVersion: 14\r\nHost: 192.168.1.10\r\n\r\n"
        );
    }

    #[test]
    fn request_roundtrip_with_payload() {
        let mut req =
            RtspRequest::new("ANNOUNCE", "streamid=control/13/0").with_header("CSeq", "6");
        req.payload = b"v=0\r\n".to_vec();
        req.headers.set("Content-length", "5");
        let parsed = RtspRequest::parse(&req.to_bytes()).unwrap();
        assert_eq!(parsed, req);
        assert_eq!(parsed.cseq(), Some(6));
        assert_eq!(
            plain_message_len(&req.to_bytes()).unwrap(),
            Some(req.to_bytes().len())
        );
        let bytes = req.to_bytes();
        assert_eq!(plain_message_len(&bytes[..bytes.len() - 1]).unwrap(), None);
    }

    #[test]
    fn response_parse_sunshine_setup() {
        let raw = b"RTSP/1.0 200 OK\r\nCSeq: 3\r\nSession: DEADBEEFCAFE;timeout = 90\r\nTransport: server_port=48000\r\nX-SS-Ping-Payload: 0123456789abcdef\r\n\r\n";
        let r = RtspResponse::parse(raw).unwrap();
        assert_eq!(r.status, 200);
        assert_eq!(r.reason, "OK");
        assert_eq!(r.cseq(), Some(3));
        assert_eq!(r.headers.get("session"), Some("DEADBEEFCAFE;timeout = 90"));
        assert_eq!(r.headers.get("Transport"), Some("server_port=48000"));
        assert!(r.payload.is_empty());
        assert_eq!(RtspResponse::parse(&r.to_bytes()).unwrap(), r);
    }

    #[test]
    fn response_without_content_length_takes_rest_as_payload() {
        let r = RtspResponse::parse(b"RTSP/1.0 200 OK\nCSeq: 2\n\na=x\nb=y\n").unwrap();
        assert_eq!(r.payload, b"a=x\nb=y\n");
    }

    #[test]
    fn malformed_inputs_are_errors() {
        assert!(matches!(
            RtspResponse::parse(b""),
            Err(RtspError::Truncated)
        ));
        assert!(matches!(
            RtspResponse::parse(b"RTSP/1.0 200 OK\r\nCSeq: 1\r\n"),
            Err(RtspError::Truncated)
        ));
        assert!(RtspResponse::parse(b"HTTP/1.1 200 OK\r\n\r\n").is_err());
        assert!(RtspResponse::parse(b"RTSP/1.0 abc OK\r\n\r\n").is_err());
        assert!(RtspRequest::parse(b"OPTIONS\r\n\r\n").is_err());
        assert!(RtspRequest::parse(b"OPTIONS x RTSP/1.0\r\nbad header\r\n\r\n").is_err());
        assert!(matches!(
            RtspRequest::parse(b"ANNOUNCE x RTSP/1.0\r\nContent-length: 10\r\n\r\nabc"),
            Err(RtspError::Truncated)
        ));
        let big = vec![b'a'; MAX_MESSAGE_SIZE + 1];
        assert!(matches!(RtspRequest::parse(&big), Err(RtspError::TooLarge)));
        assert!(matches!(plain_message_len(&big), Err(RtspError::TooLarge)));
    }
}
