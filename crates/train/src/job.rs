//! A training job on an upload directory, start to finish: what `volley train` runs and what
//! the network service runs for each of its jobs (one home for the run's directories,
//! checkpoints, resumption and cancellation).
//!
//! The model directory is filled while training (snapshots as they come) and renamed into
//! place only when everything is written. A resumable run (checkpoints, or a resumption)
//! works in `.OUT.partial/` ([`crate::dirs::partial_dir`]), which survives the process and
//! is kept on error and on cancellation, so a killed run continues from its last
//! checkpoint and ends with the model of an uninterrupted run, bit for bit.

use crate::algorithm::Loss;
use crate::batches::Epochs;
use crate::bundle::Manifest;
use crate::checkpoint::{Checkpoint, CheckpointRef};
use crate::container::write_ciphertexts;
use crate::dirs::{
    CHECKPOINT_FILE, SNAPSHOT_DIR, load_bundle, partial_dir, read, snapshot_file,
    write_atomic_streamed, write_dir_atomic, write_dir_resumable, write_model_files,
};
use crate::error::{Result, TrainError};
use crate::server::{self, Progress, RunOptions, TrainStats};
use std::path::Path;
use std::sync::atomic::AtomicBool;

/// Most iterations a job may ask for (a bound on what a request can make the server do).
pub const MAX_ITERATIONS: usize = 1 << 20;

/// What a training job asks for: the options of `volley train` on an upload, also the body
/// of the service's job request.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct TrainSpec {
    /// Iterations of a full-batch upload (default: what the upload was made for).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iters: Option<usize>,
    /// Epochs of a mini-batch upload (required for one, refused for a full-batch upload).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub epochs: Option<usize>,
    /// The seed of the batches' order in each epoch (the client's choice).
    #[serde(default)]
    pub shuffle_seed: u64,
    /// Mini-batch runs: the learning-rate multiplier of each epoch (the last repeats; none:
    /// 1). See `volley_train::batches`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub epoch_rates: Option<Vec<f64>>,
    /// Mini-batch runs: the error term (`paper`, the default, or `margin`; see
    /// `volley_train::algorithm::Loss`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub loss: Option<Loss>,
    /// Write the encrypted model every this many iterations (and after the last) into the
    /// model's `snapshots/`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot_every: Option<usize>,
    /// Save the state every this many iterations (into the run's work directory).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checkpoint_every: Option<usize>,
}

/// The run a [`TrainSpec`] means on one upload.
#[derive(Clone, Debug)]
pub struct Plan {
    /// Iterations (steps): epochs times batches for a mini-batch upload.
    pub iterations: usize,
    /// The batches' order per epoch, for a mini-batch upload.
    pub epochs: Option<Epochs>,
    /// Batches per epoch (1 for a full-batch upload).
    pub batches: usize,
}

impl TrainSpec {
    /// The mini-batch run these options mean over `batches` batches for `epochs` epochs:
    /// the shuffled order, the epoch rates and the loss (the plaintext reference builds
    /// its run here too, so both sides replay the same choices).
    pub fn epochs_of(&self, batches: usize, epochs: usize) -> Result<Epochs> {
        Ok(Epochs::shuffled(batches, epochs, self.shuffle_seed)?
            .with_rates(self.epoch_rates.clone().unwrap_or_default())?
            .with_loss(self.loss.unwrap_or_default()))
    }

    /// Checks the options against the upload's manifest (without reading anything else):
    /// the service refuses a job here, before queueing it.
    pub fn plan(&self, manifest: &Manifest) -> Result<Plan> {
        let bad = |m: &str| Err(TrainError::Data(m.into()));
        if self.snapshot_every == Some(0) || self.checkpoint_every == Some(0) {
            return bad("snapshot and checkpoint intervals must be at least 1");
        }
        if manifest.batches.is_none() && (self.epoch_rates.is_some() || self.loss.is_some()) {
            // The full-batch run is the paper's algorithm, reproduced exactly.
            return bad(
                "epoch rates and the loss are options of mini-batch uploads (`encrypt --batch-rows`)",
            );
        }
        let epochs = match (manifest.batches, self.epochs, self.iters) {
            (Some(_), _, Some(_)) => {
                return bad("this upload is in mini-batches: give epochs, not iterations");
            }
            (Some(spec), Some(e), None) => Some(self.epochs_of(spec.count(), e)?),
            (Some(_), None, None) => return bad("this upload is in mini-batches: pass --epochs"),
            (None, Some(_), _) => {
                return bad(
                    "--epochs is for mini-batch uploads (`encrypt --batch-rows`); use --iters",
                );
            }
            (None, None, _) => None,
        };
        let batches = manifest.batches.map_or(1, |s| s.count());
        let iterations = match &epochs {
            Some(e) => e.epochs().saturating_mul(batches),
            None => self.iters.unwrap_or(manifest.iterations),
        };
        if iterations == 0 || iterations > MAX_ITERATIONS {
            return Err(TrainError::Data(format!(
                "{iterations} iterations: between 1 and {MAX_ITERATIONS}"
            )));
        }
        Ok(Plan {
            iterations,
            epochs,
            batches,
        })
    }
}

/// What a finished job reports.
#[derive(Clone, Debug, Default)]
pub struct Outcome {
    /// The server's measurements.
    pub stats: TrainStats,
    /// Iterations of the run.
    pub iterations: usize,
    /// Batches per epoch (1 for a full-batch upload).
    pub batches: usize,
    /// Iterations already done by the checkpoint the run resumed from.
    pub resumed_from: Option<usize>,
}

/// How a job runs: whether it continues an interrupted run, and its stop signal.
#[derive(Clone, Copy, Debug, Default)]
pub struct Control<'a> {
    /// Continue from the checkpoint in the work directory, if one is there; without this,
    /// a work directory left by an interrupted run is an error (it is never overwritten).
    pub resume: bool,
    /// Set by another thread to stop the run after its current iteration; the work
    /// directory and its checkpoint are kept ([`TrainError::Cancelled`]).
    pub cancel: Option<&'a AtomicBool>,
}

/// Trains the upload in `bundle_dir` as `spec` asks and writes the encrypted model to
/// `out` (atomically). `progress` hears every iteration.
pub fn run(
    bundle_dir: &Path,
    out: &Path,
    spec: &TrainSpec,
    control: Control<'_>,
    progress: &mut dyn FnMut(Progress),
) -> Result<Outcome> {
    let bundle = load_bundle(bundle_dir)?;
    let plan = spec.plan(&bundle.manifest)?;
    let iters = plan.iterations;
    let resumable = spec.checkpoint_every.is_some() || control.resume;
    let work = resumable.then(|| partial_dir(out)).transpose()?;
    if let Some(w) = &work {
        if w.exists() && !control.resume {
            return Err(TrainError::Data(format!(
                "{} holds an interrupted run: pass --resume to continue it, or delete it",
                w.display()
            )));
        }
    }
    let mut outcome = Outcome {
        iterations: iters,
        batches: plan.batches,
        ..Outcome::default()
    };
    let fill = |tmp: &Path| -> Result<()> {
        let snaps = tmp.join(SNAPSHOT_DIR);
        if spec.snapshot_every.is_some() {
            std::fs::create_dir_all(&snaps).map_err(|e| TrainError::io(&snaps, e))?;
        }
        let checkpoint_path = tmp.join(CHECKPOINT_FILE);
        let resume = if control.resume && checkpoint_path.exists() {
            let c = Checkpoint::from_bytes(
                &read(&checkpoint_path)?,
                &bundle.manifest,
                &bundle.params,
                iters,
            )
            .map_err(|e| TrainError::Data(format!("{}: {e}", checkpoint_path.display())))?;
            outcome.resumed_from = Some(c.iteration);
            progress(Progress::Resumed(c.iteration, iters));
            Some(c)
        } else {
            None
        };
        let mut sink = |k: usize, w: Vec<volley_ckks::Ciphertext>| -> Result<()> {
            write_atomic_streamed(&snaps.join(snapshot_file(k)), |f| write_ciphertexts(f, &w))
        };
        let manifest = &bundle.manifest;
        let mut save = |c: CheckpointRef<'_>| -> Result<()> {
            write_atomic_streamed(&checkpoint_path, |f| c.write_to(manifest, f))
        };
        let options = RunOptions {
            snapshot_every: spec.snapshot_every,
            checkpoint_every: spec.checkpoint_every,
            checkpoints: Some(&mut save),
            resume,
            epochs: plan.epochs.clone(),
            cancel: control.cancel,
        };
        let (model, stats) = server::train_run(&bundle, iters, options, progress, &mut sink)?;
        outcome.stats = stats;
        write_model_files(tmp, &model, &bundle.params)?;
        // The finished model needs no checkpoint.
        let _ = std::fs::remove_file(&checkpoint_path);
        Ok(())
    };
    match &work {
        Some(w) => write_dir_resumable(out, w, fill)?,
        None => write_dir_atomic(out, fill)?,
    }
    Ok(outcome)
}
