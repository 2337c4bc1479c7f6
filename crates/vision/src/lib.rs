//! Datasets and pretrained backbones for client-side feature extraction.
//!
//! The client of volley runs a frozen ImageNet-pretrained CNN (torchvision's
//! `regnet_x_400mf`) on its images and sends the encrypted 400-value features to the
//! server. This crate does that natively:
//!
//! - [`datasets`]: MNIST / Fashion-MNIST IDX files, CIFAR-10 binary batches, image folders;
//! - [`preprocess`]: torchvision's `Resize(224)` + `ToTensor()` (+ optional `Normalize`);
//! - [`backbone`]: the [`Backbone`] trait and RegNetX-400MF loading torchvision's `.pth` or
//!   `.safetensors` weights;
//! - [`extract`]: batched, parallel feature extraction with progress reporting;
//! - [`features_io`]: the feature files (the paper's CSV and a compact binary format);
//! - [`rotation`]: the principal-axis rotation of feature rows (fitted on the training rows,
//!   applied before encryption, undone on the decrypted weights);
//! - [`download`]: the default weights and MNIST files, cached and SHA-256 verified.

pub mod atomic;
pub mod backbone;
pub mod datasets;
pub mod download;
pub mod error;
pub mod extract;
pub mod features_io;
pub mod npy;
pub mod preprocess;
mod pth;
pub mod rotation;
pub mod weights;

pub use backbone::{Backbone, load_backbone};
pub use datasets::{DatasetKind, ImageSource, Split, open_dataset};
pub use error::{Result, VisionError};
pub use extract::{ExtractOptions, extract_features, extract_features_streaming};
pub use features_io::{FeatureFormat, FeatureTable, FeatureWriter, write_features};
pub use preprocess::{PreprocessOptions, PreprocessedImage, RawImage};
