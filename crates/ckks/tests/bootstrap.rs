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

/// The `boot16` layout with 2 residual levels instead of 10: q_0 = 60 bits, 2 x 40, then the
/// preset's bootstrapping primes (SlotsToCoeffs 3 x 45, EvalMod 4 x 60 and 5 x 61,
/// CoeffsToSlots 3 x 60), taken from the preset so that the two cannot drift apart.
fn boot_params(log_n: u32) -> Arc<Params> {
    let boot16 = ParamsLiteral::preset("boot16").unwrap();
    // q_0 and the preset's 10 application levels come first.
    let mut log_q = vec![60, 40, 40];
    log_q.extend(&boot16.log_q[1 + 10..]);
    assert_eq!(log_q.len(), 3 + 15, "the bootstrapping depth is 15");
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
        self.enc
            .decode_complex(&decrypt(&self.sk, ct).unwrap())
            .unwrap()
    }
}

fn check(
    s: &Setup,
    ct: &Ciphertext,
    want: &[Complex64],
    min_bits: f64,
    mean_bits: f64,
    what: &str,
) {
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
    assert_eq!(s.btp.depth(), 15);
    assert_eq!(s.btp.input_level(), 0);
    let v = values(512, 1);
    // From level 0 and from a higher level (dropped first).
    for level in [0, 3] {
        let ct = s.encrypt(&v, 512, level);
        let out = s.btp.bootstrap(&s.eval, &s.keys, &ct).unwrap();
        check(&s, &out, &v, 22.0, 25.0, "full slots");
    }
}

#[test]
fn iterated_adds_bits() {
    let s = setup(10, 512);
    let v = values(512, 11);
    let ct = s.encrypt(&v, 512, 0);
    let once = s.btp.bootstrap(&s.eval, &s.keys, &ct).unwrap();
    let twice = s.btp.bootstrap_iterated(&s.eval, &s.keys, &ct).unwrap();
    let p1 = precision_stats(&v, &s.decrypt(&once)[..512]);
    check(&s, &twice, &v, 28.0, 31.0, "iterated");
    let p2 = precision_stats(&v, &s.decrypt(&twice)[..512]);
    assert!(p2.mean_bits > p1.mean_bits + 3.0, "{p1:?} -> {p2:?}");
}

#[test]
fn sparse_slots() {
    for slots in [8usize, 64, 256] {
        let s = setup(10, slots);
        let v = values(slots, slots as u64);
        let ct = s.encrypt(&v, slots, 0);
        let out = s.btp.bootstrap(&s.eval, &s.keys, &ct).unwrap();
        assert_eq!(out.slots(), slots);
        check(&s, &out, &v, 21.0, 23.0, &format!("{slots} slots"));
        // The result is a proper ciphertext of `slots` slots: a rotation by -1 works and
        // uses the key generated for -1.
        let r = s.eval.rotate(&out, 1).unwrap_or_else(|e| panic!("{e}"));
        let got = s.decrypt(&r);
        assert!((got[0] - v[1]).norm() < 1e-5);
    }
}

#[test]
fn real_pair_pays_one_bootstrap() {
    let s = setup(10, 512);
    let re = |seed| {
        values(512, seed)
            .iter()
            .map(|z| Complex64::new(z.re, 0.0))
            .collect::<Vec<_>>()
    };
    let (a, b) = (re(5), re(6));
    let (ca, cb) = (s.encrypt(&a, 512, 0), s.encrypt(&b, 512, 0));
    s.eval.reset_op_counts();
    let (ra, rb) = s
        .btp
        .bootstrap_real_pair(&s.eval, &s.keys, &ca, &cb)
        .unwrap();
    let pair_switches = s.eval.op_counts().key_switches;
    check(&s, &ra, &a, 22.0, 25.0, "real pair a");
    check(&s, &rb, &b, 22.0, 25.0, "real pair b");
    s.eval.reset_op_counts();
    s.btp.bootstrap(&s.eval, &s.keys, &ca).unwrap();
    let single = s.eval.op_counts().key_switches;
    // One bootstrap plus one conjugation for two vectors.
    assert_eq!(
        pair_switches,
        single + 1,
        "pair {pair_switches} vs single {single}"
    );
}

#[test]
fn twice_in_a_row_and_edge_inputs() {
    let s = setup(10, 512);
    let v = values(512, 9);
    let ct = s.encrypt(&v, 512, 0);
    let once = s.btp.bootstrap(&s.eval, &s.keys, &ct).unwrap();
    let low = s.eval.drop_to_level(&once, 0).unwrap();
    let twice = s.btp.bootstrap(&s.eval, &s.keys, &low).unwrap();
    check(&s, &twice, &v, 21.0, 24.0, "twice");
    // The edge of the range: |z| = 1 everywhere, and a constant 1 (all of the message in one
    // coefficient, where the sine is least linear).
    let unit: Vec<Complex64> = (0..512)
        .map(|i| Complex64::from_polar(1.0, i as f64))
        .collect();
    let out = s
        .btp
        .bootstrap(&s.eval, &s.keys, &s.encrypt(&unit, 512, 0))
        .unwrap();
    check(&s, &out, &unit, 21.0, 24.0, "unit modulus");
    let ones = vec![Complex64::new(1.0, 0.0); 512];
    let out = s
        .btp
        .bootstrap(&s.eval, &s.keys, &s.encrypt(&ones, 512, 0))
        .unwrap();
    // The sine's cubic term at the default message ratio 2^10: 17.3 bits (see
    // `EvalModConfig`).
    check(&s, &out, &ones, 17.0, 17.0, "constant 1");
    let minus = vec![Complex64::new(-1.0, -1.0); 512];
    let out = s
        .btp
        .bootstrap(&s.eval, &s.keys, &s.encrypt(&minus, 512, 0))
        .unwrap();
    check(&s, &out, &minus, 16.0, 16.0, "constant -1 - i");
}

#[test]
fn typed_errors() {
    let s = setup(10, 512);
    let v = values(512, 2);
    let ct = s.encrypt(&v, 512, 0);
    // Wrong slot count.
    let sparse = s.encrypt(&v[..256], 256, 0);
    assert!(matches!(
        s.btp.bootstrap(&s.eval, &s.keys, &sparse),
        Err(Error::InvalidArgument { .. })
    ));
    // Scale out of range: above q_0 / 2^12, or not positive.
    let mut big = ct.clone();
    big.set_scale(2f64.powi(50));
    let e = s.btp.bootstrap(&s.eval, &s.keys, &big).unwrap_err();
    assert!(e.to_string().contains("out of range"), "{e}");
    let mut zero = ct.clone();
    zero.set_scale(0.0);
    assert!(s.btp.bootstrap(&s.eval, &s.keys, &zero).is_err());
    // Degree 2.
    let sq = s
        .eval
        .mul_no_relin(&s.encrypt(&v, 512, 1), &s.encrypt(&v, 512, 1))
        .unwrap();
    assert!(matches!(
        s.btp.bootstrap(&s.eval, &s.keys, &sq),
        Err(Error::Degree { .. })
    ));
    // Missing keys: no rotation keys, no relinearisation key.
    let mut kg = KeyGenerator::new_deterministic_for_tests(s.params.clone(), [7u8; 32]);
    let sk = kg.gen_secret_key();
    let partial = kg.gen_evaluation_keys(&sk, true, &s.btp.rotation_steps()[1..], true);
    let eval = Evaluator::new(s.params.clone(), partial);
    let e = s.btp.bootstrap(&eval, &s.keys, &ct).unwrap_err();
    assert!(matches!(e, Error::MissingKey { .. }), "{e}");
    let no_relin = kg.gen_evaluation_keys(&sk, false, &s.btp.rotation_steps(), true);
    let eval = Evaluator::new(s.params.clone(), no_relin);
    assert!(matches!(
        s.btp.bootstrap(&eval, &s.keys, &ct),
        Err(Error::MissingKey { .. })
    ));
    // Every key present but stopping below the top of the chain (where ModRaise lands).
    let low = kg.gen_evaluation_keys_up_to(&sk, true, &s.btp.rotation_steps(), true, 3);
    let eval = Evaluator::new(s.params.clone(), low);
    match s.btp.bootstrap(&eval, &s.keys, &ct) {
        Err(Error::MissingKey { what, .. }) => assert!(what.contains("reaching level"), "{what}"),
        other => panic!("expected a missing-key error, got {other:?}"),
    }
    // Each key exists only up to the level it is used at: SlotsToCoeffs' own rotation keys
    // and EvalMod's relinearisation key stop below the top, the generated keys stop exactly
    // where the plan says, and a key one level short of its use is refused.
    let plan = s.btp.key_plan().clone();
    let top = s.params.max_level();
    assert!(plan.relin < top && plan.conjugate < top, "{plan:?}");
    let (low_step, low_level) = *plan
        .rotations
        .iter()
        .find(|&&(_, l)| l < top)
        .expect("some rotation key below the top");
    let exact = plan.generate(&mut kg, &sk);
    for &(step, level) in &plan.rotations {
        let g = s.params.ring().galois_element_for_rotation(step);
        assert_eq!(
            exact.galois_key(g).unwrap().max_level(),
            level,
            "step {step}"
        );
    }
    assert_eq!(exact.relin.as_ref().unwrap().key().max_level(), plan.relin);
    let mut short = plan.clone();
    short
        .rotations
        .iter_mut()
        .filter(|(s, _)| *s == low_step)
        .for_each(|(_, l)| *l -= 1);
    let eval = Evaluator::new(s.params.clone(), short.generate(&mut kg, &sk));
    match s.btp.bootstrap(&eval, &s.keys, &ct) {
        Err(Error::MissingKey { what, .. }) => assert!(
            what.contains(&format!("step {low_step} reaching level {low_level}")),
            "{what}"
        ),
        other => panic!("expected a missing-key error, got {other:?}"),
    }
    // Encapsulation keys of other parameters.
    let other = Params::new_insecure(ParamsLiteral {
        log_n: 11,
        ..s.params.literal().clone()
    })
    .unwrap();
    let mut kg2 = KeyGenerator::new_deterministic_for_tests(other.clone(), [1u8; 32]);
    let sk2 = kg2.gen_secret_key();
    let keys2 = kg2.gen_encapsulation_keys(&sk2).unwrap();
    assert!(matches!(
        s.btp.bootstrap(&s.eval, &keys2, &ct),
        Err(Error::ParameterMismatch { .. })
    ));
    // Bad configurations.
    let mut cfg = BootstrapConfig::new(512);
    cfg.cts_levels = 10; // 9 + 9 + 3 levels > 17
    assert!(matches!(
        Bootstrapper::new(s.params.clone(), cfg),
        Err(Error::InvalidParameters(_))
    ));
    assert!(Bootstrapper::new(s.params.clone(), BootstrapConfig::new(1000)).is_err());
    assert!(Bootstrapper::new(s.params.clone(), BootstrapConfig::new(1024)).is_err());
    let mut cfg = BootstrapConfig::new(4);
    cfg.cts_levels = 3;
    assert!(
        Bootstrapper::new(s.params.clone(), cfg).is_err(),
        "4 slots have 2 FFT stages"
    );
}

#[test]
fn key_report() {
    let s = setup(10, 512);
    // Every key the bootstrapper names is generated, and the planned size is exact.
    let (ek, keys, low_body) = {
        let mut kg = KeyGenerator::new_deterministic_for_tests(s.params.clone(), [9u8; 32]);
        let sk = kg.gen_secret_key();
        let (ek, keys) = s.btp.gen_keys(&mut kg, &sk).unwrap();
        // A well-formed switching-key body that stops at level 1.
        let low = kg.gen_evaluation_keys_up_to(&sk, true, &[], false, 1);
        let low_body = low.relin.unwrap().key().to_bytes()[serialization::HEADER_LEN..].to_vec();
        (ek, keys, low_body)
    };
    assert_eq!(ek.galois.len(), s.btp.rotation_steps().len() + 1);
    // The client's cheap listing (no matrix encoded) names the same steps, full and sparse.
    for slots in [512, 64] {
        let cfg = BootstrapConfig::new(slots);
        let plan = Bootstrapper::key_plan_for(&s.params, &cfg).unwrap();
        let btp = Bootstrapper::new(s.params.clone(), cfg).unwrap();
        assert_eq!(&plan, btp.key_plan(), "{slots} slots");
    }
    assert_eq!(
        ek.serialized_size() + keys.serialized_size(),
        s.btp.key_bytes()
    );
    // The dense-to-sparse key lives over q_0 and one special prime only.
    let small = keys.dense_to_sparse().params();
    assert_eq!(small.max_level(), 0);
    assert_eq!(small.num_p(), 1);
    assert_eq!(small.ring().q(0).value(), s.params.ring().q(0).value());
    assert!(small.log_qp() < 122.0, "{}", small.log_qp());
    // Seeded serialization: round trip, exact size, refusals.
    let bytes = keys.to_bytes();
    assert_eq!(bytes.len(), keys.serialized_size());
    // A sparse-to-dense key stopping below the top is refused (ModRaise lands at the top).
    let s2d_at = bytes.len() - keys.sparse_to_dense().to_bytes().len() + serialization::HEADER_LEN;
    let mut low = bytes[..s2d_at].to_vec();
    low.extend_from_slice(&low_body);
    let e = EncapsulationKeys::from_bytes(&s.params, &low).unwrap_err();
    assert!(e.to_string().contains("top level"), "{e}");
    let back = EncapsulationKeys::from_bytes(&s.params, &bytes).unwrap();
    assert_eq!(back.to_bytes(), bytes);
    let ct = s.encrypt(&values(512, 4), 512, 0);
    let eval = Evaluator::new(s.params.clone(), ek);
    let out = s.btp.bootstrap(&eval, &back, &ct).unwrap();
    assert_eq!(out.level(), s.btp.output_level());
    assert!(EncapsulationKeys::from_bytes(&s.params, &bytes[..bytes.len() - 1]).is_err());
    let mut longer = bytes.clone();
    longer.push(0);
    assert!(EncapsulationKeys::from_bytes(&s.params, &longer).is_err());
    let other = Params::new_insecure(ParamsLiteral {
        log_scale: 39,
        ..s.params.literal().clone()
    })
    .unwrap();
    assert!(EncapsulationKeys::from_bytes(&other, &bytes).is_err());
}

/// The `boot16` preset (N = 2^16, 128-bit secure): full slots and 2^12 slots, uniform inputs
/// in [-1, 1], against the precision measured. About three minutes; run by `.ci/run` with
/// the other `--ignored` tests.
#[test]
#[ignore]
fn boot16_full_and_sparse() {
    let params = Params::preset("boot16").unwrap();
    assert!(params.log_qp() <= 1747.0);
    let mut kg = KeyGenerator::new(params.clone());
    let sk = kg.gen_secret_key();
    let enc = Encoder::new(params.clone());
    for slots in [params.max_slots(), 1 << 12] {
        let btp = Bootstrapper::new(params.clone(), BootstrapConfig::new(slots)).unwrap();
        assert_eq!(
            btp.output_level(),
            10,
            "10 levels of 2^40 left (a training refresh needs 10)"
        );
        let (ek, keys) = btp.gen_keys(&mut kg, &sk).unwrap();
        let eval = Evaluator::new(params.clone(), ek);
        let v: Vec<Complex64> = values(slots, 3);
        let pt = enc
            .encode_complex(&v, 0, params.default_scale(), slots)
            .unwrap();
        let ct = encrypt_secret(&sk, &pt).unwrap();
        let out = btp.bootstrap(&eval, &keys, &ct).unwrap();
        assert_eq!(out.level(), btp.output_level());
        assert_eq!(out.scale(), params.default_scale());
        let got = enc.decode_complex(&decrypt(&sk, &out).unwrap()).unwrap();
        let st = precision_stats(&v, &got);
        eprintln!("boot16, {slots} slots: {st:?}");
        // Measured: full slots 24.1 / 22.3 bits, 2^12 slots 26.6 / 24.8 (the target:
        // 24 / 16); a margin for the encryption noise.
        let (mean, min) = if slots == params.max_slots() {
            (23.8, 21.5)
        } else {
            (25.5, 23.5)
        };
        assert!(
            st.mean_bits >= mean && st.min_bits >= min,
            "{slots} slots: {st:?}"
        );
    }
}
