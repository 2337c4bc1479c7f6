//! Every evaluator operation against plaintext arithmetic, with asserted precision bounds.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::*;
use volley_ckks::*;

fn c(re: f64) -> Complex64 {
    Complex64::new(re, 0.0)
}

#[test]
fn encode_decode_round_trip_all_slot_counts() {
    let t = ctx(10, 2, 1, &[]);
    for slots in [1usize, 2, 8, 64, 512] {
        let v = values(slots, slots as u64);
        let pt = t.enc.encode_complex(&v, 2, 2f64.powi(40), slots).unwrap();
        let got = t.enc.decode_complex(&pt).unwrap();
        let s = precision_stats(&v, &got);
        assert!(s.min_bits > 30.0, "slots {slots}: {s:?}");
    }
    // Real encode at level 0 and a huge scale (coefficients beyond 64 bits).
    let v: Vec<f64> = (0..512).map(|i| i as f64 / 512.0 - 0.5).collect();
    let pt = t.enc.encode(&v, 2, 2f64.powi(100), 512).unwrap();
    let got = t.enc.decode(&pt).unwrap();
    assert!(v.iter().zip(&got).all(|(a, b)| (a - b).abs() < 1e-12));
}

#[test]
fn encrypt_decrypt_public_and_secret() {
    let t = ctx(10, 2, 1, &[]);
    let v = values(512, 1);
    t.assert_close(&t.encrypt(&v), &v, 25.0, "public-key encryption");
    let ct = t.encrypt_sk(&v, 512);
    assert!(ct.seed().is_some());
    t.assert_close(&ct, &v, 25.0, "secret-key encryption");
    // Sparse packing.
    let v8 = values(8, 2);
    t.assert_close(&t.encrypt_sk(&v8, 8), &v8, 25.0, "sparse 8 slots");
}

#[test]
fn additive_operations() {
    let t = ctx(10, 2, 1, &[]);
    let (a, b) = (values(512, 3), values(512, 4));
    let (ca, cb) = (t.encrypt(&a), t.encrypt(&b));
    let sum: Vec<_> = a.iter().zip(&b).map(|(x, y)| x + y).collect();
    let diff: Vec<_> = a.iter().zip(&b).map(|(x, y)| x - y).collect();
    t.assert_close(&t.eval.add(&ca, &cb).unwrap(), &sum, 24.0, "add");
    t.assert_close(&t.eval.sub(&ca, &cb).unwrap(), &diff, 24.0, "sub");
    let neg: Vec<_> = a.iter().map(|x| -x).collect();
    t.assert_close(&t.eval.neg(&ca).unwrap(), &neg, 24.0, "neg");
    let pt = t.enc.encode_complex(&b, 2, ca.scale(), 512).unwrap();
    t.assert_close(
        &t.eval.add_plain(&ca, &pt).unwrap(),
        &sum,
        24.0,
        "add_plain",
    );
    t.assert_close(
        &t.eval.sub_plain(&ca, &pt).unwrap(),
        &diff,
        24.0,
        "sub_plain",
    );
    let plus: Vec<_> = a.iter().map(|x| x + 0.75).collect();
    t.assert_close(
        &t.eval.add_const(&ca, 0.75).unwrap(),
        &plus,
        24.0,
        "add_const real",
    );
    let mut cc = ca.clone();
    t.eval
        .add_const_assign(&mut cc, Complex64::new(0.25, -0.5))
        .unwrap();
    let plus_c: Vec<_> = a.iter().map(|x| x + Complex64::new(0.25, -0.5)).collect();
    t.assert_close(&cc, &plus_c, 24.0, "add_const complex");
    // Different levels: the higher operand is dropped.
    let low = t.eval.drop_to_level(&cb, 1).unwrap();
    let s2 = t.eval.add(&ca, &low).unwrap();
    assert_eq!(s2.level(), 1);
    t.assert_close(&s2, &sum, 24.0, "add across levels");
}

#[test]
fn multiplicative_operations() {
    let t = ctx(11, 3, 2, &[]);
    let slots = 1024;
    let (a, b) = (values(slots, 5), values(slots, 6));
    let (ca, cb) = (t.encrypt(&a), t.encrypt(&b));
    let prod: Vec<_> = a.iter().zip(&b).map(|(x, y)| x * y).collect();
    let m = t.eval.mul_relin_rescale(&ca, &cb).unwrap();
    assert_eq!(m.level(), 2);
    t.assert_close(&m, &prod, 20.0, "mul_relin_rescale");
    let sq: Vec<_> = a.iter().map(|x| x * x).collect();
    let mut s = t.eval.square(&ca).unwrap();
    t.eval.rescale_assign(&mut s).unwrap();
    t.assert_close(&s, &sq, 20.0, "square");
    // Degree-2 then relinearise later.
    let mut d2 = t.eval.mul_no_relin(&ca, &cb).unwrap();
    assert_eq!(d2.degree(), 2);
    t.assert_close(&d2, &prod, 20.0, "degree-2 decryption");
    t.eval.relinearize_assign(&mut d2).unwrap();
    t.eval.rescale_assign(&mut d2).unwrap();
    t.assert_close(&d2, &prod, 20.0, "relinearize");
    // Plaintext multiply.
    let pt = t
        .enc
        .encode_complex(&b, 3, t.params.ring().q(3).value() as f64, slots)
        .unwrap();
    let mut mp = t.eval.mul_plain(&ca, &pt).unwrap();
    t.eval.rescale_assign(&mut mp).unwrap();
    assert!((mp.scale() / ca.scale() - 1.0).abs() < 1e-12);
    t.assert_close(&mp, &prod, 20.0, "mul_plain");
    // Constants.
    let k: Vec<_> = a.iter().map(|x| x * 1.7).collect();
    let mc = t.eval.mul_const(&ca, 1.7).unwrap();
    assert_eq!(mc.level(), 2);
    t.assert_close(&mc, &k, 20.0, "mul_const");
    let mut mi = ca.clone();
    t.eval.mul_integer_assign(&mut mi, -3).unwrap();
    let k3: Vec<_> = a.iter().map(|x| x * -3.0).collect();
    assert_eq!(mi.level(), 3);
    t.assert_close(&mi, &k3, 20.0, "mul_integer");
    let mut mcc = ca.clone();
    let z = Complex64::new(0.5, 2.0);
    t.eval.mul_const_assign(&mut mcc, z).unwrap();
    let kz: Vec<_> = a.iter().map(|x| x * z).collect();
    t.assert_close(&mcc, &kz, 20.0, "mul_const complex");
    // Landing on a requested scale.
    let mut ms = ca.clone();
    t.eval
        .mul_const_to_scale_assign(&mut ms, c(0.5), 2f64.powi(38))
        .unwrap();
    assert_eq!(ms.scale(), 2f64.powi(38));
    let half: Vec<_> = a.iter().map(|x| x * 0.5).collect();
    t.assert_close(&ms, &half, 20.0, "mul_const_to_scale");
    // Depth 3: a*b*a*b.
    let m2 = t.eval.mul_relin_rescale(&m, &m).unwrap();
    let m3 = t
        .eval
        .mul_relin_rescale(&m2, &t.eval.drop_to_level(&ca, 1).unwrap())
        .unwrap();
    let exp: Vec<_> = prod.iter().zip(&a).map(|(p, x)| p * p * x).collect();
    assert_eq!(m3.level(), 0);
    t.assert_close(&m3, &exp, 16.0, "depth 3");
}

#[test]
fn rotations_conjugation_hoisting() {
    let steps = [1i64, 2, 5, -1, -7, 64, 128, 256, -128];
    let t = ctx(10, 2, 2, &steps);
    let slots = 512;
    let a = values(slots, 7);
    let ca = t.encrypt(&a);
    let rot = |k: i64| -> Vec<Complex64> {
        (0..slots)
            .map(|i| a[(i as i64 + k).rem_euclid(slots as i64) as usize])
            .collect()
    };
    for &k in &steps {
        t.assert_close(
            &t.eval.rotate(&ca, k).unwrap(),
            &rot(k),
            22.0,
            &format!("rotate {k}"),
        );
    }
    let conj: Vec<_> = a.iter().map(|x| x.conj()).collect();
    t.assert_close(&t.eval.conjugate(&ca).unwrap(), &conj, 22.0, "conjugate");
    let hoisted = t.eval.rotate_hoisted(&ca, &steps).unwrap();
    for (ct, &k) in hoisted.iter().zip(&steps) {
        t.assert_close(ct, &rot(k), 22.0, &format!("hoisted rotate {k}"));
    }
    // Rotation at a lower level.
    let low = t.eval.drop_to_level(&ca, 0).unwrap();
    t.assert_close(
        &t.eval.rotate(&low, 5).unwrap(),
        &rot(5),
        20.0,
        "rotate at level 0",
    );
    // Inner sum over blocks of 64 (stride 64, 8 blocks) and replicate.
    let sum = t.eval.inner_sum(&ca, 64, 4).unwrap();
    let exp: Vec<_> = (0..slots)
        .map(|i| (0..4).map(|k| a[(i + 64 * k) % slots]).sum())
        .collect();
    t.assert_close(&sum, &exp, 20.0, "inner_sum");
    let rep = t.eval.replicate(&ca, 128, 2).unwrap();
    let exp: Vec<_> = (0..slots)
        .map(|i| a[i] + a[(i + slots - 128) % slots])
        .collect();
    t.assert_close(&rep, &exp, 20.0, "replicate");
}

/// With fewer slots than N/2, a rotation uses the key generated for its own step (steps are
/// reduced modulo N/2 on both sides, one rule): `rotate(ct, -1)` at 2^6 slots of an N = 2^10
/// ring used to ask for the key of step 63, which nobody generated.
#[test]
fn sparse_slot_rotations_use_their_own_keys() {
    let t = ctx(10, 2, 2, &[-1, 3, -64]);
    let slots = 64;
    let a = values(slots, 5);
    let ct = t.encrypt_sk(&a, slots);
    let rot = |k: i64| -> Vec<Complex64> {
        (0..slots)
            .map(|i| a[(i as i64 + k).rem_euclid(slots as i64) as usize])
            .collect()
    };
    for k in [-1i64, 3] {
        let r = t
            .eval
            .rotate(&ct, k)
            .unwrap_or_else(|e| panic!("rotate {k}: {e}"));
        t.assert_close(&r, &rot(k), 22.0, &format!("rotate {k} at {slots} slots"));
    }
    let hoisted = t.eval.rotate_hoisted(&ct, &[-1, 3]).unwrap();
    t.assert_close(&hoisted[0], &rot(-1), 22.0, "hoisted -1");
    // A multiple of the slot count is no rotation at all: no key needed.
    for k in [64i64, -128, 0] {
        t.assert_close(
            &t.eval.rotate(&ct, k).unwrap(),
            &a,
            22.0,
            &format!("rotate {k}"),
        );
    }
    // The same rotation spelled with another step is another Galois element, whose key was
    // not generated: a typed error naming the step.
    let e = t.eval.rotate(&ct, 63).unwrap_err();
    assert!(matches!(e, Error::MissingKey { .. }), "{e}");
    assert!(e.to_string().contains("step 63"), "{e}");
}

#[test]
fn monomial_and_errors() {
    let t = ctx(10, 2, 1, &[1]);
    let a = values(512, 8);
    let ca = t.encrypt(&a);
    // X^{N/2} multiplies every slot by i.
    let m = t.eval.mul_by_monomial(&ca, 512).unwrap();
    let exp: Vec<_> = a.iter().map(|x| x * Complex64::new(0.0, 1.0)).collect();
    t.assert_close(&m, &exp, 24.0, "monomial X^(N/2)");
    assert!(matches!(
        t.eval.rotate(&ca, 3),
        Err(Error::MissingKey { .. })
    ));
    let low = t.eval.mul_const(&ca, 2.0).unwrap();
    let mut odd = low.clone();
    odd.set_scale(low.scale() * 1.5);
    assert!(matches!(
        t.eval.add(&low, &odd),
        Err(Error::ScaleMismatch { .. })
    ));
    let other = ctx(10, 3, 1, &[]);
    assert!(matches!(
        t.eval.add(&ca, &other.encrypt(&a)),
        Err(Error::ParameterMismatch { .. })
    ));
    let d0 = t.eval.drop_to_level(&ca, 0).unwrap();
    assert!(matches!(
        t.eval.rescale(&d0),
        Err(Error::InvalidLevel { .. })
    ));
    let no_keys = Evaluator::new(t.params.clone(), EvaluationKeys::default());
    assert!(matches!(
        no_keys.mul_relin(&ca, &ca),
        Err(Error::MissingKey { .. })
    ));
    assert!(matches!(
        t.enc.encode(&vec![0.0; 513], 0, 1e9, 512),
        Err(Error::TooManyValues { .. })
    ));
    assert!(t.enc.encode(&[f64::NAN], 0, 1e9, 512).is_err());
}

/// Keys made for a level below the top serve every level up to theirs, refuse (typed) the
/// levels above, serialize at their own smaller size, and `EvaluationKeys::merge` keeps the
/// key reaching higher.
#[test]
fn keys_up_to_a_level() {
    use volley_ckks::client::KeyGenerator;
    let t = ctx(10, 5, 3, &[]);
    let mut kg = KeyGenerator::new_deterministic_for_tests(t.params.clone(), [7u8; 32]);
    let low = kg.gen_evaluation_keys_up_to(&t.sk, true, &[1], true, 2);
    assert_eq!(low.relin.as_ref().unwrap().key().max_level(), 2);
    let eval = Evaluator::new(t.params.clone(), low.clone());
    let v = values(512, 9);
    let ct = t.encrypt(&v);
    let at2 = eval.drop_to_level(&ct, 2).unwrap();
    let rotated: Vec<_> = (0..512).map(|i| v[(i + 1) % 512]).collect();
    t.assert_close(
        &eval.rotate(&at2, 1).unwrap(),
        &rotated,
        24.0,
        "rotate at level 2",
    );
    let squares: Vec<_> = v.iter().map(|x| x * x).collect();
    t.assert_close(
        &eval.mul_relin(&at2, &at2).unwrap(),
        &squares,
        20.0,
        "relin at 2",
    );
    let conj: Vec<_> = v.iter().map(|x| x.conj()).collect();
    t.assert_close(
        &eval.conjugate(&at2).unwrap(),
        &conj,
        24.0,
        "conjugate at 2",
    );
    for r in [
        eval.rotate(&ct, 1).map(|_| ()),
        eval.mul_relin(&ct, &ct).map(|_| ()),
        eval.conjugate(&ct).map(|_| ()),
        eval.rotate_hoisted(&ct, &[1]).map(|_| ()),
    ] {
        match r {
            Err(Error::MissingKey { what, .. }) => {
                assert!(
                    what.contains("at level 5") && what.contains("reaches level 2"),
                    "{what}"
                )
            }
            other => panic!("expected a missing-key error, got {other:?}"),
        }
    }
    // Serialization keeps the level; the low key is smaller than a full one.
    let bytes = low.to_bytes();
    let back = EvaluationKeys::from_bytes(&t.params, &bytes).unwrap();
    assert_eq!(back.to_bytes(), bytes);
    assert_eq!(bytes.len(), low.serialized_size());
    let full = kg.gen_evaluation_keys(&t.sk, true, &[1], true);
    assert!(
        bytes.len() * 3 < full.serialized_size() * 2,
        "{} vs {}",
        bytes.len(),
        full.serialized_size()
    );
    // A forged level above the chain is refused.
    let rk = low.relin.as_ref().unwrap().to_bytes();
    let mut forged = rk.clone();
    forged[serialization::HEADER_LEN] = 9;
    assert!(RelinearizationKey::from_bytes(&t.params, &forged).is_err());
    // Merge keeps the key reaching higher, whichever side it comes from.
    let mut merged = low.clone();
    merged.merge(full.clone());
    assert_eq!(merged.relin.as_ref().unwrap().key().max_level(), 5);
    let mut merged2 = full;
    merged2.merge(low);
    assert!(merged2.galois.values().all(|k| k.max_level() == 5));
}
