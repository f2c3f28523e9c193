//! The sans-IO peer core, driven without a network: a str0m `Rtc` in the test plays the browser,
//! datagrams are handed across in memory, and time is a simulated `Instant` that the test moves.
//! Each test feeds the core inputs and checks its outputs ([`PeerOut`]s and what the browser
//! received), so timers that take seconds in reality take no time here.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use str0m::change::{SdpAnswer, SdpPendingOffer};
use str0m::format::Codec;
use str0m::media::{Direction, Frequency, MediaKind, MediaTime, Mid};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event, Input, Output, Rtc, RtcConfig};
use wire::backpressure::QueueConfig;
use wire::browser::VideoCodec;
use wire::ipc::{
    ErrorCode, LocalSignal, PeerState, RemoteSignal, SdpType, SessionDescription, WebRtcSettings,
};

use super::core::{PeerCore, PeerEnd, PeerOut, StreamInfo};
use crate::webrtc::net::Candidates;

const DISCONNECT_TIMEOUT_MS: u32 = 3000;

fn server_addr() -> SocketAddr {
    "127.0.0.1:40000".parse().unwrap()
}

fn browser_addr() -> SocketAddr {
    "127.0.0.1:50000".parse().unwrap()
}

fn core(codec: VideoCodec) -> PeerCore {
    let settings = WebRtcSettings {
        bind_address: "127.0.0.1".into(),
        disconnect_timeout_ms: DISCONNECT_TIMEOUT_MS,
        ..WebRtcSettings::default()
    };
    let candidates = Candidates::new(server_addr(), &settings).unwrap();
    let info = StreamInfo {
        codec,
        audio: true,
        touch_supported: true,
    };
    PeerCore::new(candidates, &settings, info, QueueConfig::default())
}

/// The browser: a str0m peer whose datagrams go straight to the core.
struct Browser {
    rtc: Rtc,
    connected: bool,
    /// Video frames received: (keyframe, bytes).
    frames: Vec<(bool, Vec<u8>)>,
    channels: Vec<String>,
    channel_data: Vec<Vec<u8>>,
    /// The send-only microphone m-line of the offer.
    mic: Option<Mid>,
}

impl Browser {
    fn new(config: RtcConfig, now: Instant) -> Browser {
        let mut rtc = config.build(now);
        rtc.add_local_candidate(Candidate::host(browser_addr(), "udp").unwrap());
        Browser {
            rtc,
            connected: false,
            frames: Vec::new(),
            channels: Vec::new(),
            channel_data: Vec::new(),
            mic: None,
        }
    }

    /// The web client's offer: video and audio recv-only, the microphone's audio send-only (its
    /// track set later, without renegotiating) and the `controllers` channel.
    fn offer(&mut self) -> (String, SdpPendingOffer) {
        let mut api = self.rtc.sdp_api();
        api.add_media(MediaKind::Video, Direction::RecvOnly, None, None, None);
        api.add_media(MediaKind::Audio, Direction::RecvOnly, None, None, None);
        self.mic = Some(api.add_media(MediaKind::Audio, Direction::SendOnly, None, None, None));
        api.add_channel("controllers".into());
        let (offer, pending) = api.apply().unwrap();
        (offer.to_sdp_string(), pending)
    }

    /// Polls the browser until it waits; its datagrams go to the core if `deliver`.
    fn poll(&mut self, core: &mut PeerCore, now: Instant, deliver: bool) {
        loop {
            match self.rtc.poll_output().unwrap() {
                Output::Timeout(_) => return,
                Output::Transmit(t) => {
                    if deliver {
                        core.receive(now, browser_addr(), &t.contents);
                    }
                }
                Output::Event(Event::Connected) => self.connected = true,
                Output::Event(Event::MediaData(m)) if m.data.len() > 100 => {
                    let key = m.data.get(4).is_some_and(|b| b & 0x1f == 7);
                    self.frames.push((key, m.data.to_vec()));
                }
                Output::Event(Event::ChannelOpen(_, label)) => self.channels.push(label),
                Output::Event(Event::ChannelData(d)) => self.channel_data.push(d.data),
                Output::Event(_) => {}
            }
        }
    }
}

/// The core and the browser, negotiated, at a simulated instant.
struct Pair {
    core: PeerCore,
    browser: Browser,
    now: Instant,
}

impl Pair {
    /// The browser's offer answered by the core, nothing sent yet.
    fn negotiated() -> Pair {
        let now = Instant::now();
        let mut core = core(VideoCodec::H264);
        let mut browser = Browser::new(Rtc::builder(), now);
        negotiate(&mut core, &mut browser, now);
        Pair { core, browser, now }
    }

    /// Negotiated and then run until both sides are connected; the core's outputs so far.
    fn connected() -> (Pair, Vec<PeerOut>) {
        let mut pair = Pair::negotiated();
        pair.run(300, Duration::from_millis(10), true);
        assert!(pair.browser.connected, "the browser connected");
        let out = outs(&mut pair.core);
        assert!(states(&out).contains(&PeerState::Connected), "{out:?}");
        (pair, out)
    }

    /// Both peers for `steps` of `step` each. `deliver`: datagrams reach the other side (false:
    /// the browser vanished).
    fn run(&mut self, steps: u32, step: Duration, deliver: bool) {
        let Pair { core, browser, now } = self;
        for _ in 0..steps {
            *now += step;
            browser
                .rtc
                .handle_input(Input::Timeout(*now))
                .expect("browser timeout");
            core.drive(*now, true);
            while let Some((destination, data)) = core.poll_transmit() {
                assert_eq!(destination, browser_addr());
                if deliver {
                    let input = Input::Receive(
                        *now,
                        Receive {
                            proto: Protocol::Udp,
                            source: server_addr(),
                            destination,
                            contents: data.as_slice().try_into().unwrap(),
                        },
                    );
                    browser.rtc.handle_input(input).expect("browser input");
                }
            }
            browser.poll(core, *now, deliver);
            core.drive(*now, true);
        }
    }
}

fn outs(core: &mut PeerCore) -> Vec<PeerOut> {
    std::iter::from_fn(|| core.poll_out()).collect()
}

fn states(outs: &[PeerOut]) -> Vec<PeerState> {
    outs.iter()
        .filter_map(|o| match o {
            PeerOut::Signal(LocalSignal::State(s)) => Some(*s),
            _ => None,
        })
        .collect()
}

fn offer_signal(sdp: String) -> RemoteSignal {
    RemoteSignal::Description(SessionDescription {
        ty: SdpType::Offer,
        sdp,
    })
}

/// The core answers the browser's offer; the browser takes the answer.
fn negotiate(core: &mut PeerCore, browser: &mut Browser, now: Instant) -> Vec<PeerOut> {
    let (offer, pending) = browser.offer();
    core.signal(offer_signal(offer), now);
    core.drive(now, true);
    let out = outs(core);
    let Some(PeerOut::Signal(LocalSignal::Description(answer))) = out.first() else {
        panic!("no answer first: {out:?}");
    };
    assert_eq!(answer.ty, SdpType::Answer);
    let answer = SdpAnswer::from_sdp_string(&answer.sdp).unwrap();
    browser
        .rtc
        .sdp_api()
        .accept_answer(pending, answer)
        .unwrap();
    out
}

/// An H.264 access unit: SPS (constrained baseline), PPS, one IDR or non-IDR slice.
fn h264_au(keyframe: bool) -> Bytes {
    let mut au = Vec::new();
    if keyframe {
        au.extend_from_slice(&[0, 0, 0, 1, 0x67, 0x42, 0xe0, 0x1f, 0xda, 0x02, 0x80]);
        au.extend_from_slice(&[0, 0, 0, 1, 0x68, 0xce, 0x3c, 0x80]);
        au.extend_from_slice(&[0, 0, 0, 1, 0x65]);
    } else {
        au.extend_from_slice(&[0, 0, 0, 1, 0x41]);
    }
    au.resize(au.len() + 400, 0x5a);
    au.into()
}

#[test]
fn an_offer_is_answered_with_our_candidates_then_checking() {
    let now = Instant::now();
    let mut core = core(VideoCodec::H264);
    let mut browser = Browser::new(Rtc::builder(), now);
    let out = negotiate(&mut core, &mut browser, now);
    assert_eq!(out.len(), 3, "{out:?}");
    let (
        PeerOut::Signal(LocalSignal::Description(answer)),
        PeerOut::Signal(LocalSignal::Candidate(c)),
    ) = (&out[0], &out[1])
    else {
        panic!("{out:?}");
    };
    // The trickled copy names the answer's first m-line and ufrag.
    let attr = |name: &str| {
        let line = answer.sdp.lines().find_map(|l| l.strip_prefix(name));
        line.map(str::to_string)
    };
    assert!(c.candidate.contains("127.0.0.1 40000 typ host"), "{c:?}");
    assert_eq!(c.sdp_mid, attr("a=mid:"));
    assert_eq!(c.username_fragment, attr("a=ice-ufrag:"));
    assert!(c.sdp_mid.is_some() && c.username_fragment.is_some());
    assert_eq!(c.sdp_mline_index, Some(0));
    assert_eq!(states(&out), [PeerState::Checking]);
    // Nothing connects without traffic: the connect timeout is the next deadline at the latest.
    let deadline = core.deadline().expect("a deadline");
    assert!(deadline <= now + Duration::from_secs(30));
}

#[test]
fn an_offer_without_the_hosts_codec_ends_the_peer_once() {
    let now = Instant::now();
    let mut core = core(VideoCodec::Av1Main8);
    let config = Rtc::builder()
        .clear_codecs()
        .enable_h264(true)
        .enable_opus(true, false);
    let mut browser = Browser::new(config, now);
    let (offer, _pending) = browser.offer();
    core.signal(offer_signal(offer.clone()), now);
    core.drive(now, true);
    let out = outs(&mut core);
    assert!(
        matches!(&out[..], [PeerOut::End(PeerEnd::Error(ErrorCode::UnsupportedCodec, m))] if m.contains("Av1Main8")),
        "{out:?}"
    );
    // An ended peer says nothing more.
    core.signal(offer_signal(offer), now);
    core.drive(now, true);
    assert!(outs(&mut core).is_empty());
}

#[test]
fn bad_signaling_is_a_bad_signal_error() {
    let now = Instant::now();
    let answer = RemoteSignal::Description(SessionDescription {
        ty: SdpType::Answer,
        sdp: "v=0".into(),
    });
    let pranswer = RemoteSignal::Description(SessionDescription {
        ty: SdpType::Pranswer,
        sdp: "v=0".into(),
    });
    // The codec check passes, the SDP does not parse.
    let broken = offer_signal(
        "v=0\r\nm=video 9 UDP/TLS/RTP/SAVPF 102\r\na=rtpmap:102 H264/90000\r\n\
         a=fmtp:102 packetization-mode=1\r\n"
            .into(),
    );
    for (signal, expected) in [
        (answer, "an answer arrived but no offer is pending"),
        (pranswer, "SDP type Pranswer is not supported"),
        (broken, "unparsable offer: not valid SDP"),
    ] {
        let mut core = core(VideoCodec::H264);
        core.signal(signal, now);
        let out = outs(&mut core);
        assert!(
            matches!(&out[..], [PeerOut::End(PeerEnd::Error(ErrorCode::BadSignal, m))] if m == expected),
            "{expected}: {out:?}"
        );
    }
}

#[test]
fn create_offer_makes_a_sendonly_offer_with_a_mic_line_the_browser_can_answer() {
    let now = Instant::now();
    let mut core = core(VideoCodec::H264);
    core.signal(RemoteSignal::CreateOffer, now);
    core.drive(now, true);
    let out = outs(&mut core);
    let Some(PeerOut::Signal(LocalSignal::Description(offer))) = out.first() else {
        panic!("{out:?}");
    };
    assert_eq!(offer.ty, SdpType::Offer);
    assert!(offer.sdp.contains("a=sendonly"), "{}", offer.sdp);
    // The host's audio goes down, the browser's microphone comes up on an m-line of its own.
    let audio: Vec<&str> = offer
        .sdp
        .split("m=")
        .filter(|m| m.starts_with("audio"))
        .collect();
    assert_eq!(audio.len(), 2, "{}", offer.sdp);
    assert!(audio[0].contains("a=sendonly") && audio[1].contains("a=recvonly"));
    let mut browser = Browser::new(Rtc::builder(), now);
    let offer = str0m::change::SdpOffer::from_sdp_string(&offer.sdp).unwrap();
    let answer = browser.rtc.sdp_api().accept_offer(offer).unwrap();
    core.signal(
        RemoteSignal::Description(SessionDescription {
            ty: SdpType::Answer,
            sdp: answer.to_sdp_string(),
        }),
        now,
    );
    core.drive(now, true);
    assert!(
        !outs(&mut core).iter().any(|o| matches!(o, PeerOut::End(_))),
        "the answer is accepted"
    );
}

#[test]
fn media_waits_for_the_connection_and_a_keyframe() {
    let mut pair = Pair::negotiated();
    assert!(!pair.core.push_video(h264_au(true), true, 0, pair.now));
    assert!(!pair.core.push_audio(vec![1; 20].into(), 0, pair.now));
    assert_eq!(pair.core.frames_dropped(), 1, "video drops are counted");
}

#[test]
fn connects_then_sends_video_from_a_keyframe_and_rumble() {
    let (mut pair, out) = Pair::connected();
    assert!(
        out.iter()
            .any(|o| matches!(o, PeerOut::KeyframeRequest("peer connected"))),
        "{out:?}"
    );
    let channels = &pair.browser.channels;
    assert!(channels.iter().any(|l| l == "general"), "{channels:?}");
    let (core, now) = (&mut pair.core, pair.now);
    // A delta first: the peer waits for a keyframe.
    assert!(!core.push_video(h264_au(false), false, 1_000, now));
    assert_eq!(core.frames_dropped(), 1);
    assert!(core.push_video(h264_au(true), true, 17_000, now));
    assert!(core.push_video(h264_au(false), false, 33_000, now));
    assert!(core.push_audio(vec![1; 20].into(), 17_000, now));
    pair.run(50, Duration::from_millis(10), true);
    let frames = &pair.browser.frames;
    assert_eq!(frames.len(), 2, "{frames:?}");
    assert!(frames[0].0 && !frames[1].0, "the keyframe first");
    assert!(pair.core.rumble(0, 0x1000, 0x2000));
    assert!(!pair.core.rumble(300, 1, 1), "no browser pad 300");
    pair.run(20, Duration::from_millis(10), true);
    let data = &pair.browser.channel_data;
    assert!(
        data.iter().any(|d| d.len() > 1),
        "rumble on `controllers`: {data:?}"
    );
}

#[test]
fn a_silent_browser_is_disconnected_then_gone() {
    let (mut pair, _) = Pair::connected();
    // The browser vanishes: nothing arrives any more.
    pair.run(60, Duration::from_millis(100), false);
    let out = outs(&mut pair.core);
    assert_eq!(
        states(&out),
        [PeerState::Disconnected],
        "disconnected after the silence, not yet gone: {out:?}"
    );
    pair.run(40, Duration::from_millis(100), false);
    let out = outs(&mut pair.core);
    assert_eq!(states(&out), [PeerState::Failed], "{out:?}");
    let gone = format!("the peer stayed disconnected for {DISCONNECT_TIMEOUT_MS} ms");
    assert!(
        matches!(out.last(), Some(PeerOut::End(PeerEnd::Gone(m))) if *m == gone),
        "{out:?}"
    );
}

#[test]
fn no_connection_within_the_connect_timeout_is_gone() {
    let Pair { mut core, now, .. } = Pair::negotiated();
    core.drive(now + Duration::from_secs(29), true);
    assert!(outs(&mut core).is_empty());
    core.drive(now + Duration::from_secs(30), true);
    let out = outs(&mut core);
    assert_eq!(states(&out), [PeerState::Failed], "{out:?}");
    assert!(
        matches!(out.last(), Some(PeerOut::End(PeerEnd::Gone(m))) if m == "ICE failed: no connection within 30 s"),
        "{out:?}"
    );
}

#[test]
fn the_browsers_microphone_track_becomes_mic_packets_with_their_sample_counts() {
    let (mut pair, _) = Pair::connected();
    let mid = pair.browser.mic.expect("a microphone m-line");
    // CELT 20 ms, SILK 40 ms, a code-3 packet without its frame count (dropped), two CELT 2.5 ms
    // frames.
    let packets: [&[u8]; 4] = [&[0xfc, 1, 2, 3], &[0x10, 4, 5], &[0xfb], &[0xe1, 7, 7]];
    for (i, packet) in (0u64..).zip(packets) {
        let now = pair.now;
        let writer = pair
            .browser
            .rtc
            .writer(mid)
            .expect("the microphone's writer");
        let pt = writer
            .payload_params()
            .find(|p| p.spec().codec == Codec::Opus)
            .expect("Opus negotiated")
            .pt();
        let time = MediaTime::new(i * 960, Frequency::FORTY_EIGHT_KHZ);
        writer.write(pt, now, time, packet.to_vec()).unwrap();
        pair.run(2, Duration::from_millis(10), true);
    }
    let mic: Vec<(Vec<u8>, u32)> = outs(&mut pair.core)
        .into_iter()
        .filter_map(|o| match o {
            PeerOut::Mic(opus, samples) => Some((opus, samples)),
            _ => None,
        })
        .collect();
    assert_eq!(
        mic,
        [
            (vec![0xfc, 1, 2, 3], 960),
            (vec![0x10, 4, 5], 1920),
            (vec![0xe1, 7, 7], 240)
        ]
    );
}
