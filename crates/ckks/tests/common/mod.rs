//! Shared fixtures for the integration tests: small insecure rings (explicitly opted in).
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use volley_ckks::client::{KeyGenerator, SecretKey, decrypt, encrypt_secret};
use volley_ckks::*;

pub struct Ctx {
    pub params: Arc<Params>,
    pub sk: SecretKey,
    pub pk: PublicKey,
    pub enc: Encoder,
    pub eval: Evaluator,
}

/// N = 2^log_n, `levels` 40-bit primes over a 55-bit base, dnum digits and enough special primes.
pub fn ctx(log_n: u32, levels: usize, dnum: usize, steps: &[i64]) -> Ctx {
    let mut log_q = vec![55];
    log_q.extend(std::iter::repeat_n(40, levels));
    // Enough 58-bit special primes to cover the largest digit.
    let alpha = (levels + 1).div_ceil(dnum);
    let special = (55 + 40 * (alpha - 1)).div_ceil(58);
    let params = Params::new_insecure(ParamsLiteral {
        log_n,
        log_q,
        log_p: vec![58; special],
        dnum,
        secret: SecretDistribution::Ternary,
        log_scale: 40,
        sigma: 3.19,
    })
    .unwrap();
    let mut kg = KeyGenerator::new_deterministic_for_tests(params.clone(), [42u8; 32]);
    let sk = kg.gen_secret_key();
    let pk = kg.gen_public_key(&sk);
    let keys = kg.gen_evaluation_keys(&sk, true, steps, true);
    let enc = Encoder::new(params.clone());
    let eval = Evaluator::new(params.clone(), keys);
    Ctx {
        params,
        sk,
        pk,
        enc,
        eval,
    }
}

/// Deterministic pseudo-random values in [-1, 1].
pub fn values(n: usize, seed: u64) -> Vec<Complex64> {
    let mut x = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        (x >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0
    };
    (0..n).map(|_| Complex64::new(next(), next())).collect()
}

impl Ctx {
    pub fn encrypt(&self, v: &[Complex64]) -> Ciphertext {
        let slots = self.params.max_slots();
        let pt = self
            .enc
            .encode_complex(
                v,
                self.params.max_level(),
                self.params.default_scale(),
                slots,
            )
            .unwrap();
        encrypt_public(&self.pk, &pt).unwrap()
    }

    pub fn encrypt_sk(&self, v: &[Complex64], slots: usize) -> Ciphertext {
        let pt = self
            .enc
            .encode_complex(
                v,
                self.params.max_level(),
                self.params.default_scale(),
                slots,
            )
            .unwrap();
        encrypt_secret(&self.sk, &pt).unwrap()
    }

    pub fn decrypt(&self, ct: &Ciphertext) -> Vec<Complex64> {
        self.enc
            .decode_complex(&decrypt(&self.sk, ct).unwrap())
            .unwrap()
    }

    /// Asserts the decryption matches `expected` with at least `bits` bits of precision (worst slot).
    pub fn assert_close(&self, ct: &Ciphertext, expected: &[Complex64], bits: f64, what: &str) {
        let got = self.decrypt(ct);
        let stats = precision_stats(expected, &got[..expected.len()]);
        assert!(
            stats.min_bits >= bits,
            "{what}: precision {stats:?} below {bits} bits"
        );
    }
}
