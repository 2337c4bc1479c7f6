#![no_main]
use libfuzzer_sys::fuzz_target;
use volley_ckks::client::{load_secret_key, save_secret_key};

fuzz_target!(|data: &[u8]| {
    for params in [volley_ckks_fuzz::params(), volley_ckks_fuzz::sparse_params()] {
        if let Ok(sk) = load_secret_key(params, data) {
            let mut again = Vec::new();
            save_secret_key(&sk, &mut again).expect("writing to a Vec");
            assert_eq!(again, data);
        }
    }
});
