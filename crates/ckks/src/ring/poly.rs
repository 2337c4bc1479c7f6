//! RNS polynomials with their representation in the type (as fhe.rs does).

use super::{Basis, RingContext};
use rayon::prelude::*;
use std::marker::PhantomData;
use zeroize::Zeroize;

/// Coefficient representation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Coeff;
/// NTT (evaluation) representation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ntt;

/// Marker trait of the two representations.
pub trait Representation: Send + Sync + 'static {
    /// True for [`Ntt`].
    const IS_NTT: bool;
}
impl Representation for Coeff {
    const IS_NTT: bool = false;
}
impl Representation for Ntt {
    const IS_NTT: bool = true;
}

/// A polynomial with one residue vector of N words per tower of its [`Basis`], tower-major.
#[derive(Clone, PartialEq, Eq)]
pub struct Poly<R: Representation> {
    data: Vec<u64>,
    basis: Basis,
    n: usize,
    _repr: PhantomData<R>,
}

impl<R: Representation> std::fmt::Debug for Poly<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Poly(ntt={}, basis={:?}, n={})",
            R::IS_NTT,
            self.basis,
            self.n
        )
    }
}

impl<R: Representation> Zeroize for Poly<R> {
    fn zeroize(&mut self) {
        self.data.zeroize();
    }
}

impl<R: Representation> Poly<R> {
    /// The zero polynomial.
    pub fn zero(ring: &RingContext, basis: Basis) -> Self {
        Self::from_data(ring.n(), basis, vec![0u64; ring.n() * basis.len()])
    }

    /// Wraps raw tower-major residues; callers guarantee reduction.
    pub(crate) fn from_data(n: usize, basis: Basis, data: Vec<u64>) -> Self {
        debug_assert_eq!(data.len(), n * basis.len());
        Self {
            data,
            basis,
            n,
            _repr: PhantomData,
        }
    }

    /// The towers this polynomial has.
    pub fn basis(&self) -> Basis {
        self.basis
    }

    /// Ring degree.
    pub fn n(&self) -> usize {
        self.n
    }

    /// Residues of tower `t`.
    #[inline]
    pub fn tower(&self, t: usize) -> &[u64] {
        &self.data[t * self.n..(t + 1) * self.n]
    }

    /// Mutable residues of tower `t`.
    #[inline]
    pub fn tower_mut(&mut self, t: usize) -> &mut [u64] {
        &mut self.data[t * self.n..(t + 1) * self.n]
    }

    /// All residues, tower-major.
    pub fn data(&self) -> &[u64] {
        &self.data
    }

    pub(crate) fn data_mut(&mut self) -> &mut [u64] {
        &mut self.data
    }

    /// Parallel iterator over (tower index, tower residues).
    pub(crate) fn towers_mut(
        &mut self,
    ) -> impl IndexedParallelIterator<Item = (usize, &mut [u64])> {
        self.data.par_chunks_mut(self.n).enumerate()
    }

    /// Keeps the first `q` ciphertext towers and the first `p` special towers.
    pub fn truncate(&mut self, basis: Basis) {
        debug_assert!(basis.q <= self.basis.q && basis.p <= self.basis.p);
        if basis.p == 0 || basis.q == self.basis.q {
            // The kept towers are a prefix of the storage.
            self.data.truncate(self.n * basis.len());
            self.basis = basis;
        } else {
            *self = self.truncated(basis);
        }
    }

    /// Two new polynomials over `basis`, filled tower by tower in parallel: `fill(state, t,
    /// tower_0, tower_1)` writes every residue of tower `t` of both; `init` makes the state
    /// of one parallel task (its scratch buffers).
    pub(crate) fn pair_from_towers<S>(
        ring: &RingContext,
        basis: Basis,
        init: impl Fn() -> S + Sync + Send,
        fill: impl Fn(&mut S, usize, &mut [u64], &mut [u64]) + Sync + Send,
    ) -> [Self; 2] {
        let n = ring.n();
        let mut out0 = vec![0u64; n * basis.len()];
        let mut out1 = vec![0u64; n * basis.len()];
        out0.par_chunks_mut(n)
            .zip(out1.par_chunks_mut(n))
            .enumerate()
            .for_each_init(init, |s, (t, (o0, o1))| fill(s, t, o0, o1));
        [
            Self::from_data(n, basis, out0),
            Self::from_data(n, basis, out1),
        ]
    }

    /// A copy restricted to `basis` (a sub-basis).
    pub fn truncated(&self, basis: Basis) -> Self {
        let mut data = Vec::with_capacity(self.n * basis.len());
        data.extend_from_slice(&self.data[..self.n * basis.q]);
        let p0 = self.n * self.basis.q;
        data.extend_from_slice(&self.data[p0..p0 + self.n * basis.p]);
        Self::from_data(self.n, basis, data)
    }

    /// self += other, tower by tower (same representation and basis).
    pub fn add_assign(&mut self, ring: &RingContext, other: &Self) {
        let basis = self.basis;
        debug_assert!(other.basis.q >= basis.q && other.basis.p >= basis.p);
        self.towers_mut().for_each(|(t, a)| {
            let m = ring.modulus(basis, t);
            let b = other.tower_in(basis, t);
            for (x, &y) in a.iter_mut().zip(b) {
                *x = m.add(*x, y);
            }
        });
    }

    /// self -= other.
    pub fn sub_assign(&mut self, ring: &RingContext, other: &Self) {
        let basis = self.basis;
        self.towers_mut().for_each(|(t, a)| {
            let m = ring.modulus(basis, t);
            let b = other.tower_in(basis, t);
            for (x, &y) in a.iter_mut().zip(b) {
                *x = m.sub(*x, y);
            }
        });
    }

    /// self = -self.
    pub fn neg_assign(&mut self, ring: &RingContext) {
        let basis = self.basis;
        self.towers_mut().for_each(|(t, a)| {
            let m = ring.modulus(basis, t);
            for x in a.iter_mut() {
                *x = m.neg(*x);
            }
        });
    }

    /// Multiplies tower t by `scalars[t]` (a residue mod that tower's prime).
    pub fn mul_scalar_assign(&mut self, ring: &RingContext, scalars: &[u64]) {
        let basis = self.basis;
        self.towers_mut().for_each(|(t, a)| {
            super::simd::mul_scalar(a, scalars[t], ring.modulus(basis, t));
        });
    }

    /// The tower of `other` that has the same prime as tower `t` of `basis`.
    #[inline]
    fn tower_in(&self, basis: Basis, t: usize) -> &[u64] {
        let idx = if t < basis.q {
            t
        } else {
            self.basis.q + (t - basis.q)
        };
        self.tower(idx)
    }
}

impl Poly<Coeff> {
    /// Reduces signed integer coefficients into every tower.
    pub fn from_signed(ring: &RingContext, basis: Basis, coeffs: &[i64]) -> Self {
        let mut p = Self::zero(ring, basis);
        p.towers_mut().for_each(|(t, a)| {
            let m = ring.modulus(basis, t);
            for (x, &c) in a.iter_mut().zip(coeffs) {
                *x = m.reduce_i64(c);
            }
        });
        p
    }

    /// Forward NTT of every tower.
    pub fn into_ntt(mut self, ring: &RingContext) -> Poly<Ntt> {
        let basis = self.basis;
        self.towers_mut()
            .for_each(|(t, a)| ring.ntt(basis, t).forward(a));
        Poly::from_data(self.n, basis, self.data)
    }

    /// A copy in NTT form.
    pub fn to_ntt(&self, ring: &RingContext) -> Poly<Ntt> {
        self.clone().into_ntt(ring)
    }
}

impl Poly<Ntt> {
    /// Inverse NTT of every tower.
    pub fn into_coeff(mut self, ring: &RingContext) -> Poly<Coeff> {
        let basis = self.basis;
        self.towers_mut()
            .for_each(|(t, a)| ring.ntt(basis, t).backward(a));
        Poly::from_data(self.n, basis, self.data)
    }

    /// A copy in coefficient form.
    pub fn to_coeff(&self, ring: &RingContext) -> Poly<Coeff> {
        self.clone().into_coeff(ring)
    }

    /// self *= other pointwise.
    pub fn mul_assign(&mut self, ring: &RingContext, other: &Self) {
        let basis = self.basis;
        self.towers_mut().for_each(|(t, a)| {
            let m = ring.modulus(basis, t);
            let b = other.tower_in(basis, t);
            for (x, &y) in a.iter_mut().zip(b) {
                *x = m.mul(*x, y);
            }
        });
    }

    /// self += a * b pointwise.
    pub fn mul_add_assign(&mut self, ring: &RingContext, a: &Self, b: &Self) {
        let basis = self.basis;
        self.towers_mut().for_each(|(t, acc)| {
            let m = ring.modulus(basis, t);
            let (x, y) = (a.tower_in(basis, t), b.tower_in(basis, t));
            for ((z, &x), &y) in acc.iter_mut().zip(x).zip(y) {
                *z = m.add(*z, m.mul(x, y));
            }
        });
    }

    /// self -= a * b pointwise.
    pub fn mul_sub_assign(&mut self, ring: &RingContext, a: &Self, b: &Self) {
        let basis = self.basis;
        self.towers_mut().for_each(|(t, acc)| {
            let m = ring.modulus(basis, t);
            let (x, y) = (a.tower_in(basis, t), b.tower_in(basis, t));
            for ((z, &x), &y) in acc.iter_mut().zip(x).zip(y) {
                *z = m.sub(*z, m.mul(x, y));
            }
        });
    }

    /// The automorphism X -> X^g (g odd), a permutation of NTT slots.
    pub fn automorphism(&self, ring: &RingContext, g: u64) -> Self {
        let perm = ring.galois_permutation(g);
        // Filled by extension, not zeroed first: the gather is the only pass over the output
        // (callers run several automorphisms in parallel where it matters).
        let mut data = Vec::with_capacity(self.data.len());
        for src in self.data.chunks(self.n) {
            data.extend(perm.iter().map(|&j| src[j as usize]));
        }
        Self::from_data(self.n, self.basis, data)
    }
}

impl Poly<Ntt> {
    /// [`Self::dot_pairs`] with every `p_k` given by its scaled coefficients (see
    /// [`place_scaled`]) and built one tower at a time, into a per-task scratch buffer, right
    /// before its products: the plaintexts never exist whole (compact linear-transform
    /// diagonals; `LinearTransform::with_compact_diagonals`). `basis` has no special primes.
    pub(crate) fn dot_pairs_scaled(
        ring: &RingContext,
        basis: Basis,
        terms: &[(&Poly<Ntt>, &Poly<Ntt>, &[f64])],
    ) -> [Poly<Ntt>; 2] {
        let n = ring.n();
        Poly::pair_from_towers(
            ring,
            basis,
            || vec![vec![0u64; n]; terms.len()],
            |bufs, t, o0, o1| {
                let m = ring.modulus(basis, t);
                for (buf, (_, _, c)) in bufs.iter_mut().zip(terms) {
                    place_scaled(buf, c, m);
                    ring.ntt(basis, t).forward(buf);
                }
                let ps: Vec<&[u64]> = bufs.iter().map(Vec::as_slice).collect();
                let a_s: Vec<&[u64]> = terms.iter().map(|(a, _, _)| a.tower(t)).collect();
                let b_s: Vec<&[u64]> = terms.iter().map(|(_, b, _)| b.tower(t)).collect();
                super::simd::dot_pairs(o0, o1, &ps, &a_s, &b_s, m);
            },
        )
    }

    /// `(sum_k a_k * p_k, sum_k b_k * p_k)` pointwise over `basis`, one pass per tower with the
    /// key-switching inner product's vector kernel, tower-parallel. Tower t of every operand is
    /// read as tower t of `basis`: operands over `basis` itself, or (when `basis` has no
    /// special primes) over a larger Q basis, whose first towers are the same primes.
    pub(crate) fn dot_pairs(
        ring: &RingContext,
        basis: Basis,
        terms: &[(&Poly<Ntt>, &Poly<Ntt>, &Poly<Ntt>)],
    ) -> [Poly<Ntt>; 2] {
        Poly::pair_from_towers(
            ring,
            basis,
            || (),
            |_, t, o0, o1| {
                let ps: Vec<&[u64]> = terms.iter().map(|(_, _, p)| p.tower(t)).collect();
                let a_s: Vec<&[u64]> = terms.iter().map(|(a, _, _)| a.tower(t)).collect();
                let b_s: Vec<&[u64]> = terms.iter().map(|(_, b, _)| b.tower(t)).collect();
                super::simd::dot_pairs(o0, o1, &ps, &a_s, &b_s, ring.modulus(basis, t));
            },
        )
    }
    /// Divides a polynomial over q_0..q_l (NTT form) by its last prime q_l with rounding,
    /// leaving it over q_0..q_{l-1}: `(c - [c]_{q_l}) / q_l` with the centred remainder (exact
    /// rounding). The CKKS rescale and the key switch's separate rescale at level 0 use it.
    pub fn divide_by_last_q(&mut self, ring: &RingContext) {
        let l = self.basis().q - 1;
        let ql = *ring.q(l);
        let old_basis = self.basis();
        let mut last = self.tower(l).to_vec();
        ring.ntt(old_basis, l).backward(&mut last);
        let half = ql.value() / 2;
        let new_basis = Basis { q: l, p: 0 };
        self.truncate(new_basis);
        self.towers_mut().for_each(|(i, tower)| {
            let m = ring.q(i);
            let qi = m.value();
            let ql_mod = m.reduce(ql.value());
            // [c]_{q_l} centred, reduced mod q_i. Branch-free when q_l < 2 q_i (the usual
            // chain: one conditional subtraction); the random sign of the remainder defeats
            // prediction.
            let mut r: Vec<u64> = if ql.value() < 2 * qi {
                last.iter()
                    .map(|&x| {
                        let y = x.min(x.wrapping_sub(qi));
                        let neg = u64::from(x > half).wrapping_neg();
                        let z = y.wrapping_sub(ql_mod & neg);
                        z.min(z.wrapping_add(qi))
                    })
                    .collect()
            } else {
                last.iter()
                    .map(|&x| {
                        if x > half {
                            m.sub(m.reduce(x), ql_mod)
                        } else {
                            m.reduce(x)
                        }
                    })
                    .collect()
            };
            ring.ntt(new_basis, i).forward(&mut r);
            let inv = m.inv(ql_mod).unwrap_or(0);
            super::simd::sub_mul_scalar(tower, &r, inv, m);
        });
    }
}

/// Writes into `tower` (coefficient form, length N) the residues modulo `m` of a plaintext
/// given by its scaled coefficients: `coeffs` holds 2 s values (real parts, then imaginary
/// parts, of an s-slot encoding), rounded, at positions `i * gap` and `N/2 + i * gap` with
/// gap = N / 2s; every other coefficient is 0.
pub(crate) fn place_scaled(tower: &mut [u64], coeffs: &[f64], m: &super::Modulus) {
    let n = tower.len();
    let slots = (coeffs.len() / 2).max(1);
    let gap = n / (2 * slots);
    tower.fill(0);
    let (re, im) = coeffs.split_at(coeffs.len() / 2);
    for (i, &c) in re.iter().enumerate() {
        tower[i * gap] = if c == 0.0 { 0 } else { m.reduce_f64(c) };
    }
    for (i, &c) in im.iter().enumerate() {
        tower[n / 2 + i * gap] = if c == 0.0 { 0 } else { m.reduce_f64(c) };
    }
}
