//! The CKKS scheme: encoder and evaluator.

pub mod encoder;
pub mod evaluator;
