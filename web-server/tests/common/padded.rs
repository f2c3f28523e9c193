//! A gateway whose own demo host pads its video to the bitrate ([`demo_host::RealMedia::padded`]).

use std::sync::Arc;

use demo_host::{DemoHostConfig, RealMedia};
use web_server::Config;

use super::{serve_own_host_gateway, Gateway};

/// A gateway with its own Wolf-strict demo host whose video is padded to the bitrate.
pub async fn padded_host_gateway(config: Config, dir: tempfile::TempDir, name: &str) -> Gateway {
    let host = DemoHostConfig {
        media: Arc::new(RealMedia::padded()),
        ..DemoHostConfig::default()
    };
    serve_own_host_gateway(config, dir, host, name).await
}
