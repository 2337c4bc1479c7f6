//! `volley serve`: the data directory, TLS, recovery after a crash, and the listener.
//!
//! Data directory: `volley.sqlite` (the job store), `uploads/ID/` (an upload's files),
//! `jobs/ID/model/` (a done job's encrypted model) and `jobs/ID/.model.partial/` (a running
//! job's work directory with its checkpoint), `tls/` (the self-signed certificate).

use crate::ServiceError;
use crate::auth::Tokens;
use crate::state::{AppState, Limits};
use crate::store::Store;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// A client that has not sent its request's headers after this long is disconnected (slow
/// clients cannot hold connections open); bodies have their own idle limit
/// ([`Limits::idle_timeout`]).
const HEADER_READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// How the server speaks.
#[derive(Clone, Debug)]
pub enum Tls {
    /// TLS with the operator's certificate chain and key (PEM files).
    Files {
        /// Certificate chain.
        cert: PathBuf,
        /// Private key.
        key: PathBuf,
    },
    /// TLS with a certificate for `localhost` and `127.0.0.1` made at the first start and
    /// kept in `DATA/tls/` (clients trust it with `--ca-cert DATA/tls/cert.pem`).
    SelfSigned,
    /// Plain HTTP: only with an explicit flag, for loopback tests.
    PlainHttp,
}

/// What `volley serve` is given.
#[derive(Clone, Debug)]
pub struct ServeConfig {
    /// Address to listen on (port 0: any free port, see [`Server::addr`]).
    pub listen: SocketAddr,
    /// The data directory.
    pub data_dir: PathBuf,
    /// Who may call.
    pub tokens: Tokens,
    /// TLS or not.
    pub tls: Tls,
    /// Limits.
    pub limits: Limits,
    /// Training threads (shared by the running jobs).
    pub threads: usize,
}

/// A running server.
pub struct Server {
    /// The address it listens on.
    pub addr: SocketAddr,
    /// The certificate clients should trust, with a self-signed one.
    pub cert: Option<PathBuf>,
    /// Jobs put back in the queue at start (they were running when the server stopped).
    pub resumed_jobs: usize,
    handle: axum_server::Handle<SocketAddr>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
    state: Arc<AppState>,
}

/// The self-signed certificate and key in `DATA/tls/`, made on the first start.
fn self_signed(data: &Path) -> Result<(PathBuf, PathBuf), ServiceError> {
    let dir = data.join("tls");
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    if cert.exists() && key.exists() {
        return Ok((cert, key));
    }
    std::fs::create_dir_all(&dir).map_err(ServiceError::io(&dir))?;
    let made = rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()])
        .map_err(|e| ServiceError::Config(format!("self-signed certificate: {e}")))?;
    write_private(&key, made.key_pair.serialize_pem().as_bytes())?;
    volley_ckks::write_atomic(&cert, made.cert.pem().as_bytes())
        .map_err(|e| ServiceError::Config(format!("{}: {e}", cert.display())))?;
    Ok((cert, key))
}

/// Writes a private key readable by its owner only.
fn write_private(path: &Path, bytes: &[u8]) -> Result<(), ServiceError> {
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    let mut f = opts.open(path).map_err(ServiceError::io(path))?;
    f.write_all(bytes).map_err(ServiceError::io(path))?;
    f.sync_all().map_err(ServiceError::io(path))
}

/// Opens the data directory (creating it), puts jobs that were running back in the queue,
/// and starts listening and the job dispatcher.
pub async fn start(config: ServeConfig) -> Result<Server, ServiceError> {
    if config.tokens.is_empty() {
        return Err(ServiceError::Config(
            "the tokens file admits no one: add a line with `volley token`".into(),
        ));
    }
    if config.limits.max_running == 0 {
        return Err(ServiceError::Config(
            "--max-running must be at least 1".into(),
        ));
    }
    let data = config.data_dir.clone();
    for sub in ["uploads", "jobs"] {
        let d = data.join(sub);
        std::fs::create_dir_all(&d).map_err(ServiceError::io(&d))?;
    }
    let store = Store::open(&AppState::db_path(&data))?;
    let resumed_jobs = store.requeue_running()?;
    let state = Arc::new(AppState {
        store: Mutex::new(store),
        data: data.clone(),
        tokens: config.tokens,
        limits: config.limits,
        live: Mutex::default(),
        writing: Mutex::default(),
        wake: tokio::sync::Notify::new(),
        pool: crate::state::training_pool(config.threads).map_err(ServiceError::Config)?,
    });
    let app = crate::api::router(state.clone()).into_make_service();
    let handle = axum_server::Handle::new();
    let (task, cert) = match &config.tls {
        Tls::PlainHttp => {
            let mut server = axum_server::bind(config.listen).handle(handle.clone());
            server
                .http_builder()
                .http1()
                .header_read_timeout(HEADER_READ_TIMEOUT);
            (tokio::spawn(server.serve(app)), None)
        }
        tls => {
            let (cert, key, shown) = match tls {
                Tls::Files { cert, key } => (cert.clone(), key.clone(), None),
                _ => {
                    let (c, k) = self_signed(&data)?;
                    (c.clone(), k, Some(c))
                }
            };
            let rustls = axum_server::tls_rustls::RustlsConfig::from_pem_file(&cert, &key)
                .await
                .map_err(|e| {
                    ServiceError::Config(format!("TLS certificate {}: {e}", cert.display()))
                })?;
            let mut server = axum_server::bind_rustls(config.listen, rustls).handle(handle.clone());
            server
                .http_builder()
                .http1()
                .header_read_timeout(HEADER_READ_TIMEOUT);
            (tokio::spawn(server.serve(app)), shown)
        }
    };
    let addr = match handle.listening().await {
        Some(a) => a,
        None => {
            let e = task.await.map_err(|e| ServiceError::Http(e.to_string()))?;
            return Err(ServiceError::Http(format!(
                "cannot listen on {}: {}",
                config.listen,
                e.err().map_or_else(|| "unknown".into(), |e| e.to_string())
            )));
        }
    };
    tokio::spawn(crate::jobs::dispatcher(state.clone()));
    Ok(Server {
        addr,
        cert,
        resumed_jobs,
        handle,
        task,
        state,
    })
}

impl Server {
    /// Serves until the listener fails.
    pub async fn wait(self) -> Result<(), ServiceError> {
        self.task
            .await
            .map_err(|e| ServiceError::Http(e.to_string()))?
            .map_err(|e| ServiceError::Http(e.to_string()))
    }

    /// Stops: no new connections, running jobs stop at their next iteration (they stay
    /// running in the store and resume at the next start), open requests get `grace`.
    pub async fn shutdown(self, grace: std::time::Duration) {
        crate::jobs::stop_all(&self.state);
        self.handle.graceful_shutdown(Some(grace));
        let _ = self.task.await;
        // Let the training threads see the stop before the runtime goes.
        for _ in 0..100 {
            if crate::state::lock(&self.state.live).is_empty() {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    }
}
