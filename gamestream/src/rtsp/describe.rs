//! The DESCRIBE payload: what the host can do. Not real SDP — clients only do substring searches —
//! so the builder emits the exact markers Sunshine/Wolf emit and the parser reads them the way
//! moonlight-common-c does (substring + `strtoul(…, 0)`).

use super::fields::strtoul0;

/// Video format bits (moonlight-common-c `VIDEO_FORMAT_*`): what a client can decode / what was negotiated.
pub mod video_format {
    /// H.264 4:2:0 8-bit.
    pub const H264: u32 = 0x0001;
    /// H.264 4:4:4 8-bit.
    pub const H264_HIGH8_444: u32 = 0x0004;
    /// HEVC Main.
    pub const H265: u32 = 0x0100;
    /// HEVC Main10.
    pub const H265_MAIN10: u32 = 0x0200;
    /// HEVC RExt 4:4:4 8-bit.
    pub const H265_REXT8_444: u32 = 0x0400;
    /// HEVC RExt 4:4:4 10-bit.
    pub const H265_REXT10_444: u32 = 0x0800;
    /// AV1 Main 8-bit.
    pub const AV1_MAIN8: u32 = 0x1000;
    /// AV1 Main 10-bit.
    pub const AV1_MAIN10: u32 = 0x2000;
    /// AV1 High 4:4:4 8-bit.
    pub const AV1_HIGH8_444: u32 = 0x4000;
    /// AV1 High 4:4:4 10-bit.
    pub const AV1_HIGH10_444: u32 = 0x8000;
    /// Every format bit defined above.
    pub const ALL: u32 = H264
        | H264_HIGH8_444
        | H265
        | H265_MAIN10
        | H265_REXT8_444
        | H265_REXT10_444
        | AV1_MAIN8
        | AV1_MAIN10
        | AV1_HIGH8_444
        | AV1_HIGH10_444;
    /// Any H.264 variant.
    pub const MASK_H264: u32 = 0x000F;
    /// Any HEVC variant.
    pub const MASK_H265: u32 = 0x0F00;
    /// Any AV1 variant.
    pub const MASK_AV1: u32 = 0xF000;
    /// Any 10-bit variant.
    pub const MASK_10BIT: u32 = 0xAA00;
    /// Any 4:4:4 variant.
    pub const MASK_YUV444: u32 = 0xCC04;
}

/// `ServerCodecModeSupport` bits from `/serverinfo` (moonlight-common-c `SCM_*`).
pub mod server_codec {
    /// H.264.
    pub const H264: u32 = 0x00001;
    /// HEVC Main.
    pub const HEVC: u32 = 0x00100;
    /// HEVC Main10.
    pub const HEVC_MAIN10: u32 = 0x00200;
    /// AV1 Main 8-bit.
    pub const AV1_MAIN8: u32 = 0x10000;
    /// AV1 Main 10-bit.
    pub const AV1_MAIN10: u32 = 0x20000;
    /// H.264 4:4:4.
    pub const H264_HIGH8_444: u32 = 0x40000;
    /// HEVC RExt 4:4:4 8-bit.
    pub const HEVC_REXT8_444: u32 = 0x80000;
    /// HEVC RExt 4:4:4 10-bit.
    pub const HEVC_REXT10_444: u32 = 0x100000;
    /// AV1 High 4:4:4 8-bit.
    pub const AV1_HIGH8_444: u32 = 0x200000;
    /// AV1 High 4:4:4 10-bit.
    pub const AV1_HIGH10_444: u32 = 0x400000;
}

/// Sunshine encryption feature bits (`encryptionSupported` / `Requested` / `Enabled`).
pub mod encryption {
    /// Control stream with 12-byte V2 IVs.
    pub const CONTROL_V2: u32 = 0x01;
    /// Video payload encryption.
    pub const VIDEO: u32 = 0x02;
    /// Audio payload encryption.
    pub const AUDIO: u32 = 0x04;
}

const HEVC_MARKER: &str = "sprop-parameter-sets=AAAAAU";
const AV1_MARKER: &str = "AV1/90000";
const RFI_MARKER: &str = "x-nv-video[0].refPicInvalidation";
const SURROUND_PREFIX: &str = "a=fmtp:97 surround-params=";

/// One Opus (multistream) decoder layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpusConfig {
    /// Always 48 000.
    pub sample_rate: u32,
    /// 2, 6 or 8.
    pub channels: u8,
    /// Number of Opus streams.
    pub streams: u8,
    /// Of which coupled (stereo) streams.
    pub coupled_streams: u8,
    /// Output channel → stream channel mapping (`channels` entries used).
    pub mapping: [u8; 8],
}

/// The Opus layouts Sunshine advertises, in its order, with its mappings *before* the host-side
/// rotation (speaker order FL FR FC LFE BL BR SL SR).
const HOST_OPUS_LAYOUTS: [(u8, u8, u8, bool); 6] = [
    (2, 1, 1, false),
    (2, 1, 1, true),
    (6, 4, 2, false),
    (6, 6, 0, true),
    (8, 5, 3, false),
    (8, 8, 0, true),
];

/// What the host advertises in its DESCRIBE reply (host-side builder input).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DescribeParams {
    /// `a=x-ss-general.featureFlags` (Sunshine: 0x01 pen/touch, 0x02 controller touch/motion;
    /// Wolf sends 3). `None` omits the line (GFE-like).
    pub feature_flags: Option<u32>,
    /// `a=x-ss-general.encryptionSupported` (Sunshine only; Wolf omits it).
    pub encryption_supported: Option<u32>,
    /// `a=x-ss-general.encryptionRequested` (Sunshine only; Wolf omits it).
    pub encryption_requested: Option<u32>,
    /// Advertise reference-frame invalidation (Sunshine with a capable encoder; not Wolf).
    pub ref_pic_invalidation: bool,
    /// Advertise HEVC (`sprop-parameter-sets=AAAAAU`).
    pub hevc: bool,
    /// Advertise AV1 (`a=rtpmap:98 AV1/90000`).
    pub av1: bool,
    /// Emit the `a=fmtp:97 surround-params=` lines for 2/6/8 channels at normal quality.
    pub surround_params: bool,
    /// Also emit the high-quality line after each normal one (Sunshine does; Wolf offers no HQ
    /// layouts, so its clients never ask for HQ surround).
    pub high_quality_surround: bool,
    /// Offer the forks' microphone stream on this UDP port ([`crate::mic::describe_lines`]);
    /// `None` (Wolf, Sunshine) offers none.
    pub mic_port: Option<u16>,
}

impl DescribeParams {
    /// What Wolf sends: featureFlags 3, HEVC/AV1 markers, normal-quality surround params; no RFI, no
    /// encryption flags, no HQ layouts. (The mappings are ours, see [`host_surround_params`], not
    /// Wolf's GStreamer-specific ones.)
    pub fn wolf(hevc: bool, av1: bool) -> Self {
        Self {
            feature_flags: Some(3),
            encryption_supported: None,
            encryption_requested: None,
            ref_pic_invalidation: false,
            hevc,
            av1,
            surround_params: true,
            high_quality_surround: false,
            mic_port: None,
        }
    }

    /// What Sunshine sends with encryption mode "optional": supported = control V2 | video | audio,
    /// requested = control V2.
    pub fn sunshine(hevc: bool, av1: bool) -> Self {
        Self {
            feature_flags: Some(3),
            encryption_supported: Some(
                encryption::CONTROL_V2 | encryption::VIDEO | encryption::AUDIO,
            ),
            encryption_requested: Some(encryption::CONTROL_V2),
            ref_pic_invalidation: false,
            hevc,
            av1,
            surround_params: true,
            high_quality_surround: true,
            mic_port: None,
        }
    }

    /// The DESCRIBE payload (LF line endings, as Sunshine writes them).
    pub fn to_payload(&self) -> String {
        let mut s = String::new();
        if let Some(v) = self.feature_flags {
            s += &format!("a=x-ss-general.featureFlags:{v}\n");
        }
        if let Some(v) = self.encryption_supported {
            s += &format!("a=x-ss-general.encryptionSupported:{v}\n");
        }
        if let Some(v) = self.encryption_requested {
            s += &format!("a=x-ss-general.encryptionRequested:{v}\n");
        }
        if self.ref_pic_invalidation {
            s += "a=x-nv-video[0].refPicInvalidation:1\n";
        }
        if self.hevc {
            s += "sprop-parameter-sets=AAAAAU\n";
        }
        if self.av1 {
            s += "a=rtpmap:98 AV1/90000\n";
        }
        if self.surround_params {
            for (line, (_, _, _, hq)) in host_surround_params().iter().zip(HOST_OPUS_LAYOUTS) {
                if !hq || self.high_quality_surround {
                    s += &format!("{SURROUND_PREFIX}{line}\n");
                }
            }
        }
        if let Some(port) = self.mic_port {
            s += &crate::mic::describe_lines(port);
        }
        s
    }
}

/// The six `surround-params` values a Sunshine-like host emits, in order: `<C><S><K><mapping>`.
/// Normal-quality 5.1/7.1 mappings are pre-rotated (indices 3..6 left by one) to cancel the client's
/// GFE fix-up; this reproduces Sunshine's `642012453` and `85301245367`.
pub fn host_surround_params() -> Vec<String> {
    HOST_OPUS_LAYOUTS
        .iter()
        .map(|&(channels, streams, coupled, hq)| {
            let mut mapping: Vec<u8> = (0..channels).collect();
            if !hq && channels > 2 {
                mapping[3..6].rotate_left(1);
            }
            let digits: String = mapping.iter().map(|d| char::from(b'0' + d)).collect();
            format!("{channels}{streams}{coupled}{digits}")
        })
        .collect()
}

/// What the client learned from DESCRIBE.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostCapabilities {
    /// Host can encode HEVC.
    pub hevc: bool,
    /// Host can encode AV1.
    pub av1: bool,
    /// Host supports reference-frame invalidation.
    pub ref_pic_invalidation: bool,
    /// `x-ss-general.featureFlags` (0 if absent): 0x01 pen/touch, 0x02 controller touch/motion.
    pub feature_flags: u32,
    /// `x-ss-general.encryptionSupported` (0 if absent).
    pub encryption_supported: u32,
    /// `x-ss-general.encryptionRequested` (0 if absent).
    pub encryption_requested: u32,
    /// The raw DESCRIBE payload, for the Opus layout search.
    pub payload: String,
}

impl HostCapabilities {
    /// Parses a DESCRIBE payload (never fails; absent markers mean "not supported").
    pub fn parse(payload: &[u8]) -> Self {
        let payload = String::from_utf8_lossy(payload).into_owned();
        Self {
            hevc: payload.contains(HEVC_MARKER),
            av1: payload.contains(AV1_MARKER),
            ref_pic_invalidation: payload.contains(RFI_MARKER),
            feature_flags: sdp_attribute_u32(&payload, "x-ss-general.featureFlags").unwrap_or(0),
            encryption_supported: sdp_attribute_u32(&payload, "x-ss-general.encryptionSupported")
                .unwrap_or(0),
            encryption_requested: sdp_attribute_u32(&payload, "x-ss-general.encryptionRequested")
                .unwrap_or(0),
            payload,
        }
    }

    /// The Opus layouts for `channels`: (normal quality, high quality if offered). `None` for the
    /// normal layout means the host offers nothing usable for that channel count.
    pub fn opus_configs(&self, channels: u8) -> (Option<OpusConfig>, Option<OpusConfig>) {
        opus_configs(&self.payload, channels)
    }

    /// moonlight-common-c's codec choice: AV1 if both sides can, else HEVC, else H.264; within the
    /// codec the 10-bit/4:4:4 variants only when `/serverinfo` `ServerCodecModeSupport` says so too.
    pub fn choose_video_format(&self, client_formats: u32, server_codec_mode_support: u32) -> u32 {
        use server_codec as scm;
        use video_format as vf;
        let both = |scm_bit: u32, vf_bit: u32| {
            server_codec_mode_support & scm_bit != 0 && client_formats & vf_bit != 0
        };
        if client_formats & vf::MASK_AV1 != 0 && self.av1 {
            if both(scm::AV1_HIGH10_444, vf::AV1_HIGH10_444) {
                vf::AV1_HIGH10_444
            } else if both(scm::AV1_MAIN10, vf::AV1_MAIN10) {
                vf::AV1_MAIN10
            } else if both(scm::AV1_HIGH8_444, vf::AV1_HIGH8_444) {
                vf::AV1_HIGH8_444
            } else {
                vf::AV1_MAIN8
            }
        } else if client_formats & vf::MASK_H265 != 0 && self.hevc {
            if both(scm::HEVC_REXT10_444, vf::H265_REXT10_444) {
                vf::H265_REXT10_444
            } else if both(scm::HEVC_MAIN10, vf::H265_MAIN10) {
                vf::H265_MAIN10
            } else if both(scm::HEVC_REXT8_444, vf::H265_REXT8_444) {
                vf::H265_REXT8_444
            } else {
                vf::H265
            }
        } else if both(scm::H264_HIGH8_444, vf::H264_HIGH8_444) {
            vf::H264_HIGH8_444
        } else {
            vf::H264
        }
    }
}

/// moonlight-common-c `parseSdpAttributeToUInt`: find `name` anywhere, skip to the next `:`, parse
/// with `strtoul(…, 0)`. `None` if the name or the colon is missing.
pub fn sdp_attribute_u32(payload: &str, name: &str) -> Option<u32> {
    let start = payload.find(name)?;
    let after = payload.get(start..)?;
    let colon = after.find(':')?;
    Some(strtoul0(after.get(colon + 1..)?))
}

fn parse_surround_digits(digits: &[u8], channels: u8) -> Option<OpusConfig> {
    let digit = |i: usize| {
        digits
            .get(i)
            .and_then(|c| c.checked_sub(b'0'))
            .filter(|d| *d <= 9)
    };
    let mut cfg = OpusConfig {
        sample_rate: 48_000,
        channels,
        streams: digit(0)?,
        coupled_streams: digit(1)?,
        mapping: [0; 8],
    };
    for i in 0..usize::from(channels) {
        *cfg.mapping.get_mut(i)? = digit(2 + i)?;
    }
    Some(cfg)
}

/// Client-side Opus layout search (moonlight-common-c `parseOpusConfigurations`): stereo uses the
/// fixed layout; otherwise the first `surround-params=<channels>` line is normal quality (with the
/// GFE mapping fix-up for 6/8 channels: last digit moves to index 3) and the next one is HQ. Without
/// any line, 5.1 falls back to GFE's old fixed layout; other counts have none.
pub fn opus_configs(payload: &str, channels: u8) -> (Option<OpusConfig>, Option<OpusConfig>) {
    if channels == 2 {
        let cfg = OpusConfig {
            sample_rate: 48_000,
            channels: 2,
            streams: 1,
            coupled_streams: 1,
            mapping: [0, 1, 0, 0, 0, 0, 0, 0],
        };
        return (Some(cfg), None);
    }
    let prefix = format!("{SURROUND_PREFIX}{channels}");
    let Some(first) = payload.find(&prefix) else {
        let fallback = match channels {
            6 => Some((4, 2, [0, 4, 1, 5, 2, 3, 0, 0])),
            _ => None,
        };
        let cfg = fallback.map(|(streams, coupled_streams, mapping)| OpusConfig {
            sample_rate: 48_000,
            channels,
            streams,
            coupled_streams,
            mapping,
        });
        return (cfg, None);
    };
    let rest = &payload[first + prefix.len()..];
    let normal = parse_surround_digits(rest.as_bytes(), channels).map(|mut cfg| {
        if channels == 6 || channels == 8 {
            let n = usize::from(channels);
            let orig = cfg.mapping;
            cfg.mapping[3] = orig[n - 1];
            cfg.mapping[4..n].copy_from_slice(&orig[3..n - 1]);
        }
        cfg
    });
    let hq = rest
        .find(&prefix)
        .and_then(|i| parse_surround_digits(&rest.as_bytes()[i + prefix.len()..], channels));
    (normal, hq)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_surround_params_match_sunshine() {
        assert_eq!(
            host_surround_params(),
            [
                "21101",
                "21101",
                "642012453",
                "660012345",
                "85301245367",
                "88001234567"
            ]
        );
    }

    #[test]
    fn wolf_describe_payload_and_parse() {
        let p = DescribeParams::wolf(true, true).to_payload();
        assert!(p.starts_with(
            "a=x-ss-general.featureFlags:3\nsprop-parameter-sets=AAAAAU\na=rtpmap:98 AV1/90000\n"
        ));
        let caps = HostCapabilities::parse(p.as_bytes());
        assert!(caps.hevc && caps.av1 && !caps.ref_pic_invalidation);
        assert_eq!(
            (
                caps.feature_flags,
                caps.encryption_supported,
                caps.encryption_requested
            ),
            (3, 0, 0)
        );
    }

    #[test]
    fn sunshine_describe_parse() {
        let mut d = DescribeParams::sunshine(false, false);
        d.ref_pic_invalidation = true;
        let caps = HostCapabilities::parse(d.to_payload().as_bytes());
        assert!(!caps.hevc && !caps.av1 && caps.ref_pic_invalidation);
        assert_eq!(
            (
                caps.feature_flags,
                caps.encryption_supported,
                caps.encryption_requested
            ),
            (3, 7, 1)
        );
    }

    #[test]
    fn checklist_attribute_parse() {
        assert_eq!(
            sdp_attribute_u32(
                "a=x-ss-general.featureFlags: 3\n",
                "x-ss-general.featureFlags"
            ),
            Some(3)
        );
        assert_eq!(
            sdp_attribute_u32(
                "a=x-ss-general.featureFlags:0x7\n",
                "x-ss-general.featureFlags"
            ),
            Some(7)
        );
        assert_eq!(
            sdp_attribute_u32("a=other:1\n", "x-ss-general.featureFlags"),
            None
        );
        assert_eq!(
            sdp_attribute_u32("x-ss-general.featureFlags", "x-ss-general.featureFlags"),
            None
        );
    }

    #[test]
    fn opus_selection_with_fixup() {
        let wolf = DescribeParams::wolf(false, false).to_payload();
        assert_eq!(wolf.matches(SURROUND_PREFIX).count(), 3);
        assert_eq!(opus_configs(&wolf, 6).1, None);
        let payload = DescribeParams::sunshine(false, false).to_payload();
        assert_eq!(payload.matches(SURROUND_PREFIX).count(), 6);
        let (n, hq) = opus_configs(&payload, 6);
        let n = n.unwrap();
        assert_eq!((n.streams, n.coupled_streams), (4, 2));
        // Host pre-rotation undone by the client fix-up ⇒ identity mapping.
        assert_eq!(&n.mapping[..6], &[0, 1, 2, 3, 4, 5]);
        let hq = hq.unwrap();
        assert_eq!(
            (hq.streams, hq.coupled_streams, &hq.mapping[..6]),
            (6, 0, &[0, 1, 2, 3, 4, 5][..])
        );

        let (n, hq) = opus_configs(&payload, 8);
        let n = n.unwrap();
        assert_eq!((n.streams, n.coupled_streams), (5, 3));
        // The spec's UNCERTAIN note: Sunshine's 7.1 rotation does not round-trip to identity.
        assert_eq!(&n.mapping[..8], &[0, 1, 2, 7, 4, 5, 3, 6]);
        assert_eq!(hq.unwrap().streams, 8);

        let (n, hq) = opus_configs(&payload, 2);
        assert_eq!((n.unwrap().streams, hq), (1, None));

        // Missing lines ⇒ GFE defaults; garbage ⇒ None without panicking.
        assert_eq!(
            &opus_configs("", 6).0.unwrap().mapping[..6],
            &[0, 4, 1, 5, 2, 3]
        );
        assert_eq!(opus_configs("", 4), (None, None));
        assert_eq!(opus_configs("", 8), (None, None));
        assert_eq!(
            opus_configs("a=fmtp:97 surround-params=64", 6),
            (None, None)
        );
    }

    #[test]
    fn codec_choice() {
        use video_format as vf;
        let caps = HostCapabilities {
            hevc: true,
            av1: true,
            ..Default::default()
        };
        assert_eq!(
            caps.choose_video_format(vf::H264 | vf::H265 | vf::AV1_MAIN8, 0),
            vf::AV1_MAIN8
        );
        assert_eq!(
            caps.choose_video_format(
                vf::H264 | vf::H265 | vf::H265_MAIN10,
                server_codec::HEVC_MAIN10
            ),
            vf::H265_MAIN10
        );
        assert_eq!(
            caps.choose_video_format(vf::H264 | vf::H265 | vf::H265_MAIN10, 0),
            vf::H265
        );
        let caps = HostCapabilities::default();
        assert_eq!(
            caps.choose_video_format(vf::H264 | vf::H265 | vf::AV1_MAIN8, u32::MAX),
            vf::H264
        );
        assert_eq!(
            caps.choose_video_format(vf::H264 | vf::H264_HIGH8_444, server_codec::H264_HIGH8_444),
            vf::H264_HIGH8_444
        );
    }
}
