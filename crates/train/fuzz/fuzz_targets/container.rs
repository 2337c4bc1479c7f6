#![no_main]
use libfuzzer_sys::fuzz_target;
use volley_train::container::{ciphertexts_from_bytes, ciphertexts_to_bytes};

fuzz_target!(|data: &[u8]| {
    if let Ok(cts) = ciphertexts_from_bytes(volley_train_fuzz::params(), data) {
        // Canonical: an accepted container re-encodes to the same bytes.
        assert_eq!(ciphertexts_to_bytes(&cts), data);
    }
});
