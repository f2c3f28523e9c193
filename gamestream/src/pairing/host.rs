//! Host half of pairing (spec §2.3 steps 1'-4'), one instance per pairing client.

use std::fmt;

use super::{
    aes_ecb, aes_ecb_inv, at_least, block_pad, ct_eq, decode_hex, derive_key, random16,
    validate_pin, PairResponse, PairingError, PairingHash,
};
use crate::identity::{cert_der_from_pem, cert_signature, verify_sha256_signature, Identity};

/// A `/pair` request as the host classifies it (Wolf-style parameter presence; Sunshine's
/// `phrase` values are recognised too).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostPairRequest {
    /// Phase 1: salt (first 32 hex chars) and the client certificate PEM bytes.
    GetServerCert {
        /// The 16-byte salt.
        salt: [u8; 16],
        /// PEM text of the client certificate (hex-decoded).
        client_cert_pem: Vec<u8>,
    },
    /// Phase 2: encrypted client challenge.
    ClientChallenge(Vec<u8>),
    /// Phase 3: encrypted client hash.
    ServerChallengeResp(Vec<u8>),
    /// Phase 4: client secret and its signature.
    ClientPairingSecret(Vec<u8>),
    /// Phase 5 (HTTPS).
    PairChallenge,
}

impl HostPairRequest {
    /// Phase number 1..=5.
    pub fn phase(&self) -> u8 {
        match self {
            HostPairRequest::GetServerCert { .. } => 1,
            HostPairRequest::ClientChallenge(_) => 2,
            HostPairRequest::ServerChallengeResp(_) => 3,
            HostPairRequest::ClientPairingSecret(_) => 4,
            HostPairRequest::PairChallenge => 5,
        }
    }

    /// Classifies a decoded query string.
    pub fn from_query<K: AsRef<str>, V: AsRef<str>>(
        params: &[(K, V)],
    ) -> Result<Self, PairingError> {
        let get = |name: &str| {
            params
                .iter()
                .find(|(k, _)| k.as_ref() == name)
                .map(|(_, v)| v.as_ref())
        };
        let phrase = get("phrase");
        if phrase == Some("getservercert") || (get("salt").is_some() && get("clientcert").is_some())
        {
            let salt_hex = get("salt").ok_or(PairingError::Missing("salt"))?;
            let salt_hex = salt_hex.get(..32).ok_or(PairingError::BadLength {
                field: "salt",
                len: salt_hex.len() / 2,
            })?;
            let salt: [u8; 16] =
                decode_hex("salt", salt_hex)?
                    .try_into()
                    .map_err(|_| PairingError::BadLength {
                        field: "salt",
                        len: 0,
                    })?;
            let client_cert_pem = decode_hex(
                "clientcert",
                get("clientcert").ok_or(PairingError::Missing("clientcert"))?,
            )?;
            return Ok(HostPairRequest::GetServerCert {
                salt,
                client_cert_pem,
            });
        }
        // Phases 2-4 each carry one hex field, checked in this order.
        type HexPhase = (&'static str, fn(Vec<u8>) -> HostPairRequest);
        let hex_phases: [HexPhase; 3] = [
            ("clientchallenge", HostPairRequest::ClientChallenge),
            ("serverchallengeresp", HostPairRequest::ServerChallengeResp),
            ("clientpairingsecret", HostPairRequest::ClientPairingSecret),
        ];
        for (field, request) in hex_phases {
            if let Some(v) = get(field) {
                return Ok(request(decode_hex(field, v)?));
            }
        }
        if phrase == Some("pairchallenge") {
            return Ok(HostPairRequest::PairChallenge);
        }
        Err(PairingError::UnknownPhase)
    }
}

/// The host's random values; injectable for tests.
#[derive(Clone, PartialEq, Eq)]
pub struct HostSecrets {
    /// Server secret `ss`.
    pub server_secret: [u8; 16],
    /// Server challenge `sc`.
    pub server_challenge: [u8; 16],
}

redacted_debug!(HostSecrets, "HostSecrets(<redacted>)");

impl HostSecrets {
    /// Fresh values from the OS RNG.
    pub fn random() -> Self {
        HostSecrets {
            server_secret: random16(),
            server_challenge: random16(),
        }
    }
}

/// What the host does after a phase.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostStep {
    /// Send this response and wait for the next phase.
    Respond(PairResponse),
    /// Phase 4 succeeded: trust this client certificate from now on and answer `paired=1`.
    Paired {
        /// The response to send (`paired=1`).
        response: PairResponse,
        /// The client certificate PEM as sent in phase 1.
        client_cert_pem: Vec<u8>,
        /// Its DER, to compare against TLS client certificates.
        client_cert_der: Vec<u8>,
    },
    /// The client's proof failed (wrong PIN or forged client signature): answer `paired=0`.
    Rejected(PairResponse),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    AwaitClientChallenge,
    AwaitServerChallengeResp,
    AwaitClientPairingSecret,
    Done,
}

/// Host pairing state for one client, created once the PIN is known (phase 1 answered by
/// [`server_cert_response`](Self::server_cert_response)).
pub struct HostPairing {
    host_cert_pem: String,
    host_cert_sig: Vec<u8>,
    signer: Identity,
    hash: PairingHash,
    key: [u8; 16],
    secrets: HostSecrets,
    client_cert_pem: Vec<u8>,
    client_cert_der: Vec<u8>,
    client_cert_sig: Vec<u8>,
    client_hash: Vec<u8>,
    step: Step,
}

impl fmt::Debug for HostPairing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HostPairing")
            .field("hash", &self.hash)
            .field("step", &self.step)
            .finish_non_exhaustive()
    }
}

impl HostPairing {
    /// Starts a pairing after phase 1 with the PIN the user entered. Uses SHA-256 (what modern
    /// hosts report) and fresh random values.
    pub fn new(
        host: &Identity,
        salt: &[u8; 16],
        client_cert_pem: &[u8],
        pin: &str,
    ) -> Result<Self, PairingError> {
        Self::with_options(
            host,
            host,
            salt,
            client_cert_pem,
            pin,
            PairingHash::Sha256,
            HostSecrets::random(),
        )
    }

    /// Full control: `signer` signs the server secret (normally `host` itself; a different key
    /// lets tests impersonate a man in the middle), `hash` and the random values are given.
    pub fn with_options(
        host: &Identity,
        signer: &Identity,
        salt: &[u8; 16],
        client_cert_pem: &[u8],
        pin: &str,
        hash: PairingHash,
        secrets: HostSecrets,
    ) -> Result<Self, PairingError> {
        validate_pin(pin)?;
        let client_cert_der = cert_der_from_pem(client_cert_pem)?;
        let client_cert_sig = cert_signature(&client_cert_der)?;
        Ok(HostPairing {
            host_cert_pem: host.cert_pem.clone(),
            host_cert_sig: host.cert_signature()?,
            signer: signer.clone(),
            hash,
            key: derive_key(hash, salt, pin),
            secrets,
            client_cert_pem: client_cert_pem.to_vec(),
            client_cert_der,
            client_cert_sig,
            client_hash: Vec::new(),
            step: Step::AwaitClientChallenge,
        })
    }

    /// Phase-1 answer: `paired=1` and the host certificate PEM as hex.
    pub fn server_cert_response(&self) -> PairResponse {
        PairResponse {
            paired: true,
            plaincert: Some(hex::encode_upper(self.host_cert_pem.as_bytes())),
            ..PairResponse::default()
        }
    }

    /// DER of the client certificate being paired.
    pub fn client_cert_der(&self) -> &[u8] {
        &self.client_cert_der
    }

    /// Handles phases 2-4 in strict order. Errors mean the pairing is aborted (answer `paired=0`
    /// with status 400 and drop this state).
    pub fn handle(&mut self, request: &HostPairRequest) -> Result<HostStep, PairingError> {
        let expected = match self.step {
            Step::AwaitClientChallenge => 2,
            Step::AwaitServerChallengeResp => 3,
            Step::AwaitClientPairingSecret => 4,
            Step::Done => 0,
        };
        let result = match (self.step, request) {
            (Step::AwaitClientChallenge, HostPairRequest::ClientChallenge(enc)) => {
                self.client_challenge(enc)
            }
            (Step::AwaitServerChallengeResp, HostPairRequest::ServerChallengeResp(enc)) => {
                self.server_challenge_resp(enc)
            }
            (Step::AwaitClientPairingSecret, HostPairRequest::ClientPairingSecret(data)) => {
                self.client_pairing_secret(data)
            }
            _ => Err(PairingError::OutOfOrder {
                expected,
                got: request.phase(),
            }),
        };
        if result.is_err() {
            self.step = Step::Done;
        }
        result
    }

    fn client_challenge(&mut self, enc: &[u8]) -> Result<HostStep, PairingError> {
        let field = "clientchallenge";
        at_least(field, enc, 16)?;
        let plain = aes_ecb_inv(&self.key, enc, field)?;
        let challenge = &plain[..16];
        let host_hash =
            self.hash
                .digest(&[challenge, &self.host_cert_sig, &self.secrets.server_secret]);
        let mut msg = host_hash;
        msg.extend_from_slice(&self.secrets.server_challenge);
        let enc = aes_ecb(&self.key, &block_pad(msg), "challengeresponse")?;
        self.step = Step::AwaitServerChallengeResp;
        Ok(HostStep::Respond(PairResponse {
            paired: true,
            challengeresponse: Some(hex::encode_upper(enc)),
            ..PairResponse::default()
        }))
    }

    fn server_challenge_resp(&mut self, enc: &[u8]) -> Result<HostStep, PairingError> {
        let field = "serverchallengeresp";
        at_least(field, enc, self.hash.output_len())?;
        let plain = aes_ecb_inv(&self.key, enc, field)?;
        self.client_hash = plain[..self.hash.output_len()].to_vec();
        let mut secret = self.secrets.server_secret.to_vec();
        secret.extend_from_slice(&self.signer.sign_sha256(&self.secrets.server_secret));
        self.step = Step::AwaitClientPairingSecret;
        Ok(HostStep::Respond(PairResponse {
            paired: true,
            pairingsecret: Some(hex::encode_upper(secret)),
            ..PairResponse::default()
        }))
    }

    fn client_pairing_secret(&mut self, data: &[u8]) -> Result<HostStep, PairingError> {
        let field = "clientpairingsecret";
        // A 16-byte secret and a signature.
        at_least(field, data, 17)?;
        self.step = Step::Done;
        let (client_secret, signature) = data.split_at(16);
        let expected = self.hash.digest(&[
            &self.secrets.server_challenge,
            &self.client_cert_sig,
            client_secret,
        ]);
        let hash_ok = ct_eq(&expected, &self.client_hash);
        let sig_ok =
            verify_sha256_signature(&self.client_cert_der, client_secret, signature).is_ok();
        if hash_ok && sig_ok {
            Ok(HostStep::Paired {
                response: PairResponse {
                    paired: true,
                    ..PairResponse::default()
                },
                client_cert_pem: self.client_cert_pem.clone(),
                client_cert_der: self.client_cert_der.clone(),
            })
        } else {
            Ok(HostStep::Rejected(PairResponse::refused()))
        }
    }
}
