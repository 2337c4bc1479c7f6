//! Errors of the training crate.

/// Everything that can go wrong while preparing data, training or evaluating.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TrainError {
    /// Malformed or unusable input data.
    #[error("{0}")]
    Data(String),
    /// Bad row range syntax or bounds.
    #[error("row range {range:?}: {msg}")]
    Range {
        /// The text given.
        range: String,
        /// What is wrong.
        msg: String,
    },
    /// The parameters cannot hold the requested computation.
    #[error("{0}")]
    Capacity(String),
    /// A bundle or model does not belong with these keys or parameters.
    #[error("{0}")]
    Mismatch(String),
    /// From the CKKS engine.
    #[error(transparent)]
    Ckks(#[from] volley_ckks::Error),
    /// The caller asked the run to stop (a cancelled job); nothing was written after it.
    #[error("cancelled")]
    Cancelled,
    /// File access.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
}

impl TrainError {
    /// An I/O error on `path`.
    pub fn io(path: impl AsRef<std::path::Path>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.as_ref().display().to_string(),
            source,
        }
    }
}

/// Result alias.
pub type Result<T> = std::result::Result<T, TrainError>;
