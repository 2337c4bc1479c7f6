//! `volley serve` and its client commands end to end on loopback with TLS: the served
//! model equals the local one, bad uploads are refused before a job, and a server killed
//! at random moments loses nothing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::*;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A `volley serve` process with a self-signed certificate.
struct Served {
    child: Child,
    base: String,
    cert: PathBuf,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Starts the server on `port` and waits (at most 30 s) until it answers.
fn serve(data: &Path, tokens: &Path, port: u16, extra: &[&str]) -> Served {
    let listen = format!("127.0.0.1:{port}");
    let child = Command::new(env!("CARGO_BIN_EXE_volley"))
        .args(["--quiet", "--threads", "2", "serve", "--listen", &listen])
        .args([
            "--data-dir",
            p(data),
            "--tokens",
            p(tokens),
            "--tls-self-signed",
        ])
        .args(extra)
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn volley serve");
    let base = format!("https://{listen}");
    let cert = data.join("tls").join("cert.pem");
    let start = Instant::now();
    loop {
        if cert.exists() {
            if let Ok(c) = volley_service::client::Client::new(&base, "-", Some(&cert)) {
                if c.health().is_ok() {
                    break;
                }
            }
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the server did not come up"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    Served { child, base, cert }
}

/// A failed command whose last line is the error (earlier lines: what it did before).
fn assert_refused(out: &std::process::Output, needle: &str) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    let last = err.lines().last().unwrap_or("");
    assert!(
        last.starts_with("error: ") && last.contains(needle),
        "{err}"
    );
}

fn token(tokens: &Path, tenant: &str) -> String {
    let out = volley_ok(&["token", "--tokens", p(tokens), "--tenant", tenant]);
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

fn client_args<'a>(s: &'a Served, token: &'a str) -> Vec<&'a str> {
    vec![
        "--server",
        &s.base,
        "--token",
        token,
        "--ca-cert",
        p(&s.cert),
    ]
}

#[test]
fn served_training_equals_local_training() {
    let dir = tmpdir("serve");
    let (_, keys, bundle) = keys_and_upload(&dir, 24, &["--iters", "2"]);
    let local = dir.join("local");
    volley_ok(&[
        "train",
        "--bundle",
        p(&bundle),
        "--out",
        p(&local),
        "--snapshot-every",
        "1",
    ]);
    let tokens = dir.join("tokens.txt");
    let alice = token(&tokens, "alice");
    let bob = token(&tokens, "bob");
    let s = serve(&dir.join("data"), &tokens, free_port(), &[]);
    let out = volley_ok(
        &[
            &["submit"][..],
            &client_args(&s, &alice),
            &["--bundle", p(&bundle), "--snapshot-every", "1", "--wait"],
        ]
        .concat(),
    );
    let job = String::from_utf8(out.stdout).unwrap().trim().to_string();
    assert_eq!(job.len(), 32, "{job}");
    let status = volley_ok(&[&["status"][..], &client_args(&s, &alice), &["--job", &job]].concat());
    let v: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(
        (v["state"].as_str(), v["iteration"].as_u64()),
        (Some("done"), Some(2)),
        "{v}"
    );
    // Its server-sent events: one status (done) and the end of the stream.
    let api = volley_service::client::Client::new(&s.base, &alice, Some(&s.cert)).unwrap();
    let mut seen = Vec::new();
    let done = api
        .follow(&job, &mut |j| seen.push(j.state.clone()))
        .unwrap();
    assert_eq!((done.iteration, seen), (2, vec!["done".to_string()]));
    // Cancel and delete: a job cancelled while queued or training ends cancelled, has no
    // model, and is deleted with its files; a finished job cannot be cancelled.
    let upload = api.job(&job).unwrap().upload;
    // The loss and epoch rates are mini-batch options: refused on this full-batch upload
    // before a job exists.
    let margin = volley_train::job::TrainSpec {
        loss: Some(volley_train::algorithm::Loss::Margin),
        ..Default::default()
    };
    let refused = api.create_job(&upload, &margin).unwrap_err().to_string();
    assert!(refused.contains("mini-batch"), "{refused}");
    let spec = volley_train::job::TrainSpec::default();
    let second = api.create_job(&upload, &spec).unwrap();
    let cancelled = api.cancel(&second.id).unwrap();
    assert!(
        matches!(cancelled.state.as_str(), "cancelled" | "running"),
        "{cancelled:?}"
    );
    let start = Instant::now();
    while api.job(&second.id).unwrap().state != "cancelled" {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "the cancelled job did not stop"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let no_model = api.fetch_model(&second.id, &dir.join("none"));
    assert!(
        matches!(
            no_model,
            Err(volley_service::ServiceError::Api { status: 409, .. })
        ),
        "{no_model:?}"
    );
    assert!(!dir.join("none").exists());
    api.delete_job(&second.id).unwrap();
    assert!(matches!(
        api.job(&second.id),
        Err(volley_service::ServiceError::Api { status: 404, .. })
    ));
    assert!(matches!(
        api.cancel(&job),
        Err(volley_service::ServiceError::Api { status: 409, .. })
    ));
    // Another tenant sees none of it.
    assert_fails(
        &volley(&[&["status"][..], &client_args(&s, &bob), &["--job", &job]].concat()),
        "not_found",
    );
    let theirs = volley_ok(&[&["status"][..], &client_args(&s, &bob)].concat());
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&theirs.stdout).unwrap(),
        serde_json::json!([])
    );
    let remote = dir.join("remote");
    volley_ok(
        &[
            &["fetch"][..],
            &client_args(&s, &alice),
            &["--job", &job, "--out", p(&remote)],
        ]
        .concat(),
    );
    for f in [
        "weights.cts",
        "snapshots/iter-000001.cts",
        "snapshots/iter-000002.cts",
    ] {
        assert_eq!(
            std::fs::read(local.join(f)).unwrap(),
            std::fs::read(remote.join(f)).unwrap(),
            "{f}: the served model is the local one, bit for bit"
        );
    }
    let (wl, wr) = (dir.join("wl.csv"), dir.join("wr.csv"));
    volley_ok(&[
        "decrypt",
        "--keys",
        p(&keys),
        "--model",
        p(&local),
        "--out",
        p(&wl),
    ]);
    volley_ok(&[
        "decrypt",
        "--keys",
        p(&keys),
        "--model",
        p(&remote),
        "--out",
        p(&wr),
    ]);
    assert_eq!(std::fs::read(&wl).unwrap(), std::fs::read(&wr).unwrap());
    // Submitting the same bundle again reuses the verified upload.
    let again = volley_ok(
        &[
            &["submit"][..],
            &client_args(&s, &alice),
            &["--bundle", p(&bundle)],
        ]
        .concat(),
    );
    assert!(String::from_utf8_lossy(&again.stderr).contains("already on the server"));
    // Tampered manifests are refused when the upload completes, before any job.
    for (name, path, value) in [
        (
            "slots",
            &["geometry", "slots"][..],
            serde_json::json!(1u64 << 40),
        ),
        (
            "count",
            &["ciphertexts", "x"][..],
            serde_json::json!(1_000_000),
        ),
    ] {
        let b = dir.join(format!("bundle-{name}"));
        tamper(&bundle, &b, path, value);
        let _ = std::fs::remove_file(b.join(volley_service::client::UPLOAD_RECORD));
        assert_fails(
            &volley(
                &[
                    &["submit"][..],
                    &client_args(&s, &alice),
                    &["--bundle", p(&b)],
                ]
                .concat(),
            ),
            "invalid_upload",
        );
    }
    // Options the upload cannot take are refused before queueing.
    assert_refused(
        &volley(
            &[
                &["submit"][..],
                &client_args(&s, &alice),
                &["--bundle", p(&bundle), "--epochs", "2"],
            ]
            .concat(),
        ),
        "mini-batch",
    );
    // The demo with the server's side on the server: the same numbers as the reference.
    let report = dir.join("demo.json");
    volley_ok(
        &[
            &["demo"][..],
            &client_args(&s, &alice),
            &[
                "--features",
                p(&dir.join("features.csv")),
                "--train-rows",
                "0..16",
            ],
            &[
                "--test-rows",
                "16..24",
                "--iters",
                "2",
                "--snapshot-every",
                "1",
            ],
            &["--report", p(&report)],
        ]
        .concat(),
    );
    let r: serde_json::Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    assert_eq!(r["prediction_agreement"], 1.0, "{r}");
    assert!(r["max_abs_weight_error"].as_f64().unwrap() < 1e-5, "{r}");
    assert_eq!(r["snapshots"].as_array().unwrap().len(), 2, "{r}");
    // Without TLS trust the client refuses the self-signed server.
    assert!(
        !volley(&["status", "--server", &s.base, "--token", &alice])
            .status
            .success()
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// A deterministic pseudo-random delay per round (SplitMix64), `lo..hi` milliseconds.
fn delay(round: u64, lo: u64, hi: u64) -> Duration {
    let mut z = round.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    Duration::from_millis(lo + z % (hi - lo))
}

/// The server SIGKILLed 20 times at random moments during uploads and training, restarted
/// each time: no job lost, every upload completes by resuming, every job ends with the
/// model of an uninterrupted local run.
#[test]
#[ignore = "about 2 minutes: run by .ci/run with --ignored"]
fn server_killed_twenty_times_loses_nothing() {
    let dir = tmpdir("crash");
    let (_, keys, bundle_a) = keys_and_upload(&dir, 24, &["--iters", "4"]);
    let bundle_b = dir.join("bundle-b");
    let csv = dir.join("features.csv");
    encrypt_rows(&keys, &csv, &bundle_b);
    let bundles = [bundle_a.clone(), bundle_b.clone()];
    let reference: Vec<Vec<u8>> = bundles
        .iter()
        .enumerate()
        .map(|(i, b)| {
            let m = dir.join(format!("local-{i}"));
            volley_ok(&["train", "--bundle", p(b), "--out", p(&m)]);
            std::fs::read(m.join("weights.cts")).unwrap()
        })
        .collect();
    let tokens = dir.join("tokens.txt");
    let alice = token(&tokens, "alice");
    let data = dir.join("data");
    let port = free_port();
    // Submissions in order: each bundle three times (the later ones reuse the verified
    // upload). While submissions remain, a round kills the server while a client uploads;
    // after, while a job trains.
    let plan = [0usize, 1, 0, 1, 0, 1];
    let mut next = 0;
    let (mut resumed_uploads, mut upload_kills, mut training_kills) = (0, 0, 0);
    for round in 0..20u64 {
        let mut s = serve(&data, &tokens, port, &[]);
        let api = volley_service::client::Client::new(&s.base, &alice, Some(&s.cert)).unwrap();
        let mut client = (next < plan.len()).then(|| {
            Command::new(env!("CARGO_BIN_EXE_volley"))
                .args(["--quiet", "submit"])
                .args(client_args(&s, &alice))
                .args(["--bundle", p(&bundles[plan[next]])])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        });
        if client.is_none() {
            // Wait (bounded) until a job has finished an iteration in this life of the
            // server (so it has a checkpoint to resume from), then kill at a random moment
            // of the next.
            let start = Instant::now();
            let mut first_seen = std::collections::HashMap::new();
            while start.elapsed() < Duration::from_secs(30) {
                let js = api.jobs().unwrap();
                if !js
                    .iter()
                    .any(|j| j.state == "queued" || j.state == "running")
                {
                    break;
                }
                let progressed = js
                    .iter()
                    .filter(|j| j.state == "running")
                    .any(|j| *first_seen.entry(j.id.clone()).or_insert(j.iteration) < j.iteration);
                if progressed {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            std::thread::sleep(delay(round, 0, 1500));
        } else {
            std::thread::sleep(delay(round, 100, 1500));
        }
        if api
            .jobs()
            .is_ok_and(|js| js.iter().any(|j| j.state == "running"))
        {
            training_kills += 1;
        }
        if let Some(c) = client.as_mut() {
            if c.try_wait().unwrap().is_none() {
                upload_kills += 1;
            }
        }
        s.child.kill().unwrap();
        s.child.wait().unwrap();
        if let Some(mut c) = client.take() {
            // The client ends by itself once its server is gone (bounded: killed after 10 s).
            let start = Instant::now();
            while c.try_wait().unwrap().is_none() && start.elapsed() < Duration::from_secs(10) {
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = c.kill();
            let out = c.wait_with_output().unwrap();
            let err = String::from_utf8_lossy(&out.stderr);
            if err.contains("continuing the upload") {
                resumed_uploads += 1;
            }
            if out.status.success() {
                next += 1;
            }
        }
    }
    // Back up for good: what was not submitted yet is submitted now (resuming its upload).
    let s = serve(&data, &tokens, port, &[]);
    while next < plan.len() {
        let out = volley_ok(
            &[
                &["submit"][..],
                &client_args(&s, &alice),
                &["--bundle", p(&bundles[plan[next]])],
            ]
            .concat(),
        );
        if String::from_utf8_lossy(&out.stderr).contains("continuing the upload") {
            resumed_uploads += 1;
        }
        next += 1;
    }
    let client = volley_service::client::Client::new(&s.base, &alice, Some(&s.cert)).unwrap();
    let start = Instant::now();
    let jobs = loop {
        let jobs = client.jobs().unwrap();
        if jobs.iter().all(|j| j.state == "done") || start.elapsed() > Duration::from_secs(600) {
            break jobs;
        }
        assert!(jobs.iter().all(|j| j.state != "failed"), "{jobs:?}");
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(
        jobs.len() >= plan.len(),
        "{} jobs for {} submissions",
        jobs.len(),
        plan.len()
    );
    let upload_of = |b: &Path| -> String {
        let r: serde_json::Value = serde_json::from_slice(
            &std::fs::read(b.join(volley_service::client::UPLOAD_RECORD)).unwrap(),
        )
        .unwrap();
        r["upload"].as_str().unwrap().to_string()
    };
    let uploads = [upload_of(&bundle_a), upload_of(&bundle_b)];
    for j in &jobs {
        assert_eq!(j.state, "done", "{j:?}");
        let which = uploads
            .iter()
            .position(|u| *u == j.upload)
            .expect("a job on a known upload");
        let m = dir.join(format!("fetched-{}", j.id));
        client.fetch_model(&j.id, &m).unwrap();
        assert_eq!(
            std::fs::read(m.join("weights.cts")).unwrap(),
            reference[which],
            "job {} (attempts {}) ends with the uninterrupted model",
            j.id,
            j.attempts
        );
    }
    let restarted = jobs.iter().filter(|j| j.attempts > 1).count();
    eprintln!(
        "20 kills ({upload_kills} while a client was uploading or submitting, {training_kills} while a job trained): {} jobs done, {restarted} of them resumed after a kill, {resumed_uploads} uploads continued from their bytes on the server",
        jobs.len()
    );
    assert!(
        restarted >= 3 && training_kills >= 8,
        "too few kills hit training: the test did not test"
    );
    assert!(
        resumed_uploads > 0 && upload_kills >= 3,
        "too few kills hit uploads: the test did not test"
    );
    drop(s);
    let _ = std::fs::remove_dir_all(&dir);
}
