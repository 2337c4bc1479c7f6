//! Fast basis conversion (Bajard et al. 2016) with the exact correction of
//! Halevi-Polyakov-Shoup 2018: a polynomial known modulo the primes of basis A is
//! re-expressed modulo the primes of basis B, as its centered representative in
//! (-A/2, A/2]. Used by hybrid key switching (ModUp, ModDown) and decoding.

use super::modulus::Modulus;
use super::simd;
use rayon::prelude::*;

/// Precomputed constants to convert from one set of primes to another.
#[derive(Debug)]
pub struct BasisConverter {
    from: Vec<Modulus>,
    to: Vec<Modulus>,
    /// [(A/a_i)^{-1}]_{a_i}.
    a_hat_inv: Vec<u64>,
    /// [A/a_i]_{b_j}, row j.
    a_hat_mod_b: Vec<Vec<u64>>,
    /// [A]_{b_j}.
    a_mod_b: Vec<u64>,
    /// 1 / a_i in floating point, for the exact correction.
    a_inv_f64: Vec<f64>,
    /// Whether some source prime exceeds 52 bits (the vector kernels need a second digit).
    from_wide: bool,
}

impl BasisConverter {
    /// Constants for converting from primes `from` to primes `to`.
    pub fn new(from: &[Modulus], to: &[Modulus]) -> Self {
        let a_hat_inv = from
            .iter()
            .enumerate()
            .map(|(i, ai)| {
                // A/a_i mod a_i = product of the other primes.
                let prod = from
                    .iter()
                    .enumerate()
                    .filter(|&(k, _)| k != i)
                    .fold(1u64, |acc, (_, ak)| ai.mul(acc, ai.reduce(ak.value())));
                ai.inv(prod).unwrap_or(0)
            })
            .collect();
        let a_hat_mod_b = to
            .iter()
            .map(|bj| {
                (0..from.len())
                    .map(|i| {
                        from.iter()
                            .enumerate()
                            .filter(|&(k, _)| k != i)
                            .fold(1u64, |acc, (_, ak)| bj.mul(acc, bj.reduce(ak.value())))
                    })
                    .collect()
            })
            .collect();
        let a_mod_b = to
            .iter()
            .map(|bj| {
                from.iter()
                    .fold(1u64, |acc, ak| bj.mul(acc, bj.reduce(ak.value())))
            })
            .collect();
        Self {
            from: from.to_vec(),
            to: to.to_vec(),
            a_hat_inv,
            a_hat_mod_b,
            a_mod_b,
            a_inv_f64: from.iter().map(|a| 1.0 / a.value() as f64).collect(),
            from_wide: from.iter().any(|a| a.value() >= 1 << 52),
        }
    }

    /// Source primes.
    pub fn from(&self) -> &[Modulus] {
        &self.from
    }

    /// Target primes.
    pub fn to(&self) -> &[Modulus] {
        &self.to
    }

    /// Converts `input` (one coefficient-form residue vector per source prime) into
    /// `output` (one per target prime): the exact centered representative is extended.
    pub fn convert(&self, input: &[&[u64]], output: &mut [&mut [u64]]) {
        self.convert_impl(input, output, true);
    }

    /// The fast (approximate) conversion of Bajard et al.: the result is x + u A for some
    /// 0 <= u < k. Hybrid key switching's ModUp tolerates it: u A is a multiple of the
    /// digit's modulus, which the gadget cancels (Han-Ki 2020, as Lattigo and OpenFHE do).
    pub fn convert_approx(&self, input: &[&[u64]], output: &mut [&mut [u64]]) {
        self.convert_impl(input, output, false);
    }

    fn convert_impl(&self, input: &[&[u64]], output: &mut [&mut [u64]], exact: bool) {
        let prepared = self.prepare(input, exact);
        output
            .par_iter_mut()
            .enumerate()
            .for_each(|(j, out)| prepared.write(j, out));
    }

    /// The per-input work of a conversion, shared by every output prime; then
    /// [`PreparedConversion::write`] produces one output residue vector at a time (so a
    /// caller can transform and consume it while it is in cache).
    pub fn prepare(&self, input: &[&[u64]], exact: bool) -> PreparedConversion<'_> {
        // y_i = [x_i * (A/a_i)^{-1}]_{a_i}.
        let y = input
            .par_iter()
            .enumerate()
            .map(|(i, x)| {
                let mut y = x.to_vec();
                simd::mul_scalar(&mut y, self.a_hat_inv[i], &self.from[i]);
                y
            })
            .collect();
        self.prepare_scaled(y, exact)
    }

    /// The factor [(A/a_i)^{-1}]_{a_i} every input residue is multiplied by first.
    pub fn input_factor(&self, i: usize) -> u64 {
        self.a_hat_inv[i]
    }

    /// [`Self::prepare`] of owned inputs already multiplied by their
    /// [`Self::input_factor`] (and reduced), e.g. by a scaled inverse NTT: saves a pass.
    pub fn prepare_scaled(&self, y: Vec<Vec<u64>>, exact: bool) -> PreparedConversion<'_> {
        let n = y.first().map_or(0, |t| t.len());
        // v = round(sum_i y_i / a_i): how many multiples of A the plain sum exceeds x by.
        let mut v = vec![0u64; if exact { n } else { 0 }];
        v.par_chunks_mut(PAR_CHUNK)
            .enumerate()
            .for_each(|(p, chunk)| {
                simd::auto_vectorized(
                    #[inline(always)]
                    || {
                        for (b, out) in chunk.chunks_mut(BLOCK).enumerate() {
                            let start = p * PAR_CHUNK + b * BLOCK;
                            let mut s = [0f64; BLOCK];
                            for (yi, &inv) in y.iter().zip(&self.a_inv_f64) {
                                for (acc, &x) in s.iter_mut().zip(&yi[start..start + out.len()]) {
                                    // Residues are below 2^62: the signed conversion is one instruction,
                                    // the unsigned one a branchy sequence on baseline x86-64.
                                    *acc += x as i64 as f64 * inv;
                                }
                            }
                            for (o, acc) in out.iter_mut().zip(s) {
                                *o = acc.round() as u64;
                            }
                        }
                    },
                )
            });
        PreparedConversion {
            conv: self,
            y,
            v,
            exact,
        }
    }
}

/// A conversion with its input-side work done (see [`BasisConverter::prepare`]).
pub struct PreparedConversion<'a> {
    conv: &'a BasisConverter,
    /// y_i = [x_i * (A/a_i)^{-1}]_{a_i}, one vector per source prime.
    y: Vec<Vec<u64>>,
    /// How many multiples of A to subtract, per coefficient (exact conversions).
    v: Vec<u64>,
    exact: bool,
}

impl PreparedConversion<'_> {
    /// Writes the residues modulo target prime `j` into `out`.
    pub fn write(&self, j: usize, out: &mut [u64]) {
        let conv = self.conv;
        let m = &conv.to[j];
        let mut ys: Vec<&[u64]> = self.y.iter().map(|v| &v[..out.len()]).collect();
        let mut ws = conv.a_hat_mod_b[j].clone();
        if self.exact {
            // The correction -v A is one more term of the same dot product.
            ys.push(&self.v[..out.len()]);
            ws.push(m.neg(conv.a_mod_b[j]));
        }
        simd::dot_scalars(out, &ys, &ws, conv.from_wide, m);
    }
}

/// Coefficients per block of the conversion loops (accumulators stay in L1).
const BLOCK: usize = 128;
/// Coefficients per parallel task.
const PAR_CHUNK: usize = 4096;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ring::generate_primes;

    #[test]
    fn converts_centered_values_exactly() {
        let a: Vec<Modulus> = generate_primes(50, 64, 3, &[])
            .unwrap_or_default()
            .into_iter()
            .map(Modulus::new)
            .collect();
        let b: Vec<Modulus> = generate_primes(40, 64, 2, &[])
            .unwrap_or_default()
            .into_iter()
            .map(Modulus::new)
            .collect();
        let conv = BasisConverter::new(&a, &b);
        // Values near zero, positive and negative, up to 2^100 in magnitude: well inside (-A/2, A/2].
        let values: Vec<i128> = vec![
            0,
            1,
            -1,
            12345,
            -987_654_321,
            1 << 100,
            -(1 << 100) + 17,
            (1 << 90) + 5,
        ];
        let input: Vec<Vec<u64>> = a
            .iter()
            .map(|m| values.iter().map(|&x| m.reduce_i128(x)).collect())
            .collect();
        let mut output = vec![vec![0u64; values.len()]; b.len()];
        {
            let ins: Vec<&[u64]> = input.iter().map(|v| v.as_slice()).collect();
            let mut outs: Vec<&mut [u64]> = output.iter_mut().map(|v| v.as_mut_slice()).collect();
            conv.convert(&ins, &mut outs);
        }
        for (j, m) in b.iter().enumerate() {
            for (c, &x) in values.iter().enumerate() {
                assert_eq!(output[j][c], m.reduce_i128(x), "value {x} to prime {j}");
            }
        }
    }
}
