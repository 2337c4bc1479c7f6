//! What the server holds while it runs: the store, the tokens, the limits, the data
//! directory's layout and the live progress of running jobs.

use crate::auth::Tokens;
use crate::store::Store;
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

/// The operator's limits.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Largest upload (sum of its files), bytes.
    pub max_upload: u64,
    /// Most files in one upload.
    pub max_files: usize,
    /// Largest JSON request body, bytes.
    pub max_json: usize,
    /// Jobs training at once; the rest wait in the queue.
    pub max_running: usize,
    /// Jobs waiting in the queue (all tenants); more are refused with 429 until it drains.
    pub max_queued: usize,
    /// An upload request whose body stalls this long is ended (its bytes so far are kept).
    pub idle_timeout: std::time::Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_upload: 64 << 30,
            max_files: 100_000,
            max_json: 1 << 20,
            max_running: 1,
            max_queued: 1000,
            idle_timeout: std::time::Duration::from_secs(60),
        }
    }
}

/// A running job, as the status calls see it between checkpoints.
#[derive(Debug)]
pub struct Live {
    /// Set to stop the run after its current iteration.
    pub cancel: Arc<AtomicBool>,
    /// The tenant asked for the stop (otherwise the server is shutting down).
    pub cancelled_by_tenant: bool,
    /// When this attempt started.
    pub started: Instant,
    /// Iterations done when this attempt started (its checkpoint).
    pub first_iteration: usize,
    /// Iterations done.
    pub iteration: usize,
    /// Iterations of the run.
    pub iterations: usize,
    /// Seconds of earlier attempts.
    pub seconds_before: f64,
}

impl Live {
    /// Seconds spent training over all attempts.
    pub fn seconds(&self) -> f64 {
        self.seconds_before + self.started.elapsed().as_secs_f64()
    }

    /// Estimated seconds to the end, from this attempt's pace (none before its first
    /// iteration).
    pub fn eta_seconds(&self) -> Option<f64> {
        let done = self.iteration.checked_sub(self.first_iteration)?;
        (done > 0).then(|| {
            self.started.elapsed().as_secs_f64() / done as f64
                * self.iterations.saturating_sub(self.iteration) as f64
        })
    }
}

/// The server's shared state.
pub struct AppState {
    /// The job store.
    pub store: Mutex<Store>,
    /// The data directory.
    pub data: PathBuf,
    /// Who may call.
    pub tokens: Tokens,
    /// The limits.
    pub limits: Limits,
    /// Running jobs by id.
    pub live: Mutex<HashMap<String, Live>>,
    /// Upload files being written (upload id, path): one writer each.
    pub writing: Mutex<HashSet<(String, String)>>,
    /// Wakes the dispatcher (a job was queued or one ended).
    pub wake: tokio::sync::Notify,
    /// The training threads (see [`training_pool`]).
    pub pool: rayon::ThreadPool,
}

/// The threads jobs train on: `threads` of them, each at nice 10 under Linux's normal
/// scheduler, so the API's threads (nice 0) win the cores whenever they want them (status
/// requests, uploads) and training takes everything else. Failing to lower the priority
/// (another OS) only loses that preference.
pub fn training_pool(threads: usize) -> Result<rayon::ThreadPool, String> {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads.max(1))
        .thread_name(|i| format!("volley-train-{i}"))
        .start_handler(|_| {
            use thread_priority::{
                NormalThreadSchedulePolicy, ThreadPriority, ThreadPriorityValue,
                ThreadSchedulePolicy, set_thread_priority_and_policy, thread_native_id,
            };
            // Crossplatform 25 of 0..99 is nice 10 of -20..19 under a normal policy.
            if let Ok(p) = ThreadPriorityValue::try_from(25u8) {
                let _ = set_thread_priority_and_policy(
                    thread_native_id(),
                    ThreadPriority::Crossplatform(p),
                    ThreadSchedulePolicy::Normal(NormalThreadSchedulePolicy::Other),
                );
            }
        })
        .build()
        .map_err(|e| e.to_string())
}

/// Locks a mutex, recovering from a panicked holder (the data is rows and counters, valid
/// at every step).
pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl AppState {
    /// The database file in a data directory.
    pub fn db_path(data: &Path) -> PathBuf {
        data.join("volley.sqlite")
    }
    /// The directory of upload `id`'s files (ids are checked before they get here).
    pub fn upload_dir(&self, id: &str) -> PathBuf {
        self.data.join("uploads").join(id)
    }
    /// The directory of job `id`.
    pub fn job_dir(&self, id: &str) -> PathBuf {
        self.data.join("jobs").join(id)
    }
    /// The encrypted model of job `id` (its work directory is the hidden sibling).
    pub fn model_dir(&self, id: &str) -> PathBuf {
        self.job_dir(id).join("model")
    }
    /// The store, locked.
    pub fn store(&self) -> MutexGuard<'_, Store> {
        lock(&self.store)
    }
}
