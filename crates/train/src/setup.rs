//! Parameter choice, the level plan of a run and rotation keys for a schedule: both sides
//! derive them from the same manifest, so a bundle says everything the server needs.

use crate::error::{Result, TrainError};
use crate::layout::{Geometry, Schedule};
use std::sync::Arc;
use volley_ckks::circuits::Bootstrapper;
use volley_ckks::{Evaluator, Params, ParamsLiteral, SecretDistribution, params::security_bound};

/// The bootstrapping preset (`volley_ckks::params`): 10 levels of 2^40 after each bootstrap.
pub const BOOTSTRAP_PRESET: &str = "boot16";

/// Parameters for a run, and whether the server bootstraps.
#[derive(Clone, Debug)]
pub struct ParamsChoice {
    /// Parameter name (generated or the preset's).
    pub name: String,
    /// The literal.
    pub literal: ParamsLiteral,
    /// True when the run refreshes its state by bootstrapping (any number of iterations).
    pub bootstrapping: bool,
}

/// Parameters for `iterations` of `schedule`. The diagonal schedule runs without
/// bootstrapping while its whole depth fits in an N = 2^15 chain (up to 4 iterations: about
/// 6 s for the paper's 2 iterations, no bootstrapping keys to upload), and otherwise on the
/// [`BOOTSTRAP_PRESET`] with a refresh every two iterations, for any number of iterations.
/// The paper schedule is kept as the paper ran it, without bootstrapping.
/// With `inference`, a leveled chain keeps one level past training so that the model can
/// score encrypted rows (`inference`, depth 1); runs with bootstrapping always do (the
/// trainer refreshes the model for it). Off by default: the level costs a leveled run about
/// a quarter of its time (paper setting, 2 iterations: 4.2 s -> 6.4 s, 1.38 -> 1.79 GB).
pub fn choose_run_params(
    schedule: Schedule,
    iterations: usize,
    inference: bool,
) -> Result<ParamsChoice> {
    if iterations == 0 {
        return Err(TrainError::Data("at least one iteration is needed".into()));
    }
    if schedule == Schedule::Diagonal {
        let spare = usize::from(inference);
        if let Ok((name, literal)) = leveled_params(schedule, iterations, spare, &[15]) {
            return Ok(ParamsChoice {
                name,
                literal,
                bootstrapping: false,
            });
        }
        let literal = ParamsLiteral::preset(BOOTSTRAP_PRESET)
            .ok_or_else(|| TrainError::Data(format!("no preset {BOOTSTRAP_PRESET}")))?;
        return Ok(ParamsChoice {
            name: BOOTSTRAP_PRESET.into(),
            literal,
            bootstrapping: true,
        });
    }
    let (name, literal) = choose_params(schedule, iterations)?;
    Ok(ParamsChoice {
        name,
        literal,
        bootstrapping: false,
    })
}

/// Where the levels of a run go.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LevelPlan {
    /// Level of the weights at the start of each block of iterations (the initial weights'
    /// level, and the level a refresh returns them at).
    pub start: usize,
    /// Levels one iteration consumes.
    pub per_iteration: usize,
    /// Iterations between refreshes (bootstrapping), or `None` without bootstrapping.
    pub per_block: Option<usize>,
}

impl LevelPlan {
    /// The plan of `iterations` of `schedule` on `params`, with or without bootstrapping
    /// (the refreshed level comes from the bootstrapper of `g`'s packed state).
    pub fn new(
        schedule: Schedule,
        params: &Params,
        g: &Geometry,
        bootstrapping: bool,
        iterations: usize,
    ) -> Result<Self> {
        let per_iteration = schedule.levels_per_iteration();
        if !bootstrapping {
            let needed = schedule.levels_needed(iterations);
            let have = params.max_level();
            if needed > have {
                return Err(TrainError::Capacity(format!(
                    "{iterations} iterations of the {} schedule need {needed} levels but these parameters have {have} and no bootstrapping; generate keys for {iterations} iterations",
                    schedule.name()
                )));
            }
            return Ok(Self {
                start: have,
                per_iteration,
                per_block: None,
            });
        }
        if schedule != Schedule::Diagonal {
            return Err(TrainError::Capacity(
                "bootstrapping is implemented for the diagonal schedule only".into(),
            ));
        }
        let budget = Bootstrapper::plan(params, &crate::refresh::bootstrap_config(g)?)?;
        // The refresh spends one level to unpack after bootstrapping, and each block must
        // leave one level to pack (or for the final weight combination).
        let start = budget.output.saturating_sub(1);
        let per_block = start.saturating_sub(1) / per_iteration;
        if per_block == 0 {
            return Err(TrainError::Capacity(format!(
                "bootstrapping leaves {} levels; an iteration needs {per_iteration} plus one to pack and one to unpack",
                budget.output
            )));
        }
        Ok(Self {
            start,
            per_iteration,
            per_block: Some(per_block),
        })
    }

    /// The level a ciphertext group is encrypted at: where the server first uses it.
    /// `xb` (X diag(b)) first enters the gradient, three levels below the weights.
    pub fn group_level(&self, group: &str) -> usize {
        match group {
            "xb" => self.start.saturating_sub(3),
            _ => self.start,
        }
    }

    /// Bootstraps a run of `iterations` makes.
    pub fn bootstraps(&self, iterations: usize) -> usize {
        self.per_block
            .map_or(0, |k| iterations.div_ceil(k).saturating_sub(1))
    }
}

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
    let rings: &[u32] = match schedule {
        Schedule::Diagonal => &[15, 16],
        Schedule::Paper => &[16],
    };
    leveled_params(schedule, iterations, 0, rings)
}

/// [`choose_params`] over the given rings (log N).
fn leveled_params(
    schedule: Schedule,
    iterations: usize,
    spare: usize,
    rings: &[u32],
) -> Result<(String, ParamsLiteral)> {
    if iterations == 0 {
        return Err(TrainError::Data("at least one iteration is needed".into()));
    }
    let levels = schedule.levels_needed(iterations) + spare;
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
            let n_o = g.diagonals;
            // X rotated right by t for t < n_o (precomputed once, hoisted).
            steps.extend((1..n_o as i64).map(|t| -t));
            // The server's folds, as the evaluator lists them: over j = k mod n_o (left),
            // the error replicated back (right), over the rows of a ciphertext (left; also
            // the refresh's row rotations, u d_hat for u < n_o, composed from these).
            let per_row = g.d_hat / n_o;
            steps.extend(Evaluator::inner_sum_steps(n_o as i64, per_row));
            steps.extend(Evaluator::inner_sum_steps(-(n_o as i64), per_row));
            steps.extend(Evaluator::inner_sum_steps(g.d_hat as i64, g.rows_per_ct));
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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// `inference` adds exactly one level to a leveled chain (within the 128-bit bound), up
    /// to the 4 leveled iterations; above them bootstrapping is chosen either way.
    #[test]
    fn inference_keeps_one_more_level_in_leveled_runs() {
        for iters in 1..=4 {
            let plain = choose_run_params(Schedule::Diagonal, iters, false).unwrap();
            let kept = choose_run_params(Schedule::Diagonal, iters, true).unwrap();
            assert!(!plain.bootstrapping && !kept.bootstrapping, "{iters}");
            assert_eq!(
                plain.literal.log_q.len(),
                Schedule::Diagonal.levels_needed(iters) + 1
            );
            assert_eq!(
                kept.literal.log_q.len(),
                plain.literal.log_q.len() + 1,
                "{iters}"
            );
            assert!(
                build_params(&kept.literal).is_ok(),
                "{iters}: within the bound"
            );
        }
        for inference in [false, true] {
            let c = choose_run_params(Schedule::Diagonal, 5, inference).unwrap();
            assert!(c.bootstrapping && c.name == BOOTSTRAP_PRESET);
        }
    }
}
