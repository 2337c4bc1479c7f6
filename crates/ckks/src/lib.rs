//! `volley-ckks`: a leveled RNS-CKKS homomorphic encryption library in stable Rust.
//!
//! Layers, each using only the ones before it (Lattigo's ring < rlwe < ckks < circuits):
//! - [`ring`]: RNS polynomials, the NTT operator (tfhe-ntt), basis conversion;
//! - [`params`]: the checked parameter object and presets, with the 128-bit security check;
//! - [`rlwe`]: keys, sampling, encryption, hybrid key switching and hoisting;
//! - [`ckks`]: encoder and evaluator;
//! - [`circuits`]: polynomial evaluation and linear transformations;
//! - [`serialization`]: the versioned binary format.
//!
//! The `client` feature (on by default) provides everything that touches the secret key:
//! key generation, decryption and secret-key encryption. A server built without it
//! cannot name a secret key at all.
#![deny(missing_docs)]

pub mod circuits;
pub mod ckks;
pub mod error;
pub mod params;
pub mod ring;
pub mod rlwe;
pub mod serialization;

pub use ckks::encoder::{Encoder, PrecisionStats, precision_stats};
pub use ckks::evaluator::{Evaluator, OpCounts};
pub use error::{Error, Result};
pub use num_complex::Complex64;
pub use params::{Params, ParamsLiteral, SecretDistribution};
pub use rlwe::ciphertext::{Ciphertext, Plaintext};
pub use rlwe::encryptor::encrypt_public;
pub use rlwe::keys::{
    EncapsulationKeys, EvaluationKeys, GaloisKey, PublicKey, RelinearizationKey, SwitchingKey,
};
pub use serialization::{Serializable, params_from_bytes, params_to_bytes, write_atomic};

/// Client-side items: everything that needs or produces the secret key.
#[cfg(feature = "client")]
pub mod client {
    pub use crate::rlwe::decryptor::decrypt;
    pub use crate::rlwe::encryptor::encrypt_secret;
    pub use crate::rlwe::keygen::KeyGenerator;
    pub use crate::rlwe::keys::SecretKey;
    pub use crate::serialization::{load_secret_key, save_secret_key};
}

/// Peak resident set size of this process (`VmHWM` in `/proc/self/status`; Linux), 0
/// where unavailable. The one place every report (command line, service load test) reads it.
pub fn peak_rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}

/// Sets the number of threads of the global rayon pool used by every parallel operation.
/// Call once, before any other operation; later calls return an error.
pub fn set_threads(threads: usize) -> std::result::Result<(), String> {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build_global()
        .map_err(|e| e.to_string())
}
