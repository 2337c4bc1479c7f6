//! Shared fixtures of the fuzz targets: tiny insecure parameters (N = 16) and a manifest of
//! an upload on them, built once, so every execution spends its time in the decoders.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::sync::{Arc, OnceLock};
use volley_ckks::{Params, ParamsLiteral, SecretDistribution};
use volley_train::bundle::{BUNDLE_VERSION, Manifest, expected_counts};
use volley_train::layout::{Geometry, Schedule};

/// Iterations of the run the checkpoint target reads checkpoints for.
pub const ITERATIONS: usize = 3;

/// N = 16 (8 slots), three Q primes, one P prime.
pub fn params() -> &'static Arc<Params> {
    static P: OnceLock<Arc<Params>> = OnceLock::new();
    P.get_or_init(|| {
        Params::new_insecure(ParamsLiteral {
            log_n: 4,
            log_q: vec![45, 36, 36],
            log_p: vec![50],
            dnum: 3,
            secret: SecretDistribution::Ternary,
            log_scale: 30,
            sigma: 3.19,
        })
        .expect("fuzz parameters")
    })
}

/// A valid manifest on [`params`]: 4 rows, 2 classes, 2 features (d = 3, d_hat = 4, two
/// rows per ciphertext), diagonal schedule.
pub fn manifest() -> &'static Manifest {
    static M: OnceLock<Manifest> = OnceLock::new();
    M.get_or_init(|| {
        let p = params();
        let g = Geometry::new(Schedule::Diagonal, 4, 2, 3, p.max_slots()).expect("geometry");
        Manifest {
            version: BUNDLE_VERSION,
            params_name: "fuzz".into(),
            params: p.literal().clone(),
            fingerprint: p.fingerprint_hex(),
            key_id: "00112233445566778899aabbccddeeff".into(),
            schedule: Schedule::Diagonal,
            geometry: g,
            iterations: ITERATIONS,
            bootstrapping: false,
            ciphertexts: expected_counts(Schedule::Diagonal, &g),
            bytes: Default::default(),
            batches: None,
        }
    })
}
