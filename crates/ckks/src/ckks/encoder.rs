//! The CKKS encoder: the canonical embedding (Cheon-Kim-Kim-Song 2017) evaluated with the
//! "special FFT" over the rotation group <5> of Z_{2N}^* (as in HEAAN and Lattigo).
//!
//! `slots` complex values (a power of two up to N/2) become a polynomial in Y = X^{N/(2 slots)}:
//! with fewer slots the message is replicated and rotations act modulo `slots`.

use crate::error::{Error, Result};
use crate::params::Params;
use crate::ring::{Coeff, Ntt, Poly, place_scaled};
use crate::rlwe::ciphertext::Plaintext;
use num_complex::Complex64;
use rayon::prelude::*;
use std::f64::consts::PI;
use std::sync::Arc;

/// Encoder/decoder for one parameter set.
pub struct Encoder {
    params: Arc<Params>,
    /// 5^j mod 2N for j < N/2.
    rot_group: Vec<u64>,
    /// e^{2 pi i k / 2N} for k in 0..=2N.
    roots: Vec<Complex64>,
}

impl std::fmt::Debug for Encoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Encoder(N={})", self.params.n())
    }
}

/// Precision of decoded values against the expected ones, in bits (-log2 |error|).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PrecisionStats {
    /// Mean of -log2 |error| over the slots... computed as -log2(mean |error|).
    pub mean_bits: f64,
    /// -log2 of the largest error.
    pub min_bits: f64,
    /// Largest absolute error.
    pub max_error: f64,
    /// Mean absolute error.
    pub mean_error: f64,
}

/// Compares decoded values with the expected ones.
pub fn precision_stats(expected: &[Complex64], got: &[Complex64]) -> PrecisionStats {
    let errs: Vec<f64> = expected
        .iter()
        .zip(got)
        .map(|(a, b)| (a - b).norm())
        .collect();
    let max_error = errs.iter().copied().fold(0.0, f64::max);
    let mean_error = errs.iter().sum::<f64>() / errs.len().max(1) as f64;
    let bits = |e: f64| if e == 0.0 { 64.0 } else { -e.log2() };
    PrecisionStats {
        mean_bits: bits(mean_error),
        min_bits: bits(max_error),
        max_error,
        mean_error,
    }
}

impl Encoder {
    /// Precomputes the rotation group and roots of unity.
    pub fn new(params: Arc<Params>) -> Self {
        let n = params.n();
        let m = 2 * n as u64;
        let mut rot_group = Vec::with_capacity(n / 2);
        let mut g = 1u64;
        for _ in 0..n / 2 {
            rot_group.push(g);
            g = g * 5 % m;
        }
        let roots = (0..=m)
            .map(|k| Complex64::from_polar(1.0, 2.0 * PI * k as f64 / m as f64))
            .collect();
        Self {
            params,
            rot_group,
            roots,
        }
    }

    /// The parameters.
    pub fn params(&self) -> &Arc<Params> {
        &self.params
    }

    fn check_slots(&self, slots: usize, op: &'static str) -> Result<()> {
        if !slots.is_power_of_two() || slots > self.params.max_slots() {
            return Err(Error::InvalidArgument {
                op,
                msg: format!(
                    "slot count {slots} must be a power of two up to N/2 = {}",
                    self.params.max_slots()
                ),
            });
        }
        Ok(())
    }

    /// Encodes complex values into `slots` slots (zero-padded) at `level` and `scale`.
    pub fn encode_complex(
        &self,
        values: &[Complex64],
        level: usize,
        scale: f64,
        slots: usize,
    ) -> Result<Plaintext> {
        let coeffs = self.scaled_coefficients(values, level, scale, slots)?;
        Ok(Plaintext {
            params: self.params.clone(),
            poly: Self::poly_from_scaled(&self.params, &coeffs, level),
            level,
            scale,
            slots,
        })
    }

    /// The first half of [`Self::encode_complex`], with all its checks (`level` is only
    /// checked: the coefficients serve any level): the 2 `slots`
    /// nonzero coefficients of the plaintext, scaled but not rounded, real parts then
    /// imaginary parts; coefficient `i` of either half sits at `i * N / (2 slots)` of its half
    /// of the polynomial. A compact form of a plaintext for any level: 2 `slots` numbers
    /// instead of N residues per prime.
    pub(crate) fn scaled_coefficients(
        &self,
        values: &[Complex64],
        level: usize,
        scale: f64,
        slots: usize,
    ) -> Result<Vec<f64>> {
        self.check_slots(slots, "encode")?;
        if values.len() > slots {
            return Err(Error::TooManyValues {
                op: "encode",
                got: values.len(),
                slots,
            });
        }
        if level > self.params.max_level() {
            return Err(Error::InvalidLevel {
                op: "encode",
                level,
                max: self.params.max_level(),
            });
        }
        if !(scale.is_finite() && scale > 0.0) {
            return Err(Error::InvalidArgument {
                op: "encode",
                msg: format!("scale {scale} must be positive and finite"),
            });
        }
        if let Some(v) = values
            .iter()
            .find(|v| !(v.re.is_finite() && v.im.is_finite()))
        {
            return Err(Error::InvalidArgument {
                op: "encode",
                msg: format!("value {v} is not finite"),
            });
        }
        let mut vals = vec![Complex64::new(0.0, 0.0); slots];
        vals[..values.len()].copy_from_slice(values);
        self.fft_special_inv(&mut vals);
        let mut coeffs = Vec::with_capacity(2 * slots);
        coeffs.extend(vals.iter().map(|v| v.re * scale));
        coeffs.extend(vals.iter().map(|v| v.im * scale));
        Ok(coeffs)
    }

    /// The second half of [`Self::encode_complex`]: the plaintext polynomial (NTT form over
    /// Q_level) of [`Self::scaled_coefficients`], each rounded and reduced per prime.
    pub(crate) fn poly_from_scaled(params: &Params, coeffs: &[f64], level: usize) -> Poly<Ntt> {
        let ring = params.ring();
        let basis = params.basis_q(level);
        let mut poly = Poly::<Coeff>::zero(ring, basis);
        poly.towers_mut().for_each(|(t, tower)| {
            place_scaled(tower, coeffs, ring.modulus(basis, t));
        });
        poly.into_ntt(ring)
    }

    /// Encodes real values.
    pub fn encode(
        &self,
        values: &[f64],
        level: usize,
        scale: f64,
        slots: usize,
    ) -> Result<Plaintext> {
        let v: Vec<Complex64> = values.iter().map(|&x| Complex64::new(x, 0.0)).collect();
        self.encode_complex(&v, level, scale, slots)
    }

    /// Decodes to complex values.
    pub fn decode_complex(&self, pt: &Plaintext) -> Result<Vec<Complex64>> {
        let slots = pt.slots;
        self.check_slots(slots, "decode")?;
        let ring = self.params.ring();
        let n = ring.n();
        let gap = n / (2 * slots);
        let coeff = pt.poly.to_coeff(ring);
        let positions: Vec<usize> = (0..slots)
            .map(|i| i * gap)
            .chain((0..slots).map(|i| n / 2 + i * gap))
            .collect();
        let level = pt.level;
        let lift = CenteredLift::new(&self.params, level);
        let lifted: Vec<f64> = positions
            .par_iter()
            .map(|&c| {
                let residues: Vec<u64> = (0..=level).map(|i| coeff.tower(i)[c]).collect();
                lift.lift(&self.params, &residues)
            })
            .collect();
        let mut vals: Vec<Complex64> = (0..slots)
            .map(|i| Complex64::new(lifted[i] / pt.scale, lifted[slots + i] / pt.scale))
            .collect();
        self.fft_special(&mut vals);
        Ok(vals)
    }

    /// Decodes to real values (imaginary parts dropped).
    pub fn decode(&self, pt: &Plaintext) -> Result<Vec<f64>> {
        Ok(self.decode_complex(pt)?.into_iter().map(|c| c.re).collect())
    }

    /// The root of unity used by the butterflies of block length `len` at offset `j`
    /// (`j < len / 2`) of [`Self::fft_special`] (`inverse = false`) or of
    /// [`Self::fft_special_inv`] (`inverse = true`, the conjugate root).
    fn butterfly_root(&self, len: usize, j: usize, inverse: bool) -> Complex64 {
        let m = 2 * self.params.n();
        let lenq = len * 4;
        let r = self.rot_group[j] as usize % lenq;
        let idx = if inverse { lenq - r } else { r };
        self.roots[idx * (m / lenq)]
    }

    /// One butterfly stage of the special FFT on `slots` values as a sparse matrix given by
    /// its diagonals (offset `k` mod `slots` -> `d_k`, with `out[i] = sum_k d_k[i] in[i + k]`):
    /// the stage of block length `len` of [`Self::fft_special`] (`inverse = false`, without
    /// its bit reversal) or of [`Self::fft_special_inv`] (`inverse = true`, without its bit
    /// reversal and its 1/slots). The homomorphic DFTs of bootstrapping are products of these
    /// stages, so they use exactly the encoder's own roots and ordering.
    pub(crate) fn fft_stage_diagonals(
        &self,
        slots: usize,
        len: usize,
        inverse: bool,
    ) -> Vec<(i64, Vec<Complex64>)> {
        let zero = Complex64::new(0.0, 0.0);
        let one = Complex64::new(1.0, 0.0);
        let lenh = len / 2;
        let (mut d0, mut up, mut down) = (vec![zero; slots], vec![zero; slots], vec![zero; slots]);
        for i in (0..slots).step_by(len) {
            for j in 0..lenh {
                let w = self.butterfly_root(len, j, inverse);
                let (a, b) = (i + j, i + j + lenh);
                if inverse {
                    // out[a] = in[a] + in[b]; out[b] = (in[a] - in[b]) w.
                    d0[a] = one;
                    up[a] = one;
                    down[b] = w;
                    d0[b] = -w;
                } else {
                    // out[a] = in[a] + w in[b]; out[b] = in[a] - w in[b].
                    d0[a] = one;
                    up[a] = w;
                    down[b] = one;
                    d0[b] = -w;
                }
            }
        }
        vec![(0, d0), (lenh as i64, up), (-(lenh as i64), down)]
    }

    /// Evaluates the message polynomial at the slot roots (HEAAN's fftSpecial).
    pub(crate) fn fft_special(&self, vals: &mut [Complex64]) {
        let size = vals.len();
        bit_reverse(vals);
        let mut len = 2;
        while len <= size {
            let lenh = len / 2;
            for i in (0..size).step_by(len) {
                for j in 0..lenh {
                    let u = vals[i + j];
                    let v = vals[i + j + lenh] * self.butterfly_root(len, j, false);
                    vals[i + j] = u + v;
                    vals[i + j + lenh] = u - v;
                }
            }
            len *= 2;
        }
    }

    /// Inverse of [`Self::fft_special`] including the 1/size factor.
    pub(crate) fn fft_special_inv(&self, vals: &mut [Complex64]) {
        let size = vals.len();
        let mut len = size;
        while len >= 2 {
            let lenh = len / 2;
            for i in (0..size).step_by(len) {
                for j in 0..lenh {
                    let u = vals[i + j] + vals[i + j + lenh];
                    let v = (vals[i + j] - vals[i + j + lenh]) * self.butterfly_root(len, j, true);
                    vals[i + j] = u;
                    vals[i + j + lenh] = v;
                }
            }
            len /= 2;
        }
        bit_reverse(vals);
        let inv = 1.0 / size as f64;
        for v in vals.iter_mut() {
            *v *= inv;
        }
    }
}

/// In-place bit-reversal permutation (the special FFT's reordering).
pub(crate) fn bit_reverse<T>(vals: &mut [T]) {
    let n = vals.len();
    let mut j = 0usize;
    for i in 1..n {
        let mut bit = n >> 1;
        while j & bit != 0 {
            j ^= bit;
            bit >>= 1;
        }
        j |= bit;
        if i < j {
            vals.swap(i, j);
        }
    }
}

/// Garner's mixed-radix conversion with balanced digits (x = a_0 + a_1 q_0 + a_2 q_0 q_1 + ...
/// with |a_i| <= q_i / 2), which yields the centered representative in (-Q/2, Q/2] directly.
/// Precomputes the radices modulo each prime once per level.
pub(crate) struct CenteredLift {
    /// q_k mod q_i, row i.
    q_mod: Vec<Vec<u64>>,
    /// (q_0 ... q_{i-1})^{-1} mod q_i.
    radix_inv: Vec<u64>,
    q: Vec<f64>,
}

impl CenteredLift {
    pub(crate) fn new(params: &Params, level: usize) -> Self {
        let ring = params.ring();
        let q_mod: Vec<Vec<u64>> = (0..=level)
            .map(|i| {
                (0..i)
                    .map(|k| ring.q(i).reduce(ring.q(k).value()))
                    .collect()
            })
            .collect();
        let radix_inv = (0..=level)
            .map(|i| {
                let m = ring.q(i);
                let radix = q_mod[i].iter().fold(1u64, |acc, &v| m.mul(acc, v));
                m.inv(radix).unwrap_or(0)
            })
            .collect();
        Self {
            q_mod,
            radix_inv,
            q: (0..=level).map(|i| ring.q(i).value() as f64).collect(),
        }
    }

    /// The centered value of the residues (one per prime q_0..q_level) as f64.
    pub(crate) fn lift(&self, params: &Params, residues: &[u64]) -> f64 {
        let ring = params.ring();
        let mut digits: Vec<i64> = Vec::with_capacity(residues.len());
        for (i, &r) in residues.iter().enumerate() {
            let m = ring.q(i);
            let mut acc = 0u64;
            let mut radix = 1u64;
            for (k, &a) in digits.iter().enumerate() {
                acc = m.add(acc, m.mul(m.reduce_i64(a), radix));
                radix = m.mul(radix, self.q_mod[i][k]);
            }
            digits.push(m.center(m.mul(m.sub(r, acc), self.radix_inv[i])));
        }
        digits
            .iter()
            .zip(&self.q)
            .rev()
            .fold(0f64, |x, (&a, &q)| x * q + a as f64)
    }
}
