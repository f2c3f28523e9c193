use super::*;

#[test]
fn session_id_reads_strings_and_numbers_writes_strings() {
    let a: SessionStopRequest =
        serde_json::from_str(r#"{"session_id":"18446744073709551615"}"#).expect("string id");
    assert_eq!(a.session_id, SessionId(u64::MAX));
    let b: SessionStopRequest = serde_json::from_str(r#"{"session_id":42}"#).expect("numeric id");
    assert_eq!(b.session_id, SessionId(42));
    assert!(serde_json::from_str::<SessionStopRequest>(r#"{"session_id":"x1"}"#).is_err());
    assert_eq!(
        serde_json::to_string(&b).expect("ser"),
        r#"{"session_id":"42"}"#
    );
}

#[test]
fn secrets_are_redacted_in_debug() {
    let p = PairRequest {
        pair_secret: "s".into(),
        pin: Secret("1234".into()),
    };
    let dbg = format!("{p:?}");
    assert!(!dbg.contains("1234"), "{dbg}");
    assert_eq!(
        serde_json::to_value(&p).expect("ser")["pin"],
        Value::from("1234")
    );
}

#[test]
fn fault_patch_validates_and_applies() {
    let mut k = FaultKnobs::default();
    let bad = FaultKnobsPatch {
        drop_pct: Some(101.0),
        ..Default::default()
    };
    assert!(k.apply(&bad).is_err());
    let nan = FaultKnobsPatch {
        reorder_pct: Some(f64::NAN),
        ..Default::default()
    };
    assert!(nan.validate().is_err());
    let ok = FaultKnobsPatch {
        drop_pct: Some(5.0),
        refuse_launches: Some(true),
        ..Default::default()
    };
    k.apply(&ok).expect("valid");
    assert_eq!(k.drop_pct, 5.0);
    assert!(k.refuse_launches);
    assert_eq!(k.reorder_pct, 0.0);
}
