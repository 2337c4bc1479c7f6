//! Decryption (client side only).

use super::ciphertext::{Ciphertext, Plaintext};
use super::keys::SecretKey;
use crate::error::{Error, Result};

/// m = c_0 + c_1 s (+ c_2 s^2) modulo Q_level.
pub fn decrypt(sk: &SecretKey, ct: &Ciphertext) -> Result<Plaintext> {
    let params = sk.params();
    ct.check_params(params, "decrypt")?;
    let ring = params.ring();
    let basis = params.basis_q(ct.level);
    let s = sk.ntt.truncated(basis);
    let polys = ct.polys();
    let mut m = polys[0].clone();
    let mut s_pow = s.clone();
    for (k, c) in polys.iter().enumerate().skip(1) {
        if k > 1 {
            s_pow.mul_assign(ring, &s);
        }
        m.mul_add_assign(ring, c, &s_pow);
    }
    if polys.len() > 3 {
        return Err(Error::Degree {
            op: "decrypt",
            degree: polys.len() - 1,
            expected: 2,
        });
    }
    Ok(Plaintext {
        params: params.clone(),
        poly: m,
        level: ct.level,
        scale: ct.scale,
        slots: ct.slots,
    })
}
