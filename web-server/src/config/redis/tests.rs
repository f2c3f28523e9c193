use super::*;

fn load(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
    let map: std::collections::HashMap<String, String> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Config::load_with_env(None, |k| map.get(k).cloned())
}

#[test]
fn no_url_is_one_node() {
    assert!(load(&[]).unwrap().redis.is_none());
}

#[test]
fn env_selects_redis_and_the_password_never_prints() {
    let c = load(&[
        (
            "MOONGATE_REDIS_URL",
            "redis://user:hunter2@127.0.0.1:6390/0",
        ),
        ("MOONGATE_NODE_ID", "node-a"),
        ("MOONGATE_REDIS_LEASE_SECS", "4"),
    ])
    .unwrap();
    let r = c.redis.clone().unwrap();
    assert_eq!(r.node_id, "node-a");
    assert_eq!(r.prefix, "moongate");
    assert_eq!(r.lease, Duration::from_secs(4));
    let printed = format!("{c:?}");
    assert!(!printed.contains("hunter2"), "{printed}");
    assert!(
        printed.contains("redis://<redacted>@127.0.0.1:6390/0"),
        "{printed}"
    );
}

#[test]
fn bad_values_are_clear_errors() {
    for (k, v) in [
        ("MOONGATE_REDIS_URL", "http://x"),
        ("MOONGATE_REDIS_LEASE_SECS", "abc"),
        ("MOONGATE_REDIS_LEASE_SECS", "60"),
        ("MOONGATE_NODE_ID", "a b"),
    ] {
        let mut pairs = vec![("MOONGATE_REDIS_URL", "redis://127.0.0.1/")];
        pairs.retain(|(key, _)| *key != k);
        pairs.push((k, v));
        let e = load(&pairs).unwrap_err().to_string();
        assert!(!e.is_empty(), "{k}={v}");
    }
}
