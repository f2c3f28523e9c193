//! Serves the built web client (`web-client/dist`, see `web-client/README.md`) at `/`.
//!
//! Every path that is not an API route is looked up under `web_root`; a path with no file behind
//! it gets `index.html`, so the client's own routes (`/hosts/1`, …) survive a reload. `/api/…`
//! paths never fall back to the page: an unknown API route stays a JSON 404, which is what API
//! clients and the tests expect.

use std::path::Path;

use axum::http::StatusCode;
use axum::response::{Html, IntoResponse};
use axum::routing::{any, get_service};
use axum::Router;
use tower_http::services::{ServeDir, ServeFile};

use crate::server::AppState;

/// The routes that serve the client from `root` (merged last by [`crate::api::router`]).
pub fn routes(root: &Path) -> Router<AppState> {
    let index = root.join("index.html");
    if !index.is_file() {
        tracing::warn!(
            web_root = %root.display(),
            "the web client is not built: `/` shows a hint (build it with `cd web-client && npm ci && npm run build`, or set MOONGATE_WEB_ROOT)"
        );
        return Router::new().fallback(any(not_built));
    }
    let files = ServeDir::new(root)
        .append_index_html_on_directories(true)
        .fallback(ServeFile::new(index));
    Router::new().fallback_service(get_service(files))
}

async fn not_built() -> impl IntoResponse {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        Html(
            "<!doctype html><title>moongate</title><h1>moongate</h1>\
             <p>The web client is not built. Run <code>bash scripts/run.sh</code> from the \
             repository root, or <code>cd web-client &amp;&amp; npm ci &amp;&amp; npm run build</code> \
             and point <code>MOONGATE_WEB_ROOT</code> at <code>web-client/dist</code>.</p>",
        ),
    )
}
