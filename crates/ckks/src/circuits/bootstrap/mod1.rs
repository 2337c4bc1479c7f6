//! EvalMod: the homomorphic reduction modulo q_0, slot-wise on real values (Cheon-Han-Kim-
//! Kim-Song 2018; Han-Ki 2020; Lattigo's `circuits/ckks/mod1`).
//!
//! After ModRaise a coefficient holds `m + q_0 I` with a small integer `I`; with
//! `x = (m + q_0 I) / q_0 = I + m / q_0` the message is `q_0 (x mod 1)`, approximated by
//! `q_0 sin(2 pi x) / (2 pi)` since `|m / q_0| <= 2^-log_message_ratio` is small. The sine is
//! computed as the **scaled cosine** of Han-Ki: a Chebyshev interpolant of
//! `cos(2 pi (x - phi) / 2^r)` on `[-K, K]` (`phi = 1/4` in the literature; here the phase
//! with the least noise, see [`EvalMod::phase`]), followed by `r` double-angle steps
//! `cos(2t) = 2 cos(t)^2 - 1`, which multiply the frequency back by `2^r`. Dividing by `2^r`
//! lets a low-degree polynomial cover `2K` periods; the double angles cost one level each.
//!
//! Optionally an **arcsine correction** (the degree-3 Taylor polynomial of
//! `arcsin(2 pi y) / (2 pi)`) removes the sine's cubic error `(2 pi)^2 x^3 / 6` at the cost of
//! two more levels.
//!
//! The interval's map onto `[-1, 1]` (the polynomial's variable is `x / K`) and the final
//! `q_0 / (2 pi)` are folded into the DFT matrices and the scale metadata by the bootstrapper,
//! so EvalMod itself spends no level on constants.

use crate::circuits::polynomial::{Polynomial, PolynomialEvaluator};
use crate::ckks::evaluator::Evaluator;
use crate::error::{Error, Result};
use crate::rlwe::ciphertext::Ciphertext;
use num_complex::Complex64;
use std::f64::consts::PI;

/// EvalMod's parameters.
#[derive(Clone, Debug, PartialEq)]
pub struct EvalModConfig {
    /// Half-width `K` of the interval `[-K, K]` the polynomial covers: a bound on
    /// `|I| + |m / q_0|`. With the Hamming-weight-32 secret of sparse-secret encapsulation,
    /// `I` is a sum of 33 independent terms uniform in `[-1/2, 1/2]` (Irwin-Hall), and
    /// `P(|I| > 16) = 2^-154.7` per coefficient, `2^-138.7` over the `2^16` coefficients of an
    /// `N = 2^16` ring: `K = 16.5` keeps the failure probability below `2^-128`.
    pub k: f64,
    /// Number `r` of double-angle steps.
    pub double_angles: usize,
    /// Degree of the Chebyshev interpolant of the scaled cosine.
    pub degree: usize,
    /// `log2(q_0 / Delta)`: the input is multiplied by an integer so that its scale lands
    /// at most `q_0 / 2^log_message_ratio` (Lattigo's `LogMessageRatio`). Larger values make
    /// the sine more linear on the message but magnify EvalMod's own error.
    pub log_message_ratio: u32,
    /// Applies the degree-3 arcsine correction (two more levels).
    pub arcsine: bool,
}

impl Default for EvalModConfig {
    /// `K = 16.5`, 4 double angles, degree 30 (depth 5 + 4 = 9), message ratio `2^10`, no
    /// arcsine. In `f64` the interpolant is within `2^-50` of the scaled cosine.
    ///
    /// **The message ratio** trades the sine's nonlinearity against EvalMod's absolute
    /// noise. The noise (CoeffsToSlots' last rounding under the dense secret, times `K`, and
    /// the interpolant's own, times the double angles' slope) is fixed in units of `q_0`, so
    /// each bit of ratio costs a bit of precision; the sine's cubic term costs
    /// `(2 pi c)^2 / 6` relative on a coefficient `c q_0`. Inputs with `|z| <= 1` spread
    /// over the slots have coefficients near `2^-8` of the scale, where the cubic term is
    /// negligible; a constant input puts all of it in one coefficient, the worst case.
    /// Measured at `boot16`, full slots (bits, mean / min):
    ///
    /// | ratio | uniform complex in `[-1, 1]` | constant 1 | constant 1 + i |
    /// | --- | --- | --- | --- |
    /// | `2^12` | 22.2 / 20.2 | 21.2 | |
    /// | `2^10` (default) | 24.1 / 22.3 | 17.3 | 16.8 |
    /// | `2^9` | 25.0 / 23.1 | 15.3 | 14.8 |
    ///
    /// `2^10` is the smallest ratio that keeps every input of the unit square above 16 bits.
    /// (Lattigo's default is `2^8`, which gives up more of the worst case.) An application
    /// whose values are larger or constant-like chooses a larger ratio (encrypted training's
    /// refresh uses `2^12`: its packed weights reach 2.7), or the arcsine correction, which
    /// removes the cubic term for two more levels.
    fn default() -> Self {
        Self {
            k: 16.5,
            double_angles: 4,
            degree: 30,
            log_message_ratio: 10,
            arcsine: false,
        }
    }
}

/// The EvalMod circuit: the interpolant, the double angles and the optional arcsine.
#[derive(Clone, Debug)]
pub struct EvalMod {
    config: EvalModConfig,
    pub(super) cosine: Polynomial,
    arcsine: Option<Polynomial>,
}

impl EvalMod {
    /// Builds the polynomials; refuses empty intervals, degree 0 and absurd ratios.
    pub fn new(config: EvalModConfig) -> Result<Self> {
        let bad = |msg: String| {
            Err(Error::InvalidArgument {
                op: "eval_mod",
                msg,
            })
        };
        if !(config.k.is_finite() && config.k >= 1.0) {
            return bad(format!(
                "interval half-width K = {} must be at least 1",
                config.k
            ));
        }
        if config.degree == 0 || config.degree > 255 {
            return bad(format!("degree {} must be in 1..=255", config.degree));
        }
        if config.double_angles > 8 {
            return bad(format!(
                "{} double angles (at most 8)",
                config.double_angles
            ));
        }
        if !(1..=40).contains(&config.log_message_ratio) {
            return bad(format!(
                "log message ratio {} must be in 1..=40",
                config.log_message_ratio
            ));
        }
        let (k, r) = (config.k, config.double_angles as i32);
        let phase = Self::phase(config.double_angles);
        let cosine = Polynomial::chebyshev_interpolate(
            |y| (2.0 * PI * (k * y - phase) / 2f64.powi(r)).cos(),
            config.degree,
            -1.0,
            1.0,
        )?;
        // arcsin(t) = t + t^3 / 6 + O(t^5), on t = sin(2 pi x).
        let arcsine = config
            .arcsine
            .then(|| Polynomial::monomial(vec![0.0, 1.0, 0.0, 1.0 / 6.0]))
            .transpose()?;
        Ok(Self {
            config,
            cosine,
            arcsine,
        })
    }

    /// The phase `phi` of the interpolated cosine `cos(2 pi (x - phi) / 2^r)`. Any
    /// `phi = 1/4 - j` with an integer `j` gives `sin(2 pi x)` after the `r` double angles,
    /// but not with the same error. The double angles compose to the Chebyshev polynomial
    /// `T_{2^r}`, whose slope at `cos t` is `2^r sin(2^r t) / sin t`: the interpolant's
    /// homomorphic noise (rounding of its powers and constants, which does not vanish with
    /// `sin t`) is multiplied by `2^r / |sin t|` near the integers `x = I`, where the result
    /// is read. The textbook `phi = 1/4` puts a zero of `sin t` a quarter from `I = 0`, the
    /// most likely value of ModRaise's overflow: 163x at `r = 4`. Shifting by
    /// `j = 2^(r-2)` puts `x = 0` midway between zeros (`sin t ~ 1`, 16x) and pushes the
    /// poor spots out to `|I| = 2^(r-2)`, which are rare (measured at `boot16`, full slots:
    /// EvalMod's largest error 2^-23.5 -> 2^-25.1 in message units, final precision 19.0 ->
    /// 21.2 bits mean). The double angles' own roundings have poles too (the first one's
    /// slope is `2^(r-1) sin(2^r t) / sin(2t)`); weighting all of them over the overflow's
    /// distribution, this `j` is still the best of every `j` and sign.
    pub fn phase(double_angles: usize) -> f64 {
        let shift = if double_angles >= 2 {
            2f64.powi(double_angles as i32 - 2)
        } else {
            0.0
        };
        0.25 - shift
    }

    /// The parameters.
    pub fn config(&self) -> &EvalModConfig {
        &self.config
    }

    /// Levels consumed: the interpolant's depth, the double angles and the arcsine's 2.
    pub fn depth(&self) -> usize {
        self.cosine.required_levels()
            + self.config.double_angles
            + self.arcsine.as_ref().map_or(0, Polynomial::required_levels)
    }

    /// `2 pi (x mod 1)` up to the approximation, on `ct` holding `y = x / K` in `[-1, 1]`
    /// (real values, scale close to the prime of its level): `sin(2 pi x)`, or
    /// `arcsin(sin(2 pi x))` to third order with the correction. The result lands on
    /// `target_scale` (up to the `f64` rounding of the scale metadata).
    pub(crate) fn evaluate(
        &self,
        eval: &Evaluator,
        ct: &Ciphertext,
        target_scale: f64,
    ) -> Result<Ciphertext> {
        let params = eval.params();
        let ring = params.ring();
        let depth = self.depth();
        if ct.level() < depth {
            return Err(Error::InvalidLevel {
                op: "eval_mod",
                level: ct.level(),
                max: depth,
            });
        }
        let poly_eval = PolynomialEvaluator::new(eval);
        let poly_level = ct.level() - self.cosine.required_levels();
        let r = self.config.double_angles;
        // Each double angle squares the scale and divides it by its level's prime:
        // S_{j+1} = S_j^2 / q_{poly_level - j}. Without the arcsine the interpolant's scale is
        // chosen so that the chain ends on the target; with it, the arcsine lands there and
        // the interpolant sits on its level's prime.
        let cosine_target = if self.arcsine.is_some() {
            ring.q(poly_level).value() as f64
        } else {
            let log_primes: f64 = (0..r)
                .map(|j| {
                    2f64.powi((r - 1 - j) as i32) * (ring.q(poly_level - j).value() as f64).log2()
                })
                .sum();
            2f64.powf((target_scale.log2() + log_primes) / 2f64.powi(r as i32))
        };
        if !(cosine_target.is_finite() && cosine_target > 2f64.powi(20)) {
            return Err(Error::InvalidArgument {
                op: "eval_mod",
                msg: format!("target scale 2^{:.1} is out of range", target_scale.log2()),
            });
        }
        let mut t = poly_eval.evaluate(ct, &self.cosine, cosine_target)?;
        for _ in 0..r {
            // cos(2a) = (2 cos a) cos a - 1, the relinearisation and the rescale fused (the 2
            // on an operand, so that the rescale's rounding is not doubled).
            let mut twice = t.clone();
            eval.mul_integer_assign(&mut twice, 2)?;
            let mut sq = eval.mul_relin_rescale(&twice, &t)?;
            eval.add_const_assign(&mut sq, Complex64::new(-1.0, 0.0))?;
            t = sq;
        }
        if let Some(arcsine) = &self.arcsine {
            t = poly_eval.evaluate(&t, arcsine, target_scale)?;
        }
        Ok(t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The interpolant followed by the double angles, in `f64`.
    fn composed(m: &EvalMod, y: f64) -> f64 {
        let mut c = m.cosine.evaluate_plain(y).re;
        for _ in 0..m.config.double_angles {
            c = 2.0 * c * c - 1.0;
        }
        c
    }

    #[test]
    fn phase_gives_the_sine_near_every_integer() {
        for (r, degree) in [(2, 60), (3, 40), (4, 30)] {
            let config = EvalModConfig {
                double_angles: r,
                degree,
                ..EvalModConfig::default()
            };
            let m = EvalMod::new(config.clone()).expect("eval mod");
            let phi = EvalMod::phase(r);
            assert_eq!((0.25 - phi).fract(), 0.0, "phi = 1/4 - j, j integer");
            let k = config.k;
            for i in -16..=16 {
                for e in [-2f64.powi(-8), -1e-5, 0.0, 1e-5, 2f64.powi(-8)] {
                    let x = i as f64 + e;
                    let got = composed(&m, x / k);
                    let want = (2.0 * PI * x).sin();
                    assert!(
                        (got - want).abs() < 1e-9,
                        "r = {r}, x = {x}: {got} against {want}"
                    );
                }
            }
            // x = 0, the most likely overflow, sits midway between the slope's poles:
            // |sin t| near 1 at t = 2 pi (0 - phi) / 2^r.
            let t = 2.0 * PI * (0.0 - phi) / 2f64.powi(r as i32);
            assert!(t.sin().abs() > 0.9, "r = {r}: sin t = {}", t.sin());
        }
    }
}
