//! Polynomial arithmetic in `R_Q = Z_Q[X]/(X^N + 1)` in residue-number-system form.
//!
//! A [`RingContext`] owns the prime chain: the ciphertext primes q_0..q_L followed by the
//! special primes p_0..p_{k-1} used by hybrid key switching. A [`Poly`] stores one residue
//! polynomial per tower for a [`Basis`]: the first `q` ciphertext primes (a level view, as
//! Lattigo's `AtLevel`) plus the first `p` special primes. Its representation (coefficients
//! or NTT evaluations) is part of its type.

pub mod basis_conversion;
pub mod modulus;
pub mod ntt;
mod poly;
pub(crate) mod scratch;
pub(crate) mod simd;

pub use basis_conversion::{BasisConverter, PreparedConversion};
pub use modulus::{Modulus, generate_primes, is_prime};
pub use ntt::{NttBackend, NttOperator};
pub(crate) use poly::place_scaled;
pub use poly::{Coeff, Ntt, Poly, Representation};

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Which towers a polynomial has: the first `q` ciphertext primes and the first `p` special primes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Basis {
    /// Number of ciphertext primes (level + 1).
    pub q: usize,
    /// Number of special primes.
    pub p: usize,
}

impl Basis {
    /// Total number of towers.
    pub fn len(&self) -> usize {
        self.q + self.p
    }

    /// True for a basis without towers.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Errors building a ring.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum RingError {
    /// N is not a power of two in the supported range.
    #[error("ring degree {0} is not a power of two between 2^4 and 2^17")]
    Degree(usize),
    /// A modulus is not an NTT-friendly prime for N.
    #[error("modulus {0} is not a prime = 1 mod 2N below 2^61")]
    Modulus(u64),
    /// Two moduli are equal.
    #[error("modulus {0} appears twice")]
    Duplicate(u64),
    /// The NTT backends disagree on the evaluation order across primes.
    #[error("NTT evaluation order differs between primes")]
    Ordering,
}

/// The ring `R = Z[X]/(X^N + 1)` with its RNS prime chain and NTT operators.
pub struct RingContext {
    n: usize,
    moduli: Vec<Modulus>,
    num_q: usize,
    ntt: Vec<NttOperator>,
    /// exponents[i]: NTT slot i holds the evaluation at psi^{exponents[i]}.
    exponents: Vec<u32>,
    /// Inverse of `exponents` over odd residues mod 2N.
    slot_of_exponent: Vec<u32>,
    galois: Mutex<HashMap<u64, Arc<Vec<u32>>>>,
}

impl std::fmt::Debug for RingContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RingContext")
            .field("n", &self.n)
            .field("q", &self.q_values())
            .field("p", &self.p_values())
            .finish()
    }
}

impl RingContext {
    /// Builds the ring for degree `n`, ciphertext primes `q` and special primes `p`.
    pub fn new(n: usize, q: &[u64], p: &[u64], backend: NttBackend) -> Result<Self, RingError> {
        if !n.is_power_of_two() || !(16..=1 << 17).contains(&n) {
            return Err(RingError::Degree(n));
        }
        let mut moduli = Vec::with_capacity(q.len() + p.len());
        let mut ntt = Vec::with_capacity(q.len() + p.len());
        for (i, &v) in q.iter().chain(p).enumerate() {
            if v >= 1 << 61 || !is_prime(v) || (v - 1) % (2 * n as u64) != 0 {
                return Err(RingError::Modulus(v));
            }
            if q.iter().chain(p).take(i).any(|&w| w == v) {
                return Err(RingError::Duplicate(v));
            }
            let m = Modulus::new(v);
            moduli.push(m);
            ntt.push(NttOperator::new(n, m, backend).ok_or(RingError::Modulus(v))?);
        }
        let exponents = ntt
            .first()
            .map(|op| op.evaluation_exponents())
            .unwrap_or_default();
        // Every prime must order its evaluations the same way, so one permutation serves
        // all towers. The tfhe-ntt plans and the scalar reference both do (bit-reversed).
        for op in ntt.iter().skip(1) {
            if op.evaluation_exponents() != exponents {
                return Err(RingError::Ordering);
            }
        }
        let mut slot_of_exponent = vec![u32::MAX; 2 * n];
        for (slot, &e) in exponents.iter().enumerate() {
            slot_of_exponent[e as usize] = slot as u32;
        }
        if slot_of_exponent
            .iter()
            .skip(1)
            .step_by(2)
            .any(|&s| s == u32::MAX)
        {
            return Err(RingError::Ordering);
        }
        Ok(Self {
            n,
            moduli,
            num_q: q.len(),
            ntt,
            exponents,
            slot_of_exponent,
            galois: Mutex::new(HashMap::new()),
        })
    }

    /// Ring degree N.
    pub fn n(&self) -> usize {
        self.n
    }

    /// Number of ciphertext primes (L + 1).
    pub fn num_q(&self) -> usize {
        self.num_q
    }

    /// Number of special primes.
    pub fn num_p(&self) -> usize {
        self.moduli.len() - self.num_q
    }

    /// The ciphertext primes.
    pub fn q_values(&self) -> Vec<u64> {
        self.moduli[..self.num_q]
            .iter()
            .map(|m| m.value())
            .collect()
    }

    /// The special primes.
    pub fn p_values(&self) -> Vec<u64> {
        self.moduli[self.num_q..]
            .iter()
            .map(|m| m.value())
            .collect()
    }

    /// Index into the full modulus list of tower `t` of `basis`.
    #[inline]
    pub fn modulus_index(&self, basis: Basis, t: usize) -> usize {
        if t < basis.q {
            t
        } else {
            self.num_q + (t - basis.q)
        }
    }

    /// Modulus of tower `t` of `basis`.
    #[inline]
    pub fn modulus(&self, basis: Basis, t: usize) -> &Modulus {
        &self.moduli[self.modulus_index(basis, t)]
    }

    /// The i-th ciphertext prime.
    #[inline]
    pub fn q(&self, i: usize) -> &Modulus {
        &self.moduli[i]
    }

    /// The i-th special prime.
    #[inline]
    pub fn p(&self, i: usize) -> &Modulus {
        &self.moduli[self.num_q + i]
    }

    /// NTT operator of tower `t` of `basis`.
    #[inline]
    pub fn ntt(&self, basis: Basis, t: usize) -> &NttOperator {
        &self.ntt[self.modulus_index(basis, t)]
    }

    /// The full basis Q_L (all ciphertext primes).
    pub fn q_basis(&self) -> Basis {
        Basis {
            q: self.num_q,
            p: 0,
        }
    }

    /// Q_L together with all special primes.
    pub fn qp_basis(&self) -> Basis {
        Basis {
            q: self.num_q,
            p: self.num_p(),
        }
    }

    /// Galois element for a left rotation of the slots by `steps` (5^steps mod 2N);
    /// negative steps rotate right.
    pub fn galois_element_for_rotation(&self, steps: i64) -> u64 {
        let two_n = 2 * self.n as u64;
        let order = self.n as i64 / 2; // 5 has order N/2 modulo 2N
        let k = steps.rem_euclid(order) as u64;
        pow_mod(5, k, two_n)
    }

    /// Galois element of complex conjugation, X -> X^{-1}.
    pub fn galois_element_conjugate(&self) -> u64 {
        2 * self.n as u64 - 1
    }

    /// The inverse of the Galois element g in (Z/2NZ)^*: sigma_g^{-1} = sigma_{g^{-1}}.
    pub fn galois_inverse(&self, g: u64) -> u64 {
        let two_n = 2 * self.n as u64;
        // The group has order N (a power of two): g^{-1} = g^{N-1}.
        pow_mod(g, self.n as u64 - 1, two_n)
    }

    /// Permutation of NTT slots applying X -> X^g: `out[i] = in[perm[i]]`. Cached.
    pub fn galois_permutation(&self, g: u64) -> Arc<Vec<u32>> {
        let mut cache = match self.galois.lock() {
            Ok(c) => c,
            Err(poisoned) => poisoned.into_inner(),
        };
        cache
            .entry(g)
            .or_insert_with(|| {
                let two_n = 2 * self.n as u64;
                Arc::new(
                    self.exponents
                        .iter()
                        .map(|&e| self.slot_of_exponent[((e as u64 * g) % two_n) as usize])
                        .collect(),
                )
            })
            .clone()
    }
}

/// a^e mod m for any modulus m >= 2 (Galois exponents live modulo 2N, not a prime).
pub(crate) fn pow_mod(a: u64, mut e: u64, m: u64) -> u64 {
    let m = m as u128;
    let (mut r, mut b) = (1u128, a as u128 % m);
    while e > 0 {
        if e & 1 == 1 {
            r = r * b % m;
        }
        b = b * b % m;
        e >>= 1;
    }
    r as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn small_ring(backend: NttBackend) -> RingContext {
        let n = 32;
        let q = generate_primes(50, 2 * n as u64, 3, &[]).unwrap_or_default();
        let p = generate_primes(55, 2 * n as u64, 2, &q).unwrap_or_default();
        RingContext::new(n, &q, &p, backend).expect("valid ring")
    }

    #[test]
    fn rejects_bad_moduli() {
        assert_eq!(
            RingContext::new(24, &[97], &[], NttBackend::Fast).err(),
            Some(RingError::Degree(24))
        );
        assert!(matches!(
            RingContext::new(32, &[101], &[], NttBackend::Fast),
            Err(RingError::Modulus(101))
        ));
        let q = generate_primes(40, 64, 1, &[]).unwrap_or_default();
        assert!(matches!(
            RingContext::new(32, &[q[0], q[0]], &[], NttBackend::Fast),
            Err(RingError::Duplicate(_))
        ));
    }

    #[test]
    fn galois_permutation_is_automorphism() {
        for backend in [NttBackend::Fast, NttBackend::Scalar] {
            let ring = small_ring(backend);
            let basis = ring.q_basis();
            let n = ring.n();
            // a(X) = sum a_i X^i; sigma_g(a)(X) = a(X^g), computed on coefficients.
            let coeffs: Vec<i64> = (0..n as i64).map(|i| i * 3 - 7).collect();
            for g in [
                5u64,
                25,
                2 * n as u64 - 1,
                ring.galois_element_for_rotation(-3),
            ] {
                let mut expected = vec![0i64; n];
                for (i, &c) in coeffs.iter().enumerate() {
                    let e = (i as u64 * g) % (2 * n as u64);
                    if e < n as u64 {
                        expected[e as usize] += c;
                    } else {
                        expected[(e - n as u64) as usize] -= c;
                    }
                }
                let a = Poly::<Coeff>::from_signed(&ring, basis, &coeffs).into_ntt(&ring);
                let b = a.automorphism(&ring, g).into_coeff(&ring);
                let want = Poly::<Coeff>::from_signed(&ring, basis, &expected);
                assert_eq!(b, want, "{backend:?} g={g}");
            }
        }
    }
}
