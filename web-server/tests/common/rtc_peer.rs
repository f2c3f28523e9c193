//! A WebRTC test peer acting as the browser (str0m, sans-IO, driven by one thread on a UDP
//! socket bound to 127.0.0.1): it offers H.264 + Opus receive and the contract's input data
//! channels (§3.4), trickles its host candidate, collects depacketized video access units and
//! Opus packets, and writes input to the channels.

#![allow(dead_code)]

use std::collections::HashMap;
use std::net::{SocketAddr, UdpSocket};
use std::sync::mpsc as std_mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use str0m::change::{SdpAnswer, SdpOffer, SdpPendingOffer};
use str0m::channel::{ChannelConfig, ChannelId, Reliability};
use str0m::media::{Direction, KeyframeRequestKind, MediaKind, Mid};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event, IceConnectionState, Input, Output, Rtc};
use tokio::sync::mpsc;

/// The contract's channels: (label, ordered, unreliable).
pub const CHANNELS: [(&str, bool, bool); 7] = [
    ("keyboard", true, false),
    ("mouseClicks", false, false),
    ("mouseAbsolute", true, true),
    ("mouseRelative", false, false),
    ("touch", true, false),
    ("controllers", true, false),
    ("controller0", true, true),
];

/// What the peer saw.
#[derive(Debug)]
pub enum PeerEvent {
    /// ICE state.
    Ice(IceConnectionState),
    /// DTLS up, media may flow.
    Connected,
    /// A data channel opened.
    ChannelOpen(String),
    /// Data on a channel (label, binary, bytes).
    ChannelData(String, bool, Vec<u8>),
    /// One depacketized H.264 access unit (Annex B), whether it holds an IDR, and its RTP time
    /// in µs (the sender's clock, from an arbitrary start).
    Video(Vec<u8>, bool, u64),
    /// Video was lost before the next access unit (str0m's `contiguous` was false): a decoder
    /// cannot use the deltas that follow until a keyframe.
    VideoGap,
    /// One Opus packet.
    Audio(usize),
    /// The loop ended (error text, if any).
    Closed(Option<String>),
}

enum Command {
    Answer(String),
    RemoteCandidate(String),
    Send(String, Vec<u8>),
    PliOnGap,
    Close,
}

/// The peer: commands in, events out; the loop thread ends on `close` or drop.
pub struct RtcPeer {
    /// The offer (an offering peer) or the answer (an answering peer, [`RtcPeer::answer`]).
    pub offer: String,
    pub local_candidate: String,
    pub local_addr: SocketAddr,
    pub events: mpsc::UnboundedReceiver<PeerEvent>,
    commands: std_mpsc::Sender<Command>,
    thread: Option<JoinHandle<()>>,
}

/// Whether an Annex B access unit holds an IDR slice (NAL type 5).
pub fn has_idr(au: &[u8]) -> bool {
    let mut i = 0;
    while i + 3 < au.len() {
        if au[i] == 0 && au[i + 1] == 0 && au[i + 2] == 1 {
            if au[i + 3] & 0x1f == 5 {
                return true;
            }
            i += 3;
        } else {
            i += 1;
        }
    }
    false
}

/// A str0m peer receiving H.264 and Opus (the crypto provider installed once per process).
fn new_rtc() -> Rtc {
    static CRYPTO: std::sync::Once = std::sync::Once::new();
    CRYPTO.call_once(|| str0m::crypto::from_feature_flags().install_process_default());
    Rtc::builder()
        .clear_codecs()
        .enable_h264(true)
        .enable_opus(true, false)
        .build(Instant::now())
}

impl RtcPeer {
    /// Builds the offer; the loop starts at once (it waits for the answer).
    pub fn start() -> RtcPeer {
        let mut rtc = new_rtc();
        let socket = bind_udp().expect("bind UDP");
        let local_addr = socket.local_addr().unwrap();
        let cand = Candidate::host(local_addr, "udp").expect("host candidate");
        let local_candidate = cand.to_sdp_string();
        rtc.add_local_candidate(cand);
        let mut change = rtc.sdp_api();
        let video = change.add_media(MediaKind::Video, Direction::RecvOnly, None, None, None);
        let audio = change.add_media(MediaKind::Audio, Direction::RecvOnly, None, None, None);
        let mut channels = HashMap::new();
        for (label, ordered, unreliable) in CHANNELS {
            let id = change.add_channel_with_config(ChannelConfig {
                label: label.to_string(),
                ordered,
                reliability: if unreliable {
                    Reliability::MaxRetransmits { retransmits: 0 }
                } else {
                    Reliability::Reliable
                },
                ..Default::default()
            });
            channels.insert(id, label.to_string());
        }
        let (offer, pending) = change.apply().expect("an offer");
        let offer = offer.to_sdp_string();
        RtcPeer::run(offer, local_candidate, local_addr, move |events| Loop {
            rtc,
            socket,
            pending: Some(pending),
            video: Some(video),
            audio: Some(audio),
            channels,
            open: HashMap::new(),
            events,
            pli_on_gap: false,
        })
    }

    /// An answering peer (the server offered: contract §1.5 `join`); `offer` holds the answer.
    pub fn answer(remote_offer: &str) -> Result<RtcPeer, String> {
        let mut rtc = new_rtc();
        let socket = bind_udp().map_err(|e| e.to_string())?;
        let local_addr = socket.local_addr().map_err(|e| e.to_string())?;
        let cand = Candidate::host(local_addr, "udp").map_err(|e| e.to_string())?;
        let local_candidate = cand.to_sdp_string();
        rtc.add_local_candidate(cand);
        let offer = SdpOffer::from_sdp_string(remote_offer).map_err(|e| e.to_string())?;
        let answer = rtc
            .sdp_api()
            .accept_offer(offer)
            .map_err(|e| e.to_string())?
            .to_sdp_string();
        Ok(RtcPeer::run(
            answer,
            local_candidate,
            local_addr,
            move |events| Loop {
                rtc,
                socket,
                pending: None,
                video: None,
                audio: None,
                channels: HashMap::new(),
                open: HashMap::new(),
                events,
                pli_on_gap: false,
            },
        ))
    }

    /// Starts the peer's loop (built by `make` around its event sender) on a thread of its own.
    fn run(
        offer: String,
        local_candidate: String,
        local_addr: SocketAddr,
        make: impl FnOnce(mpsc::UnboundedSender<PeerEvent>) -> Loop + Send + 'static,
    ) -> RtcPeer {
        let (ev_tx, events) = mpsc::unbounded_channel();
        let (commands, cmd_rx) = std_mpsc::channel();
        let thread = std::thread::spawn(move || {
            let r = make(ev_tx.clone()).run(cmd_rx);
            let _ = ev_tx.send(PeerEvent::Closed(r.err()));
        });
        RtcPeer {
            offer,
            local_candidate,
            local_addr,
            events,
            commands,
            thread: Some(thread),
        }
    }

    /// The remote answer.
    pub fn accept_answer(&self, sdp: &str) {
        let _ = self.commands.send(Command::Answer(sdp.to_string()));
    }

    /// A trickled remote candidate (`candidate:…`).
    pub fn add_remote_candidate(&self, c: &str) {
        let _ = self.commands.send(Command::RemoteCandidate(c.to_string()));
    }

    /// Writes binary data to the channel `label` (once it is open).
    pub fn send(&self, label: &str, data: Vec<u8>) {
        let _ = self.commands.send(Command::Send(label.to_string(), data));
    }

    /// From now on a gap in the video asks the sender for a keyframe (an RTCP PLI), as a browser
    /// whose decoder lost its reference does.
    pub fn request_keyframes_on_gaps(&self) {
        let _ = self.commands.send(Command::PliOnGap);
    }

    /// Closes the peer (no more packets) and joins the loop thread.
    pub fn close(mut self) {
        let _ = self.commands.send(Command::Close);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for RtcPeer {
    fn drop(&mut self) {
        let _ = self.commands.send(Command::Close);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

struct Loop {
    rtc: Rtc,
    socket: UdpSocket,
    pending: Option<SdpPendingOffer>,
    video: Option<Mid>,
    audio: Option<Mid>,
    channels: HashMap<ChannelId, String>,
    open: HashMap<String, ChannelId>,
    events: mpsc::UnboundedSender<PeerEvent>,
    pli_on_gap: bool,
}

impl Loop {
    fn run(&mut self, commands: std_mpsc::Receiver<Command>) -> Result<(), String> {
        let mut buf = vec![0u8; 2000];
        let local = self.socket.local_addr().map_err(|e| e.to_string())?;
        loop {
            // Commands first (bounded by the 5 ms read timeout below).
            loop {
                match commands.try_recv() {
                    Ok(Command::Close) | Err(std_mpsc::TryRecvError::Disconnected) => {
                        self.rtc.disconnect();
                        return Ok(());
                    }
                    Ok(Command::Answer(sdp)) => {
                        let answer = SdpAnswer::from_sdp_string(&sdp)
                            .map_err(|e| format!("bad answer: {e}"))?;
                        let pending = self.pending.take().ok_or("answer without offer")?;
                        self.rtc
                            .sdp_api()
                            .accept_answer(pending, answer)
                            .map_err(|e| format!("answer refused: {e}"))?;
                    }
                    Ok(Command::RemoteCandidate(c)) => match Candidate::from_sdp_string(&c) {
                        Ok(c) => self.rtc.add_remote_candidate(c),
                        Err(e) => return Err(format!("bad remote candidate {c:?}: {e}")),
                    },
                    Ok(Command::Send(label, data)) => {
                        let id = *self.open.get(&label).ok_or(format!("{label} not open"))?;
                        let mut ch = self.rtc.channel(id).ok_or("channel gone")?;
                        ch.write(true, &data).map_err(|e| e.to_string())?;
                    }
                    Ok(Command::PliOnGap) => self.pli_on_gap = true,
                    Err(std_mpsc::TryRecvError::Empty) => break,
                }
            }
            let timeout = loop {
                match self.rtc.poll_output().map_err(|e| e.to_string())? {
                    Output::Timeout(t) => break t,
                    Output::Transmit(t) => {
                        let _ = self.socket.send_to(&t.contents, t.destination);
                    }
                    Output::Event(e) => self.event(e),
                }
            };
            let wait = timeout
                .saturating_duration_since(Instant::now())
                .clamp(Duration::from_millis(1), Duration::from_millis(5));
            self.socket
                .set_read_timeout(Some(wait))
                .map_err(|e| e.to_string())?;
            let input = match self.socket.recv_from(&mut buf) {
                Ok((n, source)) => Input::Receive(
                    Instant::now(),
                    Receive {
                        proto: Protocol::Udp,
                        source,
                        destination: local,
                        contents: buf[..n].try_into().map_err(|e| format!("{e:?}"))?,
                    },
                ),
                Err(_) => Input::Timeout(Instant::now()),
            };
            self.rtc.handle_input(input).map_err(|e| e.to_string())?;
        }
    }

    fn event(&mut self, e: Event) {
        let ev = match e {
            Event::IceConnectionStateChange(s) => PeerEvent::Ice(s),
            Event::Connected => PeerEvent::Connected,
            Event::ChannelOpen(id, label) => {
                self.open.insert(label.clone(), id);
                PeerEvent::ChannelOpen(label)
            }
            Event::ChannelData(d) => {
                let label = self.channels.get(&d.id).cloned().unwrap_or_else(|| {
                    self.open
                        .iter()
                        .find(|(_, id)| **id == d.id)
                        .map(|(l, _)| l.clone())
                        .unwrap_or_default()
                });
                PeerEvent::ChannelData(label, d.binary, d.data.to_vec())
            }
            Event::MediaAdded(m) => {
                match m.kind {
                    MediaKind::Video if self.video.is_none() => self.video = Some(m.mid),
                    MediaKind::Audio if self.audio.is_none() => self.audio = Some(m.mid),
                    _ => {}
                }
                return;
            }
            Event::MediaData(m) if Some(m.mid) == self.video => {
                let idr = has_idr(&m.data);
                if !m.contiguous {
                    let _ = self.events.send(PeerEvent::VideoGap);
                    if self.pli_on_gap && !idr {
                        if let Some(rx) = self.rtc.direct_api().stream_rx_by_mid(m.mid, None) {
                            rx.request_keyframe(KeyframeRequestKind::Pli);
                        }
                    }
                }
                PeerEvent::Video(m.data.to_vec(), idr, m.time.as_micros())
            }
            Event::MediaData(m) if Some(m.mid) == self.audio => PeerEvent::Audio(m.data.len()),
            _ => return,
        };
        let _ = self.events.send(ev);
    }
}

/// The peer's socket on loopback, with a browser-sized receive buffer: on a loaded 2-core machine
/// the peer can be off the CPU while a keyframe's burst arrives, and the default buffer would
/// drop part of it.
fn bind_udp() -> std::io::Result<UdpSocket> {
    let socket = UdpSocket::bind("127.0.0.1:0")?;
    let _ = socket2::SockRef::from(&socket).set_recv_buffer_size(4 << 20);
    Ok(socket)
}
