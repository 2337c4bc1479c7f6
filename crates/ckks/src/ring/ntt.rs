//! The negacyclic NTT operator over one prime.
//!
//! Production transforms go through `tfhe-ntt` (AVX2/AVX-512, IFMA for primes below 2^51).
//! A plain scalar Cooley-Tukey/Gentleman-Sande transform (Longa-Naehrig 2016) is kept
//! behind the same operator so tests can check the fast one against it.
//!
//! Both backends leave evaluations in a permuted (bit-reversed) order. Instead of relying
//! on the exact order, the operator measures it once: slot `i` holds the evaluation at
//! psi^{e_i} for a primitive 2N-th root psi, and Galois automorphisms in the NTT domain are
//! permutations derived from the exponents `e_i`.

use super::modulus::Modulus;
use super::simd;

/// Which implementation a transform uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NttBackend {
    /// `tfhe-ntt`'s SIMD plan (the default).
    Fast,
    /// The simple scalar reference.
    Scalar,
}

enum Imp {
    Fast(tfhe_ntt::prime64::Plan),
    Scalar(ScalarNtt),
}

/// Forward/inverse negacyclic NTT of size N modulo one prime.
pub struct NttOperator {
    n: usize,
    modulus: Modulus,
    /// N^{-1} mod q.
    n_inv: u64,
    imp: Imp,
}

impl std::fmt::Debug for NttOperator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "NttOperator(n={}, q={})", self.n, self.modulus.value())
    }
}

impl NttOperator {
    /// Creates the operator; None if q is not an NTT-friendly prime for N.
    pub fn new(n: usize, modulus: Modulus, backend: NttBackend) -> Option<Self> {
        let imp = match backend {
            NttBackend::Fast => Imp::Fast(tfhe_ntt::prime64::Plan::try_new(n, modulus.value())?),
            NttBackend::Scalar => Imp::Scalar(ScalarNtt::new(n, modulus)?),
        };
        let n_inv = modulus.inv(modulus.reduce(n as u64))?;
        Some(Self {
            n,
            modulus,
            n_inv,
            imp,
        })
    }

    /// The ring degree N.
    pub fn n(&self) -> usize {
        self.n
    }

    /// Coefficients (standard order, reduced) to evaluations (permuted order).
    #[inline]
    pub fn forward(&self, a: &mut [u64]) {
        match &self.imp {
            Imp::Fast(plan) => plan.fwd(a),
            Imp::Scalar(s) => s.forward(a),
        }
    }

    /// Evaluations back to coefficients, normalised (includes the 1/N factor).
    #[inline]
    pub fn backward(&self, a: &mut [u64]) {
        match &self.imp {
            Imp::Fast(plan) => {
                plan.inv(a);
                plan.normalize(a);
            }
            Imp::Scalar(s) => s.backward(a),
        }
    }

    /// [`Self::backward`] times `w` (< q), in the same pass as the 1/N factor: for callers
    /// that scale the coefficients next (a base conversion's input factors).
    pub fn backward_scaled(&self, a: &mut [u64], w: u64) {
        match &self.imp {
            Imp::Fast(plan) => {
                plan.inv(a);
                simd::mul_scalar(a, self.modulus.mul(w, self.n_inv), &self.modulus);
            }
            Imp::Scalar(s) => {
                s.backward(a);
                simd::mul_scalar(a, w, &self.modulus);
            }
        }
    }

    /// Measures the evaluation exponents: `e[i]` odd in `[1, 2N)`, with slot i holding
    /// `a(psi^{e[i]})` where psi is the root at slot 0 (so `e[0] == 1`).
    pub fn evaluation_exponents(&self) -> Vec<u32> {
        let n = self.n;
        let two_n = 2 * n;
        let mut x = vec![0u64; n];
        x[1] = 1;
        self.forward(&mut x);
        let psi = x[0];
        let mut exponent_of = std::collections::HashMap::with_capacity(n);
        let psi2 = self.modulus.mul(psi, psi);
        let mut p = psi;
        for k in (1..two_n).step_by(2) {
            exponent_of.insert(p, k as u32);
            p = self.modulus.mul(p, psi2);
        }
        x.iter()
            .map(|v| exponent_of.get(v).copied().unwrap_or(0))
            .collect()
    }
}

/// Textbook negacyclic NTT with bit-reversed output (Longa-Naehrig 2016, Alg. 1 and 2).
struct ScalarNtt {
    n: usize,
    modulus: Modulus,
    psi_rev: Vec<u64>,
    psi_inv_rev: Vec<u64>,
    n_inv: u64,
}

impl ScalarNtt {
    fn new(n: usize, modulus: Modulus) -> Option<Self> {
        let q = modulus.value();
        if !n.is_power_of_two() || n < 2 || (q - 1) % (2 * n as u64) != 0 {
            return None;
        }
        // Smallest generator-derived primitive 2N-th root.
        let psi = (2..q).find_map(|g| {
            let c = modulus.pow(g, (q - 1) / (2 * n as u64));
            (modulus.pow(c, n as u64) == q - 1).then_some(c)
        })?;
        let psi_inv = modulus.inv(psi)?;
        let bits = n.trailing_zeros();
        let mut psi_rev = vec![0u64; n];
        let mut psi_inv_rev = vec![0u64; n];
        let (mut p, mut pi) = (1u64, 1u64);
        for i in 0..n {
            let r = i.reverse_bits() >> (usize::BITS - bits);
            psi_rev[r] = p;
            psi_inv_rev[r] = pi;
            p = modulus.mul(p, psi);
            pi = modulus.mul(pi, psi_inv);
        }
        Some(Self {
            n,
            modulus,
            psi_rev,
            psi_inv_rev,
            n_inv: modulus.inv(n as u64)?,
        })
    }

    fn forward(&self, a: &mut [u64]) {
        let m = &self.modulus;
        let mut t = self.n;
        let mut len = 1;
        while len < self.n {
            t /= 2;
            for i in 0..len {
                let s = self.psi_rev[len + i];
                let j1 = 2 * i * t;
                for j in j1..j1 + t {
                    let u = a[j];
                    let v = m.mul(a[j + t], s);
                    a[j] = m.add(u, v);
                    a[j + t] = m.sub(u, v);
                }
            }
            len *= 2;
        }
    }

    fn backward(&self, a: &mut [u64]) {
        let m = &self.modulus;
        let mut t = 1;
        let mut len = self.n;
        while len > 1 {
            let h = len / 2;
            let mut j1 = 0;
            for i in 0..h {
                let s = self.psi_inv_rev[h + i];
                for j in j1..j1 + t {
                    let u = a[j];
                    let v = a[j + t];
                    a[j] = m.add(u, v);
                    a[j + t] = m.mul(m.sub(u, v), s);
                }
                j1 += 2 * t;
            }
            t *= 2;
            len = h;
        }
        for x in a.iter_mut() {
            *x = m.mul(*x, self.n_inv);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ring::modulus::generate_primes;

    fn schoolbook(a: &[u64], b: &[u64], m: &Modulus) -> Vec<u64> {
        let n = a.len();
        let mut c = vec![0u64; n];
        for i in 0..n {
            for j in 0..n {
                let p = m.mul(a[i], b[j]);
                if i + j < n {
                    c[i + j] = m.add(c[i + j], p);
                } else {
                    c[i + j - n] = m.sub(c[i + j - n], p);
                }
            }
        }
        c
    }

    #[test]
    fn both_backends_multiply_negacyclically() {
        let n = 64;
        for bits in [30u32, 50, 60] {
            let q = generate_primes(bits, 2 * n as u64, 1, &[]).unwrap_or_default()[0];
            let m = Modulus::new(q);
            let a: Vec<u64> = (0..n as u64).map(|i| (i * 7919 + 3) % q).collect();
            let b: Vec<u64> = (0..n as u64).map(|i| (i * i * 104_729 + 11) % q).collect();
            let expected = schoolbook(&a, &b, &m);
            for backend in [NttBackend::Fast, NttBackend::Scalar] {
                let op = NttOperator::new(n, m, backend).expect("ntt-friendly");
                let (mut x, mut y) = (a.clone(), b.clone());
                op.forward(&mut x);
                op.forward(&mut y);
                for (x, y) in x.iter_mut().zip(&y) {
                    *x = m.mul(*x, *y);
                }
                op.backward(&mut x);
                assert_eq!(x, expected, "{backend:?} q={q}");
                let e = op.evaluation_exponents();
                assert_eq!(e[0], 1);
                let mut sorted = e.clone();
                sorted.sort_unstable();
                let odd: Vec<u32> = (0..n as u32).map(|k| 2 * k + 1).collect();
                assert_eq!(
                    sorted, odd,
                    "exponents are a permutation of the odd residues"
                );
            }
        }
    }

    #[test]
    fn known_answer_small_ring() {
        // N = 4, q = 17: psi = 9 is a primitive 8th root (9^4 = 16 = -1 mod 17).
        // NTT of the constant polynomial 1 is all ones; of X it is the set of odd powers of psi.
        let m = Modulus::new(17);
        let op = ScalarNtt::new(4, m).expect("17 = 1 mod 8");
        let mut one = vec![1, 0, 0, 0];
        op.forward(&mut one);
        assert_eq!(one, vec![1, 1, 1, 1]);
        let mut x = vec![0, 1, 0, 0];
        op.forward(&mut x);
        let mut sorted = x.clone();
        sorted.sort_unstable();
        // Roots of X^4 + 1 mod 17: 2, 8, 9, 15.
        assert_eq!(sorted, vec![2, 8, 9, 15]);
        op.backward(&mut x);
        assert_eq!(x, vec![0, 1, 0, 0]);
    }
}
