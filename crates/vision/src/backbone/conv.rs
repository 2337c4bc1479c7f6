//! Convolutions with BatchNorm folded in, lowered to matrix products on channels-last
//! (HWC) activations.
//!
//! Why not a generic tensor library's conv2d: RegNetX is dominated by 1x1 convolutions,
//! which on HWC data are a single matrix product with no copy at all, and by grouped 3x3
//! convolutions with 16 channels per group, which become one im2col gather plus one small
//! product per group written straight into the output's column slice. Bias (the folded
//! BatchNorm shift) and the residual are written into the output before the product
//! accumulates onto them, and ReLU is applied in the same pass: no intermediate tensors,
//! no per-group concatenation.

use faer::linalg::matmul::matmul;
use faer::{Accum, MatMut, MatRef, Par};

use crate::error::{Result, VisionError};
use crate::weights::WeightMap;

/// Activations of one image, channels last: `data[(y * w + x) * c + ch]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Activation {
    /// Rows.
    pub h: usize,
    /// Columns.
    pub w: usize,
    /// Channels.
    pub c: usize,
    /// `h * w * c` values.
    pub data: Vec<f32>,
}

/// A convolution followed by inference-mode BatchNorm, folded into one weight and bias.
#[derive(Debug, Clone)]
pub struct FoldedConv {
    cin: usize,
    cout: usize,
    kernel: usize,
    stride: usize,
    pad: usize,
    groups: usize,
    /// Per group `g`, a row-major `[kernel² · cin/groups, cout/groups]` matrix whose row
    /// `tap · cin_g + j` holds input channel `j` at kernel position `tap`; groups follow
    /// one another.
    weight: Vec<f32>,
    bias: Vec<f32>,
}

/// The shape of a convolution, as torch's `Conv2d` arguments (padding `kernel / 2`).
#[derive(Debug, Clone, Copy)]
pub struct ConvSpec {
    /// Input channels.
    pub cin: usize,
    /// Output channels.
    pub cout: usize,
    /// Square kernel size.
    pub kernel: usize,
    /// Stride in both directions.
    pub stride: usize,
    /// Channel groups.
    pub groups: usize,
}

impl FoldedConv {
    /// Reads `{conv}.weight` and the BatchNorm `{bn}.weight/bias/running_mean/running_var`
    /// from `weights`, checks their shapes, and folds the BatchNorm (eps `bn_eps`) into the
    /// convolution: `w' = w · γ/√(σ²+ε)`, `b' = β − μ · γ/√(σ²+ε)`.
    pub fn load(
        weights: &WeightMap,
        conv: &str,
        bn: &str,
        spec: ConvSpec,
        bn_eps: f64,
    ) -> Result<Self> {
        let ConvSpec {
            cin,
            cout,
            kernel,
            stride,
            groups,
        } = spec;
        if groups == 0 || cin % groups != 0 || cout % groups != 0 || kernel == 0 || stride == 0 {
            return Err(VisionError::Invalid(format!(
                "{conv}: invalid convolution {spec:?}"
            )));
        }
        let cin_g = cin / groups;
        let cout_g = cout / groups;
        let w = weights.get(&format!("{conv}.weight"), &[cout, cin_g, kernel, kernel])?;
        let gamma = weights.get(&format!("{bn}.weight"), &[cout])?;
        let beta = weights.get(&format!("{bn}.bias"), &[cout])?;
        let mean = weights.get(&format!("{bn}.running_mean"), &[cout])?;
        let var = weights.get(&format!("{bn}.running_var"), &[cout])?;
        let taps = kernel * kernel;
        let rows = taps * cin_g;
        let mut weight = vec![0f32; groups * rows * cout_g];
        let mut bias = vec![0f32; cout];
        for (o, b) in bias.iter_mut().enumerate() {
            let v = f64::from(var.data[o]);
            if v.is_nan() || v < 0.0 {
                return Err(VisionError::weights(
                    weights.path(),
                    format!("{bn}.running_var[{o}] = {v} is not a variance"),
                ));
            }
            let scale = f64::from(gamma.data[o]) / (v + bn_eps).sqrt();
            *b = (f64::from(beta.data[o]) - f64::from(mean.data[o]) * scale) as f32;
            let (g, oo) = (o / cout_g, o % cout_g);
            for j in 0..cin_g {
                for tap in 0..taps {
                    let src = (o * cin_g + j) * taps + tap;
                    let dst = g * rows * cout_g + (tap * cin_g + j) * cout_g + oo;
                    weight[dst] = (f64::from(w.data[src]) * scale) as f32;
                }
            }
        }
        Ok(Self {
            cin,
            cout,
            kernel,
            stride,
            pad: kernel / 2,
            groups,
            weight,
            bias,
        })
    }

    /// Output channels.
    pub fn out_channels(&self) -> usize {
        self.cout
    }

    /// `relu(conv(x) + bias + residual)` (ReLU only if `relu`), residual optional.
    pub fn forward(
        &self,
        x: &Activation,
        residual: Option<&Activation>,
        relu: bool,
    ) -> Result<Activation> {
        if x.c != self.cin || x.data.len() != x.h * x.w * x.c {
            return Err(VisionError::Invalid(format!(
                "convolution expects {} channels, got an activation of {}x{}x{}",
                self.cin, x.h, x.w, x.c
            )));
        }
        if x.h + 2 * self.pad < self.kernel || x.w + 2 * self.pad < self.kernel {
            return Err(VisionError::Invalid(format!(
                "input {}x{} too small",
                x.h, x.w
            )));
        }
        let ho = (x.h + 2 * self.pad - self.kernel) / self.stride + 1;
        let wo = (x.w + 2 * self.pad - self.kernel) / self.stride + 1;
        let pixels = ho * wo;
        if let Some(r) = residual {
            if (r.h, r.w, r.c) != (ho, wo, self.cout) {
                return Err(VisionError::Invalid("residual shape mismatch".into()));
            }
        }
        let mut out = vec![0f32; pixels * self.cout];
        let cin_g = self.cin / self.groups;
        let cout_g = self.cout / self.groups;
        let k = self.kernel * self.kernel * cin_g;
        // A 1x1 stride-1 convolution reads the input as it is; anything else gathers
        // patches first (im2col) into a per-thread buffer reused across layers and images,
        // grouped so that group g's patches are contiguous columns.
        IM2COL.with_borrow_mut(|scratch| {
            let (lhs, lhs_stride) = if self.kernel == 1 && self.stride == 1 {
                (&x.data[..], self.cin)
            } else {
                self.im2col(x, ho, wo, scratch);
                (&scratch[..], self.groups * k)
            };
            // Stated column-major (faer's native layout): out^T[cout_g, pixels] =
            // W_g^T[cout_g, k] · patches^T[k, pixels], which is the row-major product
            // out = patches · W_g on the same memory. (faer 0.24.4 computed wrong results,
            // and corrupted the heap, when handed the row-major destination directly.)
            for g in 0..self.groups {
                let w = &self.weight[g * k * cout_g..(g + 1) * k * cout_g];
                let wt = MatRef::from_column_major_slice(w, cout_g, k);
                let patches_t = MatRef::from_column_major_slice_with_stride(
                    &lhs[g * k..],
                    k,
                    pixels,
                    lhs_stride,
                );
                let out_t = MatMut::from_column_major_slice_with_stride_mut(
                    &mut out[g * cout_g..],
                    cout_g,
                    pixels,
                    self.cout,
                );
                matmul(out_t, Accum::Replace, wt, patches_t, 1.0f32, Par::Seq);
            }
        });
        // One pass adds bias and residual and applies ReLU.
        let floor = if relu { 0.0 } else { f32::NEG_INFINITY };
        match residual {
            Some(r) => {
                for (px, rx) in out
                    .chunks_exact_mut(self.cout)
                    .zip(r.data.chunks_exact(self.cout))
                {
                    for ((v, b), r) in px.iter_mut().zip(&self.bias).zip(rx) {
                        *v = (*v + b + r).max(floor);
                    }
                }
            }
            None => {
                for px in out.chunks_exact_mut(self.cout) {
                    for (v, b) in px.iter_mut().zip(&self.bias) {
                        *v = (*v + b).max(floor);
                    }
                }
            }
        }
        Ok(Activation {
            h: ho,
            w: wo,
            c: self.cout,
            data: out,
        })
    }

    /// Patches as rows of `cols`: row `oy * wo + ox`, column `g·k²·cin_g + tap·cin_g + j`;
    /// zero where the kernel hangs over the padding. Every element is written, so the
    /// buffer needs no clearing between uses.
    fn im2col(&self, x: &Activation, ho: usize, wo: usize, cols: &mut Vec<f32>) {
        let cin_g = self.cin / self.groups;
        let taps = self.kernel * self.kernel;
        let row_len = self.groups * taps * cin_g;
        cols.resize(ho * wo * row_len, 0.0);
        for oy in 0..ho {
            for ox in 0..wo {
                let row = &mut cols[(oy * wo + ox) * row_len..(oy * wo + ox + 1) * row_len];
                for ky in 0..self.kernel {
                    let iy = (oy * self.stride + ky)
                        .checked_sub(self.pad)
                        .filter(|&v| v < x.h);
                    for kx in 0..self.kernel {
                        let ix = (ox * self.stride + kx)
                            .checked_sub(self.pad)
                            .filter(|&v| v < x.w);
                        let tap = ky * self.kernel + kx;
                        let src = match (iy, ix) {
                            (Some(iy), Some(ix)) => {
                                Some(&x.data[(iy * x.w + ix) * x.c..(iy * x.w + ix + 1) * x.c])
                            }
                            _ => None,
                        };
                        for g in 0..self.groups {
                            let at = g * taps * cin_g + tap * cin_g;
                            let dst = &mut row[at..at + cin_g];
                            match src {
                                Some(src) => copy_small(dst, &src[g * cin_g..(g + 1) * cin_g]),
                                None => dst.fill(0.0),
                            }
                        }
                    }
                }
            }
        }
    }
}

thread_local! {
    /// im2col buffer of the current worker thread (grows to the largest layer's needs,
    /// 3.6 MB for RegNetX-400MF at 224x224).
    static IM2COL: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Copies a few channels; the 16-channel groups of RegNetX get an inlined fixed-size copy
/// instead of a `memcpy` call per kernel tap.
#[inline]
fn copy_small(dst: &mut [f32], src: &[f32]) {
    if let (Ok(d), Ok(s)) = (
        <&mut [f32; 16]>::try_from(&mut *dst),
        <&[f32; 16]>::try_from(src),
    ) {
        *d = *s;
    } else {
        dst.copy_from_slice(src);
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::weights::Tensor;

    /// Direct NCHW-style reference convolution (with the same folding done by hand).
    #[allow(clippy::too_many_arguments)]
    fn reference(
        x: &Activation,
        w: &[f32],
        cout: usize,
        k: usize,
        s: usize,
        groups: usize,
        scale: &[f32],
        shift: &[f32],
    ) -> Activation {
        let pad = k / 2;
        let ho = (x.h + 2 * pad - k) / s + 1;
        let wo = (x.w + 2 * pad - k) / s + 1;
        let (cin_g, cout_g) = (x.c / groups, cout / groups);
        let mut out = vec![0f32; ho * wo * cout];
        for o in 0..cout {
            let g = o / cout_g;
            for oy in 0..ho {
                for ox in 0..wo {
                    let mut acc = 0f64;
                    for j in 0..cin_g {
                        for ky in 0..k {
                            for kx in 0..k {
                                let iy = (oy * s + ky) as isize - pad as isize;
                                let ix = (ox * s + kx) as isize - pad as isize;
                                if iy < 0 || ix < 0 || iy >= x.h as isize || ix >= x.w as isize {
                                    continue;
                                }
                                let xv =
                                    x.data[(iy as usize * x.w + ix as usize) * x.c + g * cin_g + j];
                                acc += f64::from(xv)
                                    * f64::from(w[((o * cin_g + j) * k + ky) * k + kx]);
                            }
                        }
                    }
                    out[(oy * wo + ox) * cout + o] = (acc as f32) * scale[o] + shift[o];
                }
            }
        }
        Activation {
            h: ho,
            w: wo,
            c: cout,
            data: out,
        }
    }

    fn pseudo(n: usize, seed: u32) -> Vec<f32> {
        let mut s = seed.wrapping_mul(2654435761).wrapping_add(12345);
        (0..n)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 17;
                s ^= s << 5;
                (s % 2000) as f32 / 1000.0 - 1.0
            })
            .collect()
    }

    #[test]
    fn matches_direct_convolution() {
        for &(cin, cout, k, s, groups, h, w) in &[
            (3usize, 8usize, 3usize, 2usize, 1usize, 9usize, 7usize),
            (32, 32, 3, 2, 2, 6, 5),
            (32, 48, 3, 1, 2, 4, 4),
            (16, 24, 1, 1, 1, 5, 3),
            (16, 24, 1, 2, 1, 5, 3),
        ] {
            let wdata = pseudo(cout * (cin / groups) * k * k, 1);
            let gamma = pseudo(cout, 2);
            let beta = pseudo(cout, 3);
            let mean = pseudo(cout, 4);
            let var: Vec<f32> = pseudo(cout, 5).iter().map(|v| v.abs() + 0.1).collect();
            let mut t = HashMap::new();
            t.insert(
                "c.weight".to_string(),
                Tensor {
                    shape: vec![cout, cin / groups, k, k],
                    data: wdata.clone(),
                },
            );
            t.insert(
                "n.weight".to_string(),
                Tensor {
                    shape: vec![cout],
                    data: gamma.clone(),
                },
            );
            t.insert(
                "n.bias".to_string(),
                Tensor {
                    shape: vec![cout],
                    data: beta.clone(),
                },
            );
            t.insert(
                "n.running_mean".to_string(),
                Tensor {
                    shape: vec![cout],
                    data: mean.clone(),
                },
            );
            t.insert(
                "n.running_var".to_string(),
                Tensor {
                    shape: vec![cout],
                    data: var.clone(),
                },
            );
            let map = WeightMap::from_tensors("test", t);
            let conv = FoldedConv::load(
                &map,
                "c",
                "n",
                ConvSpec {
                    cin,
                    cout,
                    kernel: k,
                    stride: s,
                    groups,
                },
                1e-5,
            )
            .expect("load");
            let x = Activation {
                h,
                w,
                c: cin,
                data: pseudo(h * w * cin, 6),
            };
            let scale: Vec<f32> = (0..cout)
                .map(|o| gamma[o] / (var[o] + 1e-5).sqrt())
                .collect();
            let shift: Vec<f32> = (0..cout).map(|o| beta[o] - mean[o] * scale[o]).collect();
            let want = reference(&x, &wdata, cout, k, s, groups, &scale, &shift);
            let got = conv.forward(&x, None, false).expect("forward");
            assert_eq!((got.h, got.w, got.c), (want.h, want.w, want.c));
            let err = got
                .data
                .iter()
                .zip(&want.data)
                .map(|(a, b)| (a - b).abs())
                .fold(0f32, f32::max);
            assert!(
                err < 1e-4,
                "cin {cin} cout {cout} k {k} s {s} g {groups}: {err}"
            );
            // Residual and ReLU fused.
            let fused = conv.forward(&x, Some(&want), true).expect("fused");
            for (f, w) in fused.data.iter().zip(&want.data) {
                assert!((f - (2.0 * w).max(0.0)).abs() < 2e-4);
            }
        }
    }

    #[test]
    fn wrong_shapes_are_errors() {
        let mut t = HashMap::new();
        t.insert(
            "c.weight".to_string(),
            Tensor {
                shape: vec![8, 3, 3, 3],
                data: vec![0.0; 216],
            },
        );
        let map = WeightMap::from_tensors("test", t);
        let spec = ConvSpec {
            cin: 3,
            cout: 8,
            kernel: 3,
            stride: 1,
            groups: 1,
        };
        let err = FoldedConv::load(&map, "c", "n", spec, 1e-5).expect_err("missing bn");
        assert!(err.to_string().contains("missing tensor n.weight"), "{err}");
        let spec = ConvSpec { cin: 4, ..spec };
        let err = FoldedConv::load(&map, "c", "n", spec, 1e-5).expect_err("shape");
        assert!(err.to_string().contains("has shape [8, 3, 3, 3]"), "{err}");
    }
}
