use super::*;

const HOST: &str = "10.0.0.1";
const PORT: u16 = 47989;

fn turn(gates: &LaunchGates, host: &str, opened: Instant) -> LaunchTurn {
    LaunchTurn::new(gates.clone(), host, PORT, opened)
}

/// Whether `t` is given its turn within `within`.
async fn gets_turn(t: &mut LaunchTurn, within: Duration) -> bool {
    tokio::time::timeout(within, t.granted()).await.is_ok()
}

const SOON: Duration = Duration::from_millis(100);

#[tokio::test]
async fn launches_on_one_host_take_turns_and_other_hosts_do_not_wait() {
    let gates = LaunchGates::default();
    let now = Instant::now();
    let mut first = turn(&gates, HOST, now);
    first.on_request(TurnRequest::Ask);
    assert!(
        gets_turn(&mut first, SOON).await,
        "a free host's turn was not given"
    );
    // Another host is not held up.
    let mut other = turn(&gates, "10.0.0.2", now);
    other.on_request(TurnRequest::Ask);
    assert!(
        gets_turn(&mut other, SOON).await,
        "another host waited for this host's turn"
    );
    // The same host waits until the first launch reports Started.
    let mut second = turn(&gates, HOST, now);
    second.on_request(TurnRequest::Ask);
    assert!(
        !gets_turn(&mut second, SOON).await,
        "two launches on one host at once"
    );
    first.release();
    assert!(
        gets_turn(&mut second, SOON).await,
        "the turn did not pass on after Started"
    );
}

#[tokio::test]
async fn a_stream_waits_only_while_it_asks_and_gives_back_on_refusal() {
    let gates = LaunchGates::default();
    let now = Instant::now();
    let mut a = turn(&gates, HOST, now);
    let mut b = turn(&gates, HOST, now + SOON);
    // Nothing asked: nothing is granted.
    assert!(!gets_turn(&mut a, SOON).await);
    a.on_request(TurnRequest::Ask);
    assert!(
        gets_turn(&mut a, SOON).await,
        "a free host's turn was not given"
    );
    // b waits while a holds the turn; a wait survives being dropped by a select.
    b.on_request(TurnRequest::Ask);
    assert!(!gets_turn(&mut b, SOON).await);
    assert!(!gets_turn(&mut b, SOON).await);
    // a's launch is refused: it gives the turn back and b goes while a waits to retry.
    a.on_request(TurnRequest::GiveBack);
    assert!(
        gets_turn(&mut b, SOON).await,
        "a given-back turn did not pass on"
    );
    a.on_request(TurnRequest::Ask);
    assert!(!gets_turn(&mut a, SOON).await);
    // b's stream started: a's retry goes.
    b.release();
    assert!(
        gets_turn(&mut a, SOON).await,
        "the turn did not pass on at Started"
    );
    // A stream that ends while waiting leaves the queue.
    let mut c = turn(&gates, HOST, now);
    c.on_request(TurnRequest::Ask);
    assert!(!gets_turn(&mut c, SOON).await);
    drop(c);
    drop(a);
    let mut d = turn(&gates, HOST, now);
    d.on_request(TurnRequest::Ask);
    assert!(
        gets_turn(&mut d, SOON).await,
        "an ended wait or a dropped turn kept the host"
    );
}

#[tokio::test]
async fn a_refused_launch_asking_again_goes_before_newer_opens() {
    let gates = LaunchGates::default();
    let t0 = Instant::now();
    let mut holder = turn(&gates, HOST, t0);
    holder.on_request(TurnRequest::Ask);
    assert!(gets_turn(&mut holder, SOON).await);
    // Three newer opens queue while the oldest one's launch was refused and it waits to retry.
    let mut newer: Vec<LaunchTurn> = (1..=3)
        .map(|i| turn(&gates, HOST, t0 + Duration::from_millis(10 * i)))
        .collect();
    for t in &mut newer {
        t.on_request(TurnRequest::Ask);
    }
    let mut oldest = turn(&gates, HOST, t0 - Duration::from_millis(500));
    oldest.on_request(TurnRequest::Ask);
    holder.release();
    assert!(
        gets_turn(&mut oldest, SOON).await,
        "the oldest open, asking last, was not served first"
    );
    for t in &mut newer {
        assert!(!gets_turn(t, Duration::from_millis(20)).await);
    }
    // Then the newer ones, oldest first.
    oldest.release();
    for i in 0..newer.len() {
        assert!(
            gets_turn(&mut newer[i], SOON).await,
            "open {i} was not next"
        );
        for later in &mut newer[i + 1..] {
            assert!(!gets_turn(later, Duration::from_millis(20)).await);
        }
        newer[i].release();
    }
}

#[tokio::test(start_paused = true)]
async fn a_turn_held_too_long_passes_on() {
    let gates = LaunchGates::default();
    let now = Instant::now();
    let mut stuck = turn(&gates, HOST, now);
    stuck.on_request(TurnRequest::Ask);
    assert!(gets_turn(&mut stuck, SOON).await);
    let mut next = turn(&gates, HOST, now);
    next.on_request(TurnRequest::Ask);
    let t = tokio::time::Instant::now();
    assert!(
        gets_turn(&mut next, LAUNCH_TURN_MAX * 3).await,
        "a held turn never passed on"
    );
    assert!(t.elapsed() >= LAUNCH_TURN_MAX, "{:?}", t.elapsed());
    // The stuck launch's late Started ends nothing of the next one's turn.
    stuck.release();
    let mut third = turn(&gates, HOST, now);
    third.on_request(TurnRequest::Ask);
    assert!(
        !gets_turn(&mut third, SOON).await,
        "a stale release ended another's turn"
    );
}

#[tokio::test(start_paused = true)]
async fn a_stream_in_its_teardown_passes_a_turn_sent_to_it_at_once() {
    let gates = LaunchGates::default();
    let now = Instant::now();
    let mut holder = turn(&gates, HOST, now);
    holder.on_request(TurnRequest::Ask);
    assert!(gets_turn(&mut holder, SOON).await);
    // `ending` queued, then its loop stopped polling (its teardown runs) when the turn came.
    let mut ending = turn(&gates, HOST, now);
    ending.on_request(TurnRequest::Ask);
    let mut behind = turn(&gates, HOST, now + SOON);
    behind.on_request(TurnRequest::Ask);
    holder.release();
    ending.stop_waiting();
    let t = tokio::time::Instant::now();
    assert!(
        gets_turn(&mut behind, SOON).await,
        "the turn waited for a stream in its teardown"
    );
    assert!(t.elapsed() < LAUNCH_TURN_MAX);
}
