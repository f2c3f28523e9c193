//! A client of Wolf's HTTP API (spec media §7.3): the one both the streamer (lobby joins) and the
//! gateway (automatic pairing, unpairing, the admin view) use.
//!
//! Wolf serves HTTP/1.0 with `Content-Length` bodies on a Unix socket (or on TCP behind a proxy),
//! one request per connection. Every caller needs a handful of JSON calls, so the exchange is
//! written out here (request, answer read to EOF, bounded in size and time) rather than pulling
//! an HTTP client stack with Unix-socket connectors into both processes.
//!
//! Joining a lobby: our Moonlight session is found in `GET /api/v1/sessions` by
//! `client_unique_id` (Wolf keys clients by `uniqueid@ip`, and the gateway gives every browser
//! client its own `uniqueid`), then `POST /api/v1/lobbies/join {lobby_id, moonlight_session_id}`.

use std::time::Duration;

use serde_json::{json, Value};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// The largest answer read; Wolf's biggest (the session or app list) is a few kB.
const RESPONSE_LIMIT: u64 = 1 << 20;
/// One call, connect to last byte.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// Wolf API failures.
#[derive(Debug, thiserror::Error)]
pub enum WolfApiError {
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
    #[error("Wolf API {path} answered garbage: {reason}")]
    Protocol {
        /// Endpoint.
        path: String,
        /// What was wrong with the answer.
        reason: String,
    },
    /// `success:false` or a non-2xx status.
    #[error("Wolf API {path}: {message}")]
    Failed {
        /// Endpoint.
        path: String,
        /// Wolf's error text, or the status.
        message: String,
    },
    /// Our session is not in `/api/v1/sessions`.
    #[error("no Wolf session for client {0}")]
    SessionNotFound(String),
}

/// Where one Wolf API listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WolfApiClient {
    /// As configured (what the admin view shows, and what the streamer is handed).
    location: String,
    endpoint: Endpoint,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Endpoint {
    /// A Unix socket path.
    Unix(String),
    /// `host:port` over plain TCP.
    Tcp(String),
}

impl WolfApiClient {
    /// Parses `/path/to/wolf.sock` or `http://host[:port]` (port 80 by default).
    pub fn parse(location: &str) -> Result<Self, WolfApiError> {
        let endpoint = if location.starts_with('/') {
            Endpoint::Unix(location.to_string())
        } else {
            let authority = location
                .strip_prefix("http://")
                .and_then(|rest| rest.split('/').next())
                .filter(|a| !a.is_empty())
                .ok_or_else(|| WolfApiError::Location(location.to_string()))?;
            let has_port = authority
                .rsplit_once(':')
                .is_some_and(|(_, p)| p.parse::<u16>().is_ok());
            Endpoint::Tcp(if has_port {
                authority.to_string()
            } else {
                format!("{authority}:80")
            })
        };
        Ok(WolfApiClient {
            location: location.to_string(),
            endpoint,
        })
    }

    /// The location as it was given.
    pub fn location(&self) -> &str {
        &self.location
    }

    /// One call: `method path` with an optional JSON body; Wolf's JSON answer, or why not.
    pub async fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value, WolfApiError> {
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
            match &self.endpoint {
                Endpoint::Unix(socket) => {
                    exchange(tokio::net::UnixStream::connect(socket).await?, &request).await
                }
                Endpoint::Tcp(addr) => {
                    exchange(tokio::net::TcpStream::connect(addr).await?, &request).await
                }
            }
        };
        let raw = tokio::time::timeout(REQUEST_TIMEOUT, exchange)
            .await
            .map_err(|_| WolfApiError::Timeout)??;
        let (status, json) = parse_response(&raw).map_err(|reason| WolfApiError::Protocol {
            path: path.to_string(),
            reason,
        })?;
        let success = json.get("success").and_then(Value::as_bool);
        if !(200..300).contains(&status) || success == Some(false) {
            let message = json
                .get("error")
                .and_then(Value::as_str)
                .map(str::to_string)
                .unwrap_or_else(|| format!("status {status}"));
            return Err(WolfApiError::Failed {
                path: path.to_string(),
                message,
            });
        }
        Ok(json)
    }

    /// Finds our session and joins the lobby; returns Wolf's session id.
    pub async fn join_lobby(
        &self,
        lobby_id: &str,
        client_unique_id: &str,
    ) -> Result<String, WolfApiError> {
        let session_id = self.find_session(client_unique_id).await?;
        let body = json!({"lobby_id": lobby_id, "moonlight_session_id": session_id});
        self.call("POST", "/api/v1/lobbies/join", Some(&body))
            .await?;
        Ok(session_id)
    }

    /// The decimal session id of the session whose `client_unique_id` is ours.
    pub async fn find_session(&self, client_unique_id: &str) -> Result<String, WolfApiError> {
        let answer = self.call("GET", "/api/v1/sessions", None).await?;
        let sessions = answer
            .get("sessions")
            .and_then(Value::as_array)
            .ok_or_else(|| WolfApiError::Protocol {
                path: "/api/v1/sessions".into(),
                reason: "no sessions array".into(),
            })?;
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
            .ok_or_else(|| WolfApiError::SessionNotFound(client_unique_id.to_string()))
    }
}

async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    request: &str,
) -> Result<Vec<u8>, WolfApiError> {
    stream.write_all(request.as_bytes()).await?;
    stream.flush().await?;
    let mut raw = Vec::new();
    (&mut stream)
        .take(RESPONSE_LIMIT)
        .read_to_end(&mut raw)
        .await?;
    Ok(raw)
}

/// Status code and JSON body (`null` when empty) of an HTTP/1.x answer read to EOF.
fn parse_response(raw: &[u8]) -> Result<(u16, Value), String> {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or("no end of headers")?;
    let head = std::str::from_utf8(&raw[..split]).map_err(|_| "headers not UTF-8")?;
    let status = head
        .lines()
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse::<u16>().ok())
        .ok_or("no status line")?;
    let body = &raw[split + 4..];
    let json = if body.iter().all(u8::is_ascii_whitespace) {
        Value::Null
    } else {
        serde_json::from_slice(body).map_err(|e| format!("not JSON: {e}"))?
    };
    Ok((status, json))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations() {
        let unix = WolfApiClient::parse("/tmp/wolf.sock").unwrap();
        assert_eq!(unix.endpoint, Endpoint::Unix("/tmp/wolf.sock".into()));
        assert_eq!(unix.location(), "/tmp/wolf.sock");
        assert_eq!(
            WolfApiClient::parse("http://127.0.0.1:8080/")
                .unwrap()
                .endpoint,
            Endpoint::Tcp("127.0.0.1:8080".into())
        );
        assert_eq!(
            WolfApiClient::parse("http://wolf").unwrap().endpoint,
            Endpoint::Tcp("wolf:80".into())
        );
        for bad in ["https://wolf", "wolf.sock", "http://", ""] {
            assert!(
                matches!(WolfApiClient::parse(bad), Err(WolfApiError::Location(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn responses() {
        let (s, j) =
            parse_response(b"HTTP/1.0 200 OK\r\nContent-Length: 16\r\n\r\n{\"success\":true}")
                .unwrap();
        assert_eq!((s, j["success"].as_bool()), (200, Some(true)));
        assert_eq!(
            parse_response(b"HTTP/1.0 204 No Content\r\n\r\n").unwrap(),
            (204, Value::Null)
        );
        assert!(parse_response(b"HTTP/1.0 200 OK\r\n").is_err());
        assert!(parse_response(b"garbage\r\n\r\n").is_err());
        assert!(parse_response(b"HTTP/1.0 200 OK\r\n\r\n{").is_err());
        assert!(parse_response(b"HTTP/1.0 200 \xff\r\n\r\n{}").is_err());
    }

    /// A one-shot server on a Unix socket answering `answer` to whatever it is asked.
    async fn serve_once(answer: &'static [u8]) -> (tempfile::TempDir, String) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("wolf.sock");
        let listener = tokio::net::UnixListener::bind(&path).unwrap();
        tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf).await;
            let _ = s.write_all(answer).await;
        });
        (dir, path.to_string_lossy().into_owned())
    }

    #[tokio::test]
    async fn calls_map_wolf_answers_to_typed_errors() {
        let (_d, sock) = serve_once(
            b"HTTP/1.0 200 OK\r\nContent-Length: 67\r\n\r\n{\"sessions\":[{\"client_unique_id\":\"me\",\"client_id\":\"1234\"}]}   ",
        )
        .await;
        let api = WolfApiClient::parse(&sock).unwrap();
        assert_eq!(api.find_session("me").await.unwrap(), "1234");

        let (_d, sock) =
            serve_once(b"HTTP/1.0 200 OK\r\n\r\n{\"success\":true,\"sessions\":[]}").await;
        let api = WolfApiClient::parse(&sock).unwrap();
        assert!(matches!(
            api.find_session("me").await,
            Err(WolfApiError::SessionNotFound(id)) if id == "me"
        ));

        let (_d, sock) = serve_once(
            b"HTTP/1.0 400 Bad Request\r\n\r\n{\"success\":false,\"error\":\"Lobby not found\"}",
        )
        .await;
        let api = WolfApiClient::parse(&sock).unwrap();
        let e = api
            .call("POST", "/api/v1/lobbies/join", Some(&json!({})))
            .await
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "Wolf API /api/v1/lobbies/join: Lobby not found"
        );

        let (_d, sock) = serve_once(b"HTTP/1.0 200 OK\r\n\r\n<html>").await;
        let api = WolfApiClient::parse(&sock).unwrap();
        assert!(matches!(
            api.call("GET", "/api/v1/apps", None).await,
            Err(WolfApiError::Protocol { path, .. }) if path == "/api/v1/apps"
        ));

        let gone = WolfApiClient::parse("/nonexistent/wolf.sock").unwrap();
        assert!(matches!(
            gone.call("GET", "/api/v1/sessions", None).await,
            Err(WolfApiError::Io(_))
        ));
    }
}
