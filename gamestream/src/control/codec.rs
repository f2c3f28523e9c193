//! Framing of control messages into ENet packet payloads: V1, V2 and the AES-GCM wrapper, plus
//! [`ControlCodec`], the per-connection state (key, IV style, send sequence number).

use super::error::ControlError;
use super::ids::{Generation, ENCRYPTED_HEADER_TYPE};
use super::message::{ClientMessage, HostMessage};
use crate::crypto::{GcmIv, GcmKey, GCM_TAG_LEN};
use crate::version::AppVersion;

/// How the wrapper's GCM IV is built from `seq`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IvStyle {
    /// Sunshine's 12-byte IV: `LE32 seq ‖ 0×6 ‖ direction ‖ 'C'`; used when the client enabled
    /// `encryptionEnabled` bit 0x01.
    V2,
    /// GFE/Wolf 16-byte IV: `seq & 0xFF` then 15 zero bytes.
    Nvidia,
}

/// Which way a message travels; it is part of the V2 IV so both directions never share an IV.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// Client → host (`'C'`).
    ClientToHost,
    /// Host → client (`'H'`).
    HostToClient,
}

/// Which end of the control stream a [`ControlCodec`] serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Side {
    /// We are the client: we send client → host messages.
    Client,
    /// We are the host.
    Host,
}

impl Side {
    fn sending(self) -> Direction {
        match self {
            Side::Client => Direction::ClientToHost,
            Side::Host => Direction::HostToClient,
        }
    }
    fn receiving(self) -> Direction {
        match self {
            Side::Client => Direction::HostToClient,
            Side::Host => Direction::ClientToHost,
        }
    }
}

/// Bytes before the ciphertext: type, length, seq, tag.
const WRAPPER_HEADER_LEN: usize = 2 + 2 + 4 + GCM_TAG_LEN;
/// Smallest legal `length` field: seq + tag + the V2 header.
const MIN_WRAPPER_LENGTH: usize = 4 + GCM_TAG_LEN + 4;

/// The control wrapper IV for `seq` in `direction`.
pub fn control_iv(style: IvStyle, direction: Direction, seq: u32) -> GcmIv {
    match style {
        IvStyle::V2 => {
            let mut iv = [0u8; 12];
            iv[..4].copy_from_slice(&seq.to_le_bytes());
            iv[10] = match direction {
                Direction::ClientToHost => b'C',
                Direction::HostToClient => b'H',
            };
            iv[11] = b'C';
            GcmIv::Twelve(iv)
        }
        IvStyle::Nvidia => {
            let mut iv = [0u8; 16];
            iv[0] = seq as u8; // truncation is the protocol (NVIDIA quirk)
            GcmIv::Sixteen(iv)
        }
    }
}

/// V1 framing: `LE16 type ‖ payload`.
pub fn encode_v1(ty: u16, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(2 + payload.len());
    out.extend_from_slice(&ty.to_le_bytes());
    out.extend_from_slice(payload);
    out
}

/// Splits a V1 packet into `(type, payload)`.
pub fn decode_v1(packet: &[u8]) -> Result<(u16, &[u8]), ControlError> {
    let (ty, payload) = packet.split_first_chunk::<2>().ok_or(ControlError::Runt {
        len: packet.len(),
        need: 2,
    })?;
    Ok((u16::from_le_bytes(*ty), payload))
}

/// V2 framing (also the gen 3/4 TCP framing): `LE16 type ‖ LE16 length ‖ payload`.
pub fn encode_v2(ty: u16, payload: &[u8]) -> Result<Vec<u8>, ControlError> {
    let len =
        u16::try_from(payload.len()).map_err(|_| ControlError::TooLarge("V2 payload length"))?;
    let mut out = Vec::with_capacity(4 + payload.len());
    out.extend_from_slice(&ty.to_le_bytes());
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(payload);
    Ok(out)
}

/// Splits a V2 message; the payload is exactly `length` bytes (trailing bytes are ignored).
pub fn decode_v2(packet: &[u8]) -> Result<(u16, &[u8]), ControlError> {
    let (hdr, rest) = packet.split_first_chunk::<4>().ok_or(ControlError::Runt {
        len: packet.len(),
        need: 4,
    })?;
    let ty = u16::from_le_bytes([hdr[0], hdr[1]]);
    let len = usize::from(u16::from_le_bytes([hdr[2], hdr[3]]));
    let payload = rest.get(..len).ok_or(ControlError::LengthMismatch {
        declared: len,
        available: rest.len(),
    })?;
    Ok((ty, payload))
}

/// Encrypts the V2 message `(ty, payload)` into a complete wrapper packet.
pub fn seal_encrypted(
    key: &GcmKey,
    style: IvStyle,
    direction: Direction,
    seq: u32,
    ty: u16,
    payload: &[u8],
) -> Result<Vec<u8>, ControlError> {
    let inner = encode_v2(ty, payload)?;
    let length = u16::try_from(4 + GCM_TAG_LEN + inner.len())
        .map_err(|_| ControlError::TooLarge("wrapper length"))?;
    let mut out = Vec::with_capacity(WRAPPER_HEADER_LEN + inner.len());
    out.extend_from_slice(&ENCRYPTED_HEADER_TYPE.to_le_bytes());
    out.extend_from_slice(&length.to_le_bytes());
    out.extend_from_slice(&seq.to_le_bytes());
    out.extend_from_slice(&[0; GCM_TAG_LEN]);
    out.extend_from_slice(&inner);
    let tag = key.seal_in_place(
        &control_iv(style, direction, seq),
        &mut out[WRAPPER_HEADER_LEN..],
    );
    out[8..WRAPPER_HEADER_LEN].copy_from_slice(&tag);
    Ok(out)
}

/// A decrypted wrapper packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenedMessage {
    /// The sender's sequence number (not checked for monotonicity, like every receiver).
    pub seq: u32,
    /// Inner V2 type.
    pub ty: u16,
    /// Inner payload: everything after the V2 header. The V2 `payloadLength` field is not trusted,
    /// as in moonlight-common-c, which drops it when converting to V1.
    pub payload: Vec<u8>,
}

/// Applies the receive rules of §4.4 and decrypts one wrapper packet.
pub fn open_encrypted(
    key: &GcmKey,
    style: IvStyle,
    direction: Direction,
    packet: &[u8],
) -> Result<OpenedMessage, ControlError> {
    let (ty, _) = decode_v1(packet)?;
    if ty != ENCRYPTED_HEADER_TYPE {
        return Err(ControlError::NotEncrypted { ty });
    }
    let (hdr, body) =
        packet
            .split_first_chunk::<WRAPPER_HEADER_LEN>()
            .ok_or(ControlError::Runt {
                len: packet.len(),
                need: WRAPPER_HEADER_LEN,
            })?;
    let length = u16::from_le_bytes([hdr[2], hdr[3]]);
    if usize::from(length) < MIN_WRAPPER_LENGTH {
        return Err(ControlError::EncryptedRunt { length });
    }
    let seq = u32::from_le_bytes([hdr[4], hdr[5], hdr[6], hdr[7]]);
    let mut tag = [0u8; GCM_TAG_LEN];
    tag.copy_from_slice(&hdr[8..]);
    let ct_len = usize::from(length) - 4 - GCM_TAG_LEN;
    let ct = body.get(..ct_len).ok_or(ControlError::LengthMismatch {
        declared: usize::from(length) + 4,
        available: packet.len(),
    })?;
    let mut plain = key
        .open(&control_iv(style, direction, seq), ct, &tag)
        .map_err(|_| ControlError::BadTag)?;
    let inner_ty = u16::from_le_bytes([plain[0], plain[1]]);
    plain.drain(..4);
    Ok(OpenedMessage {
        seq,
        ty: inner_ty,
        payload: plain,
    })
}

/// One control connection's codec: generation-specific framing, encryption and the send counter.
#[derive(Debug)]
pub struct ControlCodec {
    key: GcmKey,
    iv_style: IvStyle,
    side: Side,
    version: AppVersion,
    generation: Generation,
    send_seq: u32,
}

impl ControlCodec {
    /// A codec for `side` of a stream with a host reporting `version`; `key` is the launch `rikey`.
    pub fn new(key: &[u8; 16], iv_style: IvStyle, side: Side, version: AppVersion) -> Self {
        Self {
            key: GcmKey::new(key),
            iv_style,
            side,
            version,
            generation: Generation::of(version),
            send_seq: 0,
        }
    }

    /// The host's version.
    pub fn version(&self) -> AppVersion {
        self.version
    }

    /// The generation (selects ids and framing).
    pub fn generation(&self) -> Generation {
        self.generation
    }

    /// The sequence number the next encrypted message will carry.
    pub fn send_seq(&self) -> u32 {
        self.send_seq
    }

    /// Frames `(ty, payload)` for the wire: TCP/V2 framing on gens 3/4, V1 on gens 5-7, the
    /// encrypted wrapper from 7.1.431 (consuming one sequence number).
    pub fn encode_raw(&mut self, ty: u16, payload: &[u8]) -> Result<Vec<u8>, ControlError> {
        match self.generation {
            Generation::Gen3 | Generation::Gen4 => encode_v2(ty, payload),
            Generation::Gen5 | Generation::Gen7 => Ok(encode_v1(ty, payload)),
            Generation::Gen7Encrypted => {
                let out = seal_encrypted(
                    &self.key,
                    self.iv_style,
                    self.side.sending(),
                    self.send_seq,
                    ty,
                    payload,
                )?;
                self.send_seq = self.send_seq.wrapping_add(1);
                Ok(out)
            }
        }
    }

    /// Unframes one received packet into `(type, payload)`, applying the receive rules.
    pub fn decode_raw(&self, packet: &[u8]) -> Result<(u16, Vec<u8>), ControlError> {
        match self.generation {
            Generation::Gen3 | Generation::Gen4 => decode_v2(packet).map(|(t, p)| (t, p.to_vec())),
            Generation::Gen5 | Generation::Gen7 => decode_v1(packet).map(|(t, p)| (t, p.to_vec())),
            Generation::Gen7Encrypted => {
                let m = open_encrypted(&self.key, self.iv_style, self.side.receiving(), packet)?;
                Ok((m.ty, m.payload))
            }
        }
    }

    /// Encodes a client → host message into a complete ENet payload.
    pub fn encode_client(&mut self, msg: &ClientMessage) -> Result<Vec<u8>, ControlError> {
        let (ty, payload) = msg.encode(self.generation)?;
        self.encode_raw(ty, &payload)
    }

    /// Decodes a packet received by a host.
    pub fn decode_client(&self, packet: &[u8]) -> Result<ClientMessage, ControlError> {
        let (ty, payload) = self.decode_raw(packet)?;
        ClientMessage::decode(self.generation, ty, &payload)
    }

    /// Encodes a host → client message into a complete ENet payload.
    pub fn encode_host(&mut self, msg: &HostMessage) -> Result<Vec<u8>, ControlError> {
        let (ty, payload) = msg.encode(self.generation)?;
        self.encode_raw(ty, &payload)
    }

    /// Decodes a packet received by a client.
    pub fn decode_host(&self, packet: &[u8]) -> Result<HostMessage, ControlError> {
        let (ty, payload) = self.decode_raw(packet)?;
        HostMessage::decode(self.version, ty, &payload)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control::termination::Termination;

    const K: [u8; 16] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15];

    fn seal_vec(style: IvStyle, dir: Direction, seq: u32, inner_hex: &str) -> String {
        let inner = hex::decode(inner_hex).unwrap();
        let (ty, payload) = decode_v2(&inner).unwrap();
        hex::encode(seal_encrypted(&GcmKey::new(&K), style, dir, seq, ty, payload).unwrap())
    }

    #[test]
    fn ivs() {
        assert_eq!(
            control_iv(IvStyle::V2, Direction::ClientToHost, 5),
            GcmIv::Twelve(
                hex::decode("050000000000000000004343")
                    .unwrap()
                    .try_into()
                    .unwrap()
            )
        );
        assert_eq!(
            control_iv(IvStyle::V2, Direction::HostToClient, 0),
            GcmIv::Twelve(
                hex::decode("000000000000000000004843")
                    .unwrap()
                    .try_into()
                    .unwrap()
            )
        );
        let mut n = [0u8; 16];
        n[0] = 0x34;
        assert_eq!(
            control_iv(IvStyle::Nvidia, Direction::ClientToHost, 0x1234),
            GcmIv::Sixteen(n)
        );
    }

    #[test]
    fn vectors_c1_to_c5() {
        use Direction::*;
        assert_eq!(
            seal_vec(IvStyle::V2, ClientToHost, 0, "000208000400000000000000"),
            "01002000000000002b0c87aae484568f7c0a15578b3f96a55ed723f5cefe6857608f0a93"
        );
        assert_eq!(
            seal_vec(IvStyle::Nvidia, ClientToHost, 0, "000208000400000000000000"),
            "010020000000000042ea7a6240a18619bf3f58837ac5de0b001473f6efbef477e1310fb6"
        );
        assert_eq!(
            seal_vec(IvStyle::V2, HostToClient, 0, "0901040080030023"),
            "01001c0000000000b835a2b8ace857ddcbad385dce166aa9f2dd4edacf3be801"
        );
        assert_eq!(
            seal_vec(IvStyle::V2, ClientToHost, 1, "020302000000"),
            "01001a00010000006c12bedcfec5f08348afa44cd89b857221270741031b"
        );
        assert_eq!(
            seal_vec(
                IvStyle::V2,
                ClientToHost,
                5,
                "06020e000000000a03000000004100000000"
            ),
            "0100260005000000c0e0c77142295cebcba507c9cd69e993a7fe524c77fb16721ae18411b40784897787"
        );
    }

    #[test]
    fn codec_produces_vectors_and_counts() {
        let mut c = ControlCodec::new(&K, IvStyle::V2, Side::Client, AppVersion::SUNSHINE);
        let c1 = c.encode_client(&ClientMessage::PeriodicPing).unwrap();
        assert_eq!(
            hex::encode(c1),
            "01002000000000002b0c87aae484568f7c0a15578b3f96a55ed723f5cefe6857608f0a93"
        );
        let c4 = c.encode_client(&ClientMessage::StartA).unwrap();
        assert_eq!(
            hex::encode(c4),
            "01001a00010000006c12bedcfec5f08348afa44cd89b857221270741031b"
        );
        for _ in 2..5 {
            c.encode_client(&ClientMessage::PeriodicPing).unwrap();
        }
        let i1 = hex::decode("0000000a03000000004100000000").unwrap();
        let c5 = c.encode_client(&ClientMessage::Input(i1.clone())).unwrap();
        assert_eq!(
            hex::encode(&c5),
            "0100260005000000c0e0c77142295cebcba507c9cd69e993a7fe524c77fb16721ae18411b40784897787"
        );
        assert_eq!(c.send_seq(), 6);
        let host = ControlCodec::new(&K, IvStyle::V2, Side::Host, AppVersion::SUNSHINE);
        assert_eq!(host.decode_client(&c5).unwrap(), ClientMessage::Input(i1));

        let mut h = ControlCodec::new(&K, IvStyle::V2, Side::Host, AppVersion::SUNSHINE);
        let c3 = h
            .encode_host(&HostMessage::Termination(Termination::server_closed()))
            .unwrap();
        assert_eq!(
            hex::encode(&c3),
            "01001c0000000000b835a2b8ace857ddcbad385dce166aa9f2dd4edacf3be801"
        );
        assert_eq!(
            c.decode_host(&c3).unwrap(),
            HostMessage::Termination(Termination::server_closed())
        );
        // The wrong direction (our own messages reflected back) never verifies.
        assert!(matches!(host.decode_host(&c3), Err(ControlError::BadTag)));
    }

    #[test]
    fn receive_rules() {
        let key = GcmKey::new(&K);
        let c1 =
            hex::decode("01002000000000002b0c87aae484568f7c0a15578b3f96a55ed723f5cefe6857608f0a93")
                .unwrap();
        let open = |p: &[u8]| open_encrypted(&key, IvStyle::V2, Direction::ClientToHost, p);
        let m = open(&c1).unwrap();
        assert_eq!(
            (m.seq, m.ty, m.payload),
            (0, 0x0200, vec![4, 0, 0, 0, 0, 0, 0, 0])
        );
        // Not 0x0001 => dropped.
        assert!(matches!(
            open(&hex::decode("00020400").unwrap()),
            Err(ControlError::NotEncrypted { ty: 0x0200 })
        ));
        // `length` 23 => runt.
        let mut runt = c1.clone();
        runt[2] = 23;
        assert!(matches!(
            open(&runt),
            Err(ControlError::EncryptedRunt { length: 23 })
        ));
        // Packet shorter than length + 4.
        assert!(matches!(
            open(&c1[..c1.len() - 1]),
            Err(ControlError::LengthMismatch { .. })
        ));
        // Extra trailing bytes are tolerated.
        let mut long = c1.clone();
        long.push(0xAA);
        assert!(open(&long).is_ok());
        // Flipped ciphertext or tag bit => bad tag.
        for i in [9, c1.len() - 1] {
            let mut bad = c1.clone();
            bad[i] ^= 1;
            assert!(matches!(open(&bad), Err(ControlError::BadTag)));
        }
        // Wrong IV style.
        assert!(matches!(
            open_encrypted(&key, IvStyle::Nvidia, Direction::ClientToHost, &c1),
            Err(ControlError::BadTag)
        ));
        assert!(matches!(open(&[1]), Err(ControlError::Runt { .. })));
        assert!(matches!(open(&c1[..10]), Err(ControlError::Runt { .. })));
    }

    #[test]
    fn legacy_framings() {
        let mut c = ControlCodec::new(
            &K,
            IvStyle::Nvidia,
            Side::Client,
            AppVersion::parse("7.1.415.0"),
        );
        assert_eq!(
            c.encode_client(&ClientMessage::StartA).unwrap(),
            vec![0x05, 0x03, 0, 0]
        );
        assert_eq!(c.send_seq(), 0);
        let h = ControlCodec::new(
            &K,
            IvStyle::Nvidia,
            Side::Client,
            AppVersion::parse("7.1.415.0"),
        );
        assert_eq!(
            h.decode_host(&[0x00, 0x01, 0x00, 0x01]).unwrap(),
            HostMessage::Termination(crate::control::termination::Termination {
                code: 0x0100,
                form: crate::control::termination::TerminationForm::Short
            })
        );
        assert_eq!(
            h.decode_host(&[0x09, 0x01, 0x80, 0x03, 0x00, 0x23])
                .unwrap(),
            HostMessage::Termination(Termination::server_closed())
        );
        let mut g3 = ControlCodec::new(
            &K,
            IvStyle::Nvidia,
            Side::Client,
            AppVersion::parse("3.0.0"),
        );
        assert_eq!(
            g3.encode_client(&ClientMessage::IdrRequest).unwrap(),
            vec![0x07, 0x14, 2, 0, 0, 0]
        );
        assert!(matches!(
            decode_v2(&[1, 0, 5, 0, 1]),
            Err(ControlError::LengthMismatch {
                declared: 5,
                available: 1
            })
        ));
        assert!(matches!(decode_v1(&[1]), Err(ControlError::Runt { .. })));
    }
}
