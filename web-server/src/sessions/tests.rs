use super::*;
use tokio::time::timeout;

fn key(session: &str, lobby: &str, client: &str) -> SessionKey {
    SessionKey::new(session, lobby, client).unwrap()
}

#[test]
fn key_format_and_parse_round_trip() {
    let k = key("ses_01abc", "lobby1", "client7");
    assert_eq!(k.to_string(), "ses_01abc-lobby1-client7");
    assert_eq!("ses_01abc-lobby1-client7".parse::<SessionKey>().unwrap(), k);
    let empty_lobby = key("ses", "", "c");
    assert_eq!(empty_lobby.to_string(), "ses--c");
    assert_eq!("ses--c".parse::<SessionKey>().unwrap(), empty_lobby);
    let dashed = key(
        "ses_01k9-hq",
        "4648b231-6a09-45d2",
        "helix-agent-ef28c5dc%x",
    );
    let text = dashed.to_string();
    assert_eq!(text.matches('-').count(), 2);
    assert_eq!(text.parse::<SessionKey>().unwrap(), dashed);
    assert_eq!("a-b".parse::<SessionKey>(), Err(SessionKeyError::Parts));
    assert_eq!("-b-c".parse::<SessionKey>(), Err(SessionKeyError::Empty));
    assert_eq!(
        "a-b-c%2".parse::<SessionKey>(),
        Err(SessionKeyError::Escape)
    );
    assert_eq!(
        "a-b-c%41".parse::<SessionKey>(),
        Err(SessionKeyError::Escape)
    );
    // A lobby restart under the same session id is a different key (lesson 3).
    assert_ne!(key("ses", "lobbyA", "c"), key("ses", "lobbyB", "c"));
}

#[tokio::test]
async fn dropping_the_guard_removes_the_entry() {
    let reg = MemoryRegistry::new();
    let r = reg.register(key("s", "l", "c"), SessionMeta::default());
    assert!(r.superseded.is_none());
    assert_eq!(reg.list().len(), 1);
    assert_eq!(reg.list()[0].client_id, "c");
    drop(r);
    assert!(reg.is_empty());
}

#[tokio::test]
async fn supersede_stops_old_with_4000_and_waits_for_its_end() {
    let reg = MemoryRegistry::new();
    let k = key("s", "l", "c");
    let first = reg.register(k.clone(), SessionMeta::default());
    let old_guard = first.guard;
    let old_id = old_guard.info().entry_id;
    // The old stream's owner: runs until told to stop, then reports the close reason.
    let owner = tokio::spawn(async move {
        let reason = old_guard.stopped().await;
        drop(old_guard);
        (reason.close_code(), reason.close_reason())
    });
    let second = reg.register(k.clone(), SessionMeta::default());
    let old = second
        .superseded
        .expect("a live key is superseded, not busy");
    assert_eq!(old.info().entry_id, old_id);
    // The registry already shows only the new entry.
    assert_eq!(reg.list().len(), 1);
    assert_eq!(reg.list()[0].entry_id, second.guard.info().entry_id);
    old.stop_and_wait(Duration::from_secs(5)).await.unwrap();
    assert_eq!(owner.await.unwrap(), (4000, "superseded"));
    // The old guard's drop did not remove the new entry.
    assert_eq!(reg.list().len(), 1);
    drop(second.guard);
    assert!(reg.is_empty());
}

#[tokio::test]
async fn stop_and_wait_times_out_if_the_old_stream_hangs() {
    let reg = MemoryRegistry::new();
    let k = key("s", "", "c");
    let _hung = reg.register(k.clone(), SessionMeta::default());
    let second = reg.register(k, SessionMeta::default());
    let old = second.superseded.unwrap();
    assert!(old.stop_and_wait(Duration::from_millis(50)).await.is_err());
}

/// Runs one stream owner: registers, stops+awaits what it superseded, reports itself live,
/// then lives until it is superseded (reported on `superseded_tx`) or released.
async fn owner(
    reg: Arc<MemoryRegistry>,
    k: SessionKey,
    live_tx: tokio::sync::mpsc::UnboundedSender<u64>,
    superseded_tx: tokio::sync::mpsc::UnboundedSender<u64>,
    mut release: watch::Receiver<bool>,
) {
    let Registration { guard, superseded } = reg.register(k, SessionMeta::default());
    if let Some(old) = superseded {
        old.stop_and_wait(Duration::from_secs(10)).await.unwrap();
    }
    let id = guard.info().entry_id;
    let _ = live_tx.send(id);
    tokio::select! {
        reason = guard.stopped() => {
            assert_eq!(reason, StopReason::Superseded);
            drop(guard);
            let _ = superseded_tx.send(id);
        }
        _ = release.wait_for(|&r| r) => {}
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn many_supersedes_in_a_row_and_in_parallel_leave_one_entry() {
    let reg = Arc::new(MemoryRegistry::new());
    let k = key("ses", "lobby", "client");
    let (release_tx, release_rx) = watch::channel(false);
    let (live_tx, mut live_rx) = tokio::sync::mpsc::unbounded_channel();
    let (sup_tx, mut sup_rx) = tokio::sync::mpsc::unbounded_channel();
    let spawn = || {
        tokio::spawn(owner(
            Arc::clone(&reg),
            k.clone(),
            live_tx.clone(),
            sup_tx.clone(),
            release_rx.clone(),
        ))
    };
    let mut tasks = Vec::new();

    // In a row: each owner is live (its predecessor ended) before the next connects.
    for i in 0..50u64 {
        tasks.push(spawn());
        let id = timeout(Duration::from_secs(10), live_rx.recv())
            .await
            .expect("owner did not go live")
            .unwrap();
        assert_eq!(id, i + 1);
        let list = reg.list();
        assert_eq!(list.len(), 1);
        assert_eq!(list[0].entry_id, id);
    }
    // In parallel.
    for _ in 0..200 {
        tasks.push(spawn());
    }
    // All but one are superseded, each exactly once.
    let mut ended = std::collections::HashSet::new();
    for _ in 0..249 {
        let id = timeout(Duration::from_secs(30), sup_rx.recv())
            .await
            .expect("supersede chain did not settle")
            .unwrap();
        assert!(ended.insert(id), "entry {id} superseded twice");
    }
    // Wait until the last registrant is live (it may still be awaiting its predecessor).
    let mut live_ids = Vec::new();
    while live_ids.len() < 200 {
        live_ids.push(
            timeout(Duration::from_secs(10), live_rx.recv())
                .await
                .expect("owner did not go live")
                .unwrap(),
        );
    }
    let list = reg.list();
    assert_eq!(list.len(), 1, "exactly one live entry");
    assert!(
        !ended.contains(&list[0].entry_id),
        "the live entry is the survivor"
    );
    release_tx.send_replace(true);
    for t in tasks {
        timeout(Duration::from_secs(10), t).await.unwrap().unwrap();
    }
    assert!(reg.is_empty(), "the last owner's end removed the entry");
}

#[tokio::test]
async fn register_superseding_waits_for_the_old_end() {
    let reg = Arc::new(MemoryRegistry::new());
    let k = key("s", "l", "c");
    let old = register_superseding(
        reg.as_ref(),
        k.clone(),
        SessionMeta::default(),
        Duration::from_secs(5),
    )
    .await
    .unwrap();
    let (ended_tx, ended_rx) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let reason = old.stopped().await;
        drop(old);
        let _ = ended_tx.send(reason);
    });
    let new = register_superseding(
        reg.as_ref(),
        k.clone(),
        SessionMeta::default(),
        Duration::from_secs(5),
    )
    .await
    .unwrap();
    // By the time the new registration returns, the old stream has ended.
    assert_eq!(ended_rx.await.unwrap(), StopReason::Superseded);
    assert_eq!(reg.list().len(), 1);
    assert_eq!(reg.list()[0].entry_id, new.info().entry_id);
    // A hung old stream: the new entry is not left behind.
    let hung = new;
    let err = register_superseding(
        reg.as_ref(),
        k.clone(),
        SessionMeta::default(),
        Duration::from_millis(50),
    )
    .await
    .unwrap_err();
    assert_eq!(err.0, k);
    assert!(reg.is_empty(), "a timed-out registration leaves no entry");
    assert_eq!(hung.stop_requested(), Some(StopReason::Superseded));
}

#[tokio::test]
async fn admin_stop_and_stop_all_reach_the_owner() {
    let reg = MemoryRegistry::new();
    let a = reg.register(key("a", "", "c"), SessionMeta::default());
    let b = reg.register(key("b", "", "c"), SessionMeta::default());
    assert!(reg.stop(&key("a", "", "c"), StopReason::AdminKill));
    assert!(!reg.stop(&key("zz", "", "c"), StopReason::AdminKill));
    assert_eq!(a.guard.stopped().await, StopReason::AdminKill);
    assert_eq!(b.guard.stop_requested(), None);
    reg.stop_all(StopReason::Shutdown);
    assert_eq!(b.guard.stopped().await.close_code(), 1001);
    // A first stop reason is kept.
    assert_eq!(a.guard.stop_requested(), Some(StopReason::AdminKill));
}

#[tokio::test]
async fn an_older_stream_of_the_same_client_on_the_same_host_is_stopped_first() {
    let reg = MemoryRegistry::new();
    let host = |id| SessionMeta {
        host_id: id,
        ..SessionMeta::default()
    };
    let old = reg.register(key("s", "lobby-a", "c"), host(1)).guard;
    let other_host = reg.register(key("s", "lobby-a2", "c"), host(2)).guard;
    let other_client = reg.register(key("s", "lobby-a", "d"), host(1)).guard;
    let new = reg.register(key("s", "lobby-b", "c"), host(1)).guard;
    let newer = reg.register(key("s", "lobby-c", "c"), host(1)).guard;
    let (ended_tx, ended_rx) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let reason = old.stopped().await;
        drop(old);
        let _ = ended_tx.send(reason);
    });
    supersede_same_client(&reg, &new, Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(ended_rx.await.unwrap(), StopReason::Superseded);
    // Other hosts, other clients and newer entries are left alone.
    assert_eq!(other_host.stop_requested(), None);
    assert_eq!(other_client.stop_requested(), None);
    assert_eq!(newer.stop_requested(), None);
    assert_eq!(new.stop_requested(), None);
    // The newer one stops `new` (and would time out on a hung one).
    let err = supersede_same_client(&reg, &newer, Duration::from_millis(50))
        .await
        .unwrap_err();
    assert_eq!(err.0, key("s", "lobby-b", "c"));
    assert_eq!(new.stop_requested(), Some(StopReason::Superseded));
}
