//! The data owner's side of the protocol, over blocking HTTP (ureq, rustls): upload a
//! bundle (resuming a broken transfer at the byte the server has), start a job, watch it,
//! and download the encrypted model. The client trusts nothing the server returns: every
//! answer is parsed with bounded sizes, the model's file list is checked against what a
//! model holds, and the model directory is written atomically and then checked against its
//! manifest and parameters before anyone decrypts it.

use crate::ServiceError;
use crate::api::{FileView, JobView, ModelFile, UploadView};
use crate::store::{FileDecl, job_state, upload_state};
use std::io::{Read, Seek};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use volley_train::job::TrainSpec;

/// Largest JSON answer read (a job list of 1,000 jobs is far below).
const MAX_JSON: u64 = 16 << 20;

/// Largest model file accepted from a server (a model of the largest geometry is far below;
/// snapshots are one model each).
const MAX_MODEL_FILE: u64 = 4 << 30;

/// The record beside a bundle of where it was uploaded, so an interrupted `volley submit`
/// continues the same upload.
pub const UPLOAD_RECORD: &str = ".volley-upload.json";

#[derive(serde::Serialize, serde::Deserialize)]
struct UploadRecord {
    server: String,
    upload: String,
}

/// A connection to one server as one tenant.
pub struct Client {
    base: String,
    auth: String,
    agent: ureq::Agent,
}

fn http(e: ureq::Error) -> ServiceError {
    ServiceError::Http(e.to_string())
}

impl Client {
    /// A client of the server at `base` (`https://host:port`), with `token`; `ca_cert`
    /// (PEM) is the certificate to trust instead of the web's roots (a self-signed server's
    /// `DATA/tls/cert.pem`).
    pub fn new(base: &str, token: &str, ca_cert: Option<&Path>) -> Result<Self, ServiceError> {
        let base = base.trim_end_matches('/').to_string();
        if !(base.starts_with("https://") || base.starts_with("http://")) {
            return Err(ServiceError::Config(format!(
                "{base}: the server URL starts with https:// (or http:// for a plain-HTTP test server)"
            )));
        }
        let mut config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_connect(Some(Duration::from_secs(10)))
            // A stalled server is an error, not a hang.
            .timeout_recv_response(Some(Duration::from_secs(300)))
            .timeout_recv_body(Some(Duration::from_secs(300)));
        if let Some(path) = ca_cert {
            let pem = std::fs::read(path).map_err(ServiceError::io(path))?;
            let certs: Vec<_> = ureq::tls::parse_pem(&pem)
                .filter_map(|item| match item {
                    Ok(ureq::tls::PemItem::Certificate(c)) => Some(c),
                    _ => None,
                })
                .collect();
            if certs.is_empty() {
                return Err(ServiceError::Config(format!(
                    "{}: no PEM certificate in it",
                    path.display()
                )));
            }
            config = config.tls_config(
                ureq::tls::TlsConfig::builder()
                    .root_certs(ureq::tls::RootCerts::Specific(Arc::new(certs)))
                    .build(),
            );
        }
        Ok(Self {
            base,
            auth: format!("Bearer {token}"),
            agent: config.build().into(),
        })
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Reads an answer: JSON of type `T` on success, [`ServiceError::Api`] otherwise.
    fn answer<T: serde::de::DeserializeOwned>(
        mut resp: ureq::http::Response<ureq::Body>,
    ) -> Result<T, ServiceError> {
        let status = resp.status().as_u16();
        let bytes = resp
            .body_mut()
            .with_config()
            .limit(MAX_JSON)
            .read_to_vec()
            .map_err(http)?;
        if (200..300).contains(&status) {
            let bytes = if bytes.is_empty() {
                b"null".to_vec()
            } else {
                bytes
            };
            return serde_json::from_slice(&bytes)
                .map_err(|e| ServiceError::Protocol(format!("HTTP {status}: {e}")));
        }
        let body: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_else(
            |_| serde_json::json!({"message": String::from_utf8_lossy(&bytes).chars().take(300).collect::<String>()}),
        );
        let field = |k: &str| {
            body.get(k)
                .and_then(|v| v.as_str())
                .unwrap_or("")
                .to_string()
        };
        Err(ServiceError::Api {
            status,
            code: field("error"),
            message: field("message"),
            body,
        })
    }

    fn get<T: serde::de::DeserializeOwned>(&self, path: &str) -> Result<T, ServiceError> {
        let resp = self
            .agent
            .get(self.url(path))
            .header("Authorization", &self.auth)
            .call()
            .map_err(http)?;
        Self::answer(resp)
    }

    fn post<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        body: &serde_json::Value,
    ) -> Result<T, ServiceError> {
        let resp = self
            .agent
            .post(self.url(path))
            .header("Authorization", &self.auth)
            .header("Content-Type", "application/json")
            .send(serde_json::to_vec(body).unwrap_or_default())
            .map_err(http)?;
        Self::answer(resp)
    }

    fn delete(&self, path: &str) -> Result<(), ServiceError> {
        let resp = self
            .agent
            .delete(self.url(path))
            .header("Authorization", &self.auth)
            .call()
            .map_err(http)?;
        Self::answer::<serde_json::Value>(resp).map(|_| ())
    }

    /// The server's version (no token needed).
    pub fn health(&self) -> Result<serde_json::Value, ServiceError> {
        self.get("/v1/health")
    }

    /// Declares an upload of `files`.
    pub fn create_upload(&self, files: &[FileDecl]) -> Result<UploadView, ServiceError> {
        self.post("/v1/uploads", &serde_json::json!({ "files": files }))
    }

    /// An upload with every file's progress.
    pub fn upload(&self, id: &str) -> Result<UploadView, ServiceError> {
        self.get(&format!("/v1/uploads/{id}?files=true"))
    }

    /// Sends `path`'s bytes from `offset` to the end.
    pub fn put_file(
        &self,
        upload: &str,
        rel: &str,
        file: &Path,
        offset: u64,
    ) -> Result<FileView, ServiceError> {
        let mut f = std::fs::File::open(file).map_err(ServiceError::io(file))?;
        f.seek(std::io::SeekFrom::Start(offset))
            .map_err(ServiceError::io(file))?;
        let mut reader = std::io::BufReader::with_capacity(1 << 20, f);
        let resp = self
            .agent
            .put(self.url(&format!("/v1/uploads/{upload}/files/{rel}?offset={offset}")))
            .header("Authorization", &self.auth)
            .header("Content-Type", "application/octet-stream")
            .send(ureq::SendBody::from_reader(&mut reader))
            .map_err(http)?;
        Self::answer(resp)
    }

    /// Ends an upload: the server verifies the whole bundle.
    pub fn complete_upload(&self, upload: &str) -> Result<UploadView, ServiceError> {
        self.post(
            &format!("/v1/uploads/{upload}/complete"),
            &serde_json::json!({}),
        )
    }

    /// Deletes an upload.
    pub fn delete_upload(&self, upload: &str) -> Result<(), ServiceError> {
        self.delete(&format!("/v1/uploads/{upload}"))
    }

    /// Uploads the bundle in `dir` (its files as its manifest names them) and has the server
    /// verify it. An upload of this bundle to this server that was interrupted (recorded in
    /// `dir/.volley-upload.json`) continues from the bytes the server has. `progress` hears
    /// (bytes on the server, total).
    pub fn upload_bundle(
        &self,
        dir: &Path,
        progress: &mut dyn FnMut(u64, u64),
    ) -> Result<UploadView, ServiceError> {
        let (manifest, _) = volley_train::dirs::load_manifest(dir)?;
        let mut files = Vec::new();
        for rel in volley_train::dirs::bundle_files(&manifest) {
            let p = dir.join(&rel);
            let bytes = std::fs::metadata(&p).map_err(ServiceError::io(&p))?.len();
            files.push(FileDecl { path: rel, bytes });
        }
        let record_path = dir.join(UPLOAD_RECORD);
        let earlier = std::fs::read(&record_path)
            .ok()
            .and_then(|b| serde_json::from_slice::<UploadRecord>(&b).ok())
            .filter(|r| r.server == self.base);
        let mut upload = match earlier.map(|r| self.upload(&r.upload)) {
            Some(Ok(u)) if u.state != upload_state::INVALID && same_files(&u, &files) => u,
            _ => {
                let u = self.create_upload(&files)?;
                let record = UploadRecord {
                    server: self.base.clone(),
                    upload: u.id.clone(),
                };
                // Best effort: a read-only bundle directory only loses the resumption.
                let _ = volley_ckks::write_atomic(
                    &record_path,
                    &serde_json::to_vec(&record).unwrap_or_default(),
                );
                u
            }
        };
        if upload.state == upload_state::READY {
            progress(upload.total_bytes, upload.total_bytes);
            return Ok(upload);
        }
        let total = upload.total_bytes;
        let mut done: u64 = upload.files.iter().map(|f| f.received).sum();
        progress(done, total);
        for f in upload.files.clone() {
            if f.received >= f.bytes && f.bytes > 0 {
                continue;
            }
            // Two tries per file: a broken connection resumes at the server's byte count.
            let mut offset = f.received;
            let mut tries = 0;
            loop {
                match self.put_file(&upload.id, &f.path, &dir.join(&f.path), offset) {
                    Ok(v) if v.received == v.bytes => break,
                    Ok(v) => {
                        return Err(ServiceError::Protocol(format!(
                            "{}: the server has {} of {} bytes after the whole file was sent",
                            f.path, v.received, v.bytes
                        )));
                    }
                    Err(ServiceError::Api { code, body, .. })
                        if code == "offset_mismatch" && tries < 3 =>
                    {
                        offset = body.get("received").and_then(|v| v.as_u64()).unwrap_or(0);
                    }
                    Err(ServiceError::Http(_)) if tries < 3 => {
                        offset = self
                            .upload(&upload.id)?
                            .files
                            .iter()
                            .find(|g| g.path == f.path)
                            .map_or(0, |g| g.received);
                    }
                    Err(e) => return Err(e),
                }
                tries += 1;
            }
            done += f.bytes - f.received;
            progress(done, total);
        }
        upload = self.complete_upload(&upload.id)?;
        Ok(upload)
    }

    /// Queues a training job.
    pub fn create_job(&self, upload: &str, spec: &TrainSpec) -> Result<JobView, ServiceError> {
        self.post(
            "/v1/jobs",
            &serde_json::json!({ "upload": upload, "train": spec }),
        )
    }

    /// A job's status.
    pub fn job(&self, id: &str) -> Result<JobView, ServiceError> {
        self.get(&format!("/v1/jobs/{id}"))
    }

    /// The tenant's jobs.
    pub fn jobs(&self) -> Result<Vec<JobView>, ServiceError> {
        self.get("/v1/jobs")
    }

    /// Cancels a job.
    pub fn cancel(&self, id: &str) -> Result<JobView, ServiceError> {
        self.post(&format!("/v1/jobs/{id}/cancel"), &serde_json::json!({}))
    }

    /// Deletes a finished job.
    pub fn delete_job(&self, id: &str) -> Result<(), ServiceError> {
        self.delete(&format!("/v1/jobs/{id}"))
    }

    /// Polls a job every `every` until it ends or `timeout` passes; `on_status` hears each
    /// answer. A failed or cancelled job is an error.
    pub fn wait(
        &self,
        id: &str,
        every: Duration,
        timeout: Duration,
        on_status: &mut dyn FnMut(&JobView),
    ) -> Result<JobView, ServiceError> {
        let start = Instant::now();
        loop {
            let j = self.job(id)?;
            on_status(&j);
            match j.state.as_str() {
                job_state::DONE => return Ok(j),
                job_state::FAILED | job_state::CANCELLED => {
                    return Err(ServiceError::Protocol(format!(
                        "job {id} {}{}",
                        j.state,
                        j.error
                            .as_deref()
                            .map(|e| format!(": {e}"))
                            .unwrap_or_default()
                    )));
                }
                _ => {}
            }
            if start.elapsed() > timeout {
                return Err(ServiceError::Protocol(format!(
                    "job {id} still {} after {:.0} s",
                    j.state,
                    timeout.as_secs_f64()
                )));
            }
            std::thread::sleep(every);
        }
    }

    /// Follows a job's server-sent events until it ends: `on_status` hears every change;
    /// the final status is returned (a failed or cancelled job is an error). A stream that
    /// breaks off before the end (a restarted server) is an error too: poll or follow again.
    pub fn follow(
        &self,
        id: &str,
        on_status: &mut dyn FnMut(&JobView),
    ) -> Result<JobView, ServiceError> {
        use std::io::BufRead;
        let resp = self
            .agent
            .get(self.url(&format!("/v1/jobs/{id}/events")))
            .header("Authorization", &self.auth)
            .header("Accept", "text/event-stream")
            .call()
            .map_err(http)?;
        if !resp.status().is_success() {
            return Self::answer(resp);
        }
        let mut body = resp.into_body();
        // Unbounded in total (a long job sends many events), bounded per line.
        let mut reader = std::io::BufReader::new(body.with_config().limit(u64::MAX).reader());
        let mut event = String::new();
        let mut last = None;
        // Lines are read through a bounded window: a server cannot make one grow unbounded.
        const MAX_LINE: u64 = 1 << 20;
        loop {
            let mut line = Vec::new();
            let n = (&mut reader)
                .take(MAX_LINE)
                .read_until(b'\n', &mut line)
                .map_err(|e| ServiceError::Http(e.to_string()))?;
            if n == 0 {
                break;
            }
            if n as u64 == MAX_LINE && line.last() != Some(&b'\n') {
                return Err(ServiceError::Protocol("an event line over 1 MiB".into()));
            }
            let line = String::from_utf8_lossy(&line);
            let line = line.trim_end_matches(['\n', '\r']);
            if let Some(name) = line.strip_prefix("event:") {
                event = name.trim().to_string();
            } else if let Some(data) = line.strip_prefix("data:") {
                if event == "deleted" {
                    return Err(ServiceError::Protocol(format!("job {id} was deleted")));
                }
                if event == "status" {
                    let j: JobView = serde_json::from_str(data.trim())
                        .map_err(|e| ServiceError::Protocol(format!("a status event: {e}")))?;
                    on_status(&j);
                    last = Some(j);
                }
            }
        }
        let j = last.ok_or_else(|| ServiceError::Protocol("the event stream was empty".into()))?;
        match j.state.as_str() {
            job_state::DONE => Ok(j),
            job_state::FAILED | job_state::CANCELLED => Err(ServiceError::Protocol(format!(
                "job {id} {}{}",
                j.state,
                j.error
                    .as_deref()
                    .map(|e| format!(": {e}"))
                    .unwrap_or_default()
            ))),
            s => Err(ServiceError::Http(format!(
                "the event stream ended while the job was {s}"
            ))),
        }
    }

    /// Downloads a done job's encrypted model into the model directory `out` (written
    /// atomically), checks every file against the listing's sizes and the model against its
    /// manifest and parameters. Returns the files.
    pub fn fetch_model(&self, id: &str, out: &Path) -> Result<Vec<ModelFile>, ServiceError> {
        let listing: Vec<ModelFile> = self.get(&format!("/v1/jobs/{id}/model"))?;
        for f in &listing {
            let ok_name = matches!(
                f.path.as_str(),
                "manifest.json" | "params.bin" | "weights.cts"
            ) || f
                .path
                .strip_prefix(&format!("{}/", volley_train::dirs::SNAPSHOT_DIR))
                .is_some_and(|n| {
                    n.starts_with("iter-")
                        && n.ends_with(".cts")
                        && n.bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
                });
            if !ok_name || f.bytes > MAX_MODEL_FILE {
                return Err(ServiceError::Protocol(format!(
                    "the model listing names {:?} ({} bytes), which no model holds",
                    f.path, f.bytes
                )));
            }
        }
        volley_train::dirs::write_dir_atomic(out, |tmp| -> Result<(), ServiceError> {
            for f in &listing {
                let path: PathBuf = tmp.join(&f.path);
                if let Some(parent) = path.parent() {
                    std::fs::create_dir_all(parent).map_err(ServiceError::io(parent))?;
                }
                let resp = self
                    .agent
                    .get(self.url(&format!("/v1/jobs/{id}/model/{}", f.path)))
                    .header("Authorization", &self.auth)
                    .call()
                    .map_err(http)?;
                if !resp.status().is_success() {
                    return Self::answer::<()>(resp);
                }
                let mut body = resp.into_body();
                let mut reader = body.with_config().limit(f.bytes + 1).reader();
                let mut file = std::fs::File::create(&path).map_err(ServiceError::io(&path))?;
                let n = std::io::copy(&mut (&mut reader).take(f.bytes + 1), &mut file)
                    .map_err(ServiceError::io(&path))?;
                if n != f.bytes {
                    return Err(ServiceError::Protocol(format!(
                        "{}: {n} bytes, the listing said {}",
                        f.path, f.bytes
                    )));
                }
                file.sync_all().map_err(ServiceError::io(&path))?;
            }
            // The model must be one: its manifest against its parameters.
            let (manifest, params) = volley_train::dirs::load_manifest(tmp)?;
            manifest
                .validate(&params)
                .map_err(|e| ServiceError::Protocol(format!("the model's manifest: {e}")))?;
            Ok(())
        })?;
        Ok(listing)
    }
}

/// True when an upload on the server declares exactly these files.
fn same_files(u: &UploadView, files: &[FileDecl]) -> bool {
    u.files.len() == files.len()
        && u.files
            .iter()
            .zip(files)
            .all(|(a, b)| a.path == b.path && a.bytes == b.bytes)
}
