//! The HTTP API under `/v1`, its OpenAPI description (generated from these handlers and
//! types by utoipa, served at `/openapi.json`) and the status page at `/`.
//!
//! Every request but the page, the description and `/v1/health` carries
//! `Authorization: Bearer TOKEN`; a tenant sees only its own uploads and jobs (another
//! tenant's ids are "not found"). Every error is a JSON body `{"error", "message"}`.

use crate::auth::valid_id;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::jobs;
use crate::state::{AppState, lock};
use crate::store::{FileDecl, Job, Upload, job_state, now, upload_state};
use crate::uploads;
use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, FromRequestParts, Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header, request::Parts};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use futures_util::StreamExt;
use std::sync::Arc;
use utoipa::OpenApi;
use volley_train::job::TrainSpec;

type St = State<Arc<AppState>>;

/// The tenant of the request's bearer token.
pub struct Tenant(pub String);

impl FromRequestParts<Arc<AppState>> for Tenant {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &Arc<AppState>) -> ApiResult<Self> {
        let unauthorized = |m: &str| ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", m);
        let value = parts
            .headers
            .get(header::AUTHORIZATION)
            .ok_or_else(|| unauthorized("missing Authorization: Bearer TOKEN"))?;
        let token = value
            .to_str()
            .ok()
            .and_then(|v| v.strip_prefix("Bearer "))
            .ok_or_else(|| unauthorized("the Authorization header is not `Bearer TOKEN`"))?;
        state
            .tokens
            .tenant(token.trim())
            .map(|t| Tenant(t.to_string()))
            .ok_or_else(|| unauthorized("unknown token"))
    }
}

/// Parses a JSON body (the size is bounded by the router's body limit).
fn parse_json<T: serde::de::DeserializeOwned>(body: &Bytes) -> ApiResult<T> {
    serde_json::from_slice(body).map_err(|e| ApiError::bad_request(format!("invalid JSON: {e}")))
}

fn check_id(id: &str, what: &str) -> ApiResult<()> {
    if valid_id(id) {
        Ok(())
    } else {
        Err(ApiError::not_found(what))
    }
}

// ----- views -----

/// A declared file and how much of it arrived.
#[derive(serde::Serialize, serde::Deserialize, utoipa::ToSchema, Debug, Clone)]
pub struct FileView {
    /// Relative path in the bundle.
    pub path: String,
    /// Declared size.
    pub bytes: u64,
    /// Bytes on the server (resume from here).
    pub received: u64,
}

/// An upload.
#[derive(serde::Serialize, serde::Deserialize, utoipa::ToSchema, Debug, Clone)]
pub struct UploadView {
    /// Id.
    pub id: String,
    /// `receiving`, `ready` or `invalid`.
    pub state: String,
    /// Unix seconds.
    pub created: f64,
    /// Declared bytes.
    pub total_bytes: u64,
    /// Bytes received.
    pub received_bytes: u64,
    /// Files (with `?files=true` or on creation).
    #[serde(default)]
    pub files: Vec<FileView>,
    /// Why it was refused.
    pub error: Option<String>,
}

/// Creates an upload: the files that will be sent.
#[derive(serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateUpload {
    /// Every file of the bundle with its size.
    pub files: Vec<FileDecl>,
}

/// Starts a training job.
#[derive(serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateJob {
    /// A ready upload of the caller's.
    pub upload: String,
    /// The options of `volley train`.
    #[serde(default)]
    pub train: TrainSpec,
}

/// A job and its progress.
#[derive(serde::Serialize, serde::Deserialize, utoipa::ToSchema, Debug, Clone, PartialEq)]
pub struct JobView {
    /// Id.
    pub id: String,
    /// The upload it trains on.
    pub upload: String,
    /// `queued`, `running`, `done`, `failed` or `cancelled`.
    pub state: String,
    /// Iterations done.
    pub iteration: usize,
    /// Iterations of the run.
    pub iterations: usize,
    /// Seconds spent training (all attempts).
    pub seconds: f64,
    /// Estimated seconds to the end, while running.
    pub eta_seconds: Option<f64>,
    /// Starts (more than one after a server restart: it resumed from its checkpoint).
    pub attempts: usize,
    /// Unix seconds.
    pub created: f64,
    /// Unix seconds of the end.
    pub finished: Option<f64>,
    /// Why it failed.
    pub error: Option<String>,
    /// Its options.
    pub train: TrainSpec,
}

/// A file of the encrypted model.
#[derive(serde::Serialize, serde::Deserialize, utoipa::ToSchema, Debug, Clone)]
pub struct ModelFile {
    /// Relative path (`weights.cts`, `snapshots/iter-000010.cts`).
    pub path: String,
    /// Size.
    pub bytes: u64,
}

/// The byte offset a file part starts at.
#[derive(serde::Deserialize, utoipa::IntoParams)]
pub struct Offset {
    /// Must equal the bytes the server has of this file (see the upload's `files`).
    pub offset: u64,
}

/// Listing options.
#[derive(serde::Deserialize, utoipa::IntoParams)]
pub struct ShowFiles {
    /// Include every file's progress.
    #[serde(default)]
    pub files: bool,
}

fn upload_view(state: &AppState, u: &Upload, with_files: bool) -> UploadView {
    let dir = state.upload_dir(&u.id);
    let files: Vec<FileView> = u
        .files
        .iter()
        .map(|f| FileView {
            path: f.path.clone(),
            bytes: f.bytes,
            received: uploads::received(&dir, &f.path).min(f.bytes),
        })
        .collect();
    UploadView {
        id: u.id.clone(),
        state: u.state.clone(),
        created: u.created,
        total_bytes: u.total_bytes,
        received_bytes: files.iter().map(|f| f.received).sum(),
        files: if with_files { files } else { Vec::new() },
        error: u.error.clone(),
    }
}

fn job_view(state: &AppState, j: &Job) -> JobView {
    let live = lock(&state.live);
    let l = live.get(&j.id).filter(|_| j.state == job_state::RUNNING);
    JobView {
        id: j.id.clone(),
        upload: j.upload.clone(),
        state: j.state.clone(),
        iteration: l.map_or(j.iteration, |l| l.iteration),
        iterations: j.iterations,
        seconds: l.map_or(j.seconds, |l| l.seconds()),
        eta_seconds: l.and_then(|l| l.eta_seconds()),
        attempts: j.attempts,
        created: j.created,
        finished: j.finished,
        error: j.error.clone(),
        train: j.spec.clone(),
    }
}

fn the_upload(state: &AppState, tenant: &str, id: &str) -> ApiResult<Upload> {
    check_id(id, "upload")?;
    state
        .store()
        .upload(tenant, id)?
        .ok_or_else(|| ApiError::not_found("upload"))
}

fn the_job(state: &AppState, tenant: &str, id: &str) -> ApiResult<Job> {
    check_id(id, "job")?;
    state
        .store()
        .job(tenant, id)?
        .ok_or_else(|| ApiError::not_found("job"))
}

fn new_id() -> ApiResult<String> {
    crate::auth::new_id().map_err(ApiError::internal)
}

// ----- uploads -----

/// Declares an upload.
#[utoipa::path(post, path = "/v1/uploads", request_body = CreateUpload,
    responses((status = 201, body = UploadView), (status = 400, body = ErrorBody), (status = 413, body = ErrorBody)),
    security(("bearer" = [])))]
async fn create_upload(
    State(state): St,
    Tenant(tenant): Tenant,
    body: Bytes,
) -> ApiResult<Response> {
    let req: CreateUpload = parse_json(&body)?;
    let total = uploads::check_declaration(&req.files, &state.limits)?;
    let u = Upload {
        id: new_id()?,
        tenant,
        state: upload_state::RECEIVING.into(),
        created: now(),
        files: req.files,
        total_bytes: total,
        error: None,
    };
    std::fs::create_dir_all(state.upload_dir(&u.id))?;
    state.store().insert_upload(&u)?;
    Ok((StatusCode::CREATED, Json(upload_view(&state, &u, true))).into_response())
}

/// The caller's uploads.
#[utoipa::path(get, path = "/v1/uploads", responses((status = 200, body = Vec<UploadView>)),
    security(("bearer" = [])))]
async fn list_uploads(
    State(state): St,
    Tenant(tenant): Tenant,
) -> ApiResult<Json<Vec<UploadView>>> {
    let list = state.store().uploads(&tenant)?;
    Ok(Json(
        list.iter().map(|u| upload_view(&state, u, false)).collect(),
    ))
}

/// One upload (with `?files=true`, every file's progress).
#[utoipa::path(get, path = "/v1/uploads/{id}", params(("id" = String, Path), ShowFiles),
    responses((status = 200, body = UploadView), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
async fn get_upload(
    State(state): St,
    Tenant(tenant): Tenant,
    Path(id): Path<String>,
    Query(q): Query<ShowFiles>,
) -> ApiResult<Json<UploadView>> {
    let u = the_upload(&state, &tenant, &id)?;
    Ok(Json(upload_view(&state, &u, q.files)))
}

/// Deletes an upload and its files (refused while a job uses it).
#[utoipa::path(delete, path = "/v1/uploads/{id}", params(("id" = String, Path)),
    responses((status = 204), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)),
    security(("bearer" = [])))]
async fn delete_upload(
    State(state): St,
    Tenant(tenant): Tenant,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let u = the_upload(&state, &tenant, &id)?;
    {
        let store = state.store();
        if store.active_jobs_on(&u.id)? > 0 {
            return Err(ApiError::conflict(
                "a queued or running job uses this upload: cancel it first",
            ));
        }
        store.delete_upload(&u.id)?;
    }
    let _ = tokio::fs::remove_dir_all(state.upload_dir(&u.id)).await;
    Ok(StatusCode::NO_CONTENT)
}

/// Frees the one-writer claim on a file however the request ends.
struct Writing<'a>(&'a AppState, (String, String));
impl Drop for Writing<'_> {
    fn drop(&mut self) {
        lock(&self.0.writing).remove(&self.1);
    }
}

/// Sends bytes of one declared file, starting at `offset` (the bytes the server has: a
/// broken transfer resumes where it stopped). The file is complete when it has its
/// declared size; a file that is a secret key is refused and its bytes deleted.
#[utoipa::path(put, path = "/v1/uploads/{id}/files/{path}", params(("id" = String, Path), ("path" = String, Path), Offset),
    request_body(content = Vec<u8>, content_type = "application/octet-stream"),
    responses((status = 200, body = FileView), (status = 409, body = ErrorBody, description = "offset_mismatch: the body has `received`"),
        (status = 413, body = ErrorBody), (status = 422, body = ErrorBody, description = "secret_key")),
    security(("bearer" = [])))]
async fn put_file(
    State(state): St,
    Tenant(tenant): Tenant,
    Path((id, path)): Path<(String, String)>,
    Query(q): Query<Offset>,
    body: Body,
) -> ApiResult<Json<FileView>> {
    let mut stream = body.into_data_stream();
    let answer = receive_file(&state, &tenant, &id, &path, q.offset, &mut stream).await;
    if answer.is_err() {
        // Read (and drop) a little more of the body, so that a client still sending gets
        // the error's answer rather than a broken pipe; bounded in bytes and time.
        let mut drained = 0usize;
        let until = tokio::time::Instant::now() + std::time::Duration::from_secs(1);
        while drained < 1 << 20 {
            match tokio::time::timeout_at(until, stream.next()).await {
                Ok(Some(Ok(c))) => drained += c.len(),
                _ => break,
            }
        }
    }
    answer
}

/// [`put_file`] up to its answer.
async fn receive_file(
    state: &Arc<AppState>,
    tenant: &str,
    id: &str,
    path: &str,
    offset: u64,
    stream: &mut axum::body::BodyDataStream,
) -> ApiResult<Json<FileView>> {
    let u = the_upload(state, tenant, id)?;
    uploads::check_path(path)?;
    let decl = u
        .files
        .iter()
        .find(|f| f.path == path)
        .ok_or_else(|| ApiError::not_found("file in this upload's declaration"))?
        .clone();
    if u.state != upload_state::RECEIVING {
        return Err(ApiError::conflict(format!(
            "the upload is {}, not receiving",
            u.state
        )));
    }
    let key = (u.id.clone(), path.to_string());
    if !lock(&state.writing).insert(key.clone()) {
        return Err(ApiError::conflict(
            "this file is being written by another request",
        ));
    }
    let _claim = Writing(state, key);
    let dir = state.upload_dir(&u.id);
    let have = uploads::received(&dir, path);
    let (done_path, part_path) = uploads::file_paths(&dir, path);
    let mismatch = |have: u64| {
        ApiError::new(
            StatusCode::CONFLICT,
            "offset_mismatch",
            format!("the server has {have} bytes of {path}; send from there"),
        )
        .with(serde_json::json!({"received": have}))
    };
    if offset != have {
        return Err(mismatch(have));
    }
    if done_path.exists() {
        return Ok(Json(FileView {
            path: path.to_string(),
            bytes: decl.bytes,
            received: have,
        }));
    }
    if let Some(parent) = part_path.parent() {
        tokio::fs::create_dir_all(parent).await?;
    }
    // The disk writes run on a blocking thread fed through a bounded channel, so the
    // network is read while the disk is written (one at a time halved the throughput).
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Bytes>(64);
    let part_for_writer = part_path.clone();
    let writer = tokio::task::spawn_blocking(move || -> std::io::Result<()> {
        use std::io::Write;
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&part_for_writer)?;
        let mut out = std::io::BufWriter::with_capacity(1 << 20, file);
        while let Some(chunk) = rx.blocking_recv() {
            out.write_all(&chunk)?;
        }
        out.flush()
    });
    let mut written = have;
    let limit = decl.bytes;
    let outcome: ApiResult<()> = async {
        loop {
            let next = tokio::time::timeout(state.limits.idle_timeout, stream.next()).await;
            let chunk = match next {
                Err(_) => {
                    return Err(ApiError::new(
                        StatusCode::REQUEST_TIMEOUT,
                        "timeout",
                        "the body stalled; resume from the bytes received",
                    ));
                }
                Ok(None) => return Ok(()),
                Ok(Some(Err(e))) => {
                    return Err(ApiError::bad_request(format!("the body broke off: {e}")));
                }
                Ok(Some(Ok(c))) => c,
            };
            if written + chunk.len() as u64 > limit {
                return Err(ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "too_large",
                    format!("{path} was declared with {limit} bytes"),
                ));
            }
            written += chunk.len() as u64;
            if tx.send(chunk).await.is_err() {
                // The writer stopped: its error is reported below.
                return Ok(());
            }
        }
    }
    .await;
    drop(tx);
    // What arrived before an error is kept (bytes of the file in order), unless it ran
    // past the declared size: then this request's bytes go.
    // No fsync: the bytes a server has are the file's length, which a killed process
    // keeps (the page cache outlives it); after a machine crash the length may be shorter
    // and the client re-sends from there, and completion verifies every byte anyway.
    writer
        .await
        .map_err(|e| ApiError::internal(format!("the file writer failed: {e}")))??;
    if let Err(e) = outcome {
        if e.status == StatusCode::PAYLOAD_TOO_LARGE {
            let f = std::fs::OpenOptions::new().write(true).open(&part_path)?;
            f.set_len(have)?;
        }
        return Err(e);
    }
    // The writer may have stopped early only with an error, returned above.
    written = uploads::received(&dir, path);
    if written == limit {
        uploads::finish_file(&dir, path, limit)?;
    }
    Ok(Json(FileView {
        path: path.to_string(),
        bytes: limit,
        received: written,
    }))
}

/// Ends an upload: every declared file complete, then the whole bundle verified (the
/// manifest against its parameters, the file set, every key and ciphertext). Ready uploads
/// take jobs; a refused one is `invalid` with the reason.
#[utoipa::path(post, path = "/v1/uploads/{id}/complete", params(("id" = String, Path)),
    responses((status = 200, body = UploadView), (status = 409, body = ErrorBody, description = "incomplete"), (status = 422, body = ErrorBody, description = "invalid_upload")),
    security(("bearer" = [])))]
async fn complete_upload(
    State(state): St,
    Tenant(tenant): Tenant,
    Path(id): Path<String>,
    // Read (and ignored): a body left unread makes the server close a connection the
    // client would reuse.
    _body: Bytes,
) -> ApiResult<Json<UploadView>> {
    let u = the_upload(&state, &tenant, &id)?;
    match u.state.as_str() {
        upload_state::READY => return Ok(Json(upload_view(&state, &u, false))),
        upload_state::INVALID => {
            return Err(ApiError::unprocessable(
                "invalid_upload",
                u.error.clone().unwrap_or_default(),
            ));
        }
        _ => {}
    }
    let dir = state.upload_dir(&u.id);
    // A file whose last bytes arrived just before the server was killed is finished here.
    let mut incomplete: Vec<&FileDecl> = Vec::new();
    for f in &u.files {
        if !uploads::finish_file(&dir, &f.path, f.bytes)? {
            incomplete.push(f);
        }
    }
    if let Some(first) = incomplete.first() {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "incomplete",
            format!(
                "{} of {} files are incomplete (first: {}, {} of {} bytes)",
                incomplete.len(),
                u.files.len(),
                first.path,
                uploads::received(&dir, &first.path),
                first.bytes
            ),
        ));
    }
    let files = u.files.clone();
    let verdict = tokio::task::spawn_blocking(move || uploads::verify(&dir, &files))
        .await
        .map_err(|e| ApiError::internal(format!("verification failed: {e}")))?;
    match verdict {
        Ok(_) => {
            state
                .store()
                .set_upload_state(&u.id, upload_state::READY, None)?;
            let u = the_upload(&state, &tenant, &id)?;
            Ok(Json(upload_view(&state, &u, false)))
        }
        Err(msg) => {
            state
                .store()
                .set_upload_state(&u.id, upload_state::INVALID, Some(&msg))?;
            Err(ApiError::unprocessable("invalid_upload", msg))
        }
    }
}

// ----- jobs -----

/// Queues a training job on a ready upload (its options are checked against the upload's
/// manifest first).
#[utoipa::path(post, path = "/v1/jobs", request_body = CreateJob,
    responses((status = 202, body = JobView), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 429, body = ErrorBody, description = "queue_full")),
    security(("bearer" = [])))]
async fn create_job(State(state): St, Tenant(tenant): Tenant, body: Bytes) -> ApiResult<Response> {
    let req: CreateJob = parse_json(&body)?;
    if state.store().queued_jobs()? >= state.limits.max_queued {
        return Err(ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "queue_full",
            format!(
                "{} jobs are waiting already; try again when the queue drains",
                state.limits.max_queued
            ),
        ));
    }
    let u = the_upload(&state, &tenant, &req.upload)?;
    if u.state != upload_state::READY {
        return Err(ApiError::conflict(format!(
            "the upload is {}: complete it first",
            u.state
        )));
    }
    let dir = state.upload_dir(&u.id);
    let manifest = tokio::task::spawn_blocking(move || volley_train::dirs::load_manifest(&dir))
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?
        .map_err(|e| ApiError::internal(format!("the ready upload's manifest: {e}")))?
        .0;
    let plan = req
        .train
        .plan(&manifest)
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    let job = Job {
        id: new_id()?,
        tenant,
        upload: u.id,
        state: job_state::QUEUED.into(),
        spec: req.train,
        created: now(),
        started: None,
        finished: None,
        iteration: 0,
        iterations: plan.iterations,
        seconds: 0.0,
        attempts: 0,
        error: None,
    };
    state.store().insert_job(&job)?;
    state.wake.notify_one();
    Ok((StatusCode::ACCEPTED, Json(job_view(&state, &job))).into_response())
}

/// The caller's jobs, newest first.
#[utoipa::path(get, path = "/v1/jobs", responses((status = 200, body = Vec<JobView>)),
    security(("bearer" = [])))]
async fn list_jobs(State(state): St, Tenant(tenant): Tenant) -> ApiResult<Json<Vec<JobView>>> {
    let list = state.store().jobs(&tenant)?;
    Ok(Json(list.iter().map(|j| job_view(&state, j)).collect()))
}

/// One job with its progress.
#[utoipa::path(get, path = "/v1/jobs/{id}", params(("id" = String, Path)),
    responses((status = 200, body = JobView), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
async fn get_job(
    State(state): St,
    Tenant(tenant): Tenant,
    Path(id): Path<String>,
) -> ApiResult<Json<JobView>> {
    let j = the_job(&state, &tenant, &id)?;
    Ok(Json(job_view(&state, &j)))
}

/// The job's status as server-sent events: one `status` event (a JobView) whenever it
/// changes, the stream ends after the final state.
#[utoipa::path(get, path = "/v1/jobs/{id}/events", params(("id" = String, Path)),
    responses((status = 200, content_type = "text/event-stream", description = "`status` events, each a JobView")),
    security(("bearer" = [])))]
async fn job_events(
    State(state): St,
    Tenant(tenant): Tenant,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    use axum::response::sse::{Event, KeepAlive, Sse};
    the_job(&state, &tenant, &id)?;
    let stream = futures_util::stream::unfold((None::<JobView>, false), move |(last, ended)| {
        let state = state.clone();
        let tenant = tenant.clone();
        let id = id.clone();
        async move {
            if ended {
                return None;
            }
            loop {
                let job = state.store().job(&tenant, &id).ok().flatten();
                let Some(job) = job else {
                    return Some((
                        Ok::<_, std::convert::Infallible>(
                            Event::default().event("deleted").data("{}"),
                        ),
                        (last, true),
                    ));
                };
                let mut view = job_view(&state, &job);
                // The seconds tick on their own; an event is for a change of state or step.
                let changed = last
                    .as_ref()
                    .is_none_or(|l| l.state != view.state || l.iteration != view.iteration);
                if changed {
                    let end = job_state::is_final(&view.state);
                    view.eta_seconds = view.eta_seconds.map(|s| s.round());
                    let data = serde_json::to_string(&view).unwrap_or_default();
                    return Some((
                        Ok(Event::default().event("status").data(data)),
                        (Some(view), end),
                    ));
                }
                tokio::time::sleep(std::time::Duration::from_millis(250)).await;
            }
        }
    });
    Ok(Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response())
}

/// Cancels a queued or running job (a running one stops after its current iteration).
#[utoipa::path(post, path = "/v1/jobs/{id}/cancel", params(("id" = String, Path)),
    responses((status = 202, body = JobView), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)),
    security(("bearer" = [])))]
async fn cancel_job(
    State(state): St,
    Tenant(tenant): Tenant,
    Path(id): Path<String>,
    _body: Bytes,
) -> ApiResult<Response> {
    let j = the_job(&state, &tenant, &id)?;
    if job_state::is_final(&j.state) {
        return Err(ApiError::conflict(format!(
            "the job is already {}",
            j.state
        )));
    }
    if !state.store().cancel_queued(&j.id)? && !jobs::cancel_running(&state, &j.id) {
        return Err(ApiError::conflict("the job is between states; try again"));
    }
    let j = the_job(&state, &tenant, &id)?;
    Ok((StatusCode::ACCEPTED, Json(job_view(&state, &j))).into_response())
}

/// Deletes a finished job and its files.
#[utoipa::path(delete, path = "/v1/jobs/{id}", params(("id" = String, Path)),
    responses((status = 204), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)),
    security(("bearer" = [])))]
async fn delete_job(
    State(state): St,
    Tenant(tenant): Tenant,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let j = the_job(&state, &tenant, &id)?;
    if !job_state::is_final(&j.state) {
        return Err(ApiError::conflict(format!(
            "the job is {}: cancel it first",
            j.state
        )));
    }
    state.store().delete_job(&j.id)?;
    let _ = tokio::fs::remove_dir_all(state.job_dir(&j.id)).await;
    Ok(StatusCode::NO_CONTENT)
}

fn model_listing(state: &AppState, j: &Job) -> ApiResult<Vec<ModelFile>> {
    if j.state != job_state::DONE {
        return Err(ApiError::conflict(format!(
            "the job is {}: the model exists once it is done",
            j.state
        )));
    }
    let dir = state.model_dir(&j.id);
    let mut files = Vec::new();
    for name in ["manifest.json", "params.bin", "weights.cts"] {
        let m = std::fs::metadata(dir.join(name))?;
        files.push(ModelFile {
            path: name.into(),
            bytes: m.len(),
        });
    }
    if let Ok(snaps) = volley_train::dirs::list_snapshots(&dir) {
        for (_, p) in snaps {
            let name = p
                .file_name()
                .map(|n| n.to_string_lossy().to_string())
                .unwrap_or_default();
            let m = std::fs::metadata(&p)?;
            files.push(ModelFile {
                path: format!("{}/{name}", volley_train::dirs::SNAPSHOT_DIR),
                bytes: m.len(),
            });
        }
    }
    Ok(files)
}

/// The files of a done job's encrypted model.
#[utoipa::path(get, path = "/v1/jobs/{id}/model", params(("id" = String, Path)),
    responses((status = 200, body = Vec<ModelFile>), (status = 409, body = ErrorBody)),
    security(("bearer" = [])))]
async fn model_files(
    State(state): St,
    Tenant(tenant): Tenant,
    Path(id): Path<String>,
) -> ApiResult<Json<Vec<ModelFile>>> {
    let j = the_job(&state, &tenant, &id)?;
    Ok(Json(model_listing(&state, &j)?))
}

/// Downloads one file of a done job's model (a path from its listing).
#[utoipa::path(get, path = "/v1/jobs/{id}/model/{path}", params(("id" = String, Path), ("path" = String, Path)),
    responses((status = 200, content_type = "application/octet-stream"), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
async fn model_file(
    State(state): St,
    Tenant(tenant): Tenant,
    Path((id, path)): Path<(String, String)>,
) -> ApiResult<Response> {
    let j = the_job(&state, &tenant, &id)?;
    let listing = model_listing(&state, &j)?;
    let f = listing
        .iter()
        .find(|f| f.path == path)
        .ok_or_else(|| ApiError::not_found("model file"))?;
    let file = tokio::fs::File::open(state.model_dir(&j.id).join(&f.path)).await?;
    let mut resp = Body::from_stream(tokio_util::io::ReaderStream::with_capacity(file, 1 << 20))
        .into_response();
    let headers = resp.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(f.bytes));
    Ok(resp)
}

// ----- service -----

/// Liveness and version.
#[utoipa::path(get, path = "/v1/health", responses((status = 200, description = "`{\"ok\": true, \"version\": ...}`")))]
async fn health() -> Json<serde_json::Value> {
    Json(serde_json::json!({"ok": true, "version": env!("CARGO_PKG_VERSION")}))
}

struct BearerAuth;
impl utoipa::Modify for BearerAuth {
    fn modify(&self, api: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = api.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// The API description.
#[derive(OpenApi)]
#[openapi(
    info(title = "volley", description = "Privacy-preserving training of a classification layer on CKKS ciphertexts: the server's API."),
    paths(health, create_upload, list_uploads, get_upload, delete_upload, put_file, complete_upload,
        create_job, list_jobs, get_job, job_events, cancel_job, delete_job, model_files, model_file),
    components(schemas(ErrorBody, FileDecl, FileView, UploadView, CreateUpload, CreateJob, JobView, ModelFile, TrainSpec)),
    modifiers(&BearerAuth)
)]
pub struct ApiDoc;

async fn openapi() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}

async fn page() -> Html<&'static str> {
    Html(include_str!("page.html"))
}

/// Turns every non-JSON error response (axum's own rejections: unknown route, wrong
/// method, bad path or query, body too large) into the API's JSON error body.
async fn json_errors(resp: Response) -> Response {
    let status = resp.status();
    let is_json = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return resp;
    }
    let text = axum::body::to_bytes(resp.into_body(), 4096)
        .await
        .map(|b| String::from_utf8_lossy(&b).to_string())
        .unwrap_or_default();
    let code = match status {
        StatusCode::NOT_FOUND => "not_found",
        StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
        StatusCode::PAYLOAD_TOO_LARGE => "too_large",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
        s if s.is_server_error() => "internal",
        _ => "bad_request",
    };
    let message = if text.is_empty() {
        status.canonical_reason().unwrap_or("error").to_string()
    } else {
        text
    };
    ApiError::new(status, code, message).into_response()
}

/// The whole router.
pub fn router(state: Arc<AppState>) -> Router {
    let max_json = state.limits.max_json;
    Router::new()
        .route("/", get(page))
        .route("/openapi.json", get(openapi))
        .route("/v1/health", get(health))
        .route("/v1/uploads", post(create_upload).get(list_uploads))
        .route("/v1/uploads/{id}", get(get_upload).delete(delete_upload))
        .route(
            "/v1/uploads/{id}/files/{*path}",
            // The declared size bounds this body, not the JSON limit.
            put(put_file).layer(DefaultBodyLimit::disable()),
        )
        .route("/v1/uploads/{id}/complete", post(complete_upload))
        .route("/v1/jobs", post(create_job).get(list_jobs))
        .route("/v1/jobs/{id}", get(get_job).delete(delete_job))
        .route("/v1/jobs/{id}/events", get(job_events))
        .route("/v1/jobs/{id}/cancel", post(cancel_job))
        .route("/v1/jobs/{id}/model", get(model_files))
        .route("/v1/jobs/{id}/model/{*path}", get(model_file))
        .layer(DefaultBodyLimit::max(max_json))
        .layer(axum::middleware::map_response(json_errors))
        .with_state(state)
}
