//! The microphone sink: what a session's client sent on the forks' mic stream (fork mode,
//! [`crate::DemoHostConfig::microphone`]), decoded, so that tests can check "pitch in, pitch out".
//!
//! Per session a task decodes each Opus packet (mono, 48 kHz) with opus-rs and keeps the last
//! [`KEEP_SECONDS`] of PCM; [`MicSinks::report`] gives the packet count and the dominant pitch.
//!
//! The pitch is a Goertzel scan (one DFT bin per probe frequency) over the last
//! [`ANALYSIS_SAMPLES`], Hann-windowed: 10 Hz steps from 100 to 4000 Hz, then 0.25 Hz steps
//! around the best. Chosen over a zero-crossing rate because Opus adds low-level noise and
//! pre-echo that make extra crossings (a ZCR reads high, and reads any DC offset wrong), while
//! the spectral peak of a tone stays where it is; and over a full FFT because a scan of a known
//! range needs no dependency and is cheap at this length.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use gamestream::mic::{MicReceiver, MIC_SAMPLE_RATE};
use opus_rs::OpusDecoder;
use serde::Serialize;

/// PCM kept per session.
pub const KEEP_SECONDS: usize = 2;
/// Samples the pitch is measured over (0.5 s).
pub const ANALYSIS_SAMPLES: usize = MIC_SAMPLE_RATE as usize / 2;
/// Sinks kept, the live sessions' and the last ended ones'.
const MAX_SINKS: usize = 16;
/// Largest Opus frame (120 ms at 48 kHz).
const MAX_FRAME: usize = 5760;

/// What a session's microphone delivered so far.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct MicReport {
    /// Opus packets received (decoded or not).
    pub packets: u64,
    /// Packets that did not decode.
    pub undecodable: u64,
    /// Sequence numbers that never arrived.
    pub lost: u64,
    /// Dominant pitch of the last 0.5 s in Hz (0 with less PCM than that, or silence).
    pub pitch_hz: f64,
}

#[derive(Debug, Default)]
struct Sink {
    packets: u64,
    undecodable: u64,
    lost: u64,
    pcm: VecDeque<f32>,
}

/// Every session's microphone sink.
#[derive(Debug, Default)]
pub struct MicSinks {
    sinks: Mutex<HashMap<u64, Sink>>,
}

fn lock(m: &Mutex<HashMap<u64, Sink>>) -> MutexGuard<'_, HashMap<u64, Sink>> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl MicSinks {
    /// Starts the sink of `session_id`, fed by `rx` until the session ends. A sink stays
    /// readable after its session ended, until [`MAX_SINKS`] newer ones replace it.
    pub fn spawn(self: &Arc<Self>, session_id: u64, mut rx: MicReceiver) {
        {
            let mut all = lock(&self.sinks);
            all.insert(session_id, Sink::default());
            // The oldest sessions' sinks go first (session ids only grow).
            while all.len() > MAX_SINKS {
                let Some(&oldest) = all.keys().min() else {
                    break;
                };
                all.remove(&oldest);
            }
        }
        let sinks = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut decoder = match OpusDecoder::new(MIC_SAMPLE_RATE as i32, 1) {
                Ok(d) => Some(d),
                Err(e) => {
                    tracing::error!(session = session_id, "mic decoder: {e}");
                    None
                }
            };
            let mut pcm = vec![0f32; MAX_FRAME];
            while let Some(frame) = rx.recv().await {
                let decoded = decoder
                    .as_mut()
                    .and_then(|d| d.decode(&frame.opus, MAX_FRAME, &mut pcm).ok());
                let Some(sinks) = sinks.upgrade() else {
                    return;
                };
                let mut all = lock(&sinks.sinks);
                let Some(sink) = all.get_mut(&session_id) else {
                    return;
                };
                sink.packets += 1;
                sink.lost += u64::from(frame.lost_before);
                match decoded {
                    Some(n) => sink.pcm.extend(&pcm[..n.min(MAX_FRAME)]),
                    None => sink.undecodable += 1,
                }
                let keep = KEEP_SECONDS * MIC_SAMPLE_RATE as usize;
                let excess = sink.pcm.len().saturating_sub(keep);
                sink.pcm.drain(..excess);
            }
        });
    }

    /// The report of `session_id`, if it had a microphone.
    pub fn report(&self, session_id: u64) -> Option<MicReport> {
        let (packets, undecodable, lost, tail) = {
            let all = lock(&self.sinks);
            let sink = all.get(&session_id)?;
            let skip = sink.pcm.len().saturating_sub(ANALYSIS_SAMPLES);
            let tail: Vec<f32> = sink.pcm.iter().skip(skip).copied().collect();
            (sink.packets, sink.undecodable, sink.lost, tail)
        };
        Some(MicReport {
            packets,
            undecodable,
            lost,
            pitch_hz: dominant_pitch(&tail, f64::from(MIC_SAMPLE_RATE)),
        })
    }
}

/// Power of the `freq` bin of `samples` (Goertzel).
fn goertzel(samples: &[f64], freq: f64, rate: f64) -> f64 {
    let coeff = 2.0 * (2.0 * std::f64::consts::PI * freq / rate).cos();
    let (mut s1, mut s2) = (0.0, 0.0);
    for &x in samples {
        let s = x + coeff * s1 - s2;
        s2 = s1;
        s1 = s;
    }
    s1 * s1 + s2 * s2 - coeff * s1 * s2
}

/// The strongest frequency in 100–4000 Hz (see the module doc); 0 for too little or silent PCM.
pub fn dominant_pitch(pcm: &[f32], rate: f64) -> f64 {
    if pcm.len() < ANALYSIS_SAMPLES || pcm.iter().all(|s| s.abs() < 1e-4) {
        return 0.0;
    }
    let n = pcm.len() as f64;
    let windowed: Vec<f64> = pcm
        .iter()
        .enumerate()
        .map(|(i, &s)| {
            let w = 0.5 - 0.5 * (2.0 * std::f64::consts::PI * i as f64 / (n - 1.0)).cos();
            f64::from(s) * w
        })
        .collect();
    let best = |from: f64, to: f64, step: f64| {
        let steps = ((to - from) / step).round() as usize;
        (0..=steps)
            .map(|k| from + k as f64 * step)
            .map(|f| (f, goertzel(&windowed, f, rate)))
            .fold((0.0, f64::MIN), |a, b| if b.1 > a.1 { b } else { a })
            .0
    };
    let coarse = best(100.0, 4000.0, 10.0);
    best(
        (coarse - 10.0).max(100.0),
        (coarse + 10.0).min(4000.0),
        0.25,
    )
}

/// What a microphone playing a sine would send: `packets` Opus packets of 20 ms (960 samples),
/// mono 48 kHz at 32 kbit/s, half scale. The other end of [`dominant_pitch`], for the tests
/// (here and the gateway's) that check "pitch in, pitch out" without a browser.
pub fn opus_tone(hz: f64, packets: usize) -> Result<Vec<Vec<u8>>, String> {
    const FRAME: usize = MIC_SAMPLE_RATE as usize / 50;
    let mut encoder =
        opus_rs::OpusEncoder::new(MIC_SAMPLE_RATE as i32, 1, opus_rs::Application::Voip)
            .map_err(|e| format!("opus encoder: {e}"))?;
    encoder.bitrate_bps = 32_000;
    let step = std::f64::consts::TAU * hz / f64::from(MIC_SAMPLE_RATE);
    let mut out = vec![0u8; 1500];
    (0..packets)
        .map(|p| {
            let pcm: Vec<f32> = (p * FRAME..(p + 1) * FRAME)
                .map(|i| (0.5 * (step * i as f64).sin()) as f32)
                .collect();
            let n = encoder
                .encode(&pcm, FRAME, &mut out)
                .map_err(|e| format!("opus encode: {e}"))?;
            Ok(out[..n].to_vec())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tone(hz: f64, len: usize) -> Vec<f32> {
        (0..len)
            .map(|i| (0.5 * (2.0 * std::f64::consts::PI * hz * i as f64 / 48_000.0).sin()) as f32)
            .collect()
    }

    #[test]
    fn pitch_of_pure_tones() {
        for hz in [150.0, 440.0, 880.0, 1234.5, 3500.0] {
            let got = dominant_pitch(&tone(hz, ANALYSIS_SAMPLES), 48_000.0);
            assert!((got - hz).abs() < 1.0, "{hz} Hz read as {got}");
        }
        assert_eq!(dominant_pitch(&tone(440.0, 1000), 48_000.0), 0.0);
        assert_eq!(dominant_pitch(&vec![0.0; ANALYSIS_SAMPLES], 48_000.0), 0.0);
    }
}
