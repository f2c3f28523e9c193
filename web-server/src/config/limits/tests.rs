use super::*;

#[test]
fn env_and_file_set_limits_and_bad_values_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.toml");
    std::fs::write(
        &path,
        "[limits]\nmax_streams = 8\nfirst_message_secs = 3\nupgrade_timeout_secs = 4\n",
    )
    .unwrap();
    let c = Config::load_with_env(Some(&path), |k| {
        (k == "MOONGATE_MAX_STREAMS_PER_CLIENT").then(|| "2".to_string())
    })
    .unwrap();
    assert_eq!(c.limits.max_streams, 8);
    assert_eq!(c.limits.max_streams_per_client, 2);
    assert_eq!(c.limits.first_message, Duration::from_secs(3));
    assert_eq!(c.limits.upgrade_timeout, Duration::from_secs(4));
    for (k, v) in [
        ("MOONGATE_MAX_STREAMS", "-1"),
        ("MOONGATE_MAX_MESSAGE_BYTES", "100"),
        ("MOONGATE_FIRST_MESSAGE_TIMEOUT_SECS", "0"),
        ("MOONGATE_UPGRADE_TIMEOUT_SECS", "0"),
        ("MOONGATE_UPGRADE_TIMEOUT_SECS", "ten"),
    ] {
        assert!(
            Config::load_with_env(None, |key| (key == k).then(|| v.to_string())).is_err(),
            "{k}={v}"
        );
    }
}
