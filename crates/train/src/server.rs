//! The server: trains on an [`UploadBundle`] with public keys only. This module compiles
//! without the `client` feature, where no secret-key type exists (checked in CI).

use crate::algorithm::{Loss, Residual, schedule};
use crate::batches::{BatchSource, BatchSpec, Epochs, Step};
use crate::bundle::{EncryptedModel, UploadBundle};
use crate::checkpoint::{Checkpoint, CheckpointRef, CheckpointSink};
use crate::error::{Result, TrainError};
use crate::layout::{Geometry, Schedule};
use crate::refresh::Refresher;
use crate::setup::LevelPlan;
use std::time::Instant;
use volley_ckks::{Ciphertext, Complex64, Encoder, Evaluator, OpCounts};

/// Progress of a training run, for progress bars.
#[derive(Clone, Copy, Debug)]
pub enum Progress {
    /// One-time preparation (rotated copies of X): done of total.
    Precompute(usize, usize),
    /// Iteration t finished of total.
    Iteration(usize, usize),
    /// Building the bootstrapper (encoding its matrices).
    BootstrapSetup,
    /// The run continues from a checkpoint after iteration k of total.
    Resumed(usize, usize),
}

/// What the server measured.
#[derive(Clone, Debug, Default)]
pub struct TrainStats {
    /// Key switches of each iteration (rotations + relinearisations).
    pub key_switches_per_iteration: Vec<u64>,
    /// Key switches of the one-time preparation.
    pub key_switches_precompute: u64,
    /// Key switches of the final weight combination.
    pub key_switches_final: u64,
    /// Seconds per iteration.
    pub seconds_per_iteration: Vec<f64>,
    /// Seconds of the preparation.
    pub seconds_precompute: f64,
    /// Refreshes by bootstrapping.
    pub bootstraps: usize,
    /// Seconds in refreshes (pack, bootstrap, unpack), not counted in the iterations.
    pub seconds_bootstrapping: f64,
    /// Seconds building the bootstrapper (once per run).
    pub seconds_bootstrap_setup: f64,
    /// Of `seconds_bootstrapping`: packing, bootstrapping, unpacking.
    pub seconds_refresh_stages: [f64; 3],
    /// Levels one iteration consumes.
    pub levels_per_iteration: usize,
    /// Slots of each bootstrap (the packed state), 0 without bootstrapping.
    pub bootstrap_slots: usize,
    /// All operation counts.
    pub op_counts: OpCounts,
}

/// Receives the encrypted model after some iterations (see [`train_with_snapshots`]).
pub type SnapshotSink<'a> = dyn FnMut(usize, Vec<Ciphertext>) -> Result<()> + 'a;

/// Trains `iterations` iterations (any number with bootstrapping; without, at most what
/// the parameters hold).
pub fn train(
    bundle: &UploadBundle,
    iterations: usize,
    progress: &mut dyn FnMut(Progress),
) -> Result<(EncryptedModel, TrainStats)> {
    train_with_snapshots(bundle, iterations, None, progress, &mut |_, _| Ok(()))
}

/// [`train`], handing the encrypted model after every `every` iterations and after the
/// last to `sink` (iterations done, weight ciphertexts in the model's layout, at level 0),
/// as soon as it exists: the caller writes it out or decrypts it, so memory does not grow
/// with the number of snapshots. The server never sees a decrypted value; the data owner
/// decrypts the snapshots and picks the model (early stopping on its own validation rows).
pub fn train_with_snapshots(
    bundle: &UploadBundle,
    iterations: usize,
    every: Option<usize>,
    progress: &mut dyn FnMut(Progress),
    sink: &mut SnapshotSink<'_>,
) -> Result<(EncryptedModel, TrainStats)> {
    let options = RunOptions {
        snapshot_every: every,
        ..RunOptions::default()
    };
    train_run(bundle, iterations, options, progress, sink)
}

/// Snapshots, checkpoints and resumption of a run (see [`train_run`]).
#[derive(Default)]
pub struct RunOptions<'a> {
    /// Hand the model to the snapshot sink after every this many iterations (and the last).
    pub snapshot_every: Option<usize>,
    /// Hand the state to `checkpoints` after every this many iterations (not after the
    /// last: the model is the result then). Diagonal schedule only.
    pub checkpoint_every: Option<usize>,
    /// Where checkpoints go (written before the run continues: a run killed later resumes
    /// from it).
    pub checkpoints: Option<&'a mut CheckpointSink<'a>>,
    /// Continue from this state instead of the upload's initial weights (read with
    /// [`Checkpoint::from_bytes`], which ties it to the upload and the run's length).
    pub resume: Option<Checkpoint>,
    /// Mini-batch uploads: the order of the batches in each epoch (the client's choice);
    /// the run's iterations are then its steps, epochs times batches.
    pub epochs: Option<Epochs>,
    /// Checked after every iteration: once set, the run stops with
    /// [`TrainError::Cancelled`] (its last checkpoint stays valid for a later resumption).
    pub cancel: Option<&'a std::sync::atomic::AtomicBool>,
}

/// [`train_with_snapshots`] with checkpoints and resumption: a run continued from a
/// checkpoint of itself ends with the same model, bit for bit, as if never interrupted
/// (see [`crate::checkpoint`]), and sends the snapshots after the checkpoint.
pub fn train_run(
    bundle: &UploadBundle,
    iterations: usize,
    options: RunOptions<'_>,
    progress: &mut dyn FnMut(Progress),
    sink: &mut SnapshotSink<'_>,
) -> Result<(EncryptedModel, TrainStats)> {
    let RunOptions {
        snapshot_every: every,
        checkpoint_every,
        checkpoints,
        resume,
        epochs,
        cancel,
    } = options;
    if every == Some(0) {
        return Err(TrainError::Data(
            "--snapshot-every must be at least 1".into(),
        ));
    }
    if checkpoint_every == Some(0) {
        return Err(TrainError::Data(
            "--checkpoint-every must be at least 1".into(),
        ));
    }
    let mut snapshot = Snapshots {
        every,
        iterations,
        sink,
        cancel,
    };
    let mut state = State {
        checkpoint_every,
        checkpoints,
        resume,
        order: epochs.as_ref().map(Epochs::digest),
        epochs,
    };
    let m = &bundle.manifest;
    // Every shape is checked against the parameters before it sizes anything.
    m.validate(&bundle.params)?;
    if iterations == 0 {
        return Err(TrainError::Data("at least one iteration is needed".into()));
    }
    if m.bootstrapping != bundle.encapsulation.is_some() {
        return Err(TrainError::Mismatch(
            "the manifest's bootstrapping flag and the bundle's encapsulation keys disagree".into(),
        ));
    }
    let plan = LevelPlan::new(
        m.schedule,
        &bundle.params,
        &m.geometry,
        m.bootstrapping,
        iterations,
    )
    .map_err(|e| match e {
        TrainError::Capacity(msg) => TrainError::Capacity(format!(
            "{msg} (the bundle was prepared for {} iterations)",
            m.iterations
        )),
        e => e,
    })?;
    let eval = Evaluator::new(bundle.params.clone(), bundle.keys.clone());
    let enc = Encoder::new(bundle.params.clone());
    let ctx = Ctx {
        eval: &eval,
        enc: &enc,
        g: m.geometry,
    };
    let (weights, stats) = match m.schedule {
        Schedule::Diagonal => diagonal::train(
            &ctx,
            bundle,
            &plan,
            iterations,
            progress,
            &mut snapshot,
            &mut state,
        )?,
        Schedule::Paper => {
            if state.epochs.is_some() {
                return Err(TrainError::Data(
                    "mini-batches need the diagonal schedule".into(),
                ));
            }
            if state.checkpoint_every.is_some() || state.resume.is_some() {
                return Err(TrainError::Data(
                    "checkpoints and --resume need the diagonal schedule (the paper's is kept as it was, for comparison)".into(),
                ));
            }
            paper::train(&ctx, bundle, iterations, progress, &mut snapshot)?
        }
    };
    Ok((
        EncryptedModel {
            manifest: m.clone(),
            weights,
        },
        stats,
    ))
}

/// Where the run's outputs go and when (snapshots), and the caller's stop signal.
struct Snapshots<'s, 'a> {
    every: Option<usize>,
    iterations: usize,
    sink: &'s mut SnapshotSink<'a>,
    cancel: Option<&'a std::sync::atomic::AtomicBool>,
}

impl Snapshots<'_, '_> {
    /// [`TrainError::Cancelled`] once the caller has asked the run to stop.
    fn stop_if_cancelled(&self) -> Result<()> {
        match self.cancel {
            Some(c) if c.load(std::sync::atomic::Ordering::Relaxed) => Err(TrainError::Cancelled),
            _ => Ok(()),
        }
    }

    /// True when the model of `k` iterations is wanted.
    fn due(&self, k: usize) -> bool {
        self.every
            .is_some_and(|e| k == self.iterations || k % e == 0)
    }

    /// Hands the model of `k` iterations, dropped to level 0, to the sink.
    fn send(&mut self, k: usize, w: &[Ciphertext], eval: &Evaluator) -> Result<()> {
        let low = w
            .iter()
            .map(|ct| eval.drop_to_level(ct, 0))
            .collect::<volley_ckks::Result<_>>()?;
        (self.sink)(k, low)
    }
}

/// Checkpointing and resumption of one run, and its batches' order.
struct State<'s, 'a> {
    checkpoint_every: Option<usize>,
    checkpoints: Option<&'s mut CheckpointSink<'a>>,
    resume: Option<Checkpoint>,
    epochs: Option<Epochs>,
    /// The digest of `epochs`, written into checkpoints and checked on resumption.
    order: Option<u64>,
}

impl State<'_, '_> {
    /// Hands the state after `k` of `iterations` iterations to the sink when one is due.
    fn save(
        &mut self,
        k: usize,
        iterations: usize,
        v: &[Ciphertext],
        v_prev: &[Ciphertext],
    ) -> Result<()> {
        match (self.checkpoint_every, self.checkpoints.as_deref_mut()) {
            (Some(e), Some(sink)) if k % e == 0 && k < iterations => sink(CheckpointRef {
                iterations,
                iteration: k,
                v,
                v_prev,
                order: self.order,
            }),
            _ => Ok(()),
        }
    }
}

struct Ctx<'a> {
    eval: &'a Evaluator,
    enc: &'a Encoder,
    g: Geometry,
}

impl Ctx<'_> {
    fn q(&self, level: usize) -> f64 {
        self.eval.params().ring().q(level).value() as f64
    }

    fn encode(&self, v: &[f64], level: usize, scale: f64) -> Result<volley_ckks::Plaintext> {
        Ok(self.enc.encode(v, level, scale, self.g.slots)?)
    }

    /// (1 - eta) a + eta b landing on `scale` at `level` (each operand spends one level on its
    /// constant, above `level`).
    fn combine(
        &self,
        a: &Ciphertext,
        ca: f64,
        b: Option<(&Ciphertext, f64)>,
        scale: f64,
        level: usize,
    ) -> Result<Ciphertext> {
        let term = |ct: &Ciphertext, c: f64| -> Result<Ciphertext> {
            let mut t = ct.clone();
            self.eval
                .mul_const_to_scale_assign(&mut t, Complex64::new(c, 0.0), scale)?;
            self.eval.drop_to_level_assign(&mut t, level)?;
            Ok(t)
        };
        let mut out = term(a, ca)?;
        if let Some((b, cb)) = b {
            self.eval.add_assign(&mut out, &term(b, cb)?)?;
        }
        Ok(out)
    }

    /// ct * v (a slot vector, or a constant in every slot) rescaled onto `target` scale:
    /// one level.
    fn mul_to_scale(&self, ct: &Ciphertext, v: Coefficient<'_>, target: f64) -> Result<Ciphertext> {
        match v {
            Coefficient::Scalar(c) => {
                let mut out = ct.clone();
                self.eval
                    .mul_const_to_scale_assign(&mut out, Complex64::new(c, 0.0), target)?;
                Ok(out)
            }
            Coefficient::Slots(v) => {
                let pt = self.encode(v, ct.level(), target * self.q(ct.level()) / ct.scale())?;
                let mut out = self.eval.mul_plain(ct, &pt)?;
                self.eval.rescale_assign(&mut out)?;
                Ok(out)
            }
        }
    }

    /// E = f mask r(Y, Z) at level(Z) - 2 with scale `s_e` ([`Loss`]: r = Y (1 + y2 Z^2) -
    /// (p0 + p1 Z + p2 Z^2 + p3 Z^3)), with the mask (if any) folded into the polynomial's
    /// coefficients so it costs no extra level:
    /// E = f Y - [p0 f mask] - [p1 f mask] Z - [p2 f mask] Z^2 - ([p3 f mask] Z - [y2 f] Y) Z^2.
    /// The label's product Y Z^2 joins the cubic's before the one ciphertext product (the
    /// labels are zero outside the mask), so the margin loss costs a plaintext product more
    /// than the paper's, no key switch and no level. Every term lands exactly on s_e, so the
    /// additions need no scale correction.
    fn error_term(
        &self,
        z: &Ciphertext,
        y: &Ciphertext,
        mask: Option<(&Geometry, usize)>,
        (f, loss): (f64, Loss),
        s_e: f64,
    ) -> Result<Ciphertext> {
        let eval = self.eval;
        let a = z.level();
        let Residual { y2, p } = loss.residual();
        let masked = |c: f64| mask.map(|(g, m)| g.label_mask(m, c));
        let (mb, ma, mq, mc) = (
            masked(p[3] * f),
            masked(p[1] * f),
            masked(p[2] * f),
            masked(-p[0] * f),
        );
        let mut z2 = eval.square(z)?;
        eval.rescale_assign(&mut z2)?;
        // B = [p3 f mask] Z - [y2 f] Y at a-1 on the scale that makes B * Z^2 land on s_e.
        let s_b = s_e * self.q(a - 1) / z2.scale();
        let mut b = self.mul_to_scale(z, coefficient(&mb, p[3] * f), s_b)?;
        if y2 != 0.0 {
            let y_at = eval.drop_to_level(y, a)?;
            let yb = self.mul_to_scale(&y_at, Coefficient::Scalar(y2 * f), s_b)?;
            eval.sub_assign(&mut b, &yb)?;
        }
        let mut cubic = eval.mul_relin(&b, &z2)?;
        eval.rescale_assign(&mut cubic)?;
        let lin = self.mul_to_scale(z, coefficient(&ma, p[1] * f), s_e)?;
        let mut e = y.clone();
        eval.mul_const_to_scale_assign(&mut e, Complex64::new(f, 0.0), s_e)?;
        eval.drop_to_level_assign(&mut e, a - 2)?;
        eval.sub_assign(&mut e, &lin)?;
        eval.sub_assign(&mut e, &cubic)?;
        if p[2] != 0.0 {
            let quad = self.mul_to_scale(&z2, coefficient(&mq, p[2] * f), s_e)?;
            eval.sub_assign(&mut e, &quad)?;
        }
        match mc {
            Some(v) => eval.add_plain_assign(&mut e, &self.encode(&v, a - 2, s_e)?)?,
            None => eval.add_const_assign(&mut e, Complex64::new(-p[0] * f, 0.0))?,
        }
        Ok(e)
    }

    /// Sum of ciphertexts (of any degree: products are summed before one relinearisation).
    fn sum(&self, terms: impl IntoIterator<Item = Result<Ciphertext>>) -> Result<Ciphertext> {
        let mut acc: Option<Ciphertext> = None;
        for t in terms {
            let t = t?;
            match acc.as_mut() {
                None => acc = Some(t),
                Some(s) => self.eval.add_assign(s, &t)?,
            }
        }
        acc.ok_or_else(|| TrainError::Data("nothing to sum".into()))
    }

    /// Relinearise and rescale (after summing degree-2 products).
    fn relin_rescale(&self, mut ct: Ciphertext) -> Result<Ciphertext> {
        self.eval.relinearize_assign(&mut ct)?;
        self.eval.rescale_assign(&mut ct)?;
        Ok(ct)
    }

    /// Rotation by any number of steps composed from the power-of-two keys (HEAAN's way).
    fn rotate_composed(&self, ct: &Ciphertext, steps: i64) -> Result<Ciphertext> {
        let mut out = ct.clone();
        let mut rest = steps.unsigned_abs();
        let mut bit = 1u64;
        while rest > 0 {
            if rest & 1 == 1 {
                let s = bit as i64 * steps.signum();
                out = self.eval.rotate(&out, s)?;
            }
            rest >>= 1;
            bit <<= 1;
        }
        Ok(out)
    }
}

/// A multiplier: the same constant in every slot, or one value per slot.
enum Coefficient<'a> {
    Scalar(f64),
    Slots(&'a [f64]),
}

fn coefficient(v: &Option<Vec<f64>>, c: f64) -> Coefficient<'_> {
    v.as_deref()
        .map_or(Coefficient::Scalar(c), Coefficient::Slots)
}

fn counts_delta(a: OpCounts, b: OpCounts) -> u64 {
    b.key_switches - a.key_switches
}

mod diagonal {
    use super::*;
    use rayon::prelude::*;

    pub(super) fn train(
        ctx: &Ctx,
        bundle: &UploadBundle,
        plan: &LevelPlan,
        iterations: usize,
        progress: &mut dyn FnMut(Progress),
        snapshot: &mut Snapshots<'_, '_>,
        state: &mut State<'_, '_>,
    ) -> Result<(Vec<Ciphertext>, TrainStats)> {
        let (eval, g, m) = (ctx.eval, ctx.g, &bundle.manifest);
        let w0 = bundle.group("w0", g.diagonals)?;
        let mut stats = TrainStats {
            levels_per_iteration: plan.per_iteration,
            ..TrainStats::default()
        };
        // Built (its matrices encoded: about a second) when the run can bootstrap.
        let refresher = match (&bundle.encapsulation, plan.per_block) {
            // Also for runs too short to refresh: the model's final refresh (see below).
            (Some(keys), Some(_)) => {
                progress(Progress::BootstrapSetup);
                let t = Instant::now();
                let r = Refresher::new(&bundle.params, &g)?;
                stats.seconds_bootstrap_setup = t.elapsed().as_secs_f64();
                stats.bootstrap_slots = r.slots();
                if r.refreshed_level() != plan.start {
                    return Err(TrainError::Mismatch(format!(
                        "refreshed level {} differs from the plan's {}",
                        r.refreshed_level(),
                        plan.start
                    )));
                }
                Some((r, keys))
            }
            _ => None,
        };
        check_levels(plan, "w0", w0)?;
        let n_o = g.diagonals;
        let steps: Vec<i64> = (0..n_o as i64).map(|t| -t).collect();
        let t0 = Instant::now();
        let before = eval.op_counts();
        let (rows, consts, loss) = match (&bundle.batches, m.batches, state.epochs.take()) {
            (None, None, None) => {
                let x = bundle.group("x", g.row_cts)?;
                let xb = bundle.group("xb", g.row_cts)?;
                let y = bundle.group("y", g.row_cts)?;
                for (name, group) in [("x", x), ("xb", xb), ("y", y)] {
                    check_levels(plan, name, group)?;
                }
                // One-time: X and X diag(b) rotated right by t < n_o, hoisted (one ModUp per
                // ciphertext). X diag(b) is first used three levels down: rotated there, where
                // it is cheaper.
                let total = 2 * g.row_cts;
                let mut done = 0;
                let mut x_rot = Vec::with_capacity(g.row_cts);
                let mut xb_rot = Vec::with_capacity(g.row_cts);
                for mi in 0..g.row_cts {
                    x_rot.push(eval.rotate_hoisted(&x[mi], &steps)?);
                    done += 1;
                    progress(Progress::Precompute(done, total));
                    let low = eval.drop_to_level(&xb[mi], plan.group_level("xb"))?;
                    xb_rot.push(eval.rotate_hoisted(&low, &steps)?);
                    done += 1;
                    progress(Progress::Precompute(done, total));
                }
                let rows = Rows::Resident { x_rot, xb_rot, y };
                (rows, schedule(iterations, g.n), Loss::Paper)
            }
            (Some(source), Some(spec), Some(epochs)) => {
                epochs.validate(spec.count())?;
                let run = epochs.steps(&spec);
                if run.len() != iterations {
                    return Err(TrainError::Data(format!(
                        "{} epochs of {} batches are {} steps, not {iterations}",
                        epochs.epochs(),
                        spec.count(),
                        run.len()
                    )));
                }
                let consts = run.iter().map(|s| s.constants).collect();
                let rows = Rows::Streamed {
                    source: source.as_ref(),
                    spec,
                    run,
                };
                (rows, consts, epochs.loss())
            }
            (_, Some(_), None) => {
                return Err(TrainError::Data(
                    "a mini-batch upload needs the order of its batches (epochs)".into(),
                ));
            }
            (_, None, Some(_)) => {
                return Err(TrainError::Data(
                    "epochs are for mini-batch uploads; this upload is one batch (use iterations)"
                        .into(),
                ));
            }
            _ => {
                return Err(TrainError::Mismatch(
                    "the manifest's batches and the upload's batch files disagree".into(),
                ));
            }
        };
        stats.key_switches_precompute = counts_delta(before, eval.op_counts());
        stats.seconds_precompute = t0.elapsed().as_secs_f64();

        let s_e = bundle.params.default_scale();
        // From the upload's initial weights, or from a checkpoint (its state sits at a
        // level the plan reaches: at most where a refresh lands, and above what one more
        // iteration spends or at the level a refresh starts from).
        let (first, mut v, mut v_prev) = match state.resume.take() {
            Some(c) if c.order != state.order => {
                return Err(TrainError::Mismatch(
                    "checkpoint: made for another order of the batches (resume with the same --epochs and --shuffle-seed)".into(),
                ));
            }
            Some(c) => {
                let level = c.v[0].level();
                if level > plan.start || c.v_prev[0].level() < level {
                    return Err(TrainError::Mismatch(format!(
                        "checkpoint: state at level {level} (previous at {}), the plan refreshes to {}",
                        c.v_prev[0].level(),
                        plan.start
                    )));
                }
                (c.iteration, c.v, Some(c.v_prev))
            }
            None => (
                0,
                w0.iter()
                    .map(|ct| eval.drop_to_level(ct, plan.start))
                    .collect::<volley_ckks::Result<_>>()?,
                None,
            ),
        };
        for (t, step) in consts.iter().enumerate().skip(first) {
            // Refresh when another iteration would leave no level to pack the state (the
            // plan's block length; see `refresh`).
            let refresh = (&refresher, eval, s_e);
            refresh_below(
                plan.per_iteration + 1,
                refresh,
                &mut v,
                &mut v_prev,
                &mut stats,
            )?;
            let t_start = Instant::now();
            let before = eval.op_counts();
            let a = v[0].level();
            // Per row ciphertext: Z = sum_t D_t(V) (.) rot(X, -t) (one relinearisation for
            // all n_o products, then the fold over j = k (mod n_o)); E = (1 + gamma) rho
            // r(Y, Z) masked and replicated back over each row; its products with
            // rot(X diag(b), -t) summed per diagonal, unrelinearised.
            // The epoch's learning-rate multiplier joins 1 + gamma in the error term's
            // constant (`batches`): no level, and the same product as the reference's.
            let rate = match &rows {
                Rows::Streamed { run, .. } => run[t].rate,
                Rows::Resident { .. } => 1.0,
            };
            let f = ((1.0 + step.gamma) * rate, loss);
            let mut grads = Gradient::default();
            match &rows {
                Rows::Resident { x_rot, xb_rot, y } => {
                    for mi in 0..g.row_cts {
                        let e = error_rows(ctx, &g, &v, &x_rot[mi], &y[mi], mi, f)?;
                        grads.add(ctx, &e, &xb_rot[mi])?;
                    }
                }
                Rows::Streamed { source, spec, run } => {
                    let batch = run[t].batch;
                    // This batch's shapes: its own row count masks the labels.
                    let gb = Geometry::new(
                        Schedule::Diagonal,
                        spec.range(batch).len(),
                        g.c,
                        g.d,
                        g.slots,
                    )?;
                    let mut cts = source.open(batch)?;
                    let mut next = |what: &str, level: usize| -> Result<Ciphertext> {
                        let ct = cts.next().ok_or_else(|| {
                            TrainError::Mismatch(format!(
                                "batch {batch}: fewer ciphertexts than its {} rows need",
                                gb.n
                            ))
                        })??;
                        crate::inference::check_group(
                            &format!("batch {batch}, {what}"),
                            std::slice::from_ref(&ct),
                            1,
                            g.slots,
                            level,
                        )?;
                        Ok(ct)
                    };
                    for mi in 0..gb.row_cts {
                        let x = next("x", a)?;
                        let xb = next("xb", a.saturating_sub(3))?;
                        let y = next("y", a)?;
                        let x_rot = eval.rotate_hoisted(&eval.drop_to_level(&x, a)?, &steps)?;
                        let e = error_rows(ctx, &gb, &v, &x_rot, &y, mi, f)?;
                        drop(x_rot);
                        let xb = eval.drop_to_level(&xb, e.level())?;
                        grads.add(ctx, &e, &eval.rotate_hoisted(&xb, &steps)?)?;
                    }
                    if cts.next().is_some() {
                        return Err(TrainError::Mismatch(format!(
                            "batch {batch}: more ciphertexts than its {} rows need",
                            gb.n
                        )));
                    }
                }
            }
            // Per diagonal: one relinearisation, then the fold over the rows.
            let grads = grads.finish(ctx, &g)?;
            let (s_g, l_g) = (grads[0].scale(), grads[0].level());
            // T = W_t + (1 + gamma) Q, with W_t = (1 - eta_{t-1}) V_t + eta_{t-1} V_{t-1}
            // (W_0 = V_0): only V is carried, and the combination spends levels of operands
            // that sit above the gradient, so it adds no depth.
            let next: Vec<Ciphertext> = (0..n_o)
                .map(|td| -> Result<Ciphertext> {
                    let w = match (&v_prev, t) {
                        (Some(vp), t) if t > 0 => ctx.combine(
                            &v[td],
                            1.0 - consts[t - 1].eta,
                            Some((&vp[td], consts[t - 1].eta)),
                            s_g,
                            l_g,
                        )?,
                        _ => ctx.combine(&v[td], 1.0, None, s_g, l_g)?,
                    };
                    let mut out = grads[td].clone();
                    eval.add_assign(&mut out, &w)?;
                    Ok(out)
                })
                .collect::<Result<_>>()?;
            v_prev = Some(std::mem::replace(&mut v, next));
            stats
                .key_switches_per_iteration
                .push(counts_delta(before, eval.op_counts()));
            stats
                .seconds_per_iteration
                .push(t_start.elapsed().as_secs_f64());
            if let Some(vp) = &v_prev {
                if t + 1 < iterations && snapshot.due(t + 1) {
                    snapshot.send(t + 1, &weights_of(ctx, &v, vp, step.eta, s_e)?, eval)?;
                }
                // After the snapshot: a run resumed from this checkpoint has sent it.
                state.save(t + 1, iterations, &v, vp)?;
            }
            progress(Progress::Iteration(t + 1, iterations));
            snapshot.stop_if_cancelled()?;
        }
        // The model must keep a level for encrypted inference (`inference`): with
        // bootstrapping, refresh once more when the weights would land at level 0.
        refresh_below(2, (&refresher, eval, s_e), &mut v, &mut v_prev, &mut stats)?;
        let before = eval.op_counts();
        let last = consts[iterations - 1].eta;
        let vp = v_prev.ok_or_else(|| TrainError::Data("no iterations".into()))?;
        let w = weights_of(ctx, &v, &vp, last, s_e)?;
        stats.key_switches_final = counts_delta(before, eval.op_counts());
        if snapshot.due(iterations) {
            snapshot.send(iterations, &w, eval)?;
        }
        stats.op_counts = eval.op_counts();
        Ok((w, stats))
    }

    /// Every ciphertext of a group must sit at or above the level the plan first uses it at.
    fn check_levels(plan: &LevelPlan, name: &str, group: &[Ciphertext]) -> Result<()> {
        let want = plan.group_level(name);
        match group.iter().find(|ct| ct.level() < want) {
            Some(ct) => Err(TrainError::Mismatch(format!(
                "the upload's {name:?} ciphertexts are at level {}, the plan needs {want}",
                ct.level()
            ))),
            None => Ok(()),
        }
    }

    /// The rows an iteration reads: the whole upload, rotated once (full batch), or one
    /// batch per step, rotated as it is read (mini-batches: memory bounded by one row
    /// ciphertext's rotations, whatever the number of rows).
    enum Rows<'b> {
        Resident {
            x_rot: Vec<Vec<Ciphertext>>,
            xb_rot: Vec<Vec<Ciphertext>>,
            y: &'b [Ciphertext],
        },
        Streamed {
            source: &'b dyn BatchSource,
            spec: BatchSpec,
            run: Vec<Step>,
        },
    }

    /// The error term of row ciphertext `mi` replicated over its rows:
    /// E = f r(Y, Z) ([`Ctx::error_term`]) with Z = sum_t D_t(V) (.) rot(X, -t) folded over
    /// j = k (mod n_o).
    fn error_rows(
        ctx: &Ctx,
        g: &Geometry,
        v: &[Ciphertext],
        x_rot: &[Ciphertext],
        y: &Ciphertext,
        mi: usize,
        f: (f64, Loss),
    ) -> Result<Ciphertext> {
        let (eval, n_o) = (ctx.eval, g.diagonals);
        let a = v[0].level();
        let products = v
            .iter()
            .zip(x_rot)
            .map(|(d, xr)| Ok(eval.mul_no_relin(d, &eval.drop_to_level(xr, a)?)?));
        let s = ctx.relin_rescale(ctx.sum(products)?)?;
        let z = eval.inner_sum(&s, n_o as i64, g.d_hat / n_o)?;
        let e = ctx.error_term(&z, y, Some((g, mi)), f, ctx.eval.params().default_scale())?;
        Ok(eval.replicate(&e, n_o as i64, g.d_hat / n_o)?)
    }

    /// The gradient diagonals being summed over row ciphertexts: sum_m E_m (.) rot(X_m
    /// diag(b), -t) per diagonal t, unrelinearised (degree 2) until [`Self::finish`].
    #[derive(Default)]
    struct Gradient(Option<Vec<Ciphertext>>);

    impl Gradient {
        fn add(&mut self, ctx: &Ctx, e: &Ciphertext, xb_rot: &[Ciphertext]) -> Result<()> {
            let eval = ctx.eval;
            let le = e.level();
            let products: Vec<Ciphertext> = xb_rot
                .par_iter()
                .map(|xb| Ok(eval.mul_no_relin(e, &eval.drop_to_level(xb, le)?)?))
                .collect::<Result<_>>()?;
            match self.0.as_mut() {
                None => self.0 = Some(products),
                Some(acc) => acc
                    .par_iter_mut()
                    .zip(&products)
                    .try_for_each(|(a, p)| eval.add_assign(a, p))?,
            }
            Ok(())
        }

        /// Relinearises each diagonal once, rescales, and folds over the rows.
        fn finish(self, ctx: &Ctx, g: &Geometry) -> Result<Vec<Ciphertext>> {
            let acc = self
                .0
                .ok_or_else(|| TrainError::Data("no rows in the batch".into()))?;
            acc.into_par_iter()
                .map(|s| {
                    let s = ctx.relin_rescale(s)?;
                    Ok(ctx.eval.inner_sum(&s, g.d_hat as i64, g.rows_per_ct)?)
                })
                .collect()
        }
    }

    /// Refreshes (V, V_{t-1}) by bootstrapping when V is below `level` and the run can.
    fn refresh_below(
        level: usize,
        (refresher, eval, scale): (
            &Option<(Refresher, &volley_ckks::EncapsulationKeys)>,
            &Evaluator,
            f64,
        ),
        v: &mut Vec<Ciphertext>,
        v_prev: &mut Option<Vec<Ciphertext>>,
        stats: &mut TrainStats,
    ) -> Result<()> {
        if let (Some((r, keys)), Some(vp)) = (refresher, v_prev.as_ref()) {
            if v[0].level() < level {
                let t = Instant::now();
                let seconds = &mut stats.seconds_refresh_stages;
                let (nv, nvp) = r.refresh(eval, keys, v, vp, scale, seconds)?;
                *v = nv;
                *v_prev = Some(nvp);
                stats.bootstraps += 1;
                stats.seconds_bootstrapping += t.elapsed().as_secs_f64();
            }
        }
        Ok(())
    }

    /// The model after an iteration: W = (1 - eta) V_t + eta V_{t-1} (one level below V).
    fn weights_of(
        ctx: &Ctx,
        v: &[Ciphertext],
        vp: &[Ciphertext],
        eta: f64,
        scale: f64,
    ) -> Result<Vec<Ciphertext>> {
        let level = v
            .first()
            .map(Ciphertext::level)
            .and_then(|l| l.checked_sub(1))
            .ok_or_else(|| TrainError::Capacity("no level left for the weights".into()))?;
        v.iter()
            .zip(vp)
            .map(|(a, b)| ctx.combine(a, 1.0 - eta, Some((b, eta)), scale, level))
            .collect()
    }
}

mod paper {
    //! The paper's Volley Revolver schedule, as its code does it (see
    //! docs: "Volley Revolver packing"), so its cost can be measured against ours.
    use super::*;

    pub(super) fn train(
        ctx: &Ctx,
        bundle: &UploadBundle,
        iterations: usize,
        progress: &mut dyn FnMut(Progress),
        snapshot: &mut Snapshots<'_, '_>,
    ) -> Result<(Vec<Ciphertext>, TrainStats)> {
        let (eval, g) = (ctx.eval, ctx.g);
        let x = bundle.group("x", g.row_cts)?;
        let y = bundle.group("y", g.row_cts)?;
        let b = bundle.group("b", 1)?;
        let w0 = bundle.group("w0", 1)?;
        let (r, dh, c, slots) = (g.rows_per_ct, g.d_hat, g.c, g.slots);
        let mask = |f: &dyn Fn(usize, usize) -> bool| -> Vec<f64> {
            (0..slots).map(|p| f64::from(f(p / dh, p % dh))).collect()
        };
        let col0 = mask(&|_, j| j == 0);
        let s_e = bundle.params.default_scale();
        let mut stats = TrainStats::default();
        let consts = schedule(iterations, g.n);
        let mut w = w0[0].clone();
        let mut v = w0[0].clone();
        for (t, step) in consts.iter().enumerate() {
            let t_start = Instant::now();
            let before = eval.op_counts();
            let a = v.level();
            // The revolver: V rotated by s rows, s < r, so block i meets V's row (i + s) mod r.
            let mut v_rot = vec![v.clone()];
            for s in 1..r {
                let next = eval.rotate(&v_rot[s - 1], dh as i64)?;
                v_rot.push(next);
            }
            let mut z_cts = Vec::with_capacity(g.row_cts);
            for xm in x {
                let xm = eval.drop_to_level(xm, a)?;
                let terms = v_rot.iter().enumerate().map(|(s, vr)| {
                    let mut p = eval.mul_relin(&xm, vr)?;
                    eval.rescale_assign(&mut p)?;
                    let p = eval.inner_sum(&p, 1, dh)?;
                    let p = ctx.mul_to_scale(&p, Coefficient::Slots(&col0), s_e)?;
                    let p = eval.replicate(&p, 1, dh)?;
                    let keep = mask(&|i, j| j == (i + s) % r && j < c);
                    ctx.mul_to_scale(&p, Coefficient::Slots(&keep), s_e)
                });
                z_cts.push(ctx.sum(terms)?);
            }
            // E = Y - sigma(Z) (the (1 + gamma) factor goes to b below).
            let e: Vec<Ciphertext> = z_cts
                .iter()
                .zip(y)
                .map(|(z, ym)| ctx.error_term(z, ym, None, (1.0, Loss::Paper), s_e))
                .collect::<Result<_>>()?;
            // G = E^T X, one class row at a time.
            let mut grad: Option<Ciphertext> = None;
            for k in 0..c {
                let class_k = mask(&|i, j| j == k && i < r);
                let products = e.iter().zip(x).map(|(em, xm)| {
                    let ek = ctx.mul_to_scale(em, Coefficient::Slots(&class_k), s_e)?;
                    let ek = ctx.rotate_composed(&ek, k as i64)?;
                    let ek = eval.replicate(&ek, 1, dh)?;
                    Ok(eval.mul_no_relin(&ek, &eval.drop_to_level(xm, ek.level())?)?)
                });
                let gk = ctx.relin_rescale(ctx.sum(products)?)?;
                let gk = eval.inner_sum(&gk, dh as i64, r)?;
                let row_k = mask(&|i, _| i == k);
                let gk = ctx.mul_to_scale(&gk, Coefficient::Slots(&row_k), s_e)?;
                match grad.as_mut() {
                    None => grad = Some(gk),
                    Some(gs) => eval.add_assign(gs, &gk)?,
                }
            }
            let grad = grad.ok_or_else(|| TrainError::Data("no classes".into()))?;
            // Q = (1 + gamma) b (.) G; the constant is applied to b at its (higher) level.
            let mut bt = b[0].clone();
            eval.mul_const_to_scale_assign(&mut bt, Complex64::new(1.0 + step.gamma, 0.0), s_e)?;
            eval.drop_to_level_assign(&mut bt, grad.level())?;
            let mut q = eval.mul_relin(&bt, &grad)?;
            eval.rescale_assign(&mut q)?;
            // T = W + Q; W <- (1 - eta) T + eta V; V <- T.
            let mut tt = ctx.combine(&w, 1.0, None, q.scale(), q.level())?;
            eval.add_assign(&mut tt, &q)?;
            w = ctx.combine(
                &tt,
                1.0 - step.eta,
                Some((&v, step.eta)),
                s_e,
                tt.level() - 1,
            )?;
            v = tt;
            stats
                .key_switches_per_iteration
                .push(counts_delta(before, eval.op_counts()));
            stats
                .seconds_per_iteration
                .push(t_start.elapsed().as_secs_f64());
            if snapshot.due(t + 1) {
                snapshot.send(t + 1, std::slice::from_ref(&w), eval)?;
            }
            progress(Progress::Iteration(t + 1, iterations));
            snapshot.stop_if_cancelled()?;
        }
        stats.op_counts = eval.op_counts();
        Ok((vec![w], stats))
    }
}
