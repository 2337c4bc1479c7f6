//! The service under load, on loopback with TLS (`volley bench serve`): many clients poll a
//! job's status while jobs train back to back and large uploads stream in. Reports every
//! request that failed, the status latency's percentiles and each upload's throughput.
//!
//! Everything runs in this process: the server (its own runtime, TLS with a self-signed
//! certificate in a temporary data directory), the pollers (one thread and one connection
//! each, as separate clients would be) and the uploaders (the service's own client).

use crate::ServiceError;
use crate::auth::{Tokens, new_token};
use crate::client::Client;
use crate::server::{ServeConfig, Tls, start};
use crate::state::Limits;
use crate::store::FileDecl;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use volley_train::job::TrainSpec;

/// What to run.
#[derive(Clone, Debug)]
pub struct LoadConfig {
    /// A real upload bundle: its jobs train while the clients poll.
    pub bundle: PathBuf,
    /// Concurrent status pollers.
    pub clients: usize,
    /// How long they poll.
    pub seconds: f64,
    /// Each poller's pause between two requests.
    pub poll_interval: Duration,
    /// Size of each large upload.
    pub upload_bytes: u64,
    /// Large uploads streamed at the same time as the polling.
    pub uploads: usize,
    /// Jobs queued on the bundle (at most one trains at a time: training goes on for the
    /// whole run if they last long enough); 0: nothing trains, the clients poll the list.
    pub jobs: usize,
    /// Training threads.
    pub threads: usize,
}

/// What was measured.
#[derive(Clone, Debug, serde::Serialize)]
pub struct LoadReport {
    /// Pollers.
    pub clients: usize,
    /// Seconds of polling.
    pub seconds: f64,
    /// Status requests made.
    pub requests: u64,
    /// Requests that failed (transport error, non-2xx status or an unreadable answer).
    pub failed_requests: u64,
    /// Status latency percentiles, milliseconds.
    pub status_p50_ms: f64,
    /// 90th percentile.
    pub status_p90_ms: f64,
    /// 99th percentile.
    pub status_p99_ms: f64,
    /// Largest.
    pub status_max_ms: f64,
    /// Status requests per second over all clients.
    pub requests_per_second: f64,
    /// Answers that showed their job training (the load ran beside training).
    pub answers_while_training: u64,
    /// Jobs done by the end.
    pub jobs_done: usize,
    /// Bytes of each large upload.
    pub upload_bytes: u64,
    /// Seconds of each large upload.
    pub upload_seconds: Vec<f64>,
    /// Each large upload's throughput, MB/s (10^6 bytes).
    pub upload_mb_per_s: Vec<f64>,
    /// Uploads that failed.
    pub failed_uploads: usize,
    /// Peak resident memory of this process (server and clients), bytes.
    pub peak_rss_bytes: u64,
}

fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * q).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// A file of `bytes` pseudo-random bytes (incompressible enough for a transfer test).
fn filler(path: &Path, bytes: u64) -> Result<(), ServiceError> {
    use std::io::Write;
    let mut f =
        std::io::BufWriter::new(std::fs::File::create(path).map_err(ServiceError::io(path))?);
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut block = vec![0u8; 1 << 20];
    let mut left = bytes;
    while left > 0 {
        for chunk in block.chunks_mut(8) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            chunk.copy_from_slice(&x.to_le_bytes()[..chunk.len()]);
        }
        let n = left.min(block.len() as u64) as usize;
        f.write_all(&block[..n]).map_err(ServiceError::io(path))?;
        left -= n as u64;
    }
    f.flush().map_err(ServiceError::io(path))
}

/// Runs the load test.
pub fn run(
    config: &LoadConfig,
    progress: &mut dyn FnMut(&str),
) -> Result<LoadReport, ServiceError> {
    let work = std::env::temp_dir().join(format!("volley-loadtest-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work).map_err(ServiceError::io(&work))?;
    let result = run_in(config, &work, progress);
    let _ = std::fs::remove_dir_all(&work);
    result
}

fn run_in(
    config: &LoadConfig,
    work: &Path,
    progress: &mut dyn FnMut(&str),
) -> Result<LoadReport, ServiceError> {
    let (token, line) = new_token("bench").map_err(ServiceError::Config)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| ServiceError::Http(e.to_string()))?;
    let server = runtime.block_on(start(ServeConfig {
        listen: "127.0.0.1:0"
            .parse()
            .map_err(|e| ServiceError::Config(format!("{e}")))?,
        data_dir: work.join("data"),
        tokens: Tokens::parse(&line).map_err(ServiceError::Config)?,
        tls: Tls::SelfSigned,
        limits: Limits::default(),
        threads: config.threads,
    }))?;
    let base = format!("https://{}", server.addr);
    let cert = server.cert.clone();
    runtime.spawn(server.wait());
    let client = Client::new(&base, &token, cert.as_deref())?;

    // Without jobs (`--jobs 0`) nothing trains: the clients poll the job list instead.
    let mut jobs = Vec::new();
    if config.jobs > 0 {
        progress("uploading the bundle");
        let upload = client.upload_bundle(&config.bundle, &mut |_, _| {})?;
        for _ in 0..config.jobs {
            jobs.push(client.create_job(&upload.id, &TrainSpec::default())?.id);
        }
        let start_wait = Instant::now();
        while client.job(&jobs[0])?.state == "queued"
            && start_wait.elapsed() < Duration::from_secs(60)
        {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    progress("writing the large uploads' files");
    let file = work.join("large.bin");
    filler(&file, config.upload_bytes)?;

    progress("polling, uploading and training");
    let stop = Arc::new(AtomicBool::new(false));
    let deadline = Instant::now() + Duration::from_secs_f64(config.seconds);
    let pollers: Vec<_> = (0..config.clients)
        .map(|i| {
            // Each client watches one of the jobs, so the answers cover queued, running
            // and done jobs as training moves down the queue.
            let (base, token, cert, job, stop) = (
                base.clone(),
                token.clone(),
                cert.clone(),
                jobs.get(i % jobs.len().max(1)).cloned(),
                stop.clone(),
            );
            let interval = config.poll_interval;
            std::thread::spawn(move || {
                let mut lat = Vec::new();
                let (mut failed, mut training) = (0u64, 0u64);
                let Ok(c) = Client::new(&base, &token, cert.as_deref()) else {
                    return (lat, 1, 0);
                };
                // Spread the first requests over one interval.
                std::thread::sleep(interval.mul_f64(i as f64 / 200.0 % 1.0));
                while Instant::now() < deadline && !stop.load(Ordering::Relaxed) {
                    let t = Instant::now();
                    let answer = match &job {
                        Some(id) => c.job(id).map(|j| j.state == "running"),
                        None => c.jobs().map(|_| false),
                    };
                    match answer {
                        Ok(running) => {
                            lat.push(t.elapsed().as_secs_f64() * 1e3);
                            training += u64::from(running);
                        }
                        Err(_) => failed += 1,
                    }
                    std::thread::sleep(interval);
                }
                (lat, failed, training)
            })
        })
        .collect();
    let uploaders: Vec<_> = (0..config.uploads)
        .map(|_| {
            let (base, token, cert, file) =
                (base.clone(), token.clone(), cert.clone(), file.clone());
            let bytes = config.upload_bytes;
            std::thread::spawn(move || -> Result<f64, ServiceError> {
                let c = Client::new(&base, &token, cert.as_deref())?;
                let u = c.create_upload(&[FileDecl {
                    path: "large.bin".into(),
                    bytes,
                }])?;
                let t = Instant::now();
                let v = c.put_file(&u.id, "large.bin", &file, 0)?;
                let secs = t.elapsed().as_secs_f64();
                if v.received != bytes {
                    return Err(ServiceError::Protocol(format!(
                        "{} of {bytes} bytes arrived",
                        v.received
                    )));
                }
                c.delete_upload(&u.id)?;
                Ok(secs)
            })
        })
        .collect();
    let mut upload_seconds = Vec::new();
    let mut failed_uploads = 0;
    for u in uploaders {
        match u.join() {
            Ok(Ok(s)) => upload_seconds.push(s),
            _ => failed_uploads += 1,
        }
    }
    let mut latencies = Vec::new();
    let (mut failed, mut training) = (0, 0);
    for p in pollers {
        if let Ok((lat, f, t)) = p.join() {
            latencies.extend(lat);
            failed += f;
            training += t;
        } else {
            failed += 1;
        }
    }
    stop.store(true, Ordering::Relaxed);
    let all = client.jobs()?;
    let jobs_done = all.iter().filter(|j| j.state == "done").count();
    for j in all
        .iter()
        .filter(|j| j.state == "queued" || j.state == "running")
    {
        let _ = client.cancel(&j.id);
    }
    latencies.sort_by(f64::total_cmp);
    let requests = latencies.len() as u64 + failed;
    let report = LoadReport {
        clients: config.clients,
        seconds: config.seconds,
        requests,
        failed_requests: failed,
        status_p50_ms: percentile(&latencies, 0.50),
        status_p90_ms: percentile(&latencies, 0.90),
        status_p99_ms: percentile(&latencies, 0.99),
        status_max_ms: latencies.last().copied().unwrap_or(0.0),
        requests_per_second: requests as f64 / config.seconds,
        answers_while_training: training,
        jobs_done,
        upload_bytes: config.upload_bytes,
        upload_mb_per_s: upload_seconds
            .iter()
            .map(|s| config.upload_bytes as f64 / 1e6 / s)
            .collect(),
        upload_seconds,
        failed_uploads,
        peak_rss_bytes: volley_ckks::peak_rss_bytes(),
    };
    // Running jobs see the cancellation at their next iteration; the runtime goes with them.
    runtime.shutdown_timeout(Duration::from_secs(30));
    Ok(report)
}
