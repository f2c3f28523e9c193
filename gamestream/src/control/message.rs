//! Control messages in both directions, as (type id, payload) pairs for a given generation.
//!
//! Framing (V1, V2, the encrypted wrapper) is applied by [`super::codec`]; this module only knows
//! each message's id per generation and its payload layout.

use super::error::ControlError;
use super::ids::{Generation, TERMINATION_EXTENDED, TERMINATION_SHORT};
use super::termination::{Termination, TerminationForm};
use crate::version::AppVersion;

/// Per-frame FEC status (client → host, Sunshine extension), 21 bytes, all fields **big-endian**.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct FecStatus {
    /// Frame index.
    pub frame_index: u32,
    /// Highest RTP sequence number received for the frame.
    pub highest_received_sequence_number: u16,
    /// Next contiguous sequence number.
    pub next_contiguous_sequence_number: u16,
    /// Packets missing below the highest received one.
    pub missing_packets_before_highest_received: u16,
    /// Data shards in the block.
    pub total_data_packets: u16,
    /// Parity shards in the block.
    pub total_parity_packets: u16,
    /// Data shards received.
    pub received_data_packets: u16,
    /// Parity shards received.
    pub received_parity_packets: u16,
    /// FEC percentage in use.
    pub fec_percentage: u8,
    /// Index of the FEC block.
    pub multi_fec_block_index: u8,
    /// FEC blocks in the frame.
    pub multi_fec_block_count: u8,
}

impl FecStatus {
    /// Wire size.
    pub const LEN: usize = 21;

    /// The 21-byte big-endian layout.
    pub fn to_bytes(&self) -> [u8; Self::LEN] {
        let mut b = [0u8; Self::LEN];
        b[0..4].copy_from_slice(&self.frame_index.to_be_bytes());
        let words = [
            self.highest_received_sequence_number,
            self.next_contiguous_sequence_number,
            self.missing_packets_before_highest_received,
            self.total_data_packets,
            self.total_parity_packets,
            self.received_data_packets,
            self.received_parity_packets,
        ];
        for (i, w) in words.iter().enumerate() {
            b[4 + 2 * i..6 + 2 * i].copy_from_slice(&w.to_be_bytes());
        }
        b[18] = self.fec_percentage;
        b[19] = self.multi_fec_block_index;
        b[20] = self.multi_fec_block_count;
        b
    }

    /// Parses the 21-byte layout (trailing bytes ignored).
    pub fn from_bytes(b: &[u8]) -> Option<Self> {
        let mut r = Reader(b);
        Some(Self {
            frame_index: r.be32()?,
            highest_received_sequence_number: r.be16()?,
            next_contiguous_sequence_number: r.be16()?,
            missing_packets_before_highest_received: r.be16()?,
            total_data_packets: r.be16()?,
            total_parity_packets: r.be16()?,
            received_data_packets: r.be16()?,
            received_parity_packets: r.be16()?,
            fec_percentage: r.u8()?,
            multi_fec_block_index: r.u8()?,
            multi_fec_block_count: r.u8()?,
        })
    }
}

/// Sunshine's `SS_HDR_METADATA` (26 bytes, all LE16).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct HdrMetadata {
    /// Display primaries {x, y}, normalised to 50000.
    pub display_primaries: [(u16, u16); 3],
    /// White point {x, y}.
    pub white_point: (u16, u16),
    /// Nits.
    pub max_display_luminance: u16,
    /// 1/10000 nit.
    pub min_display_luminance: u16,
    /// MaxCLL.
    pub max_content_light_level: u16,
    /// MaxFALL.
    pub max_frame_average_light_level: u16,
    /// Max full-frame luminance.
    pub max_full_frame_luminance: u16,
}

impl HdrMetadata {
    /// Wire size.
    pub const LEN: usize = 26;

    fn fields(&self) -> [u16; 13] {
        let p = &self.display_primaries;
        [
            p[0].0,
            p[0].1,
            p[1].0,
            p[1].1,
            p[2].0,
            p[2].1,
            self.white_point.0,
            self.white_point.1,
            self.max_display_luminance,
            self.min_display_luminance,
            self.max_content_light_level,
            self.max_frame_average_light_level,
            self.max_full_frame_luminance,
        ]
    }

    /// The 26-byte layout.
    pub fn to_bytes(&self) -> [u8; Self::LEN] {
        let mut b = [0u8; Self::LEN];
        for (i, f) in self.fields().iter().enumerate() {
            b[2 * i..2 * i + 2].copy_from_slice(&f.to_le_bytes());
        }
        b
    }

    /// Parses like moonlight-common-c: missing trailing fields read as zero.
    pub fn from_bytes_zero_filled(b: &[u8]) -> Self {
        let mut f = [0u16; 13];
        for (slot, chunk) in f.iter_mut().zip(b.chunks_exact(2)) {
            *slot = u16::from_le_bytes([chunk[0], chunk[1]]);
        }
        Self {
            display_primaries: [(f[0], f[1]), (f[2], f[3]), (f[4], f[5])],
            white_point: (f[6], f[7]),
            max_display_luminance: f[8],
            min_display_luminance: f[9],
            max_content_light_level: f[10],
            max_frame_average_light_level: f[11],
            max_full_frame_luminance: f[12],
        }
    }
}

/// A client → host control message.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ClientMessage {
    /// Start A (on gens 3/4 and >= 7.1.431 this is sent as the IDR request).
    StartA,
    /// Start B.
    StartB,
    /// Request an IDR frame (only where the generation has the message; see
    /// [`ClientMessage::idr_request_for`]).
    IdrRequest,
    /// Reference frame invalidation for frames `first..=last`.
    Rfi {
        /// First invalid frame.
        first: u32,
        /// Last invalid frame.
        last: u32,
    },
    /// Loss statistics (hosts below 7.1.415, every 50 ms).
    LossStats {
        /// Packets lost since the previous report.
        lost_packets: u32,
        /// Last completely received frame.
        last_good_frame: u64,
    },
    /// Periodic ping (>= 7.1.415, every 100 ms).
    PeriodicPing,
    /// LTR frame ACK (Sunshine).
    LtrAck {
        /// Acknowledged frame.
        frame_index: u32,
    },
    /// Per-frame FEC status (Sunshine).
    FecStatus(FecStatus),
    /// A new encoder bitrate in kbit/s, applied while the stream runs: Foundation Sunshine's
    /// dynamic parameter change (`0x5506`), kind [`DYNAMIC_PARAM_BITRATE`]. Payload: the kind
    /// and the value, each a little-endian `i32`; the fork takes 1..=800 000 and ignores the rest.
    Bitrate {
        /// Kilobits per second.
        kbps: u32,
    },
    /// Input: the payload of the input message exactly as the input module produced it (a plaintext
    /// NV input packet on >= 7.1.431, the `BE32 L ‖ encrypted` blob on older generations).
    Input(Vec<u8>),
    /// Any other type (frame stats, unknown ids), payload verbatim.
    Other {
        /// Type id.
        ty: u16,
        /// Payload.
        payload: Vec<u8>,
    },
}

/// A host → client control message.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum HostMessage {
    /// The host ends the stream.
    Termination(Termination),
    /// Controller rumble.
    Rumble {
        /// Controller number.
        controller: u16,
        /// Low-frequency motor.
        low_freq: u16,
        /// High-frequency motor.
        high_freq: u16,
    },
    /// HDR on/off, with Sunshine's metadata when the host is Sunshine-like.
    HdrMode {
        /// HDR enabled.
        enabled: bool,
        /// Mastering metadata (Sunshine hosts only).
        metadata: Option<HdrMetadata>,
    },
    /// Trigger rumble (Sunshine).
    RumbleTriggers {
        /// Controller number.
        controller: u16,
        /// Left trigger motor.
        left: u16,
        /// Right trigger motor.
        right: u16,
    },
    /// Start/stop motion reports (Sunshine).
    SetMotionEventState {
        /// Controller number.
        controller: u16,
        /// Report rate, 0 = stop.
        report_rate_hz: u16,
        /// 1 accelerometer, 2 gyro.
        motion_type: u8,
    },
    /// Controller LED colour (Sunshine).
    SetRgbLed {
        /// Controller number.
        controller: u16,
        /// Red.
        r: u8,
        /// Green.
        g: u8,
        /// Blue.
        b: u8,
    },
    /// DualSense adaptive triggers (Sunshine); effect blobs are opaque.
    SetAdaptiveTriggers {
        /// Controller number.
        controller: u16,
        /// 0x04 right, 0x08 left.
        event_flags: u8,
        /// Left effect type.
        type_left: u8,
        /// Right effect type.
        type_right: u8,
        /// Left effect blob.
        left: [u8; 10],
        /// Right effect blob.
        right: [u8; 10],
    },
    /// Any other type, payload verbatim.
    Other {
        /// Type id.
        ty: u16,
        /// Payload.
        payload: Vec<u8>,
    },
}

/// The bitrate kind of Foundation Sunshine's dynamic parameter change (its
/// `dynamic_param_type_e::BITRATE`; 0 is resolution, 1 frame rate, 3 QP, 4 FEC share...).
pub const DYNAMIC_PARAM_BITRATE: i32 = 2;

/// Number of frames before the last seen one that an RFI-as-IDR invalidates.
const RFI_AS_IDR_SPAN: u32 = 0x20;

/// `Truncated` unless the payload of a `ty` message holds at least `n` bytes.
fn at_least(ty: u16, payload: &[u8], n: usize) -> Result<(), ControlError> {
    if payload.len() < n {
        Err(ControlError::Truncated {
            ty,
            need: n,
            got: payload.len(),
        })
    } else {
        Ok(())
    }
}

fn unsupported(what: &'static str, generation: Generation) -> ControlError {
    ControlError::Unsupported { what, generation }
}

impl ClientMessage {
    /// The message that requests an IDR frame on this generation: the IDR request where it exists,
    /// else an RFI covering `last_seen_frame - 0x20 ..= last_seen_frame` (0 when below 0x20).
    pub fn idr_request_for(version: AppVersion, last_seen_frame: u32) -> ClientMessage {
        if Generation::of(version).ids().request_idr.is_some() {
            ClientMessage::IdrRequest
        } else {
            ClientMessage::Rfi {
                first: last_seen_frame.saturating_sub(RFI_AS_IDR_SPAN),
                last: last_seen_frame,
            }
        }
    }

    /// `(type id, payload)` on `generation`.
    pub fn encode(&self, generation: Generation) -> Result<(u16, Vec<u8>), ControlError> {
        let ids = generation.ids();
        Ok(match self {
            Self::StartA => (ids.start_a, vec![0, 0]),
            Self::StartB => {
                let payload = if generation == Generation::Gen3 {
                    [0u32, 0, 0, 0x0A]
                        .iter()
                        .flat_map(|v| v.to_le_bytes())
                        .collect()
                } else {
                    vec![0]
                };
                (ids.start_b, payload)
            }
            Self::IdrRequest => (
                ids.request_idr
                    .ok_or(unsupported("IDR request", generation))?,
                vec![0, 0],
            ),
            Self::Rfi { first, last } => {
                let mut p = Vec::with_capacity(24);
                p.extend_from_slice(&u64::from(*first).to_le_bytes());
                p.extend_from_slice(&u64::from(*last).to_le_bytes());
                p.extend_from_slice(&0u64.to_le_bytes());
                (ids.invalidate_refs, p)
            }
            Self::LossStats {
                lost_packets,
                last_good_frame,
            } => {
                let mut p = Vec::with_capacity(32);
                for v in [*lost_packets, 50, 1000] {
                    p.extend_from_slice(&v.to_le_bytes());
                }
                p.extend_from_slice(&last_good_frame.to_le_bytes());
                for v in [0u32, 0, 0x14] {
                    p.extend_from_slice(&v.to_le_bytes());
                }
                (ids.loss_stats, p)
            }
            Self::PeriodicPing => {
                let ty = ids
                    .periodic_ping
                    .ok_or(unsupported("periodic ping", generation))?;
                (ty, vec![4, 0, 0, 0, 0, 0, 0, 0])
            }
            Self::LtrAck { frame_index } => {
                let ty = ids.ltr_ack.ok_or(unsupported("LTR ACK", generation))?;
                let mut p = frame_index.to_le_bytes().to_vec();
                p.extend_from_slice(&[0; 4]);
                (ty, p)
            }
            Self::FecStatus(s) => (
                ids.fec_status
                    .ok_or(unsupported("FEC status", generation))?,
                s.to_bytes().to_vec(),
            ),
            Self::Input(bytes) => (
                ids.input
                    .ok_or(unsupported("input on the control stream", generation))?,
                bytes.clone(),
            ),
            Self::Bitrate { kbps } => {
                let ty = ids
                    .dynamic_param
                    .ok_or(unsupported("dynamic bitrate", generation))?;
                let kbps = i32::try_from(*kbps).map_err(|_| ControlError::TooLarge("bitrate"))?;
                let mut p = DYNAMIC_PARAM_BITRATE.to_le_bytes().to_vec();
                p.extend_from_slice(&kbps.to_le_bytes());
                (ty, p)
            }
            Self::Other { ty, payload } => (*ty, payload.clone()),
        })
    }

    /// Parses `(type id, payload)` received by a host on `generation`. Unknown ids become
    /// [`ClientMessage::Other`]; known ids with short payloads are errors.
    pub fn decode(
        generation: Generation,
        ty: u16,
        payload: &[u8],
    ) -> Result<ClientMessage, ControlError> {
        let ids = generation.ids();
        let need = |n: usize| at_least(ty, payload, n);
        let mut r = Reader(payload);
        Ok(if Some(ty) == ids.request_idr {
            ClientMessage::IdrRequest
        } else if ty == ids.start_a {
            ClientMessage::StartA
        } else if ty == ids.start_b {
            ClientMessage::StartB
        } else if Some(ty) == ids.input {
            ClientMessage::Input(payload.to_vec())
        } else if ty == ids.invalidate_refs {
            need(16)?;
            let first = r.le64().unwrap_or_default() as u32;
            let last = r.le64().unwrap_or_default() as u32;
            ClientMessage::Rfi { first, last }
        } else if Some(ty) == ids.periodic_ping {
            ClientMessage::PeriodicPing
        } else if ty == ids.loss_stats {
            need(20)?;
            let lost_packets = r.le32().unwrap_or_default();
            r.skip(8);
            ClientMessage::LossStats {
                lost_packets,
                last_good_frame: r.le64().unwrap_or_default(),
            }
        } else if Some(ty) == ids.ltr_ack {
            need(4)?;
            ClientMessage::LtrAck {
                frame_index: r.le32().unwrap_or_default(),
            }
        } else if Some(ty) == ids.dynamic_param
            && payload.get(..4) == Some(&DYNAMIC_PARAM_BITRATE.to_le_bytes()[..])
        {
            need(8)?;
            r.skip(4);
            ClientMessage::Bitrate {
                kbps: r.le32().unwrap_or_default(),
            }
        } else if Some(ty) == ids.fec_status {
            let s = FecStatus::from_bytes(payload).ok_or(ControlError::Truncated {
                ty,
                need: FecStatus::LEN,
                got: payload.len(),
            })?;
            ClientMessage::FecStatus(s)
        } else {
            ClientMessage::Other {
                ty,
                payload: payload.to_vec(),
            }
        })
    }
}

impl HostMessage {
    /// `(type id, payload)` on `generation`.
    pub fn encode(&self, generation: Generation) -> Result<(u16, Vec<u8>), ControlError> {
        let ids = generation.ids();
        let id = |v: Option<u16>, what| v.ok_or(unsupported(what, generation));
        Ok(match self {
            Self::Termination(t) => {
                let ty = id(ids.termination, "termination")?;
                let payload = match t.form {
                    TerminationForm::Extended => t.code.to_be_bytes().to_vec(),
                    TerminationForm::Short => u16::try_from(t.code)
                        .map_err(|_| ControlError::TooLarge("short termination code"))?
                        .to_le_bytes()
                        .to_vec(),
                };
                (ty, payload)
            }
            Self::Rumble {
                controller,
                low_freq,
                high_freq,
            } => {
                let mut p = 0x00C0_FFEEu32.to_le_bytes().to_vec();
                for v in [controller, low_freq, high_freq] {
                    p.extend_from_slice(&v.to_le_bytes());
                }
                (id(ids.rumble, "rumble")?, p)
            }
            Self::HdrMode { enabled, metadata } => {
                let mut p = vec![u8::from(*enabled)];
                if let Some(m) = metadata {
                    p.extend_from_slice(&m.to_bytes());
                }
                (id(ids.hdr_mode, "HDR mode")?, p)
            }
            Self::RumbleTriggers {
                controller,
                left,
                right,
            } => {
                let p = [controller, left, right]
                    .iter()
                    .flat_map(|v| v.to_le_bytes())
                    .collect();
                (id(ids.rumble_triggers, "rumble triggers")?, p)
            }
            Self::SetMotionEventState {
                controller,
                report_rate_hz,
                motion_type,
            } => {
                let mut p = controller.to_le_bytes().to_vec();
                p.extend_from_slice(&report_rate_hz.to_le_bytes());
                p.push(*motion_type);
                (id(ids.set_motion_event, "set motion event state")?, p)
            }
            Self::SetRgbLed {
                controller,
                r,
                g,
                b,
            } => {
                let mut p = controller.to_le_bytes().to_vec();
                p.extend_from_slice(&[*r, *g, *b]);
                (id(ids.set_rgb_led, "set RGB LED")?, p)
            }
            Self::SetAdaptiveTriggers {
                controller,
                event_flags,
                type_left,
                type_right,
                left,
                right,
            } => {
                let mut p = controller.to_le_bytes().to_vec();
                p.extend_from_slice(&[*event_flags, *type_left, *type_right]);
                p.extend_from_slice(left);
                p.extend_from_slice(right);
                (id(ids.set_adaptive_triggers, "set adaptive triggers")?, p)
            }
            Self::Other { ty, payload } => (*ty, payload.clone()),
        })
    }

    /// Parses `(type id, payload)` received by a client of a host with `version`.
    ///
    /// Both termination ids (0x0100 and 0x0109) are accepted on every ENet generation so that a host
    /// using the "wrong" one still ends the stream; the form follows the payload length as in
    /// moonlight-common-c (>= 4 bytes = extended `BE32`, else short `LE16`).
    pub fn decode(
        version: AppVersion,
        ty: u16,
        payload: &[u8],
    ) -> Result<HostMessage, ControlError> {
        let generation = Generation::of(version);
        let ids = generation.ids();
        let need = |n: usize| at_least(ty, payload, n);
        let mut r = Reader(payload);
        let is_termination = Some(ty) == ids.termination
            || (generation.uses_enet() && (ty == TERMINATION_SHORT || ty == TERMINATION_EXTENDED));
        Ok(if is_termination {
            if payload.len() >= 4 {
                let code = r.be32().unwrap_or_default();
                HostMessage::Termination(Termination {
                    code,
                    form: TerminationForm::Extended,
                })
            } else {
                need(2)?;
                let code = u32::from(r.le16().unwrap_or_default());
                HostMessage::Termination(Termination {
                    code,
                    form: TerminationForm::Short,
                })
            }
        } else if Some(ty) == ids.rumble {
            need(10)?;
            r.skip(4);
            HostMessage::Rumble {
                controller: r.le16().unwrap_or_default(),
                low_freq: r.le16().unwrap_or_default(),
                high_freq: r.le16().unwrap_or_default(),
            }
        } else if Some(ty) == ids.hdr_mode {
            need(1)?;
            let enabled = r.u8().unwrap_or_default() != 0;
            let metadata = version
                .is_sunshine()
                .then(|| HdrMetadata::from_bytes_zero_filled(r.0));
            HostMessage::HdrMode { enabled, metadata }
        } else if Some(ty) == ids.rumble_triggers {
            need(6)?;
            HostMessage::RumbleTriggers {
                controller: r.le16().unwrap_or_default(),
                left: r.le16().unwrap_or_default(),
                right: r.le16().unwrap_or_default(),
            }
        } else if Some(ty) == ids.set_motion_event {
            need(5)?;
            HostMessage::SetMotionEventState {
                controller: r.le16().unwrap_or_default(),
                report_rate_hz: r.le16().unwrap_or_default(),
                motion_type: r.u8().unwrap_or_default(),
            }
        } else if Some(ty) == ids.set_rgb_led {
            need(5)?;
            HostMessage::SetRgbLed {
                controller: r.le16().unwrap_or_default(),
                r: r.u8().unwrap_or_default(),
                g: r.u8().unwrap_or_default(),
                b: r.u8().unwrap_or_default(),
            }
        } else if Some(ty) == ids.set_adaptive_triggers {
            need(25)?;
            let controller = r.le16().unwrap_or_default();
            let event_flags = r.u8().unwrap_or_default();
            let type_left = r.u8().unwrap_or_default();
            let type_right = r.u8().unwrap_or_default();
            let left = r.array10().unwrap_or_default();
            let right = r.array10().unwrap_or_default();
            HostMessage::SetAdaptiveTriggers {
                controller,
                event_flags,
                type_left,
                type_right,
                left,
                right,
            }
        } else {
            HostMessage::Other {
                ty,
                payload: payload.to_vec(),
            }
        })
    }
}

/// A bounds-checked little cursor: every read returns `None` past the end.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take<const N: usize>(&mut self) -> Option<[u8; N]> {
        let (head, rest) = self.0.split_first_chunk::<N>()?;
        self.0 = rest;
        Some(*head)
    }
    fn skip(&mut self, n: usize) {
        self.0 = self.0.get(n..).unwrap_or_default();
    }
    fn u8(&mut self) -> Option<u8> {
        self.take::<1>().map(|b| b[0])
    }
    fn le16(&mut self) -> Option<u16> {
        self.take().map(u16::from_le_bytes)
    }
    fn be16(&mut self) -> Option<u16> {
        self.take().map(u16::from_be_bytes)
    }
    fn le32(&mut self) -> Option<u32> {
        self.take().map(u32::from_le_bytes)
    }
    fn be32(&mut self) -> Option<u32> {
        self.take().map(u32::from_be_bytes)
    }
    fn le64(&mut self) -> Option<u64> {
        self.take().map(u64::from_le_bytes)
    }
    fn array10(&mut self) -> Option<[u8; 10]> {
        self.take()
    }
}

#[cfg(test)]
mod tests;
