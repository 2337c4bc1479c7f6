//! Slot layouts of the two schedules.
//!
//! Both pack X row-major: each ciphertext holds `r = slots / d_hat` consecutive rows of
//! `d_hat` slots (the paper's Volley Revolver packing), slot `i * d_hat + j` = x_{i,j}.
//!
//! **Diagonal schedule (the default).** The weights live as `n_o = next_pow2(c)` "diagonal"
//! ciphertexts D_t, t < n_o, each replicated over the r rows:
//! D_t[i, j] = W[j mod n_o][(j - t) mod d_hat]. Then for X rotated right by t,
//! sum_t D_t (.) rot(X, -t) folded over j = k (mod n_o) is z_{i,k} (the "hybrid" diagonal
//! method of GAZELLE, Juvekar et al. 2018, for a c x d_hat matrix), and the gradient comes out
//! directly in the same D_t layout. The right rotations never leak across rows because the
//! last `n_o - 1` columns of every row are zero padding (d_hat >= d + n_o - 1).
//!
//! **Paper schedule.** W, V and b in one ciphertext each, row k at slots k*d_hat.., Y packed
//! like X with the c label columns first.

use crate::algorithm::Weights;
use crate::data::Design;
use crate::error::{Result, TrainError};
use serde::{Deserialize, Serialize};

/// Which matrix-product schedule the server runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Schedule {
    /// Replicated weight diagonals, hoisted rotations, degree-2 accumulation (default).
    Diagonal,
    /// The paper's Volley Revolver schedule, faithfully.
    Paper,
}

impl Schedule {
    /// Name used in the CLI and reports.
    pub fn name(self) -> &'static str {
        match self {
            Schedule::Diagonal => "diagonal",
            Schedule::Paper => "paper",
        }
    }

    /// Parses `diagonal` (alias `default`, `fast`) or `paper`.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "diagonal" | "default" | "fast" => Some(Schedule::Diagonal),
            "paper" | "volley-revolver" => Some(Schedule::Paper),
            _ => None,
        }
    }

    /// Multiplicative levels one iteration consumes.
    pub fn levels_per_iteration(self) -> usize {
        match self {
            // Z (1), sigma with the mask folded into its coefficients (2), gradient (1).
            Schedule::Diagonal => 4,
            // Z: product, column mask, row mask (3); sigma (2); G: class mask, product,
            // row mask (3); b (.) G (1). The Nesterov combination's level is taken from W,
            // which sits one level below V: it adds one level at the end only.
            Schedule::Paper => 9,
        }
    }

    /// Levels for `iterations` iterations, including the final weight combination.
    pub fn levels_needed(self, iterations: usize) -> usize {
        self.levels_per_iteration() * iterations + 1
    }
}

/// Shapes shared by client and server.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Geometry {
    /// Training rows n.
    pub n: usize,
    /// Classes c.
    pub c: usize,
    /// Columns with bias, d.
    pub d: usize,
    /// Padded row width.
    pub d_hat: usize,
    /// Slots per ciphertext.
    pub slots: usize,
    /// Rows per ciphertext r.
    pub rows_per_ct: usize,
    /// Row ciphertexts m = ceil(n / r).
    pub row_cts: usize,
    /// Weight diagonals n_o = next_pow2(c) (diagonal schedule); 1 for the paper schedule.
    pub diagonals: usize,
}

impl Geometry {
    /// Shapes for a schedule; errors if the data does not fit the slots.
    pub fn new(schedule: Schedule, n: usize, c: usize, d: usize, slots: usize) -> Result<Self> {
        if n == 0 {
            return Err(TrainError::Data("no training rows".into()));
        }
        if c == 0 || d == 0 {
            return Err(TrainError::Data(format!(
                "{c} classes and {d} columns: at least one of each is needed"
            )));
        }
        if !slots.is_power_of_two() {
            return Err(TrainError::Data(format!(
                "{slots} slots is not a power of two"
            )));
        }
        // Checked: the shapes may come from a manifest (c or d of 10^12 must be refused,
        // not overflow).
        let too_big = || {
            TrainError::Capacity(format!(
                "{c} classes and {d} columns do not fit in the {slots} slots of a ciphertext"
            ))
        };
        if c > slots || d > slots {
            return Err(too_big());
        }
        let (d_hat, diagonals) = match schedule {
            Schedule::Diagonal => {
                let n_o = c.next_power_of_two();
                let width = (d + n_o - 1)
                    .checked_next_power_of_two()
                    .ok_or_else(too_big)?;
                (width.max(n_o), n_o)
            }
            Schedule::Paper => (d.next_power_of_two(), 1),
        };
        if d_hat > slots {
            return Err(TrainError::Capacity(format!(
                "{d} columns need rows of {d_hat} slots, more than the {slots} slots of a ciphertext"
            )));
        }
        let rows_per_ct = slots / d_hat;
        if schedule == Schedule::Paper && c > rows_per_ct {
            return Err(TrainError::Capacity(format!(
                "the paper's packing needs the {c} class rows in one ciphertext of {rows_per_ct} rows"
            )));
        }
        Ok(Self {
            n,
            c,
            d,
            d_hat,
            slots,
            rows_per_ct,
            row_cts: n.div_ceil(rows_per_ct),
            diagonals,
        })
    }

    /// Packs per-row vectors of `d_hat` values: ciphertext `m` holds rows m*r ..
    pub fn pack_rows(&self, m: usize, row: impl Fn(usize) -> Vec<f64>) -> Vec<f64> {
        let mut v = vec![0f64; self.slots];
        for local in 0..self.rows_per_ct {
            let i = m * self.rows_per_ct + local;
            if i >= self.n {
                break;
            }
            let r = row(i);
            let len = r.len().min(self.d_hat);
            v[local * self.d_hat..local * self.d_hat + len].copy_from_slice(&r[..len]);
        }
        v
    }

    /// X rows of ciphertext m.
    pub fn pack_x(&self, design: &Design, m: usize) -> Vec<f64> {
        self.pack_rows(m, |i| design.row(i)[..self.d].to_vec())
    }

    /// X diag(b) rows of ciphertext m (the preconditioner folded into X).
    pub fn pack_xb(&self, design: &Design, m: usize) -> Vec<f64> {
        self.pack_rows(m, |i| {
            design.row(i)[..self.d]
                .iter()
                .zip(&design.b)
                .map(|(x, b)| x * b)
                .collect()
        })
    }

    /// One-hot labels of ciphertext m at the first c columns of each row.
    pub fn pack_y(&self, design: &Design, m: usize) -> Vec<f64> {
        self.pack_rows(m, |i| (0..self.c).map(|k| design.y(i, k)).collect())
    }

    /// The mask selecting valid (row < n, column < c) label slots of ciphertext m, times `value`.
    pub fn label_mask(&self, m: usize, value: f64) -> Vec<f64> {
        self.pack_rows(m, |_| vec![value; self.c])
    }

    /// Diagonal t of the weights, replicated over every row of a ciphertext.
    pub fn pack_diagonal(&self, w: &Weights, t: usize) -> Vec<f64> {
        let (dh, n_o) = (self.d_hat, self.diagonals);
        let row: Vec<f64> = (0..dh)
            .map(|j| {
                let k = j % n_o;
                let col = (j + dh - t) % dh;
                if k < w.c && col < w.d_hat {
                    w.row(k)[col]
                } else {
                    0.0
                }
            })
            .collect();
        let mut v = Vec::with_capacity(self.slots);
        for _ in 0..self.rows_per_ct {
            v.extend_from_slice(&row);
        }
        v
    }

    /// Reassembles weights from the decoded diagonals (first row of each).
    pub fn unpack_diagonals(&self, diagonals: &[Vec<f64>]) -> Weights {
        let (dh, n_o) = (self.d_hat, self.diagonals);
        let mut w = vec![0f64; self.c * dh];
        for k in 0..self.c {
            for col in 0..dh {
                let t = (k + n_o - col % n_o) % n_o;
                let j = (col + t) % dh;
                w[k * dh + col] = diagonals
                    .get(t)
                    .and_then(|d| d.get(j))
                    .copied()
                    .unwrap_or(0.0);
            }
        }
        Weights {
            c: self.c,
            d_hat: dh,
            w,
        }
    }

    /// Weights as the paper packs them: row k at slots k*d_hat.
    pub fn pack_weight_rows(&self, w: &Weights) -> Vec<f64> {
        let mut v = vec![0f64; self.slots];
        for k in 0..w.c {
            let len = w.d_hat.min(self.d_hat);
            v[k * self.d_hat..k * self.d_hat + len].copy_from_slice(&w.row(k)[..len]);
        }
        v
    }

    /// Inverse of [`Self::pack_weight_rows`].
    pub fn unpack_weight_rows(&self, v: &[f64]) -> Weights {
        let mut w = vec![0f64; self.c * self.d_hat];
        for k in 0..self.c {
            w[k * self.d_hat..(k + 1) * self.d_hat]
                .copy_from_slice(&v[k * self.d_hat..(k + 1) * self.d_hat]);
        }
        Weights {
            c: self.c,
            d_hat: self.d_hat,
            w,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn diagonals_round_trip_and_compute_products() {
        let g = Geometry::new(Schedule::Diagonal, 5, 3, 10, 64).expect("fits");
        assert_eq!(
            (g.d_hat, g.diagonals, g.rows_per_ct, g.row_cts),
            (16, 4, 4, 2)
        );
        let w = Weights {
            c: 3,
            d_hat: 16,
            w: (0..48).map(|v| v as f64 * 0.5 - 3.0).collect(),
        };
        let mut w_real = w.clone();
        for k in 0..3 {
            for j in 10..16 {
                w_real.w[k * 16 + j] = 0.0;
            }
        }
        let diags: Vec<Vec<f64>> = (0..g.diagonals)
            .map(|t| g.pack_diagonal(&w_real, t))
            .collect();
        assert_eq!(g.unpack_diagonals(&diags), w_real);
        // Slot-level simulation of Z = X W^T with rotations (in plain).
        let x: Vec<f64> = (0..64)
            .map(|s| {
                if s % 16 < 10 {
                    (s as f64 * 0.37).sin()
                } else {
                    0.0
                }
            })
            .collect();
        let rot = |v: &[f64], k: isize| -> Vec<f64> {
            (0..64)
                .map(|i| v[((i as isize + k).rem_euclid(64)) as usize])
                .collect()
        };
        let mut s = vec![0f64; 64];
        for (t, d) in diags.iter().enumerate() {
            let xr = rot(&x, -(t as isize));
            for i in 0..64 {
                s[i] += d[i] * xr[i];
            }
        }
        let mut folded = s.clone();
        let mut step = 4isize;
        while step < 16 {
            let r = rot(&folded, step);
            for i in 0..64 {
                folded[i] += r[i];
            }
            step *= 2;
        }
        for row in 0..4 {
            for k in 0..3 {
                let z: f64 = (0..16).map(|j| x[row * 16 + j] * w_real.row(k)[j]).sum();
                assert!(
                    (folded[row * 16 + k] - z).abs() < 1e-12,
                    "row {row} class {k}"
                );
            }
        }
    }

    #[test]
    fn capacity_errors() {
        assert!(Geometry::new(Schedule::Diagonal, 4, 10, 401, 256).is_err());
        assert!(Geometry::new(Schedule::Paper, 4, 10, 401, 2048).is_err());
        assert_eq!(
            Geometry::new(Schedule::Diagonal, 128, 10, 401, 16384)
                .map(|g| (g.d_hat, g.rows_per_ct, g.row_cts))
                .ok(),
            Some((512, 32, 4))
        );
    }
}
