//! The job store: uploads and jobs, their owners and states, in one SQLite database in the
//! data directory (WAL journal: a killed server loses no committed row). The blobs (upload
//! files, models, checkpoints) live beside it in the data directory, named by ids the
//! server made, never by names a client chose.

use rusqlite::{Connection, OptionalExtension, params};
use std::path::Path;
use volley_train::job::TrainSpec;

/// One file an upload declares.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct FileDecl {
    /// Relative path inside the bundle (`keys.bin`, `batches/batch-000000.cts`).
    pub path: String,
    /// Its size in bytes.
    pub bytes: u64,
}

/// States of an upload.
pub mod upload_state {
    /// Files are arriving.
    pub const RECEIVING: &str = "receiving";
    /// Every file arrived and the whole bundle was verified: jobs may use it.
    pub const READY: &str = "ready";
    /// Verification refused it (the reason is kept); only deleting it remains.
    pub const INVALID: &str = "invalid";
}

/// States of a job.
pub mod job_state {
    /// Waiting for a free slot (`--max-running`).
    pub const QUEUED: &str = "queued";
    /// Training.
    pub const RUNNING: &str = "running";
    /// The encrypted model is ready to download.
    pub const DONE: &str = "done";
    /// Training failed (the reason is kept).
    pub const FAILED: &str = "failed";
    /// Cancelled by its tenant.
    pub const CANCELLED: &str = "cancelled";
    /// True for the states a job never leaves.
    pub fn is_final(s: &str) -> bool {
        matches!(s, DONE | FAILED | CANCELLED)
    }
}

/// An upload's row.
#[derive(Clone, Debug)]
pub struct Upload {
    /// Id (32 hex digits).
    pub id: String,
    /// Owner.
    pub tenant: String,
    /// See [`upload_state`].
    pub state: String,
    /// Unix seconds.
    pub created: f64,
    /// The declared files.
    pub files: Vec<FileDecl>,
    /// Sum of the declared sizes.
    pub total_bytes: u64,
    /// Why it is invalid.
    pub error: Option<String>,
}

/// A job's row.
#[derive(Clone, Debug)]
pub struct Job {
    /// Id (32 hex digits).
    pub id: String,
    /// Owner.
    pub tenant: String,
    /// The upload it trains on.
    pub upload: String,
    /// See [`job_state`].
    pub state: String,
    /// The training options.
    pub spec: TrainSpec,
    /// Unix seconds of creation, of the (last) start and of the end.
    pub created: f64,
    /// Unix seconds of the last start.
    pub started: Option<f64>,
    /// Unix seconds of the end.
    pub finished: Option<f64>,
    /// Iterations done (as of the last checkpoint or progress report).
    pub iteration: usize,
    /// Iterations of the run.
    pub iterations: usize,
    /// Seconds spent training, over all attempts.
    pub seconds: f64,
    /// Times it was started (more than one after a restart of the server).
    pub attempts: usize,
    /// Why it failed.
    pub error: Option<String>,
}

/// The database.
pub struct Store {
    conn: Connection,
}

/// Unix seconds now.
pub fn now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS uploads (
    id TEXT PRIMARY KEY,
    tenant TEXT NOT NULL,
    state TEXT NOT NULL,
    created REAL NOT NULL,
    files TEXT NOT NULL,
    total_bytes INTEGER NOT NULL,
    error TEXT
);
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    tenant TEXT NOT NULL,
    upload TEXT NOT NULL,
    state TEXT NOT NULL,
    spec TEXT NOT NULL,
    created REAL NOT NULL,
    started REAL,
    finished REAL,
    iteration INTEGER NOT NULL DEFAULT 0,
    iterations INTEGER NOT NULL,
    seconds REAL NOT NULL DEFAULT 0,
    attempts INTEGER NOT NULL DEFAULT 0,
    error TEXT
);
CREATE INDEX IF NOT EXISTS jobs_by_state ON jobs(state, created);
";

fn upload_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Upload> {
    let files: String = r.get(4)?;
    Ok(Upload {
        id: r.get(0)?,
        tenant: r.get(1)?,
        state: r.get(2)?,
        created: r.get(3)?,
        files: serde_json::from_str(&files).map_err(|e| {
            rusqlite::Error::FromSqlConversionFailure(4, rusqlite::types::Type::Text, Box::new(e))
        })?,
        total_bytes: r.get::<_, i64>(5)?.max(0) as u64,
        error: r.get(6)?,
    })
}

fn job_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Job> {
    let spec: String = r.get(4)?;
    Ok(Job {
        id: r.get(0)?,
        tenant: r.get(1)?,
        upload: r.get(2)?,
        state: r.get(3)?,
        spec: serde_json::from_str(&spec).map_err(|e| {
            rusqlite::Error::FromSqlConversionFailure(4, rusqlite::types::Type::Text, Box::new(e))
        })?,
        created: r.get(5)?,
        started: r.get(6)?,
        finished: r.get(7)?,
        iteration: r.get::<_, i64>(8)?.max(0) as usize,
        iterations: r.get::<_, i64>(9)?.max(0) as usize,
        seconds: r.get(10)?,
        attempts: r.get::<_, i64>(11)?.max(0) as usize,
        error: r.get(12)?,
    })
}

const UPLOAD_COLS: &str = "id, tenant, state, created, files, total_bytes, error";
const JOB_COLS: &str = "id, tenant, upload, state, spec, created, started, finished, iteration, iterations, seconds, attempts, error";

impl Store {
    /// Opens (creating) the database at `path`.
    pub fn open(path: &Path) -> rusqlite::Result<Self> {
        let conn = Connection::open(path)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        // A killed process loses nothing committed with NORMAL in WAL mode (only a power
        // cut could lose the last transactions, never corrupt the file).
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.execute_batch(SCHEMA)?;
        Ok(Self { conn })
    }

    /// After a restart: jobs that were running go back to the queue (they resume from their
    /// checkpoints). Returns how many.
    pub fn requeue_running(&self) -> rusqlite::Result<usize> {
        self.conn.execute(
            "UPDATE jobs SET state = ?1 WHERE state = ?2",
            params![job_state::QUEUED, job_state::RUNNING],
        )
    }

    /// Adds an upload.
    pub fn insert_upload(&self, u: &Upload) -> rusqlite::Result<()> {
        let files = serde_json::to_string(&u.files).unwrap_or_default();
        self.conn.execute(
            &format!("INSERT INTO uploads ({UPLOAD_COLS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)"),
            params![
                u.id,
                u.tenant,
                u.state,
                u.created,
                files,
                u.total_bytes as i64,
                u.error
            ],
        )?;
        Ok(())
    }

    /// The tenant's upload `id`.
    pub fn upload(&self, tenant: &str, id: &str) -> rusqlite::Result<Option<Upload>> {
        self.conn
            .query_row(
                &format!("SELECT {UPLOAD_COLS} FROM uploads WHERE id = ?1 AND tenant = ?2"),
                params![id, tenant],
                upload_row,
            )
            .optional()
    }

    /// The tenant's uploads, newest first.
    pub fn uploads(&self, tenant: &str) -> rusqlite::Result<Vec<Upload>> {
        let mut st = self.conn.prepare(&format!(
            "SELECT {UPLOAD_COLS} FROM uploads WHERE tenant = ?1 ORDER BY created DESC LIMIT 1000"
        ))?;
        st.query_map(params![tenant], upload_row)?.collect()
    }

    /// Sets an upload's state (and error).
    pub fn set_upload_state(
        &self,
        id: &str,
        state: &str,
        error: Option<&str>,
    ) -> rusqlite::Result<()> {
        self.conn.execute(
            "UPDATE uploads SET state = ?2, error = ?3 WHERE id = ?1",
            params![id, state, error],
        )?;
        Ok(())
    }

    /// Removes an upload's row.
    pub fn delete_upload(&self, id: &str) -> rusqlite::Result<()> {
        self.conn
            .execute("DELETE FROM uploads WHERE id = ?1", params![id])?;
        Ok(())
    }

    /// Jobs on `upload` that are not finished.
    pub fn active_jobs_on(&self, upload: &str) -> rusqlite::Result<usize> {
        self.conn.query_row(
            "SELECT COUNT(*) FROM jobs WHERE upload = ?1 AND state IN (?2, ?3)",
            params![upload, job_state::QUEUED, job_state::RUNNING],
            |r| r.get::<_, i64>(0).map(|n| n.max(0) as usize),
        )
    }

    /// Jobs waiting in the queue, all tenants.
    pub fn queued_jobs(&self) -> rusqlite::Result<usize> {
        self.conn.query_row(
            "SELECT COUNT(*) FROM jobs WHERE state = ?1",
            params![job_state::QUEUED],
            |r| r.get::<_, i64>(0).map(|n| n.max(0) as usize),
        )
    }

    /// Adds a job.
    pub fn insert_job(&self, j: &Job) -> rusqlite::Result<()> {
        let spec = serde_json::to_string(&j.spec).unwrap_or_default();
        self.conn.execute(
            &format!(
                "INSERT INTO jobs ({JOB_COLS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)"
            ),
            params![
                j.id,
                j.tenant,
                j.upload,
                j.state,
                spec,
                j.created,
                j.started,
                j.finished,
                j.iteration as i64,
                j.iterations as i64,
                j.seconds,
                j.attempts as i64,
                j.error
            ],
        )?;
        Ok(())
    }

    /// The tenant's job `id`.
    pub fn job(&self, tenant: &str, id: &str) -> rusqlite::Result<Option<Job>> {
        self.conn
            .query_row(
                &format!("SELECT {JOB_COLS} FROM jobs WHERE id = ?1 AND tenant = ?2"),
                params![id, tenant],
                job_row,
            )
            .optional()
    }

    /// The tenant's jobs, newest first.
    pub fn jobs(&self, tenant: &str) -> rusqlite::Result<Vec<Job>> {
        let mut st = self.conn.prepare(&format!(
            "SELECT {JOB_COLS} FROM jobs WHERE tenant = ?1 ORDER BY created DESC LIMIT 1000"
        ))?;
        st.query_map(params![tenant], job_row)?.collect()
    }

    /// Takes the oldest queued job and marks it running (one more attempt).
    pub fn claim_next(&self) -> rusqlite::Result<Option<Job>> {
        let next = self
            .conn
            .query_row(
                &format!(
                    "SELECT {JOB_COLS} FROM jobs WHERE state = ?1 ORDER BY created, id LIMIT 1"
                ),
                params![job_state::QUEUED],
                job_row,
            )
            .optional()?;
        let Some(mut job) = next else {
            return Ok(None);
        };
        let t = now();
        self.conn.execute(
            "UPDATE jobs SET state = ?2, started = ?3, attempts = attempts + 1 WHERE id = ?1 AND state = ?4",
            params![job.id, job_state::RUNNING, t, job_state::QUEUED],
        )?;
        job.state = job_state::RUNNING.into();
        job.started = Some(t);
        job.attempts += 1;
        Ok(Some(job))
    }

    /// Records progress of a running job.
    pub fn set_progress(&self, id: &str, iteration: usize, seconds: f64) -> rusqlite::Result<()> {
        self.conn.execute(
            "UPDATE jobs SET iteration = ?2, seconds = ?3 WHERE id = ?1",
            params![id, iteration as i64, seconds],
        )?;
        Ok(())
    }

    /// Ends a job in a final state.
    pub fn finish_job(&self, id: &str, state: &str, error: Option<&str>) -> rusqlite::Result<()> {
        self.conn.execute(
            "UPDATE jobs SET state = ?2, error = ?3, finished = ?4 WHERE id = ?1",
            params![id, state, error, now()],
        )?;
        Ok(())
    }

    /// Cancels a queued job (false when it is not queued any more).
    pub fn cancel_queued(&self, id: &str) -> rusqlite::Result<bool> {
        let n = self.conn.execute(
            "UPDATE jobs SET state = ?2, finished = ?3 WHERE id = ?1 AND state = ?4",
            params![id, job_state::CANCELLED, now(), job_state::QUEUED],
        )?;
        Ok(n == 1)
    }

    /// Removes a job's row.
    pub fn delete_job(&self, id: &str) -> rusqlite::Result<()> {
        self.conn
            .execute("DELETE FROM jobs WHERE id = ?1", params![id])?;
        Ok(())
    }
}
