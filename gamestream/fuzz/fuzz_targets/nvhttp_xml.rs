#![no_main]
//! NVHTTP response parsers (`/serverinfo`, `/applist`, `/launch`, `/resume`, `/cancel`, `/pair`) and
//! the launch query string: arbitrary bytes must never panic, and what parses must survive a
//! re-encode + re-parse unchanged.
use gamestream::nvhttp::{parse_cancel, App, LaunchRequest, LaunchResponse, ServerInfo, XmlResponse};
use gamestream::pairing::PairResponse;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = XmlResponse::parse(data);
    let _ = parse_cancel(data);
    if let Ok(info) = ServerInfo::parse(data) {
        let again = ServerInfo::parse(info.to_xml().as_bytes()).expect("re-encoded serverinfo parses");
        assert_eq!(again, info);
    }
    if let Ok(apps) = App::parse_list(data) {
        assert_eq!(App::parse_list(App::list_to_xml(&apps).as_bytes()).expect("re-encoded applist parses"), apps);
    }
    for resume in [false, true] {
        if let Ok(r) = LaunchResponse::parse(data, resume) {
            assert_eq!(LaunchResponse::parse(r.to_xml(resume).as_bytes(), resume).expect("re-encoded launch parses"), r);
        }
    }
    if let Ok(p) = PairResponse::parse(data) {
        let again = PairResponse::parse(p.to_xml(200, None).as_bytes()).expect("re-encoded pair parses");
        assert_eq!(again.paired, p.paired);
    }
    // Launch query strings (host side).
    let query: Vec<(String, String)> = form_urlencoded_pairs(data);
    for for_launch in [false, true] {
        if let Ok(req) = LaunchRequest::from_query(&query, for_launch) {
            let encoded: Vec<(String, String)> = req.to_query().into_iter().map(|(k, v)| (k.to_string(), v)).collect();
            let again = LaunchRequest::from_query(&encoded, for_launch).expect("re-encoded launch query parses");
            assert_eq!(again, req);
        }
    }
});

/// `k=v&k=v` split without percent-decoding (the fuzz crate depends on gamestream only).
fn form_urlencoded_pairs(data: &[u8]) -> Vec<(String, String)> {
    String::from_utf8_lossy(data)
        .split('&')
        .map(|kv| match kv.split_once('=') {
            Some((k, v)) => (k.to_string(), v.to_string()),
            None => (kv.to_string(), String::new()),
        })
        .collect()
}
