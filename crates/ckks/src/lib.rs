//! `volley-ckks`: a leveled RNS-CKKS homomorphic encryption library in stable Rust.
//!
//! Layers, each using only the ones before it (as Lattigo's ring < rlwe < ckks < circuits):
//! - [`ring`]: RNS polynomials, NTT, basis conversion.
#![deny(missing_docs)]

pub mod ring;
