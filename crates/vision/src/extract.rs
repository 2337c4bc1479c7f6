//! Batched, parallel feature extraction: decode, preprocess and run the backbone, one
//! image per rayon task, one batch at a time so that memory stays bounded (only a batch
//! of raw images and their feature vectors is alive at once).

use std::ops::Range;

use rayon::prelude::*;

use crate::backbone::Backbone;
use crate::datasets::ImageSource;
use crate::error::{Result, VisionError};
use crate::features_io::FeatureTable;
use crate::preprocess::PreprocessOptions;

/// How to run an extraction.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ExtractOptions {
    /// The transform applied to each image.
    pub preprocess: PreprocessOptions,
    /// Images per batch (the unit of progress reports and of parallel work).
    pub batch_size: usize,
}

impl Default for ExtractOptions {
    fn default() -> Self {
        Self {
            preprocess: PreprocessOptions::default(),
            batch_size: 32,
        }
    }
}

/// Receives each batch's labels and feature vectors, in order.
pub type BatchSink<'a> = dyn FnMut(&[u32], &[Vec<f32>]) -> Result<()> + 'a;

/// Runs `backbone` on the images `range` of `source`, calling `sink(labels, features)`
/// once per batch, in order. Runs on rayon's current pool (install a pool to bound the
/// threads). Returns the number of images processed.
pub fn extract_features_streaming(
    backbone: &dyn Backbone,
    source: &dyn ImageSource,
    range: Range<usize>,
    options: &ExtractOptions,
    sink: &mut BatchSink<'_>,
) -> Result<usize> {
    if options.batch_size == 0 {
        return Err(VisionError::Invalid("batch size must be positive".into()));
    }
    if range.end > source.len() || range.start > range.end {
        return Err(VisionError::Invalid(format!(
            "images {}..{} requested from a source of {}",
            range.start,
            range.end,
            source.len()
        )));
    }
    let indices: Vec<usize> = range.collect();
    for batch in indices.chunks(options.batch_size) {
        let features: Vec<Vec<f32>> = batch
            .par_iter()
            .map(|&i| backbone.features_raw(&source.image(i)?, &options.preprocess))
            .collect::<Result<_>>()?;
        let labels: Vec<u32> = batch.iter().map(|&i| source.label(i)).collect();
        sink(&labels, &features)?;
    }
    Ok(indices.len())
}

/// Extracts features of `range` into a table; `progress(done, total)` is called after
/// each batch (e.g. to move a progress bar). This is what `volley features` and
/// `volley demo` run.
pub fn extract_features(
    backbone: &dyn Backbone,
    source: &dyn ImageSource,
    range: Range<usize>,
    options: &ExtractOptions,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<FeatureTable> {
    let total = range.len();
    let mut table = FeatureTable::with_cols(backbone.feature_dim());
    extract_features_streaming(backbone, source, range, options, &mut |labels, features| {
        for (label, row) in labels.iter().zip(features) {
            table
                .push(*label as usize, row)
                .map_err(|e| VisionError::Invalid(e.to_string()))?;
        }
        progress(table.rows(), total);
        Ok(())
    })?;
    Ok(table)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::datasets::InMemoryImages;
    use crate::preprocess::PreprocessedImage;

    /// Mean of each channel: enough to check ordering, batching and errors.
    struct ChannelMeans;
    impl Backbone for ChannelMeans {
        fn name(&self) -> &str {
            "means"
        }
        fn feature_dim(&self) -> usize {
            3
        }
        fn features_one(&self, image: &PreprocessedImage) -> Result<Vec<f32>> {
            let plane = image.height * image.width;
            Ok(image
                .data
                .chunks(plane)
                .map(|c| c.iter().sum::<f32>() / plane as f32)
                .collect())
        }
    }

    #[test]
    fn batches_in_order_with_progress() {
        let pixels: Vec<u8> = (0..5u8).flat_map(|i| [i * 50; 4]).collect();
        let src = InMemoryImages::grey(2, 2, pixels, vec![0, 1, 2, 3, 4]).expect("src");
        let options = ExtractOptions {
            batch_size: 2,
            preprocess: PreprocessOptions {
                size: 3,
                ..Default::default()
            },
        };
        let mut calls = Vec::new();
        let table = extract_features(&ChannelMeans, &src, 1..5, &options, &mut |d, t| {
            calls.push((d, t))
        })
        .expect("run");
        assert_eq!(calls, vec![(2, 4), (4, 4)]);
        assert_eq!(table.labels, vec![1, 2, 3, 4]);
        assert!((table.row(3)[0] - 200.0 / 255.0).abs() < 1e-6);
        assert!(extract_features(&ChannelMeans, &src, 3..9, &options, &mut |_, _| ()).is_err());
    }
}
