//! The tokio driver of the client handshake: one TCP connection per request, as
//! moonlight-common-c does it. Apart from the sans-IO [`ClientHandshake`] it drives.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::super::crypt::ENCRYPTED_HEADER_LEN;
use super::super::{RtspError, MAX_MESSAGE_SIZE};
use super::{ClientHandshake, ClientParams, ClientStep, RtspOutcome};

/// TCP connect budget, including `ECONNREFUSED` retries.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Pause between retries after `ECONNREFUSED` (GFE answers `/launch` before it listens).
pub const CONNECT_RETRY_INTERVAL: Duration = Duration::from_millis(500);
/// The time a whole response may take, from the request written to the host's close. A budget for
/// the whole response, not for each read: a host that trickles a byte now and then (broken, or
/// hostile) would otherwise hold the stream's setup for up to [`MAX_MESSAGE_SIZE`] reads.
pub const READ_TIMEOUT: Duration = Duration::from_secs(15);

/// Runs the whole handshake against `addr` (the host's RTSP socket: host address + port from
/// `sessionUrl0`, see [`ClientParams::rtsp_port`]).
pub async fn handshake(addr: SocketAddr, params: ClientParams) -> Result<RtspOutcome, RtspError> {
    let mut hs = ClientHandshake::new(params)?;
    let mut step = hs.start()?;
    // Bounded: the plan has at most 8 requests.
    for _ in 0..16 {
        match step {
            ClientStep::Done(outcome) => return Ok(*outcome),
            ClientStep::Send(bytes) => {
                let response = transact(addr, &bytes).await?;
                step = hs.receive(&response)?;
            }
        }
    }
    Err(RtspError::Malformed("handshake did not finish"))
}

async fn connect(addr: SocketAddr) -> Result<TcpStream, RtspError> {
    let deadline = Instant::now() + CONNECT_TIMEOUT;
    loop {
        let remaining = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(remaining, TcpStream::connect(addr)).await {
            Err(_) => return Err(RtspError::Timeout("connect")),
            Ok(Ok(stream)) => return Ok(stream),
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                if Instant::now() + CONNECT_RETRY_INTERVAL >= deadline {
                    return Err(RtspError::Io(e));
                }
                tokio::time::sleep(CONNECT_RETRY_INTERVAL).await;
            }
            Ok(Err(e)) => return Err(RtspError::Io(e)),
        }
    }
}

/// One request/response exchange: connect, write, read until the host closes. Bounded in size
/// ([`MAX_MESSAGE_SIZE`] plus the encryption header: [`RtspError::TooLarge`]) and in time
/// ([`READ_TIMEOUT`] for the whole response: [`RtspError::Timeout`] `"read"` when nothing came,
/// `"response"` when the host began but never finished).
pub async fn transact(addr: SocketAddr, request: &[u8]) -> Result<Vec<u8>, RtspError> {
    let mut stream = connect(addr).await?;
    stream.set_nodelay(true)?;
    stream.write_all(request).await?;
    stream.flush().await?;
    let mut response = Vec::new();
    let mut chunk = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + READ_TIMEOUT;
    loop {
        let n = tokio::time::timeout_at(deadline, stream.read(&mut chunk))
            .await
            .map_err(|_| {
                RtspError::Timeout(if response.is_empty() {
                    "read"
                } else {
                    "response"
                })
            })??;
        if n == 0 {
            return Ok(response);
        }
        response.extend_from_slice(&chunk[..n]);
        if response.len() > MAX_MESSAGE_SIZE + ENCRYPTED_HEADER_LEN {
            return Err(RtspError::TooLarge);
        }
    }
}
