#![no_main]
use libfuzzer_sys::fuzz_target;
use volley_ckks::serialization::params_literal_from_bytes;
use volley_ckks::{params_from_bytes, params_to_bytes};

fuzz_target!(|data: &[u8]| {
    let Ok((lit, _insecure, _fingerprint)) = params_literal_from_bytes(data) else { return };
    // Valid large rings are legitimately slow to build (prime search, NTT tables, up to
    // hundreds of MiB): rebuild only small ones so the fuzzer keeps its pace. The checks
    // run before the build are the same for every size.
    if lit.log_n > 10 || lit.log_q.len() + lit.log_p.len() > 8 {
        return;
    }
    for allow_insecure in [false, true] {
        if let Ok(p) = params_from_bytes(data, allow_insecure) {
            assert_eq!(params_to_bytes(&p), data);
            assert!(allow_insecure || !p.is_insecure());
        }
    }
});
