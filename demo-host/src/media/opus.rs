//! An Opus sine tone for stereo, 5.1 and 7.1, as Moonlight clients expect it.
//!
//! Each speaker has its own pitch ([`SPEAKER_PITCH`]), like a speaker test: a listener hears which
//! speaker is which, and a test that decodes the stream can tell whether the channel order
//! survived every hop from host to browser.
//!
//! Settings follow Sunshine's normal-quality `stream_configs` (gamestream-protocol-2-media.md
//! §5.1): 48 kHz, restricted-low-delay (CELT only), CBR so every packet of a stream has the same
//! size and the audio FEC covers every block. opus-rs has no multistream encoder, so surround
//! runs one encoder per elementary stream (coupled streams stereo, the rest mono) and joins their
//! packets as RFC 6716 Appendix B / RFC 7845 describe: every packet but the last in
//! self-delimiting framing. With CBR every part has a constant size, so the whole does too.

use gamestream::audio::AudioConfig;
use opus_rs::{Application, OpusEncoder};

use super::{AudioFormat, AudioSource, MediaError};

/// Sample rate of every GameStream audio stream.
pub const SAMPLE_RATE: u32 = 48_000;

/// Per speaker, in GameStream order (FL FR FC LFE BL BR SL SR), the tone's pitch as a multiple of
/// the base tone. The LFE gets a low one, as a subwoofer would play.
pub const SPEAKER_PITCH: [f64; 8] = [1.0, 1.25, 1.5, 0.25, 1.75, 2.0, 2.25, 2.5];

/// Highest base tone: the top speaker's pitch stays well below the 24 kHz Nyquist limit.
pub const MAX_TONE_HZ: f32 = 6_000.0;

/// How channels are split into Opus streams, and which decoded channel carries which speaker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpusLayout {
    /// Channel count (2, 6, 8).
    pub channels: u8,
    /// Elementary Opus streams.
    pub streams: u8,
    /// Of those, the stereo ones (they come first).
    pub coupled_streams: u8,
    /// Per speaker (order FL FR FC LFE BL BR SL SR), the decoded channel a client plays on it.
    pub mapping: Vec<u8>,
    /// Total bitrate in bit/s.
    pub bitrate_bps: u32,
}

/// Sunshine's normal-quality layout for `channels`; `None` for counts Moonlight never asks for.
///
/// The mapping is the one a Moonlight client derives from what this host announces in DESCRIBE
/// (Sunshine's `surround-params`, after the client's fix-up), so each speaker is encoded where
/// the client will look for it. For stereo and 5.1 that is the identity. For 7.1 it is not:
/// Sunshine pre-rotates only indices 3..6, so a client reads `[0, 1, 2, 7, 4, 5, 3, 6]`
/// (gamestream-protocol-2-media.md §5.1 marks this UNCERTAIN; the end-to-end surround test
/// checks every speaker's pitch through the whole chain).
pub fn opus_layout(channels: u8) -> Option<OpusLayout> {
    let bitrate_bps = match channels {
        2 => 96_000,
        6 => 256_000,
        8 => 450_000,
        _ => return None,
    };
    let announced = AudioConfig::new(channels, false).ok()?.surround_params();
    let heard = AudioConfig::from_surround_params(&announced, false).ok()?;
    Some(OpusLayout {
        channels,
        streams: heard.streams,
        coupled_streams: heard.coupled_streams,
        mapping: heard.mapping,
        bitrate_bps,
    })
}

/// One elementary stream's encoder and the input channels it takes.
struct StreamEncoder {
    encoder: OpusEncoder,
    inputs: Vec<usize>,
}

/// The tone source; see the module doc.
pub struct OpusTone {
    format: AudioFormat,
    streams: Vec<StreamEncoder>,
    frame_size: usize,
    /// Per speaker: phase and phase step per sample.
    phase: Vec<f64>,
    step: Vec<f64>,
    /// One packet of samples, interleaved in speaker order.
    pcm: Vec<f32>,
    stream_pcm: Vec<f32>,
    scratch: Vec<u8>,
}

impl std::fmt::Debug for OpusTone {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpusTone")
            .field("format", &self.format)
            .field("step", &self.step)
            .finish()
    }
}

impl OpusTone {
    /// A tone at `tone_hz` (clamped to 20 Hz..=[`MAX_TONE_HZ`]) times each speaker's
    /// [`SPEAKER_PITCH`], in `format` (2/6/8 channels, 5 or 10 ms packets).
    pub fn new(format: AudioFormat, tone_hz: f32) -> Result<Self, MediaError> {
        let layout = opus_layout(format.channels).ok_or_else(|| {
            MediaError::Unsupported(format!("{} audio channels", format.channels))
        })?;
        if !matches!(format.packet_duration_ms, 5 | 10) {
            return Err(MediaError::Unsupported(format!(
                "{} ms audio packets",
                format.packet_duration_ms
            )));
        }
        let per_channel = layout.bitrate_bps / u32::from(layout.channels);
        let mut streams = Vec::with_capacity(usize::from(layout.streams));
        for s in 0..layout.streams {
            let coupled = s < layout.coupled_streams;
            let decoded: Vec<u8> = if coupled {
                vec![2 * s, 2 * s + 1]
            } else {
                vec![layout.coupled_streams + s]
            };
            let inputs = decoded
                .iter()
                .map(|d| layout.mapping.iter().position(|m| m == d))
                .collect::<Option<Vec<usize>>>()
                .ok_or_else(|| {
                    MediaError::Codec("channel mapping misses a stream channel".into())
                })?;
            let mut encoder = OpusEncoder::new(
                SAMPLE_RATE as i32,
                inputs.len(),
                Application::RestrictedLowDelay,
            )
            .map_err(|e| MediaError::Codec(format!("opus encoder: {e}")))?;
            encoder.bitrate_bps = (per_channel * inputs.len() as u32) as i32;
            encoder.use_cbr = true;
            encoder.complexity = 5;
            streams.push(StreamEncoder { encoder, inputs });
        }
        let frame_size = (SAMPLE_RATE / 1000 * format.packet_duration_ms) as usize;
        let tone = f64::from(tone_hz.clamp(20.0, MAX_TONE_HZ));
        let channels = usize::from(layout.channels);
        Ok(OpusTone {
            format,
            streams,
            frame_size,
            phase: vec![0.0; channels],
            step: SPEAKER_PITCH[..channels]
                .iter()
                .map(|p| std::f64::consts::TAU * tone * p / f64::from(SAMPLE_RATE))
                .collect(),
            pcm: vec![0.0; frame_size * channels],
            stream_pcm: vec![0.0; frame_size * 2],
            scratch: vec![0; 1500],
        })
    }
}

impl AudioSource for OpusTone {
    fn format(&self) -> AudioFormat {
        self.format
    }

    fn next_packet(&mut self) -> Result<Vec<u8>, MediaError> {
        let channels = self.phase.len();
        for frame in self.pcm.chunks_exact_mut(channels) {
            for ((s, phase), step) in frame.iter_mut().zip(&mut self.phase).zip(&self.step) {
                *s = (phase.sin() * 0.4) as f32;
                *phase = (*phase + step) % std::f64::consts::TAU;
            }
        }
        let mut packet = Vec::with_capacity(64 * self.streams.len());
        let last = self.streams.len() - 1;
        for (i, stream) in self.streams.iter_mut().enumerate() {
            // This stream's speakers, interleaved for its encoder.
            let ch = stream.inputs.len();
            for (frame, out) in self
                .pcm
                .chunks_exact(channels)
                .zip(self.stream_pcm.chunks_exact_mut(ch))
            {
                for (o, &input) in out.iter_mut().zip(&stream.inputs) {
                    *o = frame[input];
                }
            }
            let n = stream
                .encoder
                .encode(
                    &self.stream_pcm[..self.frame_size * ch],
                    self.frame_size,
                    &mut self.scratch,
                )
                .map_err(|e| MediaError::Codec(format!("opus encode: {e}")))?;
            let part = &self.scratch[..n];
            if i == last {
                packet.extend_from_slice(part);
            } else {
                self_delimited_into(part, &mut packet)?;
            }
        }
        Ok(packet)
    }
}

/// Appends an Opus frame length (RFC 6716 §3.2.1: one byte below 252, else two).
fn push_len(n: usize, out: &mut Vec<u8>) -> Result<(), MediaError> {
    if n > 1275 {
        return Err(MediaError::Codec(format!("opus frame of {n} bytes")));
    }
    if n < 252 {
        out.push(n as u8);
    } else {
        let first = 252 + (n & 3);
        out.push(first as u8);
        out.push(((n - first) / 4) as u8);
    }
    Ok(())
}

/// Reads an Opus frame length; `(length, bytes used)`.
fn read_len(data: &[u8]) -> Result<(usize, usize), MediaError> {
    let bad = || MediaError::Codec("truncated opus frame length".into());
    let b0 = usize::from(*data.first().ok_or_else(bad)?);
    if b0 < 252 {
        Ok((b0, 1))
    } else {
        Ok((b0 + 4 * usize::from(*data.get(1).ok_or_else(bad)?), 2))
    }
}

/// Re-frames a normal Opus packet in self-delimiting framing (RFC 6716 Appendix B): the length of
/// the one frame whose size the normal framing leaves implicit is written after the existing
/// lengths (code 0/1/CBR code 3: the common frame size; code 2/VBR code 3: the last frame's).
pub fn self_delimited_into(packet: &[u8], out: &mut Vec<u8>) -> Result<(), MediaError> {
    let bad = |what: &str| MediaError::Codec(format!("opus packet: {what}"));
    let toc = *packet.first().ok_or_else(|| bad("empty"))?;
    match toc & 3 {
        0 => {
            out.push(toc);
            push_len(packet.len() - 1, out)?;
            out.extend_from_slice(&packet[1..]);
        }
        1 => {
            let body = packet.len() - 1;
            if body % 2 != 0 {
                return Err(bad("code 1 with odd length"));
            }
            out.push(toc);
            push_len(body / 2, out)?;
            out.extend_from_slice(&packet[1..]);
        }
        2 => {
            let (n1, used) = read_len(&packet[1..])?;
            let n2 = (packet.len() - 1 - used)
                .checked_sub(n1)
                .ok_or_else(|| bad("code 2 too short"))?;
            out.extend_from_slice(&packet[..1 + used]);
            push_len(n2, out)?;
            out.extend_from_slice(&packet[1 + used..]);
        }
        _ => {
            let fc = *packet
                .get(1)
                .ok_or_else(|| bad("code 3 without frame count"))?;
            let (vbr, padded, m) = (fc & 0x80 != 0, fc & 0x40 != 0, usize::from(fc & 0x3F));
            if m == 0 {
                return Err(bad("code 3 with no frames"));
            }
            let mut i = 2;
            let mut padding = 0;
            if padded {
                loop {
                    let b = *packet.get(i).ok_or_else(|| bad("truncated padding"))?;
                    i += 1;
                    padding += if b == 255 { 254 } else { usize::from(b) };
                    if b != 255 {
                        break;
                    }
                }
            }
            let mut sizes = 0;
            if vbr {
                for _ in 0..m - 1 {
                    let (n, used) = read_len(packet.get(i..).ok_or_else(|| bad("truncated"))?)?;
                    sizes += n;
                    i += used;
                }
            }
            let data = packet
                .len()
                .checked_sub(i + padding)
                .ok_or_else(|| bad("code 3 too short"))?;
            let implicit = if vbr {
                data.checked_sub(sizes)
                    .ok_or_else(|| bad("code 3 sizes overrun"))?
            } else if data % m == 0 {
                data / m
            } else {
                return Err(bad("CBR code 3 frames of unequal size"));
            };
            out.extend_from_slice(&packet[..i]);
            push_len(implicit, out)?;
            out.extend_from_slice(&packet[i..]);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layouts_match_sunshine() {
        let l = opus_layout(6).unwrap();
        assert_eq!(
            (l.streams, l.coupled_streams, l.bitrate_bps),
            (4, 2, 256_000)
        );
        let l = opus_layout(8).unwrap();
        assert_eq!(
            (l.streams, l.coupled_streams, &l.mapping[..]),
            (5, 3, &[0, 1, 2, 7, 4, 5, 3, 6][..])
        );
        assert!(opus_layout(5).is_none());
        assert_eq!(opus_layout(2).unwrap().mapping, [0, 1]);
        assert_eq!(opus_layout(6).unwrap().mapping, [0, 1, 2, 3, 4, 5]);
        assert!(OpusTone::new(
            AudioFormat {
                channels: 2,
                packet_duration_ms: 20
            },
            440.0
        )
        .is_err());
    }

    #[test]
    fn self_delimiting_adds_the_implicit_length() {
        let mut out = Vec::new();
        self_delimited_into(&[0x00, 1, 2, 3], &mut out).unwrap();
        assert_eq!(out, [0x00, 3, 1, 2, 3]);
        out.clear();
        let big: Vec<u8> = std::iter::once(0x00)
            .chain(std::iter::repeat_n(7, 300))
            .collect();
        self_delimited_into(&big, &mut out).unwrap();
        assert_eq!(&out[..3], &[0x00, 252, 12]); // 300 = 252 + 4 * 12
        out.clear();
        self_delimited_into(&[0x01, 1, 2, 3, 4], &mut out).unwrap();
        assert_eq!(out, [0x01, 2, 1, 2, 3, 4]);
        out.clear();
        self_delimited_into(&[0x02, 1, 9, 8, 7], &mut out).unwrap();
        assert_eq!(out, [0x02, 1, 2, 9, 8, 7]);
        out.clear();
        self_delimited_into(&[0x03, 0x02, 1, 2, 3, 4], &mut out).unwrap();
        assert_eq!(out, [0x03, 0x02, 2, 1, 2, 3, 4]);
        out.clear();
        self_delimited_into(&[0x03, 0x82, 1, 9, 8, 7], &mut out).unwrap();
        assert_eq!(out, [0x03, 0x82, 1, 2, 9, 8, 7]);
        for bad in [
            &[][..],
            &[0x01, 1, 2, 3],
            &[0x03],
            &[0x03, 0x00],
            &[0x02, 9, 1],
        ] {
            assert!(
                self_delimited_into(bad, &mut Vec::new()).is_err(),
                "{bad:?}"
            );
        }
    }
}
