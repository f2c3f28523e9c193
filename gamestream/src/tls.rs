//! rustls configurations for NVHTTPS (spec §1.1, §1.5).
//!
//! GameStream does not use a PKI: the client presents its pairing certificate as TLS client
//! certificate and accepts the host's certificate iff it is byte-identical to the one it pinned
//! during pairing (no hostname, validity or chain checks). The host requests a client certificate,
//! accepts any at the TLS layer, and decides authorisation in the HTTP layer against its list of
//! paired certificates (answering XML `status_code="401"` otherwise). Session resumption is off on
//! both sides so the client certificate is presented on every connection.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName, SignatureScheme};

use crate::identity::{Identity, IdentityError};

/// Why a TLS configuration could not be built.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// The identity's key could not be encoded.
    #[error(transparent)]
    Identity(#[from] IdentityError),
    /// rustls refused the configuration (e.g. unusable key).
    #[error("rustls: {0}")]
    Rustls(#[from] rustls::Error),
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn identity_chain(
    identity: &Identity,
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), TlsError> {
    let cert = CertificateDer::from(identity.cert_der.clone());
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(identity.key_pkcs8_der()?));
    Ok((vec![cert], key))
}

/// Client config: presents `identity` and accepts only a server certificate whose DER equals
/// `pinned_host_cert_der`.
pub fn client_config(
    identity: &Identity,
    pinned_host_cert_der: &[u8],
) -> Result<rustls::ClientConfig, TlsError> {
    let provider = provider();
    let verifier = Arc::new(PinnedServerCert {
        pinned: pinned_host_cert_der.to_vec(),
        algorithms: provider.signature_verification_algorithms,
    });
    let (chain, key) = identity_chain(identity)?;
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_client_auth_cert(chain, key)?;
    config.resumption = rustls::client::Resumption::disabled();
    Ok(config)
}

/// Host config: presents `identity`, requests a client certificate (optional at the TLS layer so
/// that an unpaired client gets an XML 401 rather than a handshake failure) and accepts any.
pub fn server_config(identity: &Identity) -> Result<rustls::ServerConfig, TlsError> {
    let provider = provider();
    let verifier = Arc::new(AnyClientCert {
        algorithms: provider.signature_verification_algorithms,
    });
    let (chain, key) = identity_chain(identity)?;
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)?;
    config.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
    config.send_tls13_tickets = 0;
    Ok(config)
}

/// The DER of the client certificate a server-side connection presented, if any.
pub fn peer_cert_der(conn: &rustls::ServerConnection) -> Option<Vec<u8>> {
    conn.peer_certificates()
        .and_then(|c| c.first())
        .map(|c| c.to_vec())
}

/// The handshake-signature methods both verifiers share: checked with the provider's algorithms
/// (held in `self.algorithms`), so a peer must own the key of the certificate it presents.
macro_rules! handshake_signatures_via_algorithms {
    () => {
        handshake_signatures_via_algorithms!(verify_tls12_signature);
        handshake_signatures_via_algorithms!(verify_tls13_signature);

        fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
            self.algorithms.supported_schemes()
        }
    };
    // One verifier method, delegating to the rustls function of the same name.
    ($verify:ident) => {
        fn $verify(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::$verify(message, cert, dss, &self.algorithms)
        }
    };
}

/// Accepts exactly one certificate (compared as DER); handshake signatures are still verified
/// with the provider's algorithms, so the peer must hold the pinned certificate's key.
#[derive(Debug)]
struct PinnedServerCert {
    pinned: Vec<u8>,
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for PinnedServerCert {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if end_entity.as_ref() == self.pinned.as_slice() {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::ApplicationVerificationFailure,
            ))
        }
    }

    handshake_signatures_via_algorithms!();
}

/// Accepts any well-formed X.509 client certificate; authorisation happens in the HTTP layer.
#[derive(Debug)]
struct AnyClientCert {
    algorithms: WebPkiSupportedAlgorithms,
}

impl ClientCertVerifier for AnyClientCert {
    fn client_auth_mandatory(&self) -> bool {
        false
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        match x509_parser::parse_x509_certificate(end_entity) {
            Ok(_) => Ok(ClientCertVerified::assertion()),
            Err(_) => Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::BadEncoding,
            )),
        }
    }

    handshake_signatures_via_algorithms!();
}
