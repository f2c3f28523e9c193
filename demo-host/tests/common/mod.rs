//! Shared by the demo-host integration tests: a synthetic media factory whose frames say which
//! producer made them, pairing, and stream settings.

#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use demo_host::media::{
    AudioFormat, AudioSource, EncodedFrame, MediaError, PatternStyle, SourceKind, VideoCodec,
    VideoFormat, VideoSource,
};
use demo_host::{DemoEvent, DemoHost, DemoHostConfig, MediaFactory};
use gamestream::client::{ClientSession, SessionConfig, SessionEvent};
use gamestream::identity::Identity;
use gamestream::nvhttp::{HostAddress, NvHttpClient};
use gamestream::rtsp::StreamSettings;
use tokio::sync::{broadcast, mpsc};
use tokio::time::timeout;

pub const PIN: &str = "4721";

/// Frames: Annex B start code, NAL header (IDR 0x65 / non-IDR 0x41), label length, label, colour,
/// counter, padding. Receivers recover the label of the producer that made the frame.
pub struct SyntheticVideo {
    format: VideoFormat,
    style: PatternStyle,
    counter: u32,
}

impl VideoSource for SyntheticVideo {
    fn format(&self) -> VideoFormat {
        self.format
    }
    fn next_frame(&mut self, force_keyframe: bool) -> Result<EncodedFrame, MediaError> {
        // Keyframes only first and on request, so tests can tell that a request was honoured.
        let keyframe = force_keyframe || self.counter == 0;
        self.counter += 1;
        let mut data = vec![0, 0, 0, 1, if keyframe { 0x65 } else { 0x41 }];
        data.push(self.style.label.len() as u8);
        data.extend_from_slice(self.style.label.as_bytes());
        data.extend_from_slice(&self.style.color);
        data.extend_from_slice(&self.counter.to_be_bytes());
        data.resize(data.len() + if keyframe { 3000 } else { 300 }, 0x5A);
        Ok(EncodedFrame { data, keyframe })
    }
}

/// Reads the producer label from a synthetic frame.
pub fn label_of(data: &[u8]) -> Option<String> {
    let len = *data.get(5)? as usize;
    String::from_utf8(data.get(6..6 + len)?.to_vec()).ok()
}

pub struct SyntheticAudio(AudioFormat);

impl AudioSource for SyntheticAudio {
    fn format(&self) -> AudioFormat {
        self.0
    }
    fn next_packet(&mut self) -> Result<Vec<u8>, MediaError> {
        Ok(vec![0xA5; 40])
    }
}

/// A [`MediaFactory`] without codecs.
pub struct SyntheticMedia;

impl MediaFactory for SyntheticMedia {
    fn open_video(
        &self,
        _kind: SourceKind,
        format: VideoFormat,
        style: PatternStyle,
    ) -> Result<Box<dyn VideoSource>, MediaError> {
        Ok(Box::new(SyntheticVideo {
            format,
            style,
            counter: 0,
        }))
    }
    fn open_audio(
        &self,
        format: AudioFormat,
        _tone_hz: f32,
    ) -> Result<Box<dyn AudioSource>, MediaError> {
        Ok(Box::new(SyntheticAudio(format)))
    }
    fn stamp_send_time(&self, _codec: VideoCodec, data: &[u8], _send_time_us: u64) -> Vec<u8> {
        data.to_vec()
    }
}

/// True once the media layer encodes (its `open_video` no longer answers `Unsupported`).
pub fn real_media_present() -> bool {
    let format = VideoFormat {
        codec: VideoCodec::H264,
        width: 640,
        height: 360,
        fps: 30,
        bitrate_kbps: 2000,
    };
    let style = PatternStyle {
        label: "probe".into(),
        color: [1, 2, 3],
    };
    !matches!(
        demo_host::media::open_video(SourceKind::Live, format, style),
        Err(MediaError::Unsupported(_))
    )
}

/// A test host on loopback with ephemeral ports, synthetic media and the fixed PIN.
pub fn test_config() -> DemoHostConfig {
    DemoHostConfig {
        fixed_pin: Some(PIN.into()),
        media: Arc::new(SyntheticMedia),
        ..DemoHostConfig::default()
    }
}

/// A fresh client identity for `host` (not yet paired).
pub fn client(host: &DemoHost) -> Arc<NvHttpClient> {
    let ports = host.ports();
    Arc::new(NvHttpClient::new(
        HostAddress::with_ports("127.0.0.1", ports.http, Some(ports.https)),
        Identity::new_client().expect("client identity"),
        None,
    ))
}

/// A paired client (the host must have a fixed PIN).
pub async fn paired_client(host: &DemoHost) -> Arc<NvHttpClient> {
    pair(client(host)).await
}

/// Pairs `http` with the fixed PIN; returns it.
pub async fn pair(http: Arc<NvHttpClient>) -> Arc<NvHttpClient> {
    timeout(Duration::from_secs(30), http.pair(PIN, "test"))
        .await
        .expect("pairing timed out")
        .expect("pairing");
    http
}

/// A client side on a thread and tokio runtime of its own, so that a test can freeze it: nothing
/// of it runs (no control pings, no ENet acknowledgements) while its sockets stay open — a client
/// gone silent — and the host's runtime, whose clock the test may move, goes on.
pub struct ClientThread {
    runtime: tokio::runtime::Handle,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thaw: Option<std::sync::mpsc::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl ClientThread {
    pub fn start() -> Self {
        let (handle_tx, handle_rx) = std::sync::mpsc::channel();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("client runtime");
            handle_tx.send(rt.handle().clone()).expect("test waits");
            rt.block_on(async {
                let _ = stopped.await;
            });
        });
        Self {
            runtime: handle_rx.recv().expect("client runtime started"),
            stop: Some(stop),
            thaw: None,
            thread: Some(thread),
        }
    }

    /// Runs `work` on the client's runtime (tasks it spawns stay there); its output.
    pub async fn run<F>(&self, work: F) -> F::Output
    where
        F: std::future::Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.runtime.spawn(work).await.expect("client work")
    }

    /// Blocks the client's runtime until [`ClientThread::thaw`]; returns once it is blocked.
    pub async fn freeze(&mut self) {
        let (blocked_tx, blocked) = tokio::sync::oneshot::channel();
        let (thaw, frozen) = std::sync::mpsc::channel::<()>();
        self.runtime.spawn(async move {
            let _ = blocked_tx.send(());
            // Blocks the runtime's only thread on purpose; ends when `thaw` is dropped.
            let _ = frozen.recv();
        });
        blocked.await.expect("client runtime blocked");
        self.thaw = Some(thaw);
    }

    /// Lets the client run again.
    pub fn thaw(&mut self) {
        self.thaw = None;
    }
}

impl Drop for ClientThread {
    fn drop(&mut self) {
        self.thaw();
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

pub fn settings() -> StreamSettings {
    StreamSettings {
        width: 640,
        height: 360,
        fps: 30,
        packet_size: 1024,
        ..StreamSettings::default()
    }
}

/// Starts a stream of `app_id`.
pub async fn stream(
    http: &Arc<NvHttpClient>,
    app_id: u32,
) -> (ClientSession, mpsc::Receiver<SessionEvent>) {
    timeout(
        Duration::from_secs(20),
        ClientSession::start(Arc::clone(http), SessionConfig::new(app_id, settings())),
    )
    .await
    .expect("stream start timed out")
    .expect("stream start")
}

/// Sends a key press (A) over `session` and asserts it reaches the host's input sink for
/// `session_id` within `within`; returns the event sent.
pub async fn key_press_reaches_host(
    host: &DemoHost,
    session: &ClientSession,
    session_id: u64,
    within: Duration,
) -> gamestream::input::InputEvent {
    let key = gamestream::input::InputEvent::KeyDown {
        flags: 0,
        key_code: 0x41,
        modifiers: 0,
    };
    session.send_input(&key).unwrap();
    assert!(
        host.wait_for_inputs(session_id, within, |log| log.iter().any(|r| r.event == key))
            .await,
        "the key press reached the host's input sink"
    );
    key
}

/// Waits (`within`) for the host's `StreamStarted`; its session id.
pub async fn wait_stream_started(
    events: &mut broadcast::Receiver<DemoEvent>,
    within: Duration,
) -> u64 {
    let started = wait_event(events, within, |e| {
        matches!(e, DemoEvent::StreamStarted { .. })
    })
    .await;
    let DemoEvent::StreamStarted { session_id } = started else {
        unreachable!()
    };
    session_id
}

/// Waits for a host event matching `pred`.
pub async fn wait_event(
    events: &mut broadcast::Receiver<DemoEvent>,
    within: Duration,
    pred: impl Fn(&DemoEvent) -> bool,
) -> DemoEvent {
    timeout(within, async {
        loop {
            match events.recv().await {
                Ok(e) if pred(&e) => return e,
                Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(broadcast::error::RecvError::Closed) => panic!("host events closed"),
            }
        }
    })
    .await
    .expect("host event did not come")
}

/// Receives video frames until one satisfies `pred`; returns it.
pub async fn wait_frame(
    events: &mut mpsc::Receiver<SessionEvent>,
    within: Duration,
    pred: impl Fn(&gamestream::video::VideoFrame) -> bool,
) -> gamestream::video::VideoFrame {
    timeout(within, async {
        loop {
            match events.recv().await.expect("stream ended") {
                SessionEvent::Video(f) if pred(&f) => return f,
                SessionEvent::Ended(cause) => panic!("stream ended: {cause:?}"),
                _ => {}
            }
        }
    })
    .await
    .expect("frame did not come")
}

/// Mean Y'CbCr of the label band probe of a decoded H.264 frame (None: no picture yet, or the
/// decoder rejected the data).
pub fn band_of(decoder: &mut openh264::decoder::Decoder, data: &[u8]) -> Option<[f64; 3]> {
    let yuv = decoder.decode(data).ok()??;
    Some(band_mean(&yuv))
}

/// Mean Y'CbCr of the label band probe of a decoded 4:2:0 picture.
pub use demo_host::media::pattern::band_mean;

/// The band shows `rgb` (within encoder error).
pub fn band_is(band: [f64; 3], rgb: [u8; 3]) -> bool {
    let want = demo_host::media::pattern::rgb_to_yuv(rgb);
    (0..3).all(|c| (band[c] - f64::from(want[c])).abs() < 10.0)
}

/// Decodes the stream until a picture's label band shows `rgb`; returns how many pictures it took.
/// Panics (with the last band seen) if none does within `within`.
pub async fn wait_band(
    decoder: &mut openh264::decoder::Decoder,
    events: &mut mpsc::Receiver<SessionEvent>,
    within: Duration,
    rgb: [u8; 3],
) -> usize {
    let mut last = None;
    let mut pictures = 0;
    let found = timeout(within, async {
        loop {
            match events.recv().await {
                Some(SessionEvent::Video(f)) => {
                    if let Some(band) = band_of(decoder, &f.data) {
                        pictures += 1;
                        last = Some(band);
                        if band_is(band, rgb) {
                            return;
                        }
                    }
                }
                Some(SessionEvent::Ended(cause)) => panic!("stream ended: {cause:?}"),
                Some(_) => {}
                None => panic!("stream closed"),
            }
        }
    })
    .await;
    assert!(
        found.is_ok(),
        "no picture with band colour {rgb:?} (YUV {:?}); last band {last:?}",
        demo_host::media::pattern::rgb_to_yuv(rgb)
    );
    pictures
}

/// Colours that a test can tell apart on a decoded picture.
pub fn distinct(a: [u8; 3], b: [u8; 3]) -> bool {
    let (ya, yb) = (
        demo_host::media::pattern::rgb_to_yuv(a),
        demo_host::media::pattern::rgb_to_yuv(b),
    );
    (0..3).any(|c| (i32::from(ya[c]) - i32::from(yb[c])).abs() > 30)
}
