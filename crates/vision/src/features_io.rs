//! Writing feature files. The formats and the one [`FeatureTable`] (with the one reader of
//! both formats, `FeatureTable::read`) live in `volley_train::data`; this module streams a
//! backbone's output into a file of either format, atomically.

use std::io::{Seek, SeekFrom, Write};
use std::path::Path;

use crate::atomic::AtomicFile;
use crate::error::{Result, VisionError};
use volley_train::data::feature_file_header;
pub use volley_train::data::{FEATURE_MAGIC as MAGIC, FeatureTable};

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
        let mut file = AtomicFile::create(path).map_err(|e| VisionError::io(path, e))?;
        if format == FeatureFormat::Binary {
            // The row count (offset 12) is patched in by `finish`.
            file.write_all(&feature_file_header(0, cols as u32))
                .map_err(|e| VisionError::io(path, e))?;
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
                let temp = self.file.temp_path().to_path_buf();
                self.file
                    .write_all(line.as_bytes())
                    .map_err(|e| VisionError::io(&temp, e))?;
            }
            FeatureFormat::Binary => {
                let mut row = Vec::with_capacity(4 + 4 * self.cols);
                row.extend_from_slice(&label.to_le_bytes());
                for v in features {
                    row.extend_from_slice(&v.to_le_bytes());
                }
                let temp = self.file.temp_path().to_path_buf();
                self.file
                    .write_all(&row)
                    .map_err(|e| VisionError::io(&temp, e))?;
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
            let w = self.file.writer().map_err(|e| VisionError::io(&temp, e))?;
            w.seek(SeekFrom::Start(12))
                .and_then(|_| w.write_all(&rows.to_le_bytes()))
                .map_err(|e| VisionError::io(&temp, e))?;
        }
        let rows = self.rows;
        let temp = self.file.temp_path().to_path_buf();
        self.file.commit().map_err(|e| VisionError::io(&temp, e))?;
        Ok(rows)
    }
}

/// Writes a whole table (format chosen by the caller, see [`FeatureFormat::from_path`]).
pub fn write_features(path: &Path, table: &FeatureTable, format: FeatureFormat) -> Result<()> {
    let mut w = FeatureWriter::create(path, format, table.cols)?;
    let mut row = vec![0f32; table.cols];
    for i in 0..table.rows() {
        row.iter_mut()
            .zip(table.row(i))
            .for_each(|(d, &s)| *d = s as f32);
        let label = u32::try_from(table.labels[i])
            .map_err(|_| VisionError::Invalid(format!("label {} above u32", table.labels[i])))?;
        w.write_row(label, &row)?;
    }
    w.finish()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> FeatureTable {
        let mut t = FeatureTable::with_cols(3);
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
            let back = FeatureTable::read(&path).expect("read");
            let want = sample();
            assert_eq!((back.cols, &back.labels), (want.cols, &want.labels));
            // Both formats hold f32 values exactly (CSV as their shortest decimal form).
            let as_f32 =
                |t: &FeatureTable| t.features.iter().map(|&v| v as f32).collect::<Vec<_>>();
            assert_eq!(as_f32(&back), as_f32(&want), "{name}");
        }
        let bin = std::fs::read(dir.path().join("f.bin")).expect("read");
        assert_eq!(bin.len(), 20 + 2 * (4 + 12));
        assert_eq!(&bin[..8], b"VOLLEYFT");
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
