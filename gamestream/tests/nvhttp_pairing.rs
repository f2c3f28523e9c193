//! Pairing vectors (spec §7.1, §7.2, §7.7) and NVHTTP client ↔ host over real sockets on 127.0.0.1.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use gamestream::identity::{cert_signature, verify_sha256_signature, Identity};
use gamestream::nvhttp::{
    session_url, App, HostAddress, HostError, HostHandler, LaunchRequest, LaunchResponse,
    NvHttpClient, NvHttpError, NvHttpServer, NvHttpServerConfig, PendingPairing, RequestContext,
    ServerInfo, STATE_BUSY, STATE_FREE,
};
use gamestream::pairing::{
    derive_key, ClientPairing, ClientSecrets, HostPairRequest, HostPairing, HostSecrets, HostStep,
    PairRequest, PairResponse, PairedHost, PairingError, PairingHash,
};
use gamestream::AppVersion;

// ---------------------------------------------------------------------------------------------
// Fixtures

fn fixture(name: &str) -> String {
    let path: PathBuf = [
        env!("CARGO_MANIFEST_DIR"),
        "tests",
        "data",
        "sunshine-pairing",
        name,
    ]
    .iter()
    .collect();
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The value of transcript field `k` (which must be there).
fn lookup(fields: &[(String, String)], k: &str) -> String {
    fields
        .iter()
        .find(|(n, _)| n == k)
        .map(|(_, v)| v.clone())
        .unwrap()
}

struct Transcript {
    pin: String,
    salt: [u8; 16],
    cc: [u8; 16],
    cs: [u8; 16],
    fields: Vec<(String, String)>,
}

impl Transcript {
    fn load() -> Self {
        let fields: Vec<(String, String)> = fixture("transcript.txt")
            .lines()
            .filter_map(|l| {
                l.split_once('=')
                    .map(|(k, v)| (k.to_string(), v.trim().to_string()))
            })
            .collect();
        let get = |k: &str| lookup(&fields, k);
        let b16 = |k: &str| -> [u8; 16] { hex::decode(get(k)).unwrap().try_into().unwrap() };
        Transcript {
            pin: get("pin"),
            salt: b16("salt"),
            cc: b16("client_challenge_plain"),
            cs: b16("client_secret"),
            fields: fields.clone(),
        }
    }

    fn get(&self, k: &str) -> String {
        lookup(&self.fields, k)
    }

    /// A SHA-256 client with the transcript's salt, challenge and secret, pairing with `pin`.
    fn client(&self, pin: &str) -> ClientPairing {
        let secrets = ClientSecrets {
            salt: self.salt,
            challenge: self.cc,
            secret: self.cs,
        };
        ClientPairing::with_secrets(client_identity(), pin, PairingHash::Sha256, secrets).unwrap()
    }

    /// The host's phase-2 answer from the transcript.
    fn challenge_resp(&self) -> PairResponse {
        PairResponse {
            challengeresponse: Some(self.get("challengeresponse")),
            ..ok_resp()
        }
    }

    /// The host's phase-3 answer carrying `pairingsecret` (hex).
    fn secret_resp(pairingsecret: String) -> PairResponse {
        PairResponse {
            pairingsecret: Some(pairingsecret),
            ..ok_resp()
        }
    }
}

fn client_identity() -> Identity {
    Identity::from_pem(&fixture("client_cert.pem"), &fixture("client_key.pem")).unwrap()
}

fn server_identity() -> Identity {
    Identity::from_pem(&fixture("server_cert.pem"), &fixture("server_key.pem")).unwrap()
}

fn param(req: &PairRequest, name: &str) -> String {
    req.params
        .iter()
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.clone())
        .unwrap()
}

fn ok_resp() -> PairResponse {
    PairResponse {
        paired: true,
        ..PairResponse::default()
    }
}

/// The host's phase-1 answer: the transcript host's certificate.
fn cert_resp() -> PairResponse {
    PairResponse {
        plaincert: Some(hex::encode_upper(fixture("server_cert.pem"))),
        ..ok_resp()
    }
}

// ---------------------------------------------------------------------------------------------
// §7.1 real Sunshine transcript

#[test]
fn sunshine_transcript_client_side() {
    let t = Transcript::load();
    let key = derive_key(PairingHash::Sha256, &t.salt, &t.pin);
    assert_eq!(hex::encode(key), "b97a749e5738729e98df6c58ce00ce78");

    let mut c = t.client(&t.pin);
    let r1 = c.start().unwrap();
    assert_eq!(param(&r1, "phrase"), "getservercert");
    assert_eq!(param(&r1, "salt"), t.get("salt"));
    assert_eq!(
        hex::decode(param(&r1, "clientcert")).unwrap(),
        fixture("client_cert.pem").as_bytes()
    );

    let server_pem = fixture("server_cert.pem");
    assert_eq!(server_pem.len(), 1038);
    let r2 = c.on_server_cert(&cert_resp()).unwrap();
    assert_eq!(param(&r2, "clientchallenge"), t.get("clientchallenge"));

    // Server challenge sc = bytes 32..48 of the decrypted challengeresponse.
    let plain = gamestream::crypto::aes_ecb_decrypt(
        &key,
        &hex::decode(t.get("challengeresponse")).unwrap(),
    )
    .unwrap();
    assert_eq!(
        hex::encode(&plain[32..48]),
        "c870ebccd897a0648fd781e15e4af6f8"
    );

    let r3 = c.on_challenge_response(&t.challenge_resp()).unwrap();
    assert_eq!(
        param(&r3, "serverchallengeresp"),
        t.get("serverchallengeresp")
    );

    // ss = first 16 bytes of pairingsecret (272 bytes); its signature verifies with the server cert;
    // SHA-256(cc ‖ certSig(server) ‖ ss) equals the first 32 decrypted bytes (wrong-PIN check).
    let secret = hex::decode(t.get("pairingsecret")).unwrap();
    assert_eq!(secret.len(), 272);
    assert_eq!(
        hex::encode(&secret[..16]),
        "b2a62490129e15563b30db6921221052"
    );
    verify_sha256_signature(server_pem.as_bytes(), &secret[..16], &secret[16..]).unwrap();
    let server_sig = cert_signature(&server_identity().cert_der).unwrap();
    assert_eq!(server_sig.len(), 256);
    assert_eq!(
        PairingHash::Sha256.digest(&[&t.cc, &server_sig, &secret[..16]]),
        plain[..32]
    );

    let r4 = c
        .on_pairing_secret(&Transcript::secret_resp(t.get("pairingsecret")))
        .unwrap();
    let cps = param(&r4, "clientpairingsecret");
    assert_eq!(cps.len(), 272 * 2);
    assert!(cps.starts_with("57FA28789BF7CE69F5DF3E54F3056CDB221C46E0"));
    assert_eq!(cps, t.get("clientpairingsecret"));

    let r5 = c.on_secret_ack(&ok_resp()).unwrap();
    assert!(r5.phase.over_https());
    assert_eq!(param(&r5, "phrase"), "pairchallenge");
    let paired = c.on_pair_challenge(&ok_resp()).unwrap();
    assert_eq!(paired.host_cert_der, server_identity().cert_der);
    assert_eq!(paired.host_cert_pem, server_pem);
}

#[test]
fn sunshine_transcript_host_side_reproduces_responses() {
    let t = Transcript::load();
    let secret = hex::decode(t.get("pairingsecret")).unwrap();
    let plain = gamestream::crypto::aes_ecb_decrypt(
        &derive_key(PairingHash::Sha256, &t.salt, &t.pin),
        &hex::decode(t.get("challengeresponse")).unwrap(),
    )
    .unwrap();
    let secrets = HostSecrets {
        server_secret: secret[..16].try_into().unwrap(),
        server_challenge: plain[32..48].try_into().unwrap(),
    };
    let server = server_identity();
    let client_pem = fixture("client_cert.pem");
    let query = vec![
        ("uniqueid".to_string(), "test".to_string()),
        ("phrase".to_string(), "getservercert".to_string()),
        ("salt".to_string(), t.get("salt")),
        ("clientcert".to_string(), hex::encode_upper(&client_pem)),
    ];
    let HostPairRequest::GetServerCert {
        salt,
        client_cert_pem,
    } = HostPairRequest::from_query(&query).unwrap()
    else {
        panic!("not phase 1")
    };
    assert_eq!(salt, t.salt);
    let mut h = HostPairing::with_options(
        &server,
        &server,
        &salt,
        &client_cert_pem,
        &t.pin,
        PairingHash::Sha256,
        secrets,
    )
    .unwrap();
    assert_eq!(
        hex::decode(h.server_cert_response().plaincert.unwrap()).unwrap(),
        fixture("server_cert.pem").as_bytes()
    );
    let step = |h: &mut HostPairing, k: &str, v: String| {
        h.handle(&HostPairRequest::from_query(&[(k.to_string(), v)]).unwrap())
    };
    let HostStep::Respond(r2) = step(&mut h, "clientchallenge", t.get("clientchallenge")).unwrap()
    else {
        panic!()
    };
    assert_eq!(r2.challengeresponse.unwrap(), t.get("challengeresponse"));
    let HostStep::Respond(r3) =
        step(&mut h, "serverchallengeresp", t.get("serverchallengeresp")).unwrap()
    else {
        panic!()
    };
    assert_eq!(r3.pairingsecret.unwrap(), t.get("pairingsecret"));
    match step(&mut h, "clientpairingsecret", t.get("clientpairingsecret")).unwrap() {
        HostStep::Paired {
            client_cert_der, ..
        } => assert_eq!(client_cert_der, client_identity().cert_der),
        other => panic!("not paired: {other:?}"),
    }
}

/// §7.7: one PIN digit changed ⇒ the step-4 hash check fails while the host signature verifies.
#[test]
fn sunshine_transcript_wrong_pin() {
    let t = Transcript::load();
    let mut c = t.client("6003");
    c.start().unwrap();
    let r2 = c.on_server_cert(&cert_resp()).unwrap();
    assert_ne!(param(&r2, "clientchallenge"), t.get("clientchallenge"));
    c.on_challenge_response(&t.challenge_resp()).unwrap();
    let secret = hex::decode(t.get("pairingsecret")).unwrap();
    verify_sha256_signature(
        fixture("server_cert.pem").as_bytes(),
        &secret[..16],
        &secret[16..],
    )
    .unwrap();
    let err = c
        .on_pairing_secret(&Transcript::secret_resp(t.get("pairingsecret")))
        .unwrap_err();
    assert!(matches!(err, PairingError::WrongPin), "{err:?}");
    // Any further step is out of order.
    assert!(matches!(
        c.on_secret_ack(&ok_resp()),
        Err(PairingError::OutOfOrder { .. })
    ));
}

#[test]
fn forged_host_signature_is_detected() {
    let t = Transcript::load();
    let mut c = t.client(&t.pin);
    c.start().unwrap();
    c.on_server_cert(&cert_resp()).unwrap();
    c.on_challenge_response(&t.challenge_resp()).unwrap();
    let mut secret = hex::decode(t.get("pairingsecret")).unwrap();
    let last = secret.len() - 1;
    secret[last] ^= 1;
    let err = c
        .on_pairing_secret(&Transcript::secret_resp(hex::encode(secret)))
        .unwrap_err();
    assert!(
        matches!(err, PairingError::ForgedHostCertificate),
        "{err:?}"
    );
}

#[test]
fn client_rejects_bad_responses() {
    let t = Transcript::load();
    let new = || t.client(&t.pin);
    let mut c = new();
    assert!(matches!(
        c.on_server_cert(&ok_resp()),
        Err(PairingError::OutOfOrder {
            expected: 1,
            got: 1
        })
    ));
    let mut c = new();
    c.start().unwrap();
    assert!(matches!(
        c.on_server_cert(&PairResponse::refused()),
        Err(PairingError::HostRefused { phase: 1 })
    ));
    let mut c = new();
    c.start().unwrap();
    let bad = PairResponse {
        plaincert: Some("zz".into()),
        ..ok_resp()
    };
    assert!(matches!(
        c.on_server_cert(&bad),
        Err(PairingError::MalformedHex { .. })
    ));
    let mut c = new();
    c.start().unwrap();
    c.on_server_cert(&cert_resp()).unwrap();
    let short = PairResponse {
        challengeresponse: Some("00".repeat(16)),
        ..ok_resp()
    };
    assert!(matches!(
        c.on_challenge_response(&short),
        Err(PairingError::BadLength { .. })
    ));
}

// ---------------------------------------------------------------------------------------------
// In-memory full pairing, SHA-256 and SHA-1

fn ids() -> &'static (Identity, Identity, Identity) {
    static IDS: OnceLock<(Identity, Identity, Identity)> = OnceLock::new();
    IDS.get_or_init(|| {
        (
            Identity::new_client().unwrap(),
            Identity::new_host("moongate test host").unwrap(),
            Identity::new_client().unwrap(),
        )
    })
}

fn host_answer(
    host: &mut Option<HostPairing>,
    req: &PairRequest,
    host_id: &Identity,
    pin: &str,
    hash: PairingHash,
) -> PairResponse {
    let query: Vec<(String, String)> = req
        .params
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect();
    match HostPairRequest::from_query(&query).unwrap() {
        HostPairRequest::GetServerCert {
            salt,
            client_cert_pem,
        } => {
            let h = HostPairing::with_options(
                host_id,
                host_id,
                &salt,
                &client_cert_pem,
                pin,
                hash,
                HostSecrets::random(),
            )
            .unwrap();
            let r = h.server_cert_response();
            *host = Some(h);
            r
        }
        HostPairRequest::PairChallenge => ok_resp(),
        other => match host.as_mut().unwrap().handle(&other).unwrap() {
            HostStep::Respond(r) | HostStep::Rejected(r) => r,
            HostStep::Paired { response, .. } => response,
        },
    }
}

fn pair_in_memory(version: &str, client_pin: &str, host_pin: &str) -> Result<(), PairingError> {
    let (client_id, host_id, _) = ids();
    let version = AppVersion::parse(version);
    let hash = PairingHash::for_version(&version);
    let mut c = ClientPairing::new(client_id.clone(), client_pin, &version)?;
    assert_eq!(c.hash(), hash);
    let mut host = None;
    let req = c.start()?;
    let req = c.on_server_cert(&host_answer(&mut host, &req, host_id, host_pin, hash))?;
    let req = c.on_challenge_response(&host_answer(&mut host, &req, host_id, host_pin, hash))?;
    if hash == PairingHash::Sha1 {
        assert_eq!(param(&req, "serverchallengeresp").len(), 64);
    }
    let req = c.on_pairing_secret(&host_answer(&mut host, &req, host_id, host_pin, hash))?;
    let req = c.on_secret_ack(&host_answer(&mut host, &req, host_id, host_pin, hash))?;
    let done = c.on_pair_challenge(&host_answer(&mut host, &req, host_id, host_pin, hash))?;
    assert_eq!(done.host_cert_der, host_id.cert_der);
    Ok(())
}

#[test]
fn in_memory_pairing_sha256_and_sha1() {
    pair_in_memory("7.1.431.-1", "1234", "1234").unwrap();
    pair_in_memory("5.0.0.0", "4321", "4321").unwrap();
    assert!(matches!(
        pair_in_memory("7.1.431.-1", "1234", "1235"),
        Err(PairingError::WrongPin)
    ));
    assert!(matches!(
        pair_in_memory("6.0.0.0", "1234", "1235"),
        Err(PairingError::WrongPin)
    ));
}

#[test]
fn host_rejects_wrong_client_proof_and_bad_order() {
    let (client_id, host_id, other_id) = ids();
    let hash = PairingHash::Sha256;
    let secrets = ClientSecrets::random();
    let mut c =
        ClientPairing::with_secrets(client_id.clone(), "1234", hash, secrets.clone()).unwrap();
    let mut host = None;
    let req = c.start().unwrap();
    c.on_server_cert(&host_answer(&mut host, &req, host_id, "1234", hash))
        .unwrap();
    let mut h = host.take().unwrap();
    // Out of order: phase 3 before phase 2.
    assert!(matches!(
        h.handle(&HostPairRequest::ServerChallengeResp(vec![0; 32])),
        Err(PairingError::OutOfOrder {
            expected: 2,
            got: 3
        })
    ));

    // A client whose phase-4 signature is made with another key ⇒ paired=0.
    let mut host = None;
    let mut c = ClientPairing::with_secrets(client_id.clone(), "1234", hash, secrets).unwrap();
    let req = c.start().unwrap();
    let req = c
        .on_server_cert(&host_answer(&mut host, &req, host_id, "1234", hash))
        .unwrap();
    let req = c
        .on_challenge_response(&host_answer(&mut host, &req, host_id, "1234", hash))
        .unwrap();
    c.on_pairing_secret(&host_answer(&mut host, &req, host_id, "1234", hash))
        .unwrap();
    let cs = [7u8; 16];
    let mut forged = cs.to_vec();
    forged.extend(other_id.sign_sha256(&cs));
    match host
        .as_mut()
        .unwrap()
        .handle(&HostPairRequest::ClientPairingSecret(forged))
        .unwrap()
    {
        HostStep::Rejected(r) => assert!(!r.paired),
        other => panic!("{other:?}"),
    }
}

// ---------------------------------------------------------------------------------------------
// Over real sockets

const PNG: &[u8] = b"\x89PNG\r\n\x1a\nnot really a png";

#[derive(Default)]
struct TestHost {
    running: Mutex<u32>,
}

impl HostHandler for TestHost {
    fn server_info(&self, _ctx: &RequestContext) -> ServerInfo {
        let running = *self.running.lock().unwrap();
        ServerInfo {
            hostname: "testhost".into(),
            unique_id: "TESTHOST".into(),
            current_game: running,
            state: if running != 0 { STATE_BUSY } else { STATE_FREE }.into(),
            ..ServerInfo::default()
        }
    }

    fn app_list(&self, _ctx: &RequestContext) -> Vec<App> {
        vec![
            App {
                title: "Desktop".into(),
                id: 881448767,
                hdr_supported: false,
            },
            App {
                title: "Steam & Co".into(),
                id: 2,
                hdr_supported: true,
            },
        ]
    }

    fn app_asset(&self, _ctx: &RequestContext, app_id: u32) -> Option<Vec<u8>> {
        (app_id == 881448767).then(|| PNG.to_vec())
    }

    fn launch(
        &self,
        ctx: &RequestContext,
        request: &LaunchRequest,
    ) -> Result<LaunchResponse, HostError> {
        if request.app_id != 881448767 {
            return Err(HostError::new(400, "unknown app"));
        }
        *self.running.lock().unwrap() = request.app_id;
        Ok(LaunchResponse {
            session_url: Some(session_url(
                ctx.local_addr,
                48010,
                request.corever.unwrap_or(0) >= 1,
            )),
        })
    }

    fn resume(
        &self,
        ctx: &RequestContext,
        _request: &LaunchRequest,
    ) -> Result<LaunchResponse, HostError> {
        if *self.running.lock().unwrap() == 0 {
            return Err(HostError::new(503, "No running app to resume"));
        }
        Ok(LaunchResponse {
            session_url: Some(session_url(ctx.local_addr, 48010, false)),
        })
    }

    fn cancel(&self, _ctx: &RequestContext) -> Result<(), HostError> {
        *self.running.lock().unwrap() = 0;
        Ok(())
    }
}

fn loopback() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

async fn start_host(signer: Option<Identity>) -> NvHttpServer {
    start_host_as(&ids().1, signer).await
}

async fn start_host_as(host_id: &Identity, signer: Option<Identity>) -> NvHttpServer {
    let mut config = NvHttpServerConfig::new(
        loopback(),
        loopback(),
        host_id.clone(),
        Arc::new(TestHost::default()),
    );
    config.pairing_signer = signer;
    config.pin_timeout = Duration::from_secs(10);
    NvHttpServer::start(config).await.unwrap()
}

fn client_for(server: &NvHttpServer, id: &Identity, pinned: Option<Vec<u8>>) -> NvHttpClient {
    let addr = HostAddress::with_ports("127.0.0.1", server.http_port(), None);
    NvHttpClient::new(addr, id.clone(), pinned).with_timeout(Duration::from_secs(10))
}

/// A host whose PIN is fixed to 1234 (pairing certificate signed by `signer` if given) and a
/// client of it with the first test identity.
async fn pin_host(signer: Option<Identity>) -> (NvHttpServer, NvHttpClient) {
    let server = start_host(signer).await;
    server.set_fixed_pin(Some("1234".into()));
    let client = client_for(&server, &ids().0, None);
    (server, client)
}

/// Pairs with `pin` against [`pin_host`]`(signer)`; the pairing must fail and leave the host
/// without paired clients. The error and the client.
async fn failed_pairing(signer: Option<Identity>, pin: &str) -> (NvHttpError, NvHttpClient) {
    let (server, client) = pin_host(signer).await;
    let err = client.pair(pin, "roth").await.unwrap_err();
    assert!(server.paired_clients().list().is_empty());
    server.close().await;
    (err, client)
}

type Pairing = tokio::task::JoinHandle<Result<PairedHost, NvHttpError>>;

/// Starts pairing with `pin` against a host without a fixed PIN and waits (up to 5 s) until the
/// host lists it as pending. The client, the pairing task and the pending list.
async fn pending_pairing(
    server: &NvHttpServer,
    pin: &'static str,
    device: &'static str,
) -> (Arc<NvHttpClient>, Pairing, Vec<PendingPairing>) {
    let client = Arc::new(client_for(server, &ids().0, None));
    let pairing = tokio::spawn({
        let client = client.clone();
        async move { client.pair(pin, device).await }
    });
    let mut pending = Vec::new();
    for _ in 0..200 {
        pending = server.pending_pairings();
        if !pending.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    (client, pairing, pending)
}

async fn within<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(60), f)
        .await
        .expect("test step timed out")
}

#[tokio::test]
async fn pair_then_use_every_endpoint() {
    within(async {
        let (client_id, host_id, other_id) = ids();
        let (server, client) = pin_host(None).await;

        let info = client.server_info().await.unwrap();
        assert!(!info.pair_status);
        assert_eq!(info.https_port, server.https_port());
        assert_eq!(info.hostname, "testhost");
        assert!(matches!(
            client.app_list().await,
            Err(NvHttpError::NotPaired)
        ));

        let paired = client.pair("1234", "roth").await.unwrap();
        assert_eq!(paired.host_cert_der, host_id.cert_der);
        assert_eq!(client.pinned_host_cert(), Some(host_id.cert_der.clone()));
        assert!(server.paired_clients().is_paired(&client_id.cert_der));
        assert_eq!(server.paired_clients().list()[0].device_name, "roth");

        let info = client.server_info().await.unwrap();
        assert!(
            info.pair_status,
            "HTTPS serverinfo must report PairStatus 1"
        );
        assert!(!info.should_resume());

        let apps = client.app_list().await.unwrap();
        assert_eq!(apps.len(), 2);
        assert_eq!(apps[1].title, "Steam & Co");
        assert_eq!(client.app_asset(881448767).await.unwrap(), PNG);
        assert_eq!(
            client.app_asset(5).await.unwrap_err().status_code(),
            Some(404)
        );

        assert_eq!(
            client
                .resume(&LaunchRequest::new(881448767, 1920, 1080, 60))
                .await
                .unwrap_err()
                .status_code(),
            Some(503)
        );
        let launch = client
            .launch(&LaunchRequest::new(881448767, 1920, 1080, 60))
            .await
            .unwrap();
        assert_eq!(
            launch.session_url.as_deref(),
            Some("rtspenc://127.0.0.1:48010")
        );
        assert_eq!(
            client
                .launch(&LaunchRequest::new(7, 1920, 1080, 60))
                .await
                .unwrap_err()
                .status_code(),
            Some(400)
        );
        let info = client.server_info().await.unwrap();
        assert!(info.should_resume());
        assert_eq!(info.running_app(), 881448767);
        let resumed = client
            .resume(&LaunchRequest::new(881448767, 1920, 1080, 60))
            .await
            .unwrap();
        assert_eq!(
            resumed.session_url.as_deref(),
            Some("rtsp://127.0.0.1:48010")
        );
        client.cancel().await.unwrap();
        assert_eq!(client.server_info().await.unwrap().running_app(), 0);

        // An unpaired identity that pins the right host certificate gets XML 401.
        let stranger = client_for(&server, other_id, Some(host_id.cert_der.clone()));
        let err = stranger.app_list().await.unwrap_err();
        assert_eq!(err.status_code(), Some(401), "{err:?}");
        assert!(!stranger.server_info().await.unwrap().pair_status);

        // Unknown path ⇒ 404 (via unpair's path handling of an HTTP client is fine; use raw GET).
        client.unpair().await.unwrap();
        assert!(!server.paired_clients().is_paired(&client_id.cert_der));
        assert_eq!(
            client.app_list().await.unwrap_err().status_code(),
            Some(401)
        );
        server.close().await;
    })
    .await;
}

#[tokio::test]
async fn pin_submitted_through_pending_pairing() {
    within(async {
        let server = start_host(None).await;
        let (client, pairing, pending) = pending_pairing(&server, "4711", "moongate").await;
        assert_eq!(pending.len(), 1);
        assert_eq!(pending[0].device_name, "moongate");
        assert_eq!(pending[0].client_ip.to_string(), "127.0.0.1");
        assert!(!server.submit_pin("nonexistent", "4711"));
        assert!(server.submit_pin(&pending[0].pair_secret, "4711"));
        pairing.await.unwrap().unwrap();
        assert!(server.pending_pairings().is_empty());
        assert!(client.server_info().await.unwrap().pair_status);
        server.close().await;
    })
    .await;
}

#[tokio::test]
async fn wrong_pin_over_http() {
    within(async {
        let (err, client) = failed_pairing(None, "9999").await;
        assert!(
            matches!(err, NvHttpError::Pairing(PairingError::WrongPin)),
            "{err:?}"
        );
        assert!(client.pinned_host_cert().is_none());
    })
    .await;
}

#[tokio::test]
async fn forged_host_over_http() {
    within(async {
        let (err, _) = failed_pairing(Some(ids().2.clone()), "1234").await;
        assert!(
            matches!(
                err,
                NvHttpError::Pairing(PairingError::ForgedHostCertificate)
            ),
            "{err:?}"
        );
    })
    .await;
}

#[tokio::test]
async fn pinned_certificate_mismatch_is_a_tls_error() {
    within(async {
        let (client_id, _, other_id) = ids();
        let (server, client) = pin_host(None).await;
        let paired = client.pair("1234", "roth").await.unwrap();
        // Another host (different certificate) at a new address, reached with the old pin.
        let impostor = start_host_as(other_id, None).await;
        let mismatched = client_for(&impostor, client_id, Some(paired.host_cert_der.clone()));
        let err = mismatched.server_info_https().await.unwrap_err();
        assert!(matches!(err, NvHttpError::Tls(_)), "{err:?}");
        let err = mismatched.app_list().await.unwrap_err();
        assert!(matches!(err, NvHttpError::Tls(_)), "{err:?}");
        // server_info() falls back to HTTP, which never reports PairStatus 1.
        assert!(!mismatched.server_info().await.unwrap().pair_status);
        // The same host with a wrongly pinned certificate fails the same way.
        let wrong_pin = client_for(&server, client_id, Some(other_id.cert_der.clone()));
        assert!(matches!(
            wrong_pin.app_list().await,
            Err(NvHttpError::Tls(_))
        ));
        impostor.close().await;
        server.close().await;
    })
    .await;
}

#[tokio::test]
async fn server_protocol_errors() {
    within(async {
        let server = start_host(None).await;
        let get = |path: &'static str| {
            let port = server.http_port();
            async move {
                use tokio::io::{AsyncReadExt, AsyncWriteExt};
                let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
                    .await
                    .unwrap();
                s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
                    .await
                    .unwrap();
                let mut out = String::new();
                s.read_to_string(&mut out).await.unwrap();
                out
            }
        };
        let r = get("/nothing").await;
        assert!(
            r.starts_with("HTTP/1.1 404") && r.contains("status_code=\"404\""),
            "{r}"
        );
        let r = get("/pair?phrase=getservercert").await;
        assert!(r.contains("status_code=\"400\""), "{r}");
        let r =
            get("/pair?uniqueid=0123456789ABCDEF&clientchallenge=00112233445566778899AABBCCDDEEFF")
                .await;
        assert!(
            r.contains("<paired>0</paired>") && r.contains("Invalid uniqueid"),
            "{r}"
        );
        let r = get("/pair?uniqueid=0123456789ABCDEF&salt=00&clientcert=00").await;
        assert!(r.contains("<paired>0</paired>"), "{r}");
        let r = get("/applist?uniqueid=0123456789ABCDEF").await;
        assert!(r.contains("status_code=\"401\""), "{r}");
        server.close().await;
    })
    .await;
}

#[tokio::test]
async fn close_ends_a_waiting_phase_one() {
    within(async {
        let server = start_host(None).await;
        let (_client, pairing, _) = pending_pairing(&server, "1234", "roth").await;
        assert_eq!(server.pending_pairings().len(), 1);
        tokio::time::timeout(Duration::from_secs(5), server.close())
            .await
            .expect("close() must not hang");
        assert!(server.pending_pairings().is_empty());
        let result = tokio::time::timeout(Duration::from_secs(5), pairing)
            .await
            .expect("client must notice")
            .unwrap();
        assert!(result.is_err());
    })
    .await;
}
