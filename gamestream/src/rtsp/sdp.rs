//! The ANNOUNCE payload: the client's stream configuration. The generator reproduces
//! moonlight-common-c's `SdpGenerator.c` byte for byte (attribute order, `" \r\n"` line ends,
//! generation switches); the host-side parser reads it like Sunshine (`a=name:value`, required keys
//! ⇒ error, everything else defaulted) and also keeps Wolf's audio-encryption bit.

use std::fmt::Write as _;
use std::net::IpAddr;

use super::describe::{encryption, video_format};
use super::RtspError;
use crate::version::AppVersion;

/// Everything the ANNOUNCE payload depends on, already negotiated (codec, encryption, audio mode).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnnounceParams {
    /// The host's appversion (selects the generation blocks).
    pub app_version: AppVersion,
    /// The host address (the `o=` line and the gen 3/4 `serverAddress`).
    pub host_addr: IpAddr,
    /// RTSP port (gen 4 `serverAddress` only).
    pub rtsp_port: u16,
    /// Stream width.
    pub width: u32,
    /// Stream height (rounded down to even when emitted).
    pub height: u32,
    /// Frames per second.
    pub fps: u32,
    /// Configured max video payload per packet (multiple of 16); 32 is subtracted when video
    /// encryption is enabled.
    pub packet_size: u32,
    /// The user's bitrate in kbps.
    pub bitrate_kbps: u32,
    /// Streaming over the internet (changes bitrate headroom and QoS hints).
    pub remote: bool,
    /// Encoder slices per frame (1..255; 0 is sent as 1).
    pub slices_per_frame: u8,
    /// The negotiated [`video_format`] bit.
    pub video_format: u32,
    /// The decoder supports reference-frame invalidation (⇒ `maxNumReferenceFrames:0`).
    pub rfi_supported_by_decoder: bool,
    /// Display refresh rate × 100.
    pub refresh_rate_x100: u32,
    /// Audio channel count.
    pub audio_channels: u8,
    /// Audio channel mask.
    pub audio_channel_mask: u32,
    /// High-quality surround was chosen (see [`high_quality_surround`]).
    pub high_quality_surround: bool,
    /// Opus packet duration in ms (see [`audio_packet_duration`]).
    pub audio_packet_duration_ms: u32,
    /// 0 Rec.601, 1 Rec.709, 2 Rec.2020.
    pub color_space: u8,
    /// 0 limited, 1 full.
    pub color_range: u8,
    /// Sunshine `encryptionEnabled` bits chosen by the client.
    pub encryption_enabled: u32,
    /// Audio encryption chosen (adds 0x20 to `x-nv-general.featureFlags`, which is what Wolf reads).
    pub audio_encryption: bool,
    /// The video port learned from SETUP (gen 3 always says 47996).
    pub video_port: u16,
}

/// moonlight-common-c's `HIGH_AUDIO_BITRATE_THRESHOLD` (kbps).
pub const HIGH_AUDIO_BITRATE_THRESHOLD: u32 = 15_000;
/// moonlight-common-c's `LOW_AUDIO_BITRATE_TRESHOLD` (kbps).
pub const LOW_AUDIO_BITRATE_THRESHOLD: u32 = 5_000;

/// The HQ-surround rule: gen ≥ 7, bitrate ≥ 15000, more than 2 channels, host offered an HQ layout,
/// decoder not slow.
pub fn high_quality_surround(
    app_version: AppVersion,
    bitrate_kbps: u32,
    channels: u8,
    host_offers_hq: bool,
    slow_opus_decoder: bool,
) -> bool {
    app_version.major >= 7
        && bitrate_kbps >= HIGH_AUDIO_BITRATE_THRESHOLD
        && channels > 2
        && host_offers_hq
        && !slow_opus_decoder
}

/// The Opus packet duration: 10 ms for slow decoders, or for decoders that accept any duration when
/// the bitrate is below 5000 kbps; otherwise (and always for HQ surround and pre-gen-7 hosts) 5 ms.
pub fn audio_packet_duration(
    app_version: AppVersion,
    high_quality: bool,
    slow_opus_decoder: bool,
    arbitrary_duration: bool,
    bitrate_kbps: u32,
) -> u32 {
    if app_version.major < 7 || high_quality {
        5
    } else if slow_opus_decoder
        || (arbitrary_duration && bitrate_kbps < LOW_AUDIO_BITRATE_THRESHOLD)
    {
        10
    } else {
        5
    }
}

fn attr(out: &mut String, name: &str, value: impl std::fmt::Display) {
    let _ = write!(out, "a={name}:{value} \r\n");
}

fn url_safe(addr: IpAddr) -> String {
    match addr {
        IpAddr::V4(a) => a.to_string(),
        IpAddr::V6(a) => format!("[{a}]"),
    }
}

impl AnnounceParams {
    /// The `packetSize` sent in SDP, which both packetizer and depacketizer use: the configured
    /// size, minus the 32-byte encryption prefix when video is encrypted (moonlight-common-c).
    pub fn wire_packet_size(&self) -> u32 {
        if self.encryption_enabled & encryption::VIDEO != 0 {
            self.packet_size.saturating_sub(32)
        } else {
            self.packet_size
        }
    }

    /// The video bitrate the host is asked for: 80 % of the user's (20 % goes to FEC), minus 500
    /// when remote, capped at 100 Mbps.
    pub fn video_bitrate_kbps(&self) -> u32 {
        let mut bitrate = (f64::from(self.bitrate_kbps) * 0.80) as u32;
        if self.remote && bitrate > 500 {
            bitrate -= 500;
        }
        bitrate.min(100_000)
    }

    /// The ANNOUNCE payload bytes (`Content-length` is its length).
    pub fn to_payload(&self) -> Vec<u8> {
        let v = self.app_version;
        let addr = url_safe(self.host_addr);
        let ip_version = if self.host_addr.is_ipv6() {
            "IPv6"
        } else {
            "IPv4"
        };
        let mut s = String::with_capacity(2048);
        let _ = write!(
            s,
            "v=0\r\no=android 0 {} IN {ip_version} {addr}\r\ns=NVIDIA Streaming Client\r\n",
            v.client_version()
        );
        if v.is_sunshine() {
            attr(&mut s, "x-ml-general.featureFlags", 3);
            attr(
                &mut s,
                "x-ss-general.encryptionEnabled",
                self.encryption_enabled,
            );
            attr(
                &mut s,
                "x-ss-video[0].chromaSamplingType",
                u8::from(self.video_format & video_format::MASK_YUV444 != 0),
            );
        }
        attr(&mut s, "x-nv-video[0].clientViewportWd", self.width);
        attr(&mut s, "x-nv-video[0].clientViewportHt", self.height & !1);
        attr(&mut s, "x-nv-video[0].maxFPS", self.fps);
        attr(&mut s, "x-nv-video[0].packetSize", self.wire_packet_size());
        attr(&mut s, "x-nv-video[0].rateControlMode", 4);
        attr(&mut s, "x-nv-video[0].timeoutLengthMs", 7000);
        attr(&mut s, "x-nv-video[0].framesWithInvalidRefThreshold", 0);
        let bitrate = self.video_bitrate_kbps();
        if v.major >= 5 {
            attr(&mut s, "x-nv-video[0].initialBitrateKbps", bitrate);
            attr(&mut s, "x-nv-video[0].initialPeakBitrateKbps", bitrate);
            attr(&mut s, "x-nv-vqos[0].bw.minimumBitrateKbps", bitrate);
            attr(&mut s, "x-nv-vqos[0].bw.maximumBitrateKbps", bitrate);
            if v.is_sunshine() {
                attr(
                    &mut s,
                    "x-ml-video.configuredBitrateKbps",
                    self.bitrate_kbps,
                );
            }
        } else {
            if self.remote {
                attr(&mut s, "x-nv-video[0].averageBitrate", 4);
                attr(&mut s, "x-nv-video[0].peakBitrate", 4);
            }
            attr(&mut s, "x-nv-vqos[0].bw.minimumBitrate", bitrate);
            attr(&mut s, "x-nv-vqos[0].bw.maximumBitrate", bitrate);
        }
        attr(&mut s, "x-nv-vqos[0].fec.enable", 1);
        attr(&mut s, "x-nv-vqos[0].videoQualityScoreUpdateTime", 5000);
        let (video_qos, audio_qos) = if self.remote { (0, 0) } else { (5, 4) };
        attr(&mut s, "x-nv-vqos[0].qosTrafficType", video_qos);
        attr(&mut s, "x-nv-aqos.qosTrafficType", audio_qos);
        match v.major {
            3 => self.gen3_block(&mut s, &addr),
            4 => attr(
                &mut s,
                "x-nv-general.serverAddress",
                format!("rtsp://{addr}:{}", self.rtsp_port),
            ),
            _ => self.gen5_block(&mut s),
        }
        if v.major >= 4 {
            attr(
                &mut s,
                "x-nv-video[0].videoEncoderSlicesPerFrame",
                self.slices_per_frame.max(1),
            );
            if self.video_format & video_format::MASK_AV1 != 0 {
                attr(&mut s, "x-nv-vqos[0].bitStreamFormat", 2);
            } else if self.video_format & video_format::MASK_H265 != 0 {
                attr(&mut s, "x-nv-clientSupportHevc", 1);
                attr(&mut s, "x-nv-vqos[0].bitStreamFormat", 1);
                if !v.at_least(7, 1, 408) {
                    attr(&mut s, "x-nv-video[0].encoderFeatureSetting", 0);
                }
            } else {
                attr(&mut s, "x-nv-clientSupportHevc", 0);
                attr(&mut s, "x-nv-vqos[0].bitStreamFormat", 0);
            }
            if v.major >= 7 {
                attr(
                    &mut s,
                    "x-nv-video[0].dynamicRangeMode",
                    u8::from(self.video_format & video_format::MASK_10BIT != 0),
                );
                attr(
                    &mut s,
                    "x-nv-video[0].maxNumReferenceFrames",
                    u8::from(!self.rfi_supported_by_decoder),
                );
                attr(
                    &mut s,
                    "x-nv-video[0].clientRefreshRateX100",
                    self.refresh_rate_x100,
                );
            }
            attr(
                &mut s,
                "x-nv-audio.surround.numChannels",
                self.audio_channels,
            );
            attr(
                &mut s,
                "x-nv-audio.surround.channelMask",
                self.audio_channel_mask,
            );
            attr(
                &mut s,
                "x-nv-audio.surround.enable",
                u8::from(self.audio_channels > 2),
            );
        }
        if v.major >= 7 {
            attr(
                &mut s,
                "x-nv-audio.surround.AudioQuality",
                u8::from(self.high_quality_surround),
            );
            attr(
                &mut s,
                "x-nv-aqos.packetDuration",
                self.audio_packet_duration_ms,
            );
            attr(
                &mut s,
                "x-nv-video[0].encoderCscMode",
                (u32::from(self.color_space) << 1) | u32::from(self.color_range),
            );
        }
        let port = if v.major == 3 { 47996 } else { self.video_port };
        let _ = write!(s, "t=0 0\r\nm=video {port}  \r\n");
        s.into_bytes()
    }

    fn gen3_block(&self, s: &mut String, addr: &str) {
        attr(s, "x-nv-general.serverAddress", addr);
        // Four raw bytes each (the big-endian form of 0x42774141 etc.), which happen to be ASCII.
        attr(s, "x-nv-general.featureFlags", "BwAA");
        for i in 0..4 {
            attr(s, &format!("x-nv-video[{i}].transferProtocol"), "AQAA");
        }
        for i in 0..4 {
            attr(
                s,
                &format!("x-nv-video[{i}].rateControlMode"),
                if i == 0 { "BAAA" } else { "BQAA" },
            );
        }
        attr(s, "x-nv-vqos[0].bw.flags", 14083);
        for i in 0..4 {
            attr(s, &format!("x-nv-vqos[{i}].videoQosMaxConsecutiveDrops"), 0);
        }
    }

    fn gen5_block(&self, s: &mut String) {
        let v = self.app_version;
        if v.at_least(7, 1, 431) {
            // Base 0x07 plus RI encryption 0x80; 0x20 asks for audio encryption (Wolf reads this).
            let flags = 0x87 | if self.audio_encryption { 0x20 } else { 0 };
            attr(s, "x-nv-general.featureFlags", flags);
            attr(s, "x-nv-general.useReliableUdp", 13);
            attr(s, "x-nv-vqos[0].fec.minRequiredFecPackets", 2);
            attr(s, "x-nv-vqos[0].bllFec.enable", 0);
        } else {
            attr(s, "x-nv-general.useReliableUdp", 1);
            attr(s, "x-nv-ri.useControlChannel", 1);
            let repair = if self.width >= 3840 && self.height >= 2160 {
                5
            } else {
                20
            };
            attr(s, "x-nv-vqos[0].fec.repairPercent", repair);
        }
        if v.at_least(7, 1, 446) && (self.width < 720 || self.height < 540) {
            attr(s, "x-nv-vqos[0].drc.enable", 1);
            attr(s, "x-nv-vqos[0].drc.tableType", 2);
        } else {
            attr(s, "x-nv-vqos[0].drc.enable", 0);
        }
        attr(s, "x-nv-general.enableRecoveryMode", 0);
    }
}

/// The stream configuration a host reads from ANNOUNCE.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamConfig {
    /// `x-nv-video[0].clientViewportWd` (required).
    pub width: u32,
    /// `x-nv-video[0].clientViewportHt` (required).
    pub height: u32,
    /// `x-nv-video[0].maxFPS` (required).
    pub fps: u32,
    /// `x-nv-video[0].packetSize` (required): max video payload per packet.
    pub packet_size: u32,
    /// `x-nv-vqos[0].bw.maximumBitrateKbps` (required): the video bitrate to encode at.
    pub bitrate_kbps: u32,
    /// `x-ml-video.configuredBitrateKbps`: the user's full bitrate (Sunshine-aware clients).
    pub configured_bitrate_kbps: Option<u32>,
    /// `x-nv-video[0].videoEncoderSlicesPerFrame` (required).
    pub slices_per_frame: u32,
    /// `x-nv-video[0].maxNumReferenceFrames` (required; 0 = unlimited).
    pub max_ref_frames: u32,
    /// `x-nv-vqos[0].bitStreamFormat`: 0 H.264, 1 HEVC, 2 AV1 (default 0).
    pub bit_stream_format: u32,
    /// `x-nv-video[0].dynamicRangeMode`: 1 = 10-bit/HDR (default 0).
    pub dynamic_range: u32,
    /// `x-ss-video[0].chromaSamplingType`: 1 = 4:4:4 (default 0).
    pub chroma_sampling_type: u32,
    /// `x-nv-video[0].encoderCscMode`: `(colorSpace << 1) | fullRange` (default 0).
    pub encoder_csc_mode: u32,
    /// `x-nv-video[0].clientRefreshRateX100`.
    pub refresh_rate_x100: Option<u32>,
    /// `x-nv-vqos[0].fec.minRequiredFecPackets` (default 0).
    pub fec_min_required_packets: u32,
    /// `x-nv-vqos[0].fec.repairPercent` (older clients only).
    pub fec_repair_percent: Option<u32>,
    /// `x-nv-audio.surround.numChannels` (required).
    pub audio_channels: u32,
    /// `x-nv-audio.surround.channelMask` (required).
    pub audio_channel_mask: u32,
    /// `x-nv-audio.surround.AudioQuality` (required): high-quality surround.
    pub audio_high_quality: bool,
    /// `x-nv-aqos.packetDuration` in ms (default 5).
    pub audio_packet_duration_ms: u32,
    /// `x-ss-general.encryptionEnabled` Sunshine bits (default 0).
    pub encryption_enabled: u32,
    /// `x-ml-general.featureFlags` (default 0): 0x01 FEC status, 0x02 session-id V1.
    pub ml_feature_flags: u32,
    /// `x-nv-general.featureFlags` (default 0; non-numeric gen-3 values read as 0): 0x20 = audio encryption.
    pub nv_feature_flags: u32,
    /// `x-nv-general.useReliableUdp` (13 = encrypted control protocol).
    pub use_reliable_udp: Option<u32>,
    /// Every `a=` attribute as (name, trimmed value), in order, for anything not modelled above.
    pub attributes: Vec<(String, String)>,
    /// The ANNOUNCE request's `Host` header (filled in by the host responder, `None` from
    /// [`StreamConfig::parse`]); it carries the stereo quality choice, see
    /// [`StreamConfig::high_quality_audio`].
    pub rtsp_host: Option<String>,
}

const REQUIRED: [&str; 10] = [
    "x-nv-audio.surround.numChannels",
    "x-nv-audio.surround.channelMask",
    "x-nv-audio.surround.AudioQuality",
    "x-nv-video[0].packetSize",
    "x-nv-video[0].clientViewportWd",
    "x-nv-video[0].clientViewportHt",
    "x-nv-video[0].maxFPS",
    "x-nv-vqos[0].bw.maximumBitrateKbps",
    "x-nv-video[0].videoEncoderSlicesPerFrame",
    "x-nv-video[0].maxNumReferenceFrames",
];

impl StreamConfig {
    /// Parses an ANNOUNCE payload. Missing or non-numeric required attributes (Sunshine's list) ⇒
    /// [`RtspError::Sdp`]; hosts answer 400.
    pub fn parse(payload: &[u8]) -> Result<Self, RtspError> {
        let text = String::from_utf8_lossy(payload);
        let mut attributes = Vec::new();
        for line in text.split('\n') {
            let Some(rest) = line.strip_prefix("a=") else {
                continue;
            };
            let Some((name, value)) = rest.split_once(':') else {
                continue;
            };
            attributes.push((name.to_string(), value.trim().to_string()));
        }
        let find = |name: &str| {
            attributes
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.as_str())
        };
        let number = |name: &str| -> Result<Option<u32>, RtspError> {
            find(name)
                .map(|v| {
                    v.parse::<u32>()
                        .map_err(|_| RtspError::Sdp(name.to_string()))
                })
                .transpose()
        };
        for name in REQUIRED {
            if find(name).is_none() {
                return Err(RtspError::Sdp(name.to_string()));
            }
        }
        let required = |name: &str| number(name)?.ok_or_else(|| RtspError::Sdp(name.to_string()));
        Ok(Self {
            width: required("x-nv-video[0].clientViewportWd")?,
            height: required("x-nv-video[0].clientViewportHt")?,
            fps: required("x-nv-video[0].maxFPS")?,
            packet_size: required("x-nv-video[0].packetSize")?,
            bitrate_kbps: required("x-nv-vqos[0].bw.maximumBitrateKbps")?,
            configured_bitrate_kbps: number("x-ml-video.configuredBitrateKbps")?,
            slices_per_frame: required("x-nv-video[0].videoEncoderSlicesPerFrame")?,
            max_ref_frames: required("x-nv-video[0].maxNumReferenceFrames")?,
            bit_stream_format: number("x-nv-vqos[0].bitStreamFormat")?.unwrap_or(0),
            dynamic_range: number("x-nv-video[0].dynamicRangeMode")?.unwrap_or(0),
            chroma_sampling_type: number("x-ss-video[0].chromaSamplingType")?.unwrap_or(0),
            encoder_csc_mode: number("x-nv-video[0].encoderCscMode")?.unwrap_or(0),
            refresh_rate_x100: number("x-nv-video[0].clientRefreshRateX100")?,
            fec_min_required_packets: number("x-nv-vqos[0].fec.minRequiredFecPackets")?
                .unwrap_or(0),
            fec_repair_percent: number("x-nv-vqos[0].fec.repairPercent")?,
            audio_channels: required("x-nv-audio.surround.numChannels")?,
            audio_channel_mask: required("x-nv-audio.surround.channelMask")?,
            audio_high_quality: required("x-nv-audio.surround.AudioQuality")? != 0,
            audio_packet_duration_ms: number("x-nv-aqos.packetDuration")?.unwrap_or(5),
            encryption_enabled: number("x-ss-general.encryptionEnabled")?.unwrap_or(0),
            ml_feature_flags: number("x-ml-general.featureFlags")?.unwrap_or(0),
            nv_feature_flags: find("x-nv-general.featureFlags")
                .and_then(|v| v.parse().ok())
                .unwrap_or(0),
            use_reliable_udp: number("x-nv-general.useReliableUdp")?,
            attributes,
            rtsp_host: None,
        })
    }

    /// Control stream with V2 (12-byte) IVs (Sunshine bit 0x01).
    pub fn control_v2(&self) -> bool {
        self.encryption_enabled & encryption::CONTROL_V2 != 0
    }

    /// Video encryption (Sunshine bit 0x02).
    pub fn video_encryption(&self) -> bool {
        self.encryption_enabled & encryption::VIDEO != 0
    }

    /// Audio encryption: Sunshine bit 0x04, or `x-nv-general.featureFlags` 0x20 (what Wolf reads).
    pub fn audio_encryption(&self) -> bool {
        self.encryption_enabled & encryption::AUDIO != 0 || self.nv_feature_flags & 0x20 != 0
    }

    /// Whether to encode high-quality audio, Sunshine's rule: for stereo the client signals low
    /// quality by sending `Host: 0.0.0.0` (the GFE-era hack); for surround `AudioQuality` decides.
    pub fn high_quality_audio(&self) -> bool {
        match (&self.rtsp_host, self.audio_channels) {
            (Some(host), 2) => !host.contains("0.0.0.0"),
            _ => self.audio_high_quality,
        }
    }

    /// Colour space: 0 Rec.601, 1 Rec.709, 2 Rec.2020.
    pub fn color_space(&self) -> u32 {
        self.encoder_csc_mode >> 1
    }

    /// Full colour range.
    pub fn full_range(&self) -> bool {
        self.encoder_csc_mode & 1 != 0
    }

    /// The value of any attribute by exact name.
    pub fn attribute(&self, name: &str) -> Option<&str> {
        self.attributes
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

#[cfg(test)]
mod tests;
