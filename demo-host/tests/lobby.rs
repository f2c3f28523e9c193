//! Lobbies (gamestream-protocol-2-media.md §7.2): joining switches a session's picture to the
//! lobby's producer (keyframe first) without restarting its RTP stream, leaving switches back,
//! `stop_when_everyone_leaves` stops the lobby, PINs guard joining, and the "Lobby Desktop" app
//! puts its sessions in a shared lobby. Frames carry their producer's label (synthetic media).

mod common;

use std::time::Duration;

use demo_host::{ApiError, DemoEvent, DemoHost, LobbySettings};
use tokio::time::timeout;

const WAIT: Duration = Duration::from_secs(15);

fn label(f: &gamestream::video::VideoFrame) -> String {
    common::label_of(&f.data).unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn join_and_leave_switch_the_feed() {
    timeout(Duration::from_secs(90), async {
        let host = DemoHost::start(common::test_config()).await.unwrap();
        let mut events = host.subscribe();
        let (a, b) = (
            common::paired_client(&host).await,
            common::paired_client(&host).await,
        );
        let (sa, mut ma) = common::stream(&a, 1).await;
        let (_sb, mut mb) = common::stream(&b, 1).await;
        // The host lists a session once its event pump has run; a first frame proves it has.
        let first_a = common::wait_frame(&mut ma, WAIT, |_| true).await;
        common::wait_frame(&mut mb, WAIT, |_| true).await;
        let ids: Vec<u64> = host.sessions().iter().map(|s| s.session_id).collect();
        assert_eq!(ids.len(), 2);
        let (ida, idb) = (ids[0], ids[1]);
        let own_a = format!("Session {ida}");

        let mut settings = LobbySettings::new("Party");
        settings.stop_when_everyone_leaves = true;
        settings.pin = Some(vec![1, 2, 3, 4]);
        let lobby = host.create_lobby(settings);
        assert!(matches!(
            common::wait_event(&mut events, WAIT, |e| matches!(e, DemoEvent::LobbyCreated { .. })).await,
            DemoEvent::LobbyCreated { ref name, .. } if name == "Party"
        ));
        assert_eq!(
            host.join_lobby(&lobby, ida, Some(&[9, 9, 9, 9])),
            Err(ApiError::WrongPin)
        );
        assert_eq!(
            host.join_lobby("no-such-lobby", ida, None),
            Err(ApiError::NoSuchLobby("no-such-lobby".into()))
        );
        host.join_lobby(&lobby, ida, Some(&[1, 2, 3, 4])).unwrap();
        host.join_lobby(&lobby, idb, Some(&[1, 2, 3, 4])).unwrap();
        assert_eq!(host.lobbies()[0].members, vec![ida, idb]);
        assert_eq!(
            host.sessions().iter().map(|s| s.lobby.clone()).collect::<Vec<_>>(),
            vec![Some(lobby.clone()), Some(lobby.clone())]
        );

        // Both now see the lobby; the first lobby frame is a keyframe; frame indices go on.
        let la = common::wait_frame(&mut ma, WAIT, |f| label(f) == "Party").await;
        assert!(la.is_idr, "a joining member starts on a keyframe");
        assert!(la.frame_index > first_a.frame_index, "the RTP stream was not restarted");
        let lb = common::wait_frame(&mut mb, WAIT, |f| label(f) == "Party").await;
        assert!(lb.is_idr);

        // A keyframe request is honoured on the feed the client watches: the lobby's encoder.
        common::wait_frame(&mut ma, WAIT, |f| !f.is_idr).await;
        sa.request_idr().unwrap();
        let idr = common::wait_frame(&mut ma, WAIT, |f| f.is_idr).await;
        assert_eq!(label(&idr), "Party");

        // A leaves: back to its own picture (keyframe first); B stays in the lobby.
        host.leave_lobby(&lobby, ida).unwrap();
        let back = common::wait_frame(&mut ma, WAIT, |f| label(f) == own_a).await;
        assert!(back.is_idr, "switching back starts on a keyframe");
        for _ in 0..5 {
            let f = common::wait_frame(&mut mb, WAIT, |_| true).await;
            assert_eq!(label(&f), "Party");
        }
        // B leaves: the lobby stops (stop_when_everyone_leaves).
        host.leave_lobby(&lobby, idb).unwrap();
        common::wait_event(&mut events, WAIT, |e| {
            matches!(e, DemoEvent::LobbyStopped { lobby_id } if *lobby_id == lobby)
        })
        .await;
        assert!(host.lobbies().is_empty());
        common::wait_frame(&mut mb, WAIT, |f| label(f) == format!("Session {idb}")).await;
        assert_eq!(host.sessions().len(), 2, "sessions outlive the lobby");
        host.close().await;
    })
    .await
    .expect("test timed out");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lobby_desktop_app_shares_a_lobby_and_stop_frees_members() {
    timeout(Duration::from_secs(90), async {
        let host = DemoHost::start(common::test_config()).await.unwrap();
        let mut events = host.subscribe();
        let http = common::paired_client(&host).await;
        let (session, mut media) = common::stream(&http, 2).await;
        let f = common::wait_frame(&mut media, WAIT, |_| true).await;
        assert_eq!(label(&f), "Lobby Desktop", "app 2 streams the shared lobby");
        assert!(f.is_idr);
        let lobbies = host.lobbies();
        assert_eq!(lobbies.len(), 1);
        let session_id = host.sessions()[0].session_id;
        assert_eq!(lobbies[0].members, vec![session_id]);

        // Stopping a lobby switches its members back to their own producers.
        host.stop_lobby(&lobbies[0].id, None).unwrap();
        common::wait_frame(&mut media, WAIT, |f| {
            label(f) == format!("Session {session_id}")
        })
        .await;
        assert!(host.lobbies().is_empty());

        // A member that disconnects leaves its lobby; an auto lobby stops with its last member.
        host.join_lobby(
            &host.create_lobby(LobbySettings {
                stop_when_everyone_leaves: true,
                ..LobbySettings::new("Solo")
            }),
            session_id,
            None,
        )
        .unwrap();
        common::wait_frame(&mut media, WAIT, |f| label(f) == "Solo").await;
        drop(session);
        common::wait_event(&mut events, WAIT, |e| {
            matches!(e, DemoEvent::LobbyStopped { .. })
        })
        .await;
        common::wait_event(&mut events, WAIT, |e| {
            matches!(e, DemoEvent::SessionStopped { .. })
        })
        .await;
        assert!(host.lobbies().is_empty() && host.sessions().is_empty());
        host.close().await;
    })
    .await
    .expect("test timed out");
}
