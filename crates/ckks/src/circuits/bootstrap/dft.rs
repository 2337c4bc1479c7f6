//! The homomorphic DFTs of bootstrapping (CoeffsToSlots, SlotsToCoeffs) as products of sparse
//! matrices, factored into a level budget (Cheon-Han-Kim-Kim-Song 2018; Chen-Chillotti-Song
//! 2019; Lattigo's `circuits/ckks/dft`).
//!
//! The encoder's special FFT is `log2(n)` butterfly stages and a bit reversal. Each stage is
//! a matrix with three diagonals (offsets `0` and `+-len/2`), taken from the encoder itself
//! (`Encoder::fft_stage_diagonals`), so there is one FFT and one set of roots. Consecutive
//! stages are multiplied into one factor per level: a factor of `k` stages has at most
//! `2^(k+1) - 1` diagonals, evaluated by baby-step giant-step. The bit reversals are left
//! out: CoeffsToSlots produces the coefficients in bit-reversed order, the slot-wise
//! modular reduction does not care, and SlotsToCoeffs starts with the same bit reversal.

use crate::ckks::encoder::Encoder;
use crate::error::{Error, Result};
use num_complex::Complex64;
use std::collections::BTreeMap;

/// A matrix of `n x n` by its nonzero diagonals: offset `k` in `[0, n)` -> `d_k` with
/// `(M v)[i] = sum_k d_k[i] v[(i + k) mod n]`.
pub(crate) type Diagonals = BTreeMap<usize, Vec<Complex64>>;

fn from_pairs(n: usize, pairs: Vec<(i64, Vec<Complex64>)>) -> Diagonals {
    let mut out = Diagonals::new();
    for (k, d) in pairs {
        let k = k.rem_euclid(n as i64) as usize;
        match out.get_mut(&k) {
            Some(acc) => acc.iter_mut().zip(&d).for_each(|(a, b)| *a += b),
            None => {
                out.insert(k, d);
            }
        }
    }
    out.retain(|_, d| d.iter().any(|v| v.norm_sqr() > 0.0));
    out
}

/// `after * before` (apply `before` first): `(A B)_k[i] = sum_{a + b = k} A_a[i] B_b[i + a]`.
pub(crate) fn compose(after: &Diagonals, before: &Diagonals, n: usize) -> Diagonals {
    let mut pairs = Vec::new();
    for (&a, da) in after {
        for (&b, db) in before {
            let d: Vec<Complex64> = (0..n).map(|i| da[i] * db[(i + a) % n]).collect();
            pairs.push(((a + b) as i64, d));
        }
    }
    from_pairs(n, pairs)
}

/// Multiplies every entry by `c`.
pub(crate) fn scale(d: &mut Diagonals, c: Complex64) {
    d.values_mut().flatten().for_each(|v| *v *= c);
}

/// The `log2(n)` stages grouped into `levels` factors, in the order they are applied: the
/// inverse FFT (`inverse = true`, CoeffsToSlots: block lengths `n, n/2, .., 2`, without the
/// bit reversal and the `1/n`) or the forward one (SlotsToCoeffs: `2, 4, .., n`, without the
/// bit reversal). Groups are as even as possible; the later ones (evaluated lower in the
/// chain, where rotations are cheaper) take the extra stages.
pub(crate) fn factors(
    encoder: &Encoder,
    n: usize,
    levels: usize,
    inverse: bool,
) -> Result<Vec<Diagonals>> {
    let stages = n.trailing_zeros() as usize;
    if !n.is_power_of_two() || levels == 0 || levels > stages {
        return Err(Error::InvalidArgument {
            op: "bootstrap",
            msg: format!(
                "a DFT over {n} slots has {stages} stages and cannot be split into {levels} levels"
            ),
        });
    }
    let lens: Vec<usize> = if inverse {
        (1..=stages).rev().map(|s| 1usize << s).collect()
    } else {
        (1..=stages).map(|s| 1usize << s).collect()
    };
    let (base, extra) = (stages / levels, stages % levels);
    let mut out = Vec::with_capacity(levels);
    let mut next = lens.into_iter();
    for g in 0..levels {
        let size = base + usize::from(g >= levels - extra);
        let mut acc: Option<Diagonals> = None;
        for len in next.by_ref().take(size) {
            let stage = from_pairs(n, encoder.fft_stage_diagonals(n, len, inverse));
            acc = Some(match acc {
                None => stage,
                Some(prev) => compose(&stage, &prev, n),
            });
        }
        out.push(acc.unwrap_or_default());
    }
    Ok(out)
}

/// Re-indexes an `n`-slot matrix as a `2n`-slot one for a ciphertext whose `2n`-slot view
/// holds `[a | b]`: row `i` of the result is row `i mod n` of `m` times `row(i)`, and input
/// slot `j` is weighted by `col(j)`. With `split_columns = false` the input is assumed
/// periodic (`a = b`, an `n`-slot ciphertext seen with `2n` slots) and only the original
/// offsets are used; with `true` both halves are read (`out = row * M (col_a a + col_b b)`).
pub(crate) fn lift_to_double(
    m: &Diagonals,
    n: usize,
    row: impl Fn(usize) -> Complex64,
    col: impl Fn(usize) -> Complex64,
    split_columns: bool,
) -> Diagonals {
    let n2 = 2 * n;
    let mut pairs = Vec::new();
    for (&k, d) in m {
        let offsets: &[usize] = if split_columns { &[k, k + n] } else { &[k] };
        for &kk in offsets {
            let v: Vec<Complex64> = (0..n2)
                .map(|i| row(i) * col((i + kk) % n2) * d[i % n])
                .collect();
            pairs.push((kk as i64, v));
        }
    }
    from_pairs(n2, pairs)
}

/// `M v` in the clear.
#[cfg(test)]
pub(crate) fn apply(m: &Diagonals, v: &[Complex64]) -> Vec<Complex64> {
    let n = v.len();
    (0..n)
        .map(|i| m.iter().map(|(&k, d)| d[i] * v[(i + k) % n]).sum())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ckks::encoder::bit_reverse;
    use crate::params::{Params, ParamsLiteral, SecretDistribution};

    fn encoder(log_n: u32) -> Encoder {
        let params = Params::new_insecure(ParamsLiteral {
            log_n,
            log_q: vec![50, 40],
            log_p: vec![50],
            dnum: 2,
            secret: SecretDistribution::Ternary,
            log_scale: 30,
            sigma: 3.2,
        })
        .expect("params");
        Encoder::new(params)
    }

    fn values(n: usize) -> Vec<Complex64> {
        (0..n)
            .map(|i| Complex64::new((i as f64 * 0.37).sin(), (i as f64 * 1.3).cos()))
            .collect()
    }

    fn close(a: &[Complex64], b: &[Complex64]) -> f64 {
        a.iter()
            .zip(b)
            .map(|(x, y)| (x - y).norm())
            .fold(0.0, f64::max)
    }

    #[test]
    fn factors_are_the_encoders_fft() {
        let enc = encoder(8);
        for n in [4usize, 16, 128] {
            let z = values(n);
            for levels in 1..=n.trailing_zeros() as usize {
                // CoeffsToSlots: n * bitrev(FFT^-1(z)).
                let mut want = z.clone();
                enc.fft_special_inv(&mut want);
                bit_reverse(&mut want);
                want.iter_mut().for_each(|v| *v *= n as f64);
                let mut got = z.clone();
                let fs = factors(&enc, n, levels, true).expect("factors");
                assert_eq!(fs.len(), levels);
                for f in &fs {
                    got = apply(f, &got);
                }
                assert!(close(&got, &want) < 1e-9, "inverse n={n} levels={levels}");
                // SlotsToCoeffs: FFT(bitrev(w)).
                let mut want = z.clone();
                bit_reverse(&mut want);
                enc.fft_special(&mut want);
                let mut got = z.clone();
                for f in &factors(&enc, n, levels, false).expect("factors") {
                    got = apply(f, &got);
                }
                assert!(close(&got, &want) < 1e-9, "forward n={n} levels={levels}");
            }
        }
        assert!(factors(&enc, 8, 4, true).is_err());
    }

    #[test]
    fn factor_diagonal_counts() {
        let enc = encoder(8);
        let fs = factors(&enc, 128, 2, true).expect("factors");
        // 3 + 4 stages: at most 2^4 - 1 and 2^5 - 1 diagonals.
        assert!(
            fs[0].len() <= 15 && fs[1].len() <= 31,
            "{} {}",
            fs[0].len(),
            fs[1].len()
        );
    }

    #[test]
    fn lifting_reads_both_halves() {
        let enc = encoder(8);
        let n = 16;
        let m = &factors(&enc, n, 1, false).expect("factors")[0];
        let (a, b) = (values(n), values(2 * n)[n..].to_vec());
        let i = Complex64::new(0.0, 1.0);
        // split: out = M (a + i b), replicated.
        let lifted = lift_to_double(
            m,
            n,
            |_| 1.0.into(),
            |j| if j < n { 1.0.into() } else { i },
            true,
        );
        let ab: Vec<Complex64> = a.iter().chain(&b).copied().collect();
        let got = apply(&lifted, &ab);
        let combined: Vec<Complex64> = a.iter().zip(&b).map(|(x, y)| x + i * y).collect();
        let want = apply(m, &combined);
        assert!(close(&got[..n], &want) < 1e-9 && close(&got[n..], &want) < 1e-9);
        // periodic input: out[i] = row(i) (M a)[i mod n].
        let lifted = lift_to_double(
            m,
            n,
            |r| if r < n { 0.5.into() } else { i },
            |_| 1.0.into(),
            false,
        );
        let aa: Vec<Complex64> = a.iter().chain(&a).copied().collect();
        let got = apply(&lifted, &aa);
        let ma = apply(m, &a);
        let want: Vec<Complex64> = (0..2 * n)
            .map(|r| ma[r % n] * if r < n { Complex64::from(0.5) } else { i })
            .collect();
        assert!(close(&got, &want) < 1e-9);
    }
}
