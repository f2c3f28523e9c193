use super::*;

pub(crate) const EXAMPLE: &str = "v=0\r\n\
o=android 0 14 IN IPv4 192.168.1.10\r\n\
s=NVIDIA Streaming Client\r\n\
a=x-ml-general.featureFlags:3 \r\n\
a=x-ss-general.encryptionEnabled:1 \r\n\
a=x-ss-video[0].chromaSamplingType:0 \r\n\
a=x-nv-video[0].clientViewportWd:1920 \r\n\
a=x-nv-video[0].clientViewportHt:1080 \r\n\
a=x-nv-video[0].maxFPS:60 \r\n\
a=x-nv-video[0].packetSize:1392 \r\n\
a=x-nv-video[0].rateControlMode:4 \r\n\
a=x-nv-video[0].timeoutLengthMs:7000 \r\n\
a=x-nv-video[0].framesWithInvalidRefThreshold:0 \r\n\
a=x-nv-video[0].initialBitrateKbps:16000 \r\n\
a=x-nv-video[0].initialPeakBitrateKbps:16000 \r\n\
a=x-nv-vqos[0].bw.minimumBitrateKbps:16000 \r\n\
a=x-nv-vqos[0].bw.maximumBitrateKbps:16000 \r\n\
a=x-ml-video.configuredBitrateKbps:20000 \r\n\
a=x-nv-vqos[0].fec.enable:1 \r\n\
a=x-nv-vqos[0].videoQualityScoreUpdateTime:5000 \r\n\
a=x-nv-vqos[0].qosTrafficType:5 \r\n\
a=x-nv-aqos.qosTrafficType:4 \r\n\
a=x-nv-general.featureFlags:135 \r\n\
a=x-nv-general.useReliableUdp:13 \r\n\
a=x-nv-vqos[0].fec.minRequiredFecPackets:2 \r\n\
a=x-nv-vqos[0].bllFec.enable:0 \r\n\
a=x-nv-vqos[0].drc.enable:0 \r\n\
a=x-nv-general.enableRecoveryMode:0 \r\n\
a=x-nv-video[0].videoEncoderSlicesPerFrame:1 \r\n\
a=x-nv-clientSupportHevc:0 \r\n\
a=x-nv-vqos[0].bitStreamFormat:0 \r\n\
a=x-nv-video[0].dynamicRangeMode:0 \r\n\
a=x-nv-video[0].maxNumReferenceFrames:1 \r\n\
a=x-nv-video[0].clientRefreshRateX100:6000 \r\n\
a=x-nv-audio.surround.numChannels:2 \r\n\
a=x-nv-audio.surround.channelMask:3 \r\n\
a=x-nv-audio.surround.enable:0 \r\n\
a=x-nv-audio.surround.AudioQuality:0 \r\n\
a=x-nv-aqos.packetDuration:5 \r\n\
a=x-nv-video[0].encoderCscMode:2 \r\n\
t=0 0\r\n\
m=video 47998  \r\n";

pub(crate) fn example_params() -> AnnounceParams {
    AnnounceParams {
        app_version: AppVersion::SUNSHINE,
        host_addr: "192.168.1.10".parse().unwrap(),
        rtsp_port: 48010,
        width: 1920,
        height: 1080,
        fps: 60,
        packet_size: 1392,
        bitrate_kbps: 20000,
        remote: false,
        slices_per_frame: 1,
        video_format: video_format::H264,
        rfi_supported_by_decoder: false,
        refresh_rate_x100: 6000,
        audio_channels: 2,
        audio_channel_mask: 3,
        high_quality_surround: false,
        audio_packet_duration_ms: 5,
        color_space: 1,
        color_range: 0,
        encryption_enabled: encryption::CONTROL_V2,
        audio_encryption: false,
        video_port: 47998,
    }
}

fn text(p: &AnnounceParams) -> String {
    String::from_utf8(p.to_payload()).unwrap()
}

#[test]
fn example_3_5_byte_exact() {
    assert_eq!(text(&example_params()), EXAMPLE);
}

#[test]
fn example_parses_on_host() {
    let cfg = StreamConfig::parse(EXAMPLE.as_bytes()).unwrap();
    assert_eq!(
        (cfg.width, cfg.height, cfg.fps, cfg.packet_size),
        (1920, 1080, 60, 1392)
    );
    assert_eq!(
        (cfg.bitrate_kbps, cfg.configured_bitrate_kbps),
        (16000, Some(20000))
    );
    assert_eq!(
        (
            cfg.slices_per_frame,
            cfg.max_ref_frames,
            cfg.bit_stream_format
        ),
        (1, 1, 0)
    );
    assert_eq!(
        (
            cfg.audio_channels,
            cfg.audio_channel_mask,
            cfg.audio_high_quality
        ),
        (2, 3, false)
    );
    assert_eq!(
        (cfg.audio_packet_duration_ms, cfg.fec_min_required_packets),
        (5, 2)
    );
    assert_eq!(
        (
            cfg.encryption_enabled,
            cfg.ml_feature_flags,
            cfg.nv_feature_flags
        ),
        (1, 3, 135)
    );
    assert_eq!(
        (cfg.color_space(), cfg.full_range(), cfg.refresh_rate_x100),
        (1, false, Some(6000))
    );
    assert!(cfg.control_v2() && !cfg.video_encryption() && !cfg.audio_encryption());
    assert_eq!(cfg.use_reliable_udp, Some(13));
    assert_eq!(cfg.attribute("x-nv-video[0].timeoutLengthMs"), Some("7000"));
    assert!(!cfg.high_quality_audio());
    let mut cfg = cfg;
    cfg.rtsp_host = Some("192.168.1.10".into());
    assert!(cfg.high_quality_audio());
    cfg.rtsp_host = Some("0.0.0.0".into());
    assert!(!cfg.high_quality_audio());
}

#[test]
fn host_parser_required_and_defaults() {
    for name in REQUIRED {
        let stripped: String = EXAMPLE
            .split_inclusive('\n')
            .filter(|l| !l.starts_with(&format!("a={name}:")))
            .collect();
        assert!(
            matches!(StreamConfig::parse(stripped.as_bytes()), Err(RtspError::Sdp(n)) if n == name)
        );
    }
    // Only the required ones, LF endings, no trailing spaces: defaults apply.
    let minimal: String = REQUIRED.iter().map(|n| format!("a={n}:1\n")).collect();
    let cfg = StreamConfig::parse(minimal.as_bytes()).unwrap();
    assert_eq!(
        (
            cfg.audio_packet_duration_ms,
            cfg.encryption_enabled,
            cfg.bit_stream_format
        ),
        (5, 0, 0)
    );
    assert!(cfg.audio_high_quality);
    // Non-numeric required value is an error.
    let bad = minimal.replace("maxFPS:1", "maxFPS:sixty");
    assert!(StreamConfig::parse(bad.as_bytes()).is_err());
}

#[test]
fn wolf_audio_encryption_bit() {
    let mut p = example_params();
    p.audio_encryption = true;
    let t = text(&p);
    assert!(t.contains("a=x-nv-general.featureFlags:167 \r\n"));
    assert!(StreamConfig::parse(t.as_bytes())
        .unwrap()
        .audio_encryption());
}

#[test]
fn generation_rows() {
    let mut p = example_params();
    // Video encryption: packet size minus 32, encryptionEnabled reflects it.
    p.encryption_enabled = 0x07;
    let t = text(&p);
    assert!(t.contains("packetSize:1360 \r\n") && t.contains("encryptionEnabled:7 \r\n"));
    // Remote: bitrate −500, QoS 0/0.
    let mut p = example_params();
    p.remote = true;
    let t = text(&p);
    assert!(t.contains("initialBitrateKbps:15500 \r\n") && t.contains("qosTrafficType:0 \r\n"));
    assert!(t.contains("x-nv-aqos.qosTrafficType:0 \r\n"));
    // Cap at 100 Mbps.
    p.bitrate_kbps = 500_000;
    assert!(text(&p).contains("maximumBitrateKbps:100000 \r\n"));
    // HEVC 10-bit, RFI decoder, 4:4:4 flag off, odd height rounded down, full range 2020.
    let mut p = example_params();
    p.video_format = video_format::H265_MAIN10;
    p.rfi_supported_by_decoder = true;
    p.height = 1081;
    p.color_space = 2;
    p.color_range = 1;
    let t = text(&p);
    assert!(t.contains("a=x-nv-clientSupportHevc:1 \r\na=x-nv-vqos[0].bitStreamFormat:1 \r\n"));
    assert!(t.contains("dynamicRangeMode:1 ") && t.contains("maxNumReferenceFrames:0 "));
    assert!(t.contains("clientViewportHt:1080 ") && t.contains("encoderCscMode:5 "));
    assert!(!t.contains("encoderFeatureSetting"));
    // AV1: no clientSupportHevc; 4:4:4 → chromaSamplingType 1.
    p.video_format = video_format::AV1_HIGH8_444;
    let t = text(&p);
    assert!(!t.contains("clientSupportHevc") && t.contains("bitStreamFormat:2 "));
    assert!(t.contains("chromaSamplingType:1 "));
    // Low resolution ⇒ DRC on.
    let mut p = example_params();
    p.width = 640;
    p.height = 480;
    assert!(text(&p).contains("a=x-nv-vqos[0].drc.enable:0 \r\n"));
    p.app_version = AppVersion::new(7, 1, 446, -1);
    assert!(
        text(&p).contains("a=x-nv-vqos[0].drc.enable:1 \r\na=x-nv-vqos[0].drc.tableType:2 \r\n")
    );
    // Surround with HQ.
    let mut p = example_params();
    p.audio_channels = 6;
    p.audio_channel_mask = 0x3F;
    p.high_quality_surround = true;
    let t = text(&p);
    assert!(
        t.contains("numChannels:6 ")
            && t.contains("channelMask:63 ")
            && t.contains("surround.enable:1 ")
    );
    assert!(t.contains("AudioQuality:1 "));
    // IPv6 host.
    let mut p = example_params();
    p.host_addr = "fe80::1".parse().unwrap();
    assert!(text(&p).starts_with("v=0\r\no=android 0 14 IN IPv6 [fe80::1]\r\n"));
}

#[test]
fn older_generations() {
    // GFE 7.1.415 (non-Sunshine, pre-431).
    let mut p = example_params();
    p.app_version = AppVersion::new(7, 1, 415, 0);
    p.video_format = video_format::H265;
    let t = text(&p);
    assert!(!t.contains("x-ml-") && !t.contains("x-ss-"));
    assert!(t.contains("a=x-nv-general.useReliableUdp:1 \r\na=x-nv-ri.useControlChannel:1 \r\na=x-nv-vqos[0].fec.repairPercent:20 \r\n"));
    assert!(!t.contains("x-nv-general.featureFlags") && !t.contains("encoderFeatureSetting"));
    p.app_version = AppVersion::new(7, 1, 402, 0);
    assert!(text(&p).contains("encoderFeatureSetting:0 "));
    p.width = 3840;
    p.height = 2160;
    assert!(text(&p).contains("repairPercent:5 "));
    // Gen 5: no gen-7 rows.
    let mut p = example_params();
    p.app_version = AppVersion::new(5, 0, 0, 0);
    let t = text(&p);
    assert!(t.contains("o=android 0 12 IN") && t.contains("videoEncoderSlicesPerFrame:1 "));
    assert!(
        !t.contains("dynamicRangeMode")
            && !t.contains("AudioQuality")
            && !t.contains("packetDuration")
    );
    // Gen 4: serverAddress, old bitrate names.
    let mut p = example_params();
    p.app_version = AppVersion::new(4, 0, 0, 0);
    p.remote = true;
    let t = text(&p);
    assert!(t.contains("a=x-nv-general.serverAddress:rtsp://192.168.1.10:48010 \r\n"));
    assert!(t.contains("a=x-nv-video[0].averageBitrate:4 \r\na=x-nv-video[0].peakBitrate:4 \r\n"));
    assert!(t.contains("a=x-nv-vqos[0].bw.minimumBitrate:15500 \r\n") && !t.contains("Kbps"));
    // Gen 3: binary flags, fixed m= port, no slices.
    let mut p = example_params();
    p.app_version = AppVersion::new(3, 0, 0, 0);
    let t = text(&p);
    assert!(t.contains(
        "a=x-nv-general.featureFlags:BwAA \r\na=x-nv-video[0].transferProtocol:AQAA \r\n"
    ));
    assert!(t.contains(
        "a=x-nv-video[3].transferProtocol:AQAA \r\na=x-nv-video[0].rateControlMode:BAAA \r\n"
    ));
    assert!(
        t.contains("a=x-nv-video[3].rateControlMode:BQAA \r\na=x-nv-vqos[0].bw.flags:14083 \r\n")
    );
    assert!(t.contains("a=x-nv-vqos[3].videoQosMaxConsecutiveDrops:0 \r\n"));
    assert!(t.ends_with("t=0 0\r\nm=video 47996  \r\n") && !t.contains("SlicesPerFrame"));
}

#[test]
fn audio_rules() {
    let v = AppVersion::SUNSHINE;
    assert!(high_quality_surround(v, 15000, 6, true, false));
    assert!(!high_quality_surround(v, 14999, 6, true, false));
    assert!(!high_quality_surround(v, 20000, 2, true, false));
    assert!(!high_quality_surround(v, 20000, 6, false, false));
    assert!(!high_quality_surround(v, 20000, 6, true, true));
    assert_eq!(audio_packet_duration(v, false, false, false, 1000), 5);
    assert_eq!(audio_packet_duration(v, false, true, false, 20000), 10);
    assert_eq!(audio_packet_duration(v, false, false, true, 4999), 10);
    assert_eq!(audio_packet_duration(v, true, true, true, 1000), 5);
}
