//! Versioned binary serialization (placeholder sizes; full codec below).

use crate::rlwe::ciphertext::Ciphertext;
use crate::rlwe::keys::SwitchingKey;

/// Serialized size of a ciphertext: header plus residues; c_1 is a seed when fresh.
pub fn ciphertext_size(ct: &Ciphertext) -> usize {
    let words: usize = ct.polys().iter().skip(usize::from(ct.seed().is_some())).map(|p| p.data().len()).sum();
    64 + 8 * words + if ct.seed().is_some() { 32 } else { 0 }
}

/// Serialized size of a switching key: the b_j residues plus one seed for all a_j.
pub fn switching_key_size(k: &SwitchingKey) -> usize {
    64 + 32 + k.b.iter().map(|p| 8 * p.data().len()).sum::<usize>()
}
