//! Audio channel configurations (media spec §5.1): Opus multistream layout, the `/launch`
//! `surroundAudioInfo` value, moonlight-common-c's `MAKE_AUDIO_CONFIGURATION`, and the
//! `surround-params` SDP value.

use super::AudioError;

/// One Opus multistream configuration, as Sunshine's `stream_configs` table lists them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AudioConfig {
    /// 2, 6 or 8.
    pub channels: u8,
    /// Speaker mask: stereo 0x3, 5.1 0x3F, 7.1 0x63F.
    pub channel_mask: u16,
    /// Opus streams.
    pub streams: u8,
    /// Opus coupled (stereo) streams.
    pub coupled_streams: u8,
    /// Encoder channel mapping, `channels` entries (speaker order FL FR FC LFE BL BR SL SR).
    pub mapping: Vec<u8>,
    /// Encoder bitrate in bit/s.
    pub bitrate: u32,
    /// High-quality variant (`x-nv-audio.surround.AudioQuality=1`).
    pub high_quality: bool,
}

/// Opus always runs at 48 kHz in GameStream.
pub const SAMPLE_RATE: u32 = 48_000;

impl AudioConfig {
    /// The configuration for `channels` (2, 6, 8) and quality.
    pub fn new(channels: u8, high_quality: bool) -> Result<Self, AudioError> {
        let (mask, streams, coupled, bitrate) = match (channels, high_quality) {
            (2, false) => (0x3, 1, 1, 96_000),
            (2, true) => (0x3, 1, 1, 512_000),
            (6, false) => (0x3F, 4, 2, 256_000),
            (6, true) => (0x3F, 6, 0, 1_536_000),
            (8, false) => (0x63F, 5, 3, 450_000),
            (8, true) => (0x63F, 8, 0, 2_048_000),
            _ => return Err(AudioError::UnsupportedChannels(u32::from(channels))),
        };
        Ok(Self {
            channels,
            channel_mask: mask,
            streams,
            coupled_streams: coupled,
            mapping: (0..channels).collect(),
            bitrate,
            high_quality,
        })
    }

    /// Stereo, normal quality (the default).
    pub fn stereo() -> Self {
        Self {
            channels: 2,
            channel_mask: 0x3,
            streams: 1,
            coupled_streams: 1,
            mapping: vec![0, 1],
            bitrate: 96_000,
            high_quality: false,
        }
    }

    /// The `/launch` `surroundAudioInfo` argument: `(mask << 16) | channels`.
    pub fn surround_audio_info(&self) -> u32 {
        (u32::from(self.channel_mask) << 16) | u32::from(self.channels)
    }

    /// Host side: reads `surroundAudioInfo`. Like Wolf, only the low 16 bits (channel count) decide.
    pub fn from_surround_audio_info(value: u32, high_quality: bool) -> Result<Self, AudioError> {
        let channels = value & 0xFFFF;
        let channels =
            u8::try_from(channels).map_err(|_| AudioError::UnsupportedChannels(channels))?;
        Self::new(channels, high_quality)
    }

    /// moonlight-common-c's `MAKE_AUDIO_CONFIGURATION`: `(mask << 16) | (channels << 8) | 0xCA`.
    pub fn audio_configuration(&self) -> u32 {
        (u32::from(self.channel_mask) << 16) | (u32::from(self.channels) << 8) | 0xCA
    }

    /// Samples per channel in one packet of `packet_duration_ms`.
    pub fn samples_per_frame(packet_duration_ms: u32) -> u32 {
        SAMPLE_RATE / 1000 * packet_duration_ms
    }

    /// Host side: the `surround-params` value for `a=fmtp:97 surround-params=…` (digits of channels,
    /// streams, coupled streams, mapping). Like Sunshine, normal-quality 5.1/7.1 mappings are
    /// pre-rotated (indices 3..6 left by one) to cancel the client's GFE-order fix-up.
    pub fn surround_params(&self) -> String {
        let mut mapping = self.mapping.clone();
        if !self.high_quality && self.channels > 2 {
            if let Some(window) = mapping.get_mut(3..6) {
                window.rotate_left(1);
            }
        }
        let mut s = format!("{}{}{}", self.channels, self.streams, self.coupled_streams);
        for m in mapping {
            s.push_str(&m.to_string());
        }
        s
    }

    /// Client side: parses a `surround-params` value. For normal-quality 6/8-channel configs the last
    /// mapping entry moves to index 3 (moonlight-common-c's fix-up for GFE's speaker order).
    pub fn from_surround_params(params: &str, high_quality: bool) -> Result<Self, AudioError> {
        let digits: Vec<u8> = params
            .trim()
            .bytes()
            .map(|b| {
                if b.is_ascii_digit() {
                    Ok(b - b'0')
                } else {
                    Err(AudioError::BadSurroundParams)
                }
            })
            .collect::<Result<_, _>>()?;
        let [channels, streams, coupled, mapping @ ..] = digits.as_slice() else {
            return Err(AudioError::BadSurroundParams);
        };
        if mapping.len() != usize::from(*channels) {
            return Err(AudioError::BadSurroundParams);
        }
        let mut config = Self::new(*channels, high_quality)?;
        config.streams = *streams;
        config.coupled_streams = *coupled;
        let mut mapping = mapping.to_vec();
        if !high_quality && *channels > 2 {
            if let Some(last) = mapping.pop() {
                mapping.insert(3, last);
            }
        }
        config.mapping = mapping;
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn surround_audio_info_checklist() {
        assert_eq!(AudioConfig::stereo().surround_audio_info(), 196610);
        assert_eq!(
            AudioConfig::new(6, false).unwrap().surround_audio_info(),
            4128774
        );
        assert_eq!(
            AudioConfig::new(8, false).unwrap().surround_audio_info(),
            104792072
        );
        for v in [196610u32, 4128774, 104792072] {
            assert_eq!(
                AudioConfig::from_surround_audio_info(v, false)
                    .unwrap()
                    .surround_audio_info(),
                v
            );
        }
        assert!(AudioConfig::from_surround_audio_info(0x30003, false).is_err());
        assert!(AudioConfig::from_surround_audio_info(0x10002_u32 << 8, false).is_err());
    }

    #[test]
    fn table_and_configuration() {
        let c = AudioConfig::new(6, true).unwrap();
        assert_eq!((c.streams, c.coupled_streams, c.bitrate), (6, 0, 1_536_000));
        let c = AudioConfig::new(8, false).unwrap();
        assert_eq!(
            (c.streams, c.coupled_streams, c.bitrate, c.mapping.len()),
            (5, 3, 450_000, 8)
        );
        assert_eq!(AudioConfig::stereo().audio_configuration(), 0x0003_02CA);
        assert_eq!(
            AudioConfig::new(6, false).unwrap().audio_configuration(),
            0x003F_06CA
        );
        assert_eq!(
            AudioConfig::new(8, false).unwrap().audio_configuration(),
            0x063F_08CA
        );
        assert_eq!(AudioConfig::samples_per_frame(5), 240);
        assert_eq!(AudioConfig::samples_per_frame(10), 480);
    }

    #[test]
    fn surround_params_round_trip() {
        assert_eq!(AudioConfig::stereo().surround_params(), "21101");
        let c51 = AudioConfig::new(6, false).unwrap();
        assert_eq!(c51.surround_params(), "642012453");
        assert_eq!(
            AudioConfig::from_surround_params("642012453", false).unwrap(),
            c51
        );
        let hq = AudioConfig::new(6, true).unwrap();
        assert_eq!(hq.surround_params(), "660012345");
        assert_eq!(
            AudioConfig::from_surround_params(&hq.surround_params(), true).unwrap(),
            hq
        );
        assert!(AudioConfig::from_surround_params("64201245", false).is_err());
        assert!(AudioConfig::from_surround_params("6x2012453", false).is_err());
        assert!(AudioConfig::from_surround_params("", false).is_err());
    }
}
