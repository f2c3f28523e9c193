//! Pairing (fixed PIN as given on the command line, and Wolf's pending-pair API), persistence of
//! the identity and paired clients, the app list with box art, and `/serverinfo`'s appversion.

mod common;

use std::time::Duration;

use std::sync::Arc;

use demo_host::{DemoEvent, DemoHost, DemoHostConfig};
use gamestream::nvhttp::{NvHttpClient, NvHttpError};
use gamestream::pairing::PairedHost;
use tokio::sync::broadcast;
use tokio::task::JoinHandle;
use tokio::time::timeout;

/// A host that asks for a PIN per pairing (none fixed), and its events.
async fn host_without_fixed_pin() -> (DemoHost, broadcast::Receiver<DemoEvent>) {
    let host = DemoHost::start(DemoHostConfig {
        fixed_pin: None,
        ..common::test_config()
    })
    .await
    .unwrap();
    let events = host.subscribe();
    (host, events)
}

/// A fresh client starts pairing as `device` with `pin`, in the background; returns once the host
/// announced the request: the client, its pairing and the `PairRequested` event.
async fn pair_in_background(
    host: &DemoHost,
    events: &mut broadcast::Receiver<DemoEvent>,
    pin: &'static str,
    device: &'static str,
) -> (
    Arc<NvHttpClient>,
    JoinHandle<Result<PairedHost, NvHttpError>>,
    DemoEvent,
) {
    let http = common::client(host);
    let pairing = {
        let http = Arc::clone(&http);
        tokio::spawn(async move { http.pair(pin, device).await })
    };
    let requested = common::wait_event(events, Duration::from_secs(20), |e| {
        matches!(e, DemoEvent::PairRequested { .. })
    })
    .await;
    (http, pairing, requested)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fixed_pin_pairing_persists_across_restarts() {
    timeout(Duration::from_secs(90), async {
        let dir = tempfile::tempdir().unwrap();
        let config = DemoHostConfig {
            data_dir: Some(dir.path().to_path_buf()),
            ..common::test_config()
        };
        let host = DemoHost::start(config.clone()).await.unwrap();
        let http = common::paired_client(&host).await;
        let info = http.server_info().await.unwrap();
        assert!(info.pair_status, "HTTPS serverinfo says paired");
        assert_eq!(info.app_version, "7.1.431.-1", "Wolf's appversion");
        let unique_id = host.unique_id().to_string();
        assert_eq!(info.unique_id, unique_id);
        let clients = host.paired_clients();
        assert_eq!(clients.len(), 1);
        assert_eq!(clients[0].device_name, "test");

        // Apps: Test Pattern (1) and Lobby Desktop (2), each with PNG box art.
        let apps = http.app_list().await.unwrap();
        let titles: Vec<(u32, &str)> = apps.iter().map(|a| (a.id, a.title.as_str())).collect();
        assert_eq!(titles, vec![(1, "Test Pattern"), (2, "Lobby Desktop")]);
        for id in [1, 2] {
            let png = http.app_asset(id).await.unwrap();
            assert_eq!(
                &png[..8],
                b"\x89PNG\r\n\x1a\n",
                "box art of app {id} is a PNG"
            );
        }
        host.close().await;

        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join("host_key.pem"))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600, "the host key is private");
        }

        // Same data dir: same identity, the client is still paired (no new pairing needed).
        let host = DemoHost::start(config).await.unwrap();
        assert_eq!(host.paired_clients(), clients);
        assert_eq!(host.unique_id(), unique_id, "uniqueid survives restarts");
        let ports = host.ports();
        let again = std::sync::Arc::new(gamestream::nvhttp::NvHttpClient::new(
            gamestream::nvhttp::HostAddress::with_ports("127.0.0.1", ports.http, Some(ports.https)),
            http.identity().clone(),
            Some(http.pinned_host_cert().expect("pinned host cert")),
        ));
        assert!(again.server_info().await.unwrap().pair_status);
        assert_eq!(again.app_list().await.unwrap().len(), 2);
        host.close().await;
    })
    .await
    .expect("test timed out");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pending_pair_api_pairs_automatically() {
    timeout(Duration::from_secs(60), async {
        let (host, mut events) = host_without_fixed_pin().await;
        let (_http, pairing, requested) =
            pair_in_background(&host, &mut events, "8362", "auto").await;
        let secret = match requested {
            DemoEvent::PairRequested {
                pair_secret,
                device_name,
                ..
            } => {
                assert_eq!(device_name, "auto");
                pair_secret
            }
            _ => unreachable!(),
        };
        let pending = host.pending_pairs();
        assert_eq!(pending.len(), 1);
        assert_eq!(pending[0].pair_secret, secret);
        assert!(host.submit_pair_pin("not-a-secret", "8362").is_err());
        host.submit_pair_pin(&secret, "8362").unwrap();
        pairing
            .await
            .unwrap()
            .expect("pairing through the pending-pair API");
        assert_eq!(host.paired_clients().len(), 1);
        assert!(host.pending_pairs().is_empty());
        host.close().await;
    })
    .await
    .expect("test timed out");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sunshine_style_pin_through_the_host_api() {
    timeout(Duration::from_secs(60), async {
        let (host, mut events) = host_without_fixed_pin().await;
        assert!(!host.submit_pin("1234"), "no request waits yet");
        let (http, pairing, _) = pair_in_background(&host, &mut events, "5150", "typed").await;
        assert!(
            host.submit_pin("5150"),
            "the typed PIN goes to the waiting request"
        );
        pairing.await.unwrap().expect("pairing with the typed PIN");
        assert!(http.server_info().await.unwrap().pair_status);
        host.close().await;
    })
    .await
    .expect("test timed out");
}
