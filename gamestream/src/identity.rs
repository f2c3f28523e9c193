//! RSA-2048 self-signed identities for both halves of GameStream.
//!
//! A client's certificate is its only credential: the host stores the PEM sent during pairing and
//! later accepts exactly that certificate as TLS client certificate. The host's certificate is
//! pinned by the client the same way. Pairing also needs the certificate's raw signature bytes
//! (`certSig`) and RSASSA-PKCS1-v1_5/SHA-256 signatures made with the private key (spec §1.4, §2.1).

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rand::RngCore;
use rsa::pkcs1::DecodeRsaPrivateKey;
use rsa::pkcs1v15::{Signature, SigningKey, VerifyingKey};
use rsa::pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePrivateKey, LineEnding};
use rsa::signature::{SignatureEncoding, Signer, Verifier};
use rsa::{RsaPrivateKey, RsaPublicKey};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;
use sha2::Sha256;

/// Why an identity could not be created, loaded or used.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    /// RSA key generation or encoding failed.
    #[error("RSA key error: {0}")]
    Key(String),
    /// rcgen could not build the certificate.
    #[error("certificate generation failed: {0}")]
    Certificate(String),
    /// The PEM text does not contain a certificate / key.
    #[error("invalid PEM: {0}")]
    Pem(String),
    /// The DER certificate does not parse as X.509.
    #[error("invalid X.509 certificate: {0}")]
    X509(String),
    /// The certificate's public key is not an RSA key.
    #[error("certificate does not carry an RSA public key")]
    NotRsa,
    /// The certificate and the private key do not belong together.
    #[error("the private key does not match the certificate")]
    KeyMismatch,
    /// A signature did not verify.
    #[error("signature verification failed")]
    BadSignature,
}

/// A certificate with its private key. The key never appears in `Debug` output.
#[derive(Clone)]
pub struct Identity {
    /// The PEM text exactly as stored; pairing sends these bytes (hex encoded) to the peer.
    pub cert_pem: String,
    /// DER of the same certificate: what TLS presents and what peers pin/compare.
    pub cert_der: Vec<u8>,
    key: RsaPrivateKey,
}

impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Identity")
            .field("subject", &subject_of(&self.cert_der).unwrap_or_default())
            .field("cert_der_len", &self.cert_der.len())
            .field("key", &"<redacted>")
            .finish()
    }
}

fn subject_of(der: &[u8]) -> Option<String> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    Some(cert.subject().to_string())
}

impl Identity {
    /// Generates an RSA-2048 key and a self-signed X.509 v3 certificate (sha256WithRSAEncryption,
    /// random positive serial, valid from now for 10 years) with subject `CN=<common_name>`.
    pub fn generate(common_name: &str) -> Result<Identity, IdentityError> {
        let key = RsaPrivateKey::new(&mut rand::rngs::OsRng, 2048)
            .map_err(|e| IdentityError::Key(e.to_string()))?;
        let pkcs8 = key
            .to_pkcs8_der()
            .map_err(|e| IdentityError::Key(e.to_string()))?;
        let der_key = rustls_pki_types::PrivatePkcs8KeyDer::from(pkcs8.as_bytes());
        let key_pair =
            rcgen::KeyPair::from_pkcs8_der_and_sign_algo(&der_key, &rcgen::PKCS_RSA_SHA256)
                .map_err(|e| IdentityError::Certificate(e.to_string()))?;

        let mut params = rcgen::CertificateParams::default();
        let mut dn = rcgen::DistinguishedName::new();
        dn.push(rcgen::DnType::CommonName, common_name);
        params.distinguished_name = dn;
        let mut serial = [0u8; 8];
        rand::rngs::OsRng.fill_bytes(&mut serial);
        serial[0] = (serial[0] & 0x7f) | 0x01; // positive and never zero
        params.serial_number = Some(rcgen::SerialNumber::from_slice(&serial));
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let epoch = rcgen::date_time_ymd(1970, 1, 1);
        params.not_before = epoch + Duration::from_secs(now.as_secs());
        params.not_after = params.not_before + Duration::from_secs(10 * 365 * 24 * 3600);
        let cert = params
            .self_signed(&key_pair)
            .map_err(|e| IdentityError::Certificate(e.to_string()))?;
        Ok(Identity {
            cert_pem: cert.pem(),
            cert_der: cert.der().to_vec(),
            key,
        })
    }

    /// A fresh client identity, `CN=NVIDIA GameStream Client <uuid>`: the CN is unique so that two
    /// identities of the same gateway are distinguishable in a host's paired-client list.
    pub fn new_client() -> Result<Identity, IdentityError> {
        Self::generate(&format!(
            "NVIDIA GameStream Client {}",
            uuid::Uuid::new_v4()
        ))
    }

    /// A fresh host identity with `CN=<name>`.
    pub fn new_host(name: &str) -> Result<Identity, IdentityError> {
        Self::generate(name)
    }

    /// Loads a persisted identity. The key may be PKCS#8 (`PRIVATE KEY`) or PKCS#1
    /// (`RSA PRIVATE KEY`); it must match the certificate.
    pub fn from_pem(cert_pem: &str, key_pem: &str) -> Result<Identity, IdentityError> {
        let cert_der = cert_der_from_pem(cert_pem.as_bytes())?;
        let key = RsaPrivateKey::from_pkcs8_pem(key_pem)
            .or_else(|_| RsaPrivateKey::from_pkcs1_pem(key_pem))
            .map_err(|e| IdentityError::Pem(e.to_string()))?;
        let public = rsa_public_key_of(&cert_der)?;
        if public != key.to_public_key() {
            return Err(IdentityError::KeyMismatch);
        }
        Ok(Identity {
            cert_pem: cert_pem.to_string(),
            cert_der,
            key,
        })
    }

    /// The private key as PKCS#8 PEM, for persistence only (never log it).
    pub fn key_pem(&self) -> Result<String, IdentityError> {
        let pem = self
            .key
            .to_pkcs8_pem(LineEnding::LF)
            .map_err(|e| IdentityError::Key(e.to_string()))?;
        Ok(pem.to_string())
    }

    /// The private key as PKCS#8 DER, as rustls wants it.
    pub(crate) fn key_pkcs8_der(&self) -> Result<Vec<u8>, IdentityError> {
        let doc = self
            .key
            .to_pkcs8_der()
            .map_err(|e| IdentityError::Key(e.to_string()))?;
        Ok(doc.as_bytes().to_vec())
    }

    /// `certSig` of this certificate (spec §2.1).
    pub fn cert_signature(&self) -> Result<Vec<u8>, IdentityError> {
        cert_signature(&self.cert_der)
    }

    /// RSASSA-PKCS1-v1_5 with SHA-256 over `msg` (256 bytes for RSA-2048). Deterministic.
    pub fn sign_sha256(&self, msg: &[u8]) -> Vec<u8> {
        SigningKey::<Sha256>::new(self.key.clone())
            .sign(msg)
            .to_vec()
    }
}

/// DER of the first certificate in `pem` (CRLF or LF line endings).
pub fn cert_der_from_pem(pem: &[u8]) -> Result<Vec<u8>, IdentityError> {
    let der =
        CertificateDer::from_pem_slice(pem).map_err(|e| IdentityError::Pem(format!("{e:?}")))?;
    // Make sure it is a certificate before anybody relies on it.
    x509_parser::parse_x509_certificate(&der).map_err(|e| IdentityError::X509(e.to_string()))?;
    Ok(der.to_vec())
}

/// Accepts either PEM text or raw DER and returns DER.
pub fn cert_der_from_pem_or_der(cert: &[u8]) -> Result<Vec<u8>, IdentityError> {
    if cert.starts_with(b"-----") || cert.windows(5).any(|w| w == b"-----") {
        cert_der_from_pem(cert)
    } else {
        x509_parser::parse_x509_certificate(cert)
            .map_err(|e| IdentityError::X509(e.to_string()))?;
        Ok(cert.to_vec())
    }
}

/// `certSig(cert)`: the payload of the outer `signatureValue` BIT STRING of a DER certificate.
pub fn cert_signature(cert_der: &[u8]) -> Result<Vec<u8>, IdentityError> {
    let (_, cert) = x509_parser::parse_x509_certificate(cert_der)
        .map_err(|e| IdentityError::X509(e.to_string()))?;
    Ok(cert.signature_value.data.to_vec())
}

fn rsa_public_key_of(cert_der: &[u8]) -> Result<RsaPublicKey, IdentityError> {
    let (_, cert) = x509_parser::parse_x509_certificate(cert_der)
        .map_err(|e| IdentityError::X509(e.to_string()))?;
    RsaPublicKey::from_public_key_der(cert.public_key().raw).map_err(|_| IdentityError::NotRsa)
}

/// Verifies an RSASSA-PKCS1-v1_5/SHA-256 `signature` over `msg` with the public key of `cert`
/// (PEM text or DER).
pub fn verify_sha256_signature(
    cert: &[u8],
    msg: &[u8],
    signature: &[u8],
) -> Result<(), IdentityError> {
    let der = cert_der_from_pem_or_der(cert)?;
    let public = rsa_public_key_of(&der)?;
    let sig = Signature::try_from(signature).map_err(|_| IdentityError::BadSignature)?;
    VerifyingKey::<Sha256>::new(public)
        .verify(msg, &sig)
        .map_err(|_| IdentityError::BadSignature)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_client_identity_round_trips() {
        let id = Identity::new_client().unwrap();
        let (_, cert) = x509_parser::parse_x509_certificate(&id.cert_der).unwrap();
        assert_eq!(cert.version(), x509_parser::x509::X509Version::V3);
        assert!(cert
            .subject()
            .to_string()
            .starts_with("CN=NVIDIA GameStream Client "));
        assert_eq!(cert.subject(), cert.issuer());
        assert_eq!(
            cert.signature_algorithm.algorithm.to_id_string(),
            "1.2.840.113549.1.1.11"
        );
        assert!(cert.tbs_certificate.raw_serial()[0] & 0x80 == 0);
        let years = (cert.validity().not_after.timestamp()
            - cert.validity().not_before.timestamp())
            / (365 * 86400);
        assert_eq!(years, 10);
        assert_eq!(id.cert_signature().unwrap().len(), 256);

        let sig = id.sign_sha256(b"hello");
        assert_eq!(sig.len(), 256);
        verify_sha256_signature(id.cert_pem.as_bytes(), b"hello", &sig).unwrap();
        verify_sha256_signature(&id.cert_der, b"hello", &sig).unwrap();
        assert!(verify_sha256_signature(&id.cert_der, b"hellO", &sig).is_err());

        let loaded = Identity::from_pem(&id.cert_pem, &id.key_pem().unwrap()).unwrap();
        assert_eq!(loaded.cert_der, id.cert_der);
        assert_eq!(loaded.sign_sha256(b"x"), id.sign_sha256(b"x"));
        let dbg = format!("{id:?}");
        assert!(dbg.contains("redacted") && !dbg.contains("PRIVATE"));

        let other = Identity::new_client().unwrap();
        assert_ne!(other.cert_der, id.cert_der);
        assert!(matches!(
            Identity::from_pem(&id.cert_pem, &other.key_pem().unwrap()),
            Err(IdentityError::KeyMismatch)
        ));
    }
}
