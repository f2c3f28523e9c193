//! One-request-per-connection HTTP/1.1 GET over any byte stream (TCP or TLS), client side.

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Limited};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::task::JoinHandle;

use super::NvHttpError;

/// Aborts the connection driver when the request future is dropped (e.g. on timeout).
struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

fn http_err(e: impl std::fmt::Display) -> NvHttpError {
    NvHttpError::Http {
        status: 0,
        message: e.to_string(),
    }
}

/// Sends `GET path_and_query` with `Connection: close` and returns the status and body (at most
/// `limit` bytes).
pub(crate) async fn get<S>(
    io: S,
    authority: &str,
    path_and_query: &str,
    limit: usize,
) -> Result<(u16, Bytes), NvHttpError>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io))
        .await
        .map_err(http_err)?;
    let _driver = AbortOnDrop(tokio::spawn(async move {
        let _ = conn.await;
    }));
    let request = http::Request::builder()
        .method(http::Method::GET)
        .uri(path_and_query)
        .header(http::header::HOST, authority)
        .header(http::header::CONNECTION, "close")
        .body(Empty::<Bytes>::new())
        .map_err(http_err)?;
    let response = sender.send_request(request).await.map_err(http_err)?;
    let status = response.status().as_u16();
    let body = Limited::new(response.into_body(), limit)
        .collect()
        .await
        .map_err(|e| {
            if e.is::<http_body_util::LengthLimitError>() {
                NvHttpError::TooLarge { limit }
            } else {
                http_err(e)
            }
        })?
        .to_bytes();
    Ok((status, body))
}

/// `/path?k=v&…` with form-urlencoded values.
pub(crate) fn path_with_query(path: &str, params: &[(&str, String)]) -> String {
    let mut s = form_urlencoded::Serializer::new(String::new());
    for (k, v) in params {
        s.append_pair(k, v);
    }
    format!("{path}?{}", s.finish())
}
