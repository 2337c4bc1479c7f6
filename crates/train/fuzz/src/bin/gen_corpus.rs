//! Writes valid inputs into `corpus/<target>/` (the directory given as the first argument,
//! default `corpus`): a container, a checkpoint, a manifest and a query manifest on the
//! fuzz parameters.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::path::Path;
use volley_ckks::client::{KeyGenerator, encrypt_secret};
use volley_ckks::{Encoder, EvaluationKeys, Evaluator};
use volley_train::checkpoint::CheckpointRef;
use volley_train::container::ciphertexts_to_bytes;
use volley_train::inference::QueryManifest;
use volley_train::layout::{Geometry, Schedule};
use volley_train_fuzz::{ITERATIONS, manifest, params};

fn put(dir: &Path, target: &str, name: &str, bytes: &[u8]) {
    let d = dir.join(target);
    std::fs::create_dir_all(&d).expect("corpus directory");
    std::fs::write(d.join(name), bytes).expect("corpus file");
}

fn main() {
    let dir = std::env::args().nth(1).unwrap_or_else(|| "corpus".into());
    let dir = Path::new(&dir);
    let p = params();
    let m = manifest();
    let mut kg = KeyGenerator::new_deterministic_for_tests(p.clone(), [5u8; 32]);
    let sk = kg.gen_secret_key();
    let enc = Encoder::new(p.clone());
    let slots = p.max_slots();
    let ct = |level: usize, x: f64| {
        let v: Vec<f64> = (0..slots).map(|i| x + i as f64 / 16.0).collect();
        encrypt_secret(
            &sk,
            &enc.encode(&v, level, p.default_scale(), slots).unwrap(),
        )
        .unwrap()
    };
    let eval = Evaluator::new(p.clone(), EvaluationKeys::default());
    let seeded = ct(2, 0.1);
    let low = eval.drop_to_level(&ct(2, 0.2), 1).unwrap();
    put(
        dir,
        "container",
        "two",
        &ciphertexts_to_bytes(&[seeded, low]),
    );
    put(dir, "container", "empty", &ciphertexts_to_bytes(&[]));
    let n_o = m.geometry.diagonals;
    let v: Vec<_> = (0..n_o)
        .map(|t| eval.drop_to_level(&ct(2, t as f64), 1).unwrap())
        .collect();
    let vp: Vec<_> = (0..n_o).map(|t| ct(2, -(t as f64))).collect();
    let mut cp = Vec::new();
    CheckpointRef {
        iterations: ITERATIONS,
        iteration: 1,
        v: &v,
        v_prev: &vp,
        order: None,
    }
    .write_to(m, &mut cp)
    .unwrap();
    put(dir, "checkpoint", "iteration1", &cp);
    put(
        dir,
        "manifest",
        "valid",
        &serde_json::to_vec_pretty(m).unwrap(),
    );
    // A mini-batch upload's manifest: 10 rows in batches of the geometry's 4, only "w0".
    let mut batched = m.clone();
    batched.batches = Some(volley_train::batches::BatchSpec::new(10, 4, 0.3).unwrap());
    batched.ciphertexts.retain(|name, _| name == "w0");
    batched.validate(params()).unwrap();
    put(
        dir,
        "manifest",
        "batched",
        &serde_json::to_vec_pretty(&batched).unwrap(),
    );
    let g = Geometry::new(Schedule::Diagonal, 5, m.geometry.c, m.geometry.d, slots).unwrap();
    let q = QueryManifest {
        key_id: m.key_id.clone(),
        fingerprint: m.fingerprint.clone(),
        geometry: g,
    };
    assert!(q.validate(m).is_ok());
    put(
        dir,
        "query_manifest",
        "valid",
        &serde_json::to_vec_pretty(&q).unwrap(),
    );
}
