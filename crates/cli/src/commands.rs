//! The client and server commands, each a separate process working through files, and the
//! all-in-one `demo`.

use crate::plot::{CurvePoint, learning_curve_png};
use crate::report::{DataReport, DemoReport, ParamsReport, RefreshSeconds};
use crate::util::{CliError, Ui, peak_rss_bytes};
use std::path::{Path, PathBuf};
use std::time::Instant;
use volley_train::dirs::{
    KeyDir, cts_from_bytes, list_snapshots, load_keys, load_manifest, load_upload_record,
    load_weights, partial_dir, read, save_batched_bundle, save_bundle, save_keys,
    save_upload_record, save_weights, write_file_atomic,
};

use crate::report::TrainReport;
use volley_train::algorithm::{
    Loss, Weights, accuracy, agreement, max_abs_difference, train_minibatch, train_plain,
    train_plain_each,
};
use volley_train::batches::{BatchSpec, DEFAULT_LEARNING_RATE};
use volley_train::bundle::{EncryptedModel, Manifest};
use volley_train::client::Client;
use volley_train::data::{Design, FeatureTable, parse_range};
use volley_train::job::{self, TrainSpec};
use volley_train::layout::{Geometry, Schedule};
use volley_train::server::{self, Progress, TrainStats};

/// Reads a feature file of either format (`FeatureTable::read`: the one reader).
pub fn load_features(path: &Path) -> Result<FeatureTable, CliError> {
    Ok(FeatureTable::read(path)?)
}

pub(crate) fn rows_or_all<'t>(
    table: &'t FeatureTable,
    spec: Option<&str>,
) -> Result<std::borrow::Cow<'t, FeatureTable>, CliError> {
    // The whole table is borrowed, not copied (60,000 rows of 784 features are 376 MB).
    match spec {
        Some(s) => Ok(std::borrow::Cow::Owned(table.select(&parse_range(s)?)?)),
        None => Ok(std::borrow::Cow::Borrowed(table)),
    }
}

fn parse_schedule(s: &str) -> Result<Schedule, CliError> {
    Schedule::parse(s).ok_or_else(|| {
        CliError::Msg(format!(
            "unknown schedule {s:?} (expected diagonal or paper)"
        ))
    })
}

/// Shared data arguments.
#[derive(clap::Args, Debug, Clone)]
pub struct DataArgs {
    /// Feature file: the paper's CSV (label, then features) or `volley features` binary output.
    #[arg(long)]
    pub features: PathBuf,
    /// Training rows, half-open START..END (default: all).
    #[arg(long)]
    pub train_rows: Option<String>,
    /// Number of classes (default: 1 + the largest label in the file).
    #[arg(long)]
    pub classes: Option<usize>,
}

fn classes(table: &FeatureTable, arg: Option<usize>) -> usize {
    arg.unwrap_or_else(|| table.num_classes())
}

fn check_width(w_d: usize, table: &FeatureTable) -> Result<(), CliError> {
    if w_d != table.cols + 1 {
        return Err(CliError::Msg(format!(
            "the weights have {} features but the data has {}",
            w_d - 1,
            table.cols
        )));
    }
    Ok(())
}

fn test_rows(t: &FeatureTable) -> Vec<&[f64]> {
    (0..t.rows()).map(|i| t.row(i)).collect()
}

// ----- keygen -----

/// `volley keygen`.
#[derive(clap::Args, Debug)]
pub struct KeygenArgs {
    /// Key directory to create (holds the secret key: keep it on the client).
    #[arg(long)]
    pub keys: PathBuf,
    /// Iterations the parameters must support.
    #[arg(long, default_value_t = 2)]
    pub iters: usize,
    /// Matrix-product schedule: diagonal (default) or paper.
    #[arg(long, default_value = "diagonal")]
    pub schedule: String,
    /// Keep a level for encrypted inference (`volley predict`) in runs without
    /// bootstrapping (4 iterations or fewer): about a quarter more time and memory for
    /// them. Models of runs with bootstrapping always keep one.
    #[arg(long)]
    pub inference: bool,
}

/// Generates parameters and the secret key into the key directory.
pub fn keygen(args: &KeygenArgs) -> Result<(), CliError> {
    let schedule = parse_schedule(&args.schedule)?;
    let client = Client::generate(schedule, args.iters, args.inference)?;
    save_keys(&args.keys, &client, schedule, args.iters)?;
    eprintln!(
        "keys for {} ({}) written to {}",
        client.params_name(),
        client.params().summary(),
        args.keys.display()
    );
    Ok(())
}

// ----- encrypt -----

/// `volley encrypt`.
#[derive(clap::Args, Debug)]
pub struct EncryptArgs {
    /// Key directory from `volley keygen`.
    #[arg(long)]
    pub keys: PathBuf,
    #[command(flatten)]
    pub data: DataArgs,
    /// Initial weight value (the paper: 0; its C++ used 0.0128).
    #[arg(long, default_value_t = 0.0)]
    pub init: f64,
    /// Upload bundle directory to write.
    #[arg(long)]
    pub out: PathBuf,
    /// Mini-batches: split the training rows into batches of this many rows (the last
    /// holds the rest), one encrypted file each, written as they are made; the server
    /// streams them. Needs keys with bootstrapping (`keygen --iters 5` or more).
    #[arg(long, value_name = "ROWS")]
    pub batch_rows: Option<usize>,
    /// With --batch-rows: the learning rate lambda that scales each batch's step
    /// (see volley_train::batches).
    #[arg(long, requires = "batch_rows", default_value_t = DEFAULT_LEARNING_RATE)]
    pub learning_rate: f64,
}

fn design_for(
    client: &Client,
    schedule: Schedule,
    table: &FeatureTable,
    c: usize,
) -> Result<(Design, Geometry), CliError> {
    let probe = Geometry::new(
        schedule,
        table.rows(),
        c,
        table.cols + 1,
        client.params().max_slots(),
    )?;
    let design = Design::new(table, c, probe.d_hat)?;
    Ok((design, probe))
}

/// Packs, encrypts and writes the upload bundle.
pub fn encrypt(args: &EncryptArgs, ui: Ui) -> Result<(), CliError> {
    let kd = load_keys(&args.keys)?;
    let all = load_features(&args.data.features)?;
    let c = classes(&all, args.data.classes);
    let train = rows_or_all(&all, args.data.train_rows.as_deref())?;
    if let Some(rows) = args.batch_rows {
        return encrypt_batches(args, &kd, &train, c, rows, ui);
    }
    let (design, g) = design_for(&kd.client, kd.schedule, &train, c)?;
    let sp = ui.spinner("evaluation keys");
    let keys = kd.client.server_keys(kd.schedule, &g)?;
    sp.set_message("encrypting");
    let w0 = Weights::constant(c, design.d, g.d_hat, args.init);
    let bundle = kd
        .client
        .encrypt_upload(kd.schedule, &design, kd.iterations, &w0, keys)?;
    sp.set_message("writing");
    save_bundle(&args.out, &bundle)?;
    // The key directory records what was uploaded: `decrypt` refuses models of other shapes.
    save_upload_record(&args.keys, &bundle.manifest)?;
    sp.finish_and_clear();
    eprintln!(
        "upload bundle: {} ciphertexts, {:.1} MiB, in {}",
        bundle.manifest.ciphertext_count(),
        bundle.manifest.total_bytes() as f64 / 1048576.0,
        args.out.display()
    );
    Ok(())
}

/// `volley encrypt --batch-rows`: the mini-batch upload, one batch in memory at a time.
fn encrypt_batches(
    args: &EncryptArgs,
    kd: &KeyDir,
    table: &FeatureTable,
    classes: usize,
    batch_rows: usize,
    ui: Ui,
) -> Result<(), CliError> {
    if kd.schedule != Schedule::Diagonal {
        return Err(CliError::Msg(
            "mini-batches need keys for the diagonal schedule".into(),
        ));
    }
    let spec = BatchSpec::new(table.rows(), batch_rows, args.learning_rate)?;
    let g = Geometry::new(
        kd.schedule,
        batch_rows,
        classes,
        table.cols + 1,
        kd.client.params().max_slots(),
    )?;
    let sp = ui.spinner("evaluation keys");
    let keys = kd.client.server_keys(kd.schedule, &g)?;
    sp.finish_and_clear();
    let pb = ui.bar(spec.count() as u64, "encrypting batches");
    let w0 = Weights::constant(classes, g.d, g.d_hat, args.init);
    let manifest = save_batched_bundle(&args.out, |sink| {
        kd.client.encrypt_batches(
            table,
            classes,
            spec,
            kd.iterations,
            &w0,
            keys,
            &mut |i, cts| {
                sink(i, cts)?;
                pb.inc(1);
                Ok(())
            },
        )
    })?;
    pb.finish_and_clear();
    save_upload_record(&args.keys, &manifest)?;
    eprintln!(
        "upload bundle: {} rows in {} batches of {batch_rows}, {} ciphertexts, {:.1} MiB, in {}",
        spec.rows,
        spec.count(),
        manifest.ciphertext_count(),
        manifest.total_bytes() as f64 / 1048576.0,
        args.out.display()
    );
    Ok(())
}

// ----- train -----

/// `volley train`.
#[derive(clap::Args, Debug)]
pub struct TrainArgs {
    /// Upload bundle directory (server side).
    #[arg(long, required_unless_present = "plaintext")]
    pub bundle: Option<PathBuf>,
    /// Output: the encrypted model directory (or, with --plaintext, the weights CSV).
    #[arg(long)]
    pub out: PathBuf,
    /// Iterations (default: what the bundle was made for, or 2).
    #[arg(long)]
    pub iters: Option<usize>,
    /// Also write the encrypted model every K iterations (and after the last) into
    /// `OUT/snapshots/`, for the client's learning curve and model selection.
    #[arg(long, value_name = "K")]
    pub snapshot_every: Option<usize>,
    /// Save the training state every K iterations into `.OUT.partial/checkpoint.bin` (the
    /// run's work directory), so that a run killed at any moment can be resumed.
    #[arg(long, value_name = "K", conflicts_with = "plaintext")]
    pub checkpoint_every: Option<usize>,
    /// Continue the interrupted run in `.OUT.partial/` from its last checkpoint (same
    /// bundle and --iters): the model is the one an uninterrupted run gives, bit for bit.
    /// Without a checkpoint there, starts from the beginning.
    #[arg(long, conflicts_with = "plaintext")]
    pub resume: bool,
    /// Train the plaintext reference of the same algorithm instead (needs --features).
    #[arg(long)]
    pub plaintext: bool,
    /// With --plaintext: data.
    #[arg(long, requires = "plaintext")]
    pub features: Option<PathBuf>,
    /// With --plaintext: training rows START..END.
    #[arg(long, requires = "plaintext")]
    pub train_rows: Option<String>,
    /// With --plaintext: number of classes.
    #[arg(long, requires = "plaintext")]
    pub classes: Option<usize>,
    /// With --plaintext: initial weight.
    #[arg(long, default_value_t = 0.0)]
    pub init: f64,
    /// Mini-batch uploads: epochs (passes over the batches); the run's iterations are
    /// epochs times batches.
    #[arg(long, conflicts_with = "iters")]
    pub epochs: Option<usize>,
    /// With --epochs: the seed of the batches' order in each epoch (the client's choice;
    /// the plaintext reference with the same seed replays it).
    #[arg(long, default_value_t = 0, requires = "epochs")]
    pub shuffle_seed: u64,
    #[command(flatten)]
    pub choices: EpochChoices,
    /// With --plaintext and --epochs: rows per batch.
    #[arg(long, requires = "plaintext")]
    pub batch_rows: Option<usize>,
    /// With --plaintext and --batch-rows: the learning rate lambda.
    #[arg(long, requires = "batch_rows", default_value_t = DEFAULT_LEARNING_RATE)]
    pub learning_rate: f64,
    /// Write the run's figures as JSON (steps, seconds per step and per epoch, refreshes,
    /// peak memory).
    #[arg(long)]
    pub report: Option<PathBuf>,
}

/// The client's choices for a mini-batch run besides the order (`volley train`, `volley
/// submit`).
#[derive(clap::Args, Clone, Debug, Default)]
pub struct EpochChoices {
    /// With --epochs: the learning-rate multiplier of each epoch, comma-separated; the last
    /// repeats for later epochs (default 1). Full MNIST as raw pixels with --loss margin:
    /// 3,1,1,0.5 over an upload encrypted with --learning-rate 1.
    #[arg(
        long,
        value_delimiter = ',',
        value_name = "R,R,...",
        requires = "epochs"
    )]
    pub epoch_rates: Option<Vec<f64>>,
    /// With --epochs: the error term, `paper` (y - sigma(z) with the paper's sigmoid, the
    /// default) or `margin` (a label-signed cubic that allows larger steps; see
    /// volley_train::algorithm::Loss).
    #[arg(long, requires = "epochs")]
    pub loss: Option<Loss>,
}

impl EpochChoices {
    /// These choices in a job's options.
    pub fn spec(&self, epochs: Option<usize>, shuffle_seed: u64) -> TrainSpec {
        TrainSpec {
            epochs,
            shuffle_seed,
            epoch_rates: self.epoch_rates.clone(),
            loss: self.loss,
            ..TrainSpec::default()
        }
    }
}

fn progress_callback(ui: Ui, total_iters: usize) -> (indicatif::ProgressBar, impl FnMut(Progress)) {
    let pb = ui.bar(total_iters as u64, "preparing");
    let pb2 = pb.clone();
    let cb = move |p: Progress| match p {
        Progress::Precompute(done, total) => pb2.set_message(format!("rotating X {done}/{total}")),
        Progress::BootstrapSetup => pb2.set_message("encoding the bootstrapping matrices"),
        Progress::Resumed(..) => {}
        Progress::Iteration(done, _) => {
            pb2.set_message("training");
            pb2.set_position(done as u64);
        }
    };
    (pb, cb)
}

/// Trains (encrypted, server side; or plaintext reference).
pub fn train(args: &TrainArgs, ui: Ui) -> Result<(), CliError> {
    if args.plaintext {
        let features = args
            .features
            .as_ref()
            .ok_or_else(|| CliError::Msg("--plaintext needs --features".into()))?;
        let all = load_features(features)?;
        let c = classes(&all, args.classes);
        let t = rows_or_all(&all, args.train_rows.as_deref())?;
        let d = t.cols + 1;
        let d_hat = d.next_power_of_two();
        let design = Design::new(&t, c, d_hat)?;
        let w0 = Weights::constant(c, d, d_hat, args.init);
        let (iters, w) = match (args.batch_rows, args.epochs) {
            (Some(rows), Some(e)) => {
                let spec = BatchSpec::new(design.n, rows, args.learning_rate)?;
                let order = args
                    .choices
                    .spec(Some(e), args.shuffle_seed)
                    .epochs_of(spec.count(), e)?;
                let w = train_minibatch(&design, &spec, &order, &w0, &mut |_, _| {})?;
                (e * spec.count(), w)
            }
            (None, None) => {
                let iters = args.iters.unwrap_or(2);
                (iters, train_plain(&design, iters, &w0))
            }
            _ => {
                return Err(CliError::Msg(
                    "mini-batches need both --batch-rows and --epochs".into(),
                ));
            }
        };
        if w.w.iter().any(|v| !v.is_finite()) {
            // Seen on all 60,000 MNIST images as raw pixels: about 85 % after 30 full-batch
            // iterations, 79 % after 100, non-finite weights by 300.
            return Err(CliError::Msg(format!(
                "the plaintext reference diverged within {iters} iterations (non-finite weights): the degree-3 sigmoid approximation holds only for |x.w| <= 8; train fewer iterations"
            )));
        }
        let json = save_weights(&args.out, &w, d)?;
        eprintln!(
            "plaintext weights written to {} and {}",
            args.out.display(),
            json.display()
        );
        return Ok(());
    }
    let dir = args
        .bundle
        .as_ref()
        .ok_or_else(|| CliError::Msg("--bundle is required".into()))?;
    let spec = TrainSpec {
        iters: args.iters,
        snapshot_every: args.snapshot_every,
        checkpoint_every: args.checkpoint_every,
        ..args.choices.spec(args.epochs, args.shuffle_seed)
    };
    let started = Instant::now();
    let step_ends = std::cell::RefCell::new(Vec::new());
    // The bar's length is known once the job has read the manifest; it starts unsized.
    let (pb, mut bar) = progress_callback(ui, 0);
    let mut cb = |p: Progress| {
        match p {
            Progress::Iteration(step, total) => {
                pb.set_length(total as u64);
                step_ends
                    .borrow_mut()
                    .push((step, started.elapsed().as_secs_f64()));
            }
            Progress::Resumed(done, total) => {
                pb.set_length(total as u64);
                pb.set_position(done as u64);
                pb.suspend(|| {
                    eprintln!(
                        "resuming from the checkpoint in {} ({done} of {total} iterations done)",
                        partial_dir(&args.out)
                            .map(|p| p.display().to_string())
                            .unwrap_or_default()
                    )
                });
            }
            _ => {}
        }
        bar(p)
    };
    let control = job::Control {
        resume: args.resume,
        cancel: None,
    };
    let outcome = job::run(dir, &args.out, &spec, control, &mut cb)?;
    pb.finish_and_clear();
    let (stats, iters, batches) = (outcome.stats, outcome.iterations, outcome.batches);
    let report = TrainReport::new(
        &stats,
        &step_ends.borrow(),
        batches,
        started.elapsed().as_secs_f64(),
    );
    eprintln!(
        "encrypted model written to {} ({iters} steps, {} bootstraps, {:.1} s, seconds per epoch {:?})",
        args.out.display(),
        stats.bootstraps,
        report.seconds_total,
        report.seconds_per_epoch
    );
    if let Some(path) = &args.report {
        write_file_atomic(
            path,
            serde_json::to_string_pretty(&report)
                .unwrap_or_default()
                .as_bytes(),
        )?;
    }
    Ok(())
}

// ----- decrypt -----

/// `volley decrypt`.
#[derive(clap::Args, Debug)]
pub struct DecryptArgs {
    /// Key directory.
    #[arg(long)]
    pub keys: PathBuf,
    /// Encrypted model directory from `volley train`.
    #[arg(long)]
    pub model: PathBuf,
    /// Weights CSV to write (a JSON copy is written next to it).
    #[arg(long)]
    pub out: PathBuf,
    /// Model selection: score every snapshot on these labelled rows (the data owner's own
    /// validation rows, with --select-rows) and write the best instead of the last.
    #[arg(long, value_name = "FEATURES")]
    pub select_features: Option<PathBuf>,
    /// Rows of --select-features to score on (START..END; default all).
    #[arg(long, requires = "select_features")]
    pub select_rows: Option<String>,
}

/// The model directory's manifest and weights, checked against the key directory's record
/// of the upload (nothing the server sent sizes anything before the checks).
fn load_model_checked(
    kd: &KeyDir,
    keys_dir: &Path,
    model: &Path,
) -> Result<(Manifest, Manifest), CliError> {
    let (manifest, _) = load_manifest(model)?;
    let in_context = |e: volley_train::TrainError| {
        CliError::Msg(format!(
            "{}: {e} (key directory {})",
            model.display(),
            keys_dir.display()
        ))
    };
    kd.client.check_model_key(&manifest).map_err(in_context)?;
    let uploaded = load_upload_record(keys_dir)?;
    kd.client
        .check_model_manifest(&manifest, &uploaded)
        .map_err(in_context)?;
    Ok((manifest, uploaded))
}

/// Decrypts one weights file of a model.
fn decrypt_file(
    kd: &KeyDir,
    manifest: &Manifest,
    uploaded: &Manifest,
    path: &Path,
) -> Result<Weights, CliError> {
    let weights = cts_from_bytes(kd.client.params(), &read(path)?, path)?;
    let model = EncryptedModel {
        manifest: manifest.clone(),
        weights,
    };
    Ok(kd.client.decrypt_model(&model, uploaded)?)
}

/// Decrypts the model (or, with --select-features, every snapshot, and keeps the best).
pub fn decrypt(args: &DecryptArgs) -> Result<(), CliError> {
    if args.select_features.is_some() {
        return decrypt_select(args);
    }
    let kd = load_keys(&args.keys)?;
    let (manifest, uploaded) = load_model_checked(&kd, &args.keys, &args.model)?;
    let w = decrypt_file(&kd, &manifest, &uploaded, &args.model.join("weights.cts"))?;
    let json = save_weights(&args.out, &w, manifest.geometry.d)?;
    eprintln!(
        "weights written to {} and {}",
        args.out.display(),
        json.display()
    );
    Ok(())
}

/// Scores every snapshot on the client's rows and writes the best (the earliest of equals).
fn decrypt_select(args: &DecryptArgs) -> Result<(), CliError> {
    let kd = load_keys(&args.keys)?;
    let (manifest, uploaded) = load_model_checked(&kd, &args.keys, &args.model)?;
    let features = args
        .select_features
        .as_ref()
        .ok_or_else(|| CliError::Msg("--select-features is required".into()))?;
    let all = load_features(features)?;
    let t = rows_or_all(&all, args.select_rows.as_deref())?;
    check_width(manifest.geometry.d, &t)?;
    let snaps = list_snapshots(&args.model)?;
    if snaps.is_empty() {
        return Err(CliError::Msg(format!(
            "{}: no snapshots (train with --snapshot-every K)",
            args.model.display()
        )));
    }
    let rows = test_rows(&t);
    let mut scores = Vec::new();
    let mut best: Option<(f64, usize, Weights)> = None;
    for (k, path) in &snaps {
        let w = decrypt_file(&kd, &manifest, &uploaded, path)?;
        let acc = accuracy(&w, &rows, &t.labels);
        scores.push(serde_json::json!({"iteration": k, "accuracy": acc}));
        if best.as_ref().is_none_or(|(b, _, _)| acc > *b) {
            best = Some((acc, *k, w));
        }
    }
    let (acc, k, w) = best.ok_or_else(|| CliError::Msg("no snapshot".into()))?;
    let json = save_weights(&args.out, &w, manifest.geometry.d)?;
    let scores_path = args.out.with_extension("snapshots.json");
    write_file_atomic(
        &scores_path,
        serde_json::to_string_pretty(&serde_json::json!({
            "selected_iteration": k, "selected_accuracy": acc, "rows": t.rows(), "snapshots": scores,
        }))
        .unwrap_or_default()
        .as_bytes(),
    )?;
    eprintln!(
        "best of {} snapshots: iteration {k}, accuracy {acc:.4} on {} rows; weights written to {} and {}, scores to {}",
        snaps.len(),
        t.rows(),
        args.out.display(),
        json.display(),
        scores_path.display()
    );
    Ok(())
}

// ----- report -----

/// `volley report`: the learning curve of a model trained with --snapshot-every.
#[derive(clap::Args, Debug)]
pub struct ReportArgs {
    /// Key directory (the client's: decrypts the snapshots).
    #[arg(long)]
    pub keys: PathBuf,
    /// Model directory with snapshots.
    #[arg(long)]
    pub model: PathBuf,
    /// Feature file holding the training and test rows.
    #[arg(long)]
    pub features: PathBuf,
    /// The rows the model was trained on (for the plaintext reference).
    #[arg(long)]
    pub train_rows: String,
    /// Rows to measure test accuracy on.
    #[arg(long)]
    pub test_rows: String,
    /// The initial weight the upload used.
    #[arg(long, default_value_t = 0.0)]
    pub init: f64,
    /// PNG to draw the curve into (its points go to the same name with .json).
    #[arg(long)]
    pub out: PathBuf,
}

/// Decrypts every snapshot, scores it and the plaintext reference of the same iterations
/// on the test rows, and draws the curve.
pub fn report(args: &ReportArgs) -> Result<(), CliError> {
    let kd = load_keys(&args.keys)?;
    let (manifest, uploaded) = load_model_checked(&kd, &args.keys, &args.model)?;
    let all = load_features(&args.features)?;
    let train_t = all.select(&parse_range(&args.train_rows)?)?;
    let test_t = all.select(&parse_range(&args.test_rows)?)?;
    check_width(manifest.geometry.d, &test_t)?;
    let g = manifest.geometry;
    if train_t.rows() != g.n {
        return Err(CliError::Msg(format!(
            "--train-rows has {} rows, the model was trained on {}",
            train_t.rows(),
            g.n
        )));
    }
    let design = Design::new(&train_t, g.c, g.d_hat)?;
    let w0 = Weights::constant(g.c, design.d, g.d_hat, args.init);
    let rows = test_rows(&test_t);
    let snaps = list_snapshots(&args.model)?;
    if let Some((k, path)) = snaps.iter().find(|(k, _)| *k == 0 || *k > 1_000_000) {
        return Err(CliError::Msg(format!(
            "{}: snapshot of {k} iterations",
            path.display()
        )));
    }
    // The reference of every snapshot's iteration count in one pass.
    let last = snaps.last().map_or(0, |(k, _)| *k);
    let mut plain_acc = vec![0f64; last + 1];
    train_plain_each(&design, last, &w0, &mut |k, w| {
        plain_acc[k] = accuracy(w, &rows, &test_t.labels)
    });
    let mut points = Vec::new();
    for (k, path) in &snaps {
        let w = decrypt_file(&kd, &manifest, &uploaded, path)?;
        points.push(CurvePoint {
            iteration: *k,
            he_test_accuracy: accuracy(&w, &rows, &test_t.labels),
            plain_test_accuracy: plain_acc[*k],
        });
    }
    if points.is_empty() {
        return Err(CliError::Msg(format!(
            "{}: no snapshots (train with --snapshot-every K)",
            args.model.display()
        )));
    }
    write_curve(&args.out, &points, g.n, test_t.rows())?;
    Ok(())
}

/// Writes the curve's PNG and, beside it, its points as JSON.
fn write_curve(
    png: &Path,
    points: &[CurvePoint],
    train_rows: usize,
    test_rows: usize,
) -> Result<(), CliError> {
    let title = format!("Learning curve: {train_rows} training rows, {test_rows} test rows");
    learning_curve_png(png, points, &title)?;
    let json = png.with_extension("json");
    write_file_atomic(
        &json,
        serde_json::to_string_pretty(&serde_json::json!({ "points": points }))
            .unwrap_or_default()
            .as_bytes(),
    )?;
    eprintln!(
        "learning curve written to {} and {}",
        png.display(),
        json.display()
    );
    Ok(())
}

// ----- evaluate -----

/// `volley evaluate`.
#[derive(clap::Args, Debug)]
pub struct EvaluateArgs {
    /// Weights (CSV or JSON from `volley decrypt` / `volley train --plaintext`).
    #[arg(long)]
    pub weights: PathBuf,
    /// Feature file.
    #[arg(long)]
    pub features: PathBuf,
    /// Rows to evaluate, START..END (default: all).
    #[arg(long)]
    pub rows: Option<String>,
    /// Print a JSON object.
    #[arg(long)]
    pub json: bool,
}

/// Accuracy of a weights file.
pub fn evaluate(args: &EvaluateArgs) -> Result<(), CliError> {
    let (w, d) = load_weights(&args.weights)?;
    let all = load_features(&args.features)?;
    let t = rows_or_all(&all, args.rows.as_deref())?;
    check_width(d, &t)?;
    let acc = accuracy(&w, &test_rows(&t), &t.labels);
    if args.json {
        println!("{}", serde_json::json!({"accuracy": acc, "rows": t.rows()}));
    } else {
        println!("accuracy {:.4} on {} rows", acc, t.rows());
    }
    Ok(())
}

// ----- demo -----

/// `volley demo`: from a feature file, or (without `--features`) from images through the
/// pretrained backbone: by default the paper's setting, the first 128 MNIST training images
/// and the 10,000 test images, with torchvision's weights and MNIST downloaded on first use.
#[derive(clap::Args, Debug)]
pub struct DemoArgs {
    /// Feature file (CSV or binary). Without it, features are extracted from images.
    #[arg(long)]
    pub features: Option<PathBuf>,
    /// Image source and backbone (when no --features).
    #[command(flatten)]
    pub images: crate::features::ImageArgs,
    /// Images: how many training images (from the start of the training split).
    #[arg(long, default_value_t = 128, conflicts_with = "features")]
    pub train_limit: usize,
    /// Images: how many test images (from the start of the test split).
    #[arg(long, default_value_t = 10_000, conflicts_with = "features")]
    pub test_limit: usize,
    /// Training rows of the feature file (default 0..128).
    #[arg(long, default_value = "0..128")]
    pub train_rows: String,
    /// Test rows (default: every row after the training rows).
    #[arg(long)]
    pub test_rows: Option<String>,
    /// Iterations.
    #[arg(long, default_value_t = 2)]
    pub iters: usize,
    /// Schedule: diagonal (default) or paper.
    #[arg(long, default_value = "diagonal")]
    pub schedule: String,
    /// Number of classes (default: from the data).
    #[arg(long)]
    pub classes: Option<usize>,
    /// Initial weight.
    #[arg(long, default_value_t = 0.0)]
    pub init: f64,
    /// JSON report file (with snapshots, the learning curve is drawn beside it as .png).
    #[arg(long)]
    pub report: Option<PathBuf>,
    /// Decrypt and score the model every K iterations (and after the last): the learning
    /// curve of the report.
    #[arg(long, value_name = "K", default_value_t = 5)]
    pub snapshot_every: usize,
    /// Train on a live `volley serve` instead of in this process: the client's side (keys,
    /// encryption, decryption, scoring) stays here; the upload, the job and the encrypted
    /// model go over the network.
    #[command(flatten)]
    pub remote: crate::service::RemoteArgs,
}

/// Everything the demo measured.
pub struct DemoOutcome {
    pub report: DemoReport,
}

/// What the demo runs: rows, iterations, schedule, classes, initial weight.
pub struct DemoPlan<'a> {
    /// Training rows.
    pub train: &'a str,
    /// Test rows (default: the rows after the training rows).
    pub test: Option<&'a str>,
    /// Iterations.
    pub iters: usize,
    /// Schedule.
    pub schedule: Schedule,
    /// Classes (default: from the data).
    pub classes: Option<usize>,
    /// Initial weight.
    pub init: f64,
    /// Snapshot period (None: only the final model).
    pub snapshot_every: Option<usize>,
    /// Train on this server (None: in process).
    pub server: Option<crate::service::ServerArgs>,
}

/// Runs keygen, encrypt, train, decrypt and evaluation in one process on a features table.
pub fn demo_on_table(
    all: &FeatureTable,
    plan: &DemoPlan<'_>,
    threads: usize,
    ui: Ui,
) -> Result<DemoOutcome, CliError> {
    let t_total = Instant::now();
    let (args_iters, schedule, init) = (plan.iters, plan.schedule, plan.init);
    let c = classes(all, plan.classes);
    let train_range = parse_range(plan.train)?;
    let train_t = all.select(&train_range)?;
    let test_t = match plan.test {
        Some(s) => all.select(&parse_range(s)?)?,
        None => all.select(&(train_range.end..all.rows()))?,
    };
    let t0 = Instant::now();
    let sp = ui.spinner("key generation");
    let client = Client::generate(schedule, args_iters, false)?;
    let (design, g) = design_for(&client, schedule, &train_t, c)?;
    let keys = client.server_keys(schedule, &g)?;
    let seconds_keygen = t0.elapsed().as_secs_f64();
    sp.set_message("encryption");
    let t1 = Instant::now();
    let w0 = Weights::constant(c, design.d, g.d_hat, init);
    let bundle = client.encrypt_upload(schedule, &design, args_iters, &w0, keys)?;
    let seconds_encrypt = t1.elapsed().as_secs_f64();
    sp.finish_and_clear();
    let t2 = Instant::now();
    let (pb, mut cb) = progress_callback(ui, args_iters);
    let rows = test_rows(&test_t);
    // The reference model, and its test accuracy after every iteration, in one pass.
    let mut plain_acc = vec![0f64; args_iters + 1];
    let w_plain = train_plain_each(&design, args_iters, &w0, &mut |k, w| {
        plain_acc[k] = accuracy(w, &rows, &test_t.labels)
    });
    // The client's side of each snapshot, in process: decrypt, score, keep only the numbers.
    let mut points: Vec<CurvePoint> = Vec::new();
    let mut sink = |k: usize, w: Vec<volley_ckks::Ciphertext>| -> volley_train::Result<()> {
        let model = EncryptedModel {
            manifest: bundle.manifest.clone(),
            weights: w,
        };
        let w_he = client.decrypt_model(&model, &bundle.manifest)?;
        points.push(CurvePoint {
            iteration: k,
            he_test_accuracy: accuracy(&w_he, &rows, &test_t.labels),
            plain_test_accuracy: plain_acc.get(k).copied().unwrap_or(0.0),
        });
        Ok(())
    };
    let (model, stats): (EncryptedModel, TrainStats) = match &plan.server {
        None => server::train_with_snapshots(
            &bundle,
            args_iters,
            plan.snapshot_every,
            &mut cb,
            &mut sink,
        )?,
        Some(remote) => {
            crate::service::train_on_server(remote, &bundle, plan.snapshot_every, &pb, &mut sink)?
        }
    };
    pb.finish_and_clear();
    let seconds_train = t2.elapsed().as_secs_f64();
    let t3 = Instant::now();
    let w_he = client.decrypt_model(&model, &bundle.manifest)?;
    let seconds_decrypt = t3.elapsed().as_secs_f64();
    let train_rows_v = test_rows(&train_t);
    let he_acc = accuracy(&w_he, &rows, &test_t.labels);
    let plain_acc = accuracy(&w_plain, &rows, &test_t.labels);
    let ks = &stats.key_switches_per_iteration;
    let ks_avg = if ks.is_empty() {
        0
    } else {
        ks.iter().sum::<u64>() / ks.len() as u64
    };
    let each = stats.seconds_per_iteration.clone();
    let report = DemoReport {
        he_test_accuracy: he_acc,
        plain_test_accuracy: plain_acc,
        he_train_accuracy: accuracy(&w_he, &train_rows_v, &train_t.labels),
        plain_train_accuracy: accuracy(&w_plain, &train_rows_v, &train_t.labels),
        prediction_agreement: agreement(&w_he, &w_plain, &rows),
        max_abs_weight_error: max_abs_difference(&w_he, &w_plain, design.d),
        iterations: args_iters,
        train_rows: train_t.rows(),
        test_rows: test_t.rows(),
        classes: c,
        schedule: schedule.name().into(),
        key_switches_per_iteration: ks_avg,
        key_switches_each_iteration: ks.clone(),
        key_switches_precompute: stats.key_switches_precompute,
        key_switches_final: stats.key_switches_final,
        ciphertexts_uploaded: bundle.manifest.ciphertext_count(),
        upload_bytes: bundle.manifest.total_bytes(),
        upload_bytes_by_group: bundle.manifest.bytes.clone(),
        rotation_keys: bundle.keys.galois.len(),
        bootstrapping: bundle.manifest.bootstrapping,
        bootstraps: stats.bootstraps,
        bootstrap_slots: stats.bootstrap_slots,
        levels_per_iteration: stats.levels_per_iteration,
        seconds_keygen,
        seconds_encrypt,
        seconds_train,
        seconds_train_precompute: stats.seconds_precompute,
        seconds_per_iteration: each.iter().sum::<f64>() / each.len().max(1) as f64,
        seconds_each_iteration: each,
        seconds_bootstrapping: stats.seconds_bootstrapping,
        seconds_refresh_stages: RefreshSeconds {
            pack: stats.seconds_refresh_stages[0],
            bootstrap: stats.seconds_refresh_stages[1],
            unpack: stats.seconds_refresh_stages[2],
        },
        seconds_bootstrap_setup: stats.seconds_bootstrap_setup,
        seconds_decrypt,
        seconds_features: None,
        seconds_total: t_total.elapsed().as_secs_f64(),
        peak_rss_bytes: peak_rss_bytes(),
        threads,
        params: ParamsReport {
            preset: client.params_name().into(),
            log_n: client.params().log_n(),
            log_qp: client.params().log_qp(),
            levels: client.params().max_level(),
            dnum: client.params().dnum(),
            security_bound: client.params().security_bound(),
        },
        data: None,
        snapshots: points,
    };
    Ok(DemoOutcome { report })
}

/// `volley demo`.
pub fn demo(args: &DemoArgs, threads: usize, ui: Ui) -> Result<(), CliError> {
    let t = Instant::now();
    let schedule = parse_schedule(&args.schedule)?;
    let (all, train_spec, test_spec, seconds_features) = match &args.features {
        Some(path) => (
            load_features(path)?,
            args.train_rows.clone(),
            args.test_rows.clone(),
            None,
        ),
        None => {
            // Transfer learning on the client: frozen backbone features of the images.
            let tf = Instant::now();
            let quiet = !ui.show;
            let feats = |split, limit| {
                crate::features::extract_table(&args.images, split, 0, Some(limit), quiet)
                    .map_err(|e| CliError::Msg(e.to_string()))
            };
            let train = feats(volley_vision::Split::Train, args.train_limit)?;
            let test = feats(volley_vision::Split::Test, args.test_limit)?;
            let (n_train, n_test) = (train.rows(), test.rows());
            let labels = [train.labels, test.labels].concat();
            let values = [train.features, test.features].concat();
            let table = FeatureTable::new(labels, values, train.cols)?;
            (
                table,
                format!("0..{n_train}"),
                Some(format!("{n_train}..{}", n_train + n_test)),
                Some(tf.elapsed().as_secs_f64()),
            )
        }
    };
    let plan = DemoPlan {
        train: &train_spec,
        test: test_spec.as_deref(),
        iters: args.iters,
        schedule,
        classes: args.classes,
        init: args.init,
        snapshot_every: Some(args.snapshot_every),
        server: args.remote.server()?,
    };
    let mut out = demo_on_table(&all, &plan, threads, ui)?;
    if let Some(s) = seconds_features {
        out.report.seconds_features = Some(s);
        out.report.data = Some(DataReport {
            dataset: format!("{:?}", args.images.dataset),
            backbone: args.images.backbone.clone(),
        });
    }
    out.report.seconds_total = t.elapsed().as_secs_f64();
    out.report.peak_rss_bytes = peak_rss_bytes();
    if let Some(path) = &args.report {
        if out.report.snapshots.len() > 1 {
            write_curve(
                &path.with_extension("png"),
                &out.report.snapshots,
                out.report.train_rows,
                out.report.test_rows,
            )?;
        }
    }
    finish_report(&out.report, args.report.as_deref())
}

/// Prints a summary and writes the report.
pub fn finish_report(report: &DemoReport, path: Option<&Path>) -> Result<(), CliError> {
    println!(
        "encrypted model: test accuracy {:.4} (plaintext reference {:.4}), agreement {}, max |dW| {:.3e}, {} iterations on {} rows in {:.1} s total ({:.1} s training, {} bootstraps)",
        report.he_test_accuracy,
        report.plain_test_accuracy,
        report.prediction_agreement,
        report.max_abs_weight_error,
        report.iterations,
        report.train_rows,
        report.seconds_total,
        report.seconds_train,
        report.bootstraps
    );
    if let Some(p) = path {
        write_file_atomic(
            p,
            serde_json::to_string_pretty(report)
                .unwrap_or_default()
                .as_bytes(),
        )?;
        eprintln!("report written to {}", p.display());
    }
    Ok(())
}
