//! Hybrid key switching (Han-Ki 2020; Lattigo's `GadgetProduct`): ModUp each digit of the
//! input to Q_l * P, take the inner product with the key's digits, ModDown by P.
//!
//! The ModUp result ([`Decomposition`]) does not depend on the key, so rotations of one
//! ciphertext by many steps share it ("hoisting", Halevi-Shoup 2018): each extra rotation
//! only multiplies by its key, divides by P and permutes the two results (Galois keys switch
//! c_1 before the automorphism; see `GaloisKey`).
//!
//! [`switch_finish`] is the one path every key switch of the evaluator takes (rotation,
//! hoisted rotation, conjugation, relinearisation, relinearisation + rescale): only the
//! towers the division removes are computed ahead; every kept tower's inner product,
//! division by P (and q_level), addend and automorphism run in one pass while it is in
//! cache. [`automorphism_hoisted_qp`], [`lift_to_qp`] and [`mod_down`] serve double
//! hoisting (linear transforms), where sums stay in Q_l * P until one ModDown;
//! [`inner_product`] and [`key_switch`] are the plain building blocks (measured by the
//! `keyswitch_breakdown` example).

use super::keys::SwitchingKey;
use crate::params::Params;
use crate::ring::scratch::Scratch;
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
    let basis = params.basis_qp(dec.level);
    Poly::pair_from_towers(
        params.ring(),
        basis,
        || (),
        |_, t, o0, o1| tower_products(params, dec, key, t, o0, o1),
    )
}

/// Tower `t` (of Q_level * P) of both inner products of [`inner_product`].
fn tower_products(
    params: &Params,
    dec: &Decomposition,
    key: &SwitchingKey,
    t: usize,
    out_b: &mut [u64],
    out_a: &mut [u64],
) {
    let ring = params.ring();
    let basis = params.basis_qp(dec.level);
    let ndig = dec.digits.len();
    // The key may stop below the top of the chain (see SwitchingKey): its P towers follow
    // its own last Q tower. Callers check that the key reaches `dec.level`.
    let kt = if t < basis.q {
        t
    } else {
        key.max_level() + 1 + (t - basis.q)
    };
    let bs: Vec<&[u64]> = key.b.iter().take(ndig).map(|k| k.tower(kt)).collect();
    let as_: Vec<&[u64]> = key.a.iter().take(ndig).map(|k| k.tower(kt)).collect();
    let ds: Vec<&[u64]> = dec.digits.iter().map(|d| d.tower(t)).collect();
    simd::dot_pairs(out_b, out_a, &ds, &bs, &as_, ring.modulus(basis, t));
}

/// ModDown: from Q_level * P to Q_level, dividing by P with rounding: `(x - [x]_P) * P^{-1}`
/// with the exact basis conversion of the centered `[x]_P`.
pub fn mod_down(params: &Params, x: Poly<Ntt>) -> Poly<Ntt> {
    let basis = x.basis();
    let removed: IndexedTowers = (basis.q..basis.len())
        .map(|t| (t, x.tower(t).to_vec()))
        .collect();
    let division = Division::new(params, basis, removed, false);
    let mut out = x;
    out.truncate(division.out_basis);
    // One output tower at a time: convert, transform and subtract while it is in cache.
    out.data_mut()
        .par_chunks_mut(params.ring().n())
        .enumerate()
        .for_each_init(
            || Scratch::<1>::new(params.ring().n()),
            |s, (i, o)| {
                let [c] = s.bufs();
                division.converted_tower(i, c);
                simd::sub_mul_scalar(o, c, division.weights[i], params.ring().q(i));
            },
        );
    out
}

/// What a key switch does with its two results in the same pass (see [`switch_finish`]).
#[derive(Clone, Copy, Debug, Default)]
pub struct Finish<'a> {
    /// Added to the two results (the input ciphertext's c_0 and c_1, say), modulo Q_level
    /// or more.
    pub add: [Option<&'a Poly<Ntt>>; 2],
    /// The automorphism X -> X^g applied last (rotations, conjugation).
    pub galois: Option<u64>,
    /// Also divide by q_level with rounding, addends included: a rescale fused with the
    /// ModDown (one exact conversion from P * q_level; OpenFHE and Lattigo fuse the same way
    /// after a relinearisation). The results are over Q_{level-1}.
    pub rescale: bool,
}

/// A whole key switch finished in one pass per output tower: with (b, a) the inner products
/// of `dec` with `key`, returns `[sigma_g(add_0 + ModDown(b)), sigma_g(add_1 + ModDown(a))]`,
/// rescaled if asked (see [`Finish`]).
///
/// Only the towers the division removes (P, and q_level when rescaling) of the inner
/// products are computed up front (the conversion needs all of them); each kept tower's inner
/// product, division, addend and automorphism then run while the tower is in cache, so the
/// rest of the products is never stored. A rotation is `add = (c_0, none)` with its
/// automorphism, relinearisation `add = (c_0, c_1)`.
pub fn switch_finish(
    params: &Params,
    dec: &Decomposition,
    key: &SwitchingKey,
    finish: Finish<'_>,
) -> [Poly<Ntt>; 2] {
    let ring = params.ring();
    let n = ring.n();
    let level = dec.level;
    let basis = params.basis_qp(level);
    if finish.rescale && params.mod_down_rescale(level).is_none() {
        // No fused converter (level 0): divide by P, then rescale separately.
        let [mut b, mut a] = switch_finish(
            params,
            dec,
            key,
            Finish {
                rescale: false,
                ..finish
            },
        );
        b.divide_by_last_q(ring);
        a.divide_by_last_q(ring);
        return [b, a];
    }
    let products =
        |t: usize, ob: &mut [u64], oa: &mut [u64]| tower_products(params, dec, key, t, ob, oa);
    // The removed towers: P, then q_level when rescaling, where the addends enter lifted
    // (P * add, so that the division by P * q_level divides them by q_level only).
    let mut removed: Vec<usize> = (basis.q..basis.len()).collect();
    if finish.rescale {
        removed.push(level);
    }
    let (removed_b, removed_a): (IndexedTowers, IndexedTowers) = removed
        .into_par_iter()
        .map(|t| {
            let (mut ob, mut oa) = (vec![0u64; n], vec![0u64; n]);
            products(t, &mut ob, &mut oa);
            if t == level && finish.rescale {
                let p = params.p_mod_q()[level];
                for (o, add) in [(&mut ob, finish.add[0]), (&mut oa, finish.add[1])] {
                    if let Some(add) = add {
                        simd::mul_add_scalar(o, add.tower(level), p, ring.q(level));
                    }
                }
            }
            ((t, ob), (t, oa))
        })
        .unzip();
    let (div_b, div_a) = rayon::join(
        || Division::new(params, basis, removed_b, finish.rescale),
        || Division::new(params, basis, removed_a, finish.rescale),
    );
    let perm = finish.galois.map(|g| ring.galois_permutation(g));
    let out_basis = div_b.out_basis;
    // Rescaling divides the addends by q_level.
    let add_factor = div_b.level_inv.as_deref();
    Poly::pair_from_towers(
        ring,
        out_basis,
        || Scratch::<4>::new(n),
        |s, i, ob, oa| {
            let [sb, sa, c, scaled] = s.bufs();
            let m = ring.q(i);
            let w = div_b.weights[i];
            // Without an automorphism the products go straight to the output.
            let (pb, pa) = match perm {
                Some(_) => (&mut sb[..], &mut sa[..]),
                None => (&mut ob[..], &mut oa[..]),
            };
            products(i, pb, pa);
            // One converted tower at a time: fewer temporaries competing for cache.
            for (p, div, add) in [(pb, &div_b, finish.add[0]), (pa, &div_a, finish.add[1])] {
                div.converted_tower(i, c);
                let add = add.map(|x| match add_factor {
                    Some(f) => {
                        scaled.copy_from_slice(x.tower(i));
                        simd::mul_scalar(scaled, f[i], m);
                        &scaled[..]
                    }
                    None => x.tower(i),
                });
                simd::sub_mul_add_scalar(p, c, w, add, m);
            }
            if let Some(perm) = &perm {
                permute_pair(perm, [sb, sa], [ob, oa]);
            }
        },
    )
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
    /// When rescaling, [q_level^{-1}]_{q_i} for each kept prime i.
    level_inv: Option<Vec<u64>>,
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
        let level_inv: Option<Vec<u64>> = rescale.then(|| {
            (0..out_q)
                .map(|i| {
                    let m = ring.q(i);
                    m.inv(m.reduce(ring.q(level).value())).unwrap_or(0)
                })
                .collect()
        });
        let p_inv = params.p_inv_mod_q();
        let weights = (0..out_q)
            .map(|i| match &level_inv {
                Some(l) => ring.q(i).mul(p_inv[i], l[i]),
                None => p_inv[i],
            })
            .collect();
        Self {
            params,
            prepared,
            out_basis: params.basis_q(out_q - 1),
            weights,
            level_inv,
        }
    }

    /// [x]_D extended to kept prime `i`, in NTT form, into `c`.
    fn converted_tower(&self, i: usize, c: &mut [u64]) {
        self.prepared.write(i, c);
        self.params.ring().ntt(self.out_basis, i).forward(c);
    }
}

/// Full key switch of `d` (NTT form at `level`): returns (u0, u1) with u0 + u1 s ~ d s'.
pub fn key_switch(
    params: &Params,
    level: usize,
    d: &Poly<Ntt>,
    key: &SwitchingKey,
) -> [Poly<Ntt>; 2] {
    switch_finish(params, &decompose(params, level, d), key, Finish::default())
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
            simd::mul_add_scalar(o, x.tower(i), p_mod_q[i], ring.q(i));
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
    let n = ring.n();
    let basis = params.basis_qp(dec.level);
    let perm = ring.galois_permutation(g);
    let p_mod_q = params.p_mod_q();
    // One pass per tower: products, + P c_0 on the Q towers, automorphism.
    Poly::pair_from_towers(
        ring,
        basis,
        || Scratch::<2>::new(n),
        |s, t, o0, o1| {
            let [s0, s1] = s.bufs();
            tower_products(params, dec, key, t, s0, s1);
            if t < basis.q {
                simd::mul_add_scalar(s0, c0.tower(t), p_mod_q[t], ring.q(t));
            }
            permute_pair(&perm, [s0, s1], [o0, o1]);
        },
    )
}

/// `dst[k][i] = src[k][perm[i]]` for both towers in one pass over the permutation: an
/// automorphism of NTT slots (see `RingContext::galois_permutation`).
fn permute_pair(perm: &[u32], src: [&[u64]; 2], dst: [&mut [u64]; 2]) {
    let [s0, s1] = src;
    let [d0, d1] = dst;
    for ((a, b), &j) in d0.iter_mut().zip(d1.iter_mut()).zip(perm) {
        *a = s0[j as usize];
        *b = s1[j as usize];
    }
}
