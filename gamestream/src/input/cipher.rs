//! The two pre-7.1.431 input encryptions. Both directions are here so a Rust host can serve old
//! clients and a Rust client can talk to old hosts.

use aes::cipher::{BlockDecrypt, BlockEncrypt, KeyInit};
use aes::Aes128;

use super::InputError;
use crate::crypto::{GcmIv, GcmKey, GCM_TAG_LEN};
use crate::version::AppVersion;

/// The launch IV both ciphers start from: `BE32(rikeyid) ‖ 12 zero bytes`.
pub fn launch_iv(rikeyid: u32) -> [u8; 16] {
    let mut iv = [0u8; 16];
    iv[..4].copy_from_slice(&rikeyid.to_be_bytes());
    iv
}

fn split_length_prefix(payload: &[u8]) -> Result<&[u8], InputError> {
    let (len, rest) = payload
        .split_first_chunk::<4>()
        .ok_or(InputError::BadWrapping)?;
    let len = u32::from_be_bytes(*len) as usize;
    rest.get(..len).ok_or(InputError::BadWrapping)
}

/// Gen 7 (< 7.1.431) input encryption: AES-128-GCM with a 16-byte IV, payload
/// `BE32 L ‖ tag(16) ‖ ciphertext` (L = 16 + ciphertext length).
///
/// GFE's quirk, which clients and Sunshine reproduce: after a packet with `L ≥ 32` the IV becomes the
/// last 16 ciphertext bytes of that packet. Use one instance per direction and session.
#[derive(Clone)]
pub struct LegacyGcmInputCipher {
    key: GcmKey,
    iv: [u8; 16],
}

redacted_debug!(LegacyGcmInputCipher, "LegacyGcmInputCipher(..)");

impl LegacyGcmInputCipher {
    /// Starts at the launch IV derived from `rikeyid`.
    pub fn new(key: &[u8; 16], rikeyid: u32) -> Self {
        Self {
            key: GcmKey::new(key),
            iv: launch_iv(rikeyid),
        }
    }

    fn advance(&mut self, ciphertext: &[u8]) {
        if GCM_TAG_LEN + ciphertext.len() >= 32 {
            if let Some(tail) = ciphertext.last_chunk::<16>() {
                self.iv = *tail;
            }
        }
    }

    /// Client side: wraps a plaintext NV input packet into the 0x0206 control payload.
    pub fn encrypt(&mut self, packet: &[u8]) -> Vec<u8> {
        let (ct, tag) = self.key.seal(&GcmIv::Sixteen(self.iv), packet);
        let len = (GCM_TAG_LEN + ct.len()) as u32;
        let mut out = Vec::with_capacity(4 + len as usize);
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(&tag);
        out.extend_from_slice(&ct);
        self.advance(&ct);
        out
    }

    /// Host side: unwraps a 0x0206 control payload into the plaintext NV input packet.
    ///
    /// The IV chain follows the received ciphertext even if the tag fails, as the sender advanced it.
    pub fn decrypt(&mut self, payload: &[u8]) -> Result<Vec<u8>, InputError> {
        let body = split_length_prefix(payload)?;
        let (tag, ct) = body
            .split_first_chunk::<GCM_TAG_LEN>()
            .ok_or(InputError::BadWrapping)?;
        let result = self.key.open(&GcmIv::Sixteen(self.iv), ct, tag);
        self.advance(ct);
        Ok(result?)
    }
}

/// Gen 3-6 input encryption: one AES-128-CBC stream from the launch IV that **continues across
/// packets** (the next packet chains from the last ciphertext block). Payload = `BE32 L ‖ ciphertext`.
///
/// Each packet is padded to the block size the way moonlight-common-c does it: PKCS#7-style bytes up
/// to the next multiple of 16, but **no** extra block when the packet is already aligned. The
/// decryptor therefore ignores the padding and cuts the plaintext by the NV header's size field.
#[derive(Clone)]
pub struct CbcInputCipher {
    cipher: Aes128,
    chain: [u8; 16],
}

redacted_debug!(CbcInputCipher, "CbcInputCipher(..)");

impl CbcInputCipher {
    /// Starts the CBC stream at the launch IV derived from `rikeyid`.
    pub fn new(key: &[u8; 16], rikeyid: u32) -> Self {
        Self {
            cipher: Aes128::new(key.into()),
            chain: launch_iv(rikeyid),
        }
    }

    /// Client side: encrypts one plaintext NV input packet into `BE32 L ‖ ciphertext`.
    pub fn encrypt(&mut self, packet: &[u8]) -> Vec<u8> {
        let mut buf = packet.to_vec();
        let padded = packet.len().div_ceil(16) * 16;
        let pad = (16 - packet.len() % 16) as u8;
        buf.resize(padded, pad);
        for block in buf.chunks_exact_mut(16) {
            block
                .iter_mut()
                .zip(self.chain.iter())
                .for_each(|(b, c)| *b ^= c);
            self.cipher.encrypt_block(block.into());
            self.chain.copy_from_slice(block);
        }
        let mut out = Vec::with_capacity(4 + buf.len());
        out.extend_from_slice(&(buf.len() as u32).to_be_bytes());
        out.extend_from_slice(&buf);
        out
    }

    /// Host side: decrypts `BE32 L ‖ ciphertext` and returns the NV input packet (padding removed by
    /// the packet's own size field).
    pub fn decrypt(&mut self, payload: &[u8]) -> Result<Vec<u8>, InputError> {
        let ct = split_length_prefix(payload)?;
        if ct.is_empty() || ct.len() % 16 != 0 {
            return Err(InputError::BadWrapping);
        }
        let mut buf = ct.to_vec();
        for block in buf.chunks_exact_mut(16) {
            let next_chain: [u8; 16] = block.try_into().map_err(|_| InputError::BadWrapping)?;
            self.cipher.decrypt_block(block.into());
            block
                .iter_mut()
                .zip(self.chain.iter())
                .for_each(|(b, c)| *b ^= c);
            self.chain = next_chain;
        }
        let size = buf
            .first_chunk::<4>()
            .map(|s| u32::from_be_bytes(*s) as usize)
            .ok_or(InputError::BadWrapping)?;
        let total = size.checked_add(4).ok_or(InputError::BadWrapping)?;
        if total > buf.len() {
            return Err(InputError::BadWrapping);
        }
        buf.truncate(total);
        Ok(buf)
    }
}

/// The input wrapping a host generation uses, with its cipher state. One per direction and session.
#[derive(Debug, Clone)]
pub enum InputWrapper {
    /// ≥ 7.1.431: the plaintext packet goes into control message 0x0206 (the control stream is
    /// encrypted as a whole).
    Plain,
    /// Gen 7 < 7.1.431: AES-GCM with IV chaining, control message 0x0206.
    LegacyGcm(Box<LegacyGcmInputCipher>),
    /// Gen 3-6: continuing AES-CBC (control message 0x0207 on gen 5-6; TCP 35043 on gen 3-4).
    Cbc(Box<CbcInputCipher>),
}

impl InputWrapper {
    /// Picks the wrapping for `version` (moonlight-common-c `sendInputPacket` / `encryptData`).
    pub fn for_host(version: AppVersion, key: &[u8; 16], rikeyid: u32) -> Self {
        if version.has_encrypted_control() {
            InputWrapper::Plain
        } else if version.major >= 7 {
            InputWrapper::LegacyGcm(Box::new(LegacyGcmInputCipher::new(key, rikeyid)))
        } else {
            InputWrapper::Cbc(Box::new(CbcInputCipher::new(key, rikeyid)))
        }
    }

    /// The control message type carrying input for `version`: 0x0206 (gen 7), 0x0207 (gen 5-6), or
    /// `None` for gen 3-4, whose input goes over its own TCP connection (port 35043).
    pub fn control_message_type(version: AppVersion) -> Option<u16> {
        match version.major {
            7.. => Some(0x0206),
            5 | 6 => Some(0x0207),
            _ => None,
        }
    }

    /// Sender side: the payload to put in the control message (or on the TCP stream).
    pub fn wrap(&mut self, packet: &[u8]) -> Vec<u8> {
        match self {
            InputWrapper::Plain => packet.to_vec(),
            InputWrapper::LegacyGcm(c) => c.encrypt(packet),
            InputWrapper::Cbc(c) => c.encrypt(packet),
        }
    }

    /// Receiver side: the plaintext NV input packet from a control payload.
    pub fn unwrap(&mut self, payload: &[u8]) -> Result<Vec<u8>, InputError> {
        match self {
            InputWrapper::Plain => Ok(payload.to_vec()),
            InputWrapper::LegacyGcm(c) => c.decrypt(payload),
            InputWrapper::Cbc(c) => c.decrypt(payload),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const K: [u8; 16] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15];
    const I1: &str = "0000000a03000000004100000000";

    #[test]
    fn launch_iv_checklist() {
        assert_eq!(
            hex::encode(launch_iv(16909060)),
            "01020304000000000000000000000000"
        );
        assert_eq!(
            hex::encode(launch_iv(-1i32 as u32)),
            "ffffffff000000000000000000000000"
        );
        assert_eq!(launch_iv(0), [0u8; 16]);
    }

    #[test]
    fn legacy_gcm_vector_7_6() {
        let mut enc = LegacyGcmInputCipher::new(&K, 16909060);
        let pkt = hex::decode(I1).unwrap();
        let wire = enc.encrypt(&pkt);
        assert_eq!(
            hex::encode(&wire),
            "0000001ecb63541692bd457c8d58317b275bfd4396efdc93602bb95406f65384d4d0"
        );
        // L = 30 < 32: IV not advanced, so the same packet encrypts identically again.
        assert_eq!(enc.encrypt(&pkt), wire);
        let mut dec = LegacyGcmInputCipher::new(&K, 16909060);
        assert_eq!(dec.decrypt(&wire).unwrap(), pkt);
        assert_eq!(dec.decrypt(&wire).unwrap(), pkt);
    }

    #[test]
    fn legacy_gcm_chains_on_long_packets() {
        let mut enc = LegacyGcmInputCipher::new(&K, 7);
        let mut dec = LegacyGcmInputCipher::new(&K, 7);
        let long = [0x11u8; 34];
        let a = enc.encrypt(&long);
        let b = enc.encrypt(&long);
        assert_ne!(a, b, "IV must advance after L >= 32");
        assert_eq!(hex::encode(enc.iv), hex::encode(&b[b.len() - 16..]));
        assert_eq!(dec.decrypt(&a).unwrap(), long);
        assert_eq!(dec.decrypt(&b).unwrap(), long);
        let mut bad = enc.encrypt(&long);
        bad[10] ^= 1;
        assert!(dec.decrypt(&bad).is_err());
        assert!(dec.decrypt(&[0, 0, 0, 40, 1]).is_err());
        assert!(dec.decrypt(&[0, 0]).is_err());
    }

    #[test]
    fn cbc_continues_across_packets() {
        let mut enc = CbcInputCipher::new(&K, 0x01020304);
        let p1 = hex::decode(I1).unwrap();
        let p2 = hex::decode("0000000c0400005500010300fff70000").unwrap(); // 16 bytes: no padding block
        let w1 = enc.encrypt(&p1);
        let w2 = enc.encrypt(&p2);
        let w3 = enc.encrypt(&p1);
        assert_eq!(&w1[..4], &[0, 0, 0, 16]);
        assert_eq!(&w2[..4], &[0, 0, 0, 16]);
        assert_ne!(w1, w3, "CBC state continues");
        // First packet = plain CBC from the launch IV with 2 bytes of 0x02 padding.
        let mut padded = p1.clone();
        padded.extend_from_slice(&[2, 2]);
        let expected = crate::crypto::aes_cbc_encrypt_pkcs7(&K, &launch_iv(0x01020304), &padded);
        assert_eq!(&w1[4..], &expected[..16]);
        let mut dec = CbcInputCipher::new(&K, 0x01020304);
        assert_eq!(dec.decrypt(&w1).unwrap(), p1);
        assert_eq!(dec.decrypt(&w2).unwrap(), p2);
        assert_eq!(dec.decrypt(&w3).unwrap(), p1);
        assert!(dec.decrypt(&[0, 0, 0, 3, 1, 2, 3]).is_err());
        assert!(dec.decrypt(&[0, 0, 0, 0]).is_err());
    }

    #[test]
    fn wrapper_per_generation() {
        let v = |major, patch| AppVersion::new(major, 1, patch, 0);
        assert!(matches!(
            InputWrapper::for_host(AppVersion::SUNSHINE, &K, 1),
            InputWrapper::Plain
        ));
        assert!(matches!(
            InputWrapper::for_host(v(7, 430), &K, 1),
            InputWrapper::LegacyGcm(_)
        ));
        assert!(matches!(
            InputWrapper::for_host(v(5, 0), &K, 1),
            InputWrapper::Cbc(_)
        ));
        assert_eq!(
            InputWrapper::control_message_type(AppVersion::SUNSHINE),
            Some(0x0206)
        );
        assert_eq!(InputWrapper::control_message_type(v(6, 0)), Some(0x0207));
        assert_eq!(InputWrapper::control_message_type(v(4, 0)), None);
        let pkt = hex::decode(I1).unwrap();
        let mut tx = InputWrapper::for_host(v(7, 0), &K, 16909060);
        let mut rx = InputWrapper::for_host(v(7, 0), &K, 16909060);
        let wire = tx.wrap(&pkt);
        assert_eq!(
            hex::encode(&wire),
            "0000001ecb63541692bd457c8d58317b275bfd4396efdc93602bb95406f65384d4d0"
        );
        assert_eq!(rx.unwrap(&wire).unwrap(), pkt);
        assert_eq!(InputWrapper::Plain.wrap(&pkt), pkt);
    }
}
