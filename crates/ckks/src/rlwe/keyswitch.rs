//! Hybrid key switching (Han-Ki 2020; Lattigo's `GadgetProduct`): ModUp each digit of the
//! input to Q_l * P, take the inner product with the key's digits, ModDown by P.
//!
//! The ModUp result ([`Decomposition`]) does not depend on the key, so rotations of one
//! ciphertext by many steps share it ("hoisting", Halevi-Shoup 2018): each extra rotation
//! only multiplies by its key, divides by P and permutes the two results (Galois keys switch
//! c_1 before the automorphism; see `GaloisKey`).

use super::keys::SwitchingKey;
use crate::params::Params;
use crate::ring::simd;
use crate::ring::{Basis, Ntt, Poly, PreparedConversion};
use rayon::prelude::*;

/// The digits of a polynomial at some level, each extended to Q_level * P, in NTT form.
pub struct Decomposition {
    pub(crate) level: usize,
    pub(crate) digits: Vec<Poly<Ntt>>,
}

impl Decomposition {
    /// Level of the decomposed polynomial.
    pub fn level(&self) -> usize {
        self.level
    }
}

/// ModUp: splits `d` (NTT form, modulo Q_level) into digits and extends each to Q_level * P.
pub fn decompose(params: &Params, level: usize, d: &Poly<Ntt>) -> Decomposition {
    let ring = params.ring();
    let n = ring.n();
    let basis = params.basis_qp(level);
    let digits = params
        .digits(level)
        .enumerate()
        .map(|(j, range)| {
            let conv = params.mod_up(level, j);
            // The digit's towers in coefficient form, times the conversion's input factors
            // in the inverse transform's own pass.
            let inputs: Vec<Vec<u64>> = range
                .clone()
                .into_par_iter()
                .enumerate()
                .map(|(k, t)| {
                    let mut v = d.tower(t).to_vec();
                    ring.ntt(basis, t)
                        .backward_scaled(&mut v, conv.input_factor(k));
                    v
                })
                .collect();
            let prepared = conv.prepare_scaled(inputs, false);
            let mut out = Poly::<Ntt>::zero(ring, basis);
            let mut others: Vec<(usize, &mut [u64])> = Vec::new();
            for (t, tower) in out.data_mut().chunks_mut(n).enumerate() {
                if range.contains(&t) {
                    // The digit's own towers are d itself: copy, no transform needed.
                    tower.copy_from_slice(d.tower(t));
                } else {
                    others.push((t, tower))
                }
            }
            // Extend to the other towers one at a time, transforming each while in cache.
            others
                .into_par_iter()
                .enumerate()
                .for_each(|(idx, (t, tower))| {
                    prepared.write(idx, tower);
                    ring.ntt(basis, t).forward(tower);
                });
            out
        })
        .collect();
    Decomposition { level, digits }
}

/// Inner product of the digits with the key: returns (sum d_j b_j, sum d_j a_j) modulo
/// Q_level * P. Rotations need no permuted variant: Galois keys switch c_1 before the
/// automorphism (see `GaloisKey`), so digits and keys are read contiguously.
pub fn inner_product(params: &Params, dec: &Decomposition, key: &SwitchingKey) -> [Poly<Ntt>; 2] {
    let ring = params.ring();
    let basis = params.basis_qp(dec.level);
    let mut out0 = Poly::<Ntt>::zero(ring, basis);
    let mut out1 = Poly::<Ntt>::zero(ring, basis);
    inner_product_into(params, dec, key, &mut out0, &mut out1);
    [out0, out1]
}

/// [`inner_product`] into existing polynomials over Q_level * P (every residue overwritten).
pub fn inner_product_into(
    params: &Params,
    dec: &Decomposition,
    key: &SwitchingKey,
    out0: &mut Poly<Ntt>,
    out1: &mut Poly<Ntt>,
) {
    let ring = params.ring();
    let n = ring.n();
    let basis = params.basis_qp(dec.level);
    assert!(
        out0.basis() == basis && out1.basis() == basis,
        "outputs over Q_level * P"
    );
    let ndig = dec.digits.len();
    out0.data_mut()
        .par_chunks_mut(n)
        .zip(out1.data_mut().par_chunks_mut(n))
        .enumerate()
        .for_each(|(t, (o0, o1))| {
            let kt = ring.modulus_index(basis, t);
            let bs: Vec<&[u64]> = key.b.iter().take(ndig).map(|k| k.tower(kt)).collect();
            let as_: Vec<&[u64]> = key.a.iter().take(ndig).map(|k| k.tower(kt)).collect();
            let ds: Vec<&[u64]> = dec.digits.iter().map(|d| d.tower(t)).collect();
            simd::dot_pairs(o0, o1, &ds, &bs, &as_, ring.modulus(basis, t));
        });
}

/// ModDown: from Q_level * P to Q_level, dividing by P with rounding: (x - [x]_P) * P^{-1}
/// with the exact basis conversion of the centered [x]_P.
pub fn mod_down(params: &Params, x: Poly<Ntt>) -> Poly<Ntt> {
    divide_round(params, x, false)
}

/// ModDown fused with a rescale: from Q_level * P to Q_{level-1}, dividing by P * q_level
/// with rounding in one exact basis conversion. Saves the rescale's separate inverse and
/// forward NTTs (the fusion OpenFHE and Lattigo use after a relinearisation).
/// Falls back to ModDown then rescale where no fused converter exists (level 0 or no P).
pub fn mod_down_rescale(params: &Params, x: Poly<Ntt>) -> Poly<Ntt> {
    let level = x.basis().q - 1;
    if params.mod_down_rescale(level).is_none() {
        let mut y = mod_down(params, x);
        crate::ckks::evaluator::rescale_poly(params, &mut y);
        return y;
    }
    divide_round(params, x, true)
}

fn divide_round(params: &Params, x: Poly<Ntt>, rescale: bool) -> Poly<Ntt> {
    let basis = x.basis();
    let mut removed: IndexedTowers = (0..basis.p)
        .map(|i| (basis.q + i, x.tower(basis.q + i).to_vec()))
        .collect();
    if rescale {
        removed.push((basis.q - 1, x.tower(basis.q - 1).to_vec()));
    }
    let division = Division::new(params, basis, removed, rescale);
    let mut out = x;
    out.truncate(division.out_basis);
    // One output tower at a time: convert, transform and subtract while it is in cache.
    out.data_mut()
        .par_chunks_mut(params.ring().n())
        .enumerate()
        .for_each_init(
            || division.scratch(),
            |c, (i, o)| {
                division.converted_tower(i, c);
                simd::sub_mul_scalar(o, c, division.weights[i], params.ring().q(i));
            },
        );
    out
}

/// A whole key switch finished in one pass per output tower: with (b, a) the inner products
/// of `dec` with `key`, returns `[sigma_g(add_0 + ModDown(b)), sigma_g(add_1 + ModDown(a))]`
/// (no automorphism when `g` is `None`; addends modulo Q_level or more, or none).
///
/// Only the P towers of the inner products are computed up front (the conversion needs all
/// of them); each Q tower's inner product, division by P, addend and automorphism then run
/// while the tower is in cache, so the Q part of the products is never stored. A rotation is
/// `add_0 = c_0`, relinearisation `add = (c_0, c_1)` without automorphism.
pub fn switch_finish(
    params: &Params,
    dec: &Decomposition,
    key: &SwitchingKey,
    add: [Option<&Poly<Ntt>>; 2],
    g: Option<u64>,
) -> [Poly<Ntt>; 2] {
    let ring = params.ring();
    let n = ring.n();
    let basis = params.basis_qp(dec.level);
    let ndig = dec.digits.len();
    let products = |t: usize, ob: &mut [u64], oa: &mut [u64]| {
        let kt = ring.modulus_index(basis, t);
        let bs: Vec<&[u64]> = key.b.iter().take(ndig).map(|k| k.tower(kt)).collect();
        let as_: Vec<&[u64]> = key.a.iter().take(ndig).map(|k| k.tower(kt)).collect();
        let ds: Vec<&[u64]> = dec.digits.iter().map(|d| d.tower(t)).collect();
        simd::dot_pairs(ob, oa, &ds, &bs, &as_, ring.modulus(basis, t));
    };
    let (removed_b, removed_a): (IndexedTowers, IndexedTowers) = (basis.q..basis.len())
        .into_par_iter()
        .map(|t| {
            let (mut ob, mut oa) = (vec![0u64; n], vec![0u64; n]);
            products(t, &mut ob, &mut oa);
            ((t, ob), (t, oa))
        })
        .unzip();
    let (div_b, div_a) = rayon::join(
        || Division::new(params, basis, removed_b, false),
        || Division::new(params, basis, removed_a, false),
    );
    let perm = g.map(|g| ring.galois_permutation(g));
    let out_basis = div_b.out_basis;
    let mut out_b = Poly::<Ntt>::zero(ring, out_basis);
    let mut out_a = Poly::<Ntt>::zero(ring, out_basis);
    out_b
        .data_mut()
        .par_chunks_mut(n)
        .zip(out_a.data_mut().par_chunks_mut(n))
        .enumerate()
        .for_each_init(
            || {
                [
                    div_b.scratch(),
                    div_b.scratch(),
                    div_b.scratch(),
                    div_b.scratch(),
                ]
            },
            |[sb, sa, cb, ca], (i, (ob, oa))| {
                let m = ring.q(i);
                let w = div_b.weights[i];
                // Without an automorphism the products go straight to the output.
                let (pb, pa) = match perm {
                    Some(_) => (&mut sb[..], &mut sa[..]),
                    None => (&mut ob[..], &mut oa[..]),
                };
                products(i, pb, pa);
                div_b.converted_tower(i, cb);
                div_a.converted_tower(i, ca);
                simd::sub_mul_add_scalar(pb, cb, w, add[0].map(|p| p.tower(i)), m);
                simd::sub_mul_add_scalar(pa, ca, w, add[1].map(|p| p.tower(i)), m);
                if let Some(perm) = &perm {
                    for ((b, a), &j) in ob.iter_mut().zip(oa.iter_mut()).zip(perm.iter()) {
                        *b = sb[j as usize];
                        *a = sa[j as usize];
                    }
                }
            },
        );
    [out_b, out_a]
}

/// Residue vectors with the indices of their towers.
type IndexedTowers = Vec<(usize, Vec<u64>)>;

/// The input side of a division by P (and q_level when rescaling) with rounding:
/// (x - [x]_D) / D with [x]_D the centered residue, extended exactly to the kept primes.
struct Division<'a> {
    params: &'a Params,
    prepared: PreparedConversion<'a>,
    out_basis: Basis,
    /// D^{-1} modulo each kept prime.
    weights: Vec<u64>,
}

impl<'a> Division<'a> {
    /// From the towers divided out of a polynomial over `basis` (its P towers, then q_level
    /// when rescaling), in NTT form, with their tower indices.
    fn new(params: &'a Params, basis: Basis, mut removed: IndexedTowers, rescale: bool) -> Self {
        let ring = params.ring();
        let level = basis.q - 1;
        let out_q = if rescale { level } else { level + 1 };
        let converter = match (rescale, params.mod_down_rescale(level)) {
            (true, Some(c)) => c,
            _ => params.mod_down(level),
        };
        // To coefficient form, times the conversion's input factors in the same pass.
        removed.par_iter_mut().enumerate().for_each(|(i, (t, v))| {
            ring.ntt(basis, *t)
                .backward_scaled(v, converter.input_factor(i))
        });
        // Exact conversion: the fast one returns [x]_P + u P with 0 <= u < k, a one-sided
        // error of up to k units in every coefficient. Its bias adds up in the slots
        // (measured: the paper-setting training's weights drift from 2e-7 to 3.5e-5 at its
        // small scales).
        let prepared =
            converter.prepare_scaled(removed.into_iter().map(|(_, v)| v).collect(), true);
        let p_inv = params.p_inv_mod_q();
        let weights = (0..out_q)
            .map(|i| {
                let m = ring.q(i);
                if rescale {
                    m.mul(
                        p_inv[i],
                        m.inv(m.reduce(ring.q(level).value())).unwrap_or(0),
                    )
                } else {
                    p_inv[i]
                }
            })
            .collect();
        Self {
            params,
            prepared,
            out_basis: params.basis_q(out_q - 1),
            weights,
        }
    }

    fn scratch(&self) -> Vec<u64> {
        vec![0u64; self.params.ring().n()]
    }

    /// [x]_D extended to kept prime `i`, in NTT form, into `c`.
    fn converted_tower(&self, i: usize, c: &mut [u64]) {
        self.prepared.write(i, c);
        self.params.ring().ntt(self.out_basis, i).forward(c);
    }
}

/// x += P * y on the Q towers of x (y modulo Q_level, x modulo Q_level * P; P * y is 0 on
/// the P towers). ModDown of the sum is y + ModDown(x).
pub fn add_lifted(params: &Params, x: &mut Poly<Ntt>, y: &Poly<Ntt>) {
    let ring = params.ring();
    let basis = x.basis();
    let p_mod_q = params.p_mod_q();
    x.towers_mut().take(basis.q).for_each(|(i, t)| {
        let m = ring.q(i);
        let (w, ws) = (p_mod_q[i], m.shoup(p_mod_q[i]));
        for (a, &b) in t.iter_mut().zip(y.tower(i)) {
            *a = m.add(*a, m.mul_shoup(b, w, ws));
        }
    });
}

/// Full key switch of `d` (NTT form at `level`): returns (u0, u1) with u0 + u1 s ~ d s'.
pub fn key_switch(
    params: &Params,
    level: usize,
    d: &Poly<Ntt>,
    key: &SwitchingKey,
) -> [Poly<Ntt>; 2] {
    switch_finish(
        params,
        &decompose(params, level, d),
        key,
        [None, None],
        None,
    )
}

/// `P * x` in the extended basis: `x` (NTT form modulo Q_level) becomes the polynomial of
/// Q_level * P whose Q towers are `[P]_{q_i} x` and whose P towers are zero. [`mod_down`]
/// of `P x + y` is `x + mod_down(y)` exactly, which is what lets sums stay in Q_level * P
/// and share one ModDown ("double hoisting", Bossuat-Mouchet-Troncoso-Pastoriza-Hubaux 2021).
pub fn lift_to_qp(params: &Params, x: &Poly<Ntt>) -> Poly<Ntt> {
    let ring = params.ring();
    let n = ring.n();
    let level = x.basis().q - 1;
    let mut out = Poly::<Ntt>::zero(ring, params.basis_qp(level));
    let p_mod_q = params.p_mod_q();
    out.data_mut()
        .par_chunks_mut(n)
        .take(level + 1)
        .enumerate()
        .for_each(|(i, o)| {
            let m = ring.q(i);
            let (w, ws) = (p_mod_q[i], m.shoup(p_mod_q[i]));
            for (o, &v) in o.iter_mut().zip(x.tower(i)) {
                *o = m.mul_shoup(v, w, ws);
            }
        });
    out
}

/// A hoisted key switch of the automorphism `X -> X^g` of a ciphertext `(c0, c1)`, left in
/// the extended basis Q_level * P: returns `sigma_g(P c0 + <dec, b>)` and `sigma_g(<dec, a>)`
/// with `dec` the decomposition of `c1` and (b, a) the Galois key, which switches c1 to
/// sigma_g^{-1}(s) before the automorphism (see `GaloisKey`). [`mod_down`] of both components
/// gives the rotated ciphertext; sums of such terms (times plaintexts in Q_level * P) can be
/// divided by P once (double hoisting).
pub fn automorphism_hoisted_qp(
    params: &Params,
    c0: &Poly<Ntt>,
    dec: &Decomposition,
    key: &SwitchingKey,
    g: u64,
) -> [Poly<Ntt>; 2] {
    let ring = params.ring();
    let [mut a, b] = inner_product(params, dec, key);
    a.add_assign(
        ring,
        &lift_to_qp(params, &c0.truncated(params.basis_q(dec.level))),
    );
    let (a, b) = rayon::join(|| a.automorphism(ring, g), || b.automorphism(ring, g));
    [a, b]
}
