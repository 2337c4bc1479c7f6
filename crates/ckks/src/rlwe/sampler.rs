//! Randomness: a ChaCha20 CSPRNG seeded by the OS, and the samplers RLWE needs.
//!
//! Public uniform polynomials (the `a` of keys and of secret-key ciphertexts) are expanded
//! from a 32-byte seed with ChaCha20 on a per-polynomial stream, so they can be serialised as
//! the seed alone and re-expanded identically by the receiver.

use crate::ring::{Basis, Ntt, Poly, RingContext};
use rand_chacha::ChaCha20Rng;
use rand_core::{OsRng, RngCore, SeedableRng, TryRngCore};

/// A cryptographically secure generator (ChaCha20).
pub struct Prng(ChaCha20Rng);

impl Prng {
    /// Seeded from the operating system's entropy (getrandom).
    pub fn from_os() -> Self {
        let mut seed = [0u8; 32];
        // OsRng failing means the OS has no entropy source: nothing sensible can continue.
        #[allow(clippy::expect_used)]
        OsRng
            .try_fill_bytes(&mut seed)
            .expect("the operating system's random number generator failed");
        Self(ChaCha20Rng::from_seed(seed))
    }

    /// Deterministic generator for tests and for expanding public seeds.
    pub fn from_seed(seed: [u8; 32]) -> Self {
        Self(ChaCha20Rng::from_seed(seed))
    }

    /// Deterministic generator on a given stream of a seed (one stream per public polynomial).
    pub fn from_seed_stream(seed: [u8; 32], stream: u64) -> Self {
        let mut r = ChaCha20Rng::from_seed(seed);
        r.set_stream(stream);
        Self(r)
    }

    /// A fresh 32-byte seed.
    pub fn seed(&mut self) -> [u8; 32] {
        let mut s = [0u8; 32];
        self.0.fill_bytes(&mut s);
        s
    }

    /// 64 uniform bits.
    #[inline]
    pub fn next_u64(&mut self) -> u64 {
        self.0.next_u64()
    }

    /// Uniform in [0, bound) by rejection (no modulo bias).
    pub fn uniform_below(&mut self, bound: u64) -> u64 {
        let mask = u64::MAX >> bound.leading_zeros();
        loop {
            let x = self.0.next_u64() & mask;
            if x < bound {
                return x;
            }
        }
    }

    /// A uniform polynomial, sampled directly in the NTT domain (uniform there too).
    pub fn uniform_poly(&mut self, ring: &RingContext, basis: Basis) -> Poly<Ntt> {
        let mut p = Poly::<Ntt>::zero(ring, basis);
        for t in 0..basis.len() {
            let q = ring.modulus(basis, t).value();
            for x in p.tower_mut(t) {
                *x = self.uniform_below(q);
            }
        }
        p
    }

    /// Uniform ternary coefficients in {-1, 0, 1}.
    pub fn ternary(&mut self, n: usize) -> Vec<i64> {
        (0..n).map(|_| self.uniform_below(3) as i64 - 1).collect()
    }

    /// Exactly `h` coefficients of +-1 at uniformly random positions (Fisher-Yates).
    pub fn hamming_weight(&mut self, n: usize, h: usize) -> Vec<i64> {
        let mut idx: Vec<usize> = (0..n).collect();
        let mut out = vec![0i64; n];
        for i in 0..h.min(n) {
            let j = i + self.uniform_below((n - i) as u64) as usize;
            idx.swap(i, j);
            out[idx[i]] = if self.0.next_u64() & 1 == 0 { 1 } else { -1 };
        }
        out
    }

    /// Rounded Gaussian of standard deviation `sigma`, bounded at 6 sigma, by inversion
    /// of a cumulative table with 64-bit precision (a full table scan per sample).
    pub fn gaussian(&mut self, n: usize, sigma: f64) -> Vec<i64> {
        let table = cdt(sigma);
        (0..n)
            .map(|_| {
                let u = self.0.next_u64();
                let sign = self.0.next_u64() & 1;
                // |x| = number of table entries below u.
                let mag = table.iter().map(|&c| (u >= c) as i64).sum::<i64>();
                // Zero has half weight in the folded table; the sign bit splits the others.
                if sign == 1 { -mag } else { mag }
            })
            .collect()
    }
}

/// Folded cumulative distribution of |x| for a discrete Gaussian, scaled to 2^64:
/// entry k is P(|x| <= k), with P(x = 0) counted once and other masses doubled.
fn cdt(sigma: f64) -> Vec<u64> {
    let bound = (6.0 * sigma).ceil() as i64;
    let w: Vec<f64> = (0..=bound)
        .map(|k| (-(k * k) as f64 / (2.0 * sigma * sigma)).exp())
        .collect();
    let total: f64 = w[0] + 2.0 * w[1..].iter().sum::<f64>();
    let mut acc = 0.0;
    let mut out = Vec::with_capacity(bound as usize);
    for (k, &wk) in w.iter().enumerate().take(bound as usize) {
        acc += if k == 0 { wk } else { 2.0 * wk } / total;
        out.push((acc * 18_446_744_073_709_551_616.0).min(u64::MAX as f64) as u64);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distributions_have_expected_moments() {
        let mut r = Prng::from_seed([7u8; 32]);
        let g = r.gaussian(200_000, 3.19);
        let mean = g.iter().sum::<i64>() as f64 / g.len() as f64;
        let var = g.iter().map(|&x| (x as f64 - mean).powi(2)).sum::<f64>() / g.len() as f64;
        assert!(mean.abs() < 0.05, "mean {mean}");
        assert!((var.sqrt() - 3.19).abs() < 0.05, "std {}", var.sqrt());
        assert!(g.iter().all(|x| x.abs() <= 20));
        let t = r.ternary(30_000);
        for v in [-1, 0, 1] {
            let c = t.iter().filter(|&&x| x == v).count() as f64 / 30_000.0;
            assert!((c - 1.0 / 3.0).abs() < 0.02);
        }
        let h = r.hamming_weight(1024, 64);
        assert_eq!(h.iter().filter(|&&x| x != 0).count(), 64);
    }

    #[test]
    fn seeded_streams_are_reproducible_and_distinct() {
        let a = Prng::from_seed_stream([1u8; 32], 3).next_u64();
        let b = Prng::from_seed_stream([1u8; 32], 3).next_u64();
        let c = Prng::from_seed_stream([1u8; 32], 4).next_u64();
        assert_eq!(a, b);
        assert_ne!(a, c);
        let mut os1 = Prng::from_os();
        let mut os2 = Prng::from_os();
        assert_ne!(os1.seed(), os2.seed());
    }
}
