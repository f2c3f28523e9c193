//! The Opus tone: constant packet sizes, decodable (multistream for surround), each speaker at
//! its own pitch.

use demo_host::media::{open_audio, opus_layout, AudioFormat, SPEAKER_PITCH};
use opus_rs::multistream::{ChannelMappingTable, MultistreamDecoder};

fn zero_crossings(samples: &[f32]) -> usize {
    samples
        .windows(2)
        .filter(|w| (w[0] < 0.0) != (w[1] < 0.0))
        .count()
}

#[test]
fn tone_packets_are_constant_size_and_decode_to_the_tone() {
    for channels in [2u8, 6, 8] {
        for (duration, tone) in [(5u32, 440.0f32), (10, 1000.0)] {
            let mut src = open_audio(
                AudioFormat {
                    channels,
                    packet_duration_ms: duration,
                },
                tone,
            )
            .unwrap();
            assert_eq!(src.format().channels, channels);
            let layout = opus_layout(channels).unwrap();
            let table = ChannelMappingTable {
                channels,
                stream_count: layout.streams,
                coupled_count: layout.coupled_streams,
                mapping: layout.mapping.clone(),
            };
            let mut decoder = MultistreamDecoder::new(48_000, table).unwrap();
            let frame = (48 * duration) as usize;
            let packets = 1000 / duration as usize; // one second
            let mut pcm: Vec<Vec<f32>> = vec![Vec::new(); channels as usize];
            let mut sizes = std::collections::BTreeSet::new();
            let mut out = vec![0f32; frame * channels as usize];
            for _ in 0..packets {
                let p = src.next_packet().unwrap();
                sizes.insert(p.len());
                let n = decoder.decode(&p, frame, &mut out).unwrap();
                assert_eq!(n, frame);
                for f in 0..n {
                    for c in 0..channels as usize {
                        pcm[c].push(out[f * channels as usize + c]);
                    }
                }
            }
            assert_eq!(
                sizes.len(),
                1,
                "{channels} ch {duration} ms: sizes {sizes:?}"
            );
            let size = *sizes.first().unwrap();
            let bytes_per_s = size * packets;
            let expect = layout.bitrate_bps as usize / 8;
            assert!(
                bytes_per_s.abs_diff(expect) < expect / 10,
                "{bytes_per_s} B/s vs {expect}"
            );
            // Half a second after warm-up: 2 crossings per period.
            for (c, samples) in pcm.iter().enumerate() {
                let window = &samples[12_000..36_000];
                let crossings = zero_crossings(window) as f32;
                let want = 2.0 * tone * SPEAKER_PITCH[c] as f32 * 0.5;
                assert!(
                    (crossings - want).abs() <= want * 0.02 + 2.0,
                    "{channels} ch, channel {c}: {crossings} crossings, want {want}"
                );
                let peak = window.iter().fold(0f32, |m, s| m.max(s.abs()));
                assert!(peak > 0.2, "channel {c} is quiet: {peak}");
            }
        }
    }
}

#[test]
fn unsupported_audio_formats_are_errors() {
    assert!(open_audio(
        AudioFormat {
            channels: 4,
            packet_duration_ms: 5
        },
        440.0
    )
    .is_err());
    assert!(open_audio(
        AudioFormat {
            channels: 2,
            packet_duration_ms: 7
        },
        440.0
    )
    .is_err());
}
