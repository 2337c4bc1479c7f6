#![no_main]
//! Switching, relinearization and Galois keys share one body codec: one target for all three.
use libfuzzer_sys::fuzz_target;
use volley_ckks::{GaloisKey, RelinearizationKey, Serializable, SwitchingKey};

fuzz_target!(|data: &[u8]| {
    let params = volley_ckks_fuzz::params();
    if let Ok(k) = SwitchingKey::from_bytes(params, data) {
        assert_eq!(k.to_bytes(), data);
    }
    if let Ok(k) = RelinearizationKey::from_bytes(params, data) {
        assert_eq!(k.to_bytes(), data);
    }
    if let Ok(k) = GaloisKey::from_bytes(params, data) {
        assert_eq!(k.to_bytes(), data);
    }
});
