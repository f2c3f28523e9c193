#![no_main]
//! Pairing state machines fed arbitrary peer input: the host half gets arbitrary `/pair` query
//! strings (one per line), the client half arbitrary response bodies (separated by 0xFF bytes).
//! Nothing may panic; every phase must either advance or fail with a typed error.
use std::sync::OnceLock;

use gamestream::identity::Identity;
use gamestream::pairing::{ClientPairing, ClientSecrets, HostPairRequest, HostPairing, HostSecrets, PairResponse, PairingHash};
use libfuzzer_sys::fuzz_target;

const CLIENT_CERT: &str = include_str!("../../tests/data/sunshine-pairing/client_cert.pem");
const CLIENT_KEY: &str = include_str!("../../tests/data/sunshine-pairing/client_key.pem");
const SERVER_CERT: &str = include_str!("../../tests/data/sunshine-pairing/server_cert.pem");
const SERVER_KEY: &str = include_str!("../../tests/data/sunshine-pairing/server_key.pem");

fn identities() -> &'static (Identity, Identity) {
    static IDS: OnceLock<(Identity, Identity)> = OnceLock::new();
    IDS.get_or_init(|| {
        (
            Identity::from_pem(CLIENT_CERT, CLIENT_KEY).expect("fixture client identity"),
            Identity::from_pem(SERVER_CERT, SERVER_KEY).expect("fixture server identity"),
        )
    })
}

fn query_pairs(line: &str) -> Vec<(String, String)> {
    line.split('&')
        .map(|kv| match kv.split_once('=') {
            Some((k, v)) => (k.to_string(), v.to_string()),
            None => (kv.to_string(), String::new()),
        })
        .collect()
}

fuzz_target!(|data: &[u8]| {
    let (client, server) = identities();
    let Some((&mode, rest)) = data.split_first() else { return };
    let hash = if mode & 2 == 0 { PairingHash::Sha256 } else { PairingHash::Sha1 };
    if mode & 1 == 0 {
        // Host half.
        let text = String::from_utf8_lossy(rest);
        let salt = [0x11u8; 16];
        let secrets = HostSecrets { server_secret: [0x22; 16], server_challenge: [0x33; 16] };
        let Ok(mut host) =
            HostPairing::with_options(server, server, &salt, CLIENT_CERT.as_bytes(), "1234", hash, secrets)
        else {
            return;
        };
        for line in text.lines().take(8) {
            if let Ok(req) = HostPairRequest::from_query(&query_pairs(line)) {
                let _ = host.handle(&req);
            }
        }
    } else {
        // Client half.
        let secrets = ClientSecrets { salt: [1; 16], challenge: [2; 16], secret: [3; 16] };
        let Ok(mut c) = ClientPairing::with_secrets(client.clone(), "1234", hash, secrets) else { return };
        let _ = c.start();
        let mut bodies = rest.split(|&b| b == 0xFF);
        let mut next = || bodies.next().and_then(|b| PairResponse::parse(b).ok()).unwrap_or_default();
        if c.on_server_cert(&next()).is_err()
            || c.on_challenge_response(&next()).is_err()
            || c.on_pairing_secret(&next()).is_err()
            || c.on_secret_ack(&next()).is_err()
        {
            return;
        }
        let _ = c.on_pair_challenge(&next());
    }
});
