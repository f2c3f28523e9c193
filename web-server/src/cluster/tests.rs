use super::*;

#[test]
fn values_round_trip_and_bad_ones_are_errors() {
    let e = StoredEntry {
        node: "a".into(),
        entry_id: 3,
        started_at: 9,
        host_id: 1,
        app_id: 2,
        mode: "websocket".into(),
        remote: None,
        streamer_pid: Some(77),
    };
    let v = format!("42|{}", serde_json::to_string(&e).unwrap());
    let (gen, back) = parse_value(&v).unwrap();
    assert_eq!(gen, 42);
    assert_eq!(back.node, "a");
    for bad in ["", "42", "x|{}", "42|{", "42|{\"node\":1}"] {
        assert!(parse_value(bad).is_err(), "{bad:?}");
    }
}

#[test]
fn commands_are_json_with_an_op() {
    let text = serde_json::to_string(&Command::Stop {
        key: "s--c".into(),
        gen: 7,
        reason: StopReason::Superseded,
    })
    .unwrap();
    assert_eq!(
        text,
        r#"{"op":"stop","key":"s--c","gen":7,"reason":"superseded"}"#
    );
    assert!(serde_json::from_str::<Command>(r#"{"op":"launch"}"#).is_err());
}
