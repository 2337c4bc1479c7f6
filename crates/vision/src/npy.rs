//! A reader for NumPy `.npy` files (C order, little-endian `u1`, `f4`, `f8`), enough for
//! the reference fixtures and for users who keep images or features as NumPy arrays.

use std::path::Path;

use crate::error::{Result, VisionError};

/// The element data of an array, in C (row-major) order.
#[derive(Debug, Clone, PartialEq)]
pub enum NpyData {
    /// `|u1` / `uint8`.
    U8(Vec<u8>),
    /// `<f4` / `float32`.
    F32(Vec<f32>),
    /// `<f8` / `float64`.
    F64(Vec<f64>),
}

/// An n-dimensional array read from a `.npy` file.
#[derive(Debug, Clone, PartialEq)]
pub struct NpyArray {
    /// Dimensions, outermost first.
    pub shape: Vec<usize>,
    /// The elements.
    pub data: NpyData,
}

impl NpyArray {
    /// The elements as `f32` (uint8 values are converted, not scaled).
    pub fn to_f32(&self) -> Vec<f32> {
        match &self.data {
            NpyData::U8(v) => v.iter().map(|&x| f32::from(x)).collect(),
            NpyData::F32(v) => v.clone(),
            NpyData::F64(v) => v.iter().map(|&x| x as f32).collect(),
        }
    }
}

/// Reads a `.npy` file.
pub fn read_npy(path: &Path) -> Result<NpyArray> {
    let bytes = std::fs::read(path).map_err(|e| VisionError::io(path, e))?;
    parse_npy(&bytes).map_err(|reason| VisionError::format(path, reason))
}

/// Parses the bytes of a `.npy` file; the error is a one-line reason.
pub fn parse_npy(bytes: &[u8]) -> std::result::Result<NpyArray, String> {
    if bytes.len() < 10 || &bytes[..6] != b"\x93NUMPY" {
        return Err("not a .npy file (bad magic)".into());
    }
    let major = bytes[6];
    let (header_len, header_start) = match major {
        1 => (usize::from(u16::from_le_bytes([bytes[8], bytes[9]])), 10),
        2 | 3 => {
            if bytes.len() < 12 {
                return Err("truncated .npy header".into());
            }
            let len = u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]);
            (len as usize, 12)
        }
        v => return Err(format!("unsupported .npy version {v}")),
    };
    let data_start = header_start + header_len;
    let header = bytes
        .get(header_start..data_start)
        .ok_or("truncated .npy header")?;
    let header = std::str::from_utf8(header).map_err(|_| "non-UTF-8 .npy header")?;
    let descr = dict_value(header, "descr").ok_or("no 'descr' in .npy header")?;
    let descr = descr.trim_matches(|c| c == '\'' || c == '"');
    let fortran = dict_value(header, "fortran_order").ok_or("no 'fortran_order' in .npy header")?;
    if fortran.trim() != "False" {
        return Err("Fortran-order arrays are not supported".into());
    }
    let shape_text = dict_value(header, "shape").ok_or("no 'shape' in .npy header")?;
    let shape = parse_shape(shape_text)?;
    let count = shape
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .ok_or("array too large")?;
    let payload = &bytes[data_start..];
    let width = match descr {
        "|u1" | "u1" | "<u1" => 1,
        "<f4" => 4,
        "<f8" => 8,
        other => {
            return Err(format!(
                "unsupported dtype {other} (expected |u1, <f4 or <f8)"
            ));
        }
    };
    let needed = count.checked_mul(width).ok_or("array too large")?;
    if payload.len() != needed {
        return Err(format!(
            "data is {} bytes, shape {:?} of {descr} needs {needed} (truncated or corrupt)",
            payload.len(),
            shape
        ));
    }
    let data = match width {
        1 => NpyData::U8(payload.to_vec()),
        4 => NpyData::F32(
            payload
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect(),
        ),
        _ => NpyData::F64(
            payload
                .chunks_exact(8)
                .map(|c| f64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]))
                .collect(),
        ),
    };
    Ok(NpyArray { shape, data })
}

/// The text of `key`'s value in the header's Python dict literal (up to the next
/// top-level comma), e.g. `'<f4'` or `(8, 28, 28)`.
fn dict_value<'a>(header: &'a str, key: &str) -> Option<&'a str> {
    let at = header.find(&format!("'{key}'"))?;
    let rest = &header[at + key.len() + 2..];
    let rest = rest.trim_start().strip_prefix(':')?.trim_start();
    if rest.starts_with('(') {
        let end = rest.find(')')?;
        Some(&rest[..=end])
    } else {
        let end = rest.find([',', '}']).unwrap_or(rest.len());
        Some(rest[..end].trim())
    }
}

fn parse_shape(text: &str) -> std::result::Result<Vec<usize>, String> {
    let inner = text
        .trim()
        .strip_prefix('(')
        .and_then(|t| t.strip_suffix(')'))
        .ok_or_else(|| format!("bad shape {text}"))?;
    inner
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.parse::<usize>().map_err(|_| format!("bad shape {text}")))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn npy_bytes(descr: &str, shape: &str, payload: &[u8]) -> Vec<u8> {
        let mut header =
            format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}");
        while (10 + header.len() + 1) % 64 != 0 {
            header.push(' ');
        }
        header.push('\n');
        let mut out = b"\x93NUMPY\x01\x00".to_vec();
        out.extend_from_slice(&(header.len() as u16).to_le_bytes());
        out.extend_from_slice(header.as_bytes());
        out.extend_from_slice(payload);
        out
    }

    #[test]
    fn parses_u8_and_f32() {
        let a = parse_npy(&npy_bytes("|u1", "(2, 3)", &[1, 2, 3, 4, 5, 6])).expect("u8");
        assert_eq!(a.shape, vec![2, 3]);
        assert_eq!(a.data, NpyData::U8(vec![1, 2, 3, 4, 5, 6]));
        let payload: Vec<u8> = [1.5f32, -2.0]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        let b = parse_npy(&npy_bytes("<f4", "(2,)", &payload)).expect("f32");
        assert_eq!(b.shape, vec![2]);
        assert_eq!(b.to_f32(), vec![1.5, -2.0]);
    }

    #[test]
    fn rejects_truncated_and_bad_magic() {
        let bytes = npy_bytes("|u1", "(2, 3)", &[1, 2, 3]);
        let err = parse_npy(&bytes).expect_err("truncated");
        assert!(err.contains("truncated"), "{err}");
        assert!(parse_npy(b"not numpy at all").is_err());
        assert!(parse_npy(&npy_bytes("<i8", "(1,)", &[0; 8])).is_err());
        let mut short = npy_bytes("|u1", "(1,)", &[7]);
        short.truncate(20);
        assert!(parse_npy(&short).is_err());
    }
}
