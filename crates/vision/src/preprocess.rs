//! The torchvision transform of the paper, reproduced bit for bit where PIL is involved:
//! `Resize(224)` (PIL bilinear with antialias, computed on the 8-bit image in PIL's fixed
//! point), `ToTensor()` (`/255`), grey repeated to 3 channels, optionally
//! `Normalize(ImageNet mean, std)`.

use crate::error::{Result, VisionError};

/// A decoded 8-bit image, before preprocessing.
#[derive(Debug, Clone, PartialEq)]
pub enum RawImage {
    /// One channel, row-major, `width * height` bytes.
    Grey {
        /// Columns.
        width: usize,
        /// Rows.
        height: usize,
        /// Pixel values, 0 = black.
        pixels: Vec<u8>,
    },
    /// Three interleaved channels R, G, B, row-major, `3 * width * height` bytes.
    Rgb {
        /// Columns.
        width: usize,
        /// Rows.
        height: usize,
        /// Interleaved R, G, B values.
        pixels: Vec<u8>,
    },
}

impl RawImage {
    /// `(width, height)`.
    pub fn size(&self) -> (usize, usize) {
        match self {
            Self::Grey { width, height, .. } | Self::Rgb { width, height, .. } => (*width, *height),
        }
    }

    /// PIL's `convert("L")` of a colour image (ITU-R 601-2 luma in PIL's fixed point);
    /// grey images are returned as they are.
    pub fn to_grey(&self) -> RawImage {
        match self {
            Self::Grey { .. } => self.clone(),
            Self::Rgb {
                width,
                height,
                pixels,
            } => RawImage::Grey {
                width: *width,
                height: *height,
                pixels: pixels
                    .chunks_exact(3)
                    .map(|p| {
                        let l = u32::from(p[0]) * 19595
                            + u32::from(p[1]) * 38470
                            + u32::from(p[2]) * 7471
                            + 0x8000;
                        (l >> 16) as u8
                    })
                    .collect(),
            },
        }
    }
}

/// ImageNet channel means used by torchvision's pretrained weights.
pub const IMAGENET_MEAN: [f32; 3] = [0.485, 0.456, 0.406];
/// ImageNet channel standard deviations used by torchvision's pretrained weights.
pub const IMAGENET_STD: [f32; 3] = [0.229, 0.224, 0.225];

/// How images become network inputs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PreprocessOptions {
    /// `Resize(size)`: the shorter side becomes `size`, the longer keeps the aspect ratio
    /// (torchvision's rounding down). 224 in the paper.
    pub size: usize,
    /// Convert colour images to grey first (PIL `convert("L")`), the paper's one-channel
    /// pipeline; otherwise colour images keep their three channels. Grey images are always
    /// repeated to three channels.
    pub grey: bool,
    /// Apply `Normalize(IMAGENET_MEAN, IMAGENET_STD)` after `/255` (what the ImageNet
    /// weights were trained with; the paper's MNIST transform does not).
    pub normalize: bool,
}

impl Default for PreprocessOptions {
    /// The paper's MNIST transform: `Resize(224)`, `ToTensor()`, grey to 3 channels.
    fn default() -> Self {
        Self {
            size: 224,
            grey: false,
            normalize: false,
        }
    }
}

/// A network input: 3 channels, planar (CHW) `f32`, like a torchvision tensor.
#[derive(Debug, Clone, PartialEq)]
pub struct PreprocessedImage {
    /// Rows.
    pub height: usize,
    /// Columns.
    pub width: usize,
    /// `3 * height * width` values, channel-major.
    pub data: Vec<f32>,
}

/// Applies the transform to one image.
pub fn preprocess(image: &RawImage, options: &PreprocessOptions) -> Result<PreprocessedImage> {
    let (width, height) = image.size();
    if width == 0 || height == 0 {
        return Err(VisionError::Invalid(
            "cannot preprocess an empty image".into(),
        ));
    }
    if options.size == 0 {
        return Err(VisionError::Invalid(
            "resize target must be positive".into(),
        ));
    }
    let image = if options.grey {
        image.to_grey()
    } else {
        image.clone()
    };
    let (out_w, out_h) = resized_size(width, height, options.size);
    let planes: Vec<Vec<u8>> = match &image {
        RawImage::Grey { pixels, .. } => {
            check_len(pixels.len(), width * height)?;
            let plane = resize_plane(pixels, width, height, out_w, out_h);
            vec![plane.clone(), plane.clone(), plane]
        }
        RawImage::Rgb { pixels, .. } => {
            check_len(pixels.len(), 3 * width * height)?;
            (0..3)
                .map(|c| {
                    let channel: Vec<u8> = pixels.iter().skip(c).step_by(3).copied().collect();
                    resize_plane(&channel, width, height, out_w, out_h)
                })
                .collect()
        }
    };
    let mut data = Vec::with_capacity(3 * out_w * out_h);
    for (c, plane) in planes.iter().enumerate() {
        let (mean, std) = if options.normalize {
            (IMAGENET_MEAN[c], IMAGENET_STD[c])
        } else {
            (0.0, 1.0)
        };
        data.extend(plane.iter().map(|&v| (f32::from(v) / 255.0 - mean) / std));
    }
    Ok(PreprocessedImage {
        height: out_h,
        width: out_w,
        data,
    })
}

fn check_len(actual: usize, expected: usize) -> Result<()> {
    if actual == expected {
        Ok(())
    } else {
        Err(VisionError::Invalid(format!(
            "image buffer has {actual} bytes, its size needs {expected}"
        )))
    }
}

/// torchvision's `Resize(int)` output size `(width, height)`: shorter side to `size`,
/// longer side `int(size * long / short)`.
pub fn resized_size(width: usize, height: usize, size: usize) -> (usize, usize) {
    if width <= height {
        (size, size * height / width)
    } else {
        (size * width / height, size)
    }
}

/// Bits of PIL's fixed-point coefficients for 8-bit images (`32 - 8 - 2`).
const PRECISION_BITS: u32 = 22;

/// PIL's `precompute_coeffs` for the bilinear (triangle) filter followed by
/// `normalize_coeffs_8bpc`: for each output index, the first input index and the integer
/// weights. When shrinking, the triangle is widened by the scale (antialiasing); when
/// enlarging it has support 1, i.e. ordinary bilinear interpolation with half-pixel centres.
fn bilinear_coeffs(in_size: usize, out_size: usize) -> Vec<(usize, Vec<i64>)> {
    let scale = in_size as f64 / out_size as f64;
    let filterscale = scale.max(1.0);
    let support = filterscale; // the triangle's support is 1
    (0..out_size)
        .map(|xx| {
            let center = (xx as f64 + 0.5) * scale;
            // C's (int) cast truncates toward zero; the max(0) makes that a floor here.
            let xmin = ((center - support + 0.5) as i64).max(0) as usize;
            let xmax = ((center + support + 0.5) as i64).min(in_size as i64) as usize;
            let weights: Vec<f64> = (xmin..xmax.max(xmin))
                .map(|x| {
                    let d = ((x as f64 - center + 0.5) / filterscale).abs();
                    if d < 1.0 { 1.0 - d } else { 0.0 }
                })
                .collect();
            let total: f64 = weights.iter().sum();
            let fixed = weights
                .iter()
                .map(|&w| {
                    let w = if total != 0.0 { w / total } else { w };
                    let scaled = w * f64::from(1u32 << PRECISION_BITS);
                    (if scaled < 0.0 {
                        scaled - 0.5
                    } else {
                        scaled + 0.5
                    }) as i64
                })
                .collect();
            (xmin, fixed)
        })
        .collect()
}

fn clip8(acc: i64) -> u8 {
    (acc >> PRECISION_BITS).clamp(0, 255) as u8
}

/// Resizes one 8-bit plane as PIL does: a horizontal pass (rounded to 8 bits), then a
/// vertical pass; a pass whose size does not change is skipped, as in PIL.
fn resize_plane(src: &[u8], w: usize, h: usize, out_w: usize, out_h: usize) -> Vec<u8> {
    let rounding = 1i64 << (PRECISION_BITS - 1);
    let horizontal = if out_w != w {
        let coeffs = bilinear_coeffs(w, out_w);
        let mut tmp = vec![0u8; out_w * h];
        for y in 0..h {
            let row = &src[y * w..(y + 1) * w];
            for (xx, (xmin, k)) in coeffs.iter().enumerate() {
                let acc = k
                    .iter()
                    .zip(&row[*xmin..])
                    .fold(rounding, |a, (&k, &p)| a + k * i64::from(p));
                tmp[y * out_w + xx] = clip8(acc);
            }
        }
        tmp
    } else {
        src.to_vec()
    };
    if out_h == h {
        return horizontal;
    }
    let coeffs = bilinear_coeffs(h, out_h);
    let mut out = vec![0u8; out_w * out_h];
    for (yy, (ymin, k)) in coeffs.iter().enumerate() {
        for x in 0..out_w {
            let acc = k.iter().enumerate().fold(rounding, |a, (i, &k)| {
                a + k * i64::from(horizontal[(ymin + i) * out_w + x])
            });
            out[yy * out_w + x] = clip8(acc);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_sizes_follow_torchvision() {
        assert_eq!(resized_size(28, 28, 224), (224, 224));
        assert_eq!(resized_size(32, 48, 224), (224, 336));
        assert_eq!(resized_size(500, 375, 224), (298, 224));
    }

    #[test]
    fn same_size_is_identity_and_constant_stays_constant() {
        let img = RawImage::Grey {
            width: 3,
            height: 2,
            pixels: vec![0, 10, 20, 30, 40, 255],
        };
        let opts = PreprocessOptions {
            size: 2,
            ..Default::default()
        };
        let p = preprocess(&img, &opts).expect("preprocess");
        assert_eq!((p.width, p.height), (3, 2));
        assert_eq!(p.data[5], 1.0);
        assert_eq!(p.data[6 + 1], 10.0 / 255.0);

        let flat = RawImage::Grey {
            width: 5,
            height: 7,
            pixels: vec![77; 35],
        };
        for size in [3, 5, 224] {
            let p = preprocess(
                &flat,
                &PreprocessOptions {
                    size,
                    ..Default::default()
                },
            )
            .expect("p");
            assert!(p.data.iter().all(|&v| v == 77.0 / 255.0), "size {size}");
        }
    }

    #[test]
    fn upscale_is_half_pixel_bilinear() {
        // 2 -> 4 pixels: centres at 0.25, 0.75, 1.25, 1.75 in input coordinates minus 0.5.
        let img = RawImage::Grey {
            width: 2,
            height: 1,
            pixels: vec![0, 200],
        };
        let opts = PreprocessOptions {
            size: 1,
            ..Default::default()
        };
        // width stays >= height: (size * 2 / 1, 1) = (2, 1): identity; force 4 via size 2.
        let p = preprocess(&img, &PreprocessOptions { size: 2, ..opts }).expect("p");
        assert_eq!((p.width, p.height), (4, 2));
        let row: Vec<u8> = p.data[..4]
            .iter()
            .map(|v| (v * 255.0).round() as u8)
            .collect();
        assert_eq!(row, vec![0, 50, 150, 200]);
    }

    #[test]
    fn normalisation_and_rgb() {
        let img = RawImage::Rgb {
            width: 1,
            height: 1,
            pixels: vec![255, 0, 128],
        };
        let p = preprocess(
            &img,
            &PreprocessOptions {
                size: 1,
                grey: false,
                normalize: true,
            },
        )
        .expect("p");
        assert!((p.data[0] - (1.0 - 0.485) / 0.229).abs() < 1e-6);
        assert!((p.data[1] - (0.0 - 0.456) / 0.224).abs() < 1e-6);
        let grey = img.to_grey();
        assert_eq!(
            grey,
            RawImage::Grey {
                width: 1,
                height: 1,
                pixels: vec![91]
            }
        );
    }

    #[test]
    fn bad_buffers_are_errors() {
        let img = RawImage::Grey {
            width: 4,
            height: 4,
            pixels: vec![0; 3],
        };
        assert!(preprocess(&img, &PreprocessOptions::default()).is_err());
        let empty = RawImage::Grey {
            width: 0,
            height: 4,
            pixels: vec![],
        };
        assert!(preprocess(&empty, &PreprocessOptions::default()).is_err());
    }
}
