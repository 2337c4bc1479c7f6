//! Keys. Public material (public key, relinearisation and Galois keys) can go anywhere;
//! the [`SecretKey`] exists only with the `client` feature, is zeroized on drop and is
//! serialised only by the client's explicit `save`.

use crate::params::Params;
use crate::ring::{Ntt, Poly};
use std::collections::BTreeMap;
use std::sync::Arc;

/// The secret s, ternary (or sparse ternary), kept in NTT form over all of Q and P.
#[cfg(feature = "client")]
pub struct SecretKey {
    pub(crate) params: Arc<Params>,
    /// Signed coefficients in {-1, 0, 1}.
    pub(crate) coeffs: Vec<i64>,
    /// s in NTT form over Q_L and P.
    pub(crate) ntt: Poly<Ntt>,
}

#[cfg(feature = "client")]
impl Drop for SecretKey {
    fn drop(&mut self) {
        use zeroize::Zeroize;
        self.coeffs.zeroize();
        self.ntt.zeroize();
    }
}

#[cfg(feature = "client")]
impl std::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretKey(<redacted>)")
    }
}

#[cfg(feature = "client")]
impl SecretKey {
    /// The parameters.
    pub fn params(&self) -> &Arc<Params> {
        &self.params
    }
}

/// Public key (b, a) = (-a s + e, a) modulo Q_L.
#[derive(Clone, Debug)]
pub struct PublicKey {
    pub(crate) params: Arc<Params>,
    pub(crate) b: Poly<Ntt>,
    pub(crate) a: Poly<Ntt>,
    pub(crate) seed: [u8; 32],
}

impl PublicKey {
    /// The parameters.
    pub fn params(&self) -> &Arc<Params> {
        &self.params
    }
}

/// A hybrid key-switching key from s' to s (Han-Ki 2020): for each digit j,
/// (b_j, a_j) = (-a_j s + e_j + P * Qtilde_j * s', a_j) modulo Q_l * P, where Qtilde_j is
/// 1 modulo the digit's primes and 0 modulo the others. The a_j come from one seed.
///
/// A key serves ciphertexts up to its own level l ([`Self::max_level`]), which may be below
/// the top of the chain: a key switch at level l reads only the digits and primes of Q_l, so
/// a key used only low in the chain (a training iteration after bootstrapping) is made and
/// shipped over Q_l * P alone. It is the full key's projection onto those primes, with the
/// same security.
#[derive(Clone, Debug)]
pub struct SwitchingKey {
    pub(crate) params: Arc<Params>,
    pub(crate) b: Vec<Poly<Ntt>>,
    pub(crate) a: Vec<Poly<Ntt>>,
    pub(crate) seed: [u8; 32],
}

impl SwitchingKey {
    /// The parameters.
    pub fn params(&self) -> &Arc<Params> {
        &self.params
    }
    /// Number of digits.
    pub fn digits(&self) -> usize {
        self.b.len()
    }
    /// The highest ciphertext level the key can switch.
    pub fn max_level(&self) -> usize {
        self.b.first().map_or(0, |b| b.basis().q.saturating_sub(1))
    }
}

/// Relinearisation key: switches s^2 to s.
#[derive(Clone, Debug)]
pub struct RelinearizationKey(pub(crate) SwitchingKey);

impl RelinearizationKey {
    /// The underlying switching key.
    pub fn key(&self) -> &SwitchingKey {
        &self.0
    }
}

/// Galois key for X -> X^g. It switches s to sigma_g^{-1}(s): a rotation key-switches c_1
/// as it is, giving (u_0, u_1) with u_0 + u_1 sigma_g^{-1}(s) ~ c_1 s, and then applies
/// sigma_g to (c_0 + u_0, u_1), which decrypts under s to sigma_g(c_0 + c_1 s). The usual key
/// (sigma_g(s) to s, applied after the automorphism) makes hoisted rotations permute every
/// digit of the decomposition before each inner product; this one permutes the two outputs
/// instead, and the inner products read digits and keys contiguously. It is the usual key
/// with sigma_g^{-1} applied, so it is exactly as secure.
#[derive(Clone, Debug)]
pub struct GaloisKey {
    pub(crate) galois_element: u64,
    pub(crate) key: SwitchingKey,
}

impl GaloisKey {
    /// The Galois element g.
    pub fn galois_element(&self) -> u64 {
        self.galois_element
    }
    /// The underlying switching key.
    pub fn key(&self) -> &SwitchingKey {
        &self.key
    }
    /// The highest ciphertext level the key can rotate.
    pub fn max_level(&self) -> usize {
        self.key.max_level()
    }
}

/// Sparse-secret encapsulation keys of bootstrapping (Bossuat-Troncoso-Pastoriza-Hubaux
/// 2022): the main secret stays dense; around ModRaise the ciphertext is switched to an
/// ephemeral secret of Hamming weight 32 (so that the overflow `I` of ModRaise is small) and
/// back. See `Params::encapsulation_params` for why the first key lives over q_0 * p only.
#[derive(Clone, Debug)]
pub struct EncapsulationKeys {
    /// From the dense secret to the sparse one, over q_0 and one special prime
    /// (`Params::encapsulation_params`).
    pub(crate) dense_to_sparse: SwitchingKey,
    /// From the sparse secret back to the dense one, over the whole chain Q_L * P.
    pub(crate) sparse_to_dense: SwitchingKey,
}

impl EncapsulationKeys {
    /// The dense-to-sparse key (over the encapsulation parameters).
    pub fn dense_to_sparse(&self) -> &SwitchingKey {
        &self.dense_to_sparse
    }
    /// The sparse-to-dense key (over the main parameters).
    pub fn sparse_to_dense(&self) -> &SwitchingKey {
        &self.sparse_to_dense
    }
}

/// The public evaluation keys a server needs: relinearisation and Galois keys.
#[derive(Clone, Debug, Default)]
pub struct EvaluationKeys {
    /// Relinearisation key, if generated.
    pub relin: Option<RelinearizationKey>,
    /// Galois keys by Galois element.
    pub galois: BTreeMap<u64, GaloisKey>,
}

impl EvaluationKeys {
    /// The Galois key for element g.
    pub fn galois_key(&self, g: u64) -> Option<&GaloisKey> {
        self.galois.get(&g)
    }

    /// Adds the keys of `other`. Where both hold a key for the same element, the one
    /// reaching the higher level is kept (it serves every level the other does, at the same
    /// cost: a key switch at level l reads only the part of the key below l).
    pub fn merge(&mut self, other: EvaluationKeys) {
        match (&self.relin, other.relin) {
            (Some(mine), Some(theirs)) if theirs.0.max_level() > mine.0.max_level() => {
                self.relin = Some(theirs)
            }
            (None, Some(theirs)) => self.relin = Some(theirs),
            _ => {}
        }
        for (g, key) in other.galois {
            match self.galois.get(&g) {
                Some(mine) if mine.max_level() >= key.max_level() => {}
                _ => {
                    self.galois.insert(g, key);
                }
            }
        }
    }
}
