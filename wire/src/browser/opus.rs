//! How an Opus audio stream splits its channels into elementary streams: what a browser needs to
//! decode surround (moongate's StreamInit extension, `docs/browser-protocol.md` §StreamInit).
//!
//! Stereo is one coupled stream and decodes without it, but 5.1 and 7.1 are *multistream* Opus
//! (RFC 7845 §5.1.1): a packet holds several elementary streams, and a decoder must be told how
//! many there are, how many of them are stereo, and which decoded channel feeds which speaker.
//! The host announces this in RTSP (`surround-params`); the gateway passes it on unchanged.

use thiserror::Error;

/// Most channels a GameStream host sends (7.1).
pub const MAX_CHANNELS: usize = 8;

/// A channel layout that cannot describe a decodable Opus stream.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("Opus layout: {0}")]
pub struct OpusLayoutError(&'static str);

/// The multistream layout of an Opus stream, as `opus_multistream_decoder_create` takes it.
///
/// `mapping[i]` is the decoded stream channel that feeds output channel `i`, with the outputs in
/// the GameStream speaker order FL FR FC LFE BL BR SL SR (the WAVEFORMATEXTENSIBLE order, which is
/// also Web Audio's order for 5.1 and 7.1). 255 means "silent".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpusLayout {
    channels: u8,
    streams: u8,
    coupled_streams: u8,
    mapping: [u8; MAX_CHANNELS],
}

impl OpusLayout {
    /// A checked layout: 1..=8 channels, at least one stream, coupled ≤ streams, and every mapping
    /// entry either silent (255) or a decoded channel that exists.
    pub fn new(
        streams: u8,
        coupled_streams: u8,
        mapping: &[u8],
    ) -> Result<OpusLayout, OpusLayoutError> {
        let channels = mapping.len();
        if channels == 0 || channels > MAX_CHANNELS {
            return Err(OpusLayoutError("1 to 8 channels"));
        }
        if streams == 0 || coupled_streams > streams {
            return Err(OpusLayoutError("stream counts"));
        }
        let decoded = u16::from(streams) + u16::from(coupled_streams);
        if decoded > 255 {
            return Err(OpusLayoutError("too many streams"));
        }
        if mapping.iter().any(|&m| m != 255 && u16::from(m) >= decoded) {
            return Err(OpusLayoutError(
                "mapping names a stream channel that does not exist",
            ));
        }
        let mut m = [255u8; MAX_CHANNELS];
        m[..channels].copy_from_slice(mapping);
        Ok(OpusLayout {
            channels: channels as u8,
            streams,
            coupled_streams,
            mapping: m,
        })
    }

    /// Plain stereo: one coupled stream, left then right.
    pub fn stereo() -> OpusLayout {
        OpusLayout {
            channels: 2,
            streams: 1,
            coupled_streams: 1,
            mapping: [0, 1, 255, 255, 255, 255, 255, 255],
        }
    }

    /// Output channels.
    pub fn channels(&self) -> u8 {
        self.channels
    }

    /// Elementary Opus streams in each packet.
    pub fn streams(&self) -> u8 {
        self.streams
    }

    /// Of those, the stereo ones (they come first).
    pub fn coupled_streams(&self) -> u8 {
        self.coupled_streams
    }

    /// Per output channel (speaker order), the decoded stream channel.
    pub fn mapping(&self) -> &[u8] {
        &self.mapping[..usize::from(self.channels)]
    }

    /// Encoded size: streams, coupled streams, one mapping byte per channel.
    pub fn encoded_len(&self) -> usize {
        2 + usize::from(self.channels)
    }

    /// Appends streams, coupled streams and the mapping (the channel count is carried elsewhere).
    pub fn write(&self, out: &mut impl bytes::BufMut) {
        out.put_u8(self.streams);
        out.put_u8(self.coupled_streams);
        out.put_slice(self.mapping());
    }

    /// Reads what [`OpusLayout::write`] wrote for `channels` channels; `None` if `buf` is too short.
    pub fn read(channels: u8, buf: &[u8]) -> Option<Result<OpusLayout, OpusLayoutError>> {
        let n = usize::from(channels);
        let bytes = buf.get(..2 + n)?;
        Some(OpusLayout::new(bytes[0], bytes[1], &bytes[2..]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checks_and_round_trips_the_host_layouts() {
        // Stereo, Sunshine's normal and high-quality 5.1 and 7.1 (after the client's fix-up,
        // gamestream-protocol-2-media.md §5.1), and a permuted 5.1.
        for (streams, coupled, mapping) in [
            (1u8, 1u8, &[0u8, 1][..]),
            (4, 2, &[0, 1, 2, 3, 4, 5]),
            (6, 0, &[0, 1, 2, 3, 4, 5]),
            (5, 3, &[0, 1, 2, 3, 4, 5, 6, 7]),
            (4, 2, &[0, 1, 4, 5, 2, 3]),
        ] {
            let l = OpusLayout::new(streams, coupled, mapping).unwrap();
            let mut out = Vec::new();
            l.write(&mut out);
            assert_eq!(out.len(), l.encoded_len());
            assert_eq!(OpusLayout::read(l.channels(), &out), Some(Ok(l)));
            assert_eq!(OpusLayout::read(l.channels(), &out[..out.len() - 1]), None);
        }
        assert_eq!(
            OpusLayout::new(1, 1, &[0, 1]).unwrap(),
            OpusLayout::stereo()
        );
    }

    #[test]
    fn rejects_layouts_no_decoder_accepts() {
        assert!(OpusLayout::new(1, 1, &[]).is_err());
        assert!(OpusLayout::new(1, 1, &[0; 9]).is_err());
        assert!(OpusLayout::new(0, 0, &[0, 1]).is_err());
        assert!(OpusLayout::new(1, 2, &[0, 1]).is_err());
        // One coupled stream decodes to channels 0 and 1 only.
        assert!(OpusLayout::new(1, 1, &[0, 2]).is_err());
        assert!(OpusLayout::new(1, 1, &[0, 255]).is_ok());
    }
}
