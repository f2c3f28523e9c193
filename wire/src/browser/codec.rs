//! Video codec identifiers (the `codec` byte of VideoFrame and StreamInit) and Moonlight's
//! `SupportedVideoFormats` bits (the init's `video_supported_formats`), contract §2.2.
//!
//! The two numberings differ: the codec byte picks a WebCodecs decoder string, the bitmask says
//! what the browser can decode. [`VideoCodec::format_bit`] and [`VideoCodec::from_format_bit`]
//! translate between them so the gateway can name in StreamInit the format it negotiated.

/// `video_supported_formats` bits: Moonlight's `SupportedVideoFormats`, the same bits the RTSP
/// layer negotiates with, so they are defined once in `gamestream`.
pub use gamestream::rtsp::describe::video_format as formats;

/// The `codec` byte of VideoFrame (0x01) and StreamInit (0x30).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum VideoCodec {
    /// H.264 (`avc1.4d0033` in the reference client).
    H264 = 0x01,
    /// H.264 High 4:4:4.
    H264High444 = 0x02,
    /// HEVC Main.
    HevcMain = 0x10,
    /// HEVC Main10.
    HevcMain10 = 0x11,
    /// HEVC RExt 8-bit 4:4:4.
    HevcRext8_444 = 0x12,
    /// HEVC RExt 10-bit 4:4:4.
    HevcRext10_444 = 0x13,
    /// AV1 Main 8-bit.
    Av1Main8 = 0x20,
    /// AV1 Main 10-bit.
    Av1Main10 = 0x21,
    /// AV1 High 8-bit 4:4:4.
    Av1High8_444 = 0x22,
    /// AV1 High 10-bit 4:4:4.
    Av1High10_444 = 0x23,
}

impl VideoCodec {
    /// Every codec, in the order the gateway prefers them when several are possible: the most
    /// widely decodable first (hardware H.264 decoders are everywhere).
    pub const ALL: [VideoCodec; 10] = [
        VideoCodec::H264,
        VideoCodec::HevcMain,
        VideoCodec::Av1Main8,
        VideoCodec::HevcMain10,
        VideoCodec::Av1Main10,
        VideoCodec::H264High444,
        VideoCodec::HevcRext8_444,
        VideoCodec::HevcRext10_444,
        VideoCodec::Av1High8_444,
        VideoCodec::Av1High10_444,
    ];

    /// The wire byte.
    pub fn to_byte(self) -> u8 {
        self as u8
    }

    /// Parses a wire byte; `None` for an unknown value (the reference client would fall back to
    /// H.264 for it, a gateway should not send one).
    pub fn from_byte(b: u8) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.to_byte() == b)
    }

    /// The matching `video_supported_formats` bit.
    pub fn format_bit(self) -> u32 {
        match self {
            VideoCodec::H264 => formats::H264,
            VideoCodec::H264High444 => formats::H264_HIGH8_444,
            VideoCodec::HevcMain => formats::H265,
            VideoCodec::HevcMain10 => formats::H265_MAIN10,
            VideoCodec::HevcRext8_444 => formats::H265_REXT8_444,
            VideoCodec::HevcRext10_444 => formats::H265_REXT10_444,
            VideoCodec::Av1Main8 => formats::AV1_MAIN8,
            VideoCodec::Av1Main10 => formats::AV1_MAIN10,
            VideoCodec::Av1High8_444 => formats::AV1_HIGH8_444,
            VideoCodec::Av1High10_444 => formats::AV1_HIGH10_444,
        }
    }

    /// The codec for exactly one format bit.
    pub fn from_format_bit(bit: u32) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.format_bit() == bit)
    }

    /// The preferred codec (order of [`VideoCodec::ALL`]) whose bit is set in `mask`.
    pub fn preferred_in(mask: u32) -> Option<Self> {
        Self::ALL.into_iter().find(|c| mask & c.format_bit() != 0)
    }

    /// The WebCodecs codec string the reference client builds for this byte.
    pub fn webcodecs_string(self) -> &'static str {
        match self {
            VideoCodec::H264 => "avc1.4d0033",
            VideoCodec::H264High444 => "avc1.640032",
            VideoCodec::HevcMain => "hvc1.1.6.L120.90",
            VideoCodec::HevcMain10 => "hvc1.2.4.L120.90",
            VideoCodec::HevcRext8_444 | VideoCodec::HevcRext10_444 => "hvc1.4.10.L120.90",
            VideoCodec::Av1Main8 => "av01.0.08M.08",
            VideoCodec::Av1Main10 => "av01.0.08M.10",
            VideoCodec::Av1High8_444 => "av01.1.08H.08",
            VideoCodec::Av1High10_444 => "av01.1.08H.10",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_and_bits_round_trip() {
        for c in VideoCodec::ALL {
            assert_eq!(VideoCodec::from_byte(c.to_byte()), Some(c));
            assert_eq!(VideoCodec::from_format_bit(c.format_bit()), Some(c));
            assert_ne!(formats::ALL & c.format_bit(), 0);
        }
        assert_eq!(VideoCodec::from_byte(0x03), None);
        assert_eq!(formats::ALL.count_ones(), 10);
    }

    #[test]
    fn contract_values() {
        // §2.2: 257 = H264 | H265 (the example init).
        assert_eq!(formats::H264 | formats::H265, 257);
        assert_eq!(VideoCodec::preferred_in(257), Some(VideoCodec::H264));
        assert_eq!(VideoCodec::preferred_in(0x0100), Some(VideoCodec::HevcMain));
        assert_eq!(VideoCodec::preferred_in(0), None);
        assert_eq!(VideoCodec::HevcRext8_444.to_byte(), 0x12);
        assert_eq!(VideoCodec::Av1High10_444.to_byte(), 0x23);
        assert_eq!(VideoCodec::H264.webcodecs_string(), "avc1.4d0033");
    }
}
