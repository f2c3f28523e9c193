//! The symmetric primitives GameStream uses, behind one small typed API.
//!
//! Every layer (pairing, encrypted RTSP, the control stream, legacy input, video and audio) uses
//! AES-128 in one of three modes. Keeping the cipher set-up here means the key schedule is built once
//! per session (not per packet) and every caller gets the same typed [`CryptoError`].

use aes::cipher::{
    block_padding::Pkcs7, BlockDecrypt, BlockDecryptMut, BlockEncrypt, BlockEncryptMut, KeyInit,
    KeyIvInit,
};
use aes::Aes128;
use aes_gcm::aead::consts::{U12, U16};
use aes_gcm::aead::AeadInPlace;
use aes_gcm::{AesGcm, Nonce, Tag};

/// Length of every AES-GCM tag on the GameStream wire.
pub const GCM_TAG_LEN: usize = 16;

/// Errors of the symmetric layer. They carry no key material.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CryptoError {
    /// The GCM tag did not verify: tampered, truncated, or encrypted with another key/IV.
    #[error("authentication tag mismatch")]
    TagMismatch,
    /// Block-mode input was not a whole number of 16-byte blocks.
    #[error("input length {0} is not a multiple of 16")]
    NotBlockAligned(usize),
    /// PKCS#7 padding was invalid after CBC decryption.
    #[error("invalid PKCS#7 padding")]
    BadPadding,
}

/// A GCM IV in one of the two sizes GameStream uses.
///
/// 12-byte IVs are the common case (Sunshine's "V2" control IVs, RTSP, video). The 16-byte form is the
/// "NVIDIA style" control IV (GFE, Wolf) and the legacy input IV; GCM then derives J0 through GHASH.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GcmIv {
    /// A 96-bit IV.
    Twelve([u8; 12]),
    /// A 128-bit IV.
    Sixteen([u8; 16]),
}

/// An AES-128-GCM key with both IV sizes ready; build it once per session.
#[derive(Clone)]
pub struct GcmKey {
    iv12: AesGcm<Aes128, U12>,
    iv16: AesGcm<Aes128, U16>,
}

redacted_debug!(GcmKey, "GcmKey(..)");

impl GcmKey {
    /// Builds the key schedule for `key`.
    pub fn new(key: &[u8; 16]) -> Self {
        Self {
            iv12: AesGcm::new(key.into()),
            iv16: AesGcm::new(key.into()),
        }
    }

    /// Encrypts `buf` in place (no AAD) and returns the 16-byte tag.
    pub fn seal_in_place(&self, iv: &GcmIv, buf: &mut [u8]) -> [u8; GCM_TAG_LEN] {
        let tag = match iv {
            GcmIv::Twelve(n) => {
                self.iv12
                    .encrypt_in_place_detached(Nonce::<U12>::from_slice(n), b"", buf)
            }
            GcmIv::Sixteen(n) => {
                self.iv16
                    .encrypt_in_place_detached(Nonce::<U16>::from_slice(n), b"", buf)
            }
        }
        // aes-gcm only fails for inputs above 64 GiB, which no GameStream message approaches.
        .unwrap_or_default();
        tag.into()
    }

    /// Decrypts `buf` in place (no AAD) after checking `tag`. On failure `buf` is left unspecified.
    pub fn open_in_place(
        &self,
        iv: &GcmIv,
        buf: &mut [u8],
        tag: &[u8; GCM_TAG_LEN],
    ) -> Result<(), CryptoError> {
        let tag = Tag::<U16>::from_slice(tag);
        match iv {
            GcmIv::Twelve(n) => {
                self.iv12
                    .decrypt_in_place_detached(Nonce::<U12>::from_slice(n), b"", buf, tag)
            }
            GcmIv::Sixteen(n) => {
                self.iv16
                    .decrypt_in_place_detached(Nonce::<U16>::from_slice(n), b"", buf, tag)
            }
        }
        .map_err(|_| CryptoError::TagMismatch)
    }

    /// Convenience: encrypts a copy of `plaintext`, returning `(ciphertext, tag)`.
    pub fn seal(&self, iv: &GcmIv, plaintext: &[u8]) -> (Vec<u8>, [u8; GCM_TAG_LEN]) {
        let mut buf = plaintext.to_vec();
        let tag = self.seal_in_place(iv, &mut buf);
        (buf, tag)
    }

    /// Convenience: decrypts a copy of `ciphertext` after checking `tag`.
    pub fn open(
        &self,
        iv: &GcmIv,
        ciphertext: &[u8],
        tag: &[u8; GCM_TAG_LEN],
    ) -> Result<Vec<u8>, CryptoError> {
        let mut buf = ciphertext.to_vec();
        self.open_in_place(iv, &mut buf, tag)?;
        Ok(buf)
    }
}

/// AES-128-ECB without padding, as pairing uses it for every symmetric step.
pub fn aes_ecb_encrypt(key: &[u8; 16], data: &[u8]) -> Result<Vec<u8>, CryptoError> {
    aes_ecb(key, data, |cipher, block| {
        cipher.encrypt_block(block.into())
    })
}

/// Inverse of [`aes_ecb_encrypt`].
pub fn aes_ecb_decrypt(key: &[u8; 16], data: &[u8]) -> Result<Vec<u8>, CryptoError> {
    aes_ecb(key, data, |cipher, block| {
        cipher.decrypt_block(block.into())
    })
}

/// A copy of block-aligned `data` with `apply` run on every 16-byte block.
fn aes_ecb(
    key: &[u8; 16],
    data: &[u8],
    apply: impl Fn(&Aes128, &mut [u8]),
) -> Result<Vec<u8>, CryptoError> {
    if data.len() % 16 != 0 {
        return Err(CryptoError::NotBlockAligned(data.len()));
    }
    let cipher = Aes128::new(key.into());
    let mut out = data.to_vec();
    for block in out.chunks_exact_mut(16) {
        apply(&cipher, block);
    }
    Ok(out)
}

/// AES-128-CBC with PKCS#7 padding and a fresh IV per call (audio packets).
pub fn aes_cbc_encrypt_pkcs7(key: &[u8; 16], iv: &[u8; 16], plaintext: &[u8]) -> Vec<u8> {
    cbc::Encryptor::<Aes128>::new(key.into(), iv.into()).encrypt_padded_vec_mut::<Pkcs7>(plaintext)
}

/// Inverse of [`aes_cbc_encrypt_pkcs7`].
pub fn aes_cbc_decrypt_pkcs7(
    key: &[u8; 16],
    iv: &[u8; 16],
    ciphertext: &[u8],
) -> Result<Vec<u8>, CryptoError> {
    if ciphertext.is_empty() || ciphertext.len() % 16 != 0 {
        return Err(CryptoError::NotBlockAligned(ciphertext.len()));
    }
    cbc::Decryptor::<Aes128>::new(key.into(), iv.into())
        .decrypt_padded_vec_mut::<Pkcs7>(ciphertext)
        .map_err(|_| CryptoError::BadPadding)
}

/// Parses a 32-hex-digit key (the `rikey` launch parameter) into 16 bytes.
pub fn parse_key_hex(s: &str) -> Option<[u8; 16]> {
    let mut key = [0u8; 16];
    hex::decode_to_slice(s, &mut key).ok()?;
    Some(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ecb_vectors_p3_p4() {
        // gamestream-protocol-1-control.md §7.2 P3 and P4.
        let k1: [u8; 16] = hex::decode("bad0b4f7cae08eb7c1b5acc763a8ed25")
            .unwrap()
            .try_into()
            .unwrap();
        let k2: [u8; 16] = hex::decode("0cd2f00b23437ed6adc97cd8f7dbf3ed")
            .unwrap()
            .try_into()
            .unwrap();
        let m = hex::decode("101112131415161718191a1b1c1d1e1f").unwrap();
        assert_eq!(
            hex::encode(aes_ecb_encrypt(&k1, &m).unwrap()),
            "5febcdc985b2baddd65925da162380eb"
        );
        assert_eq!(
            hex::encode(aes_ecb_encrypt(&k2, &m).unwrap()),
            "74835d5e27e70f2e39548f80ad3cbff8"
        );
        assert_eq!(
            aes_ecb_decrypt(&k1, &aes_ecb_encrypt(&k1, &m).unwrap()).unwrap(),
            m
        );
        assert!(aes_ecb_encrypt(&k1, &m[..15]).is_err());
    }

    #[test]
    fn gcm_round_trip_and_tamper() {
        let key = GcmKey::new(&[7; 16]);
        for iv in [GcmIv::Twelve([1; 12]), GcmIv::Sixteen([2; 16])] {
            let (ct, tag) = key.seal(&iv, b"hello gamestream");
            assert_eq!(key.open(&iv, &ct, &tag).unwrap(), b"hello gamestream");
            let mut bad = ct.clone();
            bad[0] ^= 1;
            assert_eq!(key.open(&iv, &bad, &tag), Err(CryptoError::TagMismatch));
        }
    }

    #[test]
    fn cbc_round_trip() {
        let ct = aes_cbc_encrypt_pkcs7(&[1; 16], &[2; 16], &[3; 16]);
        assert_eq!(ct.len(), 32);
        assert_eq!(
            aes_cbc_decrypt_pkcs7(&[1; 16], &[2; 16], &ct).unwrap(),
            vec![3; 16]
        );
        assert!(aes_cbc_decrypt_pkcs7(&[1; 16], &[2; 16], &ct[..31]).is_err());
    }
}
