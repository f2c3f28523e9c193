//! Host side of the bench: replay media whose frames carry a per-source bench tag, so each
//! received frame says which host stream it came from and how many that stream sent.

use super::*;

/// A replay clip: the format the encoder produced and its frames.
pub(crate) type Clip = (VideoFormat, Arc<[EncodedFrame]>);

/// Replay frames (encoded once per format, padded to the bitrate, shared by every source) and a
/// frame counter per opened source. Opening a source costs nothing after the first, so a
/// stream's start time is the gateway's, not the demo host's up-front encode.
#[derive(Default)]
pub(crate) struct BenchMedia {
    pub(crate) clips: Mutex<HashMap<(u32, u32, u32, u32), Clip>>,
    pub(crate) sources: Mutex<Vec<Arc<AtomicU64>>>,
}

impl BenchMedia {
    pub(crate) fn clip(
        &self,
        format: VideoFormat,
        style: PatternStyle,
    ) -> Result<Clip, MediaError> {
        let key = (format.width, format.height, format.fps, format.bitrate_kbps);
        if let Some(c) = self.clips.lock().unwrap().get(&key) {
            return Ok(c.clone());
        }
        let count = (format.fps.clamp(1, 240) * media::REPLAY_SECONDS) as usize;
        let (actual, frames) = h264::encode_frames(format, style, count)?;
        let frames = pad::pad_frames(actual.codec, &frames, pad::frame_budget(&actual));
        let clip = (actual, Arc::<[EncodedFrame]>::from(frames));
        self.clips.lock().unwrap().insert(key, clip.clone());
        Ok(clip)
    }

    /// Sent-frame counter of a source id (from a tag).
    pub(crate) fn sent(&self, source: u32) -> u64 {
        self.sources
            .lock()
            .unwrap()
            .get(source as usize)
            .map_or(0, |c| c.load(Ordering::Relaxed))
    }
}

impl MediaFactory for BenchMedia {
    fn open_video(
        &self,
        kind: SourceKind,
        format: VideoFormat,
        style: PatternStyle,
    ) -> Result<Box<dyn VideoSource>, MediaError> {
        if kind != SourceKind::Replay || format.codec != VideoCodec::H264 {
            return demo_host::RealMedia::padded().open_video(kind, format, style);
        }
        let (actual, frames) = self.clip(format, style)?;
        let counter = Arc::new(AtomicU64::new(0));
        let id = {
            let mut s = self.sources.lock().unwrap();
            s.push(Arc::clone(&counter));
            (s.len() - 1) as u32
        };
        Ok(Box::new(TaggedSource {
            inner: media::LoopSource::new(actual, frames)?,
            id,
            counter,
        }))
    }

    fn open_audio(
        &self,
        format: AudioFormat,
        tone_hz: f32,
    ) -> Result<Box<dyn AudioSource>, MediaError> {
        media::open_audio(format, tone_hz)
    }
}

/// A replay source whose frames carry `(source id << 32) | sequence` in a bench tag SEI.
pub(crate) struct TaggedSource {
    pub(crate) inner: media::LoopSource,
    pub(crate) id: u32,
    pub(crate) counter: Arc<AtomicU64>,
}

impl VideoSource for TaggedSource {
    fn format(&self) -> VideoFormat {
        self.inner.format()
    }
    fn next_frame(&mut self, force_keyframe: bool) -> Result<EncodedFrame, MediaError> {
        let mut frame = self.inner.next_frame(force_keyframe)?;
        let seq = self.counter.fetch_add(1, Ordering::Relaxed);
        frame.data = insert_tag(
            &frame.data,
            (u64::from(self.id) << 32) | (seq & 0xFFFF_FFFF),
        );
        Ok(frame)
    }
}

/// Inserts the tag SEI right before the first slice NAL (after SPS/PPS), where prefix SEIs go.
pub(crate) fn insert_tag(data: &[u8], tag: u64) -> Vec<u8> {
    let at = sei::nal_units(data)
        .find(|(_, nal)| nal.first().is_some_and(|h| (1..=5).contains(&(h & 0x1F))))
        .map_or(data.len(), |(at, _)| at);
    let mut rbsp = [0u8; 27];
    rbsp[0] = 5; // user data unregistered
    rbsp[1] = 24;
    rbsp[2..18].copy_from_slice(&TAG_UUID);
    rbsp[18..26].copy_from_slice(&tag.to_be_bytes());
    rbsp[26] = 0x80;
    let mut unit = vec![0, 0, 0, 1, 6];
    sei::escape_into(&rbsp, &mut unit);
    let mut out = Vec::with_capacity(data.len() + unit.len());
    out.extend_from_slice(&data[..at]);
    out.extend_from_slice(&unit);
    out.extend_from_slice(&data[at..]);
    out
}

/// The bench tag of a received access unit (scans only the NALs before the first slice).
pub(crate) fn read_tag(data: &[u8]) -> Option<u64> {
    for (_, nal) in sei::nal_units(data) {
        let t = nal.first()? & 0x1F;
        if (1..=5).contains(&t) {
            return None;
        }
        if t != 6 {
            continue;
        }
        let rbsp = sei::unescape(nal.get(1..)?);
        if rbsp.len() >= 26 && rbsp[0] == 5 && rbsp[1] == 24 && rbsp[2..18] == TAG_UUID {
            return Some(u64::from_be_bytes(rbsp[18..26].try_into().ok()?));
        }
    }
    None
}
