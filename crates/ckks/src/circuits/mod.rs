//! Circuits: polynomial evaluation, linear transformations and bootstrapping.
//!
//! Each circuit reports the levels it consumes and the rotation keys it needs
//! ([`Polynomial::required_levels`], [`LinearTransform::depth`],
//! [`LinearTransform::rotation_steps`]) so that parameters and keys can be sized up front.

pub mod bootstrap;
pub mod linear_transform;
pub mod polynomial;

pub use bootstrap::{BootstrapConfig, BootstrapProfile, Bootstrapper, EvalModConfig, LevelBudget};
pub use linear_transform::{EncodedLinearTransform, LinearTransform};
pub use polynomial::{Basis, Polynomial, PolynomialEvaluator};
