//! Key generation (client side only).

use super::keys::{
    EncapsulationKeys, EvaluationKeys, GaloisKey, PublicKey, RelinearizationKey, SecretKey,
    SwitchingKey,
};
use super::sampler::Prng;
use crate::error::Result;
use crate::params::{ENCAPSULATION_HAMMING_WEIGHT, Params, SecretDistribution};
use crate::ring::{Coeff, Ntt, Poly};
use std::sync::Arc;

/// Generates the secret key and the public material derived from it.
pub struct KeyGenerator {
    params: Arc<Params>,
    prng: Prng,
}

impl KeyGenerator {
    /// A generator drawing all randomness from a ChaCha20 CSPRNG seeded by the OS.
    pub fn new(params: Arc<Params>) -> Self {
        Self {
            params,
            prng: Prng::from_os(),
        }
    }

    /// Deterministic generator. Reproducible keys are insecure: for tests only.
    pub fn new_deterministic_for_tests(params: Arc<Params>, seed: [u8; 32]) -> Self {
        Self {
            params,
            prng: Prng::from_seed(seed),
        }
    }

    /// A fresh secret key from the parameters' secret distribution.
    pub fn gen_secret_key(&mut self) -> SecretKey {
        let n = self.params.n();
        let coeffs = match self.params.literal().secret {
            SecretDistribution::Ternary => self.prng.ternary(n),
            SecretDistribution::HammingWeight(h) => self.prng.hamming_weight(n, h),
        };
        secret_from_coeffs(&self.params, coeffs)
    }

    /// Public key (-a s + e, a) modulo Q_L, a expanded from a seed.
    pub fn gen_public_key(&mut self, sk: &SecretKey) -> PublicKey {
        let params = self.params.clone();
        let ring = params.ring();
        let basis = ring.q_basis();
        let seed = self.prng.seed();
        let a = Prng::from_seed_stream(seed, 0).uniform_poly(ring, basis);
        let mut b = self.error_poly(basis);
        b.mul_sub_assign(ring, &a, &sk.ntt.truncated(basis));
        PublicKey {
            params: self.params.clone(),
            b,
            a,
            seed,
        }
    }

    /// Relinearisation key (switches s^2 to s).
    pub fn gen_relin_key(&mut self, sk: &SecretKey) -> RelinearizationKey {
        self.gen_relin_key_up_to(sk, self.params.max_level())
    }

    /// Relinearisation key for ciphertexts up to `max_level` (see [`SwitchingKey`]).
    pub fn gen_relin_key_up_to(&mut self, sk: &SecretKey, max_level: usize) -> RelinearizationKey {
        let mut s2 = sk.ntt.clone();
        s2.mul_assign(self.params.ring(), &sk.ntt);
        RelinearizationKey(self.gen_switching_key_under(&sk.ntt, &s2, max_level))
    }

    /// Galois key for X -> X^g: a switching key from s to sigma_g^{-1}(s) (see
    /// [`GaloisKey`]: the evaluator switches c_1 before the automorphism, not after).
    pub fn gen_galois_key(&mut self, sk: &SecretKey, g: u64) -> GaloisKey {
        self.gen_galois_key_up_to(sk, g, self.params.max_level())
    }

    /// Galois key for ciphertexts up to `max_level` (see [`SwitchingKey`]).
    pub fn gen_galois_key_up_to(&mut self, sk: &SecretKey, g: u64, max_level: usize) -> GaloisKey {
        let ring = self.params.ring();
        let s_g_inv = sk.ntt.automorphism(ring, ring.galois_inverse(g));
        GaloisKey {
            galois_element: g,
            key: self.gen_switching_key_under(&s_g_inv, &sk.ntt, max_level),
        }
    }

    /// Galois key for a left rotation by `steps` slots (negative: right).
    pub fn gen_rotation_key(&mut self, sk: &SecretKey, steps: i64) -> GaloisKey {
        let g = self.params.ring().galois_element_for_rotation(steps);
        self.gen_galois_key(sk, g)
    }

    /// Evaluation keys: relinearisation (if asked), rotations by `steps`, and conjugation.
    pub fn gen_evaluation_keys(
        &mut self,
        sk: &SecretKey,
        relin: bool,
        steps: &[i64],
        conjugate: bool,
    ) -> EvaluationKeys {
        let top = self.params.max_level();
        self.gen_evaluation_keys_up_to(sk, relin, steps, conjugate, top)
    }

    /// [`Self::gen_evaluation_keys`] for ciphertexts up to `max_level` only (smaller keys;
    /// see [`SwitchingKey`]). `max_level` above the chain's top is the top.
    pub fn gen_evaluation_keys_up_to(
        &mut self,
        sk: &SecretKey,
        relin: bool,
        steps: &[i64],
        conjugate: bool,
        max_level: usize,
    ) -> EvaluationKeys {
        let max_level = max_level.min(self.params.max_level());
        let mut keys = EvaluationKeys::default();
        if relin {
            keys.relin = Some(self.gen_relin_key_up_to(sk, max_level));
        }
        let ring = self.params.ring();
        let mut elements: Vec<u64> = steps
            .iter()
            .map(|&s| ring.galois_element_for_rotation(s))
            .collect();
        if conjugate {
            elements.push(ring.galois_element_conjugate());
        }
        elements.sort_unstable();
        elements.dedup();
        for g in elements {
            if g != 1 {
                keys.galois
                    .insert(g, self.gen_galois_key_up_to(sk, g, max_level));
            }
        }
        keys
    }

    /// The sparse-secret encapsulation keys of bootstrapping (see [`EncapsulationKeys`]): an
    /// ephemeral secret of Hamming weight 32 is drawn, the two switching keys are made, and
    /// the ephemeral secret is zeroized when this returns.
    pub fn gen_encapsulation_keys(&mut self, sk: &SecretKey) -> Result<EncapsulationKeys> {
        let small = self.params.encapsulation_params()?;
        let h = match small.literal().secret {
            SecretDistribution::HammingWeight(h) => h,
            SecretDistribution::Ternary => ENCAPSULATION_HAMMING_WEIGHT,
        };
        let sparse = secret_from_coeffs(&self.params, self.prng.hamming_weight(self.params.n(), h));
        // Encrypts s' under the dense s: safe over the whole chain.
        let top = self.params.max_level();
        let sparse_to_dense = self.gen_switching_key_under(&sk.ntt, &sparse.ntt, top);
        // Encrypts s under the sparse s': only over q_0 * p.
        let mut small_gen = KeyGenerator {
            params: small.clone(),
            prng: Prng::from_seed(self.prng.seed()),
        };
        let dense_small = secret_from_coeffs(&small, sk.coeffs.clone());
        let sparse_small = secret_from_coeffs(&small, sparse.coeffs.clone());
        let dense_to_sparse =
            small_gen.gen_switching_key_under(&sparse_small.ntt, &dense_small.ntt, 0);
        Ok(EncapsulationKeys {
            dense_to_sparse,
            sparse_to_dense,
        })
    }

    /// Switching key from `s_prime` to the secret `s` (NTT form, extended basis) for
    /// ciphertexts up to `max_level`: over Q_max_level * P, digit j is
    /// (-a_j s + e_j + P Qtilde_j s', a_j), one digit per digit of Q_max_level.
    fn gen_switching_key_under(
        &mut self,
        s: &Poly<Ntt>,
        s_prime: &Poly<Ntt>,
        max_level: usize,
    ) -> SwitchingKey {
        let params = self.params.clone();
        let ring = params.ring();
        let basis = params.basis_qp(max_level);
        let seed = self.prng.seed();
        let p_mod_q = params.p_mod_q();
        let mut bs = Vec::new();
        let mut as_ = Vec::new();
        for (j, digit) in params.digits(max_level).enumerate() {
            let a = Prng::from_seed_stream(seed, j as u64).uniform_poly(ring, basis);
            let mut b = self.error_poly(basis);
            b.mul_sub_assign(ring, &a, s);
            // Add P * s' on the digit's own primes (P * Qtilde_j is P there and 0 elsewhere).
            for i in digit {
                let m = ring.q(i);
                let (w, ws) = (p_mod_q[i], m.shoup(p_mod_q[i]));
                let sp = s_prime.tower(i);
                for (x, &s) in b.tower_mut(i).iter_mut().zip(sp) {
                    *x = m.add(*x, m.mul_shoup(s, w, ws));
                }
            }
            bs.push(b);
            as_.push(a);
        }
        SwitchingKey {
            params: params.clone(),
            b: bs,
            a: as_,
            seed,
        }
    }

    fn error_poly(&mut self, basis: crate::ring::Basis) -> Poly<Ntt> {
        let e = self
            .prng
            .gaussian(self.params.n(), self.params.literal().sigma);
        Poly::<Coeff>::from_signed(self.params.ring(), basis, &e).into_ntt(self.params.ring())
    }
}

/// Builds a secret key from signed coefficients (used by key generation and the client's load).
pub(crate) fn secret_from_coeffs(params: &Arc<Params>, coeffs: Vec<i64>) -> SecretKey {
    let ring = params.ring();
    let ntt = Poly::<Coeff>::from_signed(ring, ring.qp_basis(), &coeffs).into_ntt(ring);
    SecretKey {
        params: params.clone(),
        coeffs,
        ntt,
    }
}
