//! Joining a Wolf lobby after the launch (Wolf's HTTP API, spec media §7.3).
//!
//! Wolf serves HTTP/1.0 with `Content-Length` bodies on a Unix socket (or TCP behind a proxy); the
//! streamer needs two calls, so a dozen lines of HTTP/1.0 beat a client stack: one request per
//! connection, the answer read to EOF (bounded in size and time).
//!
//! The join: find our Moonlight session in `GET /api/v1/sessions` by `client_unique_id` (Wolf
//! keys clients by `uniqueid@ip`, and the web-server gives every browser client its own
//! `uniqueid`), then `POST /api/v1/lobbies/join {lobby_id, moonlight_session_id}`.

use std::time::Duration;

use serde_json::{json, Value};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

const RESPONSE_LIMIT: u64 = 1 << 20;
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// Wolf API failures.
#[derive(Debug, thiserror::Error)]
pub enum WolfError {
    /// The location is neither a `/path` nor an `http://host:port` URL.
    #[error("unsupported Wolf API location {0:?} (a Unix socket path or http://host:port)")]
    Location(String),
    /// Connect, write or read failed.
    #[error("Wolf API i/o: {0}")]
    Io(#[from] std::io::Error),
    /// No answer in time.
    #[error("Wolf API request timed out")]
    Timeout,
    /// Not an HTTP answer, or not JSON.
    #[error("Wolf API answered garbage: {0}")]
    Protocol(String),
    /// `success:false` or a non-2xx status.
    #[error("Wolf API {path}: {message}")]
    Failed {
        /// Endpoint.
        path: &'static str,
        /// Wolf's error text or the status.
        message: String,
    },
    /// Our session is not in `/api/v1/sessions`.
    #[error("no Wolf session for client {0}")]
    SessionNotFound(String),
}

/// Where Wolf's API listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WolfApi {
    /// A Unix socket path.
    Unix(String),
    /// `host:port` over plain TCP.
    Tcp(String),
}

impl WolfApi {
    /// Parses `/path/to/wolf.sock` or `http://host:port`.
    pub fn parse(location: &str) -> Result<Self, WolfError> {
        if location.starts_with('/') {
            return Ok(WolfApi::Unix(location.to_string()));
        }
        if let Some(rest) = location.strip_prefix("http://") {
            let authority = rest.split('/').next().unwrap_or_default();
            if !authority.is_empty() {
                let with_port = if authority
                    .rsplit_once(':')
                    .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
                {
                    authority.to_string()
                } else {
                    format!("{authority}:80")
                };
                return Ok(WolfApi::Tcp(with_port));
            }
        }
        Err(WolfError::Location(location.to_string()))
    }

    /// Finds our session and joins the lobby; returns Wolf's session id.
    pub async fn join_lobby(
        &self,
        lobby_id: &str,
        client_unique_id: &str,
    ) -> Result<String, WolfError> {
        let session_id = self.find_session(client_unique_id).await?;
        let body = json!({"lobby_id": lobby_id, "moonlight_session_id": session_id});
        self.call("POST", "/api/v1/lobbies/join", Some(&body))
            .await?;
        Ok(session_id)
    }

    /// The decimal session id of the session whose `client_unique_id` is ours.
    pub async fn find_session(&self, client_unique_id: &str) -> Result<String, WolfError> {
        let answer = self.call("GET", "/api/v1/sessions", None).await?;
        let sessions = answer
            .get("sessions")
            .and_then(Value::as_array)
            .ok_or_else(|| WolfError::Protocol("no sessions array".into()))?;
        sessions
            .iter()
            .find(|s| s.get("client_unique_id").and_then(Value::as_str) == Some(client_unique_id))
            .and_then(|s| {
                // Wolf names it `client_id` (a decimal string); accept `session_id` and numbers.
                ["session_id", "client_id"]
                    .iter()
                    .find_map(|k| match s.get(*k)? {
                        Value::String(v) => Some(v.clone()),
                        Value::Number(n) => Some(n.to_string()),
                        _ => None,
                    })
            })
            .ok_or_else(|| WolfError::SessionNotFound(client_unique_id.to_string()))
    }

    async fn call(
        &self,
        method: &str,
        path: &'static str,
        body: Option<&Value>,
    ) -> Result<Value, WolfError> {
        let body = body.map(Value::to_string).unwrap_or_default();
        let mut request = format!(
            "{method} {path} HTTP/1.0\r\nHost: wolf\r\nContent-Length: {}\r\n",
            body.len()
        );
        if !body.is_empty() {
            request.push_str("Content-Type: application/json\r\n");
        }
        request.push_str("\r\n");
        request.push_str(&body);
        let exchange = async {
            match self {
                WolfApi::Unix(path) => {
                    exchange(tokio::net::UnixStream::connect(path).await?, &request).await
                }
                WolfApi::Tcp(addr) => {
                    exchange(tokio::net::TcpStream::connect(addr).await?, &request).await
                }
            }
        };
        let raw = tokio::time::timeout(REQUEST_TIMEOUT, exchange)
            .await
            .map_err(|_| WolfError::Timeout)??;
        let (status, json) = parse_response(&raw)?;
        let success = json.get("success").and_then(Value::as_bool);
        if !(200..300).contains(&status) || success == Some(false) {
            let message = json
                .get("error")
                .and_then(Value::as_str)
                .map(str::to_string)
                .unwrap_or_else(|| format!("status {status}"));
            return Err(WolfError::Failed { path, message });
        }
        Ok(json)
    }
}

async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    request: &str,
) -> Result<Vec<u8>, WolfError> {
    stream.write_all(request.as_bytes()).await?;
    stream.flush().await?;
    let mut raw = Vec::new();
    (&mut stream)
        .take(RESPONSE_LIMIT)
        .read_to_end(&mut raw)
        .await?;
    Ok(raw)
}

/// Status code and JSON body of an HTTP/1.x answer read to EOF.
fn parse_response(raw: &[u8]) -> Result<(u16, Value), WolfError> {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| WolfError::Protocol("no end of headers".into()))?;
    let head = std::str::from_utf8(&raw[..split])
        .map_err(|_| WolfError::Protocol("headers not UTF-8".into()))?;
    let status = head
        .lines()
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse::<u16>().ok())
        .ok_or_else(|| WolfError::Protocol("no status line".into()))?;
    let body = &raw[split + 4..];
    let json = if body.iter().all(u8::is_ascii_whitespace) {
        Value::Null
    } else {
        serde_json::from_slice(body).map_err(|e| WolfError::Protocol(e.to_string()))?
    };
    Ok((status, json))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations() {
        assert_eq!(
            WolfApi::parse("/tmp/wolf.sock").unwrap(),
            WolfApi::Unix("/tmp/wolf.sock".into())
        );
        assert_eq!(
            WolfApi::parse("http://127.0.0.1:8080/").unwrap(),
            WolfApi::Tcp("127.0.0.1:8080".into())
        );
        assert_eq!(
            WolfApi::parse("http://wolf").unwrap(),
            WolfApi::Tcp("wolf:80".into())
        );
        assert!(WolfApi::parse("https://wolf").is_err());
        assert!(WolfApi::parse("wolf.sock").is_err());
    }

    #[test]
    fn responses() {
        let (s, j) =
            parse_response(b"HTTP/1.0 200 OK\r\nContent-Length: 16\r\n\r\n{\"success\":true}")
                .unwrap();
        assert_eq!((s, j["success"].as_bool()), (200, Some(true)));
        assert!(parse_response(b"HTTP/1.0 200 OK\r\n").is_err());
        assert!(parse_response(b"garbage\r\n\r\n").is_err());
        assert!(parse_response(b"HTTP/1.0 200 OK\r\n\r\n{").is_err());
    }
}
