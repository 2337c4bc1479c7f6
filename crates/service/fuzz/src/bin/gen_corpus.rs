//! Writes valid inputs into `corpus/<target>/` (the directory given as the first argument,
//! default `corpus`).
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::path::Path;

fn put(dir: &Path, target: &str, name: &str, bytes: &[u8]) {
    let d = dir.join(target);
    std::fs::create_dir_all(&d).expect("corpus directory");
    std::fs::write(d.join(name), bytes).expect("corpus file");
}

fn main() {
    let dir = std::env::args().nth(1).unwrap_or_else(|| "corpus".into());
    let dir = Path::new(&dir);
    put(
        dir,
        "upload_request",
        "bundle",
        br#"{"files": [{"path": "manifest.json", "bytes": 2000}, {"path": "params.bin", "bytes": 120}, {"path": "keys.bin", "bytes": 5000000}, {"path": "w0.cts", "bytes": 900}, {"path": "batches/batch-000000.cts", "bytes": 70000}]}"#,
    );
    put(
        dir,
        "upload_request",
        "one",
        br#"{"files": [{"path": "x.cts", "bytes": 1}]}"#,
    );
    put(dir, "job_request", "iters", br#"{"upload": "0123456789abcdef0123456789abcdef", "train": {"iters": 3, "snapshot_every": 1}}"#);
    put(dir, "job_request", "epochs", br#"{"upload": "0123456789abcdef0123456789abcdef", "train": {"epochs": 2, "shuffle_seed": 7, "checkpoint_every": 2}}"#);
    put(
        dir,
        "job_request",
        "default",
        br#"{"upload": "0123456789abcdef0123456789abcdef"}"#,
    );
    let mut sk = b"VLCK".to_vec();
    sk.extend_from_slice(&3u16.to_le_bytes());
    sk.push(9);
    sk.extend_from_slice(&[0u8; 32]);
    put(dir, "upload_file", "secret_key_header", &sk);
    put(dir, "upload_file", "name", b"batches/batch-000001.cts");
    put(
        dir,
        "tokens_file",
        "two",
        b"# tenants\nalice 6b1d74efb0dadcd5a3a625e080695b728db286cdac5d6bdc59424945154ca6c5\nbob 0000000000000000000000000000000000000000000000000000000000000000\n",
    );
}
