//! Control message type ids per host generation.
//!
//! The same logical message has a different LE16 type id depending on the host's `appversion`; the
//! tables here follow moonlight-common-c's `packetTypesGen*`, with the Sunshine extensions and the
//! periodic ping added for the generations that have them.

use crate::version::AppVersion;

/// The protocol generation a host's `appversion` selects.
///
/// moonlight-common-c picks the table by `major == 3`, `== 4`, `== 5`, else gen 7 (so a major of 6
/// uses the gen-7 ids, and the encrypted table once `>= 7.1.431`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Generation {
    /// Major 3: TCP control stream (port 47995).
    Gen3,
    /// Major 4: TCP control stream (port 47995).
    Gen4,
    /// Major 5: ENet, V1 framing, input type 0x0207.
    Gen5,
    /// Major 6-7 below 7.1.431: ENet, V1 framing, unencrypted.
    Gen7,
    /// `>= 7.1.431`: ENet with the AES-GCM wrapper (Sunshine, Wolf, GFE >= 3.22).
    Gen7Encrypted,
}

impl Generation {
    /// The generation moonlight-common-c would select for `version`.
    pub fn of(version: AppVersion) -> Self {
        match version.major {
            3 => Self::Gen3,
            4 => Self::Gen4,
            5 => Self::Gen5,
            _ if version.has_encrypted_control() => Self::Gen7Encrypted,
            _ => Self::Gen7,
        }
    }

    /// The type-id table of this generation.
    pub fn ids(self) -> &'static MessageIds {
        match self {
            Self::Gen3 => &MessageIds::GEN3,
            Self::Gen4 => &MessageIds::GEN4,
            Self::Gen5 => &MessageIds::GEN5,
            Self::Gen7 => &MessageIds::GEN7,
            Self::Gen7Encrypted => &MessageIds::GEN7_ENCRYPTED,
        }
    }

    /// True for generations whose control stream runs over ENet (major >= 5).
    pub fn uses_enet(self) -> bool {
        !matches!(self, Self::Gen3 | Self::Gen4)
    }
}

/// Type ids of every control message of one generation; `None` = the generation has no such message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MessageIds {
    /// Start A (on gens 3/4 and the encrypted gen this *is* the IDR request).
    pub start_a: u16,
    /// Start B.
    pub start_b: u16,
    /// Dedicated IDR request; absent on gen 5 and gen 7 < 7.1.431 (those use RFI-as-IDR).
    pub request_idr: Option<u16>,
    /// Reference frame invalidation.
    pub invalidate_refs: u16,
    /// Loss statistics (only sent below 7.1.415).
    pub loss_stats: u16,
    /// Frame statistics (never sent by current clients).
    pub frame_stats: u16,
    /// Input data (gens 3/4 carry input over TCP 35043 instead).
    pub input: Option<u16>,
    /// Periodic ping (sent from 7.1.415).
    pub periodic_ping: Option<u16>,
    /// LTR frame ACK (Sunshine extension).
    pub ltr_ack: Option<u16>,
    /// Per-frame FEC status, client → host (Sunshine extension).
    pub fec_status: Option<u16>,
    /// Rumble, host → client.
    pub rumble: Option<u16>,
    /// Termination, host → client.
    pub termination: Option<u16>,
    /// HDR mode, host → client.
    pub hdr_mode: Option<u16>,
    /// Rumble triggers, host → client (Sunshine extension).
    pub rumble_triggers: Option<u16>,
    /// Set motion event state, host → client (Sunshine extension).
    pub set_motion_event: Option<u16>,
    /// Set RGB LED, host → client (Sunshine extension; same id as FEC status in the other direction).
    pub set_rgb_led: Option<u16>,
    /// Set adaptive triggers, host → client (Sunshine extension).
    pub set_adaptive_triggers: Option<u16>,
    /// Dynamic parameter change, client → host (Foundation Sunshine's extension).
    pub dynamic_param: Option<u16>,
}

/// Type id of the encrypted wrapper (first LE16 of every packet on an encrypted stream).
pub const ENCRYPTED_HEADER_TYPE: u16 = 0x0001;
/// Short-form termination type (gen 7 < 7.1.431); also the "intended termination" reason code.
pub const TERMINATION_SHORT: u16 = 0x0100;
/// Extended termination type (encrypted generation).
pub const TERMINATION_EXTENDED: u16 = 0x0109;

impl MessageIds {
    /// Generation 3 (TCP).
    pub const GEN3: MessageIds = MessageIds {
        start_a: 0x1407,
        start_b: 0x1410,
        request_idr: Some(0x1407),
        invalidate_refs: 0x1404,
        loss_stats: 0x140C,
        frame_stats: 0x1417,
        input: None,
        periodic_ping: None,
        ltr_ack: None,
        fec_status: None,
        rumble: None,
        termination: None,
        hdr_mode: None,
        rumble_triggers: None,
        set_motion_event: None,
        set_rgb_led: None,
        set_adaptive_triggers: None,
        dynamic_param: None,
    };

    /// Generation 4 (TCP).
    pub const GEN4: MessageIds = MessageIds {
        start_a: 0x0606,
        start_b: 0x0609,
        request_idr: Some(0x0606),
        invalidate_refs: 0x0604,
        loss_stats: 0x060A,
        frame_stats: 0x0611,
        ..Self::GEN3
    };

    /// Generation 5 (ENet, V1).
    pub const GEN5: MessageIds = MessageIds {
        start_a: 0x0305,
        start_b: 0x0307,
        request_idr: None,
        invalidate_refs: 0x0301,
        loss_stats: 0x0201,
        frame_stats: 0x0204,
        input: Some(0x0207),
        ..Self::GEN3
    };

    /// Generation 7 below 7.1.431 (ENet, V1, unencrypted).
    pub const GEN7: MessageIds = MessageIds {
        input: Some(0x0206),
        periodic_ping: Some(0x0200),
        rumble: Some(0x010B),
        termination: Some(TERMINATION_SHORT),
        hdr_mode: Some(0x010E),
        ..Self::GEN5
    };

    /// Generation 7 from 7.1.431 (encrypted wrapper, Sunshine extensions).
    pub const GEN7_ENCRYPTED: MessageIds = MessageIds {
        start_a: 0x0302,
        request_idr: Some(0x0302),
        ltr_ack: Some(0x0350),
        fec_status: Some(0x5502),
        termination: Some(TERMINATION_EXTENDED),
        rumble_triggers: Some(0x5500),
        set_motion_event: Some(0x5501),
        set_rgb_led: Some(0x5502),
        set_adaptive_triggers: Some(0x5503),
        dynamic_param: Some(0x5506),
        ..Self::GEN7
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generation_selection_follows_moonlight() {
        let g = |s: &str| Generation::of(AppVersion::parse(s));
        assert_eq!(g("3.0.0.0"), Generation::Gen3);
        assert_eq!(g("4.1.0.0"), Generation::Gen4);
        assert_eq!(g("5.0.0.0"), Generation::Gen5);
        assert_eq!(g("6.0.0.0"), Generation::Gen7);
        assert_eq!(g("7.1.430.0"), Generation::Gen7);
        assert_eq!(g("7.1.431.0"), Generation::Gen7Encrypted);
        assert_eq!(g("7.1.431.-1"), Generation::Gen7Encrypted);
    }

    #[test]
    fn tables_match_spec() {
        let e = Generation::Gen7Encrypted.ids();
        assert_eq!(
            (e.start_a, e.start_b, e.request_idr),
            (0x0302, 0x0307, Some(0x0302))
        );
        assert_eq!(
            (e.input, e.termination, e.fec_status),
            (Some(0x0206), Some(0x0109), Some(0x5502))
        );
        let g7 = Generation::Gen7.ids();
        assert_eq!(
            (g7.start_a, g7.request_idr, g7.termination),
            (0x0305, None, Some(0x0100))
        );
        assert_eq!(Generation::Gen5.ids().input, Some(0x0207));
        assert_eq!(Generation::Gen3.ids().start_b, 0x1410);
        assert_eq!(Generation::Gen4.ids().loss_stats, 0x060A);
    }
}
