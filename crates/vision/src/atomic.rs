//! Files that appear complete or not at all: the workspace's one atomic writer,
//! `volley_ckks::serialization::AtomicFile` (temporary file in the target's directory,
//! synced, renamed on commit, removed if dropped before).

pub use volley_ckks::serialization::AtomicFile;
