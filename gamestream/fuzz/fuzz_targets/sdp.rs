#![no_main]
use gamestream::rtsp::describe::HostCapabilities;
use gamestream::rtsp::StreamConfig;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // Host side: ANNOUNCE payload.
    if let Ok(cfg) = StreamConfig::parse(data) {
        let _ = (cfg.audio_encryption(), cfg.color_space());
    }
    // Client side: DESCRIBE payload, every Opus layout search, codec choice.
    let caps = HostCapabilities::parse(data);
    for channels in [0u8, 2, 4, 6, 8, 9, 255] {
        let _ = caps.opus_configs(channels);
    }
    let _ = caps.choose_video_format(u32::MAX, u32::MAX);
    if let Ok(text) = std::str::from_utf8(data) {
        for name in ["x-ss-general.featureFlags", "x-ss-general.encryptionSupported"] {
            let _ = gamestream::rtsp::describe::sdp_attribute_u32(text, name);
        }
        let _ = gamestream::rtsp::fields::strtoul0(text);
        let _ = gamestream::rtsp::fields::server_port(text);
        let _ = gamestream::rtsp::fields::session_id(text);
        let _ = gamestream::rtsp::fields::port_from_session_url(text);
    }
});
