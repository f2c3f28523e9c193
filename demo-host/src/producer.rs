//! Producers: what a session or a lobby shows. A session's producer owns its [`StreamHandle`] and
//! sends either its own picture and tone or, while the session is in a lobby, the lobby's encoded
//! frames (fan-out: one encoder per lobby and stream format, shared by every member with that
//! format). Switching feeds never restarts the RTP stream: frame indices and timestamps go on.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use gamestream::control::HostMessage;
use gamestream::host::{StreamEvent, StreamHandle};
use gamestream::input::InputEvent;
use gamestream::video::{FrameInfo, FrameType};
use tokio::sync::{broadcast, mpsc, oneshot};

use crate::media::{
    self, AudioFormat, AudioSource, EncodedFrame, MediaError, PatternStyle, SourceKind, VideoCodec,
    VideoFormat, VideoSource,
};

/// Where producers get their media: the real media layer, or a stand-in in tests.
pub trait MediaFactory: Send + Sync + 'static {
    /// A video source drawing `style`.
    fn open_video(
        &self,
        kind: SourceKind,
        format: VideoFormat,
        style: PatternStyle,
    ) -> Result<Box<dyn VideoSource>, MediaError>;
    /// An audio tone.
    fn open_audio(
        &self,
        format: AudioFormat,
        tone_hz: f32,
    ) -> Result<Box<dyn AudioSource>, MediaError>;
    /// A video source for a Wolf-strict stream ([`crate::DemoHostConfig::wolf_strict`]): its
    /// H.264 in High profile, as Wolf's encoders write it. Stand-ins without an encoder need not
    /// care: the default opens [`MediaFactory::open_video`].
    fn open_video_high_profile(
        &self,
        kind: SourceKind,
        format: VideoFormat,
        style: PatternStyle,
    ) -> Result<Box<dyn VideoSource>, MediaError> {
        self.open_video(kind, format, style)
    }
    /// Stamps the send time into a frame (latency measurement).
    fn stamp_send_time(&self, codec: VideoCodec, data: &[u8], send_time_us: u64) -> Vec<u8> {
        media::stamp_send_time(codec, data, send_time_us)
    }
}

/// [`MediaFactory`] of the real media layer ([`crate::media`]), with its encoder options.
#[derive(Debug, Clone, Copy, Default)]
pub struct RealMedia(pub media::VideoOptions);

impl RealMedia {
    /// Every frame padded to the requested bitrate: the volume a CBR host sends (the test pattern
    /// alone compresses to a small fraction of it). For tests and benches of memory under load
    /// and of links that cannot carry a stream: they need the bytes, not the picture.
    pub fn padded() -> Self {
        Self(media::VideoOptions {
            fill_to_bitrate: true,
        })
    }
}

impl MediaFactory for RealMedia {
    fn open_video(
        &self,
        kind: SourceKind,
        format: VideoFormat,
        style: PatternStyle,
    ) -> Result<Box<dyn VideoSource>, MediaError> {
        media::open_video_with(kind, format, style, self.0)
    }
    fn open_video_high_profile(
        &self,
        kind: SourceKind,
        format: VideoFormat,
        style: PatternStyle,
    ) -> Result<Box<dyn VideoSource>, MediaError> {
        media::open_video_profiled(kind, format, style, self.0, media::H264Profile::High)
    }
    fn open_audio(
        &self,
        format: AudioFormat,
        tone_hz: f32,
    ) -> Result<Box<dyn AudioSource>, MediaError> {
        media::open_audio(format, tone_hz)
    }
}

/// What identifies a producer's output: label, colour and tone.
#[derive(Debug, Clone)]
pub(crate) struct Look {
    pub(crate) style: PatternStyle,
    pub(crate) tone_hz: f32,
}

impl Look {
    /// The `n`-th producer's look: hues spread by the golden angle, tones spread over 300-1200 Hz.
    pub(crate) fn nth(n: u64, label: String) -> Look {
        let hue = (n as f64 * 137.508) % 360.0;
        let (r, g, b) = hsv_to_rgb(hue, 0.8, 0.9);
        Look {
            style: PatternStyle {
                label,
                color: [r, g, b],
            },
            tone_hz: 300.0 + ((n * 37) % 900) as f32,
        }
    }
}

fn hsv_to_rgb(h: f64, s: f64, v: f64) -> (u8, u8, u8) {
    let c = v * s;
    let x = c * (1.0 - ((h / 60.0) % 2.0 - 1.0).abs());
    let m = v - c;
    let (r, g, b) = match (h / 60.0) as u32 {
        0 => (c, x, 0.0),
        1 => (x, c, 0.0),
        2 => (0.0, c, x),
        3 => (0.0, x, c),
        4 => (x, 0.0, c),
        _ => (c, 0.0, x),
    };
    let to = |f: f64| ((f + m) * 255.0).round().clamp(0.0, 255.0) as u8;
    (to(r), to(g), to(b))
}

/// The video format a client announced.
pub(crate) fn video_format_of(handle: &StreamHandle) -> VideoFormat {
    let c = &handle.config;
    VideoFormat {
        codec: match c.bit_stream_format {
            1 => VideoCodec::Hevc,
            2 => VideoCodec::Av1,
            _ => VideoCodec::H264,
        },
        width: c.width,
        height: c.height,
        fps: c.fps.max(1),
        bitrate_kbps: c.bitrate_kbps,
    }
}

/// Opens the video a producer sends: High-profile H.264 in Wolf-strict mode.
fn open_video(
    media: &dyn MediaFactory,
    kind: SourceKind,
    wolf_strict: bool,
    format: VideoFormat,
    style: PatternStyle,
) -> Result<Box<dyn VideoSource>, MediaError> {
    if wolf_strict {
        media.open_video_high_profile(kind, format, style)
    } else {
        media.open_video(kind, format, style)
    }
}

/// The audio format a client announced.
pub(crate) fn audio_format_of(handle: &StreamHandle) -> AudioFormat {
    AudioFormat {
        channels: handle.config.audio_channels.clamp(1, 8) as u8,
        packet_duration_ms: handle.config.audio_packet_duration_ms.max(1),
    }
}

/// Encodes off the async threads (a live encode takes milliseconds).
async fn next_frame(
    source: Box<dyn VideoSource>,
    keyframe: bool,
) -> (
    Option<Box<dyn VideoSource>>,
    Result<EncodedFrame, MediaError>,
) {
    let mut source = source;
    match tokio::task::spawn_blocking(move || {
        let r = source.next_frame(keyframe);
        (source, r)
    })
    .await
    {
        Ok((source, r)) => (Some(source), r),
        Err(e) => (
            None,
            Err(MediaError::Codec(format!("encoder task failed: {e}"))),
        ),
    }
}

/// Commands to a lobby's producer task.
pub(crate) enum LobbyCmd {
    /// A member with this format wants the feed.
    Subscribe {
        video: VideoFormat,
        audio: AudioFormat,
        reply: oneshot::Sender<Result<LobbyFeed, MediaError>>,
    },
    /// A member of this format asked for a keyframe.
    Keyframe(VideoFormat),
}

/// What a lobby member receives.
pub(crate) struct LobbyFeed {
    video: broadcast::Receiver<Arc<EncodedFrame>>,
    audio: broadcast::Receiver<Arc<Vec<u8>>>,
}

struct VideoFeed {
    format: VideoFormat,
    source: Option<Box<dyn VideoSource>>,
    tx: broadcast::Sender<Arc<EncodedFrame>>,
    interval: Duration,
    next: tokio::time::Instant,
    keyframe: bool,
}

struct AudioFeed {
    format: AudioFormat,
    source: Box<dyn AudioSource>,
    tx: broadcast::Sender<Arc<Vec<u8>>>,
    interval: Duration,
    next: tokio::time::Instant,
}

/// A lobby's producer: one source per requested format, each driven at its own rate, fanned out
/// to members. Ends when its owner aborts it (lobby stopped) or every command sender is gone;
/// members then see their feed close and switch back to their own.
pub(crate) async fn run_lobby(
    media: Arc<dyn MediaFactory>,
    kind: SourceKind,
    wolf_strict: bool,
    look: Look,
    mut cmds: mpsc::UnboundedReceiver<LobbyCmd>,
) {
    let mut video: Vec<VideoFeed> = Vec::new();
    let mut audio: Vec<AudioFeed> = Vec::new();
    loop {
        let due = video
            .iter()
            .map(|f| f.next)
            .chain(audio.iter().map(|f| f.next))
            .min()
            .unwrap_or_else(|| tokio::time::Instant::now() + Duration::from_secs(3600));
        tokio::select! {
            cmd = cmds.recv() => match cmd {
                None => return,
                Some(LobbyCmd::Keyframe(format)) => {
                    if let Some(f) = video.iter_mut().find(|f| f.format == format) {
                        f.keyframe = true;
                    }
                }
                Some(LobbyCmd::Subscribe { video: vf, audio: af, reply }) => {
                    let source = (kind, wolf_strict);
                    let result = subscribe(&media, source, &look, &mut video, &mut audio, vf, af);
                    let _ = reply.send(result);
                }
            },
            _ = tokio::time::sleep_until(due) => {
                let now = tokio::time::Instant::now();
                for feed in video.iter_mut().filter(|f| f.next <= now) {
                    feed.next = (feed.next + feed.interval).max(now);
                    let Some(source) = feed.source.take() else { continue };
                    let (source, frame) = next_frame(source, std::mem::take(&mut feed.keyframe)).await;
                    feed.source = source;
                    match frame {
                        Ok(frame) => { let _ = feed.tx.send(Arc::new(frame)); }
                        Err(e) => tracing::warn!("lobby video source: {e}"),
                    }
                }
                for feed in audio.iter_mut().filter(|f| f.next <= now) {
                    feed.next = (feed.next + feed.interval).max(now);
                    match feed.source.next_packet() {
                        Ok(p) => { let _ = feed.tx.send(Arc::new(p)); }
                        Err(e) => tracing::warn!("lobby audio source: {e}"),
                    }
                }
                // Formats nobody watches any more stop encoding.
                video.retain(|f| f.tx.receiver_count() > 0);
                audio.retain(|f| f.tx.receiver_count() > 0);
            }
        }
    }
}

fn subscribe(
    media: &Arc<dyn MediaFactory>,
    (kind, wolf_strict): (SourceKind, bool),
    look: &Look,
    video: &mut Vec<VideoFeed>,
    audio: &mut Vec<AudioFeed>,
    vf: VideoFormat,
    af: AudioFormat,
) -> Result<LobbyFeed, MediaError> {
    let now = tokio::time::Instant::now();
    let video_rx = match video.iter_mut().find(|f| f.format == vf) {
        Some(feed) => {
            feed.keyframe = true; // the new member starts on a keyframe
            feed.tx.subscribe()
        }
        None => {
            let source = open_video(media.as_ref(), kind, wolf_strict, vf, look.style.clone())?;
            let (tx, rx) = broadcast::channel(64);
            video.push(VideoFeed {
                format: vf,
                source: Some(source),
                tx,
                interval: Duration::from_secs_f64(1.0 / f64::from(vf.fps.max(1))),
                next: now,
                keyframe: true,
            });
            rx
        }
    };
    let audio_rx = match audio.iter().find(|f| f.format == af) {
        Some(feed) => feed.tx.subscribe(),
        None => {
            let source = media.open_audio(af, look.tone_hz)?;
            let (tx, rx) = broadcast::channel(256);
            audio.push(AudioFeed {
                format: af,
                source,
                tx,
                interval: Duration::from_millis(u64::from(af.packet_duration_ms.max(1))),
                next: now,
            });
            rx
        }
    };
    Ok(LobbyFeed {
        video: video_rx,
        audio: audio_rx,
    })
}

/// Commands to a session's producer.
pub(crate) enum FeedCmd {
    /// Show this lobby.
    Join(mpsc::UnboundedSender<LobbyCmd>),
    /// Back to the session's own picture.
    Leave,
}

/// Where decoded input goes.
pub(crate) trait InputRecorder: Send + Sync + 'static {
    fn record(&self, session_id: u64, event: InputEvent);
}

/// Everything a session producer needs.
pub(crate) struct SessionProducer {
    pub(crate) media: Arc<dyn MediaFactory>,
    pub(crate) kind: SourceKind,
    /// Wolf-strict mode: High profile, lowered bitrate, RTP timestamp 0, frames padded.
    pub(crate) wolf_strict: bool,
    pub(crate) look: Look,
    pub(crate) cmds: mpsc::UnboundedReceiver<FeedCmd>,
    pub(crate) inputs: Arc<dyn InputRecorder>,
    /// Called once if the session's own media cannot be opened (the host stops the session).
    pub(crate) on_media_error: Box<dyn FnOnce(MediaError) + Send>,
    /// Sends a control message (rumble) to the session's client.
    pub(crate) control: Box<dyn Fn(HostMessage) + Send>,
    /// Told the bitrate a live change put in force ([`StreamEvent::Bitrate`]).
    pub(crate) on_bitrate: Box<dyn Fn(u32) + Send>,
}

/// The test app's "game": the triggers drive the rumble motors (left → low-frequency motor, right
/// → high-frequency motor), as a racing game makes the pad shake under the throttle. It lets a
/// client see rumble come back for its own input. One message per change of a pad's triggers.
#[derive(Debug, Default)]
pub(crate) struct TriggerRumble {
    last: HashMap<u16, (u8, u8)>,
}

impl TriggerRumble {
    /// The rumble message `event` calls for, if any.
    pub(crate) fn on_input(&mut self, event: &InputEvent) -> Option<HostMessage> {
        let InputEvent::MultiController(s) = event else {
            return None;
        };
        let triggers = (s.left_trigger, s.right_trigger);
        let previous = self.last.insert(s.controller_number, triggers);
        if previous.unwrap_or((0, 0)) == triggers {
            return None;
        }
        Some(HostMessage::Rumble {
            controller: s.controller_number,
            low_freq: u16::from(s.left_trigger) * 257,
            high_freq: u16::from(s.right_trigger) * 257,
        })
    }
}

enum Feed {
    Own,
    Lobby {
        lobby: mpsc::UnboundedSender<LobbyCmd>,
        feed: LobbyFeed,
        waiting_for_keyframe: bool,
    },
}

fn now_unix_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

struct Sender {
    codec: VideoCodec,
    started: Instant,
    frame_index: u32,
    /// Wolf-strict: RTP timestamp 0, frames padded to Wolf's size.
    wolf_strict: bool,
}

impl Sender {
    async fn video(
        &mut self,
        handle: &mut StreamHandle,
        media: &dyn MediaFactory,
        frame: &EncodedFrame,
    ) {
        self.frame_index = self.frame_index.wrapping_add(1);
        let mut data = media.stamp_send_time(self.codec, &frame.data, now_unix_us());
        if self.wolf_strict {
            crate::strict::pad_like_wolf(self.codec, &mut data);
        }
        let info = FrameInfo {
            frame_index: self.frame_index,
            frame_type: if frame.keyframe {
                FrameType::Idr
            } else {
                FrameType::P
            },
            // Wolf's payloader leaves every video timestamp at 0.
            rtp_timestamp: if self.wolf_strict {
                0
            } else {
                (self.started.elapsed().as_micros() as u64 * 90 / 1000) as u32
            },
            processing_latency: 0,
        };
        if let Err(e) = handle.video.send_frame(&data, info).await {
            tracing::debug!(session = handle.session_id, "video send: {e}");
        }
    }
}

/// Drives one stream until it ends; returns the handle so that its owner decides when the media
/// sockets are freed (slowed teardown).
pub(crate) async fn run_session(mut handle: StreamHandle, p: SessionProducer) -> StreamHandle {
    let SessionProducer {
        media,
        kind,
        wolf_strict,
        look,
        mut cmds,
        inputs,
        on_media_error,
        control,
        on_bitrate,
    } = p;
    let mut rumble = TriggerRumble::default();
    let mut vf = video_format_of(&handle);
    if wolf_strict {
        vf.bitrate_kbps = crate::strict::wolf_bitrate_kbps(vf.bitrate_kbps);
    }
    let af = audio_format_of(&handle);
    let own = open_video(media.as_ref(), kind, wolf_strict, vf, look.style.clone())
        .and_then(|v| media.open_audio(af, look.tone_hz).map(|a| (v, a)));
    let (mut own_video, mut own_audio) = match own {
        Ok((v, a)) => (Some(v), a),
        Err(e) => {
            tracing::error!(session = handle.session_id, "cannot open media: {e}");
            on_media_error(e);
            // Keep the handle until the host ends the stream.
            while let Some(ev) = handle.events.recv().await {
                if matches!(ev, StreamEvent::Ended(_)) {
                    break;
                }
            }
            return handle;
        }
    };
    // The client's first pings tell where to send. The stream may end meanwhile (a client that
    // stops right after it started, before pinging): that end is seen here, not after the wait,
    // so the session's teardown (and the 503 its client gets for a relaunch) stays short.
    let wait = Duration::from_secs(5);
    let session_id = handle.session_id;
    let pinged = async {
        handle.video.wait_for_client(wait).await.is_ok()
            && handle.audio.wait_for_client(wait).await.is_some()
    };
    let ended = async {
        while let Some(ev) = handle.events.recv().await {
            match ev {
                StreamEvent::Ended(_) => return,
                StreamEvent::Input(e) => inputs.record(session_id, e),
                _ => {}
            }
        }
    };
    tokio::select! {
        pinged = pinged => if !pinged {
            tracing::warn!(session = session_id, "no ping from the client");
        },
        () = ended => return handle,
    }

    let mut sender = Sender {
        codec: vf.codec,
        started: Instant::now(),
        frame_index: 0,
        wolf_strict,
    };
    let mut feed = Feed::Own;
    let mut want_keyframe = true;
    // A live bitrate change, applied to the encoder before its next frame.
    let mut new_bitrate: Option<u32> = None;
    let mut cmds_open = true;
    let mut video_tick =
        tokio::time::interval(Duration::from_secs_f64(1.0 / f64::from(vf.fps.max(1))));
    video_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut audio_tick =
        tokio::time::interval(Duration::from_millis(u64::from(af.packet_duration_ms)));
    // A late audio tick (a busy machine) is caught up at once, so the host still sends 1 s of
    // audio per second.
    audio_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    // The frame being encoded on a blocking thread. The loop keeps serving audio, input and
    // commands meanwhile: awaiting the encode inline held it for a 1080p encode time (several
    // audio periods) per frame, and up to 70 % of the audio packets were never sent. A video
    // tick that finds an encode still running is skipped (a dropped frame, as Wolf drops them).
    let mut encoding: Option<Encoding> = None;

    loop {
        let own_feed = matches!(feed, Feed::Own);
        tokio::select! {
            event = handle.events.recv() => match event {
                Some(StreamEvent::Input(e)) => {
                    if let Some(msg) = rumble.on_input(&e) {
                        control(msg);
                    }
                    inputs.record(handle.session_id, e);
                }
                Some(StreamEvent::KeyframeRequested) => match &feed {
                    Feed::Own => want_keyframe = true,
                    Feed::Lobby { lobby, .. } => { let _ = lobby.send(LobbyCmd::Keyframe(vf)); }
                },
                Some(StreamEvent::Bitrate(kbps)) => {
                    tracing::info!(session = handle.session_id, kbps, "live bitrate change");
                    vf.bitrate_kbps = kbps;
                    new_bitrate = Some(kbps);
                    on_bitrate(kbps);
                }
                Some(StreamEvent::Ended(_)) | None => return handle,
                Some(_) => {}
            },
            cmd = cmds.recv(), if cmds_open => match cmd {
                None => cmds_open = false,
                Some(FeedCmd::Leave) => {
                    feed = Feed::Own;
                    want_keyframe = true;
                }
                Some(FeedCmd::Join(lobby)) => {
                    let (reply, rx) = oneshot::channel();
                    let _ = lobby.send(LobbyCmd::Subscribe { video: vf, audio: af, reply });
                    match rx.await {
                        Ok(Ok(f)) => feed = Feed::Lobby { lobby, feed: f, waiting_for_keyframe: true },
                        Ok(Err(e)) => tracing::warn!(session = handle.session_id, "lobby feed: {e}"),
                        Err(_) => tracing::warn!(session = handle.session_id, "lobby gone before joining"),
                    }
                }
            },
            _ = video_tick.tick(), if own_feed && encoding.is_none() => {
                if let Some(mut source) = own_video.take() {
                    let keyframe = std::mem::take(&mut want_keyframe);
                    let bitrate = new_bitrate.take();
                    encoding = Some(tokio::task::spawn_blocking(move || {
                        if let Some(kbps) = bitrate {
                            match source.set_bitrate(kbps) {
                                Ok(true) => {}
                                Ok(false) => tracing::info!(kbps, "this source keeps its bitrate"),
                                Err(e) => tracing::warn!(kbps, "bitrate change failed: {e}"),
                            }
                        }
                        let r = source.next_frame(keyframe);
                        (source, r)
                    }));
                }
            },
            done = encoded(&mut encoding), if encoding.is_some() => {
                encoding = None;
                match done {
                    Ok((source, frame)) => {
                        own_video = Some(source);
                        match frame {
                            // A frame finished after a lobby join is not shown.
                            Ok(frame) if matches!(feed, Feed::Own) => {
                                sender.video(&mut handle, media.as_ref(), &frame).await;
                            }
                            Ok(_) => {}
                            Err(e) => tracing::warn!(session = handle.session_id, "video source: {e}"),
                        }
                    }
                    Err(e) => tracing::warn!(session = handle.session_id, "encoder task failed: {e}"),
                }
            },
            _ = audio_tick.tick(), if own_feed => match own_audio.next_packet() {
                Ok(p) => { let _ = handle.audio.send_opus(&p).await; }
                Err(e) => tracing::warn!(session = handle.session_id, "audio source: {e}"),
            },
            item = lobby_next(&mut feed), if !own_feed => match item {
                LobbyItem::Video(frame) => {
                    if let Feed::Lobby { waiting_for_keyframe, .. } = &mut feed {
                        if *waiting_for_keyframe && !frame.keyframe {
                            continue;
                        }
                        *waiting_for_keyframe = false;
                    }
                    sender.video(&mut handle, media.as_ref(), &frame).await;
                }
                LobbyItem::Audio(p) => { let _ = handle.audio.send_opus(&p).await; }
                LobbyItem::VideoLagged => {
                    if let Feed::Lobby { lobby, waiting_for_keyframe, .. } = &mut feed {
                        *waiting_for_keyframe = true;
                        let _ = lobby.send(LobbyCmd::Keyframe(vf));
                    }
                }
                LobbyItem::AudioLagged => {}
                LobbyItem::Closed => {
                    feed = Feed::Own;
                    want_keyframe = true;
                }
            },
        }
    }
}

/// An encode in flight: the source comes back with its frame.
type Encoding = tokio::task::JoinHandle<(Box<dyn VideoSource>, Result<EncodedFrame, MediaError>)>;

/// Waits for the encode in flight (never resolves without one).
async fn encoded(
    encoding: &mut Option<Encoding>,
) -> Result<(Box<dyn VideoSource>, Result<EncodedFrame, MediaError>), tokio::task::JoinError> {
    match encoding {
        Some(job) => job.await,
        None => std::future::pending().await,
    }
}

enum LobbyItem {
    Video(Arc<EncodedFrame>),
    Audio(Arc<Vec<u8>>),
    VideoLagged,
    AudioLagged,
    Closed,
}

/// The next thing a lobby sends (never resolves on the session's own feed).
async fn lobby_next(feed: &mut Feed) -> LobbyItem {
    use broadcast::error::RecvError;
    let Feed::Lobby { feed, .. } = feed else {
        return std::future::pending().await;
    };
    tokio::select! {
        v = feed.video.recv() => match v {
            Ok(f) => LobbyItem::Video(f),
            Err(RecvError::Lagged(_)) => LobbyItem::VideoLagged,
            Err(RecvError::Closed) => LobbyItem::Closed,
        },
        a = feed.audio.recv() => match a {
            Ok(p) => LobbyItem::Audio(p),
            Err(RecvError::Lagged(_)) => LobbyItem::AudioLagged,
            Err(RecvError::Closed) => LobbyItem::Closed,
        },
    }
}

#[cfg(test)]
mod tests;
