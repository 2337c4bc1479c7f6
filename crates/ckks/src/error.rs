//! The crate's error type: every fallible operation returns [`Error`].

use crate::ring::RingError;

/// Everything that can go wrong in `volley-ckks`. Operations name themselves in the message.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Invalid parameter literal.
    #[error("invalid parameters: {0}")]
    InvalidParameters(String),
    /// The parameters are above the HomomorphicEncryption.org 128-bit bound.
    #[error(
        "insecure parameters: log2(QP) = {log_qp:.1} bits exceeds the 128-bit classical bound of {bound} bits for N = 2^{log_n} (HomomorphicEncryption.org standard, uniform ternary secret)"
    )]
    Insecure {
        /// log2 of the ring degree.
        log_n: u32,
        /// log2(QP) of the requested chain.
        log_qp: f64,
        /// The bound for this N.
        bound: u32,
    },
    /// The ring could not be built.
    #[error("ring: {0}")]
    Ring(#[from] RingError),
    /// Operands belong to different parameter sets.
    #[error("{op}: operands use different parameters")]
    ParameterMismatch {
        /// Operation name.
        op: &'static str,
    },
    /// A level outside the valid range was requested or operands are at incompatible levels.
    #[error("{op}: level {level} is not valid (maximum {max})")]
    InvalidLevel {
        /// Operation name.
        op: &'static str,
        /// The offending level.
        level: usize,
        /// The largest allowed level.
        max: usize,
    },
    /// Two scales that must match do not.
    #[error(
        "{op}: scales differ (2^{a:.4} vs 2^{b:.4}); match them first (e.g. with mul_const_to_scale)"
    )]
    ScaleMismatch {
        /// Operation name.
        op: &'static str,
        /// log2 of the first scale.
        a: f64,
        /// log2 of the second scale.
        b: f64,
    },
    /// The operation needs a ciphertext of a given degree (e.g. relinearised).
    #[error("{op}: ciphertext has degree {degree}, expected {expected}")]
    Degree {
        /// Operation name.
        op: &'static str,
        /// Actual degree.
        degree: usize,
        /// Expected degree.
        expected: usize,
    },
    /// A key needed for the operation was not generated.
    #[error("{op}: missing {what}")]
    MissingKey {
        /// Operation name.
        op: &'static str,
        /// Which key ("relinearization key", "rotation key for step 3", ...).
        what: String,
    },
    /// Too many values for the slots.
    #[error("{op}: {got} values do not fit in {slots} slots")]
    TooManyValues {
        /// Operation name.
        op: &'static str,
        /// Number of values given.
        got: usize,
        /// Slot count.
        slots: usize,
    },
    /// An invalid argument (slot count, rotation, polynomial...).
    #[error("{op}: {msg}")]
    InvalidArgument {
        /// Operation name.
        op: &'static str,
        /// What is wrong.
        msg: String,
    },
    /// Serialized bytes are malformed.
    #[error("cannot decode {what}: {msg}")]
    Decode {
        /// What was being decoded.
        what: &'static str,
        /// What is wrong.
        msg: String,
    },
    /// I/O failure while reading or writing.
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
}

/// Result alias.
pub type Result<T> = std::result::Result<T, Error>;
