//! Circuits: polynomial evaluation (power and Chebyshev bases, exact scale, optimal depth)
//! and linear transformations (BSGS with hoisting) against plaintext references.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::*;
use std::collections::BTreeSet;
use volley_ckks::circuits::linear_transform::apply_plain;
use volley_ckks::circuits::{LinearTransform, Polynomial, PolynomialEvaluator};
use volley_ckks::*;

fn c(re: f64) -> Complex64 {
    Complex64::new(re, 0.0)
}

/// Real inputs spread over [lo, hi].
fn reals(n: usize, seed: u64, lo: f64, hi: f64) -> Vec<Complex64> {
    values(n, seed)
        .iter()
        .map(|v| c(lo + (v.re + 1.0) * 0.5 * (hi - lo)))
        .collect()
}

/// Evaluates `p` on `x`, checks the exact scale and the consumed levels, returns the
/// precision in bits of the worst slot (relative to max(1, |p(x)|)).
fn check_poly(t: &Ctx, p: &Polynomial, x: &[Complex64], target: f64, what: &str) -> f64 {
    let ct = t.encrypt(x);
    let out = PolynomialEvaluator::new(&t.eval)
        .evaluate(&ct, p, target)
        .unwrap();
    assert_eq!(
        out.scale(),
        target,
        "{what}: scale must land exactly on the target"
    );
    assert_eq!(
        ct.level() - out.level(),
        p.required_levels(),
        "{what}: consumed levels"
    );
    let got = t.decrypt(&out);
    let worst = x
        .iter()
        .zip(&got)
        .map(|(&xi, &g)| {
            let want = p.evaluate_plain(xi);
            (want - g).norm() / want.norm().max(1.0)
        })
        .fold(0.0, f64::max);
    -worst.log2()
}

#[test]
fn monomial_sigmoid_approximation() {
    // The degree-3 sigmoid approximation used in logistic-regression training.
    let t = ctx(10, 3, 2, &[]);
    let p =
        Polynomial::monomial(vec![0.5, 0.10679534503216294, 0.0, -0.00038503259805075]).unwrap();
    assert_eq!(p.required_levels(), 2);
    let x = reals(512, 1, -8.0, 8.0);
    for target in [
        t.params.default_scale(),
        2f64.powi(38) * 1.2345,
        2f64.powi(45),
    ] {
        // The quotient c_3 x is evaluated at about the target scale and then multiplied by
        // x^2 <= 64: its rescaling noise bounds the precision (as in any BSGS evaluation).
        let bits = check_poly(&t, &p, &x, target, "sigmoid3");
        eprintln!("sigmoid3 at scale 2^{:.2}: {bits:.1} bits", target.log2());
        assert!(
            bits > 22.0,
            "sigmoid3 at scale 2^{:.2}: {bits:.1} bits",
            target.log2()
        );
    }
    // Within 0.18 of the true sigmoid on [-8, 8] (the approximation error itself peaks at 0.170).
    let out = p
        .evaluate(&t.eval, &t.encrypt(&x), t.params.default_scale())
        .unwrap();
    let got = t.decrypt(&out);
    for (xi, g) in x.iter().zip(&got) {
        assert!((g.re - 1.0 / (1.0 + (-xi.re).exp())).abs() < 0.18);
    }
}

#[test]
fn chebyshev_interpolants() {
    let t = ctx(10, 7, 4, &[]);
    let sigmoid = |x: f64| 1.0 / (1.0 + (-x).exp());
    let x = reals(512, 2, -8.0, 8.0);
    let scale = t.params.default_scale();
    for (degree, levels, min_bits, approx) in [(15, 5, 26.0, 2e-3), (31, 6, 26.0, 1e-5)] {
        let p = Polynomial::chebyshev_interpolate(sigmoid, degree, -8.0, 8.0).unwrap();
        assert_eq!(
            p.required_levels(),
            levels,
            "degree {degree}: 1 + ceil(log2({degree} + 1))"
        );
        let bits = check_poly(&t, &p, &x, scale, "sigmoid");
        assert!(bits > min_bits, "sigmoid degree {degree}: {bits:.1} bits");
        eprintln!(
            "sigmoid degree {degree}: {levels} levels, {bits:.1} bits against the interpolant"
        );
        // And the interpolant approximates the function.
        assert!(
            x.iter()
                .all(|xi| (p.evaluate_plain(*xi).re - sigmoid(xi.re)).abs() < approx)
        );
    }
    // exp on [-8, 8] (values up to e^8; precision relative to the value).
    let p = Polynomial::chebyshev_interpolate(f64::exp, 31, -8.0, 8.0).unwrap();
    let bits = check_poly(&t, &p, &x, scale, "exp");
    eprintln!("exp degree 31 on [-8, 8]: {bits:.1} bits relative");
    assert!(bits > 20.0, "exp: {bits:.1} bits");
    // exp on the standard interval: no change of variable, depth exactly ceil(log2(16)).
    let p = Polynomial::chebyshev_interpolate(f64::exp, 15, -1.0, 1.0).unwrap();
    assert_eq!(p.required_levels(), 4);
    let x1 = reals(512, 3, -1.0, 1.0);
    let bits = check_poly(&t, &p, &x1, 2f64.powi(41) / 3.0, "exp [-1, 1]");
    eprintln!("exp degree 15 on [-1, 1]: {bits:.1} bits");
    assert!(bits > 22.0, "exp on [-1, 1]: {bits:.1} bits");
}

#[test]
fn every_degree_has_optimal_depth_and_exact_scale() {
    // Small ring, random coefficients decaying like a smooth function's.
    let t = ctx(6, 7, 4, &[]);
    let coeffs = |d: usize, seed: u64| -> Vec<f64> {
        values(d + 1, seed)
            .iter()
            .enumerate()
            .map(|(i, v)| v.re / (1.0 + i as f64))
            .collect()
    };
    let x = reals(32, 4, -1.0, 1.0);
    let odd_scale = 2f64.powi(40) * 0.9876543;
    let mut worst = f64::INFINITY;
    for d in 1..=40usize {
        let mono = Polynomial::monomial(coeffs(d, d as u64)).unwrap();
        let cheb = Polynomial::chebyshev(coeffs(d, 100 + d as u64), -1.0, 1.0).unwrap();
        let shifted = Polynomial::chebyshev(coeffs(d, 200 + d as u64), -3.0, 5.0).unwrap();
        assert_eq!(mono.required_levels(), Polynomial::depth(d));
        assert_eq!(
            Polynomial::depth(d),
            (usize::BITS - d.leading_zeros()) as usize
        );
        assert_eq!(shifted.required_levels(), Polynomial::depth(d) + 1);
        let xs = reals(32, 5, -3.0, 5.0);
        for (p, xv, name) in [
            (&mono, &x, "monomial"),
            (&cheb, &x, "chebyshev"),
            (&shifted, &xs, "chebyshev [-3, 5]"),
        ] {
            if p.required_levels() > 7 {
                continue;
            }
            let bits = check_poly(&t, p, xv, odd_scale, name);
            worst = worst.min(bits);
            assert!(bits > 17.0, "{name} degree {d}: {bits:.1} bits");
        }
    }
    eprintln!("degrees 1..=40, three bases: worst {worst:.1} bits");
    // Sparse (odd) polynomials skip the unused powers and keep the depth.
    let odd = Polynomial::monomial(vec![0.0, 1.5, 0.0, -0.5, 0.0, 0.25, 0.0, -0.125]).unwrap();
    assert!(check_poly(&t, &odd, &x, odd_scale, "odd") > 20.0);
}

#[test]
fn complex_coefficients_and_inputs() {
    let t = ctx(10, 4, 3, &[]);
    let x = values(512, 6);
    let p = Polynomial::monomial_complex(vec![
        c(0.25),
        Complex64::new(0.5, -0.25),
        Complex64::new(0.0, 0.3),
        c(-0.2),
        Complex64::new(0.1, 0.1),
    ])
    .unwrap();
    assert!(check_poly(&t, &p, &x, t.params.default_scale(), "complex monomial") > 20.0);
    let q = Polynomial::chebyshev_complex(
        vec![
            c(0.1),
            Complex64::new(0.2, 0.5),
            c(0.3),
            Complex64::new(-0.4, 0.1),
        ],
        -1.0,
        1.0,
    )
    .unwrap();
    assert!(check_poly(&t, &q, &x, t.params.default_scale(), "complex chebyshev") > 20.0);
}

#[test]
fn polynomial_errors() {
    let t = ctx(10, 3, 1, &[]);
    let ct = t.encrypt(&values(512, 7));
    let deep = Polynomial::monomial(vec![0.0; 9].into_iter().chain([1.0]).collect()).unwrap();
    assert_eq!(deep.required_levels(), 4);
    assert!(matches!(
        deep.evaluate(&t.eval, &ct, 1e12),
        Err(Error::InvalidLevel { .. })
    ));
    let constant = Polynomial::monomial(vec![3.0, 0.0]).unwrap();
    assert!(matches!(
        constant.evaluate(&t.eval, &ct, 1e12),
        Err(Error::InvalidArgument { .. })
    ));
    let p = Polynomial::monomial(vec![1.0, 1.0, 1.0]).unwrap();
    assert!(matches!(
        p.evaluate(&t.eval, &ct, -1.0),
        Err(Error::InvalidArgument { .. })
    ));
    let no_relin = Evaluator::new(t.params.clone(), EvaluationKeys::default());
    assert!(matches!(
        p.evaluate(&no_relin, &ct, 1e12),
        Err(Error::MissingKey { .. })
    ));
    assert!(p.rotation_steps().is_empty());
}

fn random_matrix(n: usize, seed: u64) -> Vec<Vec<Complex64>> {
    (0..n)
        .map(|i| {
            values(n, seed * 1000 + i as u64)
                .iter()
                .map(|v| v / (n as f64).sqrt())
                .collect()
        })
        .collect()
}

/// Checks the transform with keys for exactly its rotation steps (with and without double
/// hoisting), and that each key is needed. Returns the worst precision of the two.
fn check_transform(log_n: u32, lt: &LinearTransform, matrix: &[Vec<Complex64>], what: &str) -> f64 {
    let steps = lt.rotation_steps();
    let t = ctx(log_n, 2, 2, &steps);
    let n = lt.slots();
    let v = values(n, 11);
    let ct = t.encrypt_sk(&v, n);
    let want = apply_plain(matrix, &v);
    let reference = lt.evaluate_plain(&v);
    assert!(
        precision_stats(&want, &reference).min_bits > 40.0,
        "{what}: evaluate_plain"
    );
    // Key switches: one per nonzero baby step and one per nonzero giant step, whatever the
    // keys (the giant steps are chained, so there may be fewer keys than key switches).
    let g = lt.baby_steps();
    let babies: BTreeSet<usize> = lt
        .diagonals()
        .keys()
        .map(|k| k % g)
        .filter(|&b| b != 0)
        .collect();
    let giants = lt
        .diagonals()
        .keys()
        .map(|k| k - k % g)
        .filter(|&j| j != 0)
        .collect::<BTreeSet<usize>>()
        .len() as u64;
    let mut worst = f64::INFINITY;
    for double in [false, true] {
        let lt = lt.clone().with_double_hoisting(double);
        let encoded = lt.encode(&t.enc, ct.level()).unwrap();
        assert_eq!(encoded.double_hoisting(), double);
        t.eval.reset_op_counts();
        let out = encoded.evaluate(&t.eval, &ct).unwrap();
        let counts = t.eval.op_counts();
        assert_eq!(out.scale(), ct.scale(), "{what}: back to the input scale");
        assert_eq!(ct.level() - out.level(), lt.depth());
        // Double hoisting's key switches in Q*P go through the evaluator too, so they are
        // counted.
        assert_eq!(
            counts.rotations,
            babies.len() as u64 + giants,
            "{what}: one rotation per baby and per giant step"
        );
        assert!(steps.len() as u64 <= counts.rotations, "{what}: keys");
        if double {
            // One decomposition for all baby steps and one per giant step.
            assert_eq!(
                counts.decompositions,
                u64::from(!babies.is_empty()) + giants,
                "{what}: decompositions"
            );
        }
        let stats = precision_stats(&want, &t.decrypt(&out)[..n]);
        worst = worst.min(stats.min_bits);
    }
    // Every key is needed: dropping any one of them fails with MissingKey.
    if let Some(&drop) = steps.last() {
        let fewer: Vec<i64> = steps.iter().copied().filter(|&s| s != drop).collect();
        let t2 = ctx(log_n, 2, 2, &fewer);
        let ct2 = t2.encrypt_sk(&v, n);
        for double in [false, true] {
            let r = lt
                .clone()
                .with_double_hoisting(double)
                .evaluate(&t2.eval, &ct2);
            assert!(
                matches!(r, Err(Error::MissingKey { .. })),
                "{what}: step {drop} unused?"
            );
        }
    }
    worst
}

#[test]
fn dense_linear_transform_baby_step_settings() {
    let n = 64;
    let matrix = random_matrix(n, 1);
    let lt = LinearTransform::from_matrix(&matrix).unwrap();
    assert_eq!(lt.diagonals().len(), n);
    assert_eq!(lt.baby_steps(), 8, "sqrt(64)");
    for g in [8, 1, 4, 16, 64] {
        let lt = lt.clone().with_baby_steps(g).unwrap();
        let steps = lt.rotation_steps();
        // The baby steps, and the chained giant steps j g: +g, and -g once some j g lies
        // past half the slots (n / g >= 4).
        let (g, n) = (g as i64, n as i64);
        let mut expected: BTreeSet<i64> = (1..g).collect();
        if n / g >= 2 {
            expected.insert(g);
        }
        if n / g >= 4 {
            expected.insert(-g);
        }
        let expected: Vec<i64> = expected.into_iter().collect();
        assert_eq!(steps, expected, "g = {g}");
        let g = g as usize;
        let bits = check_transform(10, &lt, &matrix, &format!("dense 64x64, g = {g}"));
        eprintln!(
            "dense 64x64 g = {g}: {} rotations, {bits:.1} bits",
            steps.len()
        );
        assert!(bits > 20.0, "dense g = {g}: {bits:.1} bits");
    }
}

#[test]
fn banded_linear_transform_full_slots() {
    let n = 512;
    // Diagonals -2..=2 and a far one (k = 100), built from a map.
    let diags: Vec<(i64, Vec<Complex64>)> = [-2i64, -1, 0, 1, 2, 100]
        .iter()
        .map(|&k| {
            (
                k,
                values(n, 50 + k.unsigned_abs())
                    .iter()
                    .map(|v| v * 0.4)
                    .collect(),
            )
        })
        .collect();
    let lt = LinearTransform::from_diagonals(n, diags.clone()).unwrap();
    let mut matrix = vec![vec![c(0.0); n]; n];
    for (k, d) in &diags {
        for i in 0..n {
            matrix[i][(i as i64 + k).rem_euclid(n as i64) as usize] += d[i];
        }
    }
    // The matrix and the diagonal constructions agree.
    assert_eq!(
        LinearTransform::from_matrix(&matrix).unwrap().diagonals(),
        lt.diagonals()
    );
    for g in [lt.baby_steps(), 1, 2] {
        let lt = lt.clone().with_baby_steps(g).unwrap();
        let bits = check_transform(10, &lt, &matrix, &format!("banded, g = {g}"));
        eprintln!(
            "banded 512 g = {g}: steps {:?}, {bits:.1} bits",
            lt.rotation_steps()
        );
        assert!(bits > 20.0, "banded g = {g}: {bits:.1} bits");
    }
    assert!(
        lt.rotation_steps().len() <= 5,
        "default split: {:?}",
        lt.rotation_steps()
    );
}

#[test]
fn linear_transform_encoded_reuse_and_errors() {
    let n = 16;
    let matrix = random_matrix(n, 3);
    let lt = LinearTransform::from_matrix(&matrix).unwrap();
    let t = ctx(10, 3, 2, &lt.rotation_steps());
    let encoded = lt.encode(&t.enc, 2).unwrap();
    assert_eq!(encoded.rotation_steps(), lt.rotation_steps());
    let v = values(n, 12);
    let ct = t.encrypt_sk(&v, n);
    // Input at level 3 is dropped to the encoding level 2; twice the transform: M (M v).
    let once = encoded.evaluate(&t.eval, &ct).unwrap();
    assert_eq!(once.level(), 1);
    let twice = lt.evaluate(&t.eval, &once).unwrap();
    let want = apply_plain(&matrix, &apply_plain(&matrix, &v));
    t.assert_close(&twice, &want, 18.0, "M M v");
    assert_eq!(twice.scale(), ct.scale());
    // Compact diagonals (rebuilt per prime inside the products) give the very same ciphertext.
    let compact = lt
        .clone()
        .with_compact_diagonals(true)
        .encode(&t.enc, 2)
        .unwrap()
        .evaluate(&t.eval, &ct)
        .unwrap();
    assert_eq!(compact.to_bytes(), once.to_bytes());
    // Errors.
    assert!(matches!(
        encoded.evaluate(&t.eval, &t.eval.drop_to_level(&ct, 1).unwrap()),
        Err(Error::InvalidLevel { .. })
    ));
    assert!(matches!(
        lt.evaluate(&t.eval, &t.encrypt_sk(&v, 32)),
        Err(Error::InvalidArgument { .. })
    ));
    assert!(lt.encode(&t.enc, 0).is_err());
    assert!(
        LinearTransform::from_matrix(&[vec![c(1.0); 3], vec![c(1.0); 3], vec![c(1.0); 3]]).is_err()
    );
    assert!(LinearTransform::from_real_matrix(&[vec![1.0, 2.0], vec![3.0]]).is_err());
    assert!(lt.clone().with_baby_steps(0).is_err());
    assert!(lt.clone().with_baby_steps(17).is_err());
    // Diagonals too large to lift modulo P exactly (coefficients beyond q_0 / 2): double
    // hoisting falls back to single hoisting.
    let big = LinearTransform::from_diagonals(n, [(1, vec![c(3.0e5); n])])
        .unwrap()
        .with_double_hoisting(true);
    assert!(!big.encode(&t.enc, 3).unwrap().double_hoisting());
    assert!(
        lt.clone()
            .with_double_hoisting(true)
            .encode(&t.enc, 3)
            .unwrap()
            .double_hoisting()
    );
    let scaled: Vec<Complex64> = (0..n).map(|i| v[(i + 1) % n] * 3.0e5).collect();
    let got = t.decrypt(&big.evaluate(&t.eval, &ct).unwrap());
    let rel: Vec<Complex64> = got[..n].iter().map(|x| x / 3.0e5).collect();
    let want: Vec<Complex64> = scaled.iter().map(|x| x / 3.0e5).collect();
    assert!(precision_stats(&want, &rel).min_bits > 20.0);
    // Identity: one diagonal, no rotation.
    let id = LinearTransform::from_diagonals(n, [(0, vec![c(1.0); n])]).unwrap();
    assert!(id.rotation_steps().is_empty());
    t.assert_close(&id.evaluate(&t.eval, &ct).unwrap(), &v, 22.0, "identity");
}
