//! Typed NVHTTP payloads (spec §1.3) with their XML / query-string encodings.

use super::xml::{XmlBuilder, XmlResponse};
use super::NvHttpError;
use crate::pairing::PairResponse;
use crate::version::AppVersion;

/// `ServerCodecModeSupport` bits (spec §1.3.1).
pub mod codec_mode {
    /// H.264.
    pub const H264: u32 = 0x0000_0001;
    /// HEVC Main.
    pub const HEVC: u32 = 0x0000_0100;
    /// HEVC Main10.
    pub const HEVC_MAIN10: u32 = 0x0000_0200;
    /// AV1 Main 8.
    pub const AV1_MAIN8: u32 = 0x0001_0000;
    /// AV1 Main 10.
    pub const AV1_MAIN10: u32 = 0x0002_0000;
    /// H.264 High 4:4:4.
    pub const H264_HIGH8_444: u32 = 0x0004_0000;
    /// HEVC RExt 4:4:4 8-bit.
    pub const HEVC_REXT8_444: u32 = 0x0008_0000;
    /// HEVC RExt 4:4:4 10-bit.
    pub const HEVC_REXT10_444: u32 = 0x0010_0000;
    /// AV1 High 4:4:4 8-bit.
    pub const AV1_HIGH8_444: u32 = 0x0020_0000;
    /// AV1 High 4:4:4 10-bit.
    pub const AV1_HIGH10_444: u32 = 0x0040_0000;
}

/// `state` of an idle Sunshine/Wolf host.
pub const STATE_FREE: &str = "SUNSHINE_SERVER_FREE";
/// `state` of a Sunshine/Wolf host running an app.
pub const STATE_BUSY: &str = "SUNSHINE_SERVER_BUSY";

/// One `SupportedDisplayMode/DisplayMode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DisplayMode {
    /// Pixels.
    pub width: u32,
    /// Pixels.
    pub height: u32,
    /// Hz.
    pub refresh_rate: u32,
}

/// `/serverinfo` payload (spec §1.3.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerInfo {
    /// `hostname`.
    pub hostname: String,
    /// `appversion` text, e.g. `7.1.431.-1`; see [`ServerInfo::app_version`].
    pub app_version: String,
    /// `GfeVersion`.
    pub gfe_version: String,
    /// `uniqueid` of the host.
    pub unique_id: String,
    /// `HttpsPort` (47984 if absent/0).
    pub https_port: u16,
    /// `ExternalPort`.
    pub external_port: u16,
    /// `MaxLumaPixelsHEVC`.
    pub max_luma_pixels_hevc: u64,
    /// `mac`.
    pub mac: String,
    /// `LocalIP`.
    pub local_ip: String,
    /// `ExternalIP` (Sunshine, only if configured).
    pub external_ip: Option<String>,
    /// `ServerCodecModeSupport` exactly as sent (see [`ServerInfo::codec_support`]).
    pub codec_mode_support: u32,
    /// `PairStatus`: the TLS client certificate of this request is paired.
    pub pair_status: bool,
    /// `currentgame` as sent (see [`ServerInfo::running_app`]).
    pub current_game: u32,
    /// `state`.
    pub state: String,
    /// `SupportedDisplayMode` list.
    pub display_modes: Vec<DisplayMode>,
    /// `gputype` (GFE).
    pub gpu_type: Option<String>,
    /// `GsVersion` (GFE).
    pub gs_version: Option<String>,
    /// `SunshineVersion`: sent by Foundation Sunshine (a Sunshine fork) only, the hosts that
    /// change the encoder's bitrate live (see [`ServerInfo::has_live_bitrate`]).
    pub sunshine_version: Option<String>,
}

impl Default for ServerInfo {
    fn default() -> Self {
        ServerInfo {
            hostname: String::new(),
            app_version: "7.1.431.-1".into(),
            gfe_version: "3.23.0.74".into(),
            unique_id: String::new(),
            https_port: 47984,
            external_port: 47989,
            max_luma_pixels_hevc: 0,
            mac: "00:00:00:00:00:00".into(),
            local_ip: String::new(),
            external_ip: None,
            codec_mode_support: codec_mode::H264,
            pair_status: false,
            current_game: 0,
            state: STATE_FREE.into(),
            display_modes: Vec::new(),
            gpu_type: None,
            gs_version: None,
            sunshine_version: None,
        }
    }
}

fn parse_num<T: std::str::FromStr>(field: &'static str, s: &str) -> Result<T, NvHttpError> {
    let t = s.trim();
    if t.starts_with('+') {
        return Err(NvHttpError::InvalidField {
            field,
            value: s.to_string(),
        });
    }
    t.parse::<T>().map_err(|_| NvHttpError::InvalidField {
        field,
        value: s.to_string(),
    })
}

fn opt_num<T: std::str::FromStr>(
    r: &XmlResponse,
    field: &'static str,
    default: T,
) -> Result<T, NvHttpError> {
    match r.text(field) {
        Some(s) if !s.trim().is_empty() => parse_num(field, s),
        _ => Ok(default),
    }
}

fn bool01(field: &'static str, s: &str) -> Result<bool, NvHttpError> {
    Ok(parse_num::<i64>(field, s)? != 0)
}

impl ServerInfo {
    /// Parses a `/serverinfo` body; `status_code != 200` is an error. Requires the elements
    /// moonlight-embedded requires (`appversion`, `state`, `PairStatus`, `currentgame`).
    pub fn parse(body: &[u8]) -> Result<ServerInfo, NvHttpError> {
        let r = XmlResponse::parse(body)?.ok()?;
        let text = |name: &str| r.text(name).unwrap_or_default().to_string();
        let mut display_modes = Vec::new();
        for list in r.root.children_named("SupportedDisplayMode") {
            for m in list.children_named("DisplayMode") {
                let num = |n: &'static str| parse_num::<u32>(n, m.child_text(n).unwrap_or("0"));
                display_modes.push(DisplayMode {
                    width: num("Width")?,
                    height: num("Height")?,
                    refresh_rate: num("RefreshRate")?,
                });
            }
        }
        let https_port = opt_num::<u16>(&r, "HttpsPort", 0)?;
        Ok(ServerInfo {
            hostname: text("hostname"),
            app_version: r.required("appversion")?.to_string(),
            gfe_version: text("GfeVersion"),
            unique_id: text("uniqueid"),
            https_port: if https_port == 0 { 47984 } else { https_port },
            external_port: opt_num(&r, "ExternalPort", 47989)?,
            max_luma_pixels_hevc: opt_num(&r, "MaxLumaPixelsHEVC", 0)?,
            mac: text("mac"),
            local_ip: text("LocalIP"),
            external_ip: r.text("ExternalIP").map(str::to_string),
            codec_mode_support: opt_num(&r, "ServerCodecModeSupport", 0)?,
            pair_status: bool01("PairStatus", r.required("PairStatus")?)?,
            current_game: parse_num("currentgame", r.required("currentgame")?)?,
            state: r.required("state")?.to_string(),
            display_modes,
            gpu_type: r.text("gputype").map(str::to_string),
            gs_version: r.text("GsVersion").map(str::to_string),
            sunshine_version: r.text("SunshineVersion").map(str::to_string),
        })
    }

    /// The XML body a host sends.
    pub fn to_xml(&self) -> String {
        let mut b = XmlBuilder::new(200, None);
        b.elem("hostname", &self.hostname)
            .elem("appversion", &self.app_version)
            .elem("GfeVersion", &self.gfe_version);
        if let Some(v) = &self.sunshine_version {
            b.elem("SunshineVersion", v);
        }
        b.elem("uniqueid", &self.unique_id)
            .elem("HttpsPort", self.https_port)
            .elem("ExternalPort", self.external_port)
            .elem("MaxLumaPixelsHEVC", self.max_luma_pixels_hevc)
            .elem("mac", &self.mac)
            .elem("LocalIP", &self.local_ip);
        if let Some(ip) = &self.external_ip {
            b.elem("ExternalIP", ip);
        }
        b.elem("ServerCodecModeSupport", self.codec_mode_support)
            .elem("PairStatus", u8::from(self.pair_status))
            .elem("currentgame", self.current_game)
            .elem("state", &self.state);
        if !self.display_modes.is_empty() {
            b.open("SupportedDisplayMode");
            for m in &self.display_modes {
                b.open("DisplayMode")
                    .elem("Width", m.width)
                    .elem("Height", m.height)
                    .elem("RefreshRate", m.refresh_rate)
                    .close("DisplayMode");
            }
            b.close("SupportedDisplayMode");
        }
        if let Some(g) = &self.gpu_type {
            b.elem("gputype", g);
        }
        if let Some(g) = &self.gs_version {
            b.elem("GsVersion", g);
        }
        b.finish()
    }

    /// The parsed `appversion`.
    pub fn app_version(&self) -> AppVersion {
        AppVersion::parse(&self.app_version)
    }

    /// NVIDIA GeForce Experience (state contains `MJOLNIR`, compared case-insensitively).
    pub fn is_nvidia_software(&self) -> bool {
        self.state.to_ascii_uppercase().contains("MJOLNIR")
    }

    /// The host is streaming (`state` contains `_SERVER_BUSY`).
    pub fn is_busy(&self) -> bool {
        self.state.contains("_SERVER_BUSY")
    }

    /// The running app id: `currentgame`, but 0 unless the host is busy (GFE ≥ 2.8 keeps the
    /// last game id after streaming ends).
    pub fn running_app(&self) -> u32 {
        if self.is_busy() {
            self.current_game
        } else {
            0
        }
    }

    /// The host takes a new bitrate while it streams: Foundation Sunshine's dynamic parameter
    /// change (control message `0x5506`, [`crate::control::ClientMessage::Bitrate`]).
    ///
    /// No capability flag announces it. Foundation Sunshine is told apart by the
    /// `SunshineVersion` element of its `/serverinfo`, which upstream Sunshine, Wolf and GFE do
    /// not send; the fork added that element (2026-01-16) after the message took its present
    /// layout (2026-01-10), so every host that sends the element reads the message as built
    /// here. A host without the handler ignores the message (an unknown type), so a wrong guess
    /// costs a rung that does not take effect, never the stream.
    pub fn has_live_bitrate(&self) -> bool {
        self.sunshine_version.is_some()
    }

    /// `/resume` instead of `/launch`.
    pub fn should_resume(&self) -> bool {
        self.running_app() != 0
    }

    /// Codec support safe to hand to a stream: 0 (missing) becomes H.264.
    pub fn codec_support(&self) -> u32 {
        if self.codec_mode_support == 0 {
            codec_mode::H264
        } else {
            self.codec_mode_support
        }
    }
}

/// One `/applist` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct App {
    /// `AppTitle`.
    pub title: String,
    /// `ID`.
    pub id: u32,
    /// `IsHdrSupported`.
    pub hdr_supported: bool,
}

impl App {
    /// Parses an `/applist` body.
    pub fn parse_list(body: &[u8]) -> Result<Vec<App>, NvHttpError> {
        let r = XmlResponse::parse(body)?.ok()?;
        r.root
            .children_named("App")
            .map(|a| {
                Ok(App {
                    title: a.child_text("AppTitle").unwrap_or_default().to_string(),
                    id: parse_num(
                        "ID",
                        a.child_text("ID").ok_or(NvHttpError::MissingField("ID"))?,
                    )?,
                    hdr_supported: bool01(
                        "IsHdrSupported",
                        a.child_text("IsHdrSupported").unwrap_or("0"),
                    )?,
                })
            })
            .collect()
    }

    /// The `/applist` body for `apps`.
    pub fn list_to_xml(apps: &[App]) -> String {
        let mut b = XmlBuilder::new(200, None);
        for a in apps {
            b.open("App")
                .elem("IsHdrSupported", u8::from(a.hdr_supported))
                .elem("AppTitle", &a.title)
                .elem("ID", a.id)
                .close("App");
        }
        b.finish()
    }
}

/// Parameters of `/launch` and `/resume` (spec §1.3.6).
#[derive(Clone, PartialEq, Eq)]
pub struct LaunchRequest {
    /// `appid` (ignored by `/resume`).
    pub app_id: u32,
    /// `mode` width.
    pub width: u32,
    /// `mode` height.
    pub height: u32,
    /// `mode` FPS (use [`LaunchRequest::gfe_mode_fps`] for NVIDIA hosts).
    pub fps: u32,
    /// `sops`.
    pub sops: bool,
    /// `rikey`: the AES key of remote input / control / encrypted RTSP.
    pub ri_key: [u8; 16],
    /// `rikeyid`: signed; `IV = BE32(rikeyid) ‖ 0¹²`.
    pub ri_key_id: i32,
    /// `localAudioPlayMode`.
    pub local_audio_play_mode: bool,
    /// `surroundAudioInfo` = `(channelMask << 16) | channelCount`.
    pub surround_audio_info: u32,
    /// `remoteControllersBitmap` (also sent as `gcmap`).
    pub remote_controllers_bitmap: u32,
    /// `gcmap` as received (hosts read either).
    pub gcmap: u32,
    /// `gcpersist`.
    pub gcpersist: bool,
    /// Adds the fixed HDR parameters (`hdrMode=1&clientHdrCap…`).
    pub hdr: bool,
    /// `corever` (moonlight-common-c sends 1; Sunshine then offers encrypted RTSP).
    pub corever: Option<u32>,
    /// `additionalStates` (always 1 from clients).
    pub additional_states: bool,
    /// Sunshine `surroundParams`.
    pub surround_params: Option<String>,
    /// Sunshine `continuousAudio`.
    pub continuous_audio: Option<bool>,
}

impl std::fmt::Debug for LaunchRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LaunchRequest")
            .field("app_id", &self.app_id)
            .field(
                "mode",
                &format_args!("{}x{}x{}", self.width, self.height, self.fps),
            )
            .field("ri_key", &"<redacted>")
            .field("ri_key_id", &self.ri_key_id)
            .field("surround_audio_info", &self.surround_audio_info)
            .field("hdr", &self.hdr)
            .field("corever", &self.corever)
            .finish_non_exhaustive()
    }
}

/// Stereo `surroundAudioInfo`.
pub const SURROUND_STEREO: u32 = surround_audio_info(2, 0x3);

/// `(channel_mask << 16) | channel_count`.
pub const fn surround_audio_info(channel_count: u32, channel_mask: u32) -> u32 {
    (channel_mask << 16) | channel_count
}

impl LaunchRequest {
    /// A request with a fresh random `rikey`/`rikeyid`, stereo, no controllers, `corever=1`.
    pub fn new(app_id: u32, width: u32, height: u32, fps: u32) -> Self {
        use rand::RngCore;
        let mut ri_key = [0u8; 16];
        rand::rngs::OsRng.fill_bytes(&mut ri_key);
        LaunchRequest {
            app_id,
            width,
            height,
            fps,
            sops: false,
            ri_key,
            ri_key_id: rand::rngs::OsRng.next_u32() as i32,
            local_audio_play_mode: false,
            surround_audio_info: SURROUND_STEREO,
            remote_controllers_bitmap: 0,
            gcmap: 0,
            gcpersist: false,
            hdr: false,
            corever: Some(1),
            additional_states: true,
            surround_params: None,
            continuous_audio: None,
        }
    }

    /// The 16-byte IV derived from `rikeyid`.
    pub fn ri_iv(&self) -> [u8; 16] {
        let mut iv = [0u8; 16];
        iv[..4].copy_from_slice(&self.ri_key_id.to_be_bytes());
        iv
    }

    /// moonlight-embedded's GFE quirk: FPS > 60 is sent as 0 to NVIDIA software.
    pub fn gfe_mode_fps(&self, info: &ServerInfo) -> u32 {
        if info.is_nvidia_software() && self.fps > 60 {
            0
        } else {
            self.fps
        }
    }

    /// Query parameters in moonlight-embedded's order.
    pub fn to_query(&self) -> Vec<(&'static str, String)> {
        let mut q = vec![
            ("appid", self.app_id.to_string()),
            (
                "mode",
                format!("{}x{}x{}", self.width, self.height, self.fps),
            ),
            (
                "additionalStates",
                u8::from(self.additional_states).to_string(),
            ),
            ("sops", u8::from(self.sops).to_string()),
            ("rikey", hex::encode_upper(self.ri_key)),
            ("rikeyid", self.ri_key_id.to_string()),
        ];
        if self.hdr {
            q.extend([
                ("hdrMode", "1".to_string()),
                ("clientHdrCapVersion", "0".to_string()),
                ("clientHdrCapSupportedFlagsInUint32", "0".to_string()),
                (
                    "clientHdrCapMetaDataId",
                    "NV_STATIC_METADATA_TYPE_1".to_string(),
                ),
                (
                    "clientHdrCapDisplayData",
                    "0x0x0x0x0x0x0x0x0x0x0".to_string(),
                ),
            ]);
        }
        q.extend([
            (
                "localAudioPlayMode",
                u8::from(self.local_audio_play_mode).to_string(),
            ),
            ("surroundAudioInfo", self.surround_audio_info.to_string()),
            (
                "remoteControllersBitmap",
                self.remote_controllers_bitmap.to_string(),
            ),
            ("gcmap", self.gcmap.to_string()),
            ("gcpersist", u8::from(self.gcpersist).to_string()),
        ]);
        if let Some(p) = &self.surround_params {
            q.push(("surroundParams", p.clone()));
        }
        if let Some(c) = self.continuous_audio {
            q.push(("continuousAudio", u8::from(c).to_string()));
        }
        if let Some(v) = self.corever {
            q.push(("corever", v.to_string()));
        }
        q
    }

    /// Parses the host side. `for_launch` enforces Sunshine's required `/launch` parameters
    /// (`appid`, `rikey`, `rikeyid`, `localAudioPlayMode`); `/resume` needs only the key.
    pub fn from_query<K: AsRef<str>, V: AsRef<str>>(
        params: &[(K, V)],
        for_launch: bool,
    ) -> Result<Self, NvHttpError> {
        let get = |name: &str| {
            params
                .iter()
                .find(|(k, _)| k.as_ref() == name)
                .map(|(_, v)| v.as_ref())
        };
        let req = |name: &'static str| get(name).ok_or(NvHttpError::MissingField(name));
        let num_or = |name: &'static str, d: u32| {
            get(name)
                .map(|v| parse_num::<u32>(name, v))
                .unwrap_or(Ok(d))
        };
        let flag = |name: &'static str| get(name).map(|v| bool01(name, v)).unwrap_or(Ok(false));

        let ri_key = crate::crypto::parse_key_hex(req("rikey")?).ok_or_else(|| {
            NvHttpError::InvalidField {
                field: "rikey",
                value: "<redacted>".into(),
            }
        })?;
        let ri_key_id = parse_num::<i32>("rikeyid", req("rikeyid")?)?;
        let (app_id, local_audio) = if for_launch {
            (
                parse_num::<u32>("appid", req("appid")?)?,
                bool01("localAudioPlayMode", req("localAudioPlayMode")?)?,
            )
        } else {
            (num_or("appid", 0)?, flag("localAudioPlayMode")?)
        };
        let (width, height, fps) = match get("mode") {
            Some(m) => parse_mode(m)?,
            None => (0, 0, 0),
        };
        let bitmap = num_or("remoteControllersBitmap", 0)?;
        Ok(LaunchRequest {
            app_id,
            width,
            height,
            fps,
            sops: flag("sops")?,
            ri_key,
            ri_key_id,
            local_audio_play_mode: local_audio,
            surround_audio_info: num_or("surroundAudioInfo", SURROUND_STEREO)?,
            remote_controllers_bitmap: bitmap,
            gcmap: num_or("gcmap", bitmap)?,
            gcpersist: flag("gcpersist")?,
            hdr: flag("hdrMode")?,
            corever: get("corever")
                .map(|v| parse_num::<u32>("corever", v))
                .transpose()?,
            additional_states: flag("additionalStates")?,
            surround_params: get("surroundParams").map(str::to_string),
            continuous_audio: get("continuousAudio")
                .map(|v| bool01("continuousAudio", v))
                .transpose()?,
        })
    }
}

fn parse_mode(m: &str) -> Result<(u32, u32, u32), NvHttpError> {
    let bad = || NvHttpError::InvalidField {
        field: "mode",
        value: m.to_string(),
    };
    let mut it = m.split('x');
    let mut next = || {
        it.next()
            .ok_or_else(bad)
            .and_then(|v| parse_num::<u32>("mode", v).map_err(|_| bad()))
    };
    let r = (next()?, next()?, next()?);
    if it.next().is_some() {
        return Err(bad());
    }
    Ok(r)
}

/// Answer of `/launch` (`gamesession`) or `/resume` (`resume`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LaunchResponse {
    /// `sessionUrl0`, e.g. `rtspenc://192.168.1.10:48010` (optional on old GFE).
    pub session_url: Option<String>,
}

impl LaunchResponse {
    /// Parses a `/launch` (`resume == false`) or `/resume` body; `gamesession`/`resume` = 0 is
    /// failure.
    pub fn parse(body: &[u8], resume: bool) -> Result<LaunchResponse, NvHttpError> {
        let r = XmlResponse::parse(body)?.ok()?;
        let field = if resume { "resume" } else { "gamesession" };
        if parse_num::<i64>(field, r.required(field)?)? == 0 {
            return Err(NvHttpError::Status {
                code: 200,
                message: format!("{field}=0"),
            });
        }
        Ok(LaunchResponse {
            session_url: r
                .text("sessionUrl0")
                .filter(|s| !s.is_empty())
                .map(str::to_string),
        })
    }

    /// The body a host sends.
    pub fn to_xml(&self, resume: bool) -> String {
        let mut b = XmlBuilder::new(200, None);
        if let Some(u) = &self.session_url {
            b.elem("sessionUrl0", u);
        }
        b.elem(if resume { "resume" } else { "gamesession" }, 1);
        b.finish()
    }
}

/// `sessionUrl0` for an RTSP port on the host address the client connected to (IPv6 bracketed).
pub fn session_url(local_addr: std::net::SocketAddr, rtsp_port: u16, encrypted: bool) -> String {
    let scheme = if encrypted { "rtspenc" } else { "rtsp" };
    match local_addr.ip().to_canonical() {
        std::net::IpAddr::V4(ip) => format!("{scheme}://{ip}:{rtsp_port}"),
        std::net::IpAddr::V6(ip) => format!("{scheme}://[{ip}]:{rtsp_port}"),
    }
}

/// Parses a `/cancel` body: `<cancel>1</cancel>` is success.
pub fn parse_cancel(body: &[u8]) -> Result<(), NvHttpError> {
    let r = XmlResponse::parse(body)?.ok()?;
    if bool01("cancel", r.required("cancel")?)? {
        Ok(())
    } else {
        Err(NvHttpError::Status {
            code: 200,
            message: "cancel=0".into(),
        })
    }
}

/// The `/cancel` success body.
pub fn cancel_xml() -> String {
    XmlBuilder::new(200, None).elem("cancel", 1).finish()
}

impl PairResponse {
    /// Parses a `/pair` body. A non-200 status yields `paired == false` when the body is an
    /// envelope (hosts answer failed phases with 400 + `paired=0`).
    pub fn parse(body: &[u8]) -> Result<PairResponse, NvHttpError> {
        let r = XmlResponse::parse(body)?;
        let paired = r.status_code == 200 && r.text("paired").map(str::trim) == Some("1");
        Ok(PairResponse {
            paired,
            plaincert: r.text("plaincert").map(str::to_string),
            challengeresponse: r.text("challengeresponse").map(str::to_string),
            pairingsecret: r.text("pairingsecret").map(str::to_string),
        })
    }

    /// The body a host sends with `status_code`.
    pub fn to_xml(&self, status_code: i64, status_message: Option<&str>) -> String {
        let mut b = XmlBuilder::new(status_code, status_message);
        b.elem("paired", u8::from(self.paired));
        if let Some(v) = &self.plaincert {
            b.elem("plaincert", v);
        }
        if let Some(v) = &self.challengeresponse {
            b.elem("challengeresponse", v);
        }
        if let Some(v) = &self.pairingsecret {
            b.elem("pairingsecret", v);
        }
        b.finish()
    }
}

#[cfg(test)]
mod tests;
