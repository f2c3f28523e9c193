use super::*;
use crate::rtsp::describe::DescribeParams;
use crate::rtsp::sdp::StreamConfig;

const K: [u8; 16] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15];

fn params(version: AppVersion, url: &str) -> ClientParams {
    ClientParams {
        app_version: version,
        session_url: url.to_string(),
        rikey: Some(K),
        host_addr: "192.168.1.10".parse().unwrap(),
        stream: StreamSettings::default(),
    }
}

fn ok(cseq: u32) -> RtspResponse {
    RtspResponse::new(200).with_header("CSeq", cseq.to_string())
}

/// Plays a scripted host: returns every plain request seen and the outcome.
fn run(
    mut hs: ClientHandshake,
    mut answer: impl FnMut(&RtspRequest) -> RtspResponse,
) -> Result<(Vec<RtspRequest>, RtspOutcome), RtspError> {
    let mut seen = Vec::new();
    let mut step = hs.start()?;
    for _ in 0..16 {
        match step {
            ClientStep::Done(o) => return Ok((seen, *o)),
            ClientStep::Send(bytes) => {
                let req = RtspRequest::parse(&bytes)?;
                let resp = answer(&req);
                seen.push(req);
                step = hs.receive(&resp.to_bytes())?;
            }
        }
    }
    panic!("did not finish");
}

fn sunshine_host(req: &RtspRequest) -> RtspResponse {
    let cseq = req.cseq().unwrap();
    match (req.method.as_str(), req.target.as_str()) {
        ("DESCRIBE", _) => {
            let mut r = ok(cseq);
            r.payload = DescribeParams::sunshine(true, false)
                .to_payload()
                .into_bytes();
            r
        }
        ("SETUP", t) => {
            let port = if t.contains("audio") {
                48200
            } else if t.contains("video") {
                48100
            } else {
                47990
            };
            let mut r = ok(cseq)
                .with_header("Session", "DEADBEEFCAFE;timeout = 90")
                .with_header("Transport", format!("server_port={port}"));
            if t.contains("control") {
                r.headers.push("X-SS-Connect-Data", "0x10");
            } else {
                r.headers.push("X-SS-Ping-Payload", "ABCDEFGHIJKLMNOP");
            }
            r
        }
        _ => ok(cseq),
    }
}

#[test]
fn vector_7_4_is_the_first_encrypted_request() {
    let mut hs =
        ClientHandshake::new(params(AppVersion::SUNSHINE, "rtspenc://192.168.1.10:48010")).unwrap();
    let ClientStep::Send(bytes) = hs.start().unwrap() else {
        panic!()
    };
    assert_eq!(
        hex::encode(bytes),
        "800000660000000168b5b12432cb8e2e412b872a46a51e3a9fe452003a42126629e9a38df3e5ba69a1abdae54db4096793128c2f908f8f9d3020facd1557180ae8b351849ce52c58abeb8e9b7c4f02f8d7f8a9ca29bf268920b175a9e60e05a0693312d74d2861c5e81816295c8c854c86548e87d9d68c57be7198fabd0d"
    );
    // A plain answer to an encrypted request is refused.
    assert!(matches!(
        hs.receive(&ok(1).to_bytes()),
        Err(RtspError::UnexpectedPlaintext)
    ));
}

#[test]
fn modern_sequence_and_outcome() {
    let hs =
        ClientHandshake::new(params(AppVersion::SUNSHINE, "rtsp://192.168.1.10:48010")).unwrap();
    let (reqs, out) = run(hs, sunshine_host).unwrap();
    let lines: Vec<String> = reqs
        .iter()
        .map(|r| format!("{} {}", r.method, r.target))
        .collect();
    assert_eq!(
        lines,
        [
            "OPTIONS rtsp://192.168.1.10:48010",
            "DESCRIBE rtsp://192.168.1.10:48010",
            "SETUP streamid=audio/0/0",
            "SETUP streamid=video/0/0",
            "SETUP streamid=control/13/0",
            "ANNOUNCE streamid=control/13/0",
            "PLAY /",
        ]
    );
    for (i, r) in reqs.iter().enumerate() {
        assert_eq!(r.cseq(), Some(i as u32 + 1));
        assert_eq!(r.headers.get("X-GS-ClientVersion"), Some("14"));
        assert_eq!(r.headers.get("Host"), Some("192.168.1.10"));
    }
    assert_eq!(
        reqs[1].to_bytes(),
        b"DESCRIBE rtsp://192.168.1.10:48010 RTSP/1.0\r\nCSeq: 2\r\nX-GS-ClientVersion: 14\r\nHost: 192.168.1.10\r\nAccept: application/sdp\r\nIf-Modified-Since: Thu, 01 Jan 1970 00:00:00 GMT\r\n\r\n"
    );
    assert_eq!(
        reqs[2].to_bytes(),
        b"SETUP streamid=audio/0/0 RTSP/1.0\r\nCSeq: 3\r\nX-GS-ClientVersion: 14\r\nHost: 192.168.1.10\r\nTransport: unicast;X-GS-ClientPort=50000-50001\r\nIf-Modified-Since: Thu, 01 Jan 1970 00:00:00 GMT\r\n\r\n"
    );
    assert_eq!(reqs[3].headers.get("Session"), Some("DEADBEEFCAFE"));
    let announce = &reqs[5];
    assert_eq!(
        announce.headers.get("Content-type"),
        Some("application/sdp")
    );
    assert_eq!(
        announce.headers.get("Content-length"),
        Some(announce.payload.len().to_string().as_str())
    );
    let names: Vec<&str> = announce.headers.iter().map(|(n, _)| n).collect();
    assert_eq!(
        names,
        [
            "CSeq",
            "X-GS-ClientVersion",
            "Host",
            "Session",
            "Content-type",
            "Content-length"
        ]
    );
    let cfg = StreamConfig::parse(&announce.payload).unwrap();
    assert_eq!(cfg.encryption_enabled, 1);
    assert!(String::from_utf8_lossy(&announce.payload).ends_with("m=video 48100  \r\n"));
    assert_eq!(
        (out.audio_port, out.video_port, out.control_port),
        (48200, 48100, 47990)
    );
    assert_eq!(out.session_id, "DEADBEEFCAFE");
    assert_eq!(out.audio_ping_payload, Some(*b"ABCDEFGHIJKLMNOP"));
    assert_eq!(out.control_connect_data, 16);
    assert_eq!(out.video_format, video_format::H264);
    assert!(out.control_v2 && !out.video_encryption && !out.audio_encryption);
    assert!(out.host.hevc && !out.high_quality_audio);
    assert_eq!((out.opus.channels, out.audio_packet_duration_ms), (2, 5));
}

#[test]
fn wolf_like_host_defaults_and_audio_encryption() {
    let mut p = params(AppVersion::SUNSHINE, "rtsp://192.168.1.10:48010");
    p.stream.want_audio_encryption = true;
    p.stream.want_video_encryption = true;
    p.stream.supported_formats = video_format::H264 | video_format::H265;
    p.stream.audio_channels = 6;
    p.stream.audio_channel_mask = 0x3F;
    let hs = ClientHandshake::new(p).unwrap();
    let (reqs, out) = run(hs, |req| {
        let cseq = req.cseq().unwrap();
        match req.method.as_str() {
            "DESCRIBE" => {
                let mut r = ok(cseq);
                r.payload = DescribeParams::wolf(true, true).to_payload().into_bytes();
                r
            }
            "SETUP" => ok(cseq)
                .with_header("Session", "DEADBEEFCAFE;timeout = 90")
                .with_header("Transport", "unicast"),
            _ => ok(cseq),
        }
    })
    .unwrap();
    assert_eq!(
        (out.audio_port, out.video_port, out.control_port),
        (48000, 47998, 47999)
    );
    assert_eq!(
        (out.audio_ping_payload, out.control_connect_data),
        (None, 0)
    );
    assert_eq!(out.video_format, video_format::H265);
    // Wolf: no encryptionSupported ⇒ no V2 / video, but audio via featureFlags 0x20.
    assert!(!out.control_v2 && !out.video_encryption && out.audio_encryption);
    assert_eq!(out.encryption_enabled, 0);
    let cfg = StreamConfig::parse(&reqs[5].payload).unwrap();
    assert_eq!(
        (
            cfg.nv_feature_flags,
            cfg.bit_stream_format,
            cfg.audio_channels
        ),
        (167, 1, 6)
    );
    // Wolf offers no HQ layout ⇒ normal quality even at 20 Mbps.
    assert!(!out.high_quality_audio && !cfg.audio_high_quality);
    assert_eq!((out.opus.streams, out.opus.coupled_streams), (4, 2));
}

/// Responses exactly as Wolf (Oct 2024) serialises them: CRLF, options sorted by name, DESCRIBE
/// lines with its own GStreamer mappings and `featureFlags: 3` with a space.
#[test]
fn wolf_transcript() {
    let mut p = params(AppVersion::SUNSHINE, "rtsp://192.168.1.10:48010");
    p.stream.supported_formats = video_format::H264 | video_format::H265 | video_format::AV1_MAIN8;
    p.stream.audio_channels = 6;
    p.stream.audio_channel_mask = 0x3F;
    let mut hs = ClientHandshake::new(p).unwrap();
    let mut step = hs.start().unwrap();
    let mut cseq = 0;
    let mut sent = Vec::new();
    let out = loop {
        let bytes = match step {
            ClientStep::Send(bytes) => bytes,
            ClientStep::Done(out) => break out,
        };
        let req = RtspRequest::parse(&bytes).unwrap();
        // Wolf's grammar: CSeq must be the first header line.
        assert!(bytes
            .split(|&b| b == b'\n')
            .nth(1)
            .unwrap()
            .starts_with(b"CSeq: "));
        cseq += 1;
        let response = match (req.method.as_str(), req.target.as_str()) {
            ("DESCRIBE", _) => format!(
                "RTSP/1.0 200 OK\r\nCSeq: {cseq}\r\n\r\nsprop-parameter-sets=AAAAAU\r\na=a=rtpmap:98 AV1/90000\r\n\
                 a=fmtp:97 surround-params=21101\r\na=fmtp:97 surround-params=642014235\r\n\
                 a=fmtp:97 surround-params=85301423675\r\na=x-ss-general.featureFlags: 3\r\n"
            ),
            ("SETUP", t) => {
                let port = if t.contains("audio") { 48200 } else if t.contains("video") { 48100 } else { 47999 };
                format!(
                    "RTSP/1.0 200 OK\r\nCSeq: {cseq}\r\nSession: DEADBEEFCAFE;timeout = 90\r\nTransport: server_port={port}\r\n\r\n"
                )
            }
            _ => format!("RTSP/1.0 200 OK\r\nCSeq: {cseq}\r\n\r\n"),
        };
        sent.push(req);
        step = hs.receive(response.as_bytes()).unwrap();
    };
    assert_eq!(sent.len(), 7);
    assert_eq!(
        (out.audio_port, out.video_port, out.control_port),
        (48200, 48100, 47999)
    );
    assert_eq!(
        (
            out.audio_ping_payload,
            out.video_ping_payload,
            out.control_connect_data
        ),
        (None, None, 0)
    );
    assert_eq!(out.video_format, video_format::AV1_MAIN8);
    assert_eq!(out.host.feature_flags, 3);
    assert!(!out.control_v2 && !out.video_encryption && !out.audio_encryption);
    // Wolf's Vorbis-order 5.1 layout comes out right after the client fix-up.
    assert_eq!((out.opus.streams, out.opus.coupled_streams), (4, 2));
    assert_eq!(&out.opus.mapping[..6], &[0, 1, 4, 5, 2, 3]);
    assert!(!out.high_quality_audio);
    let sdp = String::from_utf8(sent[5].payload.clone()).unwrap();
    assert!(
        sdp.contains("a=x-nv-vqos[0].bitStreamFormat:2 \r\n")
            && sdp.ends_with("m=video 48100  \r\n")
    );
}

#[test]
fn low_quality_target_hack() {
    let mut p = params(AppVersion::SUNSHINE, "rtsp://192.168.1.10:48010");
    p.stream.bitrate_kbps = 10_000;
    let mut hs = ClientHandshake::new(p).unwrap();
    hs.start().unwrap();
    let req = hs.last_request().unwrap();
    assert_eq!(
        (req.target.as_str(), req.headers.get("Host")),
        ("rtsp://0.0.0.0:48010", Some("0.0.0.0"))
    );
    let mut p = params(AppVersion::SUNSHINE, "rtsp://192.168.1.10:4000");
    p.stream.remote = true;
    p.stream.audio_channels = 6;
    let mut hs = ClientHandshake::new(p).unwrap();
    hs.start().unwrap();
    assert_eq!(hs.last_request().unwrap().target, "rtsp://0.0.0.0:4000");
}

#[test]
fn older_generations_sequence() {
    let targets = |v: AppVersion| -> Vec<String> {
        let hs = ClientHandshake::new(params(v, "rtsp://192.168.1.10:48010")).unwrap();
        let (reqs, _) = run(hs, sunshine_host).unwrap();
        reqs.iter()
            .map(|r| format!("{} {}", r.method, r.target))
            .collect()
    };
    assert_eq!(
        targets(AppVersion::new(7, 1, 415, 0))[2..],
        [
            "SETUP streamid=audio/0/0",
            "SETUP streamid=video/0/0",
            "SETUP streamid=control/1/0",
            "ANNOUNCE streamid=video",
            "PLAY streamid=video",
            "PLAY streamid=audio",
        ]
    );
    assert_eq!(
        targets(AppVersion::new(4, 0, 0, 0))[2..],
        [
            "SETUP streamid=audio",
            "SETUP streamid=video",
            "ANNOUNCE streamid=video",
            "PLAY streamid=video",
            "PLAY streamid=audio"
        ]
    );
    // Transport is a single space before gen 6; client version 12 for gen 5.
    let mut hs = ClientHandshake::new(params(AppVersion::new(5, 0, 404, 0), "")).unwrap();
    hs.start().unwrap();
    assert_eq!(
        hs.last_request().unwrap().target,
        "rtsp://192.168.1.10:48010"
    );
    let (reqs, _) = run(
        ClientHandshake::new(params(AppVersion::new(5, 0, 404, 0), "")).unwrap(),
        sunshine_host,
    )
    .unwrap();
    assert_eq!(reqs[2].headers.get("X-GS-ClientVersion"), Some("12"));
    assert_eq!(reqs[2].headers.get("Transport"), Some(""));
    let mut hs = ClientHandshake::new(params(AppVersion::new(5, 0, 404, 0), "")).unwrap();
    hs.start().unwrap();
    hs.receive(&ok(1).to_bytes()).unwrap();
    let mut describe = ok(2);
    describe.payload = b"a=x\n".to_vec();
    let ClientStep::Send(setup) = hs.receive(&describe.to_bytes()).unwrap() else {
        panic!()
    };
    assert!(setup.windows(15).any(|w| w == b"\r\nTransport:  \r"));
}

#[test]
fn unsupported_and_errors() {
    assert!(matches!(
        ClientHandshake::new(params(
            AppVersion::new(7, 1, 402, 0),
            "rtsp://1.2.3.4:48010"
        )),
        Err(RtspError::Unsupported(_))
    ));
    let mut p = params(AppVersion::SUNSHINE, "rtspenc://1.2.3.4:48010");
    p.rikey = None;
    assert!(matches!(
        ClientHandshake::new(p),
        Err(RtspError::MissingKey)
    ));
    let hs = ClientHandshake::new(params(AppVersion::SUNSHINE, "rtsp://1.2.3.4:48010")).unwrap();
    let err = run(hs, |r| {
        if r.method == "ANNOUNCE" {
            RtspResponse::new(400)
        } else {
            sunshine_host(r)
        }
    })
    .unwrap_err();
    assert!(matches!(err, RtspError::Status { status: 400, ref method } if method == "ANNOUNCE"));
    let hs = ClientHandshake::new(params(AppVersion::SUNSHINE, "rtsp://1.2.3.4:48010")).unwrap();
    let err = run(hs, |r| {
        if r.method == "DESCRIBE" {
            ok(2)
        } else {
            sunshine_host(r)
        }
    })
    .unwrap_err();
    assert!(matches!(err, RtspError::EmptyDescribe));
    let hs = ClientHandshake::new(params(AppVersion::SUNSHINE, "rtsp://1.2.3.4:48010")).unwrap();
    let err = run(hs, |r| {
        if r.method == "SETUP" {
            ok(3).with_header("Session", ";x")
        } else {
            sunshine_host(r)
        }
    })
    .unwrap_err();
    assert!(matches!(err, RtspError::MissingSession));
    let mut hs =
        ClientHandshake::new(params(AppVersion::SUNSHINE, "rtsp://1.2.3.4:48010")).unwrap();
    hs.start().unwrap();
    assert!(matches!(hs.receive(b""), Err(RtspError::EmptyResponse)));
}

#[test]
fn encryption_negotiation_follows_moonlight() {
    let describe =
        |sup: u32, req: u32, version: AppVersion, want_v: bool, want_a: bool| -> RtspOutcome {
            let mut p = params(version, "rtsp://[fe80::1]:48010");
            p.stream.want_video_encryption = want_v;
            p.stream.want_audio_encryption = want_a;
            let hs = ClientHandshake::new(p).unwrap();
            let (reqs, out) = run(hs, |r| {
                if r.method == "DESCRIBE" {
                    let mut d = DescribeParams::sunshine(false, false);
                    d.encryption_supported = Some(sup);
                    d.encryption_requested = Some(req);
                    let mut resp = ok(2);
                    resp.payload = d.to_payload().into_bytes();
                    resp
                } else {
                    sunshine_host(r)
                }
            })
            .unwrap();
            assert_eq!(reqs[0].headers.get("Host"), Some("[fe80::1]"));
            out
        };
    // Sunshine "mandatory": requested 7 overrides the opt-out.
    let o = describe(7, 7, AppVersion::SUNSHINE, false, false);
    assert_eq!(o.encryption_enabled, 7);
    assert!(o.control_v2 && o.video_encryption && o.audio_encryption);
    assert_eq!(o.announce.packet_size, 1392);
    // Video wanted but unsupported: off even though requested (moonlight-common-c quirk);
    // audio requested and not opted out: on.
    let o = describe(1, 6, AppVersion::SUNSHINE, true, false);
    assert_eq!(o.encryption_enabled, 5);
    assert!(!o.video_encryption && o.audio_encryption);
    // Client opt-in for audio sets featureFlags 0x20 even if the host lacks the bit (Wolf).
    let o = describe(1, 0, AppVersion::SUNSHINE, false, true);
    assert!(o.audio_encryption && o.encryption_enabled == 1);
    // GFE-like host (no negative build): no Sunshine negotiation at all.
    let o = describe(7, 7, AppVersion::new(7, 1, 431, 0), true, false);
    assert_eq!(o.encryption_enabled, 0);
    assert!(!o.control_v2 && !o.video_encryption && !o.audio_encryption);
}
