//! Homomorphic operations on CKKS ciphertexts.
//!
//! As in Lattigo, level and scale travel with every ciphertext, operations come as
//! new-output (`add`) and in-place (`add_assign`) pairs, and rescaling/level dropping are
//! explicit. Additions of operands at different levels drop the higher one; operands
//! whose scales differ by more than [`SCALE_TOLERANCE`] are refused (use
//! [`Evaluator::mul_const_to_scale_assign`] or the plaintext/constant `*_to_scale` forms, which
//! land exactly on a requested scale).

use crate::error::{Error, Result};
use crate::params::Params;
use crate::ring::{Coeff, Ntt, Poly};
use crate::rlwe::ciphertext::{Ciphertext, Plaintext};
use crate::rlwe::keys::{EvaluationKeys, SwitchingKey};
use crate::rlwe::keyswitch::{self, Decomposition, Finish};
use num_complex::Complex64;
use rayon::prelude::*;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// Largest relative difference between two scales that additions accept.
pub const SCALE_TOLERANCE: f64 = 1e-9;

/// Counters of the expensive operations an evaluator performed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OpCounts {
    /// Key switches: relinearisations, rotations/conjugations (hoisted ones included) and
    /// switches between secrets.
    pub key_switches: u64,
    /// Relinearisations.
    pub relinearizations: u64,
    /// Rotations and conjugations.
    pub rotations: u64,
    /// ModUp decompositions (a hoisted batch of rotations shares one).
    pub decompositions: u64,
    /// Rescales.
    pub rescales: u64,
    /// Plain key switches between two secrets (bootstrapping's encapsulation).
    pub secret_switches: u64,
}

#[derive(Default)]
struct Counters {
    switch: AtomicU64,
    relin: AtomicU64,
    rot: AtomicU64,
    decomp: AtomicU64,
    rescale: AtomicU64,
}

/// Evaluates operations with the public evaluation keys. Never holds a secret key.
pub struct Evaluator {
    params: Arc<Params>,
    keys: Arc<EvaluationKeys>,
    counters: Counters,
}

impl std::fmt::Debug for Evaluator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Evaluator({})", self.params.summary())
    }
}

fn scales_match(a: f64, b: f64) -> bool {
    ((a - b) / a.max(b)).abs() <= SCALE_TOLERANCE
}

impl Evaluator {
    /// An evaluator with the given public keys (possibly none).
    pub fn new(params: Arc<Params>, keys: impl Into<Arc<EvaluationKeys>>) -> Self {
        Self {
            params,
            keys: keys.into(),
            counters: Counters::default(),
        }
    }

    /// The parameters.
    pub fn params(&self) -> &Arc<Params> {
        &self.params
    }

    /// The evaluation keys.
    pub fn keys(&self) -> &EvaluationKeys {
        &self.keys
    }

    /// Counts of expensive operations since creation (or the last reset).
    pub fn op_counts(&self) -> OpCounts {
        let relin = self.counters.relin.load(Ordering::Relaxed);
        let rot = self.counters.rot.load(Ordering::Relaxed);
        let switch = self.counters.switch.load(Ordering::Relaxed);
        OpCounts {
            key_switches: relin + rot + switch,
            secret_switches: switch,
            relinearizations: relin,
            rotations: rot,
            decompositions: self.counters.decomp.load(Ordering::Relaxed),
            rescales: self.counters.rescale.load(Ordering::Relaxed),
        }
    }

    /// Resets the counters.
    pub fn reset_op_counts(&self) {
        for c in [
            &self.counters.switch,
            &self.counters.relin,
            &self.counters.rot,
            &self.counters.decomp,
            &self.counters.rescale,
        ] {
            c.store(0, Ordering::Relaxed);
        }
    }

    fn check(&self, ct: &Ciphertext, op: &'static str) -> Result<()> {
        ct.check_params(&self.params, op)
    }

    fn check_pt(&self, pt: &Plaintext, op: &'static str) -> Result<()> {
        if pt.params.fingerprint() != self.params.fingerprint() {
            return Err(Error::ParameterMismatch { op });
        }
        Ok(())
    }

    // ----- levels and scales -----

    /// Drops the ciphertext to `level` (discarding primes; no noise, scale unchanged).
    pub fn drop_to_level_assign(&self, ct: &mut Ciphertext, level: usize) -> Result<()> {
        self.check(ct, "drop_level")?;
        if level > ct.level {
            return Err(Error::InvalidLevel {
                op: "drop_level",
                level,
                max: ct.level,
            });
        }
        let basis = self.params.basis_q(level);
        for p in ct.polys_mut() {
            p.truncate(basis);
        }
        ct.level = level;
        Ok(())
    }

    /// New-output form of [`Self::drop_to_level_assign`].
    pub fn drop_to_level(&self, ct: &Ciphertext, level: usize) -> Result<Ciphertext> {
        self.check(ct, "drop_level")?;
        if level > ct.level {
            return Err(Error::InvalidLevel {
                op: "drop_level",
                level,
                max: ct.level,
            });
        }
        let basis = self.params.basis_q(level);
        let polys = ct.polys().iter().map(|p| p.truncated(basis)).collect();
        Ok(Ciphertext::new(
            self.params.clone(),
            polys,
            level,
            ct.scale,
            ct.slots,
        ))
    }

    /// Divides by the last prime q_level with rounding: level - 1, scale / q_level.
    pub fn rescale_assign(&self, ct: &mut Ciphertext) -> Result<()> {
        self.check(ct, "rescale")?;
        if ct.level == 0 {
            return Err(Error::InvalidLevel {
                op: "rescale",
                level: 0,
                max: 0,
            });
        }
        let q_last = self.params.ring().q(ct.level).value() as f64;
        for p in ct.polys_mut() {
            p.divide_by_last_q(self.params.ring());
        }
        ct.level -= 1;
        ct.scale /= q_last;
        self.counters.rescale.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// New-output form of [`Self::rescale_assign`].
    pub fn rescale(&self, ct: &Ciphertext) -> Result<Ciphertext> {
        let mut out = ct.clone();
        self.rescale_assign(&mut out)?;
        Ok(out)
    }

    // ----- additive operations -----

    fn align_levels(
        &self,
        a: &mut Ciphertext,
        b: &Ciphertext,
        op: &'static str,
    ) -> Result<Option<Ciphertext>> {
        self.check(a, op)?;
        self.check(b, op)?;
        if !scales_match(a.scale, b.scale) {
            return Err(Error::ScaleMismatch {
                op,
                a: a.scale.log2(),
                b: b.scale.log2(),
            });
        }
        if a.slots != b.slots {
            return Err(Error::InvalidArgument {
                op,
                msg: format!("slot counts differ ({} vs {})", a.slots, b.slots),
            });
        }
        if a.level > b.level {
            self.drop_to_level_assign(a, b.level)?;
        }
        Ok(if b.level > a.level {
            Some(self.drop_to_level(b, a.level)?)
        } else {
            None
        })
    }

    fn combine_assign(
        &self,
        a: &mut Ciphertext,
        b: &Ciphertext,
        op: &'static str,
        subtract: bool,
    ) -> Result<()> {
        let dropped = self.align_levels(a, b, op)?;
        let b = dropped.as_ref().unwrap_or(b);
        let ring = self.params.ring();
        let polys = a.polys_mut();
        for (i, q) in b.polys().iter().enumerate() {
            if i < polys.len() {
                if subtract {
                    polys[i].sub_assign(ring, q)
                } else {
                    polys[i].add_assign(ring, q)
                }
            } else {
                let mut q = q.clone();
                if subtract {
                    q.neg_assign(ring);
                }
                polys.push(q);
            }
        }
        Ok(())
    }

    /// a += b.
    pub fn add_assign(&self, a: &mut Ciphertext, b: &Ciphertext) -> Result<()> {
        self.combine_assign(a, b, "add", false)
    }

    /// a + b.
    pub fn add(&self, a: &Ciphertext, b: &Ciphertext) -> Result<Ciphertext> {
        let mut out = a.clone();
        self.add_assign(&mut out, b)?;
        Ok(out)
    }

    /// a -= b.
    pub fn sub_assign(&self, a: &mut Ciphertext, b: &Ciphertext) -> Result<()> {
        self.combine_assign(a, b, "sub", true)
    }

    /// a - b.
    pub fn sub(&self, a: &Ciphertext, b: &Ciphertext) -> Result<Ciphertext> {
        let mut out = a.clone();
        self.sub_assign(&mut out, b)?;
        Ok(out)
    }

    /// ct = -ct.
    pub fn neg_assign(&self, ct: &mut Ciphertext) -> Result<()> {
        self.check(ct, "neg")?;
        let ring = self.params.ring();
        for p in ct.polys_mut() {
            p.neg_assign(ring);
        }
        Ok(())
    }

    /// -ct.
    pub fn neg(&self, ct: &Ciphertext) -> Result<Ciphertext> {
        let mut out = ct.clone();
        self.neg_assign(&mut out)?;
        Ok(out)
    }

    fn plain_operand<'a>(
        &self,
        ct: &Ciphertext,
        pt: &'a Plaintext,
        op: &'static str,
    ) -> Result<&'a Poly<Ntt>> {
        self.check(ct, op)?;
        self.check_pt(pt, op)?;
        if pt.level < ct.level {
            return Err(Error::InvalidLevel {
                op,
                level: pt.level,
                max: ct.level,
            });
        }
        Ok(&pt.poly)
    }

    /// ct += pt or ct -= pt (same scale): the plaintext changes c_0 only.
    fn combine_plain_assign(
        &self,
        ct: &mut Ciphertext,
        pt: &Plaintext,
        op: &'static str,
        subtract: bool,
    ) -> Result<()> {
        if !scales_match(ct.scale, pt.scale) {
            return Err(Error::ScaleMismatch {
                op,
                a: ct.scale.log2(),
                b: pt.scale.log2(),
            });
        }
        let p = self.plain_operand(ct, pt, op)?;
        let ring = self.params.ring();
        let c0 = &mut ct.polys_mut()[0];
        if subtract {
            c0.sub_assign(ring, p)
        } else {
            c0.add_assign(ring, p)
        }
        Ok(())
    }

    /// ct += pt (same scale).
    pub fn add_plain_assign(&self, ct: &mut Ciphertext, pt: &Plaintext) -> Result<()> {
        self.combine_plain_assign(ct, pt, "add_plain", false)
    }

    /// ct + pt.
    pub fn add_plain(&self, ct: &Ciphertext, pt: &Plaintext) -> Result<Ciphertext> {
        let mut out = ct.clone();
        self.add_plain_assign(&mut out, pt)?;
        Ok(out)
    }

    /// ct -= pt (same scale).
    pub fn sub_plain_assign(&self, ct: &mut Ciphertext, pt: &Plaintext) -> Result<()> {
        self.combine_plain_assign(ct, pt, "sub_plain", true)
    }

    /// ct - pt.
    pub fn sub_plain(&self, ct: &Ciphertext, pt: &Plaintext) -> Result<Ciphertext> {
        let mut out = ct.clone();
        self.sub_plain_assign(&mut out, pt)?;
        Ok(out)
    }

    /// The constant c * scale as a polynomial: round(Re) at X^0 and round(Im) at X^{N/2}
    /// (X^{N/2} evaluates to i at every slot root), in NTT form at `level`.
    fn constant_poly(&self, c: Complex64, scale: f64, level: usize) -> Poly<Ntt> {
        let ring = self.params.ring();
        let n = ring.n();
        let basis = self.params.basis_q(level);
        let mut p = Poly::<Coeff>::zero(ring, basis);
        let (re, im) = (c.re * scale, c.im * scale);
        for t in 0..basis.len() {
            let m = *ring.modulus(basis, t);
            let tower = p.tower_mut(t);
            tower[0] = m.reduce_f64(re);
            tower[n / 2] = m.reduce_f64(im);
        }
        p.into_ntt(ring)
    }

    /// round(v) modulo each prime of `level`: a real constant, the same value in every NTT
    /// slot.
    fn scalar_residues(&self, v: f64, level: usize) -> Vec<u64> {
        let ring = self.params.ring();
        let basis = self.params.basis_q(level);
        (0..basis.len())
            .map(|t| ring.modulus(basis, t).reduce_f64(v))
            .collect()
    }

    /// ct += c in every slot.
    pub fn add_const_assign(&self, ct: &mut Ciphertext, c: Complex64) -> Result<()> {
        self.check(ct, "add_const")?;
        check_finite(c, "add_const")?;
        let ring = self.params.ring();
        let basis = self.params.basis_q(ct.level);
        if c.im == 0.0 {
            let residues = self.scalar_residues(c.re * ct.scale, ct.level);
            ct.polys_mut()[0].towers_mut().for_each(|(t, tower)| {
                let m = ring.modulus(basis, t);
                for x in tower.iter_mut() {
                    *x = m.add(*x, residues[t]);
                }
            });
        } else {
            let k = self.constant_poly(c, ct.scale, ct.level);
            ct.polys_mut()[0].add_assign(ring, &k);
        }
        Ok(())
    }

    /// ct + c.
    pub fn add_const(&self, ct: &Ciphertext, c: f64) -> Result<Ciphertext> {
        let mut out = ct.clone();
        self.add_const_assign(&mut out, Complex64::new(c, 0.0))?;
        Ok(out)
    }

    // ----- multiplicative operations -----

    /// ct *= round(c * const_scale), scale *= const_scale; no rescale, no level consumed.
    pub fn mul_const_no_rescale_assign(
        &self,
        ct: &mut Ciphertext,
        c: Complex64,
        const_scale: f64,
    ) -> Result<()> {
        self.check(ct, "mul_const")?;
        check_finite(c, "mul_const")?;
        let ring = self.params.ring();
        if c.im == 0.0 {
            let residues = self.scalar_residues(c.re * const_scale, ct.level);
            for p in ct.polys_mut() {
                p.mul_scalar_assign(ring, &residues);
            }
        } else {
            let k = self.constant_poly(c, const_scale, ct.level);
            for p in ct.polys_mut() {
                p.mul_assign(ring, &k);
            }
        }
        ct.scale *= const_scale;
        Ok(())
    }

    /// acc += round(c * const_scale) * ct, in one pass over the towers of `acc`'s level
    /// (no copy of `ct`, no level consumed): the leaves of polynomial evaluation. `ct` may be
    /// at a higher level; `ct.scale * const_scale` must match `acc`'s scale.
    pub fn mul_const_add_assign(
        &self,
        acc: &mut Ciphertext,
        ct: &Ciphertext,
        c: Complex64,
        const_scale: f64,
    ) -> Result<()> {
        const OP: &str = "mul_const_add";
        self.check(acc, OP)?;
        self.check(ct, OP)?;
        check_finite(c, OP)?;
        if ct.level < acc.level || ct.degree() != acc.degree() || ct.slots != acc.slots {
            return Err(Error::InvalidArgument {
                op: OP,
                msg: format!(
                    "operand at level {} degree {} ({} slots) cannot be added to one at level {} degree {} ({} slots)",
                    ct.level,
                    ct.degree(),
                    ct.slots,
                    acc.level,
                    acc.degree(),
                    acc.slots
                ),
            });
        }
        let scaled = ct.scale * const_scale;
        if !scales_match(acc.scale, scaled) {
            return Err(Error::ScaleMismatch {
                op: OP,
                a: acc.scale.log2(),
                b: scaled.log2(),
            });
        }
        if c.im != 0.0 {
            let mut term = self.drop_to_level(ct, acc.level)?;
            self.mul_const_no_rescale_assign(&mut term, c, const_scale)?;
            term.scale = acc.scale;
            return self.add_assign(acc, &term);
        }
        let ring = self.params.ring();
        let residues = self.scalar_residues(c.re * const_scale, acc.level);
        let srcs = ct.polys();
        for (dst, src) in acc.polys_mut().iter_mut().zip(srcs) {
            dst.towers_mut().for_each(|(t, o)| {
                crate::ring::simd::mul_add_scalar(o, src.tower(t), residues[t], ring.q(t));
            });
        }
        Ok(())
    }

    /// ct *= k for an integer k: exact, no level consumed, scale unchanged.
    pub fn mul_integer_assign(&self, ct: &mut Ciphertext, k: i64) -> Result<()> {
        self.mul_const_no_rescale_assign(ct, Complex64::new(k as f64, 0.0), 1.0)
    }

    /// ct * c, consuming one level, landing exactly on `target_scale`: multiplies by
    /// round(c * target * q_level / scale) and rescales by q_level.
    pub fn mul_const_to_scale_assign(
        &self,
        ct: &mut Ciphertext,
        c: Complex64,
        target_scale: f64,
    ) -> Result<()> {
        self.check(ct, "mul_const")?;
        if ct.level == 0 {
            return Err(Error::InvalidLevel {
                op: "mul_const",
                level: 0,
                max: 0,
            });
        }
        let q = self.params.ring().q(ct.level).value() as f64;
        let const_scale = target_scale * q / ct.scale;
        self.mul_const_no_rescale_assign(ct, c, const_scale)?;
        self.rescale_assign(ct)?;
        ct.scale = target_scale;
        Ok(())
    }

    /// ct * c consuming one level; the scale is unchanged.
    pub fn mul_const(&self, ct: &Ciphertext, c: f64) -> Result<Ciphertext> {
        let mut out = ct.clone();
        self.mul_const_to_scale_assign(&mut out, Complex64::new(c, 0.0), ct.scale)?;
        Ok(out)
    }

    /// In-place [`Self::mul_const`] for complex constants.
    pub fn mul_const_assign(&self, ct: &mut Ciphertext, c: Complex64) -> Result<()> {
        let s = ct.scale;
        self.mul_const_to_scale_assign(ct, c, s)
    }

    /// ct *= pt (no rescale: scales multiply).
    pub fn mul_plain_assign(&self, ct: &mut Ciphertext, pt: &Plaintext) -> Result<()> {
        let p = self.plain_operand(ct, pt, "mul_plain")?;
        let ring = self.params.ring();
        for c in ct.polys_mut() {
            c.mul_assign(ring, p);
        }
        ct.scale *= pt.scale;
        Ok(())
    }

    /// `sum_k ct_k * pt_k` (no rescale) in one pass per tower: a masked sum of many
    /// ciphertexts without a temporary ciphertext per term. Every ciphertext has degree 1 and
    /// the same level and slot count, every plaintext is at or above that level, and all
    /// products have the same scale.
    pub fn dot_plain(&self, terms: &[(&Ciphertext, &Plaintext)]) -> Result<Ciphertext> {
        const OP: &str = "dot_plain";
        let (first, first_pt) = terms.first().ok_or_else(|| Error::InvalidArgument {
            op: OP,
            msg: "no terms".into(),
        })?;
        let (level, slots) = (first.level, first.slots);
        let scale = first.scale * first_pt.scale;
        let mut polys = Vec::with_capacity(terms.len());
        for (ct, pt) in terms {
            let p = self.plain_operand(ct, pt, OP)?;
            if ct.degree() != 1 {
                return Err(Error::Degree {
                    op: OP,
                    degree: ct.degree(),
                    expected: 1,
                });
            }
            if ct.level != level || ct.slots != slots {
                return Err(Error::InvalidArgument {
                    op: OP,
                    msg: format!(
                        "terms at level {} with {} slots and level {level} with {slots}",
                        ct.level, ct.slots
                    ),
                });
            }
            if !scales_match(ct.scale * pt.scale, scale) {
                return Err(Error::ScaleMismatch {
                    op: OP,
                    a: (ct.scale * pt.scale).log2(),
                    b: scale.log2(),
                });
            }
            polys.push((&ct.polys()[0], &ct.polys()[1], p));
        }
        let [c0, c1] = Poly::dot_pairs(self.params.ring(), self.params.basis_q(level), &polys);
        Ok(Ciphertext::new(
            self.params.clone(),
            vec![c0, c1],
            level,
            scale,
            slots,
        ))
    }

    /// ct * pt (no rescale).
    pub fn mul_plain(&self, ct: &Ciphertext, pt: &Plaintext) -> Result<Ciphertext> {
        let mut out = ct.clone();
        self.mul_plain_assign(&mut out, pt)?;
        Ok(out)
    }

    /// Tensor product without relinearisation: degree 1 x degree 1 -> degree 2.
    pub fn mul_no_relin(&self, a: &Ciphertext, b: &Ciphertext) -> Result<Ciphertext> {
        self.check(a, "mul")?;
        self.check(b, "mul")?;
        if a.degree() != 1 || b.degree() != 1 {
            return Err(Error::Degree {
                op: "mul",
                degree: a.degree().max(b.degree()),
                expected: 1,
            });
        }
        if a.slots != b.slots {
            return Err(Error::InvalidArgument {
                op: "mul",
                msg: format!("slot counts differ ({} vs {})", a.slots, b.slots),
            });
        }
        let level = a.level.min(b.level);
        let basis = self.params.basis_q(level);
        let ring = self.params.ring();
        let (a0, a1) = (&a.polys()[0], &a.polys()[1]);
        let (b0, b1) = (&b.polys()[0], &b.polys()[1]);
        let n = ring.n();
        let mut d0 = Poly::<Ntt>::zero(ring, basis);
        let mut d1 = Poly::<Ntt>::zero(ring, basis);
        let mut d2 = Poly::<Ntt>::zero(ring, basis);
        d0.data_mut()
            .par_chunks_mut(n)
            .zip(d1.data_mut().par_chunks_mut(n))
            .zip(d2.data_mut().par_chunks_mut(n))
            .enumerate()
            .for_each(|(t, ((o0, o1), o2))| {
                let m = ring.q(t);
                let (x0, x1, y0, y1) = (a0.tower(t), a1.tower(t), b0.tower(t), b1.tower(t));
                for c in 0..n {
                    o0[c] = m.mul(x0[c], y0[c]);
                    o1[c] = m
                        .reduce_u128(x0[c] as u128 * y1[c] as u128 + x1[c] as u128 * y0[c] as u128);
                    o2[c] = m.mul(x1[c], y1[c]);
                }
            });
        Ok(Ciphertext::new(
            self.params.clone(),
            vec![d0, d1, d2],
            level,
            a.scale * b.scale,
            a.slots,
        ))
    }

    /// ct*ct with relinearisation (no rescale).
    pub fn mul_relin(&self, a: &Ciphertext, b: &Ciphertext) -> Result<Ciphertext> {
        let mut out = self.mul_no_relin(a, b)?;
        self.relinearize_assign(&mut out)?;
        Ok(out)
    }

    /// ct*ct, relinearise, rescale: the usual multiplication. The relinearisation's ModDown
    /// and the rescale are fused into one division by P * q_level.
    pub fn mul_relin_rescale(&self, a: &Ciphertext, b: &Ciphertext) -> Result<Ciphertext> {
        let d = self.mul_no_relin(a, b)?;
        if d.level == 0 {
            return Err(Error::InvalidLevel {
                op: "rescale",
                level: 0,
                max: 0,
            });
        }
        let level = d.level;
        let key = self.relin_key("relinearize", level)?;
        let q_last = self.params.ring().q(level).value() as f64;
        let polys = d.polys();
        let dec = keyswitch::decompose(&self.params, level, &polys[2]);
        let finish = Finish {
            add: [Some(&polys[0]), Some(&polys[1])],
            galois: None,
            rescale: true,
        };
        let [c0, c1] = keyswitch::switch_finish(&self.params, &dec, key, finish);
        self.counters.relin.fetch_add(1, Ordering::Relaxed);
        self.counters.decomp.fetch_add(1, Ordering::Relaxed);
        self.counters.rescale.fetch_add(1, Ordering::Relaxed);
        Ok(Ciphertext::new(
            self.params.clone(),
            vec![c0, c1],
            level - 1,
            d.scale / q_last,
            d.slots,
        ))
    }

    /// ct^2 with relinearisation (no rescale).
    pub fn square(&self, ct: &Ciphertext) -> Result<Ciphertext> {
        self.mul_relin(ct, ct)
    }

    fn relin_key(&self, op: &'static str, level: usize) -> Result<&SwitchingKey> {
        let key = self
            .keys
            .relin
            .as_ref()
            .map(|k| &k.0)
            .ok_or_else(|| Error::MissingKey {
                op,
                what: "relinearization key".into(),
            })?;
        key_reaches(key, level, op, || "relinearization key".into())
    }

    /// Degree 2 -> degree 1 by switching c_2 from s^2 to s.
    pub fn relinearize_assign(&self, ct: &mut Ciphertext) -> Result<()> {
        self.check(ct, "relinearize")?;
        match ct.degree() {
            1 => return Ok(()),
            2 => {}
            d => {
                return Err(Error::Degree {
                    op: "relinearize",
                    degree: d,
                    expected: 2,
                });
            }
        }
        let level = ct.level;
        let key = self.relin_key("relinearize", level)?;
        let polys = ct.polys_mut();
        let c2 = polys.pop().ok_or(Error::Degree {
            op: "relinearize",
            degree: 0,
            expected: 2,
        })?;
        let dec = keyswitch::decompose(&self.params, level, &c2);
        let finish = Finish {
            add: [Some(&polys[0]), Some(&polys[1])],
            ..Finish::default()
        };
        let [c0, c1] = keyswitch::switch_finish(&self.params, &dec, key, finish);
        polys[0] = c0;
        polys[1] = c1;
        self.counters.relin.fetch_add(1, Ordering::Relaxed);
        self.counters.decomp.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// Switches a ciphertext that decrypts under some secret s' to the evaluator's secret s,
    /// with a switching key from s' to s of the same parameters (bootstrapping's sparse-secret
    /// encapsulation).
    pub fn switch_key(&self, ct: &Ciphertext, key: &SwitchingKey) -> Result<Ciphertext> {
        self.check(ct, "switch_key")?;
        if key.params().fingerprint() != self.params.fingerprint() {
            return Err(Error::ParameterMismatch { op: "switch_key" });
        }
        if ct.degree() != 1 {
            return Err(Error::Degree {
                op: "switch_key",
                degree: ct.degree(),
                expected: 1,
            });
        }
        key_reaches(key, ct.level, "switch_key", || "switching key".into())?;
        let dec = keyswitch::decompose(&self.params, ct.level, &ct.polys()[1]);
        let finish = Finish {
            add: [Some(&ct.polys()[0]), None],
            ..Finish::default()
        };
        let [c0, c1] = keyswitch::switch_finish(&self.params, &dec, key, finish);
        self.counters.switch.fetch_add(1, Ordering::Relaxed);
        self.counters.decomp.fetch_add(1, Ordering::Relaxed);
        Ok(Ciphertext::new(
            self.params.clone(),
            vec![c0, c1],
            ct.level,
            ct.scale,
            ct.slots,
        ))
    }

    /// Adds key switches made by another evaluator on this one's behalf (bootstrapping's
    /// switch over the encapsulation parameters), so that the counts stay complete.
    pub(crate) fn count_key_switches(&self, n: u64) {
        self.counters.switch.fetch_add(n, Ordering::Relaxed);
    }

    // ----- automorphisms -----

    fn galois_key(
        &self,
        g: u64,
        level: usize,
        op: &'static str,
        what: impl Fn() -> String,
    ) -> Result<&SwitchingKey> {
        let key = self
            .keys
            .galois_key(g)
            .map(|k| &k.key)
            .ok_or_else(|| Error::MissingKey { op, what: what() })?;
        key_reaches(key, level, op, what)
    }

    /// Applies X -> X^g and switches back to s.
    pub fn apply_galois(&self, ct: &Ciphertext, g: u64) -> Result<Ciphertext> {
        self.check(ct, "rotate")?;
        if ct.degree() != 1 {
            return Err(Error::Degree {
                op: "rotate",
                degree: ct.degree(),
                expected: 1,
            });
        }
        if g == 1 {
            return Ok(ct.clone());
        }
        let key = self.galois_key(g, ct.level, "rotate", || {
            format!("Galois key for element {g}")
        })?;
        // The key switches c_1 to sigma_g^{-1}(s) before the automorphism (see GaloisKey).
        let dec = keyswitch::decompose(&self.params, ct.level, &ct.polys()[1]);
        self.counters.decomp.fetch_add(1, Ordering::Relaxed);
        Ok(self.switch_galois(ct, &dec, g, key))
    }

    /// Galois element of a rotation by `steps` within `slots` slots: 1 (no rotation) when
    /// `steps` is a multiple of `slots`, else the ring's element for `steps`, which reduces
    /// modulo N/2 exactly as key generation does. With fewer slots than N/2 the message is
    /// periodic with period `slots`, so rotating by `steps` modulo N/2 is the same rotation,
    /// and `rotate(ct, -1)` asks for the key `gen_rotation_key(sk, -1)` made (one rule for
    /// both sides; reducing modulo the slot count here asked for a key never generated).
    fn rotation_element(&self, steps: i64, slots: usize) -> u64 {
        if steps.rem_euclid(slots as i64) == 0 {
            return 1;
        }
        self.params.ring().galois_element_for_rotation(steps)
    }

    /// Rotates the slots left by `steps` (negative: right).
    pub fn rotate(&self, ct: &Ciphertext, steps: i64) -> Result<Ciphertext> {
        let g = self.rotation_element(steps, ct.slots);
        if g == 1 {
            return Ok(ct.clone());
        }
        self.check_rotation_key(g, steps, ct.level)?;
        self.apply_galois(ct, g)
    }

    fn check_rotation_key(&self, g: u64, steps: i64, level: usize) -> Result<()> {
        self.galois_key(g, level, "rotate", || {
            format!("rotation key for step {steps} (Galois element {g})")
        })
        .map(|_| ())
    }

    /// Complex conjugation of every slot.
    pub fn conjugate(&self, ct: &Ciphertext) -> Result<Ciphertext> {
        let g = self.params.ring().galois_element_conjugate();
        self.galois_key(g, ct.level, "conjugate", || "conjugation key".into())?;
        self.apply_galois(ct, g)
    }

    /// ModUp of c_1 once, for [`Self::rotate_hoisted_with`].
    pub fn decompose(&self, ct: &Ciphertext) -> Result<Decomposition> {
        self.check(ct, "decompose")?;
        if ct.degree() != 1 {
            return Err(Error::Degree {
                op: "decompose",
                degree: ct.degree(),
                expected: 1,
            });
        }
        self.counters.decomp.fetch_add(1, Ordering::Relaxed);
        Ok(keyswitch::decompose(&self.params, ct.level, &ct.polys()[1]))
    }

    /// Rotation reusing a decomposition of the same ciphertext's c_1 (hoisting).
    pub fn rotate_hoisted_with(
        &self,
        ct: &Ciphertext,
        dec: &Decomposition,
        steps: i64,
    ) -> Result<Ciphertext> {
        let g = self.rotation_element(steps, ct.slots);
        if g == 1 {
            return Ok(ct.clone());
        }
        let key = self.galois_key(g, dec.level, "rotate", || {
            format!("rotation key for step {steps} (Galois element {g})")
        })?;
        if dec.level != ct.level {
            return Err(Error::InvalidLevel {
                op: "rotate_hoisted",
                level: dec.level,
                max: ct.level,
            });
        }
        Ok(self.switch_galois(ct, dec, g, key))
    }

    /// A hoisted rotation left in the extended basis Q_level * P (no ModDown), for double
    /// hoisting: `[sigma_g(P c_0 + u_0), sigma_g(u_1)]` with `(u_0, u_1)` the key switch of
    /// the decomposed c_1. Counted as a rotation.
    pub fn rotate_hoisted_qp(
        &self,
        c0: &Poly<Ntt>,
        dec: &Decomposition,
        steps: i64,
    ) -> Result<[Poly<Ntt>; 2]> {
        let g = self.params.ring().galois_element_for_rotation(steps);
        let key = self.galois_key(g, dec.level, "rotate", || {
            format!("rotation key for step {steps} (Galois element {g})")
        })?;
        if c0.basis() != self.params.basis_q(dec.level) {
            return Err(Error::InvalidLevel {
                op: "rotate_hoisted",
                level: c0.basis().q.saturating_sub(1),
                max: dec.level,
            });
        }
        self.counters.rot.fetch_add(1, Ordering::Relaxed);
        Ok(keyswitch::automorphism_hoisted_qp(
            &self.params,
            c0,
            dec,
            key,
            g,
        ))
    }

    /// Rotations of one ciphertext by many steps sharing one decomposition (hoisting).
    pub fn rotate_hoisted(&self, ct: &Ciphertext, steps: &[i64]) -> Result<Vec<Ciphertext>> {
        for &s in steps {
            let g = self.rotation_element(s, ct.slots);
            if g != 1 {
                self.check_rotation_key(g, s, ct.level)?;
            }
        }
        let dec = self.decompose(ct)?;
        steps
            .iter()
            .map(|&s| self.rotate_hoisted_with(ct, &dec, s))
            .collect()
    }

    /// (sigma_g(c_0 + u_0), sigma_g(u_1)) with (u_0, u_1) the switched c_1 (from its
    /// decomposition `dec`), in one fused pass per tower.
    fn switch_galois(
        &self,
        ct: &Ciphertext,
        dec: &Decomposition,
        g: u64,
        key: &SwitchingKey,
    ) -> Ciphertext {
        let finish = Finish {
            add: [Some(&ct.polys()[0]), None],
            galois: Some(g),
            rescale: false,
        };
        let [c0, c1] = keyswitch::switch_finish(&self.params, dec, key, finish);
        self.counters.rot.fetch_add(1, Ordering::Relaxed);
        Ciphertext::new(
            self.params.clone(),
            vec![c0, c1],
            ct.level,
            ct.scale,
            ct.slots,
        )
    }

    /// Sum over `count` (a power of two) blocks: slot i gets sum_{k<count} slot(i + k*stride).
    /// log2(count) rotations by stride, 2*stride, ...
    pub fn inner_sum(&self, ct: &Ciphertext, stride: i64, count: usize) -> Result<Ciphertext> {
        if !count.is_power_of_two() {
            return Err(Error::InvalidArgument {
                op: "inner_sum",
                msg: format!("count {count} is not a power of two"),
            });
        }
        let mut acc = ct.clone();
        let mut step = stride;
        let mut c = 1;
        while c < count {
            let r = self.rotate(&acc, step)?;
            self.add_assign(&mut acc, &r)?;
            step *= 2;
            c *= 2;
        }
        Ok(acc)
    }

    /// Replication: slot i gets sum_{k<count} slot(i - k*stride) (inner sum with right
    /// rotations): a value alone in its block is copied into the next count-1 blocks.
    pub fn replicate(&self, ct: &Ciphertext, stride: i64, count: usize) -> Result<Ciphertext> {
        self.inner_sum(ct, -stride, count)
    }

    /// Rotation steps needed by [`Self::inner_sum`].
    pub fn inner_sum_steps(stride: i64, count: usize) -> Vec<i64> {
        let mut steps = Vec::new();
        let mut c = 1;
        let mut step = stride;
        while c < count {
            steps.push(step);
            step *= 2;
            c *= 2;
        }
        steps
    }

    /// ct * X^k (a monomial; k may be negative, X^N = -1).
    pub fn mul_by_monomial(&self, ct: &Ciphertext, k: i64) -> Result<Ciphertext> {
        self.check(ct, "mul_by_monomial")?;
        let ring = self.params.ring();
        let n = ring.n() as i64;
        let e = k.rem_euclid(2 * n);
        let mut coeffs = vec![0i64; n as usize];
        if e < n {
            coeffs[e as usize] = 1
        } else {
            coeffs[(e - n) as usize] = -1
        }
        let mono =
            Poly::<Coeff>::from_signed(ring, self.params.basis_q(ct.level), &coeffs).into_ntt(ring);
        let mut out = ct.clone();
        for p in out.polys_mut() {
            p.mul_assign(ring, &mono);
        }
        Ok(out)
    }
}

/// `key` if it can switch a ciphertext at `level` (keys may stop below the top of the
/// chain; see `SwitchingKey`), else a missing-key error naming the level.
fn key_reaches<'k>(
    key: &'k SwitchingKey,
    level: usize,
    op: &'static str,
    what: impl Fn() -> String,
) -> Result<&'k SwitchingKey> {
    if key.max_level() < level {
        return Err(Error::MissingKey {
            op,
            what: format!(
                "{} at level {level} (the key reaches level {})",
                what(),
                key.max_level()
            ),
        });
    }
    Ok(key)
}

fn check_finite(c: Complex64, op: &'static str) -> Result<()> {
    if c.re.is_finite() && c.im.is_finite() {
        Ok(())
    } else {
        Err(Error::InvalidArgument {
            op,
            msg: format!("constant {c} is not finite"),
        })
    }
}
