use super::*;
use std::collections::HashMap;

fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
    let map: HashMap<String, String> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    move |k| map.get(k).cloned()
}

#[test]
fn defaults_without_file_or_env() {
    let c = Config::load_with_env(None, env_of(&[])).unwrap();
    assert_eq!(c.bind, "127.0.0.1:8080".parse().unwrap());
    assert_eq!(c.timeouts.cert_idle, Duration::from_secs(3600));
    assert_eq!(c.timeouts.cert_sweep, Duration::from_secs(300));
    assert!(c.credentials.is_none());
}

#[test]
fn example_file_parses_and_env_wins() {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("moongate.example.toml");
    let c = Config::load_with_env(Some(&example), env_of(&[])).unwrap();
    assert_eq!(c.bind, "127.0.0.1:8080".parse().unwrap());
    assert_eq!(c.hosts.len(), 1);
    assert_eq!(c.allowed_origins, vec!["http://localhost:8080".to_string()]);

    let c = Config::load_with_env(
        Some(&example),
        env_of(&[
            ("MOONGATE_BIND", "0.0.0.0:9000"),
            (
                "MOONGATE_ALLOWED_ORIGINS",
                "https://a.example, https://b.example",
            ),
            ("MOONGATE_PAIRING_TIMEOUT_SECS", "7"),
            ("MOONGATE_CREDENTIALS", "s3cret"),
            ("MOONGATE_ADMIN_CREDENTIALS", "adm1n"),
        ]),
    )
    .unwrap();
    assert_eq!(c.bind, "0.0.0.0:9000".parse().unwrap());
    assert_eq!(c.allowed_origins.len(), 2);
    assert_eq!(c.timeouts.pairing, Duration::from_secs(7));
    assert!(!format!("{c:?}").contains("s3cret"), "credential in Debug");
    assert_eq!(c.admin_credentials.as_deref(), Some("adm1n"));
    assert!(
        !format!("{c:?}").contains("adm1n"),
        "admin credential in Debug"
    );
}

#[test]
fn webrtc_section_and_env() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("c.toml");
    std::fs::write(
        &p,
        r#"
[webrtc]
udp_port_min = 40000
udp_port_max = 40009
bind_address = "127.0.0.1"
nat_1to1_ips = ["203.0.113.7"]
nat_candidate_type = "srflx"
network_types = ["udp4"]
disconnect_timeout_secs = 5

[[webrtc.ice_servers]]
urls = ["turn:turn.example:3478"]
username = "u"
credential = "turn-secret"
"#,
    )
    .unwrap();
    let c = Config::load_with_env(Some(&p), env_of(&[])).unwrap();
    let w = &c.webrtc;
    assert_eq!((w.udp_port_min, w.udp_port_max), (40000, 40009));
    assert_eq!(
        w.bind_address,
        "127.0.0.1".parse::<std::net::IpAddr>().unwrap()
    );
    assert_eq!(w.nat_1to1_ips.len(), 1);
    assert_eq!(w.nat_candidate_type, NatCandidateType::Srflx);
    assert_eq!(w.network_types, vec![NetworkType::Udp4]);
    assert_eq!(w.disconnect_timeout, Duration::from_secs(5));
    assert_eq!(w.ice_servers[0].username, "u");
    assert!(
        !format!("{c:?}").contains("turn-secret"),
        "TURN credential in Debug"
    );

    let c = Config::load_with_env(
        Some(&p),
        env_of(&[
            ("MOONGATE_WEBRTC_UDP_PORT_MIN", "50000"),
            ("MOONGATE_WEBRTC_UDP_PORT_MAX", "50010"),
            ("MOONGATE_WEBRTC_NAT_1TO1_IPS", "198.51.100.1, 198.51.100.2"),
            ("MOONGATE_WEBRTC_NAT_CANDIDATE_TYPE", "host"),
            ("MOONGATE_WEBRTC_NETWORK_TYPES", "udp4,udp6"),
            ("MOONGATE_WEBRTC_BIND_ADDRESS", "0.0.0.0"),
            ("MOONGATE_WEBRTC_DISCONNECT_TIMEOUT_SECS", "3"),
            (
                "MOONGATE_WEBRTC_ICE_SERVERS",
                r#"[{"urls":["stun:s.example:3478"]},{"urls":["turn:t.example"],"username":"a","credential":"b"}]"#,
            ),
        ]),
    )
    .unwrap();
    let w = &c.webrtc;
    assert_eq!((w.udp_port_min, w.udp_port_max), (50000, 50010));
    assert_eq!(w.nat_1to1_ips.len(), 2);
    assert_eq!(w.nat_candidate_type, NatCandidateType::Host);
    assert_eq!(w.network_types.len(), 2);
    assert_eq!(w.disconnect_timeout, Duration::from_secs(3));
    assert_eq!(w.ice_servers.len(), 2);
    assert_eq!(w.ice_servers[1].credential, "b");

    let c = Config::load_with_env(
        None,
        env_of(&[("MOONGATE_WEBRTC_ICE_SERVERS", "stun:a:1, stun:b:2")]),
    )
    .unwrap();
    assert_eq!(c.webrtc.ice_servers.len(), 2);

    let bad: [&[(&str, &str)]; 7] = [
        &[
            ("MOONGATE_WEBRTC_UDP_PORT_MIN", "40010"),
            ("MOONGATE_WEBRTC_UDP_PORT_MAX", "40009"),
        ],
        &[("MOONGATE_WEBRTC_UDP_PORT_MAX", "40009")],
        &[("MOONGATE_WEBRTC_NAT_CANDIDATE_TYPE", "relay")],
        &[("MOONGATE_WEBRTC_NETWORK_TYPES", "tcp4")],
        &[("MOONGATE_WEBRTC_ICE_SERVERS", "http://x")],
        &[("MOONGATE_WEBRTC_ICE_SERVERS", "[{]")],
        &[("MOONGATE_WEBRTC_BIND_ADDRESS", "nope")],
    ];
    for vars in bad {
        let r = Config::load_with_env(None, env_of(vars));
        assert!(matches!(r, Err(ConfigError::Invalid { .. })), "{vars:?}");
    }
}

#[test]
fn bad_values_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("c.toml");
    std::fs::write(&p, "bnid = \"x\"\n").unwrap();
    assert!(matches!(
        Config::load_with_env(Some(&p), env_of(&[])),
        Err(ConfigError::Parse { .. })
    ));
    assert!(matches!(
        Config::load_with_env(None, env_of(&[("MOONGATE_BIND", "nope")])),
        Err(ConfigError::Invalid { .. })
    ));
    assert!(matches!(
        Config::load_with_env(None, env_of(&[("MOONGATE_CERT_SWEEP_SECS", "0")])),
        Err(ConfigError::Invalid { .. })
    ));
}

#[test]
fn the_embedded_host_is_wolf_strict_unless_turned_off() {
    assert!(
        Config::load_with_env(None, env_of(&[]))
            .unwrap()
            .demo_host_strict
    );
    let off = Config::load_with_env(None, env_of(&[("MOONGATE_DEMO_HOST_STRICT", "false")]));
    assert!(!off.unwrap().demo_host_strict);
    let file = Config::parse_toml("[demo_host]\nstrict = false\n").unwrap();
    assert_eq!(file.demo_host.strict, Some(false));
    assert!(matches!(
        Config::load_with_env(None, env_of(&[("MOONGATE_DEMO_HOST_STRICT", "maybe")])),
        Err(ConfigError::Invalid { .. })
    ));
}

#[test]
fn the_embedded_hosts_live_bitrate_is_off_unless_turned_on() {
    assert!(
        !Config::load_with_env(None, env_of(&[]))
            .unwrap()
            .demo_host_live_bitrate
    );
    let on = Config::load_with_env(None, env_of(&[("MOONGATE_DEMO_HOST_LIVE_BITRATE", "true")]));
    assert!(on.unwrap().demo_host_live_bitrate);
    let file = Config::parse_toml("[demo_host]\nlive_bitrate = true\n").unwrap();
    assert_eq!(file.demo_host.live_bitrate, Some(true));
}

#[test]
fn users_section_and_env() {
    let c = Config::load_with_env(None, env_of(&[])).unwrap();
    assert_eq!(c.users, UsersConfig::default());
    assert_eq!(c.users.session, Duration::from_secs(12 * 3600));
    assert!(c.users.trusted_proxies.is_empty());

    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("c.toml");
    std::fs::write(
        &p,
        "[users]\nsession_hours = 2\ntrusted_proxies = [\"10.0.0.5\", \"::1\"]\nproxy_user_header = \"X-Remote-User\"\n",
    )
    .unwrap();
    let c = Config::load_with_env(Some(&p), env_of(&[])).unwrap();
    assert_eq!(c.users.session, Duration::from_secs(7200));
    assert_eq!(
        c.users.trusted_proxies,
        vec![
            "10.0.0.5".parse::<std::net::IpAddr>().unwrap(),
            "::1".parse().unwrap()
        ]
    );
    assert_eq!(c.users.proxy_user_header, "x-remote-user");
    // The variables win; an empty list trusts nobody.
    let c = Config::load_with_env(
        Some(&p),
        env_of(&[
            ("MOONGATE_TRUSTED_PROXIES", ""),
            ("MOONGATE_SESSION_HOURS", "1"),
        ]),
    )
    .unwrap();
    assert!(c.users.trusted_proxies.is_empty());
    assert_eq!(c.users.session, Duration::from_secs(3600));

    for (key, value, names) in [
        (
            "MOONGATE_TRUSTED_PROXIES",
            "10.0.0.1, proxy.local",
            "users.trusted_proxies",
        ),
        ("MOONGATE_SESSION_HOURS", "0", "users.session_hours"),
        ("MOONGATE_SESSION_HOURS", "many", "MOONGATE_SESSION_HOURS"),
        (
            "MOONGATE_PROXY_USER_HEADER",
            "bad header",
            "users.proxy_user_header",
        ),
    ] {
        let e = Config::load_with_env(None, env_of(&[(key, value)])).unwrap_err();
        assert!(e.to_string().contains(names), "{key}={value}: {e}");
    }
}

#[test]
fn oidc_section_and_env() {
    let c = Config::load_with_env(None, env_of(&[])).unwrap();
    assert_eq!(c.users.oidc, None, "off without an issuer");

    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("c.toml");
    std::fs::write(
        &p,
        "[users.oidc]\nissuer = \"https://id.example.org/realms/x\"\nclient_id = \"moongate\"\nredirect_url = \"https://play.example.org/api/auth/oidc/callback\"\nusername_claim = \"email\"\nauto_create_role = \"viewer\"\n",
    )
    .unwrap();
    let c = Config::load_with_env(
        Some(&p),
        env_of(&[
            ("MOONGATE_OIDC_CLIENT_SECRET", "s3cret-value"),
            ("MOONGATE_OIDC_NAME", "Company SSO"),
        ]),
    )
    .unwrap();
    let o = c.users.oidc.clone().unwrap();
    assert_eq!(o.issuer, "https://id.example.org/realms/x");
    assert_eq!(o.client_id, "moongate");
    assert_eq!(o.username_claim, UsernameClaim::Email);
    assert_eq!(o.auto_create_role, Some(crate::users::UserRole::Viewer));
    assert_eq!(o.name, "Company SSO");
    assert_eq!(
        o.client_secret.as_ref().map(|s| s.expose()),
        Some("s3cret-value")
    );
    assert!(
        !format!("{c:?}").contains("s3cret-value"),
        "the client secret never reaches a log"
    );

    for (pairs, names) in [
        (
            vec![("MOONGATE_OIDC_ISSUER", "https://id.example.org")],
            "users.oidc.client_id",
        ),
        (
            vec![
                ("MOONGATE_OIDC_ISSUER", "id.example.org"),
                ("MOONGATE_OIDC_CLIENT_ID", "m"),
            ],
            "users.oidc.issuer",
        ),
        (
            vec![
                ("MOONGATE_OIDC_ISSUER", "https://id.example.org"),
                ("MOONGATE_OIDC_CLIENT_ID", "m"),
                (
                    "MOONGATE_OIDC_REDIRECT_URL",
                    "https://g/api/auth/oidc/callback",
                ),
                ("MOONGATE_OIDC_AUTO_CREATE_ROLE", "admin"),
            ],
            "users.oidc.auto_create_role",
        ),
        (
            vec![
                ("MOONGATE_OIDC_ISSUER", "https://id.example.org"),
                ("MOONGATE_OIDC_CLIENT_ID", "m"),
                (
                    "MOONGATE_OIDC_REDIRECT_URL",
                    "https://g/api/auth/oidc/callback",
                ),
                ("MOONGATE_OIDC_USERNAME_CLAIM", "nickname"),
            ],
            "users.oidc.username_claim",
        ),
    ] {
        let e = Config::load_with_env(None, env_of(&pairs)).unwrap_err();
        assert!(e.to_string().contains(names), "{pairs:?}: {e}");
    }
}
