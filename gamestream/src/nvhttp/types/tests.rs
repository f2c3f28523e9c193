use super::*;

const SUNSHINE_INFO: &str = r#"<?xml version="1.0" encoding="utf-8"?>
<root status_code="200"><hostname>gamebox</hostname><appversion>7.1.431.-1</appversion>
<GfeVersion>3.23.0.74</GfeVersion><uniqueid>6B6A</uniqueid><HttpsPort>47984</HttpsPort>
<ExternalPort>47989</ExternalPort><MaxLumaPixelsHEVC>1869449984</MaxLumaPixelsHEVC>
<mac>aa:bb:cc:dd:ee:ff</mac><LocalIP>192.168.1.10</LocalIP><ServerCodecModeSupport>259</ServerCodecModeSupport>
<PairStatus>1</PairStatus><currentgame>0</currentgame><state>SUNSHINE_SERVER_FREE</state></root>"#;

#[test]
fn server_info_example_round_trips() {
    let info = ServerInfo::parse(SUNSHINE_INFO.as_bytes()).unwrap();
    assert_eq!(info.hostname, "gamebox");
    assert_eq!(info.app_version(), AppVersion::SUNSHINE);
    assert_eq!(info.https_port, 47984);
    assert_eq!(info.max_luma_pixels_hevc, 1869449984);
    assert_eq!(info.codec_mode_support, 259);
    assert_ne!(info.codec_support() & codec_mode::HEVC, 0);
    assert!(info.pair_status);
    assert!(!info.is_busy() && !info.should_resume() && !info.is_nvidia_software());
    let mut with_modes = info.clone();
    with_modes.display_modes = vec![DisplayMode {
        width: 1920,
        height: 1080,
        refresh_rate: 60,
    }];
    with_modes.gpu_type = Some("GTX".into());
    assert_eq!(
        ServerInfo::parse(with_modes.to_xml().as_bytes()).unwrap(),
        with_modes
    );
}

#[test]
fn busy_and_mjolnir_rules() {
    let mut info = ServerInfo {
        current_game: 5,
        state: "MJOLNIR_STATE_FREE".into(),
        ..ServerInfo::default()
    };
    assert!(info.is_nvidia_software());
    assert_eq!(info.running_app(), 0);
    info.state = "NVIDIA_MJOLNIR_SERVER_BUSY".into();
    assert_eq!(info.running_app(), 5);
    assert!(info.should_resume());
    info.codec_mode_support = 0;
    assert_eq!(info.codec_support(), codec_mode::H264);
    let mut req = LaunchRequest::new(1, 1920, 1080, 120);
    assert_eq!(req.gfe_mode_fps(&info), 0);
    req.fps = 60;
    assert_eq!(req.gfe_mode_fps(&info), 60);
}

/// Foundation Sunshine is the host that sends `SunshineVersion`; upstream Sunshine and Wolf do not.
#[test]
fn live_bitrate_is_told_by_foundation_sunshines_version_element() {
    let body =
        b"<root status_code=\"200\"><hostname>pc</hostname><appversion>7.1.431.-1</appversion>\
<GfeVersion>3.23.0.74</GfeVersion><SunshineVersion>Sunshine 2026.520.102929</SunshineVersion>\
<PairStatus>1</PairStatus><currentgame>0</currentgame><state>SUNSHINE_SERVER_FREE</state></root>";
    let info = ServerInfo::parse(body).unwrap();
    assert_eq!(
        info.sunshine_version.as_deref(),
        Some("Sunshine 2026.520.102929")
    );
    assert!(info.has_live_bitrate());
    assert_eq!(ServerInfo::parse(info.to_xml().as_bytes()).unwrap(), info);
    assert!(!ServerInfo::default().has_live_bitrate());
}

#[test]
fn server_info_requires_core_fields() {
    let body = b"<root status_code=\"200\"><appversion>7.1.431.-1</appversion></root>";
    assert!(matches!(
        ServerInfo::parse(body),
        Err(NvHttpError::MissingField("PairStatus"))
    ));
    let body = b"<root status_code=\"401\" status_message=\"nope\"/>";
    assert!(matches!(
        ServerInfo::parse(body),
        Err(NvHttpError::Status { code: 401, .. })
    ));
}

#[test]
fn app_list_round_trips() {
    let body = b"<root status_code=\"200\">\n  <App><IsHdrSupported>0</IsHdrSupported><AppTitle>Desktop</AppTitle><ID>881448767</ID></App>\n</root>";
    let apps = App::parse_list(body).unwrap();
    assert_eq!(
        apps,
        vec![App {
            title: "Desktop".into(),
            id: 881448767,
            hdr_supported: false
        }]
    );
    assert_eq!(
        App::parse_list(App::list_to_xml(&apps).as_bytes()).unwrap(),
        apps
    );
}

#[test]
fn launch_query_round_trips_and_vectors() {
    assert_eq!(surround_audio_info(2, 0x3), 196610);
    assert_eq!(surround_audio_info(6, 0x3F), 4128774);
    assert_eq!(surround_audio_info(8, 0x63F), 104792072);
    let mut req = LaunchRequest::new(881448767, 1920, 1080, 60);
    req.ri_key_id = -1;
    assert_eq!(hex::encode(req.ri_iv()), "ffffffff000000000000000000000000");
    req.ri_key_id = 0;
    assert_eq!(req.ri_iv(), [0u8; 16]);
    req.ri_key_id = -5;
    req.hdr = true;
    req.gcpersist = true;
    req.remote_controllers_bitmap = 3;
    req.gcmap = 3;
    req.continuous_audio = Some(true);
    let q = req.to_query();
    assert!(q.contains(&("rikeyid", "-5".to_string())));
    assert!(q.contains(&("mode", "1920x1080x60".to_string())));
    let owned: Vec<(String, String)> = q.iter().map(|(k, v)| (k.to_string(), v.clone())).collect();
    assert_eq!(LaunchRequest::from_query(&owned, true).unwrap(), req);
    let missing: Vec<_> = owned
        .iter()
        .filter(|(k, _)| k != "localAudioPlayMode")
        .cloned()
        .collect();
    assert!(LaunchRequest::from_query(&missing, true).is_err());
    assert!(LaunchRequest::from_query(&missing, false).is_ok());
    assert!(parse_mode("1920x1080").is_err());
    assert!(parse_mode("1920x1080x60x1").is_err());
    assert!(parse_num::<i32>("x", "+5").is_err());
}

#[test]
fn launch_and_cancel_bodies() {
    let r = LaunchResponse {
        session_url: Some("rtspenc://192.168.1.10:48010".into()),
    };
    assert_eq!(
        LaunchResponse::parse(r.to_xml(false).as_bytes(), false).unwrap(),
        r
    );
    assert_eq!(
        LaunchResponse::parse(r.to_xml(true).as_bytes(), true).unwrap(),
        r
    );
    assert!(LaunchResponse::parse(r.to_xml(true).as_bytes(), false).is_err());
    assert!(LaunchResponse::parse(
        b"<root status_code=\"200\"><gamesession>0</gamesession></root>",
        false
    )
    .is_err());
    parse_cancel(cancel_xml().as_bytes()).unwrap();
    assert!(parse_cancel(b"<root status_code=\"200\"><cancel>0</cancel></root>").is_err());
    let v6: std::net::SocketAddr = "[::1]:47984".parse().unwrap();
    assert_eq!(session_url(v6, 48010, false), "rtsp://[::1]:48010");
    let mapped: std::net::SocketAddr = "[::ffff:10.1.2.3]:47984".parse().unwrap();
    assert_eq!(session_url(mapped, 48010, true), "rtspenc://10.1.2.3:48010");
}

#[test]
fn pair_response_round_trips() {
    let p = PairResponse {
        paired: true,
        plaincert: Some("2D2D".into()),
        ..PairResponse::default()
    };
    assert_eq!(
        PairResponse::parse(p.to_xml(200, None).as_bytes()).unwrap(),
        p
    );
    let refused =
        PairResponse::parse(PairResponse::refused().to_xml(400, Some("bad")).as_bytes()).unwrap();
    assert!(!refused.paired);
}
