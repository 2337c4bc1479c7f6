//! Frozen pretrained CNN backbones that turn a preprocessed image into a feature vector.

mod conv;
mod regnet;

use std::path::Path;

use rayon::prelude::*;

pub use conv::{Activation, ConvSpec, FoldedConv};
pub use regnet::{RegNet, RegNetConfig};

use crate::error::{Result, VisionError};
use crate::preprocess::PreprocessedImage;
use crate::weights::WeightMap;

/// A feature extractor: a torchvision classification network with its classifier
/// removed, in inference mode.
///
/// Implementations compute one image at a time (`features_one`); `features` runs a batch
/// on rayon's current thread pool, one image per task, which keeps every core busy without
/// a batch dimension inside the network.
pub trait Backbone: Send + Sync {
    /// The torchvision name, e.g. `regnet_x_400mf`.
    fn name(&self) -> &str;

    /// Length of the feature vector (400 for RegNetX-400MF).
    fn feature_dim(&self) -> usize;

    /// Features of one image.
    fn features_one(&self, image: &PreprocessedImage) -> Result<Vec<f32>>;

    /// Features of a batch, in order, computed in parallel.
    fn features(&self, batch: &[PreprocessedImage]) -> Result<Vec<Vec<f32>>> {
        batch.par_iter().map(|img| self.features_one(img)).collect()
    }
}

/// Names accepted by [`load_backbone`].
pub const BACKBONES: &[&str] = &["regnet_x_400mf"];

/// Builds the backbone `name` from a torchvision weight file (`.pth` or `.safetensors`).
pub fn load_backbone(name: &str, weights: &Path) -> Result<Box<dyn Backbone>> {
    match name {
        "regnet_x_400mf" => {
            let map = WeightMap::load(weights)?;
            Ok(Box::new(RegNet::new(RegNetConfig::regnet_x_400mf(), &map)?))
        }
        other => Err(VisionError::Invalid(format!(
            "unknown backbone {other} (available: {})",
            BACKBONES.join(", ")
        ))),
    }
}
