#![no_main]
use libfuzzer_sys::fuzz_target;
use volley_ckks::{Ciphertext, Serializable};

fuzz_target!(|data: &[u8]| {
    let params = volley_ckks_fuzz::params();
    if let Ok(ct) = Ciphertext::from_bytes(params, data) {
        // The format is canonical: whatever is accepted re-encodes to the same bytes.
        assert_eq!(ct.to_bytes(), data);
        assert_eq!(ct.serialized_size(), data.len());
    }
});
