use super::*;

const FULL: Rung = Rung {
    width: 1920,
    height: 1080,
    fps: 60,
    bitrate_kbps: 15_000,
};
const SECOND: Duration = Duration::from_secs(1);

/// A link of `capacity` Kbps carrying the rung `at`, one second, WebSocket-like: within the
/// capacity the queue is short and nothing drops; beyond it the queue fills its budget,
/// frames drop, the RTT grows and only the capacity gets through.
fn link(capacity: u32, at: Rung, estimate: bool) -> LinkSample {
    let fits = f64::from(at.bitrate_kbps) <= f64::from(capacity) * 0.9;
    let carried = at.bitrate_kbps.min(capacity);
    let dropped = if fits {
        0
    } else {
        at.fps * (at.bitrate_kbps - carried) / at.bitrate_kbps
    };
    LinkSample {
        interval: SECOND,
        queue_delay_ms: if fits { 8 } else { 95 },
        rtt_ms: Some(if fits { 20 } else { 180 }),
        capacity_kbps: estimate.then_some(capacity),
        loss_permille: None,
        video: VideoSent {
            frames: at.fps - dropped,
            dropped,
            bytes: u64::from(carried) * 1000 / 8,
        },
    }
}

/// Drives `ladder` for `secs` seconds over a link given per second; returns the changes
/// with the second they happened at.
fn run(
    ladder: &mut Ladder,
    t0: Instant,
    from: u64,
    secs: u64,
    mut sample: impl FnMut(u64, Rung) -> LinkSample,
) -> Vec<(u64, Change)> {
    let mut changes = Vec::new();
    for s in from + 1..=from + secs {
        let now = t0 + Duration::from_secs(s);
        let current = ladder.current();
        if let Some(c) = ladder.observe(now, sample(s, current)) {
            assert_eq!(ladder.current(), c.rung);
            changes.push((s, c));
        }
    }
    changes
}

/// A ladder for [`FULL`] driven for `secs` seconds over a steady link of `capacity` Kbps.
fn settled(capacity: u32, secs: u64, estimate: bool) -> (Ladder, Instant) {
    let (mut ladder, t0) = (Ladder::new(FULL).unwrap(), Instant::now());
    run(&mut ladder, t0, 0, secs, |_, r| link(capacity, r, estimate));
    (ladder, t0)
}

#[test]
fn the_ladder_steps_bitrate_then_size_at_about_the_same_bits_per_pixel() {
    let ladder = Ladder::new(FULL).unwrap();
    let shape: Vec<_> = ladder
        .rungs()
        .iter()
        .map(|r| (r.width, r.height, r.fps, r.bitrate_kbps))
        .collect();
    assert!(ladder.rungs()[1].same_size(&FULL) && !ladder.rungs()[2].same_size(&FULL));
    assert_eq!(
        shape,
        vec![
            (1920, 1080, 60, 15_000),
            (1920, 1080, 60, 9_000),
            (1280, 720, 60, 6_000),
            (960, 540, 60, 3_375),
            (640, 360, 60, 1_500),
        ]
    );
}

#[test]
fn bounds_hold_for_any_request() {
    for (w, h, kbps) in [
        (1920, 1080, 15_000),
        (3840, 2160, 80_000),
        (1280, 720, 10_000),
        (1280, 800, 5_000),
        (640, 360, 2_000),
        (640, 360, 500),
        (7, 3, 1),
    ] {
        let requested = Rung {
            width: w,
            height: h,
            fps: 30,
            bitrate_kbps: kbps,
        };
        let ladder = Ladder::new(requested).unwrap();
        let rungs = ladder.rungs();
        assert_eq!(rungs[0], requested);
        for pair in rungs.windows(2) {
            let (above, below) = (pair[0], pair[1]);
            assert!(
                below.bitrate_kbps * 100 <= above.bitrate_kbps * 85,
                "{rungs:?}"
            );
            assert!(below.width <= above.width && below.height <= above.height);
            assert!(below.width % 2 == 0 && below.height % 2 == 0 || below == requested);
            assert!(below.bitrate_kbps >= 1000 && below.fps == 30);
        }
    }
    assert_eq!(
        Ladder::new(Rung { fps: 0, ..FULL }).unwrap_err(),
        LadderError::Degenerate(Rung { fps: 0, ..FULL })
    );
}

#[test]
fn a_link_at_a_quarter_steps_down_within_three_seconds_and_stays_down() {
    let mut ladder = Ladder::new(FULL).unwrap();
    let t0 = Instant::now();
    assert!(run(&mut ladder, t0, 0, 60, |_, r| link(20_000, r, true)).is_empty());
    // 20 → 5 Mbit/s at second 60.
    let changes = run(&mut ladder, t0, 60, 120, |_, r| link(5_000, r, true));
    assert_eq!(changes.len(), 1, "{changes:?}");
    let (at, change) = changes[0];
    assert!(at - 60 <= 3, "stepped down at +{}s", at - 60);
    assert_eq!(change.reason, Reason::Congestion);
    // Straight to the rung that fits, not one restream per rung.
    assert_eq!((change.index, change.rung.bitrate_kbps), (3, 3_375));
}

#[test]
fn a_recovered_link_climbs_one_rung_at_a_time_slowly() {
    let mut ladder = Ladder::new(FULL).unwrap();
    let t0 = Instant::now();
    run(&mut ladder, t0, 0, 30, |_, r| link(20_000, r, true));
    run(&mut ladder, t0, 30, 30, |_, r| link(5_000, r, true));
    assert_eq!(ladder.index(), 3);
    let changes = run(&mut ladder, t0, 60, 120, |_, r| link(20_000, r, true));
    let indices: Vec<_> = changes.iter().map(|(_, c)| c.index).collect();
    assert_eq!(indices, vec![2, 1, 0], "{changes:?}");
    assert!(changes.iter().all(|(_, c)| c.reason == Reason::Headroom));
    assert!(changes[0].0 - 60 >= 10, "first step up after 10 s clean");
    for pair in changes.windows(2) {
        assert!(
            pair[1].0 - pair[0].0 >= 15,
            "hold + clean spell: {changes:?}"
        );
    }
}

#[test]
fn no_step_up_without_headroom_for_the_next_rung() {
    let (mut ladder, t0) = settled(5_000, 10, true);
    assert_eq!(ladder.index(), 3);
    // 7 Mbit/s carries 3.4 cleanly but 6 Mbit/s needs 7.5 with headroom.
    assert!(run(&mut ladder, t0, 10, 600, |_, r| link(7_000, r, true)).is_empty());
}

#[test]
fn a_noisy_but_adequate_link_never_changes() {
    let mut ladder = Ladder::new(FULL).unwrap();
    let t0 = Instant::now();
    let changes = run(&mut ladder, t0, 0, 600, |s, r| {
        let mut sample = link(20_000, r, true);
        // Jitter on RTT and queue, an occasional lone spike with a dropped frame.
        sample.rtt_ms = Some(20 + (s * 37 % 45) as u32);
        sample.queue_delay_ms = (s * 53 % 56) as u32;
        if s % 13 == 0 {
            sample.queue_delay_ms = 99;
            sample.video.dropped = 1;
            sample.rtt_ms = Some(250);
        }
        sample.capacity_kbps = Some(16_000 + (s * 71 % 8_000) as u32);
        sample
    });
    assert!(changes.is_empty(), "{changes:?}");

    // The same below the top, with the estimate short of the next rung: no probing either.
    let (mut ladder, t0) = settled(7_000, 5, true);
    assert_eq!(ladder.index(), 2);
    let changes = run(&mut ladder, t0, 5, 600, |s, r| {
        let mut sample = link(7_000, r, true);
        sample.rtt_ms = Some(20 + (s * 37 % 45) as u32);
        sample.capacity_kbps = Some(9_000 + (s * 71 % 2_000) as u32);
        sample
    });
    assert!(changes.is_empty(), "{changes:?}");
}

#[test]
fn a_single_spike_changes_nothing() {
    let mut ladder = Ladder::new(FULL).unwrap();
    let t0 = Instant::now();
    let spike = LinkSample {
        interval: SECOND,
        queue_delay_ms: 400,
        rtt_ms: Some(500),
        capacity_kbps: Some(2_000),
        loss_permille: None,
        video: VideoSent {
            frames: 0,
            dropped: 60,
            bytes: 300_000,
        },
    };
    let changes = run(&mut ladder, t0, 0, 60, |s, r| match s {
        20 | 22 | 40 => spike,
        _ => link(20_000, r, true),
    });
    assert!(changes.is_empty(), "{changes:?}");
    // Two in a row are sustained congestion.
    let changes = run(&mut ladder, t0, 60, 2, |_, _| spike);
    assert_eq!(changes.len(), 1);
}

#[test]
fn the_rung_never_goes_past_either_end() {
    let mut ladder = Ladder::new(FULL).unwrap();
    let t0 = Instant::now();
    // A link that carries nothing: down to the last rung, and no further.
    run(&mut ladder, t0, 0, 300, |_, r| link(100, r, true));
    assert_eq!(ladder.index(), ladder.rungs().len() - 1);
    // A huge link: up to the requested rung, and no further.
    run(&mut ladder, t0, 300, 600, |_, r| link(1_000_000, r, true));
    assert_eq!(ladder.current(), FULL);
}

/// The profile (20 → 5 → 20 Mbit/s) simulated against a fixed rung: frames
/// delivered and seconds with dropped frames, a restream costing one second without video.
/// `cargo test -p web-server --lib adapt -- --nocapture` prints the rung over time.
#[test]
fn the_shaped_profile_delivers_more_and_stalls_less_than_no_adaptation() {
    let capacity = |s: u64| {
        if (60..120).contains(&s) {
            5_000
        } else {
            20_000
        }
    };
    let t0 = Instant::now();
    let mut ladder = Ladder::new(FULL).unwrap();
    let (mut delivered, mut stalled, mut gap_until) = ([0u64; 2], [0u64; 2], 0);
    let mut timeline = Vec::new();
    for s in 1..=240 {
        let fixed = link(capacity(s), FULL, true);
        delivered[0] += u64::from(fixed.video.frames);
        stalled[0] += u64::from(fixed.video.dropped > 0);
        let sample = link(capacity(s), ladder.current(), true);
        if s > gap_until {
            delivered[1] += u64::from(sample.video.frames);
            stalled[1] += u64::from(sample.video.dropped > 0);
        } else {
            stalled[1] += 1;
        }
        if let Some(c) = ladder.observe(t0 + Duration::from_secs(s), sample) {
            gap_until = s + 1;
            timeline.push(format!(
                "{s:>3}s rung {} {}x{} {} Kbps ({:?})",
                c.index, c.rung.width, c.rung.height, c.rung.bitrate_kbps, c.reason
            ));
        }
    }
    println!("{}", timeline.join("\n"));
    println!(
        "frames delivered: fixed {} adaptive {}",
        delivered[0], delivered[1]
    );
    println!(
        "seconds stalled: fixed {} adaptive {}",
        stalled[0], stalled[1]
    );
    assert!(delivered[1] > delivered[0] && stalled[1] * 4 < stalled[0]);
    assert_eq!(ladder.current(), FULL, "back at the requested rung");
}

#[test]
fn without_an_estimate_it_probes_rarely_and_backs_off_when_a_probe_fails() {
    // 8 Mbit/s, no capacity estimate (a transport that cannot tell).
    let (mut ladder, t0) = settled(8_000, 5, false);
    assert_eq!(ladder.index(), 2);
    let changes = run(&mut ladder, t0, 5, 300, |_, r| link(8_000, r, false));
    let ups: Vec<_> = changes
        .iter()
        .filter(|(_, c)| c.reason == Reason::Probe)
        .map(|(s, _)| *s)
        .collect();
    assert!(ups.len() >= 2, "{changes:?}");
    assert!(changes
        .iter()
        .all(|(_, c)| c.index == 1 || c.index == 2 && c.reason == Reason::Congestion));
    // Every failed probe doubles the wait for the next one.
    let gaps: Vec<_> = ups.windows(2).map(|w| w[1] - w[0]).collect();
    println!("probes at {ups:?} s, {gaps:?} s apart");
    assert!(gaps.windows(2).all(|g| g[1] >= g[0]), "{gaps:?}");
    assert!(gaps[0] >= 60, "{gaps:?}");
}

#[test]
fn an_administrator_moves_the_stream_and_adaptation_goes_on_from_there() {
    let t0 = Instant::now();
    let mut ladder = Ladder::new(FULL).unwrap();
    let last = ladder.rungs().len() - 1;
    assert_eq!(ladder.force(t0, 0), None, "already there");
    assert_eq!(ladder.force(t0, last + 1), None, "no such rung");
    let change = ladder.force(t0, last).unwrap();
    assert_eq!((change.index, change.reason), (last, Reason::Admin));
    assert_eq!(ladder.current(), ladder.rungs()[last]);
    // The hold applies as after any change; then a clean, estimated link steps up again.
    let changes = run(&mut ladder, t0, 0, 60, |_, r| link(50_000, r, true));
    assert!(
        changes
            .iter()
            .all(|(s, c)| *s >= 5 && c.reason == Reason::Headroom),
        "{changes:?}"
    );
    assert!(ladder.index() < last, "{changes:?}");
}

/// A WebRTC-like link of `capacity` Kbps carrying the rung `at`: UDP never backs up into the
/// send queue, so beyond the capacity the browser reports the excess as lost and the router's
/// queue lengthens the round trip.
fn rtc_link(capacity: u32, at: Rung) -> LinkSample {
    let fits = f64::from(at.bitrate_kbps) <= f64::from(capacity) * 0.9;
    let loss = if at.bitrate_kbps > capacity {
        1000 * (at.bitrate_kbps - capacity) / at.bitrate_kbps
    } else {
        0
    };
    LinkSample {
        interval: SECOND,
        queue_delay_ms: 0,
        rtt_ms: Some(if fits { 2 } else { 240 }),
        capacity_kbps: None,
        loss_permille: Some(loss),
        video: VideoSent {
            frames: at.fps,
            dropped: 0,
            bytes: u64::from(at.bitrate_kbps) * 1000 / 8,
        },
    }
}

#[test]
fn reported_loss_steps_down_to_what_got_through_and_a_little_loss_does_not() {
    // 1 % loss with a steady round trip: a jitter buffer's business, not the ladder's.
    let (mut ladder, t0) = (Ladder::new(FULL).unwrap(), Instant::now());
    let changes = run(&mut ladder, t0, 0, 60, |_, r| LinkSample {
        loss_permille: Some(10),
        ..rtc_link(40_000, r)
    });
    assert!(changes.is_empty(), "{changes:?}");
    // The link narrows to 5 Mbit/s: the loss alone (no RTT measured) is congestion, and the step
    // goes straight to a rung that fits what got through (15 Mbit/s sent, two thirds lost).
    let changes = run(&mut ladder, t0, 60, 10, |_, r| LinkSample {
        rtt_ms: None,
        ..rtc_link(5_000, r)
    });
    let (at, first) = changes.first().copied().expect("a step down");
    assert_eq!(at, 62, "two congested seconds: {changes:?}");
    assert_eq!(first.reason, Reason::Congestion);
    assert!(first.rung.bitrate_kbps <= 4_500, "{first:?}");
}
