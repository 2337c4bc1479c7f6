//! Parameter choice and rotation keys for a schedule: both sides derive them from the same
//! manifest, so a bundle says everything the server needs.

use crate::error::{Result, TrainError};
use crate::layout::{Geometry, Schedule};
use std::sync::Arc;
use volley_ckks::{Params, ParamsLiteral, SecretDistribution, params::security_bound};

/// Bits of the base prime q_0 (room for the decrypted weights' magnitude above the scale).
const BASE_BITS: u32 = 60;
/// Bits of every rescaling prime and of the scale.
const LEVEL_BITS: u32 = 40;
/// Bits of each special prime.
const SPECIAL_BITS: u32 = 60;

/// Chooses the smallest ring (N = 2^15, else 2^16; the paper schedule uses the paper's 2^16)
/// and the fewest key-switching digits that hold `schedule`'s depth for `iterations`
/// within the 128-bit bound. Fewer digits means smaller keys and cheaper key switches.
pub fn choose_params(schedule: Schedule, iterations: usize) -> Result<(String, ParamsLiteral)> {
    if iterations == 0 {
        return Err(TrainError::Data("at least one iteration is needed".into()));
    }
    let levels = schedule.levels_needed(iterations);
    let rings: &[u32] = match schedule {
        Schedule::Diagonal => &[15, 16],
        Schedule::Paper => &[16],
    };
    for &log_n in rings {
        let bound = security_bound(log_n).unwrap_or(0) as f64;
        let log_q = BASE_BITS as f64 + (LEVEL_BITS as usize * levels) as f64;
        for dnum in 1..=levels + 1 {
            let alpha = (levels + 1).div_ceil(dnum);
            let digit_bits = BASE_BITS as usize + LEVEL_BITS as usize * (alpha - 1);
            let k = digit_bits.div_ceil(SPECIAL_BITS as usize);
            if log_q + (k * SPECIAL_BITS as usize) as f64 <= bound {
                let mut q = vec![BASE_BITS];
                q.extend(std::iter::repeat_n(LEVEL_BITS, levels));
                let lit = ParamsLiteral {
                    log_n,
                    log_q: q,
                    log_p: vec![SPECIAL_BITS; k],
                    dnum,
                    secret: SecretDistribution::Ternary,
                    log_scale: LEVEL_BITS,
                    sigma: 3.19,
                };
                return Ok((format!("{}-n{log_n}-L{levels}", schedule.name()), lit));
            }
        }
    }
    let max = (1..64)
        .take_while(|&t| choose_params_fits(schedule, t))
        .last()
        .unwrap_or(0);
    Err(TrainError::Capacity(format!(
        "{iterations} iterations of the {} schedule need {levels} levels, more than 128-bit-secure parameters hold without bootstrapping (at most {max} iterations)",
        schedule.name()
    )))
}

fn choose_params_fits(schedule: Schedule, iterations: usize) -> bool {
    let levels = schedule.levels_needed(iterations);
    let log_n = 16;
    let bound = security_bound(log_n).unwrap_or(0) as usize;
    let q = BASE_BITS as usize + LEVEL_BITS as usize * levels;
    (1..=levels + 1).any(|dnum| {
        let alpha = (levels + 1).div_ceil(dnum);
        let k = (BASE_BITS as usize + LEVEL_BITS as usize * (alpha - 1))
            .div_ceil(SPECIAL_BITS as usize);
        q + k * SPECIAL_BITS as usize <= bound
    })
}

/// Builds and checks the parameters of a literal (always the 128-bit check).
pub fn build_params(lit: &ParamsLiteral) -> Result<Arc<Params>> {
    Ok(Params::new(lit.clone())?)
}

/// Rotation steps the server needs for a schedule and geometry.
pub fn rotation_steps(schedule: Schedule, g: &Geometry) -> Vec<i64> {
    let mut steps = Vec::new();
    match schedule {
        Schedule::Diagonal => {
            let n_o = g.diagonals as i64;
            // X rotated right by t for t < n_o (precomputed once, hoisted).
            steps.extend((1..n_o).map(|t| -t));
            // Fold over j = k mod n_o (left) and replicate the error back (right).
            let mut s = n_o;
            while s < g.d_hat as i64 {
                steps.push(s);
                steps.push(-s);
                s *= 2;
            }
            // Fold over the rows of a ciphertext.
            let mut s = g.d_hat as i64;
            while s < g.slots as i64 {
                steps.push(s);
                s *= 2;
            }
        }
        Schedule::Paper => {
            // HEAAN's key set: powers of two, left and right; other rotations compose them.
            let mut s = 1i64;
            while s < g.slots as i64 {
                steps.push(s);
                steps.push(-s);
                s *= 2;
            }
        }
    }
    steps.sort_unstable();
    steps.dedup();
    steps
}
