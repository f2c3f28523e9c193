//! Serves the built web client (`web-client/dist`, see `web-client/README.md`) at `/`.
//!
//! Every path that is not an API route is looked up under `web_root`; a path with no file behind
//! it gets `index.html`, so the client's own routes (`/hosts/1`, …) survive a reload. `/api/…`
//! paths never fall back to the page: an unknown API route stays a JSON 404, which is what API
//! clients and the tests expect.

use std::path::Path;

use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Redirect};
use axum::routing::{any, get, get_service};
use axum::Router;
use tower_http::services::{ServeDir, ServeFile};

/// The routes that serve the client from `root` (merged last by [`crate::api::router`]).
pub fn routes<S: Clone + Send + Sync + 'static>(root: &Path) -> Router<S> {
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
    Router::new()
        // The operators' dashboard is its own page; `/admin` is the address people type.
        .route(
            "/admin",
            get(|| async { Redirect::permanent("/admin.html") }),
        )
        .fallback_service(get_service(files))
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

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    async fn get(router: Router, path: &str) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move { axum::serve(listener, router).await });
        let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        let req = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        tcp.write_all(req.as_bytes()).await.unwrap();
        let mut out = String::new();
        tokio::time::timeout(
            std::time::Duration::from_secs(5),
            tcp.read_to_string(&mut out),
        )
        .await
        .unwrap()
        .unwrap();
        server.abort();
        out
    }

    #[tokio::test]
    async fn serves_files_and_falls_back_to_index() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("index.html"), "<title>client</title>").unwrap();
        std::fs::create_dir(dir.path().join("assets")).unwrap();
        std::fs::write(dir.path().join("assets/app.js"), "console.log(1)").unwrap();
        let app = || routes::<()>(dir.path());

        let r = get(app(), "/").await;
        assert!(r.starts_with("HTTP/1.1 200"), "{r}");
        assert!(r.contains("<title>client</title>"));
        let r = get(app(), "/assets/app.js").await;
        assert!(r.contains("text/javascript"), "{r}");
        assert!(r.contains("console.log(1)"));
        // A client route: the page, so a reload works.
        let r = get(app(), "/hosts/3").await;
        assert!(r.contains("<title>client</title>"), "{r}");
        // The dashboard's short address.
        let r = get(app(), "/admin").await;
        assert!(r.starts_with("HTTP/1.1 308"), "{r}");
        assert!(r.to_lowercase().contains("location: /admin.html"), "{r}");
        // No escape from the root.
        let r = get(app(), "/../Cargo.toml").await;
        assert!(!r.contains("[package]"), "{r}");
    }

    #[tokio::test]
    async fn a_missing_build_gets_a_hint() {
        let dir = tempfile::tempdir().unwrap();
        let r = get(routes::<()>(&dir.path().join("nope")), "/").await;
        assert!(r.starts_with("HTTP/1.1 503"), "{r}");
        assert!(r.contains("npm ci"));
    }
}
