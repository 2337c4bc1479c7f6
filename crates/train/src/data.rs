//! Feature tables and feature files, row ranges, validation, and the padded design matrix
//! with bias column and one-hot labels. The one home of [`FeatureTable`] and of both feature
//! file formats (`volley-vision` writes them, everything reads them here):
//!
//! **CSV** (the paper's format): one image per line, the label first (an integer, also
//! written `5.0`), then the feature values, comma-separated. Empty lines are skipped. A first
//! line none of whose fields is a number is a header and is skipped; any other line that does
//! not parse is an error naming its line.
//!
//! **Binary** (little-endian throughout):
//!
//! | offset | size | field |
//! | --- | --- | --- |
//! | 0 | 8 | magic `VOLLEYFT` |
//! | 8 | 4 | format version, `u32` = 1 |
//! | 12 | 4 | rows, `u32` |
//! | 16 | 4 | cols (features per row), `u32` |
//! | 20 | rows × (4 + 4·cols) | per row: label `u32`, then cols × `f32` |
//!
//! The file length must be exactly `20 + rows·(4 + 4·cols)`. [`FeatureTable::parse`] tells
//! the formats apart by the magic.

use crate::error::{Result, TrainError};
use std::ops::Range;
use std::path::Path;

/// First bytes of a binary feature file.
pub const FEATURE_MAGIC: &[u8; 8] = b"VOLLEYFT";
/// The binary feature format's version.
pub const FEATURE_VERSION: u32 = 1;
/// Length of the binary feature header.
pub const FEATURE_HEADER_LEN: usize = 20;

/// The binary feature header for `rows` rows of `cols` features.
pub fn feature_file_header(rows: u32, cols: u32) -> Vec<u8> {
    let mut h = Vec::with_capacity(FEATURE_HEADER_LEN);
    h.extend_from_slice(FEATURE_MAGIC);
    h.extend_from_slice(&FEATURE_VERSION.to_le_bytes());
    h.extend_from_slice(&rows.to_le_bytes());
    h.extend_from_slice(&cols.to_le_bytes());
    h
}

/// Labelled feature vectors (one row per image).
#[derive(Clone, Debug, PartialEq)]
pub struct FeatureTable {
    /// Class label of each row.
    pub labels: Vec<usize>,
    /// Features, row-major: `rows x cols`.
    pub features: Vec<f64>,
    /// Number of features per row.
    pub cols: usize,
}

impl FeatureTable {
    /// Number of rows.
    pub fn rows(&self) -> usize {
        self.labels.len()
    }

    /// Row `i`'s features.
    pub fn row(&self, i: usize) -> &[f64] {
        &self.features[i * self.cols..(i + 1) * self.cols]
    }

    /// Builds a table, validating shapes and values.
    pub fn new(labels: Vec<usize>, features: Vec<f64>, cols: usize) -> Result<Self> {
        if cols == 0 {
            return Err(TrainError::Data("feature rows have no features".into()));
        }
        if features.len() != labels.len() * cols {
            return Err(TrainError::Data(format!(
                "{} values for {} rows of {cols} features",
                features.len(),
                labels.len()
            )));
        }
        if let Some(pos) = features.iter().position(|v| !v.is_finite()) {
            return Err(TrainError::Data(format!(
                "row {} feature {}: value is not finite",
                pos / cols,
                pos % cols
            )));
        }
        Ok(Self {
            labels,
            features,
            cols,
        })
    }

    /// An empty table of `cols` features per row (filled with [`Self::push`]).
    pub fn with_cols(cols: usize) -> Self {
        Self {
            labels: Vec::new(),
            features: Vec::new(),
            cols,
        }
    }

    /// Appends a row of `cols` finite features (a backbone's output).
    pub fn push(&mut self, label: usize, row: &[f32]) -> Result<()> {
        if row.len() != self.cols {
            return Err(TrainError::Data(format!(
                "row of {} features in a table of {}",
                row.len(),
                self.cols
            )));
        }
        if let Some(v) = row.iter().find(|v| !v.is_finite()) {
            return Err(TrainError::Data(format!(
                "row {}: feature {v} is not finite",
                self.rows()
            )));
        }
        self.labels.push(label);
        self.features.extend(row.iter().map(|&v| f64::from(v)));
        Ok(())
    }

    /// Reads a feature file of either format (see the module documentation).
    pub fn read(path: &Path) -> Result<Self> {
        let bytes = std::fs::read(path).map_err(|source| TrainError::Io {
            path: path.display().to_string(),
            source,
        })?;
        Self::parse(&bytes, &path.display().to_string())
    }

    /// Parses a feature file's bytes: binary by its magic, else CSV. `source` names the
    /// input in errors.
    pub fn parse(bytes: &[u8], source: &str) -> Result<Self> {
        if bytes.starts_with(FEATURE_MAGIC) {
            return Self::parse_binary(bytes)
                .map_err(|e| TrainError::Data(format!("{source}: {e}")));
        }
        let text = std::str::from_utf8(bytes).map_err(|_| {
            TrainError::Data(format!(
                "{source}: neither a binary feature file nor UTF-8 CSV"
            ))
        })?;
        Self::parse_csv(text, source)
    }

    fn parse_binary(bytes: &[u8]) -> std::result::Result<Self, String> {
        if bytes.len() < FEATURE_HEADER_LEN {
            return Err("binary feature file truncated in its header".into());
        }
        let word = |at: usize| {
            u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
        };
        let version = word(8);
        if version != FEATURE_VERSION {
            return Err(format!(
                "binary feature file version {version}, this reader knows {FEATURE_VERSION}"
            ));
        }
        let (rows, cols) = (word(12) as usize, word(16) as usize);
        let row_len = 4 + 4 * cols;
        let expected = rows
            .checked_mul(row_len)
            .and_then(|b| b.checked_add(FEATURE_HEADER_LEN))
            .ok_or("binary feature file header is absurd")?;
        if bytes.len() != expected {
            return Err(format!(
                "binary feature file is {} bytes, its header ({rows} rows x {cols} features) needs {expected} (truncated or corrupt)",
                bytes.len()
            ));
        }
        if cols == 0 {
            return Err("binary feature file with no features per row".into());
        }
        // The length check above bounds both allocations by the file's own size.
        let mut labels = Vec::with_capacity(rows);
        let mut features = Vec::with_capacity(rows * cols);
        for (r, row) in bytes[FEATURE_HEADER_LEN..]
            .chunks_exact(row_len)
            .enumerate()
        {
            labels.push(u32::from_le_bytes([row[0], row[1], row[2], row[3]]) as usize);
            for c in row[4..].chunks_exact(4) {
                let v = f32::from_le_bytes([c[0], c[1], c[2], c[3]]);
                if !v.is_finite() {
                    return Err(format!("row {r}: non-finite feature {v}"));
                }
                features.push(f64::from(v));
            }
        }
        Self::new(labels, features, cols).map_err(|e| e.to_string())
    }

    /// Parses the paper's CSV (see the module documentation for the one header rule).
    pub fn parse_csv(text: &str, source: &str) -> Result<Self> {
        let mut labels = Vec::new();
        let mut features = Vec::new();
        let mut cols: Option<usize> = None;
        let mut first = true;
        for (lineno, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() {
                continue;
            }
            if std::mem::take(&mut first)
                && line.split(',').all(|f| f.trim().parse::<f64>().is_err())
            {
                continue; // a header: no field is a number
            }
            let at = || format!("{source}:{}", lineno + 1);
            let mut fields = line.split(',').map(str::trim);
            let label_text = fields.next().unwrap_or("");
            let label = parse_label(label_text).ok_or_else(|| {
                TrainError::Data(format!(
                    "{}: label {label_text:?} is not a non-negative integer",
                    at()
                ))
            })?;
            let start = features.len();
            for (k, f) in fields.enumerate() {
                let v: f64 = f.parse().map_err(|_| {
                    TrainError::Data(format!(
                        "{}: feature {} ({f:?}) is not a number",
                        at(),
                        k + 1
                    ))
                })?;
                if !v.is_finite() {
                    return Err(TrainError::Data(format!(
                        "{}: feature {} is {v}",
                        at(),
                        k + 1
                    )));
                }
                features.push(v);
            }
            let n = features.len() - start;
            match cols {
                None if n == 0 => {
                    return Err(TrainError::Data(format!(
                        "{}: a label but no features",
                        at()
                    )));
                }
                None => cols = Some(n),
                Some(c) if c != n => {
                    return Err(TrainError::Data(format!(
                        "{}: {n} features, but earlier rows have {c} (ragged CSV)",
                        at()
                    )));
                }
                Some(_) => {}
            }
            labels.push(label);
        }
        let cols = cols.ok_or_else(|| TrainError::Data(format!("{source}: no data rows")))?;
        Self::new(labels, features, cols)
    }

    /// The rows in `range`.
    pub fn select(&self, range: &Range<usize>) -> Result<Self> {
        if range.start >= range.end || range.end > self.rows() {
            return Err(TrainError::Range {
                range: format!("{}..{}", range.start, range.end),
                msg: format!("must be a non-empty part of the {} rows", self.rows()),
            });
        }
        Ok(Self {
            labels: self.labels[range.clone()].to_vec(),
            features: self.features[range.start * self.cols..range.end * self.cols].to_vec(),
            cols: self.cols,
        })
    }

    /// Number of classes: 1 + the largest label.
    pub fn num_classes(&self) -> usize {
        self.labels.iter().copied().max().map_or(0, |m| m + 1)
    }
}

fn parse_label(s: &str) -> Option<usize> {
    if let Ok(v) = s.parse::<usize>() {
        return Some(v);
    }
    let f: f64 = s.parse().ok()?;
    (f.is_finite() && f >= 0.0 && f.fract() == 0.0 && f < 1e9).then_some(f as usize)
}

/// Parses a half-open row range `START..END`.
pub fn parse_range(s: &str) -> Result<Range<usize>> {
    let err = |msg: &str| TrainError::Range {
        range: s.to_string(),
        msg: msg.to_string(),
    };
    let (a, b) = s
        .split_once("..")
        .ok_or_else(|| err("expected START..END (half-open, e.g. 0..128)"))?;
    let start: usize = a
        .trim()
        .parse()
        .map_err(|_| err("START is not a non-negative integer"))?;
    let end: usize = b
        .trim()
        .parse()
        .map_err(|_| err("END is not a non-negative integer"))?;
    if end <= start {
        return Err(err("END must be greater than START"));
    }
    Ok(start..end)
}

/// The training problem in the paper's form: X (n x d_hat) with a leading bias column of ones
/// and zero padding, one-hot Y (n x c), and the quadratic-gradient preconditioner b.
#[derive(Clone, Debug)]
pub struct Design {
    /// Rows n.
    pub n: usize,
    /// Columns with bias, d = features + 1.
    pub d: usize,
    /// Padded width (power of two).
    pub d_hat: usize,
    /// Classes c.
    pub c: usize,
    /// X, row-major n x d_hat.
    pub x: Vec<f64>,
    /// Labels of the rows.
    pub labels: Vec<usize>,
    /// b_j for j < d_hat (0 on padding columns, where the gradient is identically 0).
    pub b: Vec<f64>,
}

/// The paper's epsilon in the preconditioner.
pub const QG_EPSILON: f64 = 1e-10;

impl Design {
    /// Builds X with bias and padding to `d_hat` (>= d, a power of two), Y's labels, and
    /// b_j = 1 / (eps + 1/4 sum_i |x_ij| sum_k |x_ik|) (Chiang's quadratic-gradient bound).
    pub fn new(table: &FeatureTable, classes: usize, d_hat: usize) -> Result<Self> {
        let b = Self::preconditioner(table, classes, d_hat)?;
        Self::rows_of(table, classes, d_hat, 0..table.rows(), b)
    }

    /// The preconditioner b of all rows of `table` (see [`Self::new`]), one pass over the
    /// rows without building X: a mini-batch upload of any size is made from it and one
    /// batch's [`Self::rows_of`] at a time.
    pub fn preconditioner(table: &FeatureTable, classes: usize, d_hat: usize) -> Result<Vec<f64>> {
        let d = table.cols + 1;
        if classes < 2 {
            return Err(TrainError::Data(format!(
                "need at least 2 classes, the data has {classes}"
            )));
        }
        if d > d_hat || !d_hat.is_power_of_two() {
            return Err(TrainError::Capacity(format!(
                "{d} columns (features + bias) do not fit the padded width {d_hat}"
            )));
        }
        let mut s = vec![0f64; d];
        for i in 0..table.rows() {
            let row = table.row(i);
            // sum_k |x_ik| with the bias first, in the order of the padded row.
            let row_abs = row.iter().fold(1.0, |a, v| a + v.abs());
            s[0] += row_abs;
            for (sj, v) in s[1..].iter_mut().zip(row) {
                *sj += v.abs() * row_abs;
            }
        }
        Ok((0..d_hat)
            .map(|j| match s.get(j) {
                Some(&sj) => 1.0 / (QG_EPSILON + 0.25 * sj),
                None => 0.0,
            })
            .collect())
    }

    /// The design of `rows` of `table` with the preconditioner `b` (of `d_hat` values: the
    /// whole set's, scaled for a mini-batch; see [`crate::batches`]).
    pub fn rows_of(
        table: &FeatureTable,
        classes: usize,
        d_hat: usize,
        rows: std::ops::Range<usize>,
        b: Vec<f64>,
    ) -> Result<Self> {
        let d = table.cols + 1;
        if rows.end > table.rows() || rows.start > rows.end {
            return Err(TrainError::Data(format!(
                "rows {}..{} of a table of {}",
                rows.start,
                rows.end,
                table.rows()
            )));
        }
        if d > d_hat || !d_hat.is_power_of_two() || b.len() != d_hat {
            return Err(TrainError::Capacity(format!(
                "{d} columns (features + bias) do not fit the padded width {d_hat}"
            )));
        }
        let labels = table.labels[rows.clone()].to_vec();
        if let Some((i, &l)) = labels.iter().enumerate().find(|&(_, &l)| l >= classes) {
            return Err(TrainError::Data(format!(
                "row {}: label {l} is out of range for {classes} classes",
                rows.start + i
            )));
        }
        let n = rows.len();
        let mut x = vec![0f64; n * d_hat];
        for (local, i) in rows.enumerate() {
            x[local * d_hat] = 1.0;
            x[local * d_hat + 1..local * d_hat + d].copy_from_slice(table.row(i));
        }
        Ok(Self {
            n,
            d,
            d_hat,
            c: classes,
            x,
            labels,
            b,
        })
    }

    /// Row i of X.
    pub fn row(&self, i: usize) -> &[f64] {
        &self.x[i * self.d_hat..(i + 1) * self.d_hat]
    }

    /// One-hot Y_ik.
    pub fn y(&self, i: usize, k: usize) -> f64 {
        f64::from(self.labels[i] == k)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A batch's design is the whole design's rows with the whole set's preconditioner.
    #[test]
    fn batch_designs_are_rows_of_the_whole_design() {
        let t = FeatureTable::parse_csv("0,1,-2\n1,3,4\n2,-5,6\n1,0.5,0\n", "t").expect("valid");
        let whole = Design::new(&t, 3, 4).expect("fits");
        let b = Design::preconditioner(&t, 3, 4).expect("fits");
        assert_eq!(b, whole.b);
        assert!(b[0] > 0.0 && b[3] == 0.0, "padding columns have no step");
        let part = Design::rows_of(&t, 3, 4, 1..3, b.clone()).expect("fits");
        assert_eq!((part.n, part.labels.as_slice()), (2, &[1, 2][..]));
        assert_eq!(part.row(0), whole.row(1));
        assert_eq!(part.row(1), whole.row(2));
        assert!(Design::rows_of(&t, 3, 4, 2..5, b.clone()).is_err());
        assert!(
            Design::rows_of(&t, 2, 4, 1..3, b).is_err(),
            "label 2 of 2 classes"
        );
    }

    #[test]
    fn csv_accepts_paper_format_and_rejects_bad_rows() {
        let t = FeatureTable::parse_csv("5.0,1,2,3\n0,4,5,6\n\n", "t").expect("valid");
        assert_eq!(t.labels, vec![5, 0]);
        assert_eq!(t.cols, 3);
        assert_eq!(t.row(1), &[4.0, 5.0, 6.0]);
        for (bad, needle) in [
            ("1,2,3\n2,3\n", "ragged"),
            ("1,2,x\n", "not a number"),
            ("1,2,NaN\n", "is NaN"),
            ("1,2,inf\n", "is inf"),
            ("-1,2,3\n", "label"),
            ("2.5,1,1\n", "label"),
            ("", "no data rows"),
            ("3\n", "no features"),
        ] {
            let e = FeatureTable::parse_csv(bad, "t")
                .expect_err(bad)
                .to_string();
            assert!(e.contains(needle), "{bad:?}: {e}");
        }
    }

    #[test]
    fn header_rule_and_binary_format() {
        // A first line without any number is a header; one with a number is data.
        let t =
            FeatureTable::parse_csv("label,f0,f1\n5.0,0.1,0.2\n3,1e-3,-2\n", "t").expect("header");
        assert_eq!(t.labels, vec![5, 3]);
        assert_eq!(t.row(1), &[1e-3, -2.0]);
        let e = FeatureTable::parse_csv("x,1,2\n3,1,2\n", "t").expect_err("not a header");
        assert!(e.to_string().contains("t:1"), "{e}");
        // Binary: exact layout, every refusal.
        let mut ok = feature_file_header(2, 1);
        for (label, v) in [(7u32, 0.5f32), (1, -2.0)] {
            ok.extend_from_slice(&label.to_le_bytes());
            ok.extend_from_slice(&v.to_le_bytes());
        }
        let t = FeatureTable::parse(&ok, "b").expect("binary");
        assert_eq!(
            (t.labels.clone(), t.features.clone()),
            (vec![7, 1], vec![0.5, -2.0])
        );
        let mut nan = ok.clone();
        nan[24..28].copy_from_slice(&f32::NAN.to_le_bytes());
        for (bytes, needle) in [
            (&b"VOLLEYFT\x01\x00\x00"[..], "truncated"),
            (
                b"VOLLEYFT\x02\x00\x00\x00\x01\x00\x00\x00\x01\x00\x00\x00",
                "version",
            ),
            (&ok[..ok.len() - 1], "needs 36"),
            (&nan, "non-finite"),
            (b"\xff\xfe\x00binary junk", "UTF-8"),
        ] {
            let e = FeatureTable::parse(bytes, "b")
                .expect_err(needle)
                .to_string();
            assert!(e.contains(needle), "{e} lacks {needle}");
        }
        let mut absurd = feature_file_header(u32::MAX, u32::MAX);
        absurd.extend_from_slice(&[0; 8]);
        assert!(FeatureTable::parse(&absurd, "b").is_err());
        // push validates.
        let mut t = FeatureTable::with_cols(2);
        t.push(3, &[1.0, 2.0]).expect("row");
        assert!(t.push(1, &[1.0]).is_err());
        assert!(t.push(1, &[f32::INFINITY, 1.0]).is_err());
        assert_eq!(t.rows(), 1);
    }

    #[test]
    fn ranges() {
        assert_eq!(parse_range("0..128").ok(), Some(0..128));
        assert_eq!(parse_range(" 128 .. 512 ").ok(), Some(128..512));
        for bad in ["0-128", "5..5", "9..3", "a..4", "..4", "1.."] {
            assert!(parse_range(bad).is_err(), "{bad}");
        }
        let t = FeatureTable::parse_csv("1,1\n0,2\n1,3\n", "t").expect("valid");
        assert_eq!(t.select(&(1..3)).map(|s| s.labels).ok(), Some(vec![0, 1]));
        assert!(t.select(&(2..4)).is_err());
    }

    #[test]
    fn design_matrix_and_preconditioner() {
        let t = FeatureTable::parse_csv("1,1,2\n0,3,-1\n", "t").expect("valid");
        let d = Design::new(&t, 2, 4).expect("fits");
        assert_eq!(d.row(0), &[1.0, 1.0, 2.0, 0.0]);
        assert_eq!(d.row(1), &[1.0, 3.0, -1.0, 0.0]);
        // Row sums of |x|: 4 and 5. b_0 = 1/(eps + (4 + 5)/4).
        assert!((d.b[0] - 1.0 / (1e-10 + 9.0 / 4.0)).abs() < 1e-12);
        assert!((d.b[1] - 1.0 / (1e-10 + (4.0 + 15.0) / 4.0)).abs() < 1e-12);
        assert_eq!(d.b[3], 0.0);
        assert!(Design::new(&t, 1, 4).is_err());
        assert!(Design::new(&t, 2, 2).is_err());
        let t3 = FeatureTable::parse_csv("7,1,1\n", "t").expect("valid");
        assert!(
            Design::new(&t3, 3, 4)
                .expect_err("label")
                .to_string()
                .contains("out of range")
        );
    }
}
