//! CKKS bootstrapping: a ciphertext at the bottom of the chain comes back near the top with
//! the same message (Cheon-Han-Kim-Kim-Song 2018), in the variant of Lattigo's
//! `circuits/ckks/bootstrapping` (Bossuat-Mouchet-Troncoso-Pastoriza-Hubaux 2021, 2022):
//!
//! 1. **Scale to the message ratio.** The input (any level, dropped to 0) is multiplied by the
//!    integer `k = floor(q_0 / (2^log_message_ratio * scale))`, exactly, so that its
//!    coefficients fill `q_0 / 2^log_message_ratio`: small enough for the sine to be nearly
//!    linear on them, large enough that EvalMod's absolute error stays small next to them.
//! 2. **Sparse-secret encapsulation** (Bossuat-Troncoso-Pastoriza-Hubaux 2022): a key switch
//!    over `q_0 p` only moves the ciphertext to an ephemeral secret of Hamming weight 32.
//! 3. **ModRaise**: the residues modulo `q_0` are lifted (centred) to the whole chain; the
//!    ciphertext now decrypts to `m + q_0 I` with `|I| <= 16` except with probability
//!    `2^-138` (see [`EvalModConfig::k`]). A key switch returns it to the dense secret.
//! 4. **SubSum** (fewer slots than N/2 only): `log2(N / 2n)` rotations keep the coefficients
//!    of the slot subring and multiply them by `N / 2n`.
//! 5. **CoeffsToSlots**: the inverse special FFT, factored into `cts_levels` sparse matrices
//!    (see [`dft`]), puts the coefficients in the slots; the real and imaginary parts are
//!    separated with one conjugation. With full slots they become two real ciphertexts; with
//!    fewer, the ciphertext is read with `2n` slots and holds `[Re | Im]`, so that EvalMod
//!    runs once.
//! 6. **EvalMod** (see [`mod1`]) removes `q_0 I` slot-wise.
//! 7. **SlotsToCoeffs**: the forward FFT in `stc_levels` factors, low in the chain, where
//!    key switches are cheapest.
//!
//! **Scale bookkeeping, no level spent on constants** (Lattigo's tricks): the `1 / q_0`, the
//! `1 / K` of EvalMod's interval, the FFT's `1 / n`, SubSum's `2n / N` and the halves of the
//! real/imaginary split are folded into the CoeffsToSlots matrices; `q_0 / 2 pi` and the
//! return to the input's scale into SlotsToCoeffs and EvalMod's target scale. Linear
//! transforms keep the scale metadata, so metadata is set where the folded constants
//! change what the integers mean. The result is at the input's scale exactly.
//!
//! **Real vectors**: [`Bootstrapper::bootstrap_real_pair`] bootstraps two real vectors as
//! one complex one (`a + i b`), so each pays half of a bootstrap.

pub mod dft;
pub mod mod1;

pub use mod1::{EvalMod, EvalModConfig};

use crate::circuits::linear_transform::{EncodedLinearTransform, LinearTransform};
use crate::ckks::encoder::Encoder;
use crate::ckks::evaluator::Evaluator;
use crate::error::{Error, Result};
use crate::params::Params;
use crate::ring::{Coeff, Ntt, Poly};
use crate::rlwe::ciphertext::Ciphertext;
use crate::rlwe::keys::{EncapsulationKeys, EvaluationKeys};
use crate::serialization::{encapsulation_keys_size, evaluation_keys_size_at};
use dft::Diagonals;
use num_complex::Complex64;
use rayon::prelude::*;
use std::f64::consts::PI;
use std::sync::Arc;

const OP: &str = "bootstrap";

/// What a bootstrapper is built for.
#[derive(Clone, Debug, PartialEq)]
pub struct BootstrapConfig {
    /// Slot count of the ciphertexts it takes: N/2, or a power of two below it.
    pub slots: usize,
    /// Levels of CoeffsToSlots (its DFT factors); more levels, fewer rotations per level.
    pub cts_levels: usize,
    /// Levels of SlotsToCoeffs.
    pub stc_levels: usize,
    /// EvalMod's parameters.
    pub eval_mod: EvalModConfig,
    /// Evaluate the DFT factors with double hoisting (see `LinearTransform`).
    pub double_hoisting: bool,
    /// Keep the DFT diagonals compact and rebuild them one prime at a time inside each
    /// bootstrap (`LinearTransform::with_compact_diagonals`). On by default: measured at
    /// boot16, 2^13 slots, 2 threads, alternating: 7.7 GB peak instead of 10.1 GB, for about
    /// 5 % more time (the NTTs of each use).
    pub compact_matrices: bool,
}

impl BootstrapConfig {
    /// Defaults for `slots` slots: CoeffsToSlots in 3 levels, SlotsToCoeffs in 3, the
    /// default [`EvalModConfig`] (9 levels): 15 levels in all (the `boot16` preset's layout).
    /// Below 2^9 slots the message ratio is `2^12` instead of `2^10`: the `2n` coefficients
    /// of `n` slots have an rms of `|z| / sqrt(2n)`, so with few slots every one of them
    /// carries much of the message, and the sine's cubic term rather than the noise sets
    /// the precision (measured at N = 2^10, 8 slots: 20.4 bits mean at `2^10`).
    pub fn new(slots: usize) -> Self {
        let mut eval_mod = EvalModConfig::default();
        if slots < 1 << 9 {
            eval_mod.log_message_ratio = 12;
        }
        Self {
            slots,
            cts_levels: 3,
            stc_levels: 3,
            eval_mod,
            double_hoisting: false,
            compact_matrices: true,
        }
    }
}

/// Where the levels go: the bootstrapper's depth budget.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LevelBudget {
    /// Level of ModRaise's output (the top of the chain).
    pub top: usize,
    /// Levels of CoeffsToSlots.
    pub cts: usize,
    /// Levels of EvalMod.
    pub eval_mod: usize,
    /// Levels of SlotsToCoeffs.
    pub stc: usize,
    /// The level the result comes back at: `top - cts - eval_mod - stc`.
    pub output: usize,
}

impl LevelBudget {
    /// Total depth of the circuit.
    pub fn depth(&self) -> usize {
        self.cts + self.eval_mod + self.stc
    }

    /// The level EvalMod starts at (CoeffsToSlots' output).
    pub fn eval_mod_input(&self) -> usize {
        self.top - self.cts
    }
}

/// The switching keys bootstrapping needs, each with the highest level it is used at. A key
/// serves ciphertexts up to its own level (see `SwitchingKey`), and its size grows with that
/// level: SlotsToCoeffs runs low in the chain (levels 11 to 13 of `boot16`), so the rotation
/// keys only it uses are about a third of the size of CoeffsToSlots' (level 25); EvalMod's
/// relinearisation key starts at CoeffsToSlots' output level, and the real/imaginary split's
/// conjugation key one level above it (the split runs before CoeffsToSlots' last rescale).
/// Keys needed at several levels are made for the highest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyPlan {
    /// Level of the relinearisation key.
    pub relin: usize,
    /// Level of the conjugation key.
    pub conjugate: usize,
    /// Rotation steps in `[1, N/2)` (one per Galois element), sorted, with their levels.
    pub rotations: Vec<(i64, usize)>,
}

impl KeyPlan {
    /// The rotation steps.
    pub fn steps(&self) -> Vec<i64> {
        self.rotations.iter().map(|&(s, _)| s).collect()
    }

    /// Serialized size (seeded) of the evaluation keys of the plan.
    pub fn serialized_size(&self, params: &Params) -> usize {
        evaluation_keys_size_at(
            params,
            Some(self.relin),
            self.rotations
                .iter()
                .map(|&(_, l)| l)
                .chain([self.conjugate]),
        )
    }

    /// Checks that `keys` hold every key of the plan at its level.
    pub fn check(&self, params: &Params, keys: &EvaluationKeys) -> Result<()> {
        let ring = params.ring();
        let missing = |what: String| Err(Error::MissingKey { op: OP, what });
        if keys
            .relin
            .as_ref()
            .is_none_or(|k| k.key().max_level() < self.relin)
        {
            return missing(format!("relinearization key reaching level {}", self.relin));
        }
        let reaches =
            |g: u64, level: usize| keys.galois_key(g).is_some_and(|k| k.max_level() >= level);
        if !reaches(ring.galois_element_conjugate(), self.conjugate) {
            return missing(format!("conjugation key reaching level {}", self.conjugate));
        }
        if let Some((s, l)) = self
            .rotations
            .iter()
            .find(|&&(s, l)| !reaches(ring.galois_element_for_rotation(s), l))
        {
            return missing(format!(
                "rotation key for step {s} reaching level {l} ({} rotation keys are needed; see Bootstrapper::key_plan)",
                self.rotations.len()
            ));
        }
        Ok(())
    }

    /// Client side: generates the plan's keys, each up to its level.
    #[cfg(feature = "client")]
    pub fn generate(
        &self,
        kg: &mut crate::rlwe::keygen::KeyGenerator,
        sk: &crate::rlwe::keys::SecretKey,
    ) -> EvaluationKeys {
        let mut levels: Vec<usize> = self
            .rotations
            .iter()
            .map(|&(_, l)| l)
            .chain([self.relin, self.conjugate])
            .collect();
        levels.sort_unstable();
        levels.dedup();
        let mut keys = EvaluationKeys::default();
        for level in levels {
            let steps: Vec<i64> = self
                .rotations
                .iter()
                .filter(|&&(_, l)| l == level)
                .map(|&(s, _)| s)
                .collect();
            keys.merge(kg.gen_evaluation_keys_up_to(
                sk,
                self.relin == level,
                &steps,
                self.conjugate == level,
                level,
            ));
        }
        keys
    }
}

/// Where a bootstrap's time went, by stage: ModRaise (with encapsulation and SubSum),
/// CoeffsToSlots, EvalMod, SlotsToCoeffs. Accumulates over calls.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct BootstrapProfile {
    /// Seconds per stage.
    pub seconds: [f64; 4],
    /// The evaluator's key-switch counter after each stage (differences give per-stage counts).
    pub key_switches: [u64; 4],
}

impl BootstrapProfile {
    /// Stage names, in the order of the arrays.
    pub const STAGES: [&'static str; 4] = [
        "mod_raise",
        "coeffs_to_slots",
        "eval_mod",
        "slots_to_coeffs",
    ];
}

/// Bootstrapping for one parameter set and slot count, with its DFT matrices encoded.
/// Holds no key: [`Self::bootstrap`] takes an evaluator (relinearisation, rotation and
/// conjugation keys; see [`Self::rotation_steps`]) and the [`EncapsulationKeys`].
pub struct Bootstrapper {
    params: Arc<Params>,
    small: Arc<Params>,
    config: BootstrapConfig,
    budget: LevelBudget,
    eval_mod: EvalMod,
    /// CoeffsToSlots factors in the order applied (levels top, top - 1, ...).
    cts: Vec<EncodedLinearTransform>,
    /// SlotsToCoeffs factors in the order applied.
    stc: Vec<EncodedLinearTransform>,
    /// The constant folded into SlotsToCoeffs (see `new`).
    stc_constant: f64,
    keys: KeyPlan,
}

impl std::fmt::Debug for Bootstrapper {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Bootstrapper(slots {}, {:?})",
            self.config.slots, self.budget
        )
    }
}

/// An `EncodedLinearTransform` of a diagonal set at `level`.
/// One DFT factor before encoding: its slot count, diagonals and level.
type Factor = (usize, Diagonals, usize);

/// The DFT factors of a bootstrapper (see `Bootstrapper::matrices`).
struct Matrices {
    cts: Vec<Factor>,
    stc: Vec<Factor>,
    stc_constant: f64,
}

fn encode_factor(
    encoder: &Encoder,
    slots: usize,
    diagonals: Diagonals,
    level: usize,
    config: &BootstrapConfig,
) -> Result<EncodedLinearTransform> {
    LinearTransform::from_diagonals(slots, diagonals.into_iter().map(|(k, d)| (k as i64, d)))?
        .with_double_hoisting(config.double_hoisting)
        .with_compact_diagonals(config.compact_matrices)
        .encode(encoder, level)
}

impl Bootstrapper {
    /// The level budget of `config` on `params` without encoding anything (for listings):
    /// the same checks as [`Self::new`] on the depth.
    pub fn plan(params: &Params, config: &BootstrapConfig) -> Result<LevelBudget> {
        Self::plan_with(params, config).map(|(budget, _)| budget)
    }

    /// [`Self::plan`] with the EvalMod circuit it was computed from.
    fn plan_with(params: &Params, config: &BootstrapConfig) -> Result<(LevelBudget, EvalMod)> {
        let eval_mod = EvalMod::new(config.eval_mod.clone())?;
        let top = params.max_level();
        let depth = config.cts_levels + eval_mod.depth() + config.stc_levels;
        if depth > top {
            return Err(Error::InvalidParameters(format!(
                "bootstrapping needs {depth} levels ({} CoeffsToSlots + {} EvalMod + {} SlotsToCoeffs) above level 0; the chain has {top}",
                config.cts_levels,
                eval_mod.depth(),
                config.stc_levels
            )));
        }
        let budget = LevelBudget {
            top,
            cts: config.cts_levels,
            eval_mod: eval_mod.depth(),
            stc: config.stc_levels,
            output: top - depth,
        };
        Ok((budget, eval_mod))
    }

    /// Plans the circuit and encodes its matrices. Errors: a slot count that is not a power
    /// of two in `2^cts_levels ..= N/2` (and at least `2^stc_levels`), a chain too short for
    /// the depth, invalid EvalMod parameters.
    pub fn new(params: Arc<Params>, config: BootstrapConfig) -> Result<Self> {
        let (matrices, budget, eval_mod) = Self::matrices(&params, &config)?;
        let encoder = Encoder::new(params.clone());
        let encode = |f: Vec<Factor>| -> Result<Vec<EncodedLinearTransform>> {
            f.into_iter()
                .map(|(slots, diagonals, level)| {
                    encode_factor(&encoder, slots, diagonals, level, &config)
                })
                .collect()
        };
        let cts = encode(matrices.cts)?;
        let stc = encode(matrices.stc)?;
        let keys = Self::key_plan_of(
            &params,
            &config,
            &budget,
            cts.iter()
                .chain(&stc)
                .flat_map(|f| f.rotation_steps().into_iter().map(|s| (s, f.level()))),
        );
        let small = params.encapsulation_params()?;
        Ok(Self {
            params,
            small,
            config,
            budget,
            eval_mod,
            cts,
            stc,
            stc_constant: matrices.stc_constant,
            keys,
        })
    }

    /// The key plan [`Self::new`] would report, without encoding any matrix (what a client
    /// needs to generate the keys: a small fraction of the time and memory).
    pub fn key_plan_for(params: &Arc<Params>, config: &BootstrapConfig) -> Result<KeyPlan> {
        let (matrices, budget, _) = Self::matrices(params, config)?;
        let mut uses = Vec::new();
        for (slots, diagonals, level) in matrices.cts.into_iter().chain(matrices.stc) {
            let lt = LinearTransform::from_diagonals(
                slots,
                diagonals.into_iter().map(|(k, d)| (k as i64, d)),
            )?;
            uses.extend(lt.rotation_steps().into_iter().map(|s| (s, level)));
        }
        Ok(Self::key_plan_of(params, config, &budget, uses))
    }

    /// The key plan of the DFT factors' rotations `(step, level)`, with SubSum's at the top.
    fn key_plan_of(
        params: &Params,
        config: &BootstrapConfig,
        budget: &LevelBudget,
        dft: impl IntoIterator<Item = (i64, usize)>,
    ) -> KeyPlan {
        let (n, max) = (config.slots, params.max_slots());
        let mut uses: Vec<(i64, usize)> = dft.into_iter().collect();
        if n < max {
            uses.extend(
                Evaluator::inner_sum_steps(n as i64, max / n)
                    .into_iter()
                    .map(|s| (s, budget.top)),
            );
        }
        // One key per Galois element: steps that differ by a multiple of N/2 share a key,
        // made for the highest level it is used at.
        let half = max as i64;
        let mut levels: std::collections::BTreeMap<i64, usize> = Default::default();
        for (s, l) in uses {
            let s = s.rem_euclid(half);
            if s != 0 {
                let e = levels.entry(s).or_insert(l);
                *e = (*e).max(l);
            }
        }
        KeyPlan {
            relin: budget.eval_mod_input(),
            // CoeffsToSlots conjugates before its last rescale (see `coeffs_to_slots`).
            conjugate: budget.eval_mod_input() + 1,
            rotations: levels.into_iter().collect(),
        }
    }

    /// The DFT factors (slots, diagonals, level) with every constant folded in, the level
    /// budget and EvalMod.
    fn matrices(
        params: &Arc<Params>,
        config: &BootstrapConfig,
    ) -> Result<(Matrices, LevelBudget, EvalMod)> {
        let n = config.slots;
        let max = params.max_slots();
        if !n.is_power_of_two() || n > max || n < 2 {
            return Err(Error::InvalidArgument {
                op: OP,
                msg: format!("slot count {n} must be a power of two in 2..={max}"),
            });
        }
        let (budget, eval_mod) = Self::plan_with(params, config)?;
        let top = budget.top;
        let encoder = Encoder::new(params.clone());
        let ring = params.ring();
        let q0 = ring.q(0).value() as f64;
        let sparse = n < max;
        let i = Complex64::new(0.0, 1.0);

        // CoeffsToSlots: y = x / K at scale q_{eval_in}, x = (m + q_0 I) / q_0, from the
        // unnormalised inverse FFT (a factor n) after SubSum (a factor N / 2n).
        let eval_in = budget.eval_mod_input();
        let q_eval = ring.q(eval_in).value() as f64;
        let total = q_eval / (q0 * config.eval_mod.k * max as f64);
        let per_factor = total.powf(1.0 / budget.cts as f64);
        let mut cts = Vec::with_capacity(budget.cts);
        let factors = dft::factors(&encoder, n, budget.cts, true)?;
        let last = factors.len() - 1;
        for (g, mut f) in factors.into_iter().enumerate() {
            dft::scale(&mut f, per_factor.into());
            let level = top - g;
            let (slots, f) = if g == last && sparse {
                // Read with 2n slots: [Re | Im] = v + conj(v) with v = D M x, D = (1/2, -i/2).
                let half = Complex64::new(0.5, 0.0);
                (
                    2 * n,
                    dft::lift_to_double(
                        &f,
                        n,
                        |r| if r < n { half } else { -i * half },
                        |_| 1.0.into(),
                        false,
                    ),
                )
            } else if g == last {
                // Full slots: v = M x / 2, then Re = v + conj(v), Im = -i (v - conj(v)).
                dft::scale(&mut f, 0.5.into());
                (n, f)
            } else {
                (n, f)
            };
            cts.push((slots, f, level));
        }

        // SlotsToCoeffs, with a constant chosen so that a nominal input (the default scale)
        // has EvalMod end at a scale near its level's prime (see `bootstrap_scaled`).
        let stc_in = eval_in - budget.eval_mod;
        let k_nominal =
            Self::ratio_multiplier(params, config, params.default_scale()).unwrap_or(1.0);
        // EvalMod ends near the prime its last double angle divided by (about 2^60): its
        // double angles square the scale and divide by that prime, so ending lower would
        // run the last ones at a smaller scale, with more relative rounding noise (measured:
        // 2^-28 instead of 2^-31 per coefficient ending at a 45-bit prime).
        let q_end = ring.q(stc_in + 1).value() as f64;
        let stc_constant = q0 / (2.0 * PI * k_nominal * q_end);
        let per_factor = stc_constant.powf(1.0 / budget.stc as f64);
        let mut stc = Vec::with_capacity(budget.stc);
        for (g, mut f) in dft::factors(&encoder, n, budget.stc, false)?
            .into_iter()
            .enumerate()
        {
            dft::scale(&mut f, per_factor.into());
            let level = stc_in - g;
            let (slots, f) = if g == 0 && sparse {
                // [Re | Im] with 2n slots in, M (Re + i Im) out, replicated.
                (
                    2 * n,
                    dft::lift_to_double(
                        &f,
                        n,
                        |_| 1.0.into(),
                        |c| if c < n { 1.0.into() } else { i },
                        true,
                    ),
                )
            } else {
                (n, f)
            };
            stc.push((slots, f, level));
        }
        Ok((
            Matrices {
                cts,
                stc,
                stc_constant,
            },
            budget,
            eval_mod,
        ))
    }

    /// The integer `k` by which an input at `scale` is multiplied before ModRaise, or
    /// `None` when the scale is above `q_0 / 2^log_message_ratio` (or not positive).
    fn ratio_multiplier(params: &Params, config: &BootstrapConfig, scale: f64) -> Option<f64> {
        let q0 = params.ring().q(0).value() as f64;
        let ceiling = q0 / 2f64.powi(config.eval_mod.log_message_ratio as i32);
        let k = (ceiling / scale).floor();
        (scale.is_finite() && scale > 0.0 && k >= 1.0 && k < 2f64.powi(52)).then_some(k)
    }

    /// True with fewer slots than N/2 (SubSum, and `[Re | Im]` packed in 2n slots).
    fn sparse(&self) -> bool {
        self.config.slots < self.params.max_slots()
    }

    /// The configuration.
    pub fn config(&self) -> &BootstrapConfig {
        &self.config
    }

    /// The level budget: depth, output level.
    pub fn budget(&self) -> LevelBudget {
        self.budget
    }

    /// Multiplicative depth of the circuit.
    pub fn depth(&self) -> usize {
        self.budget.depth()
    }

    /// The level the input needs: 0 (inputs above it are dropped to it first; nothing
    /// above level 0 is lost, since bootstrapping only reads the message modulo q_0).
    pub fn input_level(&self) -> usize {
        0
    }

    /// The level results come back at.
    pub fn output_level(&self) -> usize {
        self.budget.output
    }

    /// The evaluation keys [`Self::bootstrap`] needs, each with its level (besides the
    /// encapsulation keys).
    pub fn key_plan(&self) -> &KeyPlan {
        &self.keys
    }

    /// The rotation steps of [`Self::key_plan`].
    pub fn rotation_steps(&self) -> Vec<i64> {
        self.keys.steps()
    }

    /// Serialized size in bytes of every key bootstrapping needs (seeded): relinearisation,
    /// rotations, conjugation and the two encapsulation keys.
    pub fn key_bytes(&self) -> usize {
        self.keys.serialized_size(&self.params) + encapsulation_keys_size(&self.params, &self.small)
    }

    /// Checks that the evaluator holds every key needed, before any work.
    fn check_keys(&self, eval: &Evaluator, enc: &EncapsulationKeys) -> Result<()> {
        self.keys.check(&self.params, eval.keys())?;
        if enc.sparse_to_dense.params().fingerprint() != self.params.fingerprint()
            || enc.dense_to_sparse.params().fingerprint() != self.small.fingerprint()
        {
            return Err(Error::ParameterMismatch { op: OP });
        }
        Ok(())
    }

    /// Bootstraps `ct` (of [`BootstrapConfig::slots`] slots, any level, scale at most
    /// `q_0 / 2^log_message_ratio`; values of magnitude up to 1) to
    /// [`Self::output_level`], at the input's scale.
    pub fn bootstrap(
        &self,
        eval: &Evaluator,
        keys: &EncapsulationKeys,
        ct: &Ciphertext,
    ) -> Result<Ciphertext> {
        self.bootstrap_scaled(eval, keys, ct, 1.0, None)
    }

    /// [`Self::bootstrap`], adding where the time went to `profile`.
    pub fn bootstrap_profiled(
        &self,
        eval: &Evaluator,
        keys: &EncapsulationKeys,
        ct: &Ciphertext,
        profile: &mut BootstrapProfile,
    ) -> Result<Ciphertext> {
        self.bootstrap_scaled(eval, keys, ct, 1.0, Some(profile))
    }

    /// Iterated bootstrapping (META-BTS, Bae-Cheon-Cho-Kim-Kim 2022) for more bits at twice
    /// the time (measured at `boot16`, full slots: 26.3 / 23.4 bits mean / min against 24.1 /
    /// 22.3 for one bootstrap; SlotsToCoeffs' own rounding, 26.3 bits alone, is then the
    /// floor): `b = bootstrap(ct)` carries `m + e`; the residual `ct - b`
    /// (at level 0, message `-e`) is multiplied by the integer `2^k` (exact) and bootstrapped
    /// with its result scaled back by `2^-k` (folded into SlotsToCoeffs, no level), which
    /// gives `-e` up to `2^-k` times the bootstrapping error; the sum is `m` up to that and
    /// the output level's own rounding. `k = 12` keeps the amplified residual well inside
    /// `[-1, 1]` (a bootstrap's error is below `2^-16`).
    pub fn bootstrap_iterated(
        &self,
        eval: &Evaluator,
        keys: &EncapsulationKeys,
        ct: &Ciphertext,
    ) -> Result<Ciphertext> {
        const K: u32 = 12;
        let first = self.bootstrap_scaled(eval, keys, ct, 1.0, None)?;
        let mut residual = eval.drop_to_level(ct, 0)?;
        eval.sub_assign(&mut residual, &eval.drop_to_level(&first, 0)?)?;
        eval.mul_integer_assign(&mut residual, 1 << K)?;
        let fix = self.bootstrap_scaled(eval, keys, &residual, 2f64.powi(-(K as i32)), None)?;
        eval.add(&first, &fix)
    }

    /// Bootstraps two real vectors at once: `a + i b` through one bootstrap, then one
    /// conjugation separates them. Both must have the same slot count, level and scale.
    pub fn bootstrap_real_pair(
        &self,
        eval: &Evaluator,
        keys: &EncapsulationKeys,
        a: &Ciphertext,
        b: &Ciphertext,
    ) -> Result<(Ciphertext, Ciphertext)> {
        let c = self.join(eval, a, b)?;
        // The result carries (a + i b) / 2, so that its split is exactly (a, b).
        let c = self.bootstrap_scaled(eval, keys, &c, 0.5, None)?;
        self.split(eval, &c)
    }

    /// [`Self::bootstrap`] returning `factor` times the message (0.5 for real pairs).
    fn bootstrap_scaled(
        &self,
        eval: &Evaluator,
        keys: &EncapsulationKeys,
        ct: &Ciphertext,
        factor: f64,
        mut profile: Option<&mut BootstrapProfile>,
    ) -> Result<Ciphertext> {
        if ct.params().fingerprint() != self.params.fingerprint() {
            return Err(Error::ParameterMismatch { op: OP });
        }
        let n = self.config.slots;
        if ct.slots() != n {
            return Err(Error::InvalidArgument {
                op: OP,
                msg: format!(
                    "the ciphertext has {} slots, this bootstrapper was built for {n}",
                    ct.slots()
                ),
            });
        }
        if ct.degree() != 1 {
            return Err(Error::Degree {
                op: OP,
                degree: ct.degree(),
                expected: 1,
            });
        }
        let scale = ct.scale();
        let k = Self::ratio_multiplier(&self.params, &self.config, scale).ok_or_else(|| {
            Error::InvalidArgument {
                op: OP,
                msg: format!(
                    "input scale 2^{:.2} is out of range: it must be positive and at most q_0 / 2^{} = 2^{:.2}",
                    scale.log2(),
                    self.config.eval_mod.log_message_ratio,
                    (self.params.ring().q(0).value() as f64).log2()
                        - self.config.eval_mod.log_message_ratio as f64
                ),
            }
        })?;
        self.check_keys(eval, keys)?;
        let mut clock = std::time::Instant::now();
        let mut lap = |i: usize| {
            let now = std::time::Instant::now();
            if let Some(p) = profile.as_deref_mut() {
                p.seconds[i] += (now - clock).as_secs_f64();
                p.key_switches[i] = eval.op_counts().key_switches;
            }
            clock = now;
        };
        let x = self.raise(eval, keys, ct, k)?;
        lap(0);
        let parts = self.coeffs_to_slots(eval, &x)?;
        lap(1);
        let parts = self.reduce(eval, &parts, k, scale, factor)?;
        lap(2);
        let mut out = self.slots_to_coeffs(eval, parts)?;
        lap(3);
        // The integers now carry factor * message * scale (see `reduce`): say so exactly.
        out.set_scale(scale);
        Ok(out)
    }

    /// Steps 1-4: to level 0, times k; encapsulation; ModRaise; back to the dense secret;
    /// SubSum. The result decrypts to `gap (k m + q_0 I)` on the slot subring's coefficients
    /// (`gap = N / 2n`), at the top level.
    fn raise(
        &self,
        eval: &Evaluator,
        keys: &EncapsulationKeys,
        ct: &Ciphertext,
        k: f64,
    ) -> Result<Ciphertext> {
        let n = self.config.slots;
        let max = self.params.max_slots();
        let mut x = eval.drop_to_level(ct, 0)?;
        eval.mul_integer_assign(&mut x, k as i64)?;
        let x = self.to_sparse(eval, keys, &x)?;
        let x = self.mod_raise(&x);
        let mut x = eval.switch_key(&x, &keys.sparse_to_dense)?;
        if self.sparse() {
            // Read with N/2 slots: the raised message is not periodic yet.
            x.slots = max;
            x = eval.inner_sum(&x, n as i64, max / n)?;
            x.slots = n;
        }
        Ok(x)
    }

    /// Step 5: CoeffsToSlots. Returns the real parts to reduce, `y = x / K` at scale
    /// `q_level`: `[Re | Im]` in one ciphertext of 2n slots, or with full slots `Re` and `Im`.
    fn coeffs_to_slots(&self, eval: &Evaluator, x: &Ciphertext) -> Result<Vec<Ciphertext>> {
        let n = self.config.slots;
        let sparse = self.sparse();
        let (last, rest) = self
            .cts
            .split_last()
            .ok_or_else(|| Error::InvalidArgument {
                op: OP,
                msg: "internal: no CoeffsToSlots factor".into(),
            })?;
        let mut x = x.clone();
        for f in rest {
            x = f.evaluate(eval, &x)?;
        }
        if sparse {
            x.slots = 2 * n;
        }
        // The real/imaginary split's conjugation runs before the last rescale, where the
        // slots sit at about q_{eval_in} q_{eval_in + 1}: its key-switching noise (about
        // 2^14 per slot with the dense secret, more where a digit nearly fills P) is then
        // negligible, and y carries the rounding of one rescale only. Measured at boot16,
        // full slots: y's error 2^-45.5 -> 2^-46.1 rms, and no more outliers of 2^-39 in
        // the slots where the digits' mean concentrates.
        let x = last.evaluate_unrescaled(eval, &x)?;
        let parts = if sparse {
            let conj = eval.conjugate(&x)?;
            vec![eval.add(&x, &conj)?]
        } else {
            let (re, im) = self.split(eval, &x)?;
            vec![re, im]
        };
        let q_eval = self.params.ring().q(self.budget.eval_mod_input()).value() as f64;
        parts
            .into_iter()
            .map(|mut p| {
                eval.rescale_assign(&mut p)?;
                p.set_scale(q_eval);
                Ok(p)
            })
            .collect()
    }

    /// `(x + conj(x), -i (x - conj(x)))`: twice the real and imaginary parts, one
    /// conjugation (multiplying by `-i` is the exact monomial `X^{3N/2}`).
    fn split(&self, eval: &Evaluator, x: &Ciphertext) -> Result<(Ciphertext, Ciphertext)> {
        let conj = eval.conjugate(x)?;
        let re = eval.add(x, &conj)?;
        let diff = eval.sub(x, &conj)?;
        let im = eval.mul_by_monomial(&diff, 3 * self.params.n() as i64 / 2)?;
        Ok((re, im))
    }

    /// `re + i im` (multiplying by `i` is the exact monomial `X^{N/2}`).
    fn join(&self, eval: &Evaluator, re: &Ciphertext, im: &Ciphertext) -> Result<Ciphertext> {
        let i_im = eval.mul_by_monomial(im, self.params.n() as i64 / 2)?;
        eval.add(re, &i_im)
    }

    /// Step 6: EvalMod on each part, landing at the scale that SlotsToCoeffs' constant `c`
    /// turns into exactly `factor` times the input's scale: `S = q_0 factor / (2 pi k c)`.
    /// The result's metadata reads the integers `2 pi (m / q_0) S` (with `m = k m_in`) as
    /// `m_in / scale`: scale `2 pi S k scale / q_0`.
    fn reduce(
        &self,
        eval: &Evaluator,
        parts: &[Ciphertext],
        k: f64,
        scale: f64,
        factor: f64,
    ) -> Result<Vec<Ciphertext>> {
        let q0 = self.params.ring().q(0).value() as f64;
        let target = q0 * factor / (2.0 * PI * k * self.stc_constant);
        parts
            .par_iter()
            .map(|p| {
                let mut y = self.eval_mod.evaluate(eval, p, target)?;
                y.set_scale(2.0 * PI * y.scale() * k * scale / q0);
                Ok(y)
            })
            .collect()
    }

    /// Step 7: recombines the parts (`Re + i Im`) and runs SlotsToCoeffs.
    fn slots_to_coeffs(&self, eval: &Evaluator, parts: Vec<Ciphertext>) -> Result<Ciphertext> {
        let n = self.config.slots;
        let sparse = self.sparse();
        let mut parts = parts.into_iter();
        let mut x = parts.next().ok_or_else(|| Error::InvalidArgument {
            op: OP,
            msg: "internal: nothing to recombine".into(),
        })?;
        if let Some(im) = parts.next() {
            x = self.join(eval, &x, &im)?;
        }
        for (g, f) in self.stc.iter().enumerate() {
            x = f.evaluate(eval, &x)?;
            if g == 0 && sparse {
                x.slots = n;
            }
        }
        Ok(x)
    }

    /// Key switch to the sparse secret over the encapsulation parameters (q_0 * p).
    fn to_sparse(
        &self,
        eval: &Evaluator,
        keys: &EncapsulationKeys,
        ct: &Ciphertext,
    ) -> Result<Ciphertext> {
        // A level-0 ciphertext of the main chain is one of the encapsulation chain: same N,
        // same q_0, same NTT.
        let small_ct = Ciphertext::new(
            self.small.clone(),
            ct.polys().to_vec(),
            0,
            ct.scale(),
            ct.slots(),
        );
        let small_eval = Evaluator::new(self.small.clone(), EvaluationKeys::default());
        let out = small_eval.switch_key(&small_ct, &keys.dense_to_sparse)?;
        eval.count_key_switches(small_eval.op_counts().key_switches);
        Ok(Ciphertext::new(
            self.params.clone(),
            out.polys().to_vec(),
            0,
            ct.scale(),
            ct.slots(),
        ))
    }

    /// ModRaise: the residues modulo q_0, centred, become residues modulo every q_i.
    fn mod_raise(&self, ct: &Ciphertext) -> Ciphertext {
        let params = &self.params;
        let ring = params.ring();
        let top = params.max_level();
        let basis = params.basis_q(top);
        let q0 = *ring.q(0);
        let half = q0.value() / 2;
        let polys = ct
            .polys()
            .iter()
            .map(|p| {
                let mut c = p.tower(0).to_vec();
                ring.ntt(params.basis_q(0), 0).backward(&mut c);
                let signed: Vec<i64> = c
                    .iter()
                    .map(|&v| {
                        if v > half {
                            -((q0.value() - v) as i64)
                        } else {
                            v as i64
                        }
                    })
                    .collect();
                let mut out = Poly::<Coeff>::zero(ring, basis);
                out.data_mut()
                    .par_chunks_mut(ring.n())
                    .enumerate()
                    .for_each(|(t, tower)| {
                        let m = ring.q(t);
                        for (o, &s) in tower.iter_mut().zip(&signed) {
                            *o = m.reduce_i64(s);
                        }
                    });
                out.into_ntt(ring)
            })
            .collect::<Vec<Poly<Ntt>>>();
        Ciphertext::new(params.clone(), polys, top, ct.scale(), ct.slots())
    }
}

/// Client side: generates every key a bootstrapper needs.
#[cfg(feature = "client")]
impl Bootstrapper {
    /// Relinearisation, rotation and conjugation keys, and the encapsulation keys.
    pub fn gen_keys(
        &self,
        kg: &mut crate::rlwe::keygen::KeyGenerator,
        sk: &crate::rlwe::keys::SecretKey,
    ) -> Result<(EvaluationKeys, EncapsulationKeys)> {
        let keys = self.keys.generate(kg, sk);
        let enc = kg.gen_encapsulation_keys(sk)?;
        Ok((keys, enc))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ckks::encoder::{CenteredLift, bit_reverse};
    use crate::params::{ParamsLiteral, SecretDistribution};
    use crate::rlwe::decryptor::decrypt;
    use crate::rlwe::encryptor::encrypt_secret;
    use crate::rlwe::keygen::KeyGenerator;

    /// Decrypts and returns the centred coefficients as f64.
    fn coeffs(sk: &crate::rlwe::keys::SecretKey, ct: &Ciphertext) -> Vec<f64> {
        let params = sk.params();
        let pt = decrypt(sk, ct).expect("decrypt");
        let c = pt.poly().to_coeff(params.ring());
        let lift = CenteredLift::new(params, ct.level());
        (0..params.n())
            .map(|j| {
                let r: Vec<u64> = (0..=ct.level()).map(|t| c.tower(t)[j]).collect();
                lift.lift(params, &r)
            })
            .collect()
    }

    /// Error of every stage against the exact values, in the message's units, so that the
    /// precision budget can be read off (run with --nocapture).
    #[test]
    fn stage_errors() {
        let mut log_q = vec![60, 40, 40, 45, 45, 45];
        log_q.extend([60; 12]);
        let params = Params::new_insecure(ParamsLiteral {
            log_n: 10,
            log_q,
            log_p: vec![61; 5],
            dnum: 4,
            secret: SecretDistribution::Ternary,
            log_scale: 40,
            sigma: 3.19,
        })
        .expect("params");
        let (cts_bits, final_mean) = stage_report(params, 512);
        assert!(cts_bits > 44.0, "CoeffsToSlots error 2^-{cts_bits:.1}");
        assert!(final_mean > 24.0, "precision {final_mean:.1} bits");
    }

    /// [`stage_errors`] at the `boot16` preset (about a minute).
    #[test]
    #[ignore]
    fn stage_errors_boot16() {
        let params = Params::preset("boot16").expect("boot16");
        let n = params.max_slots();
        let (_, final_mean) = stage_report(params, n);
        // Measured 24.1 bits (the target is 24); a margin for the encryption noise.
        assert!(final_mean > 23.8, "precision {final_mean:.1} bits");
    }

    /// Prints every stage's error; returns -log2 of CoeffsToSlots' error in `y` and the
    /// final mean precision.
    fn stage_report(params: Arc<Params>, n: usize) -> (f64, f64) {
        let cfg = BootstrapConfig::new(n);
        let btp = Bootstrapper::new(params.clone(), cfg).expect("btp");
        let mut kg = KeyGenerator::new_deterministic_for_tests(params.clone(), [3u8; 32]);
        let sk = kg.gen_secret_key();
        let (ek, keys) = btp.gen_keys(&mut kg, &sk).expect("keys");
        let eval = Evaluator::new(params.clone(), ek);
        let enc = Encoder::new(params.clone());
        let v: Vec<Complex64> = (0..n)
            .map(|i| Complex64::new((i as f64 * 0.7).sin(), (i as f64 * 0.3).cos()))
            .collect();
        let scale = params.default_scale();
        let ct = encrypt_secret(&sk, &enc.encode_complex(&v, 0, scale, n).expect("encode"))
            .expect("enc");
        let k = Bootstrapper::ratio_multiplier(&params, &btp.config, scale).expect("k");
        let q0 = params.ring().q(0).value() as f64;
        let big_k = btp.config.eval_mod.k;
        let to_msg = q0 / (k * scale); // x units -> message units
        let raised = btp.raise(&eval, &keys, &ct, k).expect("raise");
        let c = coeffs(&sk, &raised);
        let half = params.n() / 2;
        let mut w: Vec<Complex64> = (0..n).map(|i| Complex64::new(c[i], c[half + i])).collect();
        bit_reverse(&mut w);
        let y: Vec<Complex64> = w.iter().map(|z| z / (q0 * big_k)).collect();
        let parts = btp.coeffs_to_slots(&eval, &raised).expect("cts");
        let dec = |ct: &Ciphertext| {
            enc.decode_complex(&decrypt(&sk, ct).expect("dec"))
                .expect("decode")
        };
        let (re, im) = (dec(&parts[0]), dec(&parts[1]));
        let err_cts = (0..n)
            .map(|i| (re[i].re - y[i].re).abs().max((im[i].re - y[i].im).abs()))
            .fold(0.0, f64::max);
        eprintln!(
            "CtS: max |y| error 2^{:.1}, message units 2^{:.1}; imaginary residue 2^{:.1}",
            err_cts.log2(),
            (err_cts * big_k * to_msg).log2(),
            re.iter().map(|z| z.im.abs()).fold(0.0, f64::max).log2()
        );
        {
            // The interpolant alone, at two target scales.
            let pe = crate::circuits::polynomial::PolynomialEvaluator::new(&eval);
            let cos = &btp.eval_mod.cosine;
            for target in [2f64.powi(45), 2f64.powi(59), 2f64.powi(60)] {
                let t = pe.evaluate(&parts[0], cos, target).expect("poly");
                let got = dec(&t);
                let err = (0..n)
                    .map(|i| (got[i].re - cos.evaluate_plain(y[i].re).re).abs())
                    .fold(0.0, f64::max);
                eprintln!(
                    "interpolant at 2^{:.0}: max error 2^{:.1}, level {}",
                    target.log2(),
                    err.log2(),
                    t.level()
                );
            }
        }
        let reduced = btp.reduce(&eval, &parts, k, scale, 1.0).expect("reduce");
        let (re2, im2) = (dec(&reduced[0]), dec(&reduced[1]));
        // Exact: the message coefficients m / (k scale) = frac(x) q0 / (k scale).
        let frac = |x: f64| x - x.round();
        let err_mod = (0..n)
            .map(|i| {
                let (xr, xi) = (y[i].re * big_k, y[i].im * big_k);
                (re2[i].re - frac(xr) * to_msg)
                    .abs()
                    .max((im2[i].re - frac(xi) * to_msg).abs())
            })
            .fold(0.0, f64::max);
        // The same with the ideal sine (separates the sine's own error).
        let err_sine = (0..n)
            .map(|i| {
                let xr = y[i].re * big_k;
                (re2[i].re - (2.0 * PI * xr).sin() / (2.0 * PI) * to_msg).abs()
            })
            .fold(0.0, f64::max);
        eprintln!(
            "EvalMod: max coefficient error 2^{:.1} (against sin: 2^{:.1}), levels {} -> {}",
            err_mod.log2(),
            err_sine.log2(),
            parts[0].level(),
            reduced[0].level()
        );
        {
            let rms = |f: &dyn Fn(usize) -> f64| {
                ((0..n).map(|i| f(i) * f(i)).sum::<f64>() / n as f64)
                    .sqrt()
                    .log2()
            };
            eprintln!(
                "rms per coefficient (message units): CtS 2^{:.2}, EvalMod 2^{:.2}",
                rms(&|i| (re[i].re - y[i].re) * big_k * to_msg),
                rms(&|i| re2[i].re - frac(y[i].re * big_k) * to_msg)
            );
            // SlotsToCoeffs alone: exact coefficients, freshly encrypted where EvalMod ends.
            let exact = |f: &dyn Fn(usize) -> f64| {
                let w: Vec<Complex64> = (0..n).map(|i| Complex64::new(f(i), 0.0)).collect();
                let pt = enc
                    .encode_complex(&w, reduced[0].level(), reduced[0].scale(), n)
                    .expect("encode");
                encrypt_secret(&sk, &pt).expect("enc")
            };
            let parts = vec![
                exact(&|i| frac(y[i].re * big_k) * to_msg),
                exact(&|i| frac(y[i].im * big_k) * to_msg),
            ];
            let mut out = btp.slots_to_coeffs(&eval, parts).expect("stc");
            out.set_scale(scale);
            let st = crate::ckks::encoder::precision_stats(&v, &dec(&out));
            eprintln!("SlotsToCoeffs alone: {st:?}");
        }
        let out = btp.slots_to_coeffs(&eval, reduced).expect("stc");
        let mut out = out;
        out.set_scale(scale);
        let got = dec(&out);
        let st = crate::ckks::encoder::precision_stats(&v, &got);
        eprintln!("final: {st:?}");
        (-err_cts.log2(), st.mean_bits)
    }
}
