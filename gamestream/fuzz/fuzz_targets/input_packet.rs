#![no_main]
use gamestream::input::{CbcInputCipher, InputEvent, LegacyGcmInputCipher};
use gamestream::AppVersion;
use libfuzzer_sys::fuzz_target;

const VERSIONS: [AppVersion; 5] = [
    AppVersion::new(3, 0, 0, 0),
    AppVersion::new(4, 0, 0, 0),
    AppVersion::new(5, 0, 0, 0),
    AppVersion::new(7, 1, 415, 0),
    AppVersion::SUNSHINE,
];

fuzz_target!(|data: &[u8]| {
    for version in VERSIONS {
        if let Ok(event) = InputEvent::decode(data, version) {
            let encoded = event.encode(version);
            let again =
                InputEvent::decode(&encoded, version).expect("re-encoded event must decode");
            // Compare encodings (floats may be NaN, which PartialEq never equates) and Debug forms.
            assert_eq!(again.encode(version), encoded);
            assert_eq!(format!("{again:?}"), format!("{event:?}"));
            let _ = event.route(version);
        }
    }
    // Legacy wrappings must reject garbage without panicking.
    let _ = LegacyGcmInputCipher::new(&[1; 16], 5).decrypt(data);
    let _ = CbcInputCipher::new(&[1; 16], 5).decrypt(data);
});
