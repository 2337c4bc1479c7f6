#![no_main]
use libfuzzer_sys::fuzz_target;
use volley_ckks::{EvaluationKeys, Serializable};

fuzz_target!(|data: &[u8]| {
    let params = volley_ckks_fuzz::params();
    if let Ok(k) = EvaluationKeys::from_bytes(params, data) {
        assert_eq!(k.to_bytes(), data);
        assert_eq!(k.serialized_size(), data.len());
    }
});
