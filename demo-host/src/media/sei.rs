//! Send-time stamps inside the video bitstream, so a receiver can measure host→screen latency.
//!
//! H.264 and HEVC carry a "user data unregistered" SEI message (payload type 5: a 16-byte UUID,
//! then our 8-byte big-endian µs timestamp); AV1 carries a metadata OBU of an unregistered private
//! type with the same UUID and timestamp. The unit goes right before the first picture NAL/OBU,
//! i.e. after any parameter sets, where decoders expect prefix SEI/metadata. Decoders that do not
//! know the UUID skip it.
//!
//! Stamping runs at send time for every frame, so it scans start codes once and makes exactly one
//! output allocation; nothing is re-encoded.

use super::VideoCodec;

/// Identifies our SEI/metadata payload ("moongate-sendtim" in ASCII, no zero bytes so only the
/// timestamp can ever need emulation prevention).
pub const SEND_TIME_UUID: [u8; 16] = *b"moongate-sendtim";

/// AV1 metadata_type for the stamp: 6..=31 are "unregistered user private" (AV1 spec 6.7.1).
const AV1_METADATA_TYPE: u8 = 25;
const AV1_OBU_METADATA: u8 = 5;

/// Inserts a send-time unit in front of the first picture of `data`; see the module doc.
/// Data without a picture NAL/OBU gets the unit appended at the end.
pub fn stamp(codec: VideoCodec, data: &[u8], send_time_us: u64) -> Vec<u8> {
    let mut payload = [0u8; 24];
    payload[..16].copy_from_slice(&SEND_TIME_UUID);
    payload[16..].copy_from_slice(&send_time_us.to_be_bytes());
    let (at, unit) = match codec {
        VideoCodec::H264 | VideoCodec::Hevc => {
            let at = first_picture_nal(codec, data).unwrap_or(data.len());
            let mut unit = Vec::with_capacity(40);
            unit.extend_from_slice(&[0, 0, 0, 1]);
            if codec == VideoCodec::H264 {
                unit.push(6); // nal_ref_idc 0, type 6 (SEI)
            } else {
                unit.extend_from_slice(&[39 << 1, 1]); // prefix SEI, layer 0, temporal id 0
            }
            let mut rbsp = [0u8; 27];
            rbsp[0] = 5; // payload type: user data unregistered
            rbsp[1] = 24; // payload size
            rbsp[2..26].copy_from_slice(&payload);
            rbsp[26] = 0x80; // rbsp trailing bits
            escape_into(&rbsp, &mut unit);
            (at, unit)
        }
        VideoCodec::Av1 => {
            let at = first_picture_obu(data).unwrap_or(data.len());
            // header (type 5, has_size_field), size, metadata_type, payload, trailing bits.
            let mut unit = Vec::with_capacity(28);
            unit.push((AV1_OBU_METADATA << 3) | 0x02);
            unit.push(1 + 24 + 1);
            unit.push(AV1_METADATA_TYPE);
            unit.extend_from_slice(&payload);
            unit.push(0x80);
            (at, unit)
        }
    };
    let mut out = Vec::with_capacity(data.len() + unit.len());
    out.extend_from_slice(&data[..at]);
    out.extend_from_slice(&unit);
    out.extend_from_slice(&data[at..]);
    out
}

/// Finds a stamp written by [`stamp`]; `None` when there is none or it is malformed.
pub fn read(codec: VideoCodec, data: &[u8]) -> Option<u64> {
    match codec {
        VideoCodec::H264 | VideoCodec::Hevc => nal_units(data).find_map(|(_, nal)| {
            let (is_sei, header) = match codec {
                VideoCodec::H264 => (nal.first()? & 0x1F == 6, 1),
                _ => ((nal.first()? >> 1) & 0x3F == 39, 2),
            };
            if !is_sei {
                return None;
            }
            let rbsp = unescape(nal.get(header..)?);
            sei_send_time(&rbsp)
        }),
        VideoCodec::Av1 => obus(data).find_map(|(_, obu_type, payload)| {
            if obu_type != AV1_OBU_METADATA || payload.first() != Some(&AV1_METADATA_TYPE) {
                return None;
            }
            uuid_time(payload.get(1..25)?)
        }),
    }
}

/// Walks the SEI messages of one SEI RBSP looking for ours.
fn sei_send_time(rbsp: &[u8]) -> Option<u64> {
    let mut i = 0;
    while i < rbsp.len() && rbsp[i] != 0x80 {
        let mut ptype = 0usize;
        while *rbsp.get(i)? == 0xFF {
            ptype += 255;
            i += 1;
        }
        ptype += usize::from(*rbsp.get(i)?);
        i += 1;
        let mut size = 0usize;
        while *rbsp.get(i)? == 0xFF {
            size += 255;
            i += 1;
        }
        size += usize::from(*rbsp.get(i)?);
        i += 1;
        let body = rbsp.get(i..i + size)?;
        if ptype == 5 && size == 24 {
            if let Some(t) = uuid_time(body) {
                return Some(t);
            }
        }
        i += size;
    }
    None
}

fn uuid_time(body: &[u8]) -> Option<u64> {
    if body.len() < 24 || body[..16] != SEND_TIME_UUID {
        return None;
    }
    Some(u64::from_be_bytes(body[16..24].try_into().ok()?))
}

/// Appends `rbsp` with emulation-prevention bytes: a 0x03 after any two zero bytes that are
/// followed by a byte ≤ 3 (H.264 7.4.1, HEVC 7.4.2).
pub fn escape_into(rbsp: &[u8], out: &mut Vec<u8>) {
    let mut zeros = 0;
    for &b in rbsp {
        if zeros >= 2 && b <= 3 {
            out.push(3);
            zeros = 0;
        }
        out.push(b);
        zeros = if b == 0 { zeros + 1 } else { 0 };
    }
}

/// Removes emulation-prevention bytes.
pub fn unescape(ebsp: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(ebsp.len());
    let mut zeros = 0;
    for &b in ebsp {
        if zeros >= 2 && b == 3 {
            zeros = 0;
            continue;
        }
        out.push(b);
        zeros = if b == 0 { zeros + 1 } else { 0 };
    }
    out
}

/// Annex B start codes as `(offset of the start code, offset of the NAL header)`; the first
/// offset includes the leading zero of a 4-byte start code. Lazy: stops scanning when dropped.
fn start_codes(data: &[u8]) -> impl Iterator<Item = (usize, usize)> + '_ {
    let mut i = 0;
    std::iter::from_fn(move || {
        while i + 3 <= data.len() {
            if data[i + 2] > 1 {
                i += 3;
            } else if data[i] == 0 && data[i + 1] == 0 && data[i + 2] == 1 {
                let code_at = if i > 0 && data[i - 1] == 0 { i - 1 } else { i };
                i += 3;
                return Some((code_at, i));
            } else {
                i += 1;
            }
        }
        None
    })
}

/// Annex B NAL units as `(offset of the start code, NAL bytes without start code)`.
pub fn nal_units(data: &[u8]) -> impl Iterator<Item = (usize, &[u8])> {
    let mut codes = start_codes(data).peekable();
    std::iter::from_fn(move || {
        let (code_at, body) = codes.next()?;
        let end = codes.peek().map_or(data.len(), |&(next, _)| next);
        Some((code_at, &data[body..end.max(body)]))
    })
}

/// Where the first picture NAL's start code begins; scans only the bytes in front of it.
fn first_picture_nal(codec: VideoCodec, data: &[u8]) -> Option<usize> {
    start_codes(data).find_map(|(at, body)| {
        let first = *data.get(body)?;
        let vcl = match codec {
            VideoCodec::H264 => (1..=5).contains(&(first & 0x1F)),
            _ => (first >> 1) & 0x3F < 32,
        };
        vcl.then_some(at)
    })
}

/// AV1 low-overhead OBUs as `(offset, obu_type, payload)`; stops at the first malformed OBU.
pub fn obus(data: &[u8]) -> impl Iterator<Item = (usize, u8, &[u8])> {
    let mut i = 0;
    std::iter::from_fn(move || {
        let at = i;
        let header = *data.get(i)?;
        let obu_type = (header >> 3) & 0x0F;
        let mut j = i + 1 + usize::from(header & 0x04 != 0);
        let size = if header & 0x02 != 0 {
            let (size, n) = leb128(data.get(j..)?)?;
            j += n;
            size
        } else {
            data.len().checked_sub(j)?
        };
        let end = j.checked_add(size)?;
        let payload = data.get(j..end)?;
        i = end;
        Some((at, obu_type, payload))
    })
}

fn leb128(data: &[u8]) -> Option<(usize, usize)> {
    let mut value = 0usize;
    for (k, &b) in data.iter().take(8).enumerate() {
        value |= usize::from(b & 0x7F) << (7 * k);
        if b & 0x80 == 0 {
            return Some((value, k + 1));
        }
    }
    None
}

fn first_picture_obu(data: &[u8]) -> Option<usize> {
    // OBU_FRAME_HEADER (3), OBU_TILE_GROUP (4), OBU_FRAME (6), OBU_REDUNDANT_FRAME_HEADER (7).
    obus(data).find_map(|(at, t, _)| matches!(t, 3 | 4 | 6 | 7).then_some(at))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_round_trips_and_inserts_where_needed() {
        let raw = [0, 0, 0, 0, 1, 0, 0, 2, 0, 0, 3, 0, 0, 4, 0, 0];
        let mut esc = Vec::new();
        escape_into(&raw, &mut esc);
        assert_eq!(
            esc,
            [0, 0, 3, 0, 0, 3, 1, 0, 0, 3, 2, 0, 0, 3, 3, 0, 0, 4, 0, 0]
        );
        assert_eq!(unescape(&esc), raw);
    }

    #[test]
    fn nal_units_split_three_and_four_byte_start_codes() {
        let data = [
            9, 0, 0, 0, 1, 0x67, 5, 0, 0, 1, 0x68, 0, 0, 0, 1, 0x65, 0, 0, 2,
        ];
        let nals: Vec<_> = nal_units(&data).collect();
        assert_eq!(
            nals,
            vec![
                (1, &[0x67, 5][..]),
                (7, &[0x68][..]),
                (11, &[0x65, 0, 0, 2][..])
            ]
        );
        assert_eq!(first_picture_nal(VideoCodec::H264, &data), Some(11));
        assert_eq!(first_picture_nal(VideoCodec::H264, &data[..11]), None);
    }

    #[test]
    fn garbage_never_panics() {
        for data in [
            &[][..],
            &[0, 0, 1],
            &[0, 0, 1, 6, 5],
            &[0, 0, 1, 6, 0xFF, 0xFF],
            &[0x2A, 0xFF],
        ] {
            for codec in [VideoCodec::H264, VideoCodec::Hevc, VideoCodec::Av1] {
                assert_eq!(read(codec, data), None);
                let stamped = stamp(codec, data, 7);
                // A malformed OBU swallows what follows it, so only Annex B must still find it.
                if codec != VideoCodec::Av1 {
                    assert_eq!(read(codec, &stamped), Some(7), "{codec:?} {data:?}");
                }
            }
        }
    }
}
