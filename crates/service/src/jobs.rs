//! The job queue: a dispatcher starts queued jobs while fewer than `--max-running` train,
//! each on a blocking thread running [`volley_train::job::run`] with a checkpoint after
//! every iteration (or the job's own interval) and resumption always on, so a job the
//! server was killed in resumes from its last checkpoint when the server comes back and
//! ends with the model of an uninterrupted run.

use crate::state::{AppState, Live, lock};
use crate::store::{Job, job_state};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;
use volley_train::TrainError;
use volley_train::job::{self, Control};
use volley_train::server::Progress;

/// Runs forever: starts jobs when slots are free, sleeps until woken otherwise.
pub async fn dispatcher(state: Arc<AppState>) {
    loop {
        loop {
            if lock(&state.live).len() >= state.limits.max_running {
                break;
            }
            let claimed = state.store().claim_next();
            match claimed {
                Ok(Some(job)) => start(state.clone(), job),
                Ok(None) => break,
                Err(e) => {
                    eprintln!("volley serve: job store: {e}");
                    break;
                }
            }
        }
        // A periodic look as well: a notification can only be missed by a race with
        // the check above, and this bounds its cost to a second.
        let _ =
            tokio::time::timeout(std::time::Duration::from_secs(1), state.wake.notified()).await;
    }
}

/// Starts `job` (already marked running) on a blocking thread.
fn start(state: Arc<AppState>, job: Job) {
    let cancel = Arc::new(AtomicBool::new(false));
    lock(&state.live).insert(
        job.id.clone(),
        Live {
            cancel: cancel.clone(),
            cancelled_by_tenant: false,
            started: Instant::now(),
            first_iteration: job.iteration,
            iteration: job.iteration,
            iterations: job.iterations,
            seconds_before: job.seconds,
        },
    );
    let id = job.id.clone();
    tokio::spawn(async move {
        let st = state.clone();
        let result = tokio::task::spawn_blocking(move || run(&st, &job, &cancel)).await;
        let (final_state, error) = match result {
            Ok(Ok(())) => (job_state::DONE, None),
            Ok(Err(TrainError::Cancelled)) => {
                let by_tenant = lock(&state.live)
                    .get(&id)
                    .is_some_and(|l| l.cancelled_by_tenant);
                if by_tenant {
                    // Its work directory (checkpoint) is of no more use.
                    let _ = std::fs::remove_dir_all(state.job_dir(&id));
                    (job_state::CANCELLED, None)
                } else {
                    // Shutting down: it stays running in the store and resumes at the
                    // next start.
                    lock(&state.live).remove(&id);
                    return;
                }
            }
            Ok(Err(e)) => (job_state::FAILED, Some(e.to_string())),
            Err(e) => (job_state::FAILED, Some(format!("internal error: {e}"))),
        };
        // The last figures, then out of the live set (the store holds them from here).
        let live = lock(&state.live).remove(&id);
        {
            let store = state.store();
            if let Some(l) = live {
                let done = if final_state == job_state::DONE {
                    l.iterations
                } else {
                    l.iteration
                };
                let _ = store.set_progress(&id, done, l.seconds());
            }
            if let Err(e) = store.finish_job(&id, final_state, error.as_deref()) {
                eprintln!("volley serve: job {id}: {e}");
            }
        }
        state.wake.notify_one();
    });
}

/// Trains one job (blocking).
fn run(state: &AppState, job: &Job, cancel: &AtomicBool) -> volley_train::Result<()> {
    let mut spec = job.spec.clone();
    // At least one checkpoint per iteration unless the job asks for another interval.
    spec.checkpoint_every = Some(spec.checkpoint_every.unwrap_or(1));
    let out = state.model_dir(&job.id);
    std::fs::create_dir_all(state.job_dir(&job.id))
        .map_err(|e| TrainError::io(state.job_dir(&job.id), e))?;
    let upload = state.upload_dir(&job.upload);
    let mut progress = |p: Progress| {
        if let Progress::Iteration(k, _) | Progress::Resumed(k, _) = p {
            let seconds = {
                let mut live = lock(&state.live);
                live.get_mut(&job.id).map(|l| {
                    l.iteration = k;
                    if matches!(p, Progress::Resumed(..)) {
                        l.first_iteration = k;
                    }
                    l.seconds()
                })
            };
            if let Some(s) = seconds {
                let _ = state.store().set_progress(&job.id, k, s);
            }
        }
    };
    let control = Control {
        resume: true,
        cancel: Some(cancel),
    };
    state
        .pool
        .install(|| job::run(&upload, &out, &spec, control, &mut progress))
        .map(|_| ())
}

/// Asks a running job to stop on behalf of its tenant (false when it is not running here).
pub fn cancel_running(state: &AppState, id: &str) -> bool {
    let mut live = lock(&state.live);
    match live.get_mut(id) {
        Some(l) => {
            l.cancelled_by_tenant = true;
            l.cancel.store(true, Ordering::Relaxed);
            true
        }
        None => false,
    }
}

/// Asks every running job to stop at its next iteration because the server stops (they
/// stay in the store as running and resume at the next start).
pub fn stop_all(state: &AppState) {
    for l in lock(&state.live).values() {
        l.cancel.store(true, Ordering::Relaxed);
    }
}
