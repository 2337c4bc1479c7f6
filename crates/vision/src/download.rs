//! Default files (torchvision's `regnet_x_400mf` weights, the MNIST files) fetched once
//! into a cache directory and verified by SHA-256.
//!
//! - Cache: `$VOLLEY_CACHE_DIR`, else `$XDG_CACHE_HOME/volley`, else `~/.cache/volley`;
//!   weights go to `weights/`, MNIST to `mnist/`.
//! - Base URL: `$VOLLEY_DOWNLOAD_BASE_URL` (or [`Downloader::with_base_url`]) replaces every
//!   file's standard location by `BASE/FILE_NAME`: a local mirror, or a test server.
//! - A download streams into a temporary file beside its target while hashing, and is
//!   renamed into place only when complete and verified: an interrupted or corrupt
//!   transfer leaves nothing in the cache (nothing half-written is ever resumed).
//! - A cached file is re-verified before use and fetched again if it does not match.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Duration;

use sha2::{Digest, Sha256};

use crate::atomic::AtomicFile;

/// Environment variable naming the cache directory.
pub const CACHE_DIR_ENV: &str = "VOLLEY_CACHE_DIR";
/// Environment variable replacing the download locations by `BASE/FILE_NAME`.
pub const BASE_URL_ENV: &str = "VOLLEY_DOWNLOAD_BASE_URL";

/// How a downloaded file is verified.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Checksum {
    /// The full SHA-256, lowercase hex.
    Sha256(&'static str),
    /// A prefix of the SHA-256, lowercase hex: torchvision names its weight files
    /// `NAME-PREFIX.pth` with the first 8 hex digits of their SHA-256 and verifies only
    /// that prefix (`torch.hub.download_url_to_file(..., hash_prefix)`); its full hash is
    /// not published, so this is the strongest check available.
    Sha256Prefix(&'static str),
}

impl Checksum {
    fn matches(&self, hex: &str) -> bool {
        match self {
            Self::Sha256(full) => hex.eq_ignore_ascii_case(full),
            Self::Sha256Prefix(prefix) => hex
                .get(..prefix.len())
                .is_some_and(|p| p.eq_ignore_ascii_case(prefix)),
        }
    }

    fn expected(&self) -> String {
        match self {
            Self::Sha256(full) => (*full).to_string(),
            Self::Sha256Prefix(prefix) => format!("{prefix}… (prefix)"),
        }
    }
}

/// A file with a standard public location.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RemoteFile {
    /// Name in the cache and at the end of the URL.
    pub file_name: &'static str,
    /// Sub-directory of the cache.
    pub subdir: &'static str,
    /// Standard location.
    pub url: &'static str,
    /// Expected digest.
    pub checksum: Checksum,
    /// How to pass a local copy instead (shown when the download fails).
    pub local_hint: &'static str,
}

/// torchvision's ImageNet weights for `regnet_x_400mf` (`RegNet_X_400MF_Weights.IMAGENET1K_V1`).
pub const REGNET_X_400MF_WEIGHTS: RemoteFile = RemoteFile {
    file_name: "regnet_x_400mf-adf1edd5.pth",
    subdir: "weights",
    url: "https://download.pytorch.org/models/regnet_x_400mf-adf1edd5.pth",
    checksum: Checksum::Sha256Prefix("adf1edd5"),
    local_hint: "--weights FILE (torchvision's regnet_x_400mf-adf1edd5.pth or a .safetensors copy)",
};

const MNIST_HINT: &str = "--data-dir DIR (a directory holding train-images-idx3-ubyte.gz, \
                          train-labels-idx1-ubyte.gz, t10k-images-idx3-ubyte.gz, t10k-labels-idx1-ubyte.gz)";

/// The four MNIST files, from the mirror torchvision uses.
pub const MNIST_FILES: [RemoteFile; 4] = [
    RemoteFile {
        file_name: "train-images-idx3-ubyte.gz",
        subdir: "mnist",
        url: "https://ossci-datasets.s3.amazonaws.com/mnist/train-images-idx3-ubyte.gz",
        checksum: Checksum::Sha256(
            "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
        ),
        local_hint: MNIST_HINT,
    },
    RemoteFile {
        file_name: "train-labels-idx1-ubyte.gz",
        subdir: "mnist",
        url: "https://ossci-datasets.s3.amazonaws.com/mnist/train-labels-idx1-ubyte.gz",
        checksum: Checksum::Sha256(
            "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
        ),
        local_hint: MNIST_HINT,
    },
    RemoteFile {
        file_name: "t10k-images-idx3-ubyte.gz",
        subdir: "mnist",
        url: "https://ossci-datasets.s3.amazonaws.com/mnist/t10k-images-idx3-ubyte.gz",
        checksum: Checksum::Sha256(
            "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
        ),
        local_hint: MNIST_HINT,
    },
    RemoteFile {
        file_name: "t10k-labels-idx1-ubyte.gz",
        subdir: "mnist",
        url: "https://ossci-datasets.s3.amazonaws.com/mnist/t10k-labels-idx1-ubyte.gz",
        checksum: Checksum::Sha256(
            "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
        ),
        local_hint: MNIST_HINT,
    },
];

/// Why a default file is not available.
#[derive(Debug, thiserror::Error)]
pub enum DownloadError {
    /// No cache directory could be determined.
    #[error("no cache directory: set {CACHE_DIR_ENV} or HOME")]
    NoCacheDir,
    /// The transfer failed (no network, HTTP error, interrupted transfer).
    #[error(
        "could not download {file} from {url}: {reason}. Without network access, pass a local copy: {hint}"
    )]
    Transfer {
        /// The file wanted.
        file: String,
        /// Where it was fetched from.
        url: String,
        /// The client's error.
        reason: String,
        /// The flag that supplies a local copy.
        hint: String,
    },
    /// The bytes received do not have the expected digest.
    #[error(
        "{file} from {url} has SHA-256 {actual}, expected {expected}: not kept. Pass a local copy: {hint}"
    )]
    Checksum {
        /// The file wanted.
        file: String,
        /// Where it was fetched from.
        url: String,
        /// The expected digest.
        expected: String,
        /// The digest of what arrived.
        actual: String,
        /// The flag that supplies a local copy.
        hint: String,
    },
    /// The cache could not be written.
    #[error("cache {path}: {source}")]
    Cache {
        /// The file or directory.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
}

/// The default cache directory (see the module documentation), if one can be named.
pub fn default_cache_dir() -> Option<PathBuf> {
    let non_empty = |k: &str| {
        std::env::var_os(k)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    non_empty(CACHE_DIR_ENV)
        .or_else(|| non_empty("XDG_CACHE_HOME").map(|p| p.join("volley")))
        .or_else(|| non_empty("HOME").map(|p| p.join(".cache").join("volley")))
}

/// Fetches [`RemoteFile`]s into a cache directory.
#[derive(Debug, Clone)]
pub struct Downloader {
    cache_dir: PathBuf,
    base_url: Option<String>,
    timeout: Duration,
}

impl Downloader {
    /// A downloader using the default cache directory and `$VOLLEY_DOWNLOAD_BASE_URL`.
    pub fn from_env() -> Result<Self, DownloadError> {
        let cache_dir = default_cache_dir().ok_or(DownloadError::NoCacheDir)?;
        let base = std::env::var(BASE_URL_ENV).ok().filter(|v| !v.is_empty());
        Ok(Self::new(cache_dir).with_base_url(base))
    }

    /// A downloader caching under `cache_dir`, fetching from the standard locations.
    pub fn new(cache_dir: impl Into<PathBuf>) -> Self {
        Self {
            cache_dir: cache_dir.into(),
            base_url: None,
            timeout: Duration::from_secs(30),
        }
    }

    /// Fetches every file from `BASE/FILE_NAME` instead of its standard location.
    pub fn with_base_url(mut self, base: Option<String>) -> Self {
        self.base_url = base.map(|b| b.trim_end_matches('/').to_string());
        self
    }

    /// Time allowed to connect and between reads.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The cache directory.
    pub fn cache_dir(&self) -> &Path {
        &self.cache_dir
    }

    /// Where `file` is (or will be) cached.
    pub fn cached_path(&self, file: &RemoteFile) -> PathBuf {
        self.cache_dir.join(file.subdir).join(file.file_name)
    }

    fn url(&self, file: &RemoteFile) -> String {
        match &self.base_url {
            Some(base) => format!("{base}/{}", file.file_name),
            None => file.url.to_string(),
        }
    }

    /// The verified cached copy of `file`, downloading it first if it is missing or does
    /// not verify.
    pub fn fetch(&self, file: &RemoteFile) -> Result<PathBuf, DownloadError> {
        let target = self.cached_path(file);
        if target.is_file() && sha256_file(&target).is_ok_and(|h| file.checksum.matches(&h)) {
            return Ok(target);
        }
        let dir = self.cache_dir.join(file.subdir);
        std::fs::create_dir_all(&dir).map_err(|source| DownloadError::Cache {
            path: dir.clone(),
            source,
        })?;
        let url = self.url(file);
        let transfer = |reason: String| DownloadError::Transfer {
            file: file.file_name.to_string(),
            url: url.clone(),
            reason,
            hint: file.local_hint.to_string(),
        };
        let agent = ureq::Agent::new_with_config(
            ureq::Agent::config_builder()
                .timeout_connect(Some(self.timeout))
                .timeout_per_read(Some(self.timeout))
                .build(),
        );
        let response = agent
            .get(&url)
            .call()
            .map_err(|e| transfer(e.to_string()))?;
        let mut body = response.into_body().into_reader();
        let io_err = |e: std::io::Error| DownloadError::Cache {
            path: target.clone(),
            source: e,
        };
        let mut out = AtomicFile::create(&target).map_err(io_err)?;
        let mut hasher = Sha256::new();
        let mut buf = vec![0u8; 1 << 16];
        loop {
            // Dropping `out` on any error below removes the partial file.
            let n = body.read(&mut buf).map_err(|e| transfer(e.to_string()))?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
            out.write_all(&buf[..n]).map_err(io_err)?;
        }
        let actual = hex(&hasher.finalize());
        if !file.checksum.matches(&actual) {
            return Err(DownloadError::Checksum {
                file: file.file_name.to_string(),
                url,
                expected: file.checksum.expected(),
                actual,
                hint: file.local_hint.to_string(),
            });
        }
        out.commit().map_err(io_err)
    }

    /// The MNIST files, fetched if needed; returns the directory holding them.
    pub fn fetch_mnist(&self) -> Result<PathBuf, DownloadError> {
        for file in &MNIST_FILES {
            self.fetch(file)?;
        }
        Ok(self.cache_dir.join("mnist"))
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The SHA-256 of a file, lowercase hex.
pub fn sha256_file(path: &Path) -> std::io::Result<String> {
    let mut f = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex(&hasher.finalize()))
}

#[cfg(test)]
mod tests {
    use std::io::{BufRead, BufReader, Write};
    use std::net::TcpListener;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::Instant;

    use super::*;

    /// What the test server does for a path.
    #[derive(Clone)]
    enum Reply {
        /// 200 with the whole body.
        Full(Vec<u8>),
        /// 200 announcing the whole length, then only the first bytes, then close.
        Truncated(Vec<u8>, usize),
    }

    /// An HTTP/1.1 server on 127.0.0.1 for one test: serves `routes`, 404 otherwise,
    /// stops when dropped or after 20 s, whichever comes first.
    struct TestServer {
        base: String,
        stop: Arc<AtomicBool>,
        thread: Option<std::thread::JoinHandle<()>>,
    }

    impl TestServer {
        fn start(routes: Vec<(&'static str, Reply)>) -> Self {
            let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
            listener.set_nonblocking(true).expect("nonblocking");
            let base = format!("http://{}", listener.local_addr().expect("addr"));
            let stop = Arc::new(AtomicBool::new(false));
            let flag = stop.clone();
            let thread = std::thread::spawn(move || {
                let deadline = Instant::now() + Duration::from_secs(20);
                while !flag.load(Ordering::Relaxed) && Instant::now() < deadline {
                    let Ok((stream, _)) = listener.accept() else {
                        std::thread::sleep(Duration::from_millis(5));
                        continue;
                    };
                    stream.set_nonblocking(false).expect("blocking");
                    let mut reader = BufReader::new(stream.try_clone().expect("clone"));
                    let mut request_line = String::new();
                    if reader.read_line(&mut request_line).is_err() {
                        continue;
                    }
                    let mut line = String::new();
                    while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
                        line.clear();
                    }
                    let path = request_line
                        .split_whitespace()
                        .nth(1)
                        .unwrap_or("")
                        .to_string();
                    let mut stream = stream;
                    let reply = routes
                        .iter()
                        .find(|(p, _)| path == format!("/{p}"))
                        .map(|(_, r)| r.clone());
                    let _ = match reply {
                        Some(Reply::Full(body)) => {
                            let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", body.len());
                            stream.write_all(head.as_bytes()).and_then(|_| stream.write_all(&body))
                        }
                        Some(Reply::Truncated(body, sent)) => {
                            let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", body.len());
                            stream.write_all(head.as_bytes()).and_then(|_| stream.write_all(&body[..sent]))
                        }
                        None => stream.write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"),
                    };
                    let _ = stream.flush();
                }
            });
            Self {
                base,
                stop,
                thread: Some(thread),
            }
        }
    }

    impl Drop for TestServer {
        fn drop(&mut self) {
            self.stop.store(true, Ordering::Relaxed);
            if let Some(t) = self.thread.take() {
                let _ = t.join();
            }
        }
    }

    const BODY: &[u8] = b"fixture weights: not really a .pth, but bytes with a known digest";

    fn fixture_file(checksum: Checksum) -> RemoteFile {
        RemoteFile {
            file_name: "fixture.bin",
            subdir: "weights",
            url: "https://example.invalid/fixture.bin",
            checksum,
            local_hint: "--weights FILE",
        }
    }

    fn leftovers(dir: &Path) -> Vec<String> {
        std::fs::read_dir(dir)
            .map(|rd| {
                rd.filter_map(|e| e.ok())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default()
    }

    fn digest(bytes: &[u8]) -> &'static str {
        Box::leak(hex(&Sha256::digest(bytes)).into_boxed_str())
    }

    #[test]
    fn happy_path_caches_and_verifies() {
        let server = TestServer::start(vec![("fixture.bin", Reply::Full(BODY.to_vec()))]);
        let cache = tempfile::tempdir().expect("tempdir");
        let dl = Downloader::new(cache.path()).with_base_url(Some(format!("{}/", server.base)));
        let file = fixture_file(Checksum::Sha256(digest(BODY)));
        let path = dl.fetch(&file).expect("download");
        assert_eq!(std::fs::read(&path).expect("read"), BODY);
        assert_eq!(
            leftovers(&cache.path().join("weights")),
            vec!["fixture.bin".to_string()]
        );
        // The prefix check torchvision uses.
        let prefix: &'static str = &digest(BODY)[..8];
        drop(server);
        // Cached and valid: no network needed any more.
        let again = dl
            .fetch(&fixture_file(Checksum::Sha256Prefix(prefix)))
            .expect("cached");
        assert_eq!(again, path);
    }

    #[test]
    fn wrong_checksum_keeps_nothing() {
        let server = TestServer::start(vec![("fixture.bin", Reply::Full(BODY.to_vec()))]);
        let cache = tempfile::tempdir().expect("tempdir");
        let dl = Downloader::new(cache.path()).with_base_url(Some(server.base.clone()));
        let err = dl
            .fetch(&fixture_file(Checksum::Sha256(digest(b"other bytes"))))
            .expect_err("checksum");
        assert!(matches!(err, DownloadError::Checksum { .. }), "{err}");
        assert!(err.to_string().contains("--weights FILE"), "{err}");
        assert!(leftovers(&cache.path().join("weights")).is_empty());
        let err = dl
            .fetch(&fixture_file(Checksum::Sha256Prefix("00000000")))
            .expect_err("prefix");
        assert!(matches!(err, DownloadError::Checksum { .. }), "{err}");
    }

    #[test]
    fn truncated_transfer_keeps_nothing() {
        let server = TestServer::start(vec![("fixture.bin", Reply::Truncated(BODY.to_vec(), 20))]);
        let cache = tempfile::tempdir().expect("tempdir");
        let dl = Downloader::new(cache.path()).with_base_url(Some(server.base.clone()));
        let err = dl
            .fetch(&fixture_file(Checksum::Sha256(digest(BODY))))
            .expect_err("truncated");
        assert!(matches!(err, DownloadError::Transfer { .. }), "{err}");
        assert!(leftovers(&cache.path().join("weights")).is_empty());
    }

    #[test]
    fn corrupt_cached_file_is_replaced_and_404_is_an_error() {
        let server = TestServer::start(vec![("fixture.bin", Reply::Full(BODY.to_vec()))]);
        let cache = tempfile::tempdir().expect("tempdir");
        let dl = Downloader::new(cache.path()).with_base_url(Some(server.base.clone()));
        let file = fixture_file(Checksum::Sha256(digest(BODY)));
        std::fs::create_dir_all(cache.path().join("weights")).expect("mkdir");
        std::fs::write(dl.cached_path(&file), b"half a fi").expect("write");
        let path = dl.fetch(&file).expect("refetch");
        assert_eq!(std::fs::read(path).expect("read"), BODY);
        let missing = RemoteFile {
            file_name: "absent.bin",
            ..file
        };
        let err = dl.fetch(&missing).expect_err("404");
        assert!(err.to_string().contains("404"), "{err}");
    }

    #[test]
    fn offline_error_names_file_and_flag() {
        // A port nothing listens on: bind, read the port, close.
        let port = TcpListener::bind("127.0.0.1:0")
            .expect("bind")
            .local_addr()
            .expect("addr")
            .port();
        let cache = tempfile::tempdir().expect("tempdir");
        let dl = Downloader::new(cache.path())
            .with_base_url(Some(format!("http://127.0.0.1:{port}")))
            .with_timeout(Duration::from_secs(2));
        let err = dl.fetch(&MNIST_FILES[2]).expect_err("offline").to_string();
        assert!(
            err.contains("t10k-images-idx3-ubyte.gz") && err.contains("--data-dir"),
            "{err}"
        );
        let err = dl
            .fetch(&REGNET_X_400MF_WEIGHTS)
            .expect_err("offline")
            .to_string();
        assert!(
            err.contains("regnet_x_400mf-adf1edd5.pth") && err.contains("--weights"),
            "{err}"
        );
    }
}
