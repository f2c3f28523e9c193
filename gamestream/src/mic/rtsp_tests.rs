//! The microphone in the RTSP handshake, both halves: a client that asks for it sets it up only
//! when DESCRIBE offers it (and survives a refusal), and a host answers SETUP only when it offered.

use std::net::SocketAddr;

use crate::rtsp::describe::{encryption, DescribeParams};
use crate::rtsp::sdp::StreamConfig;
use crate::rtsp::server::{respond, RtspHandler, RtspSessionInfo};
use crate::rtsp::{
    ClientHandshake, ClientParams, ClientStep, RtspOutcome, RtspRequest, RtspResponse,
    StreamSettings,
};
use crate::AppVersion;

use super::ENCRYPTION_MIC;

fn describe(mic: bool) -> DescribeParams {
    let mut d = DescribeParams::sunshine(false, false);
    if mic {
        d.mic_port = Some(48012);
        d.encryption_supported = d.encryption_supported.map(|s| s | ENCRYPTION_MIC);
    }
    d
}

fn session(mic: bool) -> RtspSessionInfo {
    RtspSessionInfo {
        id: 1,
        rikey: [7; 16],
        encrypted: false,
        describe: describe(mic),
        audio_port: 48200,
        video_port: 48100,
        control_port: 47990,
        ping_payload: Some("ABCDEFGHIJKLMNOP".into()),
        connect_data: Some(16),
    }
}

struct Host;

impl RtspHandler for Host {
    fn sessions(&self, _peer: SocketAddr, _local: SocketAddr) -> Vec<RtspSessionInfo> {
        Vec::new()
    }
    fn on_announce(&self, _session: u64, _config: StreamConfig) -> Result<(), u16> {
        Ok(())
    }
    fn on_play(&self, _session: u64) {}
}

/// Runs the client against the real host-side `respond` (`refuse_mic`: a host that 404s it).
fn handshake(offer: bool, ask: bool, refuse_mic: bool) -> (Vec<RtspRequest>, RtspOutcome) {
    let params = ClientParams {
        app_version: AppVersion::SUNSHINE,
        session_url: String::new(),
        rikey: Some([7; 16]),
        host_addr: "127.0.0.1".parse().unwrap(),
        stream: StreamSettings {
            microphone: ask,
            ..StreamSettings::default()
        },
    };
    let mut hs = ClientHandshake::new(params).unwrap();
    let host = session(offer && !refuse_mic);
    let mut offered = host.clone();
    offered.describe = describe(offer);
    let mut seen = Vec::new();
    let mut step = hs.start().unwrap();
    loop {
        match step {
            ClientStep::Done(o) => return (seen, *o),
            ClientStep::Send(bytes) => {
                let req = RtspRequest::parse(&bytes).unwrap();
                let s = if req.method == "DESCRIBE" {
                    &offered
                } else {
                    &host
                };
                let resp: RtspResponse = respond(&Host, s, &req);
                seen.push(req);
                step = hs.receive(&resp.to_bytes()).unwrap();
            }
        }
    }
}

fn targets(seen: &[RtspRequest]) -> Vec<String> {
    seen.iter()
        .map(|r| format!("{} {}", r.method, r.target))
        .collect()
}

fn announced_encryption(seen: &[RtspRequest]) -> u32 {
    let announce = seen.iter().find(|r| r.method == "ANNOUNCE").unwrap();
    StreamConfig::parse(&announce.payload)
        .unwrap()
        .encryption_enabled
}

#[test]
fn offered_and_asked_the_mic_is_set_up_before_announce_and_encrypted() {
    let (seen, outcome) = handshake(true, true, false);
    let t = targets(&seen);
    let at = t
        .iter()
        .position(|t| t == "SETUP streamid=mic/0/0")
        .unwrap();
    assert_eq!(t[at - 1], "SETUP streamid=control/13/0");
    assert_eq!(t[at + 1], "ANNOUNCE streamid=control/13/0");
    assert_eq!(outcome.mic_port, Some(48012));
    assert!(outcome.mic_encryption);
    assert_eq!(
        announced_encryption(&seen),
        encryption::CONTROL_V2 | ENCRYPTION_MIC
    );
}

#[test]
fn not_offered_or_not_asked_nothing_is_set_up() {
    for (offer, ask) in [(false, true), (true, false), (false, false)] {
        let (seen, outcome) = handshake(offer, ask, false);
        assert!(
            !targets(&seen).iter().any(|t| t.contains("mic")),
            "offer {offer} ask {ask}"
        );
        assert_eq!((outcome.mic_port, outcome.mic_encryption), (None, false));
        assert_eq!(announced_encryption(&seen) & ENCRYPTION_MIC, 0);
    }
}

#[test]
fn a_refused_mic_setup_leaves_the_stream_standing() {
    let (seen, outcome) = handshake(true, true, true);
    assert!(targets(&seen).contains(&"SETUP streamid=mic/0/0".to_string()));
    assert_eq!((outcome.mic_port, outcome.mic_encryption), (None, false));
    assert!(targets(&seen).contains(&"PLAY /".to_string()));
}

#[test]
fn host_answers_mic_setup_only_when_offered() {
    let req = RtspRequest::new("SETUP", "streamid=mic/0/0").with_header("CSeq", "5");
    let r = respond(&Host, &session(true), &req);
    assert_eq!(
        r.to_bytes(),
        b"RTSP/1.0 200 OK\r\nCSeq: 5\r\nSession: DEADBEEFCAFE;timeout = 90\r\nTransport: server_port=48012\r\nX-SS-Ping-Payload: ABCDEFGHIJKLMNOP\r\n\r\n"
    );
    assert_eq!(respond(&Host, &session(false), &req).status, 404);
    let legacy = RtspRequest::new("SETUP", "streamid=mic").with_header("CSeq", "6");
    assert_eq!(respond(&Host, &session(true), &legacy).status, 200);
}
