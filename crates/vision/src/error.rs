//! The crate's error type: every failure on an input file is one of these, never a panic.

use std::path::PathBuf;

/// Everything that can go wrong while loading weights, datasets, images or feature files,
/// running a backbone or downloading a default file.
#[derive(Debug, thiserror::Error)]
pub enum VisionError {
    /// An operating-system error on a named file.
    #[error("{path}: {source}")]
    Io {
        /// The file being read or written.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A file whose bytes do not follow its format (bad magic, truncation, bad header).
    #[error("{path}: {reason}")]
    Format {
        /// The offending file.
        path: PathBuf,
        /// What is wrong with it, in one line.
        reason: String,
    },
    /// A weight file that does not fit the architecture.
    #[error("weights {path}: {reason}")]
    Weights {
        /// The weight file.
        path: PathBuf,
        /// Missing tensor, wrong shape, unsupported dtype...
        reason: String,
    },
    /// An image that cannot be decoded.
    #[error("image {path}: {reason}")]
    Image {
        /// The image file.
        path: PathBuf,
        /// The decoder's complaint.
        reason: String,
    },
    /// Invalid arguments (empty batch, range out of bounds, unknown backbone...).
    #[error("{0}")]
    Invalid(String),
    /// A default file that could not be downloaded or did not verify.
    #[error(transparent)]
    Download(#[from] crate::download::DownloadError),
}

impl VisionError {
    /// Wraps an I/O error with the path it concerns.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            source,
        }
    }

    /// A format error on `path`.
    pub fn format(path: impl Into<PathBuf>, reason: impl Into<String>) -> Self {
        Self::Format {
            path: path.into(),
            reason: reason.into(),
        }
    }

    /// A weight-file error on `path`.
    pub fn weights(path: impl Into<PathBuf>, reason: impl Into<String>) -> Self {
        Self::Weights {
            path: path.into(),
            reason: reason.into(),
        }
    }
}

/// Shorthand for results of this crate.
pub type Result<T, E = VisionError> = std::result::Result<T, E>;
