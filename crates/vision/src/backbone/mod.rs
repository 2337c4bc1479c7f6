//! Frozen pretrained CNN backbones that turn a preprocessed image into a feature vector.

mod conv;
mod pixels;
mod regnet;

use std::path::Path;

use rayon::prelude::*;

pub use conv::{Activation, ConvSpec, FoldedConv};
pub use pixels::{PIXELS, Pixels};
pub use regnet::{RegNet, RegNetConfig};

use crate::error::{Result, VisionError};
use crate::preprocess::{PreprocessOptions, PreprocessedImage, RawImage, preprocess};
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

    /// Features of one image as decoded: preprocessed with `options`, then
    /// [`Self::features_one`] (a backbone that reads the raw image overrides this).
    fn features_raw(&self, image: &RawImage, options: &PreprocessOptions) -> Result<Vec<f32>> {
        self.features_one(&preprocess(image, options)?)
    }

    /// Features of a batch, in order, computed in parallel.
    fn features(&self, batch: &[PreprocessedImage]) -> Result<Vec<Vec<f32>>> {
        batch.par_iter().map(|img| self.features_one(img)).collect()
    }
}

/// Names accepted by [`load_backbone`] (and [`PIXELS`], which needs no weights: see
/// [`Pixels::like`]).
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

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn write_safetensors(path: &Path, tensors: &[(&str, Vec<usize>)]) {
        let data: Vec<(String, Vec<u8>, Vec<usize>)> = tensors
            .iter()
            .map(|(n, s)| {
                (
                    n.to_string(),
                    vec![0u8; 4 * s.iter().product::<usize>()],
                    s.clone(),
                )
            })
            .collect();
        let views: HashMap<String, safetensors::tensor::TensorView<'_>> = data
            .iter()
            .map(|(n, bytes, shape)| {
                let view = safetensors::tensor::TensorView::new(
                    safetensors::Dtype::F32,
                    shape.clone(),
                    bytes,
                )
                .expect("view");
                (n.clone(), view)
            })
            .collect();
        safetensors::serialize_to_file(views, None, path).expect("serialize");
    }

    fn stem(shape: Vec<usize>) -> Vec<(&'static str, Vec<usize>)> {
        vec![
            ("stem.0.weight", shape),
            ("stem.1.weight", vec![32]),
            ("stem.1.bias", vec![32]),
            ("stem.1.running_mean", vec![32]),
            ("stem.1.running_var", vec![32]),
        ]
    }

    #[test]
    fn wrong_shape_and_missing_tensor_are_reported() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("w.safetensors");
        write_safetensors(&p, &stem(vec![32, 1, 3, 3]));
        let err = load_backbone("regnet_x_400mf", &p)
            .err()
            .expect("wrong shape")
            .to_string();
        assert!(
            err.contains("stem.0.weight has shape [32, 1, 3, 3]") && err.contains("[32, 3, 3, 3]"),
            "{err}"
        );

        write_safetensors(&p, &stem(vec![32, 3, 3, 3]));
        let err = load_backbone("regnet_x_400mf", &p)
            .err()
            .expect("missing")
            .to_string();
        assert!(
            err.contains("missing tensor trunk_output.block1.block1-0.proj.0.weight"),
            "{err}"
        );
    }

    #[test]
    fn corrupt_files_and_unknown_names_are_errors() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("w.pth");
        for bytes in [
            &b""[..],
            b"PK\x03\x04 truncated zip",
            b"\x80\x02 legacy pickle",
            b"\xff\xff\xff\xff\xff\xff\xff\xff",
        ] {
            std::fs::write(&p, bytes).expect("write");
            let err = load_backbone("regnet_x_400mf", &p).err().expect("corrupt");
            assert!(matches!(err, VisionError::Weights { .. }), "{err}");
        }
        let err = load_backbone("resnet50", &p)
            .err()
            .expect("unknown")
            .to_string();
        assert!(err.contains("unknown backbone resnet50"), "{err}");
    }
}
