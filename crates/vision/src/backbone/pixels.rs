//! The identity "backbone": an image's own pixel values, `/ 255`, as its features (784 for
//! MNIST). It makes the whole pipeline (features, encryption, training, inference) run on
//! raw data without pretrained weights, against well-known references: multiclass logistic
//! regression on MNIST pixels reaches about 92 % test accuracy.

use crate::backbone::Backbone;
use crate::error::{Result, VisionError};
use crate::preprocess::{PreprocessOptions, PreprocessedImage, RawImage};

/// Pixels of images of one size: grey images give `width * height` features (row-major),
/// colour images `3 * width * height` (interleaved R, G, B; or grey with `--grey`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pixels {
    width: usize,
    height: usize,
    channels: usize,
}

/// Name of the pixel backbone.
pub const PIXELS: &str = "pixels";

impl Pixels {
    /// For images of `width x height` with `channels` (1 or 3) channels.
    pub fn new(width: usize, height: usize, channels: usize) -> Result<Self> {
        if width == 0 || height == 0 || !(channels == 1 || channels == 3) {
            return Err(VisionError::Invalid(format!(
                "pixel features need a non-empty image with 1 or 3 channels, got {width}x{height}x{channels}"
            )));
        }
        Ok(Self {
            width,
            height,
            channels,
        })
    }

    /// Shaped after `image` (after the grey conversion `options` asks for): every later
    /// image must have the same size.
    pub fn like(image: &RawImage, options: &PreprocessOptions) -> Result<Self> {
        let (width, height) = image.size();
        let channels = match (image, options.grey) {
            (RawImage::Rgb { .. }, false) => 3,
            _ => 1,
        };
        Self::new(width, height, channels)
    }
}

impl Backbone for Pixels {
    fn name(&self) -> &str {
        PIXELS
    }

    fn feature_dim(&self) -> usize {
        self.width * self.height * self.channels
    }

    /// The network input's values, channel-major: pixels of the resized image (prefer
    /// [`Backbone::features_raw`], which skips the resize and the channel repetition).
    fn features_one(&self, image: &PreprocessedImage) -> Result<Vec<f32>> {
        Ok(image.data.clone())
    }

    /// Grey values / 255 of the image as it is (no resize, no normalisation).
    fn features_raw(&self, image: &RawImage, options: &PreprocessOptions) -> Result<Vec<f32>> {
        let image = if options.grey {
            image.to_grey()
        } else {
            image.clone()
        };
        let pixels = match &image {
            RawImage::Grey { pixels, .. } | RawImage::Rgb { pixels, .. } => pixels,
        };
        if pixels.len() != self.feature_dim() {
            let (w, h) = image.size();
            return Err(VisionError::Invalid(format!(
                "pixel features: a {w}x{h} image with {} values among images of {}x{}x{} ({} values): every image must have the same size",
                pixels.len(),
                self.width,
                self.height,
                self.channels,
                self.feature_dim()
            )));
        }
        Ok(pixels.iter().map(|&p| f32::from(p) / 255.0).collect())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn grey_values_over_255_and_size_checks() {
        let img = RawImage::Grey {
            width: 2,
            height: 2,
            pixels: vec![0, 51, 255, 102],
        };
        let opts = PreprocessOptions::default();
        let p = Pixels::like(&img, &opts).unwrap();
        assert_eq!(p.feature_dim(), 4);
        assert_eq!(p.features_raw(&img, &opts).unwrap(), [0.0, 0.2, 1.0, 0.4]);
        let other = RawImage::Grey {
            width: 3,
            height: 1,
            pixels: vec![1, 2, 3],
        };
        assert!(p.features_raw(&other, &opts).is_err());
        let rgb = RawImage::Rgb {
            width: 1,
            height: 1,
            pixels: vec![255, 0, 0],
        };
        let p3 = Pixels::like(&rgb, &opts).unwrap();
        assert_eq!(p3.features_raw(&rgb, &opts).unwrap(), [1.0, 0.0, 0.0]);
        let grey = PreprocessOptions { grey: true, ..opts };
        assert_eq!(Pixels::like(&rgb, &grey).unwrap().feature_dim(), 1);
        assert!(Pixels::new(0, 1, 1).is_err() && Pixels::new(1, 1, 2).is_err());
    }
}
