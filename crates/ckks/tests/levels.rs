//! Every operation at every level of a deeper chain with several key-switching digits
//! (including a partial last digit), so level-dependent paths are all exercised.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::*;
use volley_ckks::*;

#[test]
fn operations_at_every_level() {
    let t = ctx(11, 12, 4, &[1, -3]);
    let slots = 1024;
    let a = values(slots, 11);
    let b = values(slots, 12);
    let ca = t.encrypt(&a);
    let cb = t.encrypt(&b);
    let prod: Vec<_> = a.iter().zip(&b).map(|(x, y)| x * y).collect();
    let rot1: Vec<_> = (0..slots).map(|i| a[(i + 1) % slots]).collect();
    for level in (1..=12).rev() {
        let xa = t.eval.drop_to_level(&ca, level).unwrap();
        let xb = t.eval.drop_to_level(&cb, level).unwrap();
        t.assert_close(&xa, &a, 20.0, &format!("decrypt at level {level}"));
        let m = t.eval.mul_relin_rescale(&xa, &xb).unwrap();
        t.assert_close(&m, &prod, 18.0, &format!("mul at level {level}"));
        t.assert_close(
            &t.eval.rotate(&xa, 1).unwrap(),
            &rot1,
            18.0,
            &format!("rotate at level {level}"),
        );
        let h = t.eval.rotate_hoisted(&xa, &[1, -3]).unwrap();
        t.assert_close(&h[0], &rot1, 18.0, &format!("hoisted at level {level}"));
        let mut k = xa.clone();
        t.eval
            .mul_const_to_scale_assign(&mut k, Complex64::new(0.3, 0.0), 2f64.powi(40))
            .unwrap();
        let exp: Vec<_> = a.iter().map(|x| x * 0.3).collect();
        t.assert_close(
            &k,
            &exp,
            18.0,
            &format!("mul_const_to_scale at level {level}"),
        );
    }
}
