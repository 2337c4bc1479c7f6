//! Encryption with the public key (anyone) or the secret key (client only; seeded output).

use super::ciphertext::{Ciphertext, Plaintext};
use super::keys::PublicKey;
#[cfg(feature = "client")]
use super::keys::SecretKey;
use super::sampler::Prng;
use crate::error::Result;
use crate::ring::{Coeff, Ntt, Poly};

/// Public-key encryption: c = (b u + e_0 + m, a u + e_1) with ternary u (the standard RLWE
/// encryption, as SEAL and OpenFHE do it).
pub fn encrypt_public(pk: &PublicKey, pt: &Plaintext) -> Result<Ciphertext> {
    let params = pk.params();
    if params.fingerprint() != pt.params.fingerprint() {
        return Err(crate::Error::ParameterMismatch { op: "encrypt" });
    }
    let ring = params.ring();
    let basis = params.basis_q(pt.level);
    let mut prng = Prng::from_os();
    let n = params.n();
    let sigma = params.literal().sigma;
    let u = Poly::<Coeff>::from_signed(ring, basis, &prng.ternary(n)).into_ntt(ring);
    let mut c0 = Poly::<Coeff>::from_signed(ring, basis, &prng.gaussian(n, sigma)).into_ntt(ring);
    let mut c1 = Poly::<Coeff>::from_signed(ring, basis, &prng.gaussian(n, sigma)).into_ntt(ring);
    c0.mul_add_assign(ring, &pk.b, &u);
    c0.add_assign(ring, &pt.poly);
    c1.mul_add_assign(ring, &pk.a, &u);
    Ok(Ciphertext::new(
        params.clone(),
        vec![c0, c1],
        pt.level,
        pt.scale,
        pt.slots,
    ))
}

/// Secret-key encryption: c = (-a s + e + m, a) with a expanded from a fresh seed, so the
/// ciphertext serialises at half size while it stays fresh.
#[cfg(feature = "client")]
pub fn encrypt_secret(sk: &SecretKey, pt: &Plaintext) -> Result<Ciphertext> {
    let params = sk.params();
    if params.fingerprint() != pt.params.fingerprint() {
        return Err(crate::Error::ParameterMismatch { op: "encrypt" });
    }
    let ring = params.ring();
    let basis = params.basis_q(pt.level);
    let mut prng = Prng::from_os();
    let seed = prng.seed();
    let a: Poly<Ntt> = expand_seeded_a(params, seed, pt.level);
    let mut c0 = Poly::<Coeff>::from_signed(
        ring,
        basis,
        &prng.gaussian(params.n(), params.literal().sigma),
    )
    .into_ntt(ring);
    c0.mul_sub_assign(ring, &a, &sk.ntt.truncated(basis));
    c0.add_assign(ring, &pt.poly);
    Ok(Ciphertext::new(params.clone(), vec![c0, a], pt.level, pt.scale, pt.slots).with_seed(seed))
}

/// The uniform c_1 of a seeded secret-key ciphertext at `level`.
pub(crate) fn expand_seeded_a(params: &crate::Params, seed: [u8; 32], level: usize) -> Poly<Ntt> {
    Prng::from_seed_stream(seed, 0).uniform_poly(params.ring(), params.basis_q(level))
}
