//! Bootstrapping: precision on uniform inputs, full and sparse slots, real pairs, twice in a
//! row, inputs at the edge of the range, and every typed error. Small insecure rings (opted
//! into visibly with `Params::new_insecure`), the same chain layout as the `boot16` preset.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::values;
use std::sync::Arc;
use volley_ckks::circuits::{BootstrapConfig, Bootstrapper};
use volley_ckks::client::{KeyGenerator, SecretKey, decrypt, encrypt_secret};
use volley_ckks::*;

/// q_0 = 60 bits, 2 residual levels of 40, SlotsToCoeffs 3 x 45, EvalMod 9 x 60,
/// CoeffsToSlots 4 x 60: the `boot16` layout with fewer residual levels.
fn boot_params(log_n: u32) -> Arc<Params> {
    let mut log_q = vec![60, 40, 40, 45, 45, 45];
    log_q.extend([60; 9]);
    log_q.extend([60; 4]);
    Params::new_insecure(ParamsLiteral {
        log_n,
        log_q,
        log_p: vec![61; 5],
        dnum: 4,
        secret: SecretDistribution::Ternary,
        log_scale: 40,
        sigma: 3.19,
    })
    .unwrap()
}

struct Setup {
    params: Arc<Params>,
    sk: SecretKey,
    enc: Encoder,
    eval: Evaluator,
    keys: EncapsulationKeys,
    btp: Bootstrapper,
}

fn setup(log_n: u32, slots: usize) -> Setup {
    let params = boot_params(log_n);
    let btp = Bootstrapper::new(params.clone(), BootstrapConfig::new(slots)).unwrap();
    let mut kg = KeyGenerator::new_deterministic_for_tests(params.clone(), [7u8; 32]);
    let sk = kg.gen_secret_key();
    let (ek, keys) = btp.gen_keys(&mut kg, &sk).unwrap();
    Setup {
        enc: Encoder::new(params.clone()),
        eval: Evaluator::new(params.clone(), ek),
        params,
        sk,
        keys,
        btp,
    }
}

impl Setup {
    fn encrypt(&self, v: &[Complex64], slots: usize, level: usize) -> Ciphertext {
        let pt = self
            .enc
            .encode_complex(v, level, self.params.default_scale(), slots)
            .unwrap();
        encrypt_secret(&self.sk, &pt).unwrap()
    }

    fn decrypt(&self, ct: &Ciphertext) -> Vec<Complex64> {
        self.enc.decode_complex(&decrypt(&self.sk, ct).unwrap()).unwrap()
    }
}

fn check(s: &Setup, ct: &Ciphertext, want: &[Complex64], min_bits: f64, mean_bits: f64, what: &str) {
    assert_eq!(ct.level(), s.btp.output_level(), "{what}: level");
    assert_eq!(ct.scale(), s.params.default_scale(), "{what}: scale");
    let got = s.decrypt(ct);
    let stats = precision_stats(want, &got[..want.len()]);
    eprintln!("{what}: {stats:?}");
    assert!(
        stats.min_bits >= min_bits && stats.mean_bits >= mean_bits,
        "{what}: {stats:?} below {min_bits} / {mean_bits} bits"
    );
}

#[test]
fn full_slots_complex() {
    let s = setup(10, 512);
    assert_eq!(s.btp.output_level(), 2);
    assert_eq!(s.btp.depth(), 16);
    let v = values(512, 1);
    let ct = s.encrypt(&v, 512, 0);
    let out = s.btp.bootstrap(&s.eval, &s.keys, &ct).unwrap();
    check(&s, &out, &v, 16.0, 20.0, "full slots");
}
