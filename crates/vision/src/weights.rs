//! Named weight tensors loaded from PyTorch `.pth` state dicts or `.safetensors` files.
//!
//! Both formats are read as they are published: torchvision's `.pth` is a `torch.save`
//! zip archive (a pickle naming the tensors plus one raw storage per tensor), parsed by
//! the `pth` module; `.safetensors` by the `safetensors` crate. All floating dtypes are
//! converted to `f32`, the precision the backbones compute in.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::error::{Result, VisionError};

/// A dense tensor in row-major order.
#[derive(Debug, Clone, PartialEq)]
pub struct Tensor {
    /// Dimensions, outermost first.
    pub shape: Vec<usize>,
    /// `shape.iter().product()` values.
    pub data: Vec<f32>,
}

/// All tensors of a weight file, by name (e.g. `stem.0.weight`).
#[derive(Debug, Clone)]
pub struct WeightMap {
    path: PathBuf,
    tensors: HashMap<String, Tensor>,
}

impl WeightMap {
    /// Loads a `.pth` (zip) or `.safetensors` file, recognised by its first bytes rather
    /// than its extension.
    pub fn load(path: &Path) -> Result<Self> {
        let bytes = std::fs::read(path).map_err(|e| VisionError::io(path, e))?;
        let tensors = if bytes.starts_with(b"PK\x03\x04") || bytes.starts_with(b"PK\x05\x06") {
            crate::pth::parse_state_dict(&bytes).map_err(|r| VisionError::weights(path, r))?
        } else if bytes.starts_with(b"\x80") {
            return Err(VisionError::weights(
                path,
                "legacy (pre-zip) torch.save format is not supported; re-save it with a current \
                 torch.save or convert it to .safetensors",
            ));
        } else {
            parse_safetensors(&bytes).map_err(|r| VisionError::weights(path, r))?
        };
        Ok(Self {
            path: path.to_path_buf(),
            tensors,
        })
    }

    /// Builds a map from tensors already in memory (tests, converters).
    pub fn from_tensors(path: impl Into<PathBuf>, tensors: HashMap<String, Tensor>) -> Self {
        Self {
            path: path.into(),
            tensors,
        }
    }

    /// The file the tensors came from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Number of tensors.
    pub fn len(&self) -> usize {
        self.tensors.len()
    }

    /// True when the file held no tensor.
    pub fn is_empty(&self) -> bool {
        self.tensors.is_empty()
    }

    /// The tensor `name`, which must have exactly `shape`: a missing tensor or another
    /// shape is a [`VisionError::Weights`] naming both.
    pub fn get(&self, name: &str, shape: &[usize]) -> Result<&Tensor> {
        let tensor = self.tensors.get(name).ok_or_else(|| {
            VisionError::weights(
                &self.path,
                format!("missing tensor {name} (shape {shape:?})"),
            )
        })?;
        if tensor.shape != shape {
            return Err(VisionError::weights(
                &self.path,
                format!(
                    "tensor {name} has shape {:?}, the architecture needs {shape:?}",
                    tensor.shape
                ),
            ));
        }
        Ok(tensor)
    }
}

fn parse_safetensors(bytes: &[u8]) -> std::result::Result<HashMap<String, Tensor>, String> {
    use safetensors::Dtype;
    let st = safetensors::SafeTensors::deserialize(bytes)
        .map_err(|e| format!("not a valid .pth or .safetensors file: {e}"))?;
    let mut out = HashMap::new();
    for (name, view) in st.tensors() {
        let raw = view.data();
        let data: Vec<f32> = match view.dtype() {
            Dtype::F32 => raw
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect(),
            Dtype::F64 => raw
                .chunks_exact(8)
                .map(|c| {
                    f64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]) as f32
                })
                .collect(),
            Dtype::F16 => raw
                .chunks_exact(2)
                .map(|c| f16_to_f32(u16::from_le_bytes([c[0], c[1]])))
                .collect(),
            Dtype::BF16 => raw
                .chunks_exact(2)
                .map(|c| bf16_to_f32(u16::from_le_bytes([c[0], c[1]])))
                .collect(),
            Dtype::I64 => raw
                .chunks_exact(8)
                .map(|c| {
                    i64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]) as f32
                })
                .collect(),
            other => return Err(format!("tensor {name}: unsupported dtype {other:?}")),
        };
        out.insert(
            name,
            Tensor {
                shape: view.shape().to_vec(),
                data,
            },
        );
    }
    Ok(out)
}

/// IEEE half precision to single precision.
pub(crate) fn f16_to_f32(bits: u16) -> f32 {
    let negative = bits >> 15 == 1;
    let exp = (bits >> 10) & 0x1f;
    let mant = u32::from(bits & 0x3ff);
    let value = match exp {
        // Zero and subnormals: mant * 2^-24, exact in f32.
        0 => mant as f32 * 2f32.powi(-24),
        0x1f if mant == 0 => f32::INFINITY,
        0x1f => f32::NAN,
        e => f32::from_bits(((u32::from(e) + 127 - 15) << 23) | (mant << 13)),
    };
    if negative { -value } else { value }
}

/// bfloat16 to single precision (the upper half of an f32).
pub(crate) fn bf16_to_f32(bits: u16) -> f32 {
    f32::from_bits(u32::from(bits) << 16)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn half_conversions() {
        assert_eq!(f16_to_f32(0x3c00), 1.0);
        assert_eq!(f16_to_f32(0xc000), -2.0);
        assert_eq!(f16_to_f32(0x0001), 2f32.powi(-24));
        assert_eq!(bf16_to_f32(0x3f80), 1.0);
    }

    #[test]
    fn garbage_is_a_typed_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("w.safetensors");
        std::fs::write(&p, b"\x10\x00\x00\x00\x00\x00\x00\x00{not json").expect("write");
        let err = WeightMap::load(&p).expect_err("corrupt");
        assert!(matches!(err, VisionError::Weights { .. }), "{err}");
        let missing = WeightMap::load(&dir.path().join("nope.pth")).expect_err("missing");
        assert!(matches!(missing, VisionError::Io { .. }));
    }
}
