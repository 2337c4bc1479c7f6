//! Helpers shared by the command line's test files.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub fn volley(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_volley"))
        .args(["--quiet"])
        .args(args)
        .output()
        .expect("run volley")
}

/// Runs volley and asserts success (stderr shown on failure).
pub fn volley_ok(args: &[&str]) -> Output {
    let out = volley(args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

pub fn tmpdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("volley-cli-test-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

pub fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// Asserts a clean failure: exit code 1, one `error:` line, no panic message.
pub fn assert_fails(out: &Output, needle: &str) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "expected failure, got success; stderr: {err}"
    );
    assert!(!err.contains("panicked"), "panic: {err}");
    assert_eq!(out.status.code(), Some(1), "stderr: {err}");
    let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "one line expected: {err}");
    assert!(lines[0].starts_with("error: "), "{err}");
    assert!(
        err.to_lowercase().contains(&needle.to_lowercase()),
        "expected {needle:?} in: {err}"
    );
}

/// A small separable data set: label = argmax of the first two features.
pub fn write_csv(dir: &Path, rows: usize) -> PathBuf {
    let mut s = String::new();
    for i in 0..rows {
        let label = i % 2;
        let a = if label == 0 { 2.0 } else { 0.1 };
        let b = if label == 1 { 2.0 } else { 0.1 };
        s.push_str(&format!(
            "{label}.0,{a},{b},{},{},0.5\n",
            (i % 7) as f64 * 0.1,
            (i % 3) as f64 * 0.2
        ));
    }
    let path = dir.join("features.csv");
    std::fs::write(&path, s).unwrap();
    path
}

/// `volley keygen` with `keygen` flags, then `volley encrypt` of rows 0..16 of a fresh
/// `rows`-row CSV: the CSV, the key directory and the upload bundle.
pub fn keys_and_upload(dir: &Path, rows: usize, keygen: &[&str]) -> (PathBuf, PathBuf, PathBuf) {
    let csv = write_csv(dir, rows);
    let keys = dir.join("keys");
    let bundle = dir.join("bundle");
    volley_ok(&[&["keygen", "--keys", p(&keys)], keygen].concat());
    encrypt_rows(&keys, &csv, &bundle);
    (csv, keys, bundle)
}

/// `volley encrypt` of rows 0..16 of `csv` with `keys` into the bundle `out`.
pub fn encrypt_rows(keys: &Path, csv: &Path, out: &Path) {
    volley_ok(&[
        "encrypt",
        "--keys",
        p(keys),
        "--features",
        p(csv),
        "--train-rows",
        "0..16",
        "--out",
        p(out),
    ]);
}

pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
    }
}

/// Rewrites one field of a manifest (`path` of JSON keys) in a copy of `dir`.
pub fn tamper(dir: &Path, to: &Path, path: &[&str], value: serde_json::Value) {
    copy_dir(dir, to);
    let f = to.join("manifest.json");
    let mut m: serde_json::Value = serde_json::from_slice(&std::fs::read(&f).unwrap()).unwrap();
    let mut cur = &mut m;
    for k in &path[..path.len() - 1] {
        cur = cur.get_mut(*k).unwrap();
    }
    cur[path[path.len() - 1]] = value;
    std::fs::write(&f, serde_json::to_vec_pretty(&m).unwrap()).unwrap();
}
