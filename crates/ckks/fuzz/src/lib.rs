//! Shared fixtures of the fuzz targets: tiny insecure parameters (N = 16) built once, so
//! every execution spends its time in the decoder, not in setting up a ring.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::sync::{Arc, OnceLock};
use volley_ckks::{Params, ParamsLiteral, SecretDistribution};

fn literal(secret: SecretDistribution) -> ParamsLiteral {
    ParamsLiteral { log_n: 4, log_q: vec![45, 36, 36], log_p: vec![50], dnum: 3, secret, log_scale: 30, sigma: 3.19 }
}

/// N = 16, three Q primes in three key-switching digits, one P prime, ternary secret.
pub fn params() -> &'static Arc<Params> {
    static P: OnceLock<Arc<Params>> = OnceLock::new();
    P.get_or_init(|| Params::new_insecure(literal(SecretDistribution::Ternary)).expect("fuzz parameters"))
}

/// The same ring with a sparse secret of Hamming weight 4 (exercises that check).
pub fn sparse_params() -> &'static Arc<Params> {
    static P: OnceLock<Arc<Params>> = OnceLock::new();
    P.get_or_init(|| Params::new_insecure(literal(SecretDistribution::HammingWeight(4))).expect("fuzz parameters"))
}
