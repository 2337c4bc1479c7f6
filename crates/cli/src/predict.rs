//! `volley predict`: encrypted inference in three steps, each a separate process working
//! through files (`volley_train::inference`):
//!
//! - `encrypt` (client): feature rows → a query directory (`query.json`, `x.cts`);
//! - `score` (server): upload bundle + encrypted model + query → a scores directory
//!   (`scores.json`, `scores.cts`), with public keys only;
//! - `decrypt` (client): scores → labels and class scores (CSV and JSON).

use crate::commands::rows_or_all;
use crate::util::{CliError, Ui};
use std::path::{Path, PathBuf};
use std::time::Instant;
use volley_train::bundle::EncryptedModel;
use volley_train::container::{CiphertextReader, CiphertextWriter};
use volley_train::data::FeatureTable;
use volley_train::dirs::{
    cts_from_bytes, load_bundle_keys, load_keys, load_manifest, load_upload_record, read, write,
    write_dir_atomic,
};
use volley_train::inference::{self, QueryManifest, score_stream};
use volley_train::layout::Geometry;

/// `volley predict` steps.
#[derive(clap::Subcommand, Debug)]
pub enum PredictCommand {
    /// Client: encrypt feature rows into a query for the model trained on this key's upload.
    Encrypt(EncryptQueryArgs),
    /// Server: score a query with the encrypted model (public keys of the upload bundle).
    Score(ScoreArgs),
    /// Client: decrypt the scores into labels and class scores (CSV and JSON).
    Decrypt(DecryptScoresArgs),
}

/// `volley predict encrypt`.
#[derive(clap::Args, Debug)]
pub struct EncryptQueryArgs {
    /// Key directory (with the upload record of `volley encrypt`).
    #[arg(long)]
    pub keys: PathBuf,
    /// Feature rows (CSV or binary; the labels column is carried but not used).
    #[arg(long)]
    pub features: PathBuf,
    /// Rows START..END (default: all).
    #[arg(long)]
    pub rows: Option<String>,
    /// Query directory to write.
    #[arg(long)]
    pub out: PathBuf,
}

/// `volley predict score`.
#[derive(clap::Args, Debug)]
pub struct ScoreArgs {
    /// Upload bundle the model was trained on (its public keys).
    #[arg(long)]
    pub bundle: PathBuf,
    /// Encrypted model directory from `volley train`.
    #[arg(long)]
    pub model: PathBuf,
    /// Query directory from `volley predict encrypt`.
    #[arg(long)]
    pub query: PathBuf,
    /// Scores directory to write.
    #[arg(long)]
    pub out: PathBuf,
    /// JSON report: rows, seconds of scoring (reading and writing the ciphertexts as they
    /// go), seconds per 1,000 rows, seconds loading keys and model, peak memory (after
    /// loading, and in all).
    #[arg(long)]
    pub report: Option<PathBuf>,
}

/// `volley predict decrypt`.
#[derive(clap::Args, Debug)]
pub struct DecryptScoresArgs {
    /// Key directory.
    #[arg(long)]
    pub keys: PathBuf,
    /// Query directory (the client's own, to check the scores against).
    #[arg(long)]
    pub query: PathBuf,
    /// Scores directory from `volley predict score`.
    #[arg(long)]
    pub scores: PathBuf,
    /// Labels CSV to write: `row,label,score_0,...` (a JSON copy is written next to it).
    #[arg(long)]
    pub out: PathBuf,
}

/// Runs a `volley predict` step.
pub fn run(cmd: &PredictCommand, ui: Ui) -> Result<(), CliError> {
    match cmd {
        PredictCommand::Encrypt(a) => encrypt(a),
        PredictCommand::Score(a) => score_cmd(a, ui),
        PredictCommand::Decrypt(a) => decrypt(a),
    }
}

const QUERY_MANIFEST: &str = "query.json";
const SCORES_MANIFEST: &str = "scores.json";

fn read_query_manifest(dir: &Path, file: &str) -> Result<QueryManifest, CliError> {
    let path = dir.join(file);
    serde_json::from_slice(&read(&path)?)
        .map_err(|e| CliError::Msg(format!("{}: invalid query manifest: {e}", path.display())))
}

fn encrypt(args: &EncryptQueryArgs) -> Result<(), CliError> {
    let kd = load_keys(&args.keys)?;
    let uploaded = load_upload_record(&args.keys)?;
    let all = FeatureTable::read(&args.features)?;
    let table = rows_or_all(&all, args.rows.as_deref())?;
    let t = Instant::now();
    // Written one ciphertext at a time as they are made (bounded memory for any row count).
    let probe = Geometry::new(
        volley_train::layout::Schedule::Diagonal,
        table.rows(),
        uploaded.geometry.c,
        uploaded.geometry.d,
        uploaded.geometry.slots,
    )?;
    let mut count = 0;
    write_dir_atomic(&args.out, |tmp| -> Result<(), CliError> {
        let xpath = tmp.join("x.cts");
        let io = |e| CliError::io(&xpath, e);
        let file = std::fs::File::create(&xpath).map_err(io)?;
        let mut w =
            CiphertextWriter::create(std::io::BufWriter::new(file), probe.row_cts).map_err(io)?;
        let manifest = kd.client.encrypt_query_each(&uploaded, &table, &mut |ct| {
            count += 1;
            w.push(&ct)
                .map_err(|e| volley_train::TrainError::io(&xpath, e))
        })?;
        w.finish().map_err(io)?;
        write(
            &tmp.join(QUERY_MANIFEST),
            serde_json::to_string_pretty(&manifest)
                .unwrap_or_default()
                .as_bytes(),
        )?;
        Ok(())
    })?;
    eprintln!(
        "{} rows encrypted into {} ({count} ciphertexts, {:.1} s)",
        table.rows(),
        args.out.display(),
        t.elapsed().as_secs_f64()
    );
    Ok(())
}

fn score_cmd(args: &ScoreArgs, ui: Ui) -> Result<(), CliError> {
    let t_load = Instant::now();
    // Only the keys scoring uses (relinearisation, the row rotations and the column fold):
    // about a tenth of a bootstrapping bundle's.
    let bundle = load_bundle_keys(&args.bundle, Some(&inference::rotation_steps))?;
    let (model_manifest, _) = load_manifest(&args.model)?;
    // The query's shapes are checked against the upload before its ciphertexts are read
    // (and `score` checks everything again).
    let qm = read_query_manifest(&args.query, QUERY_MANIFEST)?;
    qm.validate(&bundle.manifest)
        .map_err(|e| CliError::Msg(format!("{}: {e}", args.query.display())))?;
    if model_manifest != bundle.manifest {
        return Err(CliError::Msg(format!(
            "{}: the model was not trained on the upload {}",
            args.model.display(),
            args.bundle.display()
        )));
    }
    let wpath = args.model.join("weights.cts");
    let model = EncryptedModel {
        manifest: model_manifest,
        weights: cts_from_bytes(&bundle.params, &read(&wpath)?, &wpath)?,
    };
    // The query is read, scored and written one chunk of ciphertexts at a time: memory is
    // the keys, the model and a few ciphertexts, whatever the number of rows.
    let xpath = args.query.join("x.cts");
    let in_query = |e: volley_train::TrainError| CliError::Msg(format!("{}: {e}", xpath.display()));
    let file = std::fs::File::open(&xpath).map_err(|e| CliError::io(&xpath, e))?;
    let mut reader =
        CiphertextReader::open(&bundle.params, std::io::BufReader::new(file)).map_err(in_query)?;
    let total = qm.geometry.row_cts;
    if reader.announced() != total {
        return Err(CliError::Msg(format!(
            "{}: {} ciphertexts, the query's shapes need {total}",
            xpath.display(),
            reader.announced()
        )));
    }
    let seconds_load = t_load.elapsed().as_secs_f64();
    let rss_loaded = crate::util::peak_rss_bytes();
    let pb = ui.bar(total as u64, "scoring");
    let t = Instant::now();
    write_dir_atomic(&args.out, |tmp| -> Result<(), CliError> {
        write(
            &tmp.join(SCORES_MANIFEST),
            serde_json::to_string_pretty(&qm)
                .unwrap_or_default()
                .as_bytes(),
        )?;
        let spath = tmp.join("scores.cts");
        let io = |e| CliError::io(&spath, e);
        let file = std::fs::File::create(&spath).map_err(io)?;
        let mut w = CiphertextWriter::create(std::io::BufWriter::new(file), total).map_err(io)?;
        score_stream(
            &bundle,
            &model,
            &qm,
            reader.by_ref(),
            &mut |z| {
                w.push(&z)
                    .map_err(|e| volley_train::TrainError::io(&spath, e))
            },
            &mut |done, _| pb.set_position(done as u64),
        )
        .map_err(in_query)?;
        w.finish().map_err(io)?;
        Ok(())
    })?;
    reader.finish().map_err(in_query)?;
    pb.finish_and_clear();
    let seconds = t.elapsed().as_secs_f64();
    let rows = qm.geometry.n;
    let per_1000 = seconds * 1000.0 / rows.max(1) as f64;
    eprintln!(
        "{rows} rows scored into {} in {seconds:.1} s ({per_1000:.2} s per 1,000 rows)",
        args.out.display()
    );
    if let Some(r) = &args.report {
        let json = serde_json::json!({
            "rows": rows,
            "ciphertexts": total,
            "seconds": seconds,
            "seconds_per_1000_rows": per_1000,
            "seconds_load": seconds_load,
            "peak_rss_bytes_loaded": rss_loaded,
            "peak_rss_bytes": crate::util::peak_rss_bytes(),
            "threads": rayon::current_num_threads(),
        });
        volley_train::dirs::write_file_atomic(
            r,
            serde_json::to_string_pretty(&json)
                .unwrap_or_default()
                .as_bytes(),
        )?;
    }
    Ok(())
}

fn decrypt(args: &DecryptScoresArgs) -> Result<(), CliError> {
    let kd = load_keys(&args.keys)?;
    let uploaded = load_upload_record(&args.keys)?;
    let mine = read_query_manifest(&args.query, QUERY_MANIFEST)?;
    let theirs = read_query_manifest(&args.scores, SCORES_MANIFEST)?;
    if mine != theirs {
        return Err(CliError::Msg(format!(
            "{}: these scores are not for the query {}",
            args.scores.display(),
            args.query.display()
        )));
    }
    let spath = args.scores.join("scores.cts");
    let in_scores =
        |e: volley_train::TrainError| CliError::Msg(format!("{}: {e}", spath.display()));
    let file = std::fs::File::open(&spath).map_err(|e| CliError::io(&spath, e))?;
    let mut reader = CiphertextReader::open(kd.client.params(), std::io::BufReader::new(file))
        .map_err(in_scores)?;
    let scores = kd
        .client
        .decrypt_scores_each(&uploaded, &mine, reader.by_ref())
        .map_err(in_scores)?;
    reader.finish().map_err(in_scores)?;
    let labels: Vec<usize> = scores.iter().map(|s| argmax(s)).collect();
    let mut csv = String::from("row,label");
    for k in 0..mine.geometry.c {
        csv.push_str(&format!(",score_{k}"));
    }
    csv.push('\n');
    for (i, (s, l)) in scores.iter().zip(&labels).enumerate() {
        csv.push_str(&format!("{i},{l}"));
        for v in s {
            csv.push_str(&format!(",{v:e}"));
        }
        csv.push('\n');
    }
    volley_train::dirs::write_file_atomic(&args.out, csv.as_bytes())?;
    let json_path = args.out.with_extension("json");
    let json = serde_json::json!({
        "format": "volley-predictions-v1",
        "rows": scores.len(),
        "classes": mine.geometry.c,
        "labels": labels,
        "scores": scores,
    });
    volley_train::dirs::write_file_atomic(
        &json_path,
        serde_json::to_string(&json).unwrap_or_default().as_bytes(),
    )?;
    eprintln!(
        "{} labels written to {} and {}",
        labels.len(),
        args.out.display(),
        json_path.display()
    );
    Ok(())
}

/// The class with the largest score (the first of equals).
fn argmax(s: &[f64]) -> usize {
    let mut best = 0;
    for (k, v) in s.iter().enumerate() {
        if *v > s[best] {
            best = k;
        }
    }
    best
}
