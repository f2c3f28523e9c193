//! "No pairing API" mode (Sunshine style): no Wolf API socket or TCP listener exists, and a
//! client pairs with a PIN typed by hand (`submit_pin`, the binary's `pin <digits>`).

mod common;

use std::sync::Arc;
use std::time::Duration;

use demo_host::{DemoEvent, DemoHost, DemoHostConfig, WolfApiConfig};
use tokio::time::timeout;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_api_socket_and_a_typed_pin_pairs() {
    timeout(Duration::from_secs(90), async {
        let dir = tempfile::tempdir().unwrap();
        let config = DemoHostConfig {
            data_dir: Some(dir.path().to_path_buf()),
            fixed_pin: None,
            wolf_api: WolfApiConfig::none(),
            ..common::test_config()
        };
        assert!(config.wolf_api.is_none(config.data_dir.as_deref()));
        assert_eq!(config.wolf_api_socket_path(), None);
        let host = DemoHost::start(config).await.unwrap();
        assert_eq!(host.wolf_api_socket(), None);
        assert_eq!(host.wolf_api_tcp(), None);
        // Nothing in the data dir is a socket (the default would be <data dir>/wolf.sock).
        assert!(!dir
            .path()
            .join(demo_host::config::WOLF_API_SOCKET_NAME)
            .exists());
        for entry in std::fs::read_dir(dir.path()).unwrap() {
            use std::os::unix::fs::FileTypeExt;
            let kind = entry.unwrap().file_type().unwrap();
            assert!(!kind.is_socket());
        }

        // Nothing to submit before a client asks.
        assert!(!host.submit_pin(common::PIN));
        let mut events = host.subscribe();
        let http = common::client(&host);
        let pairing = tokio::spawn({
            let http = Arc::clone(&http);
            async move { http.pair(common::PIN, "typed-pin").await }
        });
        common::wait_event(&mut events, Duration::from_secs(15), |e| {
            matches!(e, DemoEvent::PairRequested { .. })
        })
        .await;
        // The user reads the PIN off the client and types it on the host.
        assert!(host.submit_pin(common::PIN));
        pairing.await.unwrap().expect("paired with the typed PIN");
        assert_eq!(host.paired_clients().len(), 1);
        // The pairing is real: the client streams.
        let (session, mut media) = common::stream(&http, 1).await;
        common::wait_frame(&mut media, Duration::from_secs(15), |_| true).await;
        session.stop().await.unwrap();
        host.close().await;
    })
    .await
    .expect("test timed out");
}
