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
//! diagonals are encoded at scale `q_level` (the last prime of the input's level), so the
//! single rescale at the end returns exactly to the input scale: depth 1.

use crate::ckks::encoder::Encoder;
use crate::ckks::evaluator::Evaluator;
use crate::error::{Error, Result};
use crate::rlwe::ciphertext::{Ciphertext, Plaintext};
use num_complex::Complex64;
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
}

/// `M v` in the clear (row-major `M`), the reference for [`LinearTransform`].
pub fn apply_plain(matrix: &[Vec<Complex64>], v: &[Complex64]) -> Vec<Complex64> {
    matrix
        .iter()
        .map(|row| row.iter().zip(v).map(|(a, b)| a * b).sum())
        .collect()
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

    /// The rotation steps the evaluation uses (in `[1, slots)`, sorted): the nonzero baby
    /// steps `i` and giant steps `j g`. Pass them to `KeyGenerator::gen_evaluation_keys`.
    pub fn rotation_steps(&self) -> Vec<i64> {
        let (baby, giant) = split_steps(self.diagonals.keys().copied(), self.baby_steps);
        let set: BTreeSet<i64> = baby
            .into_iter()
            .chain(giant)
            .filter(|&s| s != 0)
            .map(|s| s as i64)
            .collect();
        set.into_iter().collect()
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
        let mut giants: BTreeMap<usize, Vec<(usize, Plaintext)>> = BTreeMap::new();
        for (&k, d) in &self.diagonals {
            let (i, jg) = (k % g, k - k % g);
            // rot_{-jg}(d)[t] = d[t - jg].
            let rotated: Vec<Complex64> = (0..n).map(|t| d[(t + n - jg % n) % n]).collect();
            let pt = encoder.encode_complex(&rotated, level, scale, n)?;
            giants.entry(jg).or_default().push((i, pt));
        }
        let baby: BTreeSet<usize> = giants.values().flatten().map(|(i, _)| *i).collect();
        Ok(EncodedLinearTransform {
            slots: n,
            level,
            baby_steps: g,
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

/// A [`LinearTransform`] with its diagonals encoded (pre-rotated by the giant steps) at one
/// level.
#[derive(Clone, Debug)]
pub struct EncodedLinearTransform {
    slots: usize,
    level: usize,
    baby_steps: usize,
    /// Distinct baby steps used.
    baby: Vec<usize>,
    /// Giant step `j g` -> the (baby step `i`, encoded `rot_{-jg}(d_{jg+i})`) pairs.
    giants: Vec<(usize, Vec<(usize, Plaintext)>)>,
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
        let set: BTreeSet<i64> = self
            .baby
            .iter()
            .chain(self.giants.iter().map(|(j, _)| j))
            .filter(|&&s| s != 0)
            .map(|&s| s as i64)
            .collect();
        set.into_iter().collect()
    }

    /// `M v` for the encrypted `v`: the baby rotations `rot_i(v)` from one hoisted
    /// decomposition, per giant step the inner sum of plaintext products rotated by `j g`,
    /// then one rescale. The result is one level below the encoding level with exactly the
    /// input's scale. Errors: slot-count mismatch, input below the encoding level, missing
    /// rotation keys.
    pub fn evaluate(&self, eval: &Evaluator, ct: &Ciphertext) -> Result<Ciphertext> {
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
        let scale = ct.scale();
        let input = eval.drop_to_level(ct, self.level)?;
        let steps: Vec<i64> = self.baby.iter().map(|&i| i as i64).collect();
        let rotated: BTreeMap<usize, Ciphertext> = if steps.iter().all(|&s| s == 0) {
            self.baby.iter().map(|&i| (i, input.clone())).collect()
        } else {
            self.baby
                .iter()
                .copied()
                .zip(eval.rotate_hoisted(&input, &steps)?)
                .collect()
        };
        let mut acc: Option<Ciphertext> = None;
        for (jg, terms) in &self.giants {
            let mut inner: Option<Ciphertext> = None;
            for (i, pt) in terms {
                let v = rotated.get(i).ok_or_else(|| Error::InvalidArgument {
                    op: OP,
                    msg: format!("internal: baby step {i} missing"),
                })?;
                let prod = eval.mul_plain(v, pt)?;
                match inner.as_mut() {
                    Some(s) => eval.add_assign(s, &prod)?,
                    None => inner = Some(prod),
                }
            }
            let Some(mut inner) = inner else { continue };
            if *jg != 0 {
                inner = eval.rotate(&inner, *jg as i64)?;
            }
            match acc.as_mut() {
                Some(a) => eval.add_assign(a, &inner)?,
                None => acc = Some(inner),
            }
        }
        let mut out = match acc {
            Some(a) => a,
            None => {
                // The zero matrix: 0 * v at the right level and scale.
                let mut z = input;
                eval.mul_const_no_rescale_assign(
                    &mut z,
                    Complex64::new(0.0, 0.0),
                    eval.params().ring().q(self.level).value() as f64,
                )?;
                z
            }
        };
        eval.rescale_assign(&mut out)?;
        out.set_scale(scale);
        Ok(out)
    }

    /// The baby-step count the diagonals were split with.
    pub fn baby_steps(&self) -> usize {
        self.baby_steps
    }
}
