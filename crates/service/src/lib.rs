//! `volley-service`: volley's training server as a network service, and its client.
//!
//! - [`server`]: `volley serve`: TLS (rustls), the data directory, recovery after a crash;
//! - [`api`]: the HTTP API under `/v1` (axum), its OpenAPI description, the status page;
//! - [`store`]: the job store (SQLite), uploads and jobs and their states;
//! - [`uploads`]: receiving an upload (streamed, resumable) and verifying it;
//! - [`jobs`]: the queue and the training threads (checkpoint every iteration, resume);
//! - [`auth`]: tenants and their hashed bearer tokens;
//! - [`client`]: the data owner's side of the protocol (`volley submit/status/fetch`);
//! - [`loadtest`]: the service under load (`volley bench serve`).
//!
//! The server side links `volley-train` without its `client` feature: it cannot name a
//! secret key, and it refuses any uploaded object that is one.
#![deny(missing_docs)]

pub mod api;
pub mod auth;
pub mod client;
pub mod error;
pub mod jobs;
pub mod loadtest;
pub mod server;
pub mod state;
pub mod store;
pub mod uploads;

/// Errors of starting the server and of the client.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServiceError {
    /// Bad configuration (tokens, TLS files, limits).
    #[error("{0}")]
    Config(String),
    /// File access.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The job store.
    #[error("job store: {0}")]
    Store(#[from] rusqlite::Error),
    /// The network or the HTTP layer.
    #[error("{0}")]
    Http(String),
    /// The server answered with an error.
    #[error("the server answered {status} {code}: {message}")]
    Api {
        /// HTTP status.
        status: u16,
        /// The error code of its body.
        code: String,
        /// Its message.
        message: String,
        /// The whole body.
        body: serde_json::Value,
    },
    /// What the server returned is not what the protocol says.
    #[error("unexpected answer from the server: {0}")]
    Protocol(String),
    /// From the training crate (reading the bundle, writing the model).
    #[error(transparent)]
    Train(#[from] volley_train::TrainError),
}

impl ServiceError {
    /// An I/O error on `path`, for `map_err(ServiceError::io(path))`.
    pub fn io(path: &std::path::Path) -> impl FnOnce(std::io::Error) -> Self + '_ {
        move |source| Self::Io {
            path: path.display().to_string(),
            source,
        }
    }
}
