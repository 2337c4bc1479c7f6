//! Refreshing the diagonal schedule's state with bootstrapping, so that a run has any
//! number of iterations on one parameter set.
//!
//! The state is the n_o weight diagonals of V_t and of V_{t-1} (see [`crate::layout`]), each
//! replicated over the r rows of a ciphertext: 2 n_o ciphertexts but only 2 n_o d̂ distinct
//! real values. Bootstrapping each of them would cost 2 n_o bootstraps; instead the refresh
//!
//! 1. **packs** them into one ciphertext with one plaintext product per diagonal and a single
//!    rescale (one level): row i keeps diagonal i mod n_o, V in the real part and V_{t-1} in
//!    the imaginary part, scaled by 1 / [`WEIGHT_RANGE`]. The result repeats every n_o rows,
//!    so it *is* a sparse ciphertext of n_b = n_o d̂ slots (`Ciphertext::set_slots`);
//! 2. **bootstraps** it once, sparse (n_b = 8192 for MNIST's 10 classes and 401 columns,
//!    a quarter of the slots, which is cheaper and more precise than a full-slot bootstrap);
//! 3. **unpacks** with one conjugation (real and imaginary parts), the row rotations by
//!    u d̂ for u < n_o (a binary tree of the row-folding keys the iterations have anyway: no
//!    key of its own), and per diagonal one masked sum of those rotations with the
//!    constants folded into the masks (one level).
//!
//! So a refresh spends one level before and one after the bootstrap, and two iterations of
//! four levels fit between refreshes at the `boot16` preset (ten levels after bootstrapping).
//! Measured alternatives are in the README ("Bootstrapped training").

use crate::error::{Result, TrainError};
use crate::layout::Geometry;
use std::sync::Arc;
use volley_ckks::circuits::{BootstrapConfig, Bootstrapper};
use volley_ckks::{
    Ciphertext, Complex64, EncapsulationKeys, Encoder, Evaluator, Params, Plaintext,
};

/// Weights are divided by this before bootstrapping and multiplied back after (folded into
/// the pack and unpack masks, no level). Bootstrapping's sine approximation is accurate for
/// values of magnitude up to about 1 (its error grows with the cube of the value); the
/// paper's algorithm on MNIST features reaches |w| = 1.4 after 50 iterations and 2.6 after
/// 100, so 4 leaves a margin at the cost of 2 bits of absolute precision.
pub const WEIGHT_RANGE: f64 = 4.0;

/// The refresh's bootstrapping message ratio, `log2(q_0 / Delta)` (see `bootstrap_config`).
pub const REFRESH_LOG_MESSAGE_RATIO: u32 = 12;

/// Slots of the packed state: n_o d̂ (one row of d̂ per diagonal). Errors if they do not
/// fit in a ciphertext (more diagonals than rows per ciphertext).
pub fn packed_slots(g: &Geometry) -> Result<usize> {
    let n_b = g.diagonals * g.d_hat;
    if n_b > g.slots || !n_b.is_power_of_two() {
        return Err(TrainError::Capacity(format!(
            "bootstrapping packs the {} weight diagonals of {} slots into one ciphertext of {} slots: too many classes for these columns",
            g.diagonals, g.d_hat, g.slots
        )));
    }
    Ok(n_b)
}

/// The bootstrapping configuration of a geometry (sparse, [`packed_slots`]).
pub fn bootstrap_config(g: &Geometry) -> Result<BootstrapConfig> {
    let mut config = BootstrapConfig::new(packed_slots(g)?);
    // The packed weights reach |w| / WEIGHT_RANGE = 2.7 (and V + i V_{t-1} more), with
    // much of their mass in few coefficients: the sine's cubic term needs the headroom of
    // a 2^12 message ratio rather than the default 2^10 (see `EvalModConfig`).
    config.eval_mod.log_message_ratio = REFRESH_LOG_MESSAGE_RATIO;
    Ok(config)
}

/// The server's refresher: the bootstrapper (its matrices encoded) and the unpack masks.
pub(crate) struct Refresher {
    btp: Bootstrapper,
    g: Geometry,
    /// Encodes the pack masks at each refresh (their scale follows the weights').
    enc: Encoder,
    /// Per row class k (rows i with i = k mod n_o): the real-part mask (value
    /// WEIGHT_RANGE / 2 on those rows) and the imaginary-part mask (-i WEIGHT_RANGE / 2), at
    /// the bootstrapping output level with scale q_out.
    unpack_masks: Vec<(Plaintext, Plaintext)>,
}

impl Refresher {
    /// Builds the bootstrapper for `g` (encoding its matrices: seconds) and the masks.
    pub(crate) fn new(params: &Arc<Params>, g: &Geometry) -> Result<Self> {
        let btp = Bootstrapper::new(params.clone(), bootstrap_config(g)?)?;
        let enc = Encoder::new(params.clone());
        let out = btp.output_level();
        let q_out = params.ring().q(out).value() as f64;
        let half = WEIGHT_RANGE / 2.0;
        let unpack_masks = (0..g.diagonals)
            .map(|k| -> Result<(Plaintext, Plaintext)> {
                let re = row_class_mask(g, k, Complex64::new(half, 0.0));
                let im = row_class_mask(g, k, Complex64::new(0.0, -half));
                Ok((
                    enc.encode_complex(&re, out, q_out, g.slots)?,
                    enc.encode_complex(&im, out, q_out, g.slots)?,
                ))
            })
            .collect::<Result<_>>()?;
        Ok(Self {
            btp,
            g: *g,
            enc,
            unpack_masks,
        })
    }

    /// The level the state comes back at (one below the bootstrapper's output).
    pub(crate) fn refreshed_level(&self) -> usize {
        self.btp.output_level() - 1
    }

    /// Bootstraps `(v, v_prev)` (n_o diagonals each, `v` at level >= 1, `v_prev` at or above
    /// it) and returns them at [`Self::refreshed_level`] with scale `scale`; adds the seconds
    /// of packing, bootstrapping and unpacking to `seconds`.
    pub(crate) fn refresh(
        &self,
        eval: &Evaluator,
        keys: &EncapsulationKeys,
        v: &[Ciphertext],
        v_prev: &[Ciphertext],
        scale: f64,
        seconds: &mut [f64; 3],
    ) -> Result<(Vec<Ciphertext>, Vec<Ciphertext>)> {
        let t = std::time::Instant::now();
        let packed = self.pack(eval, v, v_prev, scale)?;
        seconds[0] += t.elapsed().as_secs_f64();
        let t = std::time::Instant::now();
        let fresh = self.btp.bootstrap(eval, keys, &packed)?;
        seconds[1] += t.elapsed().as_secs_f64();
        let t = std::time::Instant::now();
        let out = self.unpack(eval, fresh)?;
        seconds[2] += t.elapsed().as_secs_f64();
        Ok(out)
    }

    /// Q = sum_t mask_t (v_t + i v_prev_t) / WEIGHT_RANGE, one level below `v`, at `scale`,
    /// viewed as a ciphertext of n_b slots.
    fn pack(
        &self,
        eval: &Evaluator,
        v: &[Ciphertext],
        v_prev: &[Ciphertext],
        scale: f64,
    ) -> Result<Ciphertext> {
        let g = &self.g;
        let params = eval.params();
        let level = v
            .first()
            .map(Ciphertext::level)
            .ok_or_else(|| TrainError::Data("no weights to refresh".into()))?;
        if level == 0 {
            return Err(TrainError::Capacity(
                "refresh: the weights are at level 0, one level is needed to pack them".into(),
            ));
        }
        let q = params.ring().q(level).value() as f64;
        let c = 1.0 / WEIGHT_RANGE;
        let mut terms = Vec::with_capacity(2 * v.len());
        for (t, (vt, pt)) in v.iter().zip(v_prev).enumerate() {
            for (ct, value) in [(vt, Complex64::new(c, 0.0)), (pt, Complex64::new(0.0, c))] {
                let ct = eval.drop_to_level(ct, level)?;
                // Each product lands on scale * q, so the sum needs no correction.
                let mask = self.enc.encode_complex(
                    &row_class_mask(g, t, value),
                    level,
                    scale * q / ct.scale(),
                    g.slots,
                )?;
                terms.push((ct, mask));
            }
        }
        let refs: Vec<(&Ciphertext, &Plaintext)> = terms.iter().map(|(c, p)| (c, p)).collect();
        let mut packed = eval.dot_plain(&refs)?;
        eval.rescale_assign(&mut packed)?;
        packed.set_scale(scale);
        packed.set_slots(packed_slots(g)?)?;
        Ok(packed)
    }

    /// From the bootstrapped Q (n_b slots) back to the replicated diagonals, one level down.
    fn unpack(
        &self,
        eval: &Evaluator,
        mut fresh: Ciphertext,
    ) -> Result<(Vec<Ciphertext>, Vec<Ciphertext>)> {
        let g = &self.g;
        let n_o = g.diagonals;
        fresh.set_slots(g.slots)?;
        // 2 Re(Q) and 2i Im(Q), both repeating every n_o rows.
        let conj = eval.conjugate(&fresh)?;
        let parts = [eval.add(&fresh, &conj)?, eval.sub(&fresh, &conj)?];
        // rot(part, u d̂) for u < n_o: u - 2^k from the highest bit, with the row-folding
        // keys (d̂ 2^k) only.
        let rotations = |part: &Ciphertext| -> Result<Vec<Ciphertext>> {
            let mut out = vec![part.clone()];
            for u in 1..n_o {
                let high = 1usize << (usize::BITS - 1 - u.leading_zeros());
                let next = eval.rotate(&out[u - high], (high * g.d_hat) as i64)?;
                out.push(next);
            }
            Ok(out)
        };
        let [re, im] = parts;
        let (re_rot, im_rot) = rayon::join(|| rotations(&re), || rotations(&im));
        let (re_rot, im_rot) = (re_rot?, im_rot?);
        // Diagonal t at row i is Q's row class t, which rot(Q, u d̂) brings to the rows
        // i = t - u (mod n_o).
        let gather = |t: usize, rot: &[Ciphertext], imaginary: bool| -> Result<Ciphertext> {
            let terms: Vec<(&Ciphertext, &Plaintext)> = rot
                .iter()
                .enumerate()
                .map(|(u, r)| {
                    let (re_mask, im_mask) = &self.unpack_masks[(t + n_o - u) % n_o];
                    (r, if imaginary { im_mask } else { re_mask })
                })
                .collect();
            let mut out = eval.dot_plain(&terms)?;
            eval.rescale_assign(&mut out)?;
            Ok(out)
        };
        use rayon::prelude::*;
        let v: Vec<Ciphertext> = (0..n_o)
            .into_par_iter()
            .map(|t| gather(t, &re_rot, false))
            .collect::<Result<_>>()?;
        let v_prev: Vec<Ciphertext> = (0..n_o)
            .into_par_iter()
            .map(|t| gather(t, &im_rot, true))
            .collect::<Result<_>>()?;
        Ok((v, v_prev))
    }

    /// Slots of each bootstrap (the packed state's), for reports.
    pub(crate) fn slots(&self) -> usize {
        self.btp.config().slots
    }
}

/// `value` on the slots of rows i with i = k (mod n_o), 0 elsewhere.
fn row_class_mask(g: &Geometry, k: usize, value: Complex64) -> Vec<Complex64> {
    (0..g.slots)
        .map(|s| {
            if (s / g.d_hat) % g.diagonals == k {
                value
            } else {
                Complex64::new(0.0, 0.0)
            }
        })
        .collect()
}
