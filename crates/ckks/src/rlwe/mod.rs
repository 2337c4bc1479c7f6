//! The RLWE core shared by every scheme: ciphertexts, keys, sampling, encryption and
//! hybrid key switching (with hoisting).

pub mod ciphertext;
#[cfg(feature = "client")]
pub mod decryptor;
pub mod encryptor;
#[cfg(feature = "client")]
pub mod keygen;
pub mod keys;
pub mod keyswitch;
pub mod sampler;
