//! Lobbies with the real encoder: the client decodes the H.264 it receives (openh264) and the
//! label band of the picture switches from the session's colour to the lobby's on join and back
//! on leave and on lobby stop (gamestream-protocol-2-media.md §7.2: a join switches the session's
//! producer without restarting its RTP stream).

mod common;

use std::time::Duration;

use demo_host::{DemoHost, DemoHostConfig, LobbySettings};
use tokio::time::timeout;

const WAIT: Duration = Duration::from_secs(20);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn decoded_picture_switches_to_the_lobby_and_back() {
    timeout(Duration::from_secs(120), async {
        let host = DemoHost::start(DemoHostConfig {
            fixed_pin: Some(common::PIN.into()),
            ..DemoHostConfig::default()
        })
        .await
        .unwrap();
        let mut events = host.subscribe();
        let http = common::paired_client(&host).await;
        let (_session, mut media) = common::stream(&http, 1).await;
        let session_id = common::wait_stream_started(&mut events, WAIT).await;
        let own = host.sessions()[0].color;
        let mut decoder = openh264::decoder::Decoder::new().unwrap();
        common::wait_band(&mut decoder, &mut media, WAIT, own).await;

        let lobby = host.create_lobby(LobbySettings::new("Red Room"));
        let lobby_color = host.lobbies()[0].color;
        assert!(
            common::distinct(own, lobby_color),
            "{own:?} vs {lobby_color:?}"
        );

        // Join: the picture becomes the lobby's.
        host.join_lobby(&lobby, session_id, None).unwrap();
        common::wait_band(&mut decoder, &mut media, WAIT, lobby_color).await;
        // And stays the lobby's (not a stray frame).
        for _ in 0..5 {
            let band = loop {
                let f = common::wait_frame(&mut media, WAIT, |_| true).await;
                if let Some(b) = common::band_of(&mut decoder, &f.data) {
                    break b;
                }
            };
            assert!(common::band_is(band, lobby_color), "{band:?}");
        }

        // Leave: back to the session's own picture.
        host.leave_lobby(&lobby, session_id).unwrap();
        common::wait_band(&mut decoder, &mut media, WAIT, own).await;

        // Join again, then stop the lobby: its members fall back to their own picture.
        host.join_lobby(&lobby, session_id, None).unwrap();
        common::wait_band(&mut decoder, &mut media, WAIT, lobby_color).await;
        host.stop_lobby(&lobby, None).unwrap();
        common::wait_band(&mut decoder, &mut media, WAIT, own).await;
        assert!(host.lobbies().is_empty());
        assert_eq!(host.sessions().len(), 1, "the session outlives the lobby");
        host.close().await;
    })
    .await
    .expect("test timed out");
}
