//! Verifiable synthetic media for loopback sessions: every video access unit and Opus packet is a
//! pure function of its counter, so the receiving side can prove it arrived intact byte for byte.
//! Shared by the `loopback` example and the loopback session test.

#![allow(dead_code)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use gamestream::host::{StreamEvent, StreamHandle};
use gamestream::input::InputEvent;
use gamestream::video::{FrameInfo, FrameType};

/// Size of every synthetic Opus packet (CBR, like Sunshine, so audio FEC applies to every block).
pub const OPUS_LEN: usize = 64;

/// Start code, NAL header, counter and length.
const AU_HEADER: usize = 15;

fn fill(counter: u32, i: usize) -> u8 {
    (counter.wrapping_mul(31) as usize ^ i.wrapping_mul(7) ^ (i >> 8)) as u8
}

/// Writes `v` as five 7-bit groups, each with the high bit set: never a zero byte, so the header
/// can never hold `00 00 01`. A real NAL unit cannot contain a start code (emulation prevention);
/// a big-endian counter of 1 did (`00 00 00 01`), and an RTP packetizer split the frame there.
fn put_u32(out: &mut Vec<u8>, v: u32) {
    out.extend([28, 21, 14, 7, 0].map(|shift| 0x80 | ((v >> shift) & 0x7f) as u8));
}

fn get_u32(bytes: &[u8]) -> u32 {
    bytes
        .iter()
        .fold(0u32, |v, b| (v << 7) | u32::from(b & 0x7f))
}

/// An Annex B access unit: start code, NAL header (IDR 0x65 or non-IDR 0x41), counter, length,
/// then counter-derived bytes. Keyframes are larger, as real ones are. Like a real NAL unit it
/// holds no `00 00 0x` sequence after its start code (the body never has two zeros in a row).
pub fn video_au(counter: u32, idr: bool) -> Vec<u8> {
    let body = if idr {
        30_000 + (counter as usize * 7_919) % 20_000
    } else {
        1_500 + (counter as usize * 104_729) % 12_000
    };
    let mut au = Vec::with_capacity(body + AU_HEADER);
    au.extend_from_slice(&[0, 0, 0, 1, if idr { 0x65 } else { 0x41 }]);
    put_u32(&mut au, counter);
    put_u32(&mut au, body as u32);
    au.extend((0..body).map(|i| fill(counter, i)));
    au
}

/// Checks a received access unit (H.264 receivers keep the last shard's zero padding) and returns
/// its counter and whether it is a keyframe.
pub fn check_video_au(data: &[u8]) -> Result<(u32, bool), String> {
    if data.len() < AU_HEADER || data[..4] != [0, 0, 0, 1] {
        return Err("no start code".into());
    }
    let idr = match data[4] {
        0x65 => true,
        0x41 => false,
        other => return Err(format!("unexpected NAL header {other:#x}")),
    };
    let counter = get_u32(&data[5..10]);
    let expected = video_au(counter, idr);
    if data.len() < expected.len() || data[..expected.len()] != expected[..] {
        let first = data.iter().zip(&expected).position(|(a, b)| a != b);
        return Err(format!("frame {counter}: content differs (got {} bytes, expected {}, first difference at {first:?})", data.len(), expected.len()));
    }
    if data[expected.len()..].iter().any(|b| *b != 0) {
        return Err(format!(
            "frame {counter}: non-zero bytes after the access unit"
        ));
    }
    Ok((counter, idr))
}

/// An Opus-sized packet derived from `counter`.
pub fn opus_packet(counter: u32) -> Vec<u8> {
    let mut p = Vec::with_capacity(OPUS_LEN);
    p.extend_from_slice(&counter.to_be_bytes());
    p.extend((4..OPUS_LEN).map(|i| fill(counter ^ 0xA5A5, i)));
    p
}

/// Checks a received audio packet and returns its counter.
pub fn check_opus(data: &[u8]) -> Result<u32, String> {
    if data.len() != OPUS_LEN {
        return Err(format!("audio packet of {} bytes", data.len()));
    }
    let counter = u32::from_be_bytes([data[0], data[1], data[2], data[3]]);
    if data != opus_packet(counter) {
        return Err(format!("audio packet {counter}: content differs"));
    }
    Ok(counter)
}

/// What a producer did.
#[derive(Debug, Default, Clone, Copy)]
pub struct ProducerReport {
    /// Video frames sent.
    pub frames: u32,
    /// Keyframes among them.
    pub keyframes: u32,
    /// Keyframe requests received.
    pub keyframe_requests: u32,
    /// Audio packets sent.
    pub audio_packets: u32,
}

/// Streams synthetic video (one frame per `frame_interval`, a keyframe first and whenever asked) and
/// 5 ms audio packets until the stream ends; records every input event the host decodes.
pub async fn produce(
    mut stream: StreamHandle,
    frame_interval: Duration,
    inputs: Arc<Mutex<Vec<InputEvent>>>,
) -> ProducerReport {
    let mut report = ProducerReport::default();
    let wait = Duration::from_secs(5);
    if stream.video.wait_for_client(wait).await.is_err()
        || stream.audio.wait_for_client(wait).await.is_none()
    {
        return report;
    }
    let fps = (1.0 / frame_interval.as_secs_f64()).round().max(1.0) as u32;
    let audio_per_frame = (frame_interval.as_millis() / 5).max(1) as u32;
    let mut tick = tokio::time::interval(frame_interval);
    let mut frame_index = 1u32;
    let mut want_keyframe = true;
    loop {
        tokio::select! {
            event = stream.events.recv() => match event {
                Some(StreamEvent::Input(e)) => inputs.lock().unwrap().push(e),
                Some(StreamEvent::KeyframeRequested) => {
                    report.keyframe_requests += 1;
                    want_keyframe = true;
                }
                Some(StreamEvent::Ended(_)) | None => return report,
                Some(_) => {}
            },
            _ = tick.tick() => {
                let idr = std::mem::take(&mut want_keyframe);
                let au = video_au(frame_index, idr);
                let info = FrameInfo {
                    frame_index,
                    frame_type: if idr { FrameType::Idr } else { FrameType::P },
                    rtp_timestamp: frame_index.wrapping_mul(90_000 / fps),
                    processing_latency: 0,
                };
                if stream.video.send_frame(&au, info).await.is_err() {
                    return report;
                }
                report.frames += 1;
                report.keyframes += u32::from(idr);
                frame_index += 1;
                for _ in 0..audio_per_frame {
                    let _ = stream.audio.send_opus(&opus_packet(report.audio_packets)).await;
                    report.audio_packets += 1;
                }
            }
        }
    }
}
