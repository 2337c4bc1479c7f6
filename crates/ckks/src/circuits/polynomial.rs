//! Polynomial evaluation on ciphertexts, in the power (monomial) and Chebyshev bases.
//!
//! The algorithm is the baby-step giant-step evaluation of Bossuat-Mouchet-Troncoso-Pastoriza-
//! Hubaux (Eurocrypt 2021), as in Lattigo's `circuits/ckks/polynomial`, itself a variant of
//! Paterson-Stockmeyer:
//!
//! - **power basis.** With `m = ceil(log2(d + 1))` and a split `l` (chosen to minimise the
//!   number of non-scalar products), the baby steps `T_1 .. T_{2^l}` and the giant steps
//!   `T_{2^l}, T_{2^{l+1}}, .., T_{2^{m-1}}` are computed, each `T_k` at depth `ceil(log2 k)`:
//!   `T_{2n} = 2 T_n^2 - 1` and `T_{a+b} = 2 T_a T_b - T_{a-b}` (Chebyshev), `x^{2n} = (x^n)^2`
//!   and `x^{a+b} = x^a x^b` (monomial).
//! - **recursive split.** `p = q T_g + r` with the giant `g` the smallest power of two
//!   (at least `2^l`) with `2g > deg p`; `q` and `r` are split again until they fit the baby
//!   steps, where they become linear combinations `sum c_i T_i` computed with constant
//!   multiplications *without* rescaling. Along the leading chain the leaves must be shallower
//!   (degree at most `2^{l-1}`); the evaluator splits those further, which keeps the total
//!   depth at the optimal `ceil(log2(d + 1))`.
//! - **exact scale.** Every sub-polynomial is evaluated to a prescribed level and scale,
//!   computed top-down: if `p` must come out (before its final rescale by `q_level`) at scale
//!   `S`, then `q` is evaluated one level higher at scale `S * q_{level+1} / scale(T_g)`, so
//!   that after its rescale and the product by `T_g` it is at `S`; `r` is evaluated at the
//!   product's scale. Leaves reach their scale by choosing the scale of each constant
//!   (`c_i` is encoded at `S / scale(T_i)`). The output is therefore at `target_scale` up to
//!   floating-point rounding of the metadata, and its scale is set to exactly `target_scale`.
//!
//! For the Chebyshev basis on `[a, b] != [-1, 1]` the input is first mapped to `[-1, 1]` by
//! `y = (2x - a - b) / (b - a)`, which costs one more level.

use crate::ckks::evaluator::Evaluator;
use crate::error::{Error, Result};
use crate::rlwe::ciphertext::Ciphertext;
use num_complex::Complex64;
use std::collections::BTreeMap;
use std::f64::consts::PI;

/// The basis the coefficients of a [`Polynomial`] refer to.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Basis {
    /// Powers `1, x, x^2, ...`.
    Monomial,
    /// Chebyshev polynomials of the first kind `T_0, T_1, ...` of `y = (2x - a - b)/(b - a)`,
    /// i.e. on the interval `[a, b]`.
    Chebyshev {
        /// Lower end of the interval.
        a: f64,
        /// Upper end of the interval.
        b: f64,
    },
}

/// A polynomial with complex coefficients in the power or Chebyshev basis.
///
/// Trailing zero coefficients are dropped at construction, so the degree is the index of the
/// last nonzero coefficient.
#[derive(Clone, Debug, PartialEq)]
pub struct Polynomial {
    basis: Basis,
    coeffs: Vec<Complex64>,
}

fn real(v: &[f64]) -> Vec<Complex64> {
    v.iter().map(|&x| Complex64::new(x, 0.0)).collect()
}

fn is_zero(c: Complex64) -> bool {
    c.re == 0.0 && c.im == 0.0
}

/// Index of the last nonzero coefficient (0 when all are zero).
fn degree_of(coeffs: &[Complex64]) -> usize {
    coeffs.iter().rposition(|&c| !is_zero(c)).unwrap_or(0)
}

/// `ceil(log2 k)` for k >= 1.
fn ceil_log2(k: usize) -> usize {
    (usize::BITS - k.saturating_sub(1).leading_zeros()) as usize
}

impl Polynomial {
    fn new(basis: Basis, mut coeffs: Vec<Complex64>) -> Result<Self> {
        const OP: &str = "polynomial";
        if coeffs.is_empty() {
            return Err(Error::InvalidArgument {
                op: OP,
                msg: "no coefficients".into(),
            });
        }
        if let Some(c) = coeffs
            .iter()
            .find(|c| !(c.re.is_finite() && c.im.is_finite()))
        {
            return Err(Error::InvalidArgument {
                op: OP,
                msg: format!("coefficient {c} is not finite"),
            });
        }
        if let Basis::Chebyshev { a, b } = basis {
            if !(a.is_finite() && b.is_finite() && a < b) {
                return Err(Error::InvalidArgument {
                    op: OP,
                    msg: format!("interval [{a}, {b}] is empty or not finite"),
                });
            }
        }
        coeffs.truncate(degree_of(&coeffs) + 1);
        Ok(Self { basis, coeffs })
    }

    /// `sum_i coeffs[i] x^i`.
    pub fn monomial(coeffs: Vec<f64>) -> Result<Self> {
        Self::new(Basis::Monomial, real(&coeffs))
    }

    /// `sum_i coeffs[i] x^i` with complex coefficients.
    pub fn monomial_complex(coeffs: Vec<Complex64>) -> Result<Self> {
        Self::new(Basis::Monomial, coeffs)
    }

    /// `sum_i coeffs[i] T_i(y)`, `y = (2x - a - b)/(b - a)`.
    pub fn chebyshev(coeffs: Vec<f64>, a: f64, b: f64) -> Result<Self> {
        Self::new(Basis::Chebyshev { a, b }, real(&coeffs))
    }

    /// [`Self::chebyshev`] with complex coefficients.
    pub fn chebyshev_complex(coeffs: Vec<Complex64>, a: f64, b: f64) -> Result<Self> {
        Self::new(Basis::Chebyshev { a, b }, coeffs)
    }

    /// The Chebyshev interpolant of `f` on `[a, b]` of the given degree: the polynomial that
    /// agrees with `f` at the `degree + 1` Chebyshev nodes `cos(pi (k + 1/2) / (degree + 1))`
    /// (mapped to `[a, b]`), whose coefficients come from the discrete cosine transform
    /// `c_j = (2 / n) sum_k f(x_k) T_j(x_k)` (`c_0` halved).
    pub fn chebyshev_interpolate(
        f: impl Fn(f64) -> f64,
        degree: usize,
        a: f64,
        b: f64,
    ) -> Result<Self> {
        let n = degree + 1;
        let nodes: Vec<f64> = (0..n)
            .map(|k| (PI * (k as f64 + 0.5) / n as f64).cos())
            .collect();
        let values: Vec<f64> = nodes
            .iter()
            .map(|&y| f(0.5 * (b - a) * y + 0.5 * (a + b)))
            .collect();
        let coeffs = (0..n)
            .map(|j| {
                let s: f64 = (0..n)
                    .map(|k| values[k] * (PI * j as f64 * (k as f64 + 0.5) / n as f64).cos())
                    .sum();
                let c = 2.0 * s / n as f64;
                if j == 0 { c / 2.0 } else { c }
            })
            .collect();
        Self::chebyshev(coeffs, a, b)
    }

    /// The basis of the coefficients.
    pub fn basis(&self) -> Basis {
        self.basis
    }

    /// The coefficients (no trailing zeros, at least one).
    pub fn coeffs(&self) -> &[Complex64] {
        &self.coeffs
    }

    /// The degree (index of the last nonzero coefficient).
    pub fn degree(&self) -> usize {
        self.coeffs.len() - 1
    }

    /// Multiplicative depth of the baby-step giant-step evaluation of a degree-`degree`
    /// polynomial on `[-1, 1]` or in the power basis: `ceil(log2(degree + 1))`, the optimum.
    pub fn depth(degree: usize) -> usize {
        ceil_log2(degree + 1)
    }

    /// The affine map `y = alpha x + beta` of a Chebyshev interval onto `[-1, 1]`, if it is
    /// not the identity.
    fn change_of_variable(&self) -> Option<(f64, f64)> {
        match self.basis {
            Basis::Chebyshev { a, b } if !(a == -1.0 && b == 1.0) => {
                Some((2.0 / (b - a), -(a + b) / (b - a)))
            }
            _ => None,
        }
    }

    /// Levels [`evaluate`] consumes: [`Self::depth`] of the degree, plus one for the change
    /// of variable of a Chebyshev interval other than `[-1, 1]`.
    pub fn required_levels(&self) -> usize {
        Self::depth(self.degree()) + usize::from(self.change_of_variable().is_some())
    }

    /// Rotation keys the evaluation needs: none (it only needs the relinearisation key).
    pub fn rotation_steps(&self) -> Vec<i64> {
        Vec::new()
    }

    /// Evaluates the polynomial at a point in the clear (Horner, or Clenshaw for Chebyshev).
    pub fn evaluate_plain(&self, x: impl Into<Complex64>) -> Complex64 {
        let x: Complex64 = x.into();
        match self.basis {
            Basis::Monomial => self
                .coeffs
                .iter()
                .rev()
                .fold(Complex64::new(0.0, 0.0), |acc, &c| acc * x + c),
            Basis::Chebyshev { a, b } => {
                let y = (x * 2.0 - a - b) / (b - a);
                // Clenshaw: b_k = c_k + 2 y b_{k+1} - b_{k+2}; p = c_0 + y b_1 - b_2.
                let (mut b1, mut b2) = (Complex64::new(0.0, 0.0), Complex64::new(0.0, 0.0));
                for &c in self.coeffs[1..].iter().rev() {
                    let b0 = c + y * b1 * 2.0 - b2;
                    b2 = b1;
                    b1 = b0;
                }
                self.coeffs[0] + y * b1 - b2
            }
        }
    }

    /// Evaluates the polynomial on a ciphertext; see [`PolynomialEvaluator::evaluate`].
    pub fn evaluate(
        &self,
        eval: &Evaluator,
        ct: &Ciphertext,
        target_scale: f64,
    ) -> Result<Ciphertext> {
        PolynomialEvaluator::new(eval).evaluate(ct, self, target_scale)
    }
}

/// The split `l` (baby steps `T_1 .. T_{2^l}`) minimising the count of non-scalar products,
/// about `2^l` for the baby steps plus `2^{m-l}` giant-step products plus `m - l` giant steps.
fn optimal_log_split(m: usize) -> usize {
    let hi = m.saturating_sub(1).max(1);
    (1..=hi)
        .min_by_key(|&l| (1usize << l) + (1usize << (m - l.min(m))) + (m - l.min(m)))
        .unwrap_or(1)
}

/// `p = q T_g + r` with `deg r < g` (requires `deg p < 2g`). In the power basis `q` and `r` are
/// the high and low coefficients; in the Chebyshev basis, from `T_g T_j = (T_{g+j} + T_{g-j})/2`:
/// `q_0 = c_g`, `q_j = 2 c_{g+j}` and `r_i = c_i - c_{2g-i}`.
fn split(coeffs: &[Complex64], g: usize, chebyshev: bool) -> (Vec<Complex64>, Vec<Complex64>) {
    let at = |i: usize| coeffs.get(i).copied().unwrap_or_default();
    let hi = coeffs.len().saturating_sub(g);
    if !chebyshev {
        return (
            coeffs[g.min(coeffs.len())..].to_vec(),
            coeffs[..g.min(coeffs.len())].to_vec(),
        );
    }
    let q = (0..hi)
        .map(|j| if j == 0 { at(g) } else { at(g + j) * 2.0 })
        .collect();
    let r = (0..g)
        .map(|i| if i == 0 { at(0) } else { at(i) - at(2 * g - i) })
        .collect();
    (q, r)
}

/// A partial result of the recursion: the zero polynomial, a constant, or a ciphertext.
enum Value {
    Zero,
    Const(Complex64),
    Ct(Ciphertext),
}

/// The power basis `T_k` (or `x^k`), computed on demand; `T_k` sits at level
/// `top - ceil(log2 k)`.
struct PowerBasis<'a> {
    eval: &'a Evaluator,
    chebyshev: bool,
    top: usize,
    powers: BTreeMap<usize, Ciphertext>,
}

impl<'a> PowerBasis<'a> {
    fn level_of(&self, k: usize) -> Option<usize> {
        self.top.checked_sub(ceil_log2(k))
    }

    fn power(&self, k: usize) -> Result<&Ciphertext> {
        self.powers.get(&k).ok_or_else(|| Error::InvalidArgument {
            op: "evaluate_polynomial",
            msg: format!("internal: power {k} missing"),
        })
    }

    fn get(&mut self, k: usize) -> Result<&Ciphertext> {
        self.generate(k)?;
        self.power(k)
    }

    /// Computes `T_k` from `T_a T_b`, `a` the largest power of two below `k` (or `k/2`).
    fn generate(&mut self, k: usize) -> Result<()> {
        if self.powers.contains_key(&k) {
            return Ok(());
        }
        if k < 2 {
            return Err(Error::InvalidArgument {
                op: "polynomial",
                msg: format!("power {k} cannot be generated"),
            });
        }
        let a = 1usize << (ceil_log2(k) - 1);
        let b = k - a;
        self.generate(a)?;
        self.generate(b)?;
        if self.chebyshev && a != b {
            self.generate(a - b)?;
        }
        let eval = self.eval;
        let (ta, tb) = (self.power(a)?, self.power(b)?);
        let prod = if self.chebyshev && a != b {
            // T_{a+b} = 2 T_a T_b - T_{a-b}; T_{a-b} is brought to the product's scale by an
            // integer constant (~ one prime), before the common rescale.
            let mut prod = eval.mul_relin(ta, tb)?;
            eval.mul_integer_assign(&mut prod, 2)?;
            let t = self.power(a - b)?;
            let mut sub = eval.drop_to_level(t, prod.level())?;
            let const_scale = prod.scale() / sub.scale();
            eval.mul_const_no_rescale_assign(&mut sub, Complex64::new(1.0, 0.0), const_scale)?;
            eval.sub_assign(&mut prod, &sub)?;
            eval.rescale_assign(&mut prod)?;
            prod
        } else {
            // x^{a+b} = x^a x^b, or T_{2a} = (2 T_a) T_a - T_0: the relinearisation's ModDown
            // and the rescale fused into one division. The 2 goes on an operand, not on the
            // result, so that the rescale's rounding is not doubled (1 bit at bootstrapping).
            if self.chebyshev {
                let mut twice = ta.clone();
                eval.mul_integer_assign(&mut twice, 2)?;
                let mut prod = eval.mul_relin_rescale(&twice, tb)?;
                eval.add_const_assign(&mut prod, Complex64::new(-1.0, 0.0))?;
                prod
            } else {
                eval.mul_relin_rescale(ta, tb)?
            }
        };
        if Some(prod.level()) != self.level_of(k) {
            return Err(Error::InvalidLevel {
                op: "polynomial",
                level: prod.level(),
                max: self.level_of(k).unwrap_or(0),
            });
        }
        self.powers.insert(k, prod);
        Ok(())
    }
}

/// Evaluates [`Polynomial`]s on ciphertexts with an [`Evaluator`] (which must hold the
/// relinearisation key).
#[derive(Debug)]
pub struct PolynomialEvaluator<'a> {
    eval: &'a Evaluator,
}

impl<'a> PolynomialEvaluator<'a> {
    /// Wraps an evaluator.
    pub fn new(eval: &'a Evaluator) -> Self {
        Self { eval }
    }

    /// `p(ct)` by baby-step giant-step (see the module documentation). Consumes exactly
    /// [`Polynomial::required_levels`] levels and returns a ciphertext whose `scale()` is
    /// exactly `target_scale`.
    ///
    /// Errors: the ciphertext has too few levels, is not of degree 1, the polynomial is
    /// constant, the target scale is not positive and finite, or the relinearisation key is
    /// missing.
    pub fn evaluate(
        &self,
        ct: &Ciphertext,
        poly: &Polynomial,
        target_scale: f64,
    ) -> Result<Ciphertext> {
        const OP: &str = "evaluate_polynomial";
        let eval = self.eval;
        if !(target_scale.is_finite() && target_scale > 0.0) {
            return Err(Error::InvalidArgument {
                op: OP,
                msg: format!("target scale {target_scale} must be positive and finite"),
            });
        }
        let degree = poly.degree();
        if degree == 0 {
            return Err(Error::InvalidArgument {
                op: OP,
                msg: "the polynomial is constant".into(),
            });
        }
        if ct.degree() != 1 {
            return Err(Error::Degree {
                op: OP,
                degree: ct.degree(),
                expected: 1,
            });
        }
        let needed = poly.required_levels();
        if ct.level() < needed {
            return Err(Error::InvalidLevel {
                op: OP,
                level: ct.level(),
                max: needed,
            });
        }
        // T_1: the input, mapped to [-1, 1] for a Chebyshev interval.
        let t1 = match poly.change_of_variable() {
            Some((alpha, beta)) => {
                let mut y = ct.clone();
                eval.mul_const_to_scale_assign(&mut y, Complex64::new(alpha, 0.0), ct.scale())?;
                if beta != 0.0 {
                    eval.add_const_assign(&mut y, Complex64::new(beta, 0.0))?;
                }
                y
            }
            None => ct.clone(),
        };
        let m = Polynomial::depth(degree);
        let top = t1.level();
        let out_level = top - m;
        let mut basis = PowerBasis {
            eval,
            chebyshev: matches!(poly.basis, Basis::Chebyshev { .. }),
            top,
            powers: BTreeMap::new(),
        };
        basis.powers.insert(1, t1);
        let log_split = optimal_log_split(m);
        let q = eval.params().ring().q(out_level + 1).value() as f64;
        let mut rec = Recursion { basis, log_split };
        match rec.eval(poly.coeffs(), out_level + 1, target_scale * q)? {
            Value::Ct(mut out) => {
                eval.rescale_assign(&mut out)?;
                out.set_scale(target_scale);
                Ok(out)
            }
            _ => Err(Error::InvalidArgument {
                op: OP,
                msg: "the polynomial is constant".into(),
            }),
        }
    }
}

struct Recursion<'a> {
    basis: PowerBasis<'a>,
    log_split: usize,
}

impl Recursion<'_> {
    /// Evaluates `sum c_i T_i` to a ciphertext at exactly `level`, with scale `scale` (up to
    /// metadata rounding), not yet rescaled: the caller divides by `q_level`.
    fn eval(&mut self, coeffs: &[Complex64], level: usize, scale: f64) -> Result<Value> {
        const OP: &str = "evaluate_polynomial";
        let deg = degree_of(coeffs);
        if deg == 0 {
            return Ok(if is_zero(coeffs.first().copied().unwrap_or_default()) {
                Value::Zero
            } else {
                Value::Const(coeffs[0])
            });
        }
        let baby = 1usize << self.log_split;
        let fits = (1..=deg)
            .filter(|&i| !is_zero(coeffs[i]))
            .all(|i| self.basis.level_of(i).is_some_and(|l| l >= level));
        if deg < baby && fits {
            return self.leaf(&coeffs[..=deg], level, scale);
        }
        // Giant step: the smallest power of two g (at least the baby-step size unless the
        // leaf is too deep for the level) with 2g > deg.
        let mut g = if deg >= baby { baby } else { 1 };
        while g < (deg >> 1) + 1 {
            g <<= 1;
        }
        if self.basis.level_of(g).is_none_or(|l| l < level) {
            return Err(Error::InvalidLevel {
                op: OP,
                level,
                max: self.basis.level_of(g).unwrap_or(0),
            });
        }
        let (q, r) = split(&coeffs[..=deg], g, self.basis.chebyshev);
        let eval = self.basis.eval;
        let tg = self.basis.get(g)?;
        let tg = eval.drop_to_level(tg, level)?;
        let prod = match degree_of(&q) {
            0 if is_zero(q[0]) => None,
            0 => {
                let mut p = tg;
                let const_scale = scale / p.scale();
                eval.mul_const_no_rescale_assign(&mut p, q[0], const_scale)?;
                Some(p)
            }
            _ => {
                if level + 1 > self.basis.top {
                    return Err(Error::InvalidLevel {
                        op: OP,
                        level: level + 1,
                        max: self.basis.top,
                    });
                }
                let q_next = eval.params().ring().q(level + 1).value() as f64;
                match self.eval(&q, level + 1, scale * q_next / tg.scale())? {
                    Value::Ct(mut qc) => {
                        eval.rescale_assign(&mut qc)?;
                        Some(eval.mul_relin(&qc, &tg)?)
                    }
                    _ => {
                        return Err(Error::InvalidArgument {
                            op: OP,
                            msg: "internal: quotient evaluated to a constant".into(),
                        });
                    }
                }
            }
        };
        let r_scale = prod.as_ref().map_or(scale, |p| p.scale());
        let rv = self.eval(&r, level, r_scale)?;
        Ok(match (prod, rv) {
            (None, v) => v,
            (Some(p), Value::Zero) => Value::Ct(p),
            (Some(mut p), Value::Const(c)) => {
                eval.add_const_assign(&mut p, c)?;
                Value::Ct(p)
            }
            (Some(mut p), Value::Ct(rc)) => {
                eval.add_assign(&mut p, &rc)?;
                Value::Ct(p)
            }
        })
    }

    /// `c_0 + sum_{i >= 1} c_i T_i` with each `c_i` encoded at scale `scale / scale(T_i)`.
    fn leaf(&mut self, coeffs: &[Complex64], level: usize, scale: f64) -> Result<Value> {
        let eval = self.basis.eval;
        let mut acc: Option<Ciphertext> = None;
        for (i, &c) in coeffs.iter().enumerate().skip(1) {
            if is_zero(c) {
                continue;
            }
            let t = self.basis.get(i)?;
            let const_scale = scale / t.scale();
            match acc.as_mut() {
                // One multiply-accumulate pass, no copy of T_i.
                Some(a) => eval.mul_const_add_assign(a, t, c, const_scale)?,
                None => {
                    let mut term = eval.drop_to_level(t, level)?;
                    eval.mul_const_no_rescale_assign(&mut term, c, const_scale)?;
                    acc = Some(term);
                }
            }
        }
        let c0 = coeffs[0];
        Ok(match acc {
            Some(mut a) => {
                if !is_zero(c0) {
                    eval.add_const_assign(&mut a, c0)?;
                }
                Value::Ct(a)
            }
            None if is_zero(c0) => Value::Zero,
            None => Value::Const(c0),
        })
    }
}

/// Evaluates `poly` on `ct`, landing exactly on `target_scale`; see
/// [`PolynomialEvaluator::evaluate`].
pub fn evaluate(
    eval: &Evaluator,
    ct: &Ciphertext,
    poly: &Polynomial,
    target_scale: f64,
) -> Result<Ciphertext> {
    PolynomialEvaluator::new(eval).evaluate(ct, poly, target_scale)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_reconstructs() {
        let c: Vec<Complex64> = (0..12)
            .map(|i| Complex64::new(i as f64 * 0.3 - 1.0, 0.1 * i as f64))
            .collect();
        for cheb in [false, true] {
            let basis = if cheb {
                Basis::Chebyshev { a: -1.0, b: 1.0 }
            } else {
                Basis::Monomial
            };
            let p = Polynomial::new(basis, c.clone()).expect("valid");
            let (q, r) = split(&c, 8, cheb);
            let (pq, pr) = (
                Polynomial::new(basis, q).expect("q"),
                Polynomial::new(basis, r).expect("r"),
            );
            let g = Polynomial::new(
                basis,
                (0..=8)
                    .map(|i| Complex64::new(if i == 8 { 1.0 } else { 0.0 }, 0.0))
                    .collect(),
            )
            .expect("g");
            for x in [-0.9, -0.3, 0.2, 0.7] {
                let want = p.evaluate_plain(x);
                let got = pq.evaluate_plain(x) * g.evaluate_plain(x) + pr.evaluate_plain(x);
                assert!((want - got).norm() < 1e-12, "cheb={cheb} x={x}");
            }
        }
    }

    #[test]
    fn interpolation_and_depth() {
        let p = Polynomial::chebyshev_interpolate(f64::exp, 15, -2.0, 3.0).expect("valid");
        for x in [-2.0, -0.5, 1.0, 2.9] {
            assert!((p.evaluate_plain(x).re - f64::exp(x)).abs() < 1e-10);
        }
        assert_eq!(p.required_levels(), 5);
        assert_eq!(
            (1..=9).map(Polynomial::depth).collect::<Vec<_>>(),
            vec![1, 2, 2, 3, 3, 3, 3, 4, 4]
        );
        assert_eq!(
            Polynomial::monomial(vec![1.0, 2.0, 0.0, 0.0])
                .expect("valid")
                .degree(),
            1
        );
        assert!(Polynomial::chebyshev(vec![1.0], 1.0, 1.0).is_err());
        assert!(Polynomial::monomial(vec![f64::NAN]).is_err());
    }
}
