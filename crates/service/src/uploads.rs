//! Receiving an upload: the declared file list, each file streamed to disk and resumable
//! at the byte where it stopped, then the whole bundle verified before any job may use it.
//!
//! A file arrives as `PATH.part` in the upload's directory and is renamed to `PATH` once it
//! has all its declared bytes, so the bytes received are always the length of one file on
//! disk: that is what survives a killed server, and what a client resumes from.

use crate::error::{ApiError, ApiResult};
use crate::state::Limits;
use crate::store::FileDecl;
use std::collections::HashSet;
use std::path::{Path, PathBuf};

/// Longest path component.
const MAX_COMPONENT: usize = 100;

/// Checks a client's relative path: one or two components of `A-Z a-z 0-9 . _ -`, not
/// starting with a dot (so no `..`, no hidden files, no absolute paths, no separators of
/// another kind). Only such names ever reach a file path.
pub fn check_path(path: &str) -> ApiResult<()> {
    let parts: Vec<&str> = path.split('/').collect();
    let ok = (1..=2).contains(&parts.len())
        && parts.iter().all(|p| {
            !p.is_empty()
                && p.len() <= MAX_COMPONENT
                && !p.starts_with('.')
                && !p.ends_with(".part")
                && p.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        });
    if ok {
        Ok(())
    } else {
        Err(ApiError::bad_request(format!(
            "invalid file path {:?}: one or two components of A-Z a-z 0-9 . _ -, not starting with a dot",
            path.chars().take(200).collect::<String>()
        )))
    }
}

/// Checks a declared file list against the limits.
pub fn check_declaration(files: &[FileDecl], limits: &Limits) -> ApiResult<u64> {
    if files.is_empty() || files.len() > limits.max_files {
        return Err(ApiError::bad_request(format!(
            "an upload has 1 to {} files, not {}",
            limits.max_files,
            files.len()
        )));
    }
    let mut seen = HashSet::new();
    let mut total: u64 = 0;
    for f in files {
        check_path(&f.path)?;
        if !seen.insert(f.path.as_str()) {
            return Err(ApiError::bad_request(format!(
                "{} is declared twice",
                f.path
            )));
        }
        total = total.saturating_add(f.bytes);
    }
    if total > limits.max_upload {
        return Err(ApiError::new(
            axum::http::StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
            format!(
                "the upload declares {total} bytes, more than this server's limit of {}",
                limits.max_upload
            ),
        ));
    }
    Ok(total)
}

/// Where a declared file lives once complete, and while it arrives.
pub fn file_paths(dir: &Path, path: &str) -> (PathBuf, PathBuf) {
    let done = dir.join(path);
    let part = dir.join(format!("{path}.part"));
    (done, part)
}

/// Bytes of a declared file on disk (complete or not).
pub fn received(dir: &Path, path: &str) -> u64 {
    let (done, part) = file_paths(dir, path);
    std::fs::metadata(&done)
        .or_else(|_| std::fs::metadata(&part))
        .map_or(0, |m| m.len())
}

/// True when `head` (a file's first bytes) is a serialized secret key, of any format
/// version: the server refuses one wherever it appears, and deletes its bytes at once.
pub fn is_secret_key(head: &[u8]) -> bool {
    use volley_ckks::serialization::{MAGIC, ObjectKind};
    // magic (4), format version (2), kind (1): see `volley_ckks::serialization`.
    head.len() >= 7 && head[..4] == MAGIC && head[6] == ObjectKind::SecretKey as u8
}

/// Finishes a declared file once all its bytes are on disk: refuses (and deletes) a secret
/// key, then renames `PATH.part` to `PATH`. True when the file is complete (now or before).
/// Idempotent, so a server killed between the last byte and the rename finishes the file
/// on the next request that looks at it.
pub fn finish_file(dir: &Path, path: &str, bytes: u64) -> ApiResult<bool> {
    use std::io::Read;
    let (done, part) = file_paths(dir, path);
    if done.exists() {
        return Ok(true);
    }
    match std::fs::metadata(&part) {
        Ok(m) if m.len() == bytes => {}
        _ => return Ok(false),
    }
    let mut head = Vec::with_capacity(volley_ckks::serialization::HEADER_LEN);
    std::fs::File::open(&part)?
        .take(volley_ckks::serialization::HEADER_LEN as u64)
        .read_to_end(&mut head)?;
    if is_secret_key(&head) {
        std::fs::remove_file(&part)?;
        return Err(ApiError::unprocessable(
            "secret_key",
            format!(
                "{path} is a secret key: this server never accepts one (its bytes are deleted); keep it on the client"
            ),
        ));
    }
    std::fs::rename(&part, &done)?;
    Ok(true)
}

/// Verifies a complete upload (blocking: it reads every byte once): the declared files are
/// exactly the bundle's files, then [`volley_train::dirs::verify_bundle`].
pub fn verify(dir: &Path, declared: &[FileDecl]) -> Result<volley_train::bundle::Manifest, String> {
    let (manifest, _) = volley_train::dirs::load_manifest(dir).map_err(|e| strip(dir, &e))?;
    let want: HashSet<String> = volley_train::dirs::bundle_files(&manifest)
        .into_iter()
        .collect();
    let have: HashSet<String> = declared.iter().map(|f| f.path.clone()).collect();
    if want != have {
        let mut missing: Vec<_> = want.difference(&have).cloned().collect();
        let mut extra: Vec<_> = have.difference(&want).cloned().collect();
        missing.sort();
        extra.sort();
        missing.truncate(5);
        extra.truncate(5);
        return Err(format!(
            "the files do not match the manifest's bundle (missing {missing:?}, unexpected {extra:?})"
        ));
    }
    volley_train::dirs::verify_bundle(dir).map_err(|e| strip(dir, &e))
}

/// An error's text without the server's own directory in it.
fn strip(dir: &Path, e: &dyn std::fmt::Display) -> String {
    let s = e.to_string();
    let prefix = format!("{}/", dir.display());
    s.replace(&prefix, "")
        .replace(&dir.display().to_string(), "upload")
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_relative_names_pass() {
        for ok in ["keys.bin", "batches/batch-000001.cts", "X_0.cts"] {
            assert!(check_path(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "..",
            "../x",
            "a/../../b",
            "/etc/passwd",
            "a//b",
            "a/b/c",
            ".hidden",
            "a\\b",
            "x.part",
            "a b",
            "%2e%2e",
            "a/.",
            "ü",
        ] {
            assert!(check_path(bad).is_err(), "{bad}");
        }
    }
}
