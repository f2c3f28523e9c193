//! A hand-written HTTP/1.0 client for the Wolf API (what Wolf's own clients speak), over its Unix
//! socket or TCP. The suites check exact status lines, headers and envelopes, so nothing between
//! them and the server may normalise a byte; the in-memory-backend suite and the real-host suite
//! share it.

// Each suite uses a different subset.
#![allow(dead_code)]

use std::path::PathBuf;
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::timeout;

pub trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<X: AsyncRead + AsyncWrite + Unpin + Send> Io for X {}

/// Where a Wolf API listens.
#[derive(Clone, Debug)]
pub enum Target {
    Unix(PathBuf),
    Tcp(std::net::SocketAddr),
}

impl Target {
    /// A fresh connection (bounded by `within`).
    pub async fn connect(&self, within: Duration) -> Box<dyn Io> {
        match self {
            Target::Unix(p) => Box::new(
                timeout(within, tokio::net::UnixStream::connect(p))
                    .await
                    .expect("connect timeout")
                    .expect("unix connect"),
            ),
            Target::Tcp(a) => Box::new(
                timeout(within, tokio::net::TcpStream::connect(a))
                    .await
                    .expect("connect timeout")
                    .expect("tcp connect"),
            ),
        }
    }
}

/// One reply: the status, the head (status line and headers), the body.
pub struct Reply {
    pub status: u16,
    pub head: String,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "reply is not JSON ({e}): {}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }
}

/// Sends raw bytes on a fresh connection and reads the reply until the server closes (HTTP/1.0);
/// connecting and reading are each bounded by `within`.
pub async fn raw(target: &Target, request: &[u8], within: Duration) -> Reply {
    let mut c = target.connect(within).await;
    c.write_all(request).await.expect("write request");
    let mut buf = Vec::new();
    timeout(within, c.read_to_end(&mut buf))
        .await
        .expect("reply timeout")
        .expect("read reply");
    let split = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("header end");
    let head = String::from_utf8_lossy(&buf[..split]).to_string();
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status code");
    Reply {
        status,
        head,
        body: buf[split + 4..].to_vec(),
    }
}

/// One HTTP/1.0 request with `body` (empty if none) as Wolf's clients send it.
pub async fn http10(
    target: &Target,
    method: &str,
    path: &str,
    body: Option<&str>,
    within: Duration,
) -> Reply {
    let body = body.unwrap_or("");
    let req = format!(
        "{method} {path} HTTP/1.0\r\nHost: localhost\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    raw(target, req.as_bytes(), within).await
}
