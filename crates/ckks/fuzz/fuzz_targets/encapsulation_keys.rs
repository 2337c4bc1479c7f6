#![no_main]
use libfuzzer_sys::fuzz_target;
use volley_ckks::{EncapsulationKeys, Serializable};

fuzz_target!(|data: &[u8]| {
    let params = volley_ckks_fuzz::params();
    if let Ok(k) = EncapsulationKeys::from_bytes(params, data) {
        // Canonical: whatever is accepted re-encodes to the same bytes.
        assert_eq!(k.to_bytes(), data);
        assert_eq!(k.serialized_size(), data.len());
    }
});
