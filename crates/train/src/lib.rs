//! `volley-train`: the paper's encrypted training of a classification layer
//! (multiclass logistic regression with Nesterov's accelerated gradient and the quadratic
//! gradient, a degree-3 sigmoid polynomial), client and server sides.
//!
//! - [`data`]: feature tables, row ranges, the design matrix and preconditioner;
//! - [`algorithm`]: the plaintext reference of the same algorithm, metrics;
//! - [`batches`]: mini-batches: the split, the epochs' order, the steps, batch sources;
//! - [`layout`]: the slot layouts of the two schedules (Volley Revolver packing);
//! - [`setup`]: parameter choice, the level plan of a run and rotation keys;
//! - [`refresh`]: the server's bootstrapping of its state (any number of iterations);
//! - [`bundle`]: the upload and the encrypted model;
//! - [`container`]: the ciphertext container of every `.cts` file;
//! - [`dirs`]: the key, upload, model, query and scores directories, written atomically;
//! - [`checkpoint`]: the server's state mid-run, to resume a killed run exactly;
//! - [`client`] (feature `client`): keys, encryption, decryption;
//! - [`server`]: training on ciphertexts with public keys only;
//! - [`job`]: a training job on an upload directory, start to finish (the command line's
//!   and the network service's);
//! - [`inference`]: encrypted inference (the client's encrypted rows scored with the
//!   encrypted model).
#![deny(missing_docs)]

pub mod algorithm;
pub mod batches;
pub mod bundle;
pub mod checkpoint;
#[cfg(feature = "client")]
pub mod client;
pub mod container;
pub mod data;
pub mod dirs;
pub mod error;
pub mod inference;
pub mod job;
pub mod layout;
pub mod refresh;
pub mod server;
pub mod setup;

pub use error::{Result, TrainError};
