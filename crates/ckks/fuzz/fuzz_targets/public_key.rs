#![no_main]
use libfuzzer_sys::fuzz_target;
use volley_ckks::{PublicKey, Serializable};

fuzz_target!(|data: &[u8]| {
    let params = volley_ckks_fuzz::params();
    if let Ok(pk) = PublicKey::from_bytes(params, data) {
        assert_eq!(pk.to_bytes(), data);
    }
});
