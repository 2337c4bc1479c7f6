//! Feature files: the paper's CSV and volley's compact binary format.
//!
//! **CSV** (the paper's format): one image per line, the label first, then the feature
//! values, comma-separated, no header. Labels are read whether written `5` or `5.0`; a
//! first line whose first field is not a number is taken as a header and skipped.
//!
//! **Binary** (`.bin`, little-endian throughout):
//!
//! | offset | size | field |
//! | --- | --- | --- |
//! | 0 | 8 | magic `VOLLEYFT` |
//! | 8 | 4 | format version, `u32` = 1 |
//! | 12 | 4 | rows, `u32` |
//! | 16 | 4 | cols (features per row), `u32` |
//! | 20 | rows × (4 + 4·cols) | per row: label `u32`, then cols × `f32` |
//!
//! The file length must be exactly `20 + rows·(4 + 4·cols)`. [`read_features`] tells the
//! two formats apart by the magic, so callers take either.

use std::io::{Seek, SeekFrom, Write};
use std::path::Path;

use crate::atomic::AtomicFile;
use crate::error::{Result, VisionError};

/// First bytes of a binary feature file.
pub const MAGIC: &[u8; 8] = b"VOLLEYFT";
/// The binary format version written and read.
pub const VERSION: u32 = 1;
const HEADER_LEN: usize = 20;

/// Labelled feature vectors, row-major.
#[derive(Debug, Clone, PartialEq)]
pub struct FeatureTable {
    /// Number of rows (images).
    pub rows: usize,
    /// Features per row.
    pub cols: usize,
    /// One class label per row.
    pub labels: Vec<u32>,
    /// `rows * cols` values, row after row.
    pub values: Vec<f64>,
}

impl FeatureTable {
    /// An empty table of `cols` features per row.
    pub fn new(cols: usize) -> Self {
        Self {
            rows: 0,
            cols,
            labels: Vec::new(),
            values: Vec::new(),
        }
    }

    /// Appends a row; its length must be `cols`.
    pub fn push(&mut self, label: u32, features: &[f32]) -> Result<()> {
        if features.len() != self.cols {
            return Err(VisionError::Invalid(format!(
                "row of {} features in a table of {}",
                features.len(),
                self.cols
            )));
        }
        self.labels.push(label);
        self.values.extend(features.iter().map(|&v| f64::from(v)));
        self.rows += 1;
        Ok(())
    }

    /// Row `i`'s features.
    pub fn row(&self, i: usize) -> &[f64] {
        &self.values[i * self.cols..(i + 1) * self.cols]
    }

    /// The rows as separate vectors (for code that wants `Vec<Vec<f64>>`).
    pub fn to_rows(&self) -> Vec<Vec<f64>> {
        self.values
            .chunks(self.cols.max(1))
            .map(<[f64]>::to_vec)
            .collect()
    }
}

/// The two on-disk formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FeatureFormat {
    /// The paper's CSV: label, then the values.
    Csv,
    /// The binary format documented in this module.
    Binary,
}

impl FeatureFormat {
    /// `.csv` (any case) means CSV, anything else binary.
    pub fn from_path(path: &Path) -> Self {
        match path.extension().and_then(|e| e.to_str()) {
            Some(e) if e.eq_ignore_ascii_case("csv") => Self::Csv,
            _ => Self::Binary,
        }
    }
}

/// Streams rows into a feature file, written atomically: the file appears complete on
/// [`FeatureWriter::finish`] and not at all if the writer is dropped before.
#[derive(Debug)]
pub struct FeatureWriter {
    file: AtomicFile,
    format: FeatureFormat,
    cols: usize,
    rows: usize,
}

impl FeatureWriter {
    /// Starts a file of `cols` features per row.
    pub fn create(path: &Path, format: FeatureFormat, cols: usize) -> Result<Self> {
        if u32::try_from(cols).is_err() || cols == 0 {
            return Err(VisionError::Invalid(format!(
                "invalid feature count {cols}"
            )));
        }
        let mut file = AtomicFile::create(path)?;
        if format == FeatureFormat::Binary {
            // The row count (offset 12) is patched in by `finish`.
            file.write_all(&header(0, cols as u32))?;
        }
        Ok(Self {
            file,
            format,
            cols,
            rows: 0,
        })
    }

    /// Appends one row.
    pub fn write_row(&mut self, label: u32, features: &[f32]) -> Result<()> {
        if features.len() != self.cols {
            return Err(VisionError::Invalid(format!(
                "row of {} features in a file of {}",
                features.len(),
                self.cols
            )));
        }
        match self.format {
            FeatureFormat::Csv => {
                let mut line = String::with_capacity(12 * (self.cols + 1));
                line.push_str(&label.to_string());
                for v in features {
                    line.push(',');
                    // Rust's shortest round-trip representation: exact, and short.
                    line.push_str(&v.to_string());
                }
                line.push('\n');
                self.file.write_all(line.as_bytes())?;
            }
            FeatureFormat::Binary => {
                let mut row = Vec::with_capacity(4 + 4 * self.cols);
                row.extend_from_slice(&label.to_le_bytes());
                for v in features {
                    row.extend_from_slice(&v.to_le_bytes());
                }
                self.file.write_all(&row)?;
            }
        }
        self.rows += 1;
        Ok(())
    }

    /// Completes the file and moves it into place; returns the number of rows.
    pub fn finish(mut self) -> Result<usize> {
        if self.format == FeatureFormat::Binary {
            let rows = u32::try_from(self.rows)
                .map_err(|_| VisionError::Invalid("too many rows for the binary format".into()))?;
            let temp = self.file.temp_path().to_path_buf();
            let w = self.file.writer()?;
            w.seek(SeekFrom::Start(12))
                .and_then(|_| w.write_all(&rows.to_le_bytes()))
                .map_err(|e| VisionError::io(&temp, e))?;
        }
        let rows = self.rows;
        self.file.commit()?;
        Ok(rows)
    }
}

fn header(rows: u32, cols: u32) -> Vec<u8> {
    let mut h = Vec::with_capacity(HEADER_LEN);
    h.extend_from_slice(MAGIC);
    h.extend_from_slice(&VERSION.to_le_bytes());
    h.extend_from_slice(&rows.to_le_bytes());
    h.extend_from_slice(&cols.to_le_bytes());
    h
}

/// Writes a whole table (format chosen by the caller, see [`FeatureFormat::from_path`]).
pub fn write_features(path: &Path, table: &FeatureTable, format: FeatureFormat) -> Result<()> {
    let mut w = FeatureWriter::create(path, format, table.cols)?;
    let mut row = vec![0f32; table.cols];
    for i in 0..table.rows {
        row.iter_mut()
            .zip(table.row(i))
            .for_each(|(d, &s)| *d = s as f32);
        w.write_row(table.labels[i], &row)?;
    }
    w.finish()?;
    Ok(())
}

/// Reads a feature file in either format, recognised by its first bytes.
pub fn read_features(path: &Path) -> Result<FeatureTable> {
    let bytes = std::fs::read(path).map_err(|e| VisionError::io(path, e))?;
    if bytes.starts_with(MAGIC) {
        parse_binary(&bytes).map_err(|r| VisionError::format(path, r))
    } else {
        parse_csv(&bytes).map_err(|r| VisionError::format(path, r))
    }
}

fn parse_binary(bytes: &[u8]) -> std::result::Result<FeatureTable, String> {
    if bytes.len() < HEADER_LEN {
        return Err("binary feature file truncated in its header".into());
    }
    let word =
        |at: usize| u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]]);
    let version = word(8);
    if version != VERSION {
        return Err(format!(
            "binary feature file version {version}, this reader knows {VERSION}"
        ));
    }
    let rows = word(12) as usize;
    let cols = word(16) as usize;
    let row_len = 4 + 4 * cols;
    let expected = rows
        .checked_mul(row_len)
        .and_then(|b| b.checked_add(HEADER_LEN))
        .ok_or("binary feature file header is absurd")?;
    if bytes.len() != expected {
        return Err(format!(
            "binary feature file is {} bytes, its header ({rows} rows x {cols} features) needs {expected} \
             (truncated or corrupt)",
            bytes.len()
        ));
    }
    let mut table = FeatureTable::new(cols);
    table.labels.reserve(rows);
    table.values.reserve(rows * cols);
    for (r, row) in bytes[HEADER_LEN..].chunks_exact(row_len).enumerate() {
        table
            .labels
            .push(u32::from_le_bytes([row[0], row[1], row[2], row[3]]));
        for c in row[4..].chunks_exact(4) {
            let v = f32::from_le_bytes([c[0], c[1], c[2], c[3]]);
            if !v.is_finite() {
                return Err(format!("row {r}: non-finite feature {v}"));
            }
            table.values.push(f64::from(v));
        }
    }
    table.rows = rows;
    Ok(table)
}

fn parse_label(field: &str) -> Option<u32> {
    let f = field.trim();
    if let Ok(v) = f.parse::<u32>() {
        return Some(v);
    }
    let v = f.parse::<f64>().ok()?;
    (v >= 0.0 && v.fract() == 0.0 && v <= f64::from(u32::MAX)).then_some(v as u32)
}

fn parse_csv(bytes: &[u8]) -> std::result::Result<FeatureTable, String> {
    let text =
        std::str::from_utf8(bytes).map_err(|_| "neither a binary feature file nor UTF-8 CSV")?;
    let mut table: Option<FeatureTable> = None;
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let mut fields = line.split(',');
        let first = fields.next().unwrap_or_default();
        let Some(label) = parse_label(first) else {
            if n == 0 && first.trim().parse::<f64>().is_err() {
                continue; // a header line
            }
            return Err(format!(
                "line {}: label {first:?} is not a non-negative integer",
                n + 1
            ));
        };
        let values: Vec<f64> = fields
            .enumerate()
            .map(|(i, f)| match f.trim().parse::<f64>() {
                Ok(v) if v.is_finite() => Ok(v),
                _ => Err(format!(
                    "line {}, column {}: {f:?} is not a finite number",
                    n + 1,
                    i + 2
                )),
            })
            .collect::<std::result::Result<_, _>>()?;
        let t = table.get_or_insert_with(|| FeatureTable::new(values.len()));
        if values.len() != t.cols || values.is_empty() {
            return Err(format!(
                "line {}: {} features where the first row has {}",
                n + 1,
                values.len(),
                t.cols
            ));
        }
        t.labels.push(label);
        t.values.extend(values);
        t.rows += 1;
    }
    table.ok_or_else(|| "no rows in the feature file".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> FeatureTable {
        let mut t = FeatureTable::new(3);
        t.push(5, &[0.5, -1.25, 3.0e-7]).expect("push");
        t.push(0, &[1.0, 2.0, 5.576_345]).expect("push");
        t
    }

    #[test]
    fn round_trips_both_formats() {
        let dir = tempfile::tempdir().expect("tempdir");
        for (name, format) in [
            ("f.csv", FeatureFormat::Csv),
            ("f.bin", FeatureFormat::Binary),
        ] {
            let path = dir.path().join(name);
            assert_eq!(FeatureFormat::from_path(&path), format);
            write_features(&path, &sample(), format).expect("write");
            let back = read_features(&path).expect("read");
            let want = sample();
            assert_eq!(
                (back.rows, back.cols, &back.labels),
                (want.rows, want.cols, &want.labels)
            );
            // Both formats hold f32 values exactly (CSV as their shortest decimal form).
            let as_f32 = |t: &FeatureTable| t.values.iter().map(|&v| v as f32).collect::<Vec<_>>();
            assert_eq!(as_f32(&back), as_f32(&want), "{name}");
        }
        let bin = std::fs::read(dir.path().join("f.bin")).expect("read");
        assert_eq!(bin.len(), 20 + 2 * (4 + 12));
        assert_eq!(&bin[..8], b"VOLLEYFT");
    }

    #[test]
    fn csv_accepts_float_labels_and_header() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("p.csv");
        std::fs::write(&path, "label,f0,f1\n5.0,0.1,0.2\n3,1e-3,-2\n").expect("write");
        let t = read_features(&path).expect("read");
        assert_eq!(t.labels, vec![5, 3]);
        assert_eq!(t.row(1), &[1e-3, -2.0]);
    }

    #[test]
    fn corrupt_inputs_are_errors() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("bad");
        for (content, needle) in [
            (&b"1,2,3\n4,5\n"[..], "features where"),
            (b"1.5,2\n", "label"),
            (b"1,abc\n", "not a finite number"),
            (b"1,nan\n", "not a finite number"),
            (b"", "no rows"),
            (b"VOLLEYFT\x01\x00\x00", "truncated"),
            (b"VOLLEYFT\x02\x00\x00\x00\x01\x00\x00\x00\x01\x00\x00\x00", "version"),
            (b"VOLLEYFT\x01\x00\x00\x00\x02\x00\x00\x00\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x80\x3f", "needs 36"),
            (b"\xff\xfe\x00binary junk", "UTF-8"),
        ] {
            std::fs::write(&path, content).expect("write");
            let err = read_features(&path).expect_err("corrupt").to_string();
            assert!(err.contains(needle), "{err} lacks {needle}");
        }
        assert!(matches!(
            read_features(&dir.path().join("missing")),
            Err(VisionError::Io { .. })
        ));
    }

    #[test]
    fn dropped_writer_leaves_nothing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("x.bin");
        let mut w = FeatureWriter::create(&path, FeatureFormat::Binary, 2).expect("create");
        w.write_row(1, &[1.0, 2.0]).expect("row");
        assert!(w.write_row(1, &[1.0]).is_err());
        drop(w);
        assert_eq!(std::fs::read_dir(dir.path()).expect("dir").count(), 0);
    }
}
