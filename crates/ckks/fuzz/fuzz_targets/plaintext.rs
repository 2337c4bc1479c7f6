#![no_main]
use libfuzzer_sys::fuzz_target;
use volley_ckks::{Plaintext, Serializable};

fuzz_target!(|data: &[u8]| {
    let params = volley_ckks_fuzz::params();
    if let Ok(pt) = Plaintext::from_bytes(params, data) {
        assert_eq!(pt.to_bytes(), data);
    }
});
