//! Linear transformations of the slots: `v -> M v` for a `slots x slots` complex matrix,
//! evaluated by diagonals (Halevi-Shoup 2014) with baby-step giant-step and hoisting
//! (Halevi-Shoup 2018; Lattigo's `circuits/ckks/lintrans`).
//!
//! With `d_k[i] = M[i][(i + k) mod n]` the k-th (generalised) diagonal and `rot_k` the left
//! rotation, `M v = sum_k d_k * rot_k(v)`. Writing `k = j g + i` with `0 <= i < g` (`g` the
//! number of baby steps):
//!
//! `M v = sum_j rot_{j g}( sum_i rot_{-j g}(d_{j g + i}) * rot_i(v) )`
//!
//! so only the baby rotations `rot_i(v)` (all from one decomposition of `v`: hoisting) and one
//! giant rotation per `j` are needed; the diagonals are encoded pre-rotated by `-j g`. The
//! giant rotations are chained by Horner's rule on each side of 0 (`rot_g(I_1 + rot_g(I_2 +
//! ...))`), so their keys are the gaps between consecutive giant steps, not the steps
//! themselves: two keys for a progression `j g` (see `giant_steps_chained`). The
//! diagonals are encoded at scale `q_level` (the last prime of the input's level), so the
//! single rescale at the end returns exactly to the input scale: depth 1.
//!
//! The inner sums are accumulated lazily (u128 products, one reduction per 16 terms) in one
//! pass over the plaintexts.
//!
//! **Double hoisting** (Bossuat-Mouchet-Troncoso-Pastoriza-Hubaux, Eurocrypt 2021), opt-in with
//! [`LinearTransform::with_double_hoisting`]: the baby rotations are left in the extended basis
//! Q*P (no ModDown), the inner sums `sum_i pt_i * rot_i(v)` are accumulated there with the
//! diagonals encoded modulo Q*P and each inner sum is divided by P once: `g - 1` fewer
//! ModDowns and slightly less rounding noise, for plaintexts
//! `1 + k/(level+1)` times larger. Measured at N = 2^14 (min of 4 runs, loaded 2-core machine):
//! within +-10% of single hoisting (faster with 64 diagonals and with 11 levels, slower for a
//! dense 256 x 256 at 5 levels where plaintext traffic dominates; measured when the giant
//! rotations were double hoisted too, before they were chained), hence off by default. Its key
//! switches go through [`Evaluator::rotate_hoisted_qp`], so the evaluator counts them.

use crate::ckks::encoder::Encoder;
use crate::ckks::evaluator::Evaluator;
use crate::error::{Error, Result};
use crate::params::Params;
use crate::ring::{Basis, Coeff, Ntt, Poly};
use crate::rlwe::ciphertext::{Ciphertext, Plaintext};
use crate::rlwe::keyswitch;
use num_complex::Complex64;
use rayon::prelude::*;
use std::collections::{BTreeMap, BTreeSet};

const OP: &str = "linear_transform";

/// A linear transformation of `slots` slots given by its nonzero diagonals, with its
/// baby-step giant-step split. Not yet encoded: see [`LinearTransform::encode`] or
/// [`LinearTransform::evaluate`].
#[derive(Clone, Debug, PartialEq)]
pub struct LinearTransform {
    slots: usize,
    /// Nonzero diagonals `k in [0, slots)` -> `d_k`.
    diagonals: BTreeMap<usize, Vec<Complex64>>,
    baby_steps: usize,
    double_hoisting: bool,
    compact: bool,
}

/// `M v` in the clear (row-major `M`), the reference for [`LinearTransform`].
pub fn apply_plain(matrix: &[Vec<Complex64>], v: &[Complex64]) -> Vec<Complex64> {
    matrix
        .iter()
        .map(|row| row.iter().zip(v).map(|(a, b)| a * b).sum())
        .collect()
}

/// The giant steps as signed rotations: `j g` past half the slots is the rotation by
/// `j g - slots` (the same permutation of the slots).
fn signed_giant(jg: usize, slots: usize) -> i64 {
    if jg > slots / 2 {
        jg as i64 - slots as i64
    } else {
        jg as i64
    }
}

/// The rotations the chained giant steps use (see [`EncodedLinearTransform::evaluate`]):
/// on each side of 0, the nearest giant step and the gaps between consecutive ones. For the
/// DFT factors of bootstrapping the giant steps are an arithmetic progression `j G`, so this
/// is `{G, -G}`: two keys instead of one per giant step.
fn chained_giant_steps(giants: impl IntoIterator<Item = usize>, slots: usize) -> BTreeSet<i64> {
    let signed: BTreeSet<i64> = giants
        .into_iter()
        .map(|jg| signed_giant(jg, slots))
        .collect();
    let mut steps = BTreeSet::new();
    let pos: Vec<i64> = signed.iter().copied().filter(|&s| s > 0).collect();
    let neg: Vec<i64> = signed.iter().rev().copied().filter(|&s| s < 0).collect();
    for side in [pos, neg] {
        let mut prev = 0;
        for s in side {
            steps.insert(s - prev);
            prev = s;
        }
    }
    steps
}

/// Baby and giant rotation steps of a diagonal set under a split `g`.
fn split_steps(
    diagonals: impl Iterator<Item = usize>,
    g: usize,
) -> (BTreeSet<usize>, BTreeSet<usize>) {
    let mut baby = BTreeSet::new();
    let mut giant = BTreeSet::new();
    for k in diagonals {
        baby.insert(k % g);
        giant.insert(k - k % g);
    }
    (baby, giant)
}

impl LinearTransform {
    /// From a row-major `slots x slots` matrix (`slots` a power of two); all-zero diagonals
    /// are dropped. The baby-step count is [`Self::default_baby_steps`].
    pub fn from_matrix(matrix: &[Vec<Complex64>]) -> Result<Self> {
        let n = matrix.len();
        if let Some(row) = matrix.iter().find(|r| r.len() != n) {
            return Err(Error::InvalidArgument {
                op: OP,
                msg: format!("matrix is not square ({n} rows, a row of {})", row.len()),
            });
        }
        let diagonals =
            (0..n).map(|k| (k as i64, (0..n).map(|i| matrix[i][(i + k) % n]).collect()));
        Self::from_diagonals(n, diagonals)
    }

    /// From real matrix entries; see [`Self::from_matrix`].
    pub fn from_real_matrix(matrix: &[Vec<f64>]) -> Result<Self> {
        let m: Vec<Vec<Complex64>> = matrix
            .iter()
            .map(|r| r.iter().map(|&x| Complex64::new(x, 0.0)).collect())
            .collect();
        Self::from_matrix(&m)
    }

    /// From diagonals `k -> d_k` with `d_k[i] = M[i][(i + k) mod slots]`, each of `slots`
    /// values; `k` may be negative (taken modulo `slots`), repeated indices are summed and
    /// all-zero diagonals dropped.
    pub fn from_diagonals(
        slots: usize,
        diagonals: impl IntoIterator<Item = (i64, Vec<Complex64>)>,
    ) -> Result<Self> {
        if !slots.is_power_of_two() {
            return Err(Error::InvalidArgument {
                op: OP,
                msg: format!("slot count {slots} is not a power of two"),
            });
        }
        let mut map: BTreeMap<usize, Vec<Complex64>> = BTreeMap::new();
        for (k, d) in diagonals {
            if d.len() != slots {
                return Err(Error::InvalidArgument {
                    op: OP,
                    msg: format!("diagonal {k} has {} values, expected {slots}", d.len()),
                });
            }
            if let Some(v) = d.iter().find(|v| !(v.re.is_finite() && v.im.is_finite())) {
                return Err(Error::InvalidArgument {
                    op: OP,
                    msg: format!("diagonal {k} holds the non-finite value {v}"),
                });
            }
            let k = k.rem_euclid(slots as i64) as usize;
            match map.get_mut(&k) {
                Some(acc) => acc.iter_mut().zip(&d).for_each(|(a, b)| *a += b),
                None => {
                    map.insert(k, d);
                }
            }
        }
        map.retain(|_, d| d.iter().any(|v| v.re != 0.0 || v.im != 0.0));
        let mut lt = Self {
            slots,
            diagonals: map,
            baby_steps: 1,
            compact: false,
            double_hoisting: false,
        };
        lt.baby_steps = lt.default_baby_steps();
        Ok(lt)
    }

    /// Sets the number of baby steps `g` (`1 <= g <= slots`): `g = 1` rotates every diagonal
    /// separately, `g = slots` hoists all rotations.
    pub fn with_baby_steps(mut self, g: usize) -> Result<Self> {
        if g == 0 || g > self.slots {
            return Err(Error::InvalidArgument {
                op: OP,
                msg: format!("baby steps {g} must be in 1..={}", self.slots),
            });
        }
        self.baby_steps = g;
        Ok(self)
    }

    /// Turns double hoisting (see the module documentation) on or off (the default).
    pub fn with_double_hoisting(mut self, on: bool) -> Self {
        self.double_hoisting = on;
        self
    }

    /// Keeps each encoded diagonal as its 2 `slots` scaled coefficients and rebuilds the
    /// plaintext (rounding, reduction, NTT per prime) each time the transform is evaluated,
    /// instead of storing N residues per prime: at N = 2^16 and 2^13 slots a diagonal at the
    /// top of the chain is 13 MB stored, 256 KB compact. Bit-identical results; costs the
    /// NTTs at every evaluation. Ignored with double hoisting (its diagonals live modulo
    /// Q * P). Off by default.
    pub fn with_compact_diagonals(mut self, on: bool) -> Self {
        self.compact = on;
        self
    }

    /// The power of two `g` minimising the number of distinct rotations (baby plus giant);
    /// about `sqrt(#diagonals)` for a dense matrix. Ties go to the larger `g`, since hoisted
    /// baby rotations are cheaper than giant ones.
    pub fn default_baby_steps(&self) -> usize {
        let mut best = (usize::MAX, 1);
        let mut g = 1;
        while g <= self.slots {
            let (b, gi) = split_steps(self.diagonals.keys().copied(), g);
            let cost = b.len() + gi.len();
            if cost <= best.0 {
                best = (cost, g);
            }
            g *= 2;
        }
        best.1
    }

    /// Slot count.
    pub fn slots(&self) -> usize {
        self.slots
    }

    /// Baby-step count `g`.
    pub fn baby_steps(&self) -> usize {
        self.baby_steps
    }

    /// The nonzero diagonals, indexed in `[0, slots)`.
    pub fn diagonals(&self) -> &BTreeMap<usize, Vec<Complex64>> {
        &self.diagonals
    }

    /// Multiplicative depth: 1 (one plaintext product, one rescale).
    pub fn depth(&self) -> usize {
        1
    }

    /// The rotation steps the evaluation uses (sorted, in `(-slots, slots)`): the nonzero
    /// baby steps `i` and the chained giant steps (see [`EncodedLinearTransform::evaluate`]).
    /// Pass them to `KeyGenerator::gen_evaluation_keys`.
    pub fn rotation_steps(&self) -> Vec<i64> {
        let (baby, giant) = split_steps(self.diagonals.keys().copied(), self.baby_steps);
        rotation_steps_of(baby, giant, self.slots)
    }

    /// `M v` in the clear, computed from the diagonals.
    pub fn evaluate_plain(&self, v: &[Complex64]) -> Vec<Complex64> {
        let n = self.slots;
        let at = |i: usize| v.get(i % n).copied().unwrap_or_default();
        (0..n)
            .map(|i| self.diagonals.iter().map(|(&k, d)| d[i] * at(i + k)).sum())
            .collect()
    }

    /// Encodes the pre-rotated diagonals at `level` (at least 1) with scale `q_level`.
    pub fn encode(&self, encoder: &Encoder, level: usize) -> Result<EncodedLinearTransform> {
        let params = encoder.params();
        if level == 0 || level > params.max_level() {
            return Err(Error::InvalidLevel {
                op: OP,
                level,
                max: params.max_level(),
            });
        }
        let n = self.slots;
        let scale = params.ring().q(level).value() as f64;
        let g = self.baby_steps;
        // Diagonals are independent: encoded in parallel (bootstrapping's DFTs have about
        // 190 of them at N = 2^16).
        let diagonals: Vec<(&usize, &Vec<Complex64>)> = self.diagonals.iter().collect();
        let encoded: Vec<(usize, usize, TermPoly, bool)> = diagonals
            .into_par_iter()
            .map(|(&k, d)| {
                let (i, jg) = (k % g, k - k % g);
                // rot_{-jg}(d)[t] = d[t - jg].
                let rotated: Vec<Complex64> = (0..n).map(|t| d[(t + n - jg % n) % n]).collect();
                if self.compact && !self.double_hoisting {
                    // The same checks as encoding, then only the scaled coefficients.
                    let c = encoder.scaled_coefficients(&rotated, level, scale, n)?;
                    return Ok((jg, i, TermPoly::Compact(c), false));
                }
                let pt = encoder.encode_complex(&rotated, level, scale, n)?;
                let qp = if self.double_hoisting {
                    plaintext_to_qp(params, &pt)
                } else {
                    None
                };
                let lifted = qp.is_some();
                let poly = qp.unwrap_or_else(|| pt.poly().clone());
                Ok((jg, i, TermPoly::Ntt(poly), lifted))
            })
            .collect::<Result<_>>()?;
        let mut all_qp = self.double_hoisting;
        let mut giants: BTreeMap<usize, Vec<Term>> = BTreeMap::new();
        for (jg, baby, poly, lifted) in encoded {
            all_qp &= lifted;
            giants.entry(jg).or_default().push(Term { baby, poly });
        }
        if !all_qp {
            // Some diagonal could not be lifted: back to Q_level (the lift's Q towers are
            // the original residues).
            let q_basis = params.basis_q(level);
            giants.values_mut().flatten().for_each(|t| {
                if let TermPoly::Ntt(p) = &mut t.poly {
                    p.truncate(q_basis)
                }
            });
        }
        let baby: BTreeSet<usize> = giants.values().flatten().map(|t| t.baby).collect();
        Ok(EncodedLinearTransform {
            slots: n,
            level,
            baby_steps: g,
            double_hoisting: all_qp,
            baby: baby.into_iter().collect(),
            giants: giants.into_iter().collect(),
        })
    }

    /// Encodes at the ciphertext's level and evaluates; see [`EncodedLinearTransform::evaluate`].
    /// Encoding dominates for large matrices: encode once with [`Self::encode`] to reuse.
    pub fn evaluate(&self, eval: &Evaluator, ct: &Ciphertext) -> Result<Ciphertext> {
        let encoder = Encoder::new(eval.params().clone());
        self.encode(&encoder, ct.level())?.evaluate(eval, ct)
    }
}

/// The nonzero baby steps and the chained giant steps, sorted.
fn rotation_steps_of(
    baby: impl IntoIterator<Item = usize>,
    giants: impl IntoIterator<Item = usize>,
    slots: usize,
) -> Vec<i64> {
    let mut set: BTreeSet<i64> = baby
        .into_iter()
        .filter(|&s| s != 0)
        .map(|s| s as i64)
        .collect();
    set.extend(chained_giant_steps(giants, slots));
    set.into_iter().collect()
}

/// The diagonal's integer coefficients reduced modulo Q_level * P (NTT form), for double
/// hoisting. The encoder works modulo Q_level only; the coefficients are recovered centred
/// from q_0 and checked against every other tower, so `None` (fall back to single hoisting)
/// when they do not fit in (-q_0/2, q_0/2).
fn plaintext_to_qp(params: &Params, pt: &Plaintext) -> Option<Poly<Ntt>> {
    let ring = params.ring();
    let coeff: Poly<Coeff> = pt.poly().to_coeff(ring);
    let q0 = ring.q(0);
    let signed: Vec<i64> = coeff.tower(0).iter().map(|&x| q0.center(x)).collect();
    for i in 1..=pt.level() {
        let m = ring.q(i);
        if coeff
            .tower(i)
            .iter()
            .zip(&signed)
            .any(|(&r, &c)| m.reduce_i64(c) != r)
        {
            return None;
        }
    }
    Some(Poly::<Coeff>::from_signed(ring, params.basis_qp(pt.level()), &signed).into_ntt(ring))
}

fn missing_baby(i: usize) -> Error {
    Error::InvalidArgument {
        op: OP,
        msg: format!("internal: baby step {i} missing"),
    }
}

/// `(sum_k a_k * p_k, sum_k b_k * p_k)` pointwise over NTT-form polynomials, all in `basis`
/// (`(a_k, b_k)` a ciphertext, `p_k` a plaintext): one pass over the plaintexts with the
/// key-switching inner product's vector kernel, tower-parallel.
fn dot_products(
    params: &Params,
    basis: Basis,
    terms: &[(&Poly<Ntt>, &Poly<Ntt>, &Poly<Ntt>)],
) -> Result<[Poly<Ntt>; 2]> {
    if let Some((a, b, p)) = terms
        .iter()
        .find(|(a, b, p)| a.basis() != basis || b.basis() != basis || p.basis() != basis)
    {
        return Err(Error::InvalidArgument {
            op: OP,
            msg: format!(
                "internal: operands in bases {:?}, {:?}, {:?}, expected {basis:?}",
                a.basis(),
                b.basis(),
                p.basis()
            ),
        });
    }
    Ok(Poly::dot_pairs(params.ring(), basis, terms))
}

/// One encoded diagonal: its baby step and its polynomial (NTT form) modulo Q_level, or
/// modulo Q_level * P under double hoisting.
#[derive(Clone, Debug)]
struct Term {
    baby: usize,
    poly: TermPoly,
}

/// An encoded diagonal as stored (see `LinearTransform::with_compact_diagonals`).
#[derive(Clone, Debug)]
enum TermPoly {
    /// NTT form modulo Q_level (or Q_level * P under double hoisting).
    Ntt(Poly<Ntt>),
    /// The scaled coefficients (`Encoder::scaled_coefficients`), rebuilt at each use.
    Compact(Vec<f64>),
}

/// A [`LinearTransform`] with its diagonals encoded (pre-rotated by the giant steps) at one
/// level.
#[derive(Clone, Debug)]
pub struct EncodedLinearTransform {
    slots: usize,
    level: usize,
    baby_steps: usize,
    double_hoisting: bool,
    /// Distinct baby steps used.
    baby: Vec<usize>,
    /// Giant step `j g` -> the baby steps `i` with the encoded `rot_{-jg}(d_{jg+i})`.
    giants: Vec<(usize, Vec<Term>)>,
}

impl EncodedLinearTransform {
    /// The level the diagonals are encoded at (inputs above it are dropped to it).
    pub fn level(&self) -> usize {
        self.level
    }

    /// Multiplicative depth: 1.
    pub fn depth(&self) -> usize {
        1
    }

    /// The rotation steps needed (see [`LinearTransform::rotation_steps`]).
    pub fn rotation_steps(&self) -> Vec<i64> {
        rotation_steps_of(
            self.baby.iter().copied(),
            self.giants.iter().map(|(j, _)| *j),
            self.slots,
        )
    }

    /// `M v` for the encrypted `v`: the baby rotations `rot_i(v)` from one hoisted
    /// decomposition, per giant step the inner sum of plaintext products rotated by `j g`,
    /// then one rescale. The result is one level below the encoding level with exactly the
    /// input's scale. Errors: slot-count mismatch, input below the encoding level, missing
    /// rotation keys.
    pub fn evaluate(&self, eval: &Evaluator, ct: &Ciphertext) -> Result<Ciphertext> {
        let scale = ct.scale();
        let mut out = self.evaluate_unrescaled(eval, ct)?;
        eval.rescale_assign(&mut out)?;
        out.set_scale(scale);
        Ok(out)
    }

    /// [`Self::evaluate`] without the final rescale: the result is at the encoding level,
    /// at the input's scale times `q_level`. For callers that key-switch the result before
    /// rescaling it, so that the key switch's noise is small next to that scale.
    pub fn evaluate_unrescaled(&self, eval: &Evaluator, ct: &Ciphertext) -> Result<Ciphertext> {
        if ct.slots() != self.slots {
            return Err(Error::InvalidArgument {
                op: OP,
                msg: format!(
                    "ciphertext has {} slots, the transform {}",
                    ct.slots(),
                    self.slots
                ),
            });
        }
        if ct.level() < self.level {
            return Err(Error::InvalidLevel {
                op: OP,
                level: ct.level(),
                max: self.level,
            });
        }
        let input = eval.drop_to_level(ct, self.level)?;
        let inner_sums = if self.double_hoisting {
            self.inner_sums_double_hoisted(eval, &input)?
        } else {
            self.inner_sums(eval, &input)?
        };
        match self.giant_steps_chained(eval, inner_sums)? {
            Some(acc) => Ok(acc),
            None => {
                // The zero matrix: 0 * v at the right level and scale.
                let mut z = input;
                let q = eval.params().ring().q(self.level).value() as f64;
                eval.mul_const_no_rescale_assign(&mut z, Complex64::new(0.0, 0.0), q)?;
                Ok(z)
            }
        }
    }

    /// Per giant step `j g`, `sum_i pt_{j,i} * rot_i(v)` with the baby rotations hoisted
    /// (one decomposition, one ModDown per rotation).
    fn inner_sums(&self, eval: &Evaluator, input: &Ciphertext) -> Result<Vec<(usize, Ciphertext)>> {
        let params = eval.params();
        let steps: Vec<i64> = self.baby.iter().map(|&i| i as i64).collect();
        let rotated: BTreeMap<usize, Ciphertext> = if steps.iter().all(|&s| s == 0) {
            self.baby.iter().map(|&i| (i, input.clone())).collect()
        } else {
            self.baby
                .iter()
                .copied()
                .zip(eval.rotate_hoisted(input, &steps)?)
                .collect()
        };
        let basis = params.basis_q(self.level);
        let pt_scale = params.ring().q(self.level).value() as f64;
        let mut out = Vec::with_capacity(self.giants.len());
        for (jg, terms) in &self.giants {
            let mut triples = Vec::with_capacity(terms.len());
            for t in terms {
                let v = rotated.get(&t.baby).ok_or_else(|| missing_baby(t.baby))?;
                if v.degree() != 1 {
                    return Err(Error::Degree {
                        op: OP,
                        degree: v.degree(),
                        expected: 1,
                    });
                }
                triples.push((&v.polys()[0], &v.polys()[1], t));
            }
            // Compact diagonals are rebuilt one tower at a time inside the products.
            let compact: Vec<(&Poly<Ntt>, &Poly<Ntt>, &[f64])> = triples
                .iter()
                .filter_map(|(a, b, t)| match &t.poly {
                    TermPoly::Compact(c) => Some((*a, *b, c.as_slice())),
                    TermPoly::Ntt(_) => None,
                })
                .collect();
            let stored: Vec<(&Poly<Ntt>, &Poly<Ntt>, &Poly<Ntt>)> = triples
                .iter()
                .filter_map(|(a, b, t)| match &t.poly {
                    TermPoly::Ntt(p) => Some((*a, *b, p)),
                    TermPoly::Compact(_) => None,
                })
                .collect();
            // `encode` makes every diagonal of a transform compact or none of them.
            let [u0, u1] = match (compact.is_empty(), stored.is_empty()) {
                (true, _) => dot_products(params, basis, &stored)?,
                (false, true) => Poly::dot_pairs_scaled(params.ring(), basis, &compact),
                (false, false) => {
                    return Err(Error::InvalidArgument {
                        op: OP,
                        msg: "internal: compact and stored diagonals in one transform".into(),
                    });
                }
            };
            out.push((
                *jg,
                Ciphertext::new(
                    params.clone(),
                    vec![u0, u1],
                    self.level,
                    input.scale() * pt_scale,
                    self.slots,
                ),
            ));
        }
        Ok(out)
    }

    /// [`Self::inner_sums`] with double hoisting: the baby rotations stay modulo Q*P, the
    /// products with the diagonals (encoded modulo Q*P) are summed there, and each inner sum
    /// is divided by P once.
    fn inner_sums_double_hoisted(
        &self,
        eval: &Evaluator,
        input: &Ciphertext,
    ) -> Result<Vec<(usize, Ciphertext)>> {
        let params = eval.params();
        let ring = params.ring();
        if input.degree() != 1 {
            return Err(Error::Degree {
                op: OP,
                degree: input.degree(),
                expected: 1,
            });
        }
        let [c0, c1] = [&input.polys()[0], &input.polys()[1]];
        let needs_dec = self.baby.iter().any(|&i| i != 0);
        let dec = if needs_dec {
            Some(eval.decompose(input)?)
        } else {
            None
        };
        let mut rotated: BTreeMap<usize, [Poly<Ntt>; 2]> = BTreeMap::new();
        for &i in &self.baby {
            let g = ring.galois_element_for_rotation(i as i64);
            let r = match dec.as_ref() {
                Some(dec) if g != 1 => eval.rotate_hoisted_qp(c0, dec, i as i64)?,
                _ => [
                    keyswitch::lift_to_qp(params, c0),
                    keyswitch::lift_to_qp(params, c1),
                ],
            };
            rotated.insert(i, r);
        }
        let basis = params.basis_qp(self.level);
        let pt_scale = ring.q(self.level).value() as f64;
        let mut out = Vec::with_capacity(self.giants.len());
        for (jg, terms) in &self.giants {
            let mut triples = Vec::with_capacity(terms.len());
            for t in terms {
                let [r0, r1] = rotated.get(&t.baby).ok_or_else(|| missing_baby(t.baby))?;
                let TermPoly::Ntt(pt) = &t.poly else {
                    return Err(Error::InvalidArgument {
                        op: OP,
                        msg: "internal: a compact diagonal under double hoisting".into(),
                    });
                };
                triples.push((r0, r1, pt));
            }
            let [acc0, acc1] = dot_products(params, basis, &triples)?;
            let (u0, u1) = rayon::join(
                || keyswitch::mod_down(params, acc0),
                || keyswitch::mod_down(params, acc1),
            );
            out.push((
                *jg,
                Ciphertext::new(
                    params.clone(),
                    vec![u0, u1],
                    self.level,
                    input.scale() * pt_scale,
                    self.slots,
                ),
            ));
        }
        Ok(out)
    }

    /// `sum_j rot_{s_j}(I_j)` over the inner sums `I_j`, with the giant steps `s_j` signed
    /// (see [`signed_giant`]) and chained on each side of 0 by Horner's rule:
    /// `rot_{s_1}(I_1 + rot_{s_2 - s_1}(I_2 + ...))`. The same number of key switches as
    /// rotating each inner sum by its own step (they were sequential already), but the keys
    /// are only the gaps between consecutive steps: for an arithmetic progression `j G`, the
    /// two keys `G` and `-G` instead of one per giant step. Bootstrapping's DFT factors are
    /// such progressions; at N = 2^16 and 2^13 slots this removes 17 of its 42 rotation keys
    /// over the whole chain (2.3 GB in memory). Rotations compose exactly, and each key
    /// switch adds its noise once, as before.
    fn giant_steps_chained(
        &self,
        eval: &Evaluator,
        inner_sums: Vec<(usize, Ciphertext)>,
    ) -> Result<Option<Ciphertext>> {
        let mut acc: Option<Ciphertext> = None;
        let mut pos = Vec::new();
        let mut neg = Vec::new();
        for (jg, inner) in inner_sums {
            match signed_giant(jg, self.slots) {
                0 => acc = Some(inner),
                s if s > 0 => pos.push((s, inner)),
                s => neg.push((s, inner)),
            }
        }
        pos.sort_by_key(|(s, _)| *s);
        neg.sort_by_key(|(s, _)| -*s);
        for side in [pos, neg] {
            // From the step farthest from 0 inwards.
            let mut it = side.into_iter().rev();
            let Some((mut far, mut chain)) = it.next() else {
                continue;
            };
            for (s, inner) in it {
                chain = eval.rotate(&chain, far - s)?;
                eval.add_assign(&mut chain, &inner)?;
                far = s;
            }
            let chain = eval.rotate(&chain, far)?;
            match acc.as_mut() {
                Some(a) => eval.add_assign(a, &chain)?,
                None => acc = Some(chain),
            }
        }
        Ok(acc)
    }

    /// True when the diagonals are also encoded modulo P and evaluation uses double hoisting.
    pub fn double_hoisting(&self) -> bool {
        self.double_hoisting
    }

    /// The baby-step count the diagonals were split with.
    pub fn baby_steps(&self) -> usize {
        self.baby_steps
    }
}
