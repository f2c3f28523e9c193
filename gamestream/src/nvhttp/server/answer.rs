//! The sans-IO half of the NVHTTP host: a request's path and query in, status, content type and
//! body out, for every endpoint that keeps no server-side state of its own (`/serverinfo` and the
//! paired endpoints `/applist`, `/appasset`, `/launch`, `/resume`, `/cancel`). Pairing
//! (`/pair`, `/unpair`) is a multi-request flow that waits for a PIN, so it stays in the driver.
//!
//! Split out so that the hyper driver and the in-memory session test (`tests/session_pair.rs`)
//! answer a launch with the same code: what the test launches in memory is what the server
//! launches over HTTPS.

use super::{App, HostHandler, LaunchRequest, RequestContext, UNAUTHORIZED};
use crate::nvhttp::types::cancel_xml;
use crate::nvhttp::xml::XmlBuilder;

/// One answer of the host: HTTP status, `Content-Type`, body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpAnswer {
    /// HTTP status (the XML `status_code` too, Wolf style).
    pub status: u16,
    /// `Content-Type`.
    pub content_type: &'static str,
    /// The body (XML, or PNG for `/appasset`).
    pub body: Vec<u8>,
}

impl HttpAnswer {
    fn xml(status: u16, body: String) -> Self {
        HttpAnswer {
            status,
            content_type: "application/xml",
            body: body.into_bytes(),
        }
    }

    /// `<root status_code="code" status_message="message"/>` with the same HTTP status.
    pub fn error(code: u16, message: &str) -> Self {
        Self::xml(
            code,
            XmlBuilder::new(i64::from(code), Some(message)).finish(),
        )
    }
}

/// The host's own ports, which `/serverinfo` reports whatever the handler says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerPorts {
    /// `ExternalPort`: the HTTP port.
    pub http: u16,
    /// `HttpsPort`.
    pub https: u16,
}

/// Decodes a query string (`a=1&b=%20`) into its pairs, in order.
pub fn query_params(query: Option<&str>) -> Vec<(String, String)> {
    query
        .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
        .unwrap_or_default()
}

/// Splits a request target (`/launch?appid=1&…`) into its path and decoded query pairs.
pub fn split_target(target: &str) -> (&str, Vec<(String, String)>) {
    match target.split_once('?') {
        Some((path, query)) => (path, query_params(Some(query))),
        None => (target, Vec::new()),
    }
}

/// Answers `/serverinfo` and the paired endpoints; `None` for any other path (`/pair`,
/// `/unpair` and unknown paths are the driver's). Paired endpoints refuse a request that did not
/// come over HTTPS with a paired certificate (`ctx.https && ctx.paired`), with XML 401.
pub fn answer(
    handler: &dyn HostHandler,
    ctx: &RequestContext,
    ports: ServerPorts,
    path: &str,
    params: &[(String, String)],
) -> Option<HttpAnswer> {
    if path == "/serverinfo" {
        if ctx.https && !ctx.paired {
            return Some(HttpAnswer::error(401, UNAUTHORIZED));
        }
        let mut info = handler.server_info(ctx);
        info.https_port = ports.https;
        info.external_port = ports.http;
        info.pair_status = ctx.https && ctx.paired;
        return Some(HttpAnswer::xml(200, info.to_xml()));
    }
    if !matches!(
        path,
        "/applist" | "/appasset" | "/launch" | "/resume" | "/cancel"
    ) {
        return None;
    }
    if !ctx.https || !ctx.paired {
        return Some(HttpAnswer::error(401, UNAUTHORIZED));
    }
    Some(paired_endpoint(handler, ctx, path, params))
}

fn paired_endpoint(
    h: &dyn HostHandler,
    ctx: &RequestContext,
    path: &str,
    params: &[(String, String)],
) -> HttpAnswer {
    match path {
        "/applist" => HttpAnswer::xml(200, App::list_to_xml(&h.app_list(ctx))),
        "/appasset" => {
            let id = params
                .iter()
                .find(|(k, _)| k == "appid")
                .and_then(|(_, v)| v.parse::<u32>().ok());
            match id.and_then(|id| h.app_asset(ctx, id)) {
                Some(png) => HttpAnswer {
                    status: 200,
                    content_type: "image/png",
                    body: png,
                },
                None => HttpAnswer::error(404, "Asset not found"),
            }
        }
        "/launch" | "/resume" => {
            let resume = path == "/resume";
            let request = match LaunchRequest::from_query(params, !resume) {
                Ok(r) => r,
                Err(e) => return HttpAnswer::error(400, &e.to_string()),
            };
            let result = if resume {
                h.resume(ctx, &request)
            } else {
                h.launch(ctx, &request)
            };
            match result {
                Ok(resp) => HttpAnswer::xml(200, resp.to_xml(resume)),
                Err(e) => HttpAnswer::error(e.status_code, &e.message),
            }
        }
        "/cancel" => match h.cancel(ctx) {
            Ok(()) => HttpAnswer::xml(200, cancel_xml()),
            Err(e) => HttpAnswer::error(e.status_code, &e.message),
        },
        _ => HttpAnswer::error(404, "Not Found"),
    }
}
