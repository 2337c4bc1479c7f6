//! torchvision's RegNetX family (`torchvision.models.regnet`), inference only.

use super::Backbone;
use super::conv::{Activation, ConvSpec, FoldedConv};
use crate::error::{Result, VisionError};
use crate::preprocess::PreprocessedImage;
use crate::weights::WeightMap;

/// torchvision's `nn.BatchNorm2d` default, used by its RegNets.
const BN_EPS: f64 = 1e-5;

/// The widths and depths that define a RegNetX (no squeeze-excitation, bottleneck 1).
#[derive(Debug, Clone, PartialEq)]
pub struct RegNetConfig {
    /// torchvision's model name.
    pub name: &'static str,
    /// Output channels of the stem (3x3, stride 2).
    pub stem_width: usize,
    /// Output channels of each stage.
    pub widths: Vec<usize>,
    /// Number of blocks in each stage.
    pub depths: Vec<usize>,
    /// Channels per group of the 3x3 convolutions.
    pub group_width: usize,
}

impl RegNetConfig {
    /// `regnet_x_400mf`: widths 32/64/160/400, depths 1/2/7/12, group width 16.
    pub fn regnet_x_400mf() -> Self {
        Self {
            name: "regnet_x_400mf",
            stem_width: 32,
            widths: vec![32, 64, 160, 400],
            depths: vec![1, 2, 7, 12],
            group_width: 16,
        }
    }
}

/// One `ResBottleneckBlock`: `relu(proj(x) + c(b(a(x))))`, with `proj` the identity when
/// shape is unchanged.
#[derive(Debug, Clone)]
struct XBlock {
    proj: Option<FoldedConv>,
    a: FoldedConv,
    b: FoldedConv,
    c: FoldedConv,
}

impl XBlock {
    fn forward(&self, x: &Activation) -> Result<Activation> {
        let projected = match &self.proj {
            Some(p) => Some(p.forward(x, None, false)?),
            None => None,
        };
        let shortcut = projected.as_ref().unwrap_or(x);
        let a = self.a.forward(x, None, true)?;
        let b = self.b.forward(&a, None, true)?;
        self.c.forward(&b, Some(shortcut), true)
    }
}

/// A RegNetX with BatchNorm folded into its convolutions; `fc` is not loaded, the output
/// is the global average pool (the classifier's input).
#[derive(Debug, Clone)]
pub struct RegNet {
    name: &'static str,
    stem: FoldedConv,
    blocks: Vec<XBlock>,
    feature_dim: usize,
}

impl RegNet {
    /// Builds the network from torchvision's state-dict names (`stem.0.weight`,
    /// `trunk_output.block1.block1-0.f.a.0.weight`, ...), checking every shape.
    pub fn new(config: RegNetConfig, weights: &WeightMap) -> Result<Self> {
        if config.widths.len() != config.depths.len() || config.widths.is_empty() {
            return Err(VisionError::Invalid(
                "RegNet config: widths and depths differ".into(),
            ));
        }
        let stem = FoldedConv::load(
            weights,
            "stem.0",
            "stem.1",
            ConvSpec {
                cin: 3,
                cout: config.stem_width,
                kernel: 3,
                stride: 2,
                groups: 1,
            },
            BN_EPS,
        )?;
        let mut blocks = Vec::new();
        let mut width_in = config.stem_width;
        for (s, (&width, &depth)) in config.widths.iter().zip(&config.depths).enumerate() {
            if width % config.group_width != 0 {
                return Err(VisionError::Invalid(format!(
                    "RegNet config: width {width} not a multiple of group width {}",
                    config.group_width
                )));
            }
            for i in 0..depth {
                let stride = if i == 0 { 2 } else { 1 };
                let prefix = format!("trunk_output.block{}.block{}-{i}", s + 1, s + 1);
                let conv = |part: &str, cin, cout, kernel, stride, groups| {
                    FoldedConv::load(
                        weights,
                        &format!("{prefix}.{part}.0"),
                        &format!("{prefix}.{part}.1"),
                        ConvSpec {
                            cin,
                            cout,
                            kernel,
                            stride,
                            groups,
                        },
                        BN_EPS,
                    )
                };
                let proj = if width_in != width || stride != 1 {
                    Some(conv("proj", width_in, width, 1, stride, 1)?)
                } else {
                    None
                };
                blocks.push(XBlock {
                    proj,
                    a: conv("f.a", width_in, width, 1, 1, 1)?,
                    b: conv("f.b", width, width, 3, stride, width / config.group_width)?,
                    c: conv("f.c", width, width, 1, 1, 1)?,
                });
                width_in = width;
            }
        }
        Ok(Self {
            name: config.name,
            stem,
            blocks,
            feature_dim: width_in,
        })
    }
}

impl Backbone for RegNet {
    fn name(&self) -> &str {
        self.name
    }

    fn feature_dim(&self) -> usize {
        self.feature_dim
    }

    fn features_one(&self, image: &PreprocessedImage) -> Result<Vec<f32>> {
        let (h, w) = (image.height, image.width);
        if image.data.len() != 3 * h * w || h == 0 || w == 0 {
            return Err(VisionError::Invalid(format!(
                "expected a 3x{h}x{w} image, got {} values",
                image.data.len()
            )));
        }
        // CHW (torchvision's layout) to HWC (this engine's).
        let plane = h * w;
        let mut data = vec![0f32; 3 * plane];
        for (p, px) in data.chunks_exact_mut(3).enumerate() {
            for (c, v) in px.iter_mut().enumerate() {
                *v = image.data[c * plane + p];
            }
        }
        let mut x = self
            .stem
            .forward(&Activation { h, w, c: 3, data }, None, true)?;
        for block in &self.blocks {
            x = block.forward(&x)?;
        }
        // Global average pooling.
        let mut sums = vec![0f64; x.c];
        for px in x.data.chunks_exact(x.c) {
            sums.iter_mut()
                .zip(px)
                .for_each(|(s, &v)| *s += f64::from(v));
        }
        let n = (x.h * x.w) as f64;
        Ok(sums.into_iter().map(|s| (s / n) as f32).collect())
    }
}
