//! Writes valid serialized objects into `corpus/<target>/` (the directory given as the
//! first argument, default `corpus`): without them libFuzzer would first have to guess
//! the 32-byte parameter fingerprint before reaching any body decoder.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::path::Path;
use volley_ckks::client::{KeyGenerator, encrypt_secret, save_secret_key};
use volley_ckks::*;
use volley_ckks_fuzz::{params, sparse_params};

fn put(dir: &Path, target: &str, name: &str, bytes: &[u8]) {
    let d = dir.join(target);
    std::fs::create_dir_all(&d).expect("corpus directory");
    std::fs::write(d.join(name), bytes).expect("corpus file");
}

fn main() {
    let dir = std::env::args().nth(1).unwrap_or_else(|| "corpus".into());
    let dir = Path::new(&dir);
    let p = params();
    let mut kg = KeyGenerator::new_deterministic_for_tests(p.clone(), [9u8; 32]);
    let sk = kg.gen_secret_key();
    let pk = kg.gen_public_key(&sk);
    let keys = kg.gen_evaluation_keys(&sk, true, &[1, -2], true);
    let enc = Encoder::new(p.clone());
    let v: Vec<f64> = (0..8).map(|i| i as f64 / 8.0 - 0.5).collect();
    let pt = enc.encode(&v, p.max_level(), p.default_scale(), 8).unwrap();
    let pt1 = enc.encode(&v[..2], 1, 2f64.powi(20), 2).unwrap();
    put(dir, "plaintext", "top", &pt.to_bytes());
    put(dir, "plaintext", "level1", &pt1.to_bytes());
    let eval = Evaluator::new(p.clone(), keys.clone());
    let seeded = encrypt_secret(&sk, &pt).unwrap();
    let public = encrypt_public(&pk, &pt).unwrap();
    let d2 = eval.mul_no_relin(&public, &public).unwrap();
    let low = eval.drop_to_level(&public, 0).unwrap();
    for (name, ct) in [("seeded", &seeded), ("public", &public), ("degree2", &d2), ("level0", &low)] {
        put(dir, "ciphertext", name, &ct.to_bytes());
    }
    put(dir, "public_key", "pk", &pk.to_bytes());
    let relin = keys.relin.as_ref().unwrap();
    put(dir, "switching_key", "relin", &relin.to_bytes());
    put(dir, "switching_key", "switching", &relin.key().to_bytes());
    for (g, k) in &keys.galois {
        put(dir, "switching_key", &format!("galois{g}"), &k.to_bytes());
    }
    put(dir, "evaluation_keys", "all", &keys.to_bytes());
    let galois_only = EvaluationKeys { galois: keys.galois.clone(), ..Default::default() };
    put(dir, "evaluation_keys", "galois_only", &galois_only.to_bytes());
    // Keys stopping below the top level, alone and mixed with full ones.
    let low = kg.gen_evaluation_keys_up_to(&sk, true, &[1, 3], false, 0);
    put(dir, "switching_key", "relin_level0", &low.relin.as_ref().unwrap().to_bytes());
    let mut mixed = keys.clone();
    mixed.merge(low.clone());
    put(dir, "evaluation_keys", "level0", &low.to_bytes());
    put(dir, "evaluation_keys", "mixed_levels", &mixed.to_bytes());
    let encapsulation = kg.gen_encapsulation_keys(&sk).unwrap();
    put(dir, "encapsulation_keys", "keys", &encapsulation.to_bytes());
    put(dir, "params", "fuzz", &params_to_bytes(p));
    put(dir, "params", "sparse", &params_to_bytes(sparse_params()));
    put(dir, "params", "leveled15", &params_to_bytes(&Params::preset("leveled15").unwrap()));
    let mut b = Vec::new();
    save_secret_key(&sk, &mut b).unwrap();
    put(dir, "secret_key", "ternary", &b);
    let sparse_sk = KeyGenerator::new_deterministic_for_tests(sparse_params().clone(), [4u8; 32]).gen_secret_key();
    let mut b = Vec::new();
    save_secret_key(&sparse_sk, &mut b).unwrap();
    put(dir, "secret_key", "sparse", &b);
    println!("corpus written to {}", dir.display());
}
