//! Shared CLI helpers: the error type, peak memory, atomic writes.

/// Every CLI failure: printed as one line, exit code 1 (2 for usage errors, by clap).
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// From the CKKS engine.
    #[error(transparent)]
    Ckks(#[from] volley_ckks::Error),
    /// File system.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// Anything else, already phrased for the user.
    #[error("{0}")]
    Msg(String),
}

impl CliError {
    /// An I/O error on `path`.
    pub fn io(path: impl AsRef<std::path::Path>, source: std::io::Error) -> Self {
        Self::Io { path: path.as_ref().display().to_string(), source }
    }
}

/// Peak resident set size of this process (VmHWM), 0 where unavailable.
pub fn peak_rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("VmHWM:")).and_then(|l| l.split_whitespace().nth(1)).and_then(|kb| kb.parse::<u64>().ok()))
        .map_or(0, |kb| kb * 1024)
}
