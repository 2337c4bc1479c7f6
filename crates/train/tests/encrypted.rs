//! The encrypted trainer against the plaintext reference on generated data, both schedules,
//! with small (explicitly insecure) rings so the test runs in seconds.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use volley_ckks::{Params, ParamsLiteral, SecretDistribution};
use volley_train::algorithm::{Weights, agreement, max_abs_difference, train_plain};
use volley_train::client::Client;
use volley_train::data::{Design, FeatureTable};
use volley_train::layout::Schedule;
use volley_train::server::train;

fn synthetic(n: usize, f: usize, c: usize) -> FeatureTable {
    let mut labels = Vec::new();
    let mut feats = Vec::new();
    let mut s = 12345u64;
    let mut rnd = || {
        s = s
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (s >> 11) as f64 / (1u64 << 53) as f64
    };
    for i in 0..n {
        let label = i % c;
        labels.push(label);
        for j in 0..f {
            let signal = if j % c == label { 2.0 } else { 0.0 };
            feats.push(signal + rnd());
        }
    }
    FeatureTable::new(labels, feats, f).unwrap()
}

fn run(schedule: Schedule, iterations: usize, log_n: u32) {
    run_init(schedule, iterations, log_n, 0.0)
}

fn run_init(schedule: Schedule, iterations: usize, log_n: u32, init: f64) {
    let levels = schedule.levels_needed(iterations)
        + std::env::var("EXTRA")
            .map(|v| v.parse::<usize>().unwrap())
            .unwrap_or(0);
    let mut log_q = vec![60];
    log_q.extend(std::iter::repeat_n(40, levels));
    let alpha = (levels + 1).div_ceil(4);
    let special = (60 + 40 * (alpha - 1)).div_ceil(60);
    let lit = ParamsLiteral {
        log_n,
        log_q,
        log_p: vec![60; special],
        dnum: 4,
        secret: SecretDistribution::Ternary,
        log_scale: 40,
        sigma: 3.19,
    };
    let stats = run_with(schedule, iterations, lit, false, init, 1e-4);
    assert_eq!(stats.bootstraps, 0);
}

/// Trains on ciphertexts and checks the weights against the plaintext reference within
/// `tolerance` times the largest weight; returns the server's statistics.
fn run_with(
    schedule: Schedule,
    iterations: usize,
    lit: ParamsLiteral,
    bootstrapping: bool,
    init: f64,
    tolerance: f64,
) -> volley_train::server::TrainStats {
    let (n, f, c) = (100, 9, 3);
    let table = synthetic(n, f, c);
    let params = Params::new_insecure(lit.clone()).unwrap();
    let client = Client::generate_for("test".into(), lit, params, bootstrapping).unwrap();
    let design = Design::new(&table, c, 16).unwrap();
    let g = client.geometry(schedule, &design).unwrap();
    let mut w0 = Weights::constant(c, design.d, g.d_hat, init);
    for k in 0..c {
        for j in 0..design.d {
            w0.w[k * g.d_hat + j] *= 1.0 + 0.3 * ((k * 7 + j) % 5) as f64;
        }
    }
    let keys = client.server_keys(schedule, &g).unwrap();
    let bundle = client
        .encrypt_upload(schedule, &design, iterations, &w0, keys)
        .unwrap();
    let (model, stats) = train(&bundle, iterations, &mut |_| {}).unwrap();
    assert_eq!(stats.key_switches_per_iteration.len(), iterations);
    let w_he = client.decrypt_model(&model, &bundle.manifest).unwrap();
    let design_g = Design::new(&table, c, g.d_hat).unwrap();
    let w_plain = train_plain(&design_g, iterations, &w0);
    let err = max_abs_difference(&w_he, &w_plain, design.d);
    if std::env::var("DEBUG_W").is_ok() {
        for k in 0..c {
            eprintln!("he    {k}: {:?}", &w_he.row(k)[..design.d]);
            eprintln!("plain {k}: {:?}", &w_plain.row(k)[..design.d]);
        }
    }
    let scale = w_plain.w.iter().fold(0f64, |m, v| m.max(v.abs()));
    eprintln!(
        "{schedule:?}, {iterations} iterations: max |W_he - W_plain| = {err:.3e}, max |W| = {scale:.3}"
    );
    assert!(
        err <= tolerance * scale.max(1e-3),
        "{schedule:?}: max |W_he - W_plain| = {err} (max |W| = {scale})"
    );
    let rows: Vec<&[f64]> = (0..table.rows()).map(|i| table.row(i)).collect();
    assert_eq!(agreement(&w_he, &w_plain, &rows), 1.0);
    // A model decrypted by another client's key is refused.
    let other = Client::generate_for(
        "test".into(),
        client.literal().clone(),
        client.params().clone(),
        bootstrapping,
    )
    .unwrap();
    assert!(other.decrypt_model(&model, &bundle.manifest).is_err());
    stats
}

/// The `boot16` chain on a tiny ring: 10 levels after bootstrapping.
fn boot_literal(log_n: u32) -> ParamsLiteral {
    let mut log_q = vec![60];
    log_q.extend([40; 10]);
    log_q.extend([45; 3]);
    log_q.extend([60; 12]);
    ParamsLiteral {
        log_n,
        log_q,
        log_p: vec![61; 7],
        dnum: 4,
        secret: SecretDistribution::Ternary,
        log_scale: 40,
        sigma: 3.19,
    }
}

/// Seven iterations with a refresh every two: three bootstraps of the packed state, and the
/// plaintext reference's weights and predictions.
#[test]
fn diagonal_with_bootstrapping_matches_plaintext() {
    let stats = run_with(Schedule::Diagonal, 7, boot_literal(10), true, 0.0, 1e-4);
    assert_eq!(stats.bootstraps, 3);
    assert_eq!(stats.bootstrap_slots, 64);
    assert_eq!(stats.key_switches_per_iteration.len(), 7);
}

/// A client with bootstrapping on the insecure N = 2^10 chain and its upload of `n`
/// generated rows (`f` features, `c` classes, padded width at least `d_hat`) for `iters`
/// iterations, from zero initial weights.
struct BootUpload {
    client: Client,
    design: Design,
    w0: Weights,
    bundle: volley_train::bundle::UploadBundle,
}

fn boot_upload(n: usize, f: usize, c: usize, d_hat: usize, iters: usize) -> BootUpload {
    let table = synthetic(n, f, c);
    let lit = boot_literal(10);
    let params = Params::new_insecure(lit.clone()).unwrap();
    let client = Client::generate_for("test".into(), lit, params, true).unwrap();
    let design = Design::new(&table, c, d_hat).unwrap();
    let g = client.geometry(Schedule::Diagonal, &design).unwrap();
    let w0 = Weights::constant(c, design.d, g.d_hat, 0.0);
    let keys = client.server_keys(Schedule::Diagonal, &g).unwrap();
    let bundle = client
        .encrypt_upload(Schedule::Diagonal, &design, iters, &w0, keys)
        .unwrap();
    BootUpload {
        client,
        design,
        w0,
        bundle,
    }
}

/// Snapshots every 2 iterations and after the last, across refreshes: each decrypts to the
/// plaintext reference's model of that many iterations.
#[test]
fn snapshots_match_the_reference_at_their_iterations() {
    let (n, f, c) = (100, 9, 3);
    let table = synthetic(n, f, c);
    let BootUpload {
        client,
        design,
        w0,
        bundle,
    } = boot_upload(n, f, c, 16, 7);
    let g = bundle.manifest.geometry;
    let mut snaps = Vec::new();
    let (model, _) = volley_train::server::train_with_snapshots(
        &bundle,
        7,
        Some(2),
        &mut |_| {},
        &mut |k, w| {
            snaps.push((k, w));
            Ok(())
        },
    )
    .unwrap();
    assert_eq!(
        snaps.iter().map(|(k, _)| *k).collect::<Vec<_>>(),
        [2, 4, 6, 7]
    );
    let design_g = Design::new(&table, c, g.d_hat).unwrap();
    for (k, w) in snaps {
        assert!(w.iter().all(|ct| ct.level() == 0));
        let snap = volley_train::bundle::EncryptedModel {
            manifest: model.manifest.clone(),
            weights: w,
        };
        let w_he = client.decrypt_model(&snap, &bundle.manifest).unwrap();
        let w_plain = train_plain(&design_g, k, &w0);
        let err = max_abs_difference(&w_he, &w_plain, design.d);
        assert!(err < 1e-6, "snapshot {k}: {err}");
    }
    assert!(
        volley_train::server::train_with_snapshots(
            &bundle,
            2,
            Some(0),
            &mut |_| {},
            &mut |_, _| Ok(())
        )
        .is_err()
    );
}

#[test]
fn diagonal_schedule_matches_plaintext() {
    run(Schedule::Diagonal, 2, 11);
}

#[test]
fn refuses_more_iterations_than_levels() {
    let table = synthetic(20, 5, 2);
    let lit = ParamsLiteral {
        log_n: 10,
        log_q: vec![60, 40, 40, 40, 40, 40],
        log_p: vec![60; 2],
        dnum: 3,
        secret: SecretDistribution::Ternary,
        log_scale: 40,
        sigma: 3.19,
    };
    let params = Params::new_insecure(lit.clone()).unwrap();
    let client = Client::generate_for("t".into(), lit, params, false).unwrap();
    let design = Design::new(&table, 2, 8).unwrap();
    let g = client.geometry(Schedule::Diagonal, &design).unwrap();
    let bundle = client
        .encrypt_upload(
            Schedule::Diagonal,
            &design,
            1,
            &Weights::constant(2, design.d, g.d_hat, 0.0),
            client.server_keys(Schedule::Diagonal, &g).unwrap(),
        )
        .unwrap();
    let err = train(&bundle, 2, &mut |_| {})
        .expect_err("too deep")
        .to_string();
    assert!(err.contains("need 9 levels"), "{err}");
}

#[test]
fn diagonal_one_iteration() {
    run(Schedule::Diagonal, 1, 11);
}

#[test]
fn diagonal_one_iteration_nonzero_init() {
    run_init(Schedule::Diagonal, 1, 11, 0.3);
}

#[test]
fn paper_schedule_matches_plaintext() {
    run(Schedule::Paper, 2, 10);
}

/// Checkpoints every iteration across refreshes; resuming from any of them gives the
/// uninterrupted run's model bit for bit, and the snapshots after it. Checkpoints of
/// another run or upload, and damaged ones, are refused with typed errors.
#[test]
fn resumed_runs_end_with_the_same_model() {
    use volley_train::checkpoint::Checkpoint;
    use volley_train::container::ciphertexts_to_bytes;
    use volley_train::server::{RunOptions, train_run};
    let (n, f, c, iters) = (60, 7, 3, 7);
    let bundle = boot_upload(n, f, c, 8, iters).bundle;
    let manifest = bundle.manifest.clone();
    // The uninterrupted run, keeping every checkpoint's bytes and every snapshot.
    let mut saved: Vec<(usize, Vec<u8>)> = Vec::new();
    let mut save = |cp: volley_train::checkpoint::CheckpointRef<'_>| {
        let mut b = Vec::new();
        cp.write_to(&manifest, &mut b).unwrap();
        saved.push((cp.iteration, b));
        Ok(())
    };
    let mut snaps: Vec<(usize, Vec<u8>)> = Vec::new();
    let options = RunOptions {
        snapshot_every: Some(3),
        checkpoint_every: Some(1),
        checkpoints: Some(&mut save),
        resume: None,
        epochs: None,
        cancel: None,
    };
    let (model, stats) = train_run(&bundle, iters, options, &mut |_| {}, &mut |k, w| {
        snaps.push((k, ciphertexts_to_bytes(&w)));
        Ok(())
    })
    .unwrap();
    assert!(
        stats.bootstraps >= 2,
        "the run refreshes: {}",
        stats.bootstraps
    );
    assert_eq!(
        saved.iter().map(|(k, _)| *k).collect::<Vec<_>>(),
        (1..iters).collect::<Vec<_>>(),
        "every iteration but the last"
    );
    let want = ciphertexts_to_bytes(&model.weights);
    for (k, bytes) in &saved {
        let cp = Checkpoint::from_bytes(bytes, &bundle.manifest, &bundle.params, iters).unwrap();
        assert_eq!(cp.iteration, *k);
        let mut resumed_snaps = Vec::new();
        let options = RunOptions {
            resume: Some(cp),
            ..RunOptions::default()
        };
        let options = RunOptions {
            snapshot_every: Some(3),
            ..options
        };
        let (m, _) = train_run(&bundle, iters, options, &mut |_| {}, &mut |k, w| {
            resumed_snaps.push((k, ciphertexts_to_bytes(&w)));
            Ok(())
        })
        .unwrap();
        assert!(
            ciphertexts_to_bytes(&m.weights) == want,
            "resumed after {k}: another model"
        );
        let later: Vec<(usize, Vec<u8>)> = snaps.iter().filter(|(s, _)| s > k).cloned().collect();
        assert!(resumed_snaps == later, "resumed after {k}: snapshots");
    }
    // Refusals, each a typed mismatch.
    let (_, good) = &saved[2];
    let refuse = |bytes: &[u8], iterations: usize, what: &str| match Checkpoint::from_bytes(
        bytes,
        &bundle.manifest,
        &bundle.params,
        iterations,
    ) {
        Err(volley_train::TrainError::Mismatch(msg)) => {
            assert!(msg.starts_with("checkpoint"), "{what}: {msg}")
        }
        other => panic!(
            "{what}: expected a mismatch, got {:?}",
            other.map(|c| c.iteration)
        ),
    };
    refuse(good, iters + 1, "another run length");
    refuse(&good[..good.len() - 1], iters, "truncated");
    refuse(&good[..20], iters, "truncated header");
    refuse(b"VLYCKP01\xff\xff\xff\xff", iters, "huge header length");
    let mut other = bundle.manifest.clone();
    other.key_id = "someone else".into();
    match Checkpoint::from_bytes(good, &other, &bundle.params, iters) {
        Err(volley_train::TrainError::Mismatch(msg)) => assert!(msg.contains("another upload")),
        r => panic!("another upload: {:?}", r.map(|c| c.iteration)),
    }
    // A checkpoint of the last iteration (or of none) is not a state to resume; a header
    // that is not JSON is refused.
    let reheader = |edit: &dyn Fn(&str) -> String| -> Vec<u8> {
        let len = u32::from_le_bytes(good[8..12].try_into().unwrap()) as usize;
        let json = edit(std::str::from_utf8(&good[12..12 + len]).unwrap());
        let mut out = good[..8].to_vec();
        out.extend((json.len() as u32).to_le_bytes());
        out.extend(json.as_bytes());
        out.extend(&good[12 + len..]);
        out
    };
    assert_eq!(saved[2].0, 3);
    for bad in [format!("\"iteration\":{iters}"), "\"iteration\":0".into()] {
        let forged = reheader(&|j: &str| j.replacen("\"iteration\":3", &bad, 1));
        assert_ne!(&forged, good);
        refuse(&forged, iters, &bad);
    }
    refuse(
        &reheader(&|j: &str| j.replacen('{', "[", 1)),
        iters,
        "not JSON",
    );
    // A checkpoint period of 0 is refused.
    assert!(
        train_run(
            &bundle,
            iters,
            RunOptions {
                checkpoint_every: Some(0),
                ..RunOptions::default()
            },
            &mut |_| {},
            &mut |_, _| Ok(())
        )
        .is_err()
    );
}

/// Encrypted inference after a run with bootstrapping: the model keeps a level, the server
/// scores the client's encrypted rows without decrypting anything, and the decrypted scores
/// are those of the decrypted model in plaintext. Queries and models of other uploads,
/// keys or shapes are refused with typed errors.
#[test]
fn encrypted_inference_matches_plaintext_scoring() {
    use volley_train::inference::score;
    let (n, f, c, iters) = (60, 7, 3, 5);
    let BootUpload { client, bundle, .. } = boot_upload(n, f, c, 8, iters);
    let (model, _) = train(&bundle, iters, &mut |_| {}).unwrap();
    assert!(
        model.weights.iter().all(|ct| ct.level() >= 1),
        "a level for inference"
    );
    let w = client.decrypt_model(&model, &bundle.manifest).unwrap();
    // 37 query rows: more than one ciphertext's worth at this ring, the last one partial.
    let rows = synthetic(37, f, c);
    let query = client.encrypt_query(&bundle.manifest, &rows).unwrap();
    assert!(query.x.len() > 1 && query.x.iter().all(|ct| ct.level() == 1));
    let mut last = (0, 0);
    let scores = score(&bundle, &model, &query, &mut |d, t| last = (d, t)).unwrap();
    assert_eq!(
        last,
        (query.x.len(), query.x.len()),
        "progress ends at the total"
    );
    let got = client
        .decrypt_scores(&bundle.manifest, &query.manifest, &scores)
        .unwrap();
    assert_eq!(got.len(), 37);
    let argmax = |v: &[f64]| (0..v.len()).max_by(|&a, &b| v[a].total_cmp(&v[b])).unwrap();
    for (i, s) in got.iter().enumerate() {
        let x: Vec<f64> = std::iter::once(1.0)
            .chain(rows.row(i).iter().copied())
            .collect();
        let want: Vec<f64> = (0..c)
            .map(|k| w.row(k).iter().zip(&x).map(|(a, b)| a * b).sum())
            .collect();
        for k in 0..c {
            assert!(
                (s[k] - want[k]).abs() < 1e-3,
                "row {i} class {k}: {} vs {}",
                s[k],
                want[k]
            );
        }
        assert_eq!(argmax(s), argmax(&want), "row {i}");
    }
    // Refusals.
    let other =
        Client::generate_for("test".into(), boot_literal(10), bundle.params.clone(), true).unwrap();
    let foreign = other.encrypt_query(&bundle.manifest, &rows);
    assert!(foreign.is_err(), "another client's key against this upload");
    let mut q2 = query.clone();
    q2.manifest.key_id = "other".into();
    assert!(matches!(
        score(&bundle, &model, &q2, &mut |_, _| {}),
        Err(volley_train::TrainError::Mismatch(_))
    ));
    let mut q3 = query.clone();
    q3.manifest.geometry.n = 1_000_000_000_000;
    assert!(score(&bundle, &model, &q3, &mut |_, _| {}).is_err());
    let mut q4 = query.clone();
    q4.x.pop();
    assert!(matches!(
        score(&bundle, &model, &q4, &mut |_, _| {}),
        Err(volley_train::TrainError::Mismatch(_))
    ));
    let mut m2 = model.clone();
    m2.manifest.iterations += 1;
    assert!(score(&bundle, &m2, &query, &mut |_, _| {}).is_err());
    let mut m3 = model.clone();
    m3.weights = m3
        .weights
        .iter()
        .map(|ct| {
            let e = volley_ckks::Evaluator::new(
                bundle.params.clone(),
                volley_ckks::EvaluationKeys::default(),
            );
            e.drop_to_level(ct, 0).unwrap()
        })
        .collect();
    match score(&bundle, &m3, &query, &mut |_, _| {}) {
        Err(volley_train::TrainError::Capacity(msg)) => {
            assert!(msg.contains("--inference"), "{msg}")
        }
        r => panic!("a model at level 0: {:?}", r.map(|v| v.len())),
    }
    assert!(
        client
            .decrypt_scores(&bundle.manifest, &query.manifest, &scores[1..])
            .is_err()
    );
}

/// Mini-batches on the tiny bootstrapping ring: 100 rows in batches of 40 (two row
/// ciphertexts each; the last batch 20 rows), two epochs in a shuffled order. The encrypted
/// run streamed from memory, and from the batch files of a bundle directory, ends with the
/// plaintext reference's model of the same batches in the same order, bit for bit the same
/// from both sources; a run resumed from a mid-epoch checkpoint ends with the same model.
#[test]
fn minibatches_match_the_reference_of_the_same_batches() {
    use std::sync::Arc;
    use volley_train::batches::{BatchSpec, Epochs, MemoryBatches};
    use volley_train::checkpoint::Checkpoint;
    use volley_train::container::{ciphertexts_to_bytes, write_ciphertexts};
    use volley_train::server::{RunOptions, train_run};

    let (n, f, c) = (100, 9, 3);
    let table = synthetic(n, f, c);
    let lit = boot_literal(10);
    let params = Params::new_insecure(lit.clone()).unwrap();
    let client = Client::generate_for("test".into(), lit, params, true).unwrap();
    let design = Design::new(&table, c, 16).unwrap();
    let spec = BatchSpec::new(n, 40, 0.5).unwrap();
    let epochs = Epochs::shuffled(spec.count(), 2, 7).unwrap();
    let steps = 2 * spec.count();
    let w0 = Weights::constant(c, design.d, 16, 0.0);
    let g = volley_train::layout::Geometry::new(
        Schedule::Diagonal,
        40,
        c,
        design.d,
        client.params().max_slots(),
    )
    .unwrap();
    assert_eq!(g.row_cts, 2);
    let keys = client.server_keys(Schedule::Diagonal, &g).unwrap();
    let mut batches = Vec::new();
    let mut bundle = client
        .encrypt_batches(&table, c, spec, steps, &w0, keys, &mut |i, cts| {
            assert_eq!(i, batches.len());
            batches.push(cts);
            Ok(())
        })
        .unwrap();
    assert_eq!(
        batches.iter().map(Vec::len).collect::<Vec<_>>(),
        [6, 6, 3],
        "X, X diag(b), Y per row ciphertext"
    );
    assert_eq!(bundle.manifest.ciphertext_count(), 15 + g.diagonals);
    bundle.batches = Some(Arc::new(MemoryBatches(batches.clone())));
    let options = || RunOptions {
        epochs: Some(epochs.clone()),
        ..RunOptions::default()
    };
    let (model, stats) =
        train_run(&bundle, steps, options(), &mut |_| {}, &mut |_, _| Ok(())).unwrap();
    assert!(stats.bootstraps >= 2, "{} bootstraps", stats.bootstraps);
    let w_he = client.decrypt_model(&model, &bundle.manifest).unwrap();
    let w_plain =
        volley_train::algorithm::train_minibatch(&design, &spec, &epochs, &w0, &mut |_, _| {})
            .unwrap();
    let err = max_abs_difference(&w_he, &w_plain, design.d);
    let scale = w_plain.w.iter().fold(0f64, |m, v| m.max(v.abs()));
    eprintln!("mini-batches: max |W_he - W_plain| = {err:.3e}, max |W| = {scale:.3}");
    assert!(err <= 1e-4 * scale, "{err} (max |W| = {scale})");
    let rows: Vec<&[f64]> = (0..table.rows()).map(|i| table.row(i)).collect();
    assert_eq!(agreement(&w_he, &w_plain, &rows), 1.0);
    // The batches matter: the full-batch reference is another model.
    let full = train_plain(&design, steps, &w0);
    assert!(max_abs_difference(&full, &w_plain, design.d) > 100.0 * err);

    // The margin loss with epoch rates (chosen when training, on the same upload): the
    // server's error term with the label's product Y Z^2 and the rate folded into its
    // constant equals the reference's, and the choices change the model.
    let margin = epochs
        .clone()
        .with_rates(vec![2.0, 0.5])
        .unwrap()
        .with_loss(volley_train::algorithm::Loss::Margin);
    let (model_m, _) = train_run(
        &bundle,
        steps,
        RunOptions {
            epochs: Some(margin.clone()),
            ..RunOptions::default()
        },
        &mut |_| {},
        &mut |_, _| Ok(()),
    )
    .unwrap();
    let w_he_m = client.decrypt_model(&model_m, &bundle.manifest).unwrap();
    let w_plain_m =
        volley_train::algorithm::train_minibatch(&design, &spec, &margin, &w0, &mut |_, _| {})
            .unwrap();
    let err_m = max_abs_difference(&w_he_m, &w_plain_m, design.d);
    let scale_m = w_plain_m.w.iter().fold(0f64, |m, v| m.max(v.abs()));
    eprintln!("margin loss: max |W_he - W_plain| = {err_m:.3e}, max |W| = {scale_m:.3}");
    assert!(err_m <= 1e-4 * scale_m, "{err_m} (max |W| = {scale_m})");
    assert_eq!(agreement(&w_he_m, &w_plain_m, &rows), 1.0);
    assert!(max_abs_difference(&w_plain_m, &w_plain, design.d) > 100.0 * err_m);

    // The same upload as a directory: batch files read one at a time, same model.
    let dir = std::env::temp_dir().join(format!("volley-minibatch-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let manifest = volley_train::dirs::save_batched_bundle(&dir, |sink| {
        for (i, b) in batches.iter().enumerate() {
            sink(i, b.clone())?;
        }
        let mut b = bundle.clone();
        b.batches = None;
        Ok(b)
    })
    .unwrap();
    assert_eq!(manifest, bundle.manifest);
    // (`load_bundle` refuses these insecure test parameters; the batches are read the same.)
    let from_dir = || {
        let mut b = bundle.clone();
        b.batches = Some(Arc::new(volley_train::dirs::DirBatches::new(
            &dir,
            client.params().clone(),
            manifest.clone(),
        )));
        b
    };
    let loaded = from_dir();
    let (from_disk, _) =
        train_run(&loaded, steps, options(), &mut |_| {}, &mut |_, _| Ok(())).unwrap();
    assert_eq!(
        ciphertexts_to_bytes(&from_disk.weights),
        ciphertexts_to_bytes(&model.weights)
    );

    // Killed mid-epoch (after step 4 of 6: epoch 2, step 1), resumed: the same model.
    let mut saved = None;
    let mut save = |cp: volley_train::checkpoint::CheckpointRef<'_>| {
        if cp.iteration == 4 {
            let mut bytes = Vec::new();
            cp.write_to(&bundle.manifest, &mut bytes).unwrap();
            saved = Some(bytes);
        }
        Ok(())
    };
    let with_checkpoints = RunOptions {
        checkpoint_every: Some(1),
        checkpoints: Some(&mut save),
        ..options()
    };
    train_run(
        &bundle,
        steps,
        with_checkpoints,
        &mut |_| {},
        &mut |_, _| Ok(()),
    )
    .unwrap();
    let cp =
        Checkpoint::from_bytes(&saved.unwrap(), &bundle.manifest, client.params(), steps).unwrap();
    // Not with another order of the batches.
    let other_order = RunOptions {
        resume: Some(cp.clone()),
        epochs: Some(Epochs::shuffled(spec.count(), 2, 8).unwrap()),
        ..RunOptions::default()
    };
    let e = train_run(&bundle, steps, other_order, &mut |_| {}, &mut |_, _| Ok(()));
    assert!(
        e.as_ref().is_err_and(|e| e.to_string().contains("order")),
        "{:?}",
        e.map(|_| ())
    );
    let resumed = RunOptions {
        resume: Some(cp),
        ..options()
    };
    let (again, _) = train_run(&bundle, steps, resumed, &mut |_| {}, &mut |_, _| Ok(())).unwrap();
    assert_eq!(
        ciphertexts_to_bytes(&again.weights),
        ciphertexts_to_bytes(&model.weights)
    );

    // Untrusted batch files: a file with a ciphertext too many, a truncated one, a missing
    // one, and an order that is not a permutation are refused with errors, not panics.
    let file = dir.join("batches").join(volley_train::dirs::batch_file(1));
    let original = std::fs::read(&file).unwrap();
    let mut extra = batches[1].clone();
    extra.push(batches[1][0].clone());
    let mut bytes = Vec::new();
    write_ciphertexts(&mut bytes, &extra).unwrap();
    for (what, content) in [
        ("a ciphertext too many", Some(bytes)),
        ("truncated", Some(original[..original.len() - 100].to_vec())),
        ("missing", None),
    ] {
        match content {
            Some(b) => std::fs::write(&file, b).unwrap(),
            None => std::fs::remove_file(&file).unwrap(),
        }
        let loaded = from_dir();
        let e = train_run(&loaded, steps, options(), &mut |_| {}, &mut |_, _| Ok(()));
        assert!(e.is_err(), "{what}");
    }
    let bad_order = RunOptions {
        epochs: Some(Epochs::new(vec![vec![0, 0, 1], vec![0, 1, 2]])),
        ..RunOptions::default()
    };
    assert!(train_run(&bundle, steps, bad_order, &mut |_| {}, &mut |_, _| Ok(())).is_err());
    let _ = std::fs::remove_dir_all(&dir);
}
