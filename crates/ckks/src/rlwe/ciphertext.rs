//! Plaintexts and ciphertexts with their metadata (level, scale, slots), as Lattigo's
//! `rlwe.Element` with `MetaData`. Polynomials are always kept in NTT form.

use crate::error::{Error, Result};
use crate::params::Params;
use crate::ring::{Ntt, Poly};
use std::sync::Arc;

/// An encoded message: one polynomial at a level, with the scale it was encoded at.
#[derive(Clone, Debug)]
pub struct Plaintext {
    pub(crate) params: Arc<Params>,
    pub(crate) poly: Poly<Ntt>,
    pub(crate) level: usize,
    pub(crate) scale: f64,
    pub(crate) slots: usize,
}

impl Plaintext {
    /// The parameters.
    pub fn params(&self) -> &Arc<Params> {
        &self.params
    }
    /// Level (number of ciphertext primes minus one).
    pub fn level(&self) -> usize {
        self.level
    }
    /// Encoding scale.
    pub fn scale(&self) -> f64 {
        self.scale
    }
    /// Number of slots the message was encoded for.
    pub fn slots(&self) -> usize {
        self.slots
    }
    /// The polynomial (NTT form).
    pub fn poly(&self) -> &Poly<Ntt> {
        &self.poly
    }
}

/// An RLWE ciphertext (c_0, c_1[, c_2]) decrypting to c_0 + c_1 s (+ c_2 s^2).
#[derive(Clone, Debug)]
pub struct Ciphertext {
    pub(crate) params: Arc<Params>,
    polys: Vec<Poly<Ntt>>,
    pub(crate) level: usize,
    pub(crate) scale: f64,
    pub(crate) slots: usize,
    /// Seed of c_1 for a fresh secret-key encryption (halves its serialised size); cleared
    /// by every mutation.
    seed: Option<[u8; 32]>,
}

impl Ciphertext {
    pub(crate) fn new(
        params: Arc<Params>,
        polys: Vec<Poly<Ntt>>,
        level: usize,
        scale: f64,
        slots: usize,
    ) -> Self {
        Self {
            params,
            polys,
            level,
            scale,
            slots,
            seed: None,
        }
    }

    pub(crate) fn with_seed(mut self, seed: [u8; 32]) -> Self {
        self.seed = Some(seed);
        self
    }

    /// The parameters.
    pub fn params(&self) -> &Arc<Params> {
        &self.params
    }
    /// Level: the ciphertext lives modulo q_0 ... q_level.
    pub fn level(&self) -> usize {
        self.level
    }
    /// Scale of the encrypted message.
    pub fn scale(&self) -> f64 {
        self.scale
    }
    /// Overrides the scale metadata (the message is then read as divided by the ratio).
    pub fn set_scale(&mut self, scale: f64) {
        self.scale = scale;
    }
    /// Slot count.
    pub fn slots(&self) -> usize {
        self.slots
    }
    /// Reads the same polynomial with another slot count (a power of two up to N/2). A
    /// message of `s` slots is one of N/2 slots repeating with period `s` (its polynomial is
    /// in X^(N/2s)), so a caller that made its message periodic can switch views for free
    /// (a sparse bootstrap of state packed with that period, say). The values are only
    /// meaningful when the message does repeat so; this is not checked (it cannot be, on a
    /// ciphertext).
    pub fn set_slots(&mut self, slots: usize) -> crate::Result<()> {
        let max = self.params.max_slots();
        if !slots.is_power_of_two() || slots > max {
            return Err(crate::Error::InvalidArgument {
                op: "set_slots",
                msg: format!("slot count {slots} must be a power of two up to {max}"),
            });
        }
        self.slots = slots;
        Ok(())
    }
    /// Degree: 1 for a normal ciphertext, 2 after a multiplication without relinearisation.
    pub fn degree(&self) -> usize {
        self.polys.len() - 1
    }
    /// The components (NTT form).
    pub fn polys(&self) -> &[Poly<Ntt>] {
        &self.polys
    }
    /// Seed of c_1 if this is a fresh secret-key encryption.
    pub fn seed(&self) -> Option<[u8; 32]> {
        self.seed
    }
    /// Mutable components; clears the seed since c_1 may change.
    pub(crate) fn polys_mut(&mut self) -> &mut Vec<Poly<Ntt>> {
        self.seed = None;
        &mut self.polys
    }

    pub(crate) fn check_params(&self, params: &Params, op: &'static str) -> Result<()> {
        if std::ptr::eq(&*self.params, params) || self.params.fingerprint() == params.fingerprint()
        {
            Ok(())
        } else {
            Err(Error::ParameterMismatch { op })
        }
    }
}
