//! Client half of pairing (spec §2.3 steps 1-5).

use std::fmt;

use super::{
    aes_ecb, aes_ecb_inv, at_least, block_pad, ct_eq, decode_hex, derive_key, random16,
    validate_pin, PairPhase, PairRequest, PairResponse, PairingError, PairingHash,
};
use crate::identity::{cert_der_from_pem, cert_signature, verify_sha256_signature, Identity};
use crate::version::AppVersion;

/// The client's random values; injectable so tests can replay a captured transcript.
#[derive(Clone, PartialEq, Eq)]
pub struct ClientSecrets {
    /// Salt of the key derivation (sent in clear).
    pub salt: [u8; 16],
    /// Client challenge `cc`.
    pub challenge: [u8; 16],
    /// Client secret `cs`.
    pub secret: [u8; 16],
}

redacted_debug!(ClientSecrets, "ClientSecrets(<redacted>)");

impl ClientSecrets {
    /// Fresh values from the OS RNG.
    pub fn random() -> Self {
        ClientSecrets {
            salt: random16(),
            challenge: random16(),
            secret: random16(),
        }
    }
}

/// The result of a successful pairing: the host certificate to pin from now on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PairedHost {
    /// Host certificate PEM text exactly as the host sent it.
    pub host_cert_pem: String,
    /// DER of the same certificate; pin this.
    pub host_cert_der: Vec<u8>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    Start,
    AwaitServerCert,
    AwaitChallengeResponse,
    AwaitPairingSecret,
    AwaitSecretAck,
    AwaitPairChallenge,
    Finished,
    Failed,
}

impl Step {
    fn expected_phase(self) -> u8 {
        match self {
            Step::Start | Step::AwaitServerCert => 1,
            Step::AwaitChallengeResponse => 2,
            Step::AwaitPairingSecret => 3,
            Step::AwaitSecretAck => 4,
            Step::AwaitPairChallenge => 5,
            Step::Finished | Step::Failed => 0,
        }
    }
}

/// The hex value of a required answer field, decoded.
fn hex_field(field: &'static str, value: &Option<String>) -> Result<Vec<u8>, PairingError> {
    decode_hex(field, value.as_deref().ok_or(PairingError::Missing(field))?)
}

/// Client pairing state machine. Call, in order: [`start`](Self::start),
/// [`on_server_cert`](Self::on_server_cert), [`on_challenge_response`](Self::on_challenge_response),
/// [`on_pairing_secret`](Self::on_pairing_secret), [`on_secret_ack`](Self::on_secret_ack),
/// [`on_pair_challenge`](Self::on_pair_challenge); send each returned [`PairRequest`]. Any error is
/// final: the caller calls `/unpair` and starts over.
pub struct ClientPairing {
    identity: Identity,
    hash: PairingHash,
    key: [u8; 16],
    secrets: ClientSecrets,
    step: Step,
    host_cert_pem: String,
    host_cert_der: Vec<u8>,
    host_cert_sig: Vec<u8>,
    host_hash: Vec<u8>,
}

impl fmt::Debug for ClientPairing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientPairing")
            .field("hash", &self.hash)
            .field("step", &self.step)
            .finish_non_exhaustive()
    }
}

impl ClientPairing {
    /// A pairing with fresh random values; the hash follows the host's `appversion`.
    pub fn new(
        identity: Identity,
        pin: &str,
        host_version: &AppVersion,
    ) -> Result<Self, PairingError> {
        Self::with_secrets(
            identity,
            pin,
            PairingHash::for_version(host_version),
            ClientSecrets::random(),
        )
    }

    /// A pairing with given random values and hash (tests, transcript replay).
    pub fn with_secrets(
        identity: Identity,
        pin: &str,
        hash: PairingHash,
        secrets: ClientSecrets,
    ) -> Result<Self, PairingError> {
        validate_pin(pin)?;
        let key = derive_key(hash, &secrets.salt, pin);
        Ok(ClientPairing {
            identity,
            hash,
            key,
            secrets,
            step: Step::Start,
            host_cert_pem: String::new(),
            host_cert_der: Vec::new(),
            host_cert_sig: Vec::new(),
            host_hash: Vec::new(),
        })
    }

    /// The hash in use.
    pub fn hash(&self) -> PairingHash {
        self.hash
    }

    fn expect(&mut self, step: Step, got: u8) -> Result<(), PairingError> {
        if self.step == step {
            Ok(())
        } else {
            let expected = self.step.expected_phase();
            self.step = Step::Failed;
            Err(PairingError::OutOfOrder { expected, got })
        }
    }

    /// [`expect`](Self::expect)s `step`, then fails with `HostRefused` unless the host's phase
    /// `phase` answer says `paired=1`.
    fn accept(&mut self, step: Step, phase: u8, resp: &PairResponse) -> Result<(), PairingError> {
        self.expect(step, phase)?;
        if !resp.paired {
            self.step = Step::Failed;
            return Err(PairingError::HostRefused { phase });
        }
        Ok(())
    }

    /// Phase `phase`'s answer, [`accept`](Self::accept)ed at `step` and handled by `handle`; any
    /// error fails the pairing.
    fn answer<T>(
        &mut self,
        step: Step,
        phase: u8,
        resp: &PairResponse,
        handle: fn(&mut Self, &PairResponse) -> Result<T, PairingError>,
    ) -> Result<T, PairingError> {
        self.accept(step, phase, resp)?;
        let r = handle(self, resp);
        if r.is_err() {
            self.step = Step::Failed;
        }
        r
    }

    /// Phase 1 request: `phrase=getservercert&salt=…&clientcert=…`.
    pub fn start(&mut self) -> Result<PairRequest, PairingError> {
        self.expect(Step::Start, 1)?;
        self.step = Step::AwaitServerCert;
        Ok(PairRequest {
            phase: PairPhase::GetServerCert,
            params: vec![
                ("phrase", "getservercert".to_string()),
                ("salt", hex::encode_upper(self.secrets.salt)),
                (
                    "clientcert",
                    hex::encode_upper(self.identity.cert_pem.as_bytes()),
                ),
            ],
        })
    }

    /// Consumes the phase-1 answer (host certificate) and returns the phase-2 request.
    pub fn on_server_cert(&mut self, resp: &PairResponse) -> Result<PairRequest, PairingError> {
        self.answer(Step::AwaitServerCert, 1, resp, Self::server_cert)
    }

    fn server_cert(&mut self, resp: &PairResponse) -> Result<PairRequest, PairingError> {
        let pem = hex_field("plaincert", &resp.plaincert)?;
        let der = cert_der_from_pem(&pem)?;
        self.host_cert_sig = cert_signature(&der)?;
        self.host_cert_pem = String::from_utf8(pem)
            .map_err(|_| PairingError::MalformedHex { field: "plaincert" })?;
        self.host_cert_der = der;
        let challenge = aes_ecb(&self.key, &self.secrets.challenge, "clientchallenge")?;
        self.step = Step::AwaitChallengeResponse;
        Ok(PairRequest {
            phase: PairPhase::ClientChallenge,
            params: vec![("clientchallenge", hex::encode_upper(challenge))],
        })
    }

    /// Consumes the phase-2 answer and returns the phase-3 request.
    pub fn on_challenge_response(
        &mut self,
        resp: &PairResponse,
    ) -> Result<PairRequest, PairingError> {
        self.answer(
            Step::AwaitChallengeResponse,
            2,
            resp,
            Self::challenge_response,
        )
    }

    fn challenge_response(&mut self, resp: &PairResponse) -> Result<PairRequest, PairingError> {
        let field = "challengeresponse";
        let enc = hex_field(field, &resp.challengeresponse)?;
        let n = self.hash.output_len();
        at_least(field, &enc, n + 16)?;
        let plain = aes_ecb_inv(&self.key, &enc, field)?;
        self.host_hash = plain[..n].to_vec();
        let server_challenge = &plain[n..n + 16];
        let client_sig = self.identity.cert_signature()?;
        let client_hash = self
            .hash
            .digest(&[server_challenge, &client_sig, &self.secrets.secret]);
        let enc = aes_ecb(&self.key, &block_pad(client_hash), "serverchallengeresp")?;
        self.step = Step::AwaitPairingSecret;
        Ok(PairRequest {
            phase: PairPhase::ServerChallengeResp,
            params: vec![("serverchallengeresp", hex::encode_upper(enc))],
        })
    }

    /// Consumes the phase-3 answer (host secret + signature), checks the host's signature
    /// ([`PairingError::ForgedHostCertificate`]) and the PIN ([`PairingError::WrongPin`]), and
    /// returns the phase-4 request.
    pub fn on_pairing_secret(&mut self, resp: &PairResponse) -> Result<PairRequest, PairingError> {
        self.answer(Step::AwaitPairingSecret, 3, resp, Self::pairing_secret)
    }

    fn pairing_secret(&mut self, resp: &PairResponse) -> Result<PairRequest, PairingError> {
        let field = "pairingsecret";
        let data = hex_field(field, &resp.pairingsecret)?;
        // A 16-byte secret and a signature.
        at_least(field, &data, 17)?;
        let (server_secret, signature) = data.split_at(16);
        verify_sha256_signature(&self.host_cert_der, server_secret, signature)
            .map_err(|_| PairingError::ForgedHostCertificate)?;
        let expected =
            self.hash
                .digest(&[&self.secrets.challenge, &self.host_cert_sig, server_secret]);
        if !ct_eq(&expected, &self.host_hash) {
            return Err(PairingError::WrongPin);
        }
        let mut secret = self.secrets.secret.to_vec();
        secret.extend_from_slice(&self.identity.sign_sha256(&self.secrets.secret));
        self.step = Step::AwaitSecretAck;
        Ok(PairRequest {
            phase: PairPhase::ClientPairingSecret,
            params: vec![("clientpairingsecret", hex::encode_upper(secret))],
        })
    }

    /// Consumes the phase-4 answer and returns the phase-5 request (send it over HTTPS, pinning
    /// [`host_cert_der`](Self::host_cert_der)).
    pub fn on_secret_ack(&mut self, resp: &PairResponse) -> Result<PairRequest, PairingError> {
        self.accept(Step::AwaitSecretAck, 4, resp)?;
        self.step = Step::AwaitPairChallenge;
        Ok(PairRequest {
            phase: PairPhase::PairChallenge,
            params: vec![("phrase", "pairchallenge".to_string())],
        })
    }

    /// Consumes the phase-5 answer: pairing is complete.
    pub fn on_pair_challenge(&mut self, resp: &PairResponse) -> Result<PairedHost, PairingError> {
        self.accept(Step::AwaitPairChallenge, 5, resp)?;
        self.step = Step::Finished;
        Ok(PairedHost {
            host_cert_pem: self.host_cert_pem.clone(),
            host_cert_der: self.host_cert_der.clone(),
        })
    }

    /// The host certificate received in phase 1 (empty before).
    pub fn host_cert_der(&self) -> &[u8] {
        &self.host_cert_der
    }
}
