//! HEVC and AV1 to stock Moonlight clients: `/serverinfo` and the RTSP DESCRIBE reply carry
//! exactly what moonlight-common-c looks for (checked byte for byte over a raw TCP socket, as its
//! `RtspConnection.c` reads them), and a client that asks for HEVC (or AV1) gets it.

mod common;

use std::time::Duration;

use demo_host::media::sei::{nal_units, obus};
use demo_host::{DemoHost, DemoHostConfig, OfferedCodecs};
use gamestream::client::{ClientSession, SessionConfig};
use gamestream::nvhttp::{codec_mode, LaunchRequest};
use gamestream::rtsp::describe::video_format;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::timeout;

const WAIT: Duration = Duration::from_secs(15);

/// Sends DESCRIBE the way moonlight-common-c does (RTSP 1.0, plain TCP, one request per
/// connection) and returns the whole reply.
async fn raw_describe(port: u16) -> String {
    let mut tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let request = format!(
        "DESCRIBE rtsp://127.0.0.1:{port} RTSP/1.0\r\nCSeq: 2\r\nX-GS-ClientVersion: 14\r\n\
         Host: 127.0.0.1\r\nAccept: application/sdp\r\n\
         If-Modified-Since: Thu, 01 Jan 1970 00:00:00 GMT\r\n\r\n"
    );
    tcp.write_all(request.as_bytes()).await.unwrap();
    let mut reply = Vec::new();
    let mut buf = [0u8; 4096];
    // The host closes after its reply (as Sunshine and Wolf do); stop at the complete body too.
    let _ = timeout(Duration::from_secs(5), async {
        loop {
            match tcp.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => reply.extend_from_slice(&buf[..n]),
            }
            let text = String::from_utf8_lossy(&reply);
            if let Some((head, body)) = text.split_once("\r\n\r\n") {
                let len = head
                    .lines()
                    .find_map(|l| l.strip_prefix("Content-Length:"))
                    .and_then(|v| v.trim().parse::<usize>().ok())
                    .unwrap_or(0);
                if body.len() >= len {
                    return;
                }
            }
        }
    })
    .await;
    String::from_utf8(reply).expect("DESCRIBE reply is text")
}

/// Launches (without RTSP) so that the host answers DESCRIBE for this client.
async fn describe_after_launch(host: &DemoHost) -> String {
    let http = common::paired_client(host).await;
    let mut launch = LaunchRequest::new(1, 640, 360, 30);
    launch.ri_key = [7; 16];
    http.launch(&launch).await.unwrap();
    raw_describe(host.ports().rtsp).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serverinfo_and_describe_offer_hevc_and_av1_as_moonlight_common_c_reads_them() {
    timeout(Duration::from_secs(90), async {
        let host = DemoHost::start(common::test_config()).await.unwrap();
        let info = common::client(&host).server_info_http().await.unwrap();
        assert_eq!(
            info.codec_mode_support,
            codec_mode::H264 | codec_mode::HEVC | codec_mode::AV1_MAIN8
        );
        // moonlight-common-c's own values (Limelight.h SCM_*), not just our constants.
        assert_eq!(info.codec_mode_support, 0x0001 | 0x0100 | 0x10000);
        assert_eq!(info.max_luma_pixels_hevc, 1_869_449_984);

        let reply = describe_after_launch(&host).await;
        let (head, payload) = reply.split_once("\r\n\r\n").expect("header/body split");
        assert!(head.starts_with("RTSP/1.0 200 OK\r\n"), "{head}");
        assert!(head.contains("CSeq: 2"), "{head}");
        // RtspConnection.c: `strstr(response.payload, "AV1/90000")` picks AV1 first, then
        // `strstr(response.payload, "sprop-parameter-sets=AAAAAU")` picks HEVC.
        assert!(payload.contains("sprop-parameter-sets=AAAAAU"), "{payload}");
        assert!(payload.contains("AV1/90000"), "{payload}");
        // As Sunshine writes them, one line each.
        assert!(payload.lines().any(|l| l == "sprop-parameter-sets=AAAAAU"));
        assert!(payload.lines().any(|l| l == "a=rtpmap:98 AV1/90000"));
        // parseSdpAttributeToUInt("x-ss-general.featureFlags"): name, ':' and a number.
        assert!(
            payload.contains("a=x-ss-general.featureFlags:3\n"),
            "{payload}"
        );
        // Stereo Opus layout the client searches for (`a=fmtp:97 surround-params=` + "21101").
        assert!(
            payload.contains("a=fmtp:97 surround-params=21101"),
            "{payload}"
        );
        // No reference-frame invalidation (Wolf has none), so clients keep asking for IDRs.
        assert!(!payload.contains("x-nv-video[0].refPicInvalidation"));
        host.close().await;
    })
    .await
    .expect("test timed out");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h264_only_offers_neither_marker() {
    timeout(Duration::from_secs(90), async {
        let host = DemoHost::start(DemoHostConfig {
            offered_codecs: OfferedCodecs::H264_ONLY,
            ..common::test_config()
        })
        .await
        .unwrap();
        let info = common::client(&host).server_info_http().await.unwrap();
        assert_eq!(
            (info.codec_mode_support, info.max_luma_pixels_hevc),
            (codec_mode::H264, 0)
        );
        let reply = describe_after_launch(&host).await;
        assert!(reply.starts_with("RTSP/1.0 200 OK\r\n"), "{reply}");
        assert!(
            !reply.contains("AAAAAU") && !reply.contains("AV1/90000"),
            "{reply}"
        );
        host.close().await;
    })
    .await
    .expect("test timed out");
}

/// A client that decodes `formats` streams from the real media layer; returns the negotiated
/// format and the first frame.
async fn first_frame(host: &DemoHost, formats: u32) -> (u32, Vec<u8>) {
    let http = common::paired_client(host).await;
    let mut settings = common::settings();
    settings.supported_formats = formats;
    let (session, mut media) = timeout(
        WAIT,
        ClientSession::start(http, SessionConfig::new(1, settings)),
    )
    .await
    .unwrap()
    .unwrap();
    let negotiated = session.outcome().video_format;
    let frame = common::wait_frame(&mut media, WAIT, |_| true).await;
    session.stop().await.unwrap();
    (negotiated, frame.data)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_asking_for_hevc_gets_hevc_and_for_av1_gets_av1() {
    timeout(Duration::from_secs(120), async {
        // Real media: the HEVC and AV1 clips need no encoder.
        let host = DemoHost::start(DemoHostConfig {
            fixed_pin: Some(common::PIN.into()),
            wolf_strict: true,
            ..DemoHostConfig::default()
        })
        .await
        .unwrap();

        let (format, data) = first_frame(&host, video_format::H264 | video_format::H265).await;
        assert_eq!(format, video_format::H265);
        let types: Vec<u8> = nal_units(&data)
            .filter_map(|(_, n)| n.first().map(|b| (b >> 1) & 0x3F))
            .collect();
        assert_eq!(&types[..3], &[32, 33, 34], "VPS, SPS, PPS: {types:?}");

        let all = video_format::H264 | video_format::H265 | video_format::AV1_MAIN8;
        let (format, data) = first_frame(&host, all).await;
        assert_eq!(
            format,
            video_format::AV1_MAIN8,
            "AV1 first, as moonlight-common-c"
        );
        let types: Vec<u8> = obus(&data).map(|(_, t, _)| t).collect();
        assert_eq!(types[0], 2, "temporal delimiter first: {types:?}");
        assert!(types.contains(&1), "a sequence header: {types:?}");

        let (format, data) = first_frame(&host, video_format::H264).await;
        assert_eq!(format, video_format::H264);
        // Wolf-strict: High profile (profile_idc 100) in the SPS.
        let sps = nal_units(&data)
            .find(|(_, n)| n.first().is_some_and(|b| b & 0x1F == 7))
            .map(|(_, n)| n.to_vec())
            .expect("keyframe carries its SPS");
        assert_eq!(sps[1], 100, "profile_idc");
        assert_eq!(host.disconnects_after_cancel(), 0);
        host.close().await;
    })
    .await
    .expect("test timed out");
}
