//! The CLI's on-disk layout (documented in the README, "File formats").
//!
//! - key directory (client only): `params.bin`, `client.json` (parameter name, key id),
//!   `secret.key` (mode 0600);
//! - upload bundle directory: `manifest.json`, `params.bin`, `keys.bin`, one `<group>.cts`
//!   per ciphertext group;
//! - model directory: `manifest.json`, `params.bin`, `weights.cts`.
//!
//! A `.cts` file is a container of serialized ciphertexts (`volley_train::container`).
//! Directories are written to a temporary sibling and renamed into place, so a failure never
//! leaves a half-written one; a resumable `volley train` works in `.NAME.partial/`, which
//! holds its checkpoint and survives the process.

use crate::util::CliError;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use volley_ckks::{Ciphertext, Params};
use volley_train::container::{ciphertexts_from_bytes, ciphertexts_to_bytes};

/// Reads a whole file with the path in the error.
pub fn read(path: &Path) -> Result<Vec<u8>, CliError> {
    std::fs::read(path).map_err(|e| CliError::io(path, e))
}

/// Serializes ciphertexts into a container (`volley_train::container`).
pub fn cts_to_bytes(cts: &[Ciphertext]) -> Vec<u8> {
    ciphertexts_to_bytes(cts)
}

/// Parses a container, validating every ciphertext against `params`.
pub fn cts_from_bytes(
    params: &Arc<Params>,
    bytes: &[u8],
    path: &Path,
) -> Result<Vec<Ciphertext>, CliError> {
    ciphertexts_from_bytes(params, bytes)
        .map_err(|e| CliError::Msg(format!("{}: {e}", path.display())))
}

/// Writes a directory atomically: `fill` writes into a fresh temporary sibling, which is
/// then renamed to `dir` (an existing `dir` is replaced only after everything succeeded).
pub fn write_dir_atomic(
    dir: &Path,
    fill: impl FnOnce(&Path) -> Result<(), CliError>,
) -> Result<(), CliError> {
    let (parent, name) = parent_and_name(dir)?;
    let tmp = parent.join(format!(".{name}.tmp.{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp).map_err(|e| CliError::io(&tmp, e))?;
    if let Err(e) = fill(&tmp) {
        let _ = std::fs::remove_dir_all(&tmp);
        return Err(e);
    }
    replace_dir(dir, &tmp)
}

/// The parent (`.` for a bare name) and the file name of `dir`.
fn parent_and_name(dir: &Path) -> Result<(PathBuf, String), CliError> {
    let parent = dir
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."));
    let name = dir
        .file_name()
        .ok_or_else(|| CliError::Msg(format!("{}: not a directory name", dir.display())))?
        .to_string_lossy()
        .to_string();
    Ok((parent, name))
}

/// Renames the filled `tmp` to `dir`, replacing an existing `dir` only then.
fn replace_dir(dir: &Path, tmp: &Path) -> Result<(), CliError> {
    let (parent, name) = parent_and_name(dir)?;
    if dir.exists() {
        let old = parent.join(format!(".{name}.old.{}", std::process::id()));
        std::fs::rename(dir, &old).map_err(|e| CliError::io(dir, e))?;
        std::fs::rename(tmp, dir).map_err(|e| CliError::io(dir, e))?;
        let _ = std::fs::remove_dir_all(&old);
    } else {
        std::fs::rename(tmp, dir).map_err(|e| CliError::io(dir, e))?;
    }
    Ok(())
}

/// The work directory of a resumable run writing `dir`: the hidden sibling `.NAME.partial`.
pub fn partial_dir(dir: &Path) -> Result<PathBuf, CliError> {
    let (parent, name) = parent_and_name(dir)?;
    Ok(parent.join(format!(".{name}.partial")))
}

/// [`write_dir_atomic`] through a work directory that outlives the process: `fill` writes
/// into `work` (created if missing, reused as it is otherwise: a resumed run finds its
/// checkpoint there), which is renamed to `dir` when `fill` succeeds and kept when it fails.
pub fn write_dir_resumable(
    dir: &Path,
    work: &Path,
    fill: impl FnOnce(&Path) -> Result<(), CliError>,
) -> Result<(), CliError> {
    std::fs::create_dir_all(work).map_err(|e| CliError::io(work, e))?;
    fill(work)?;
    replace_dir(dir, work)
}

/// Writes one file (inside a directory being filled).
pub fn write(path: &Path, bytes: &[u8]) -> Result<(), CliError> {
    std::fs::write(path, bytes).map_err(|e| CliError::io(path, e))
}

/// Writes a standalone file atomically.
pub fn write_file_atomic(path: &Path, bytes: &[u8]) -> Result<(), CliError> {
    volley_ckks::write_atomic(path, bytes)
        .map_err(|e| CliError::Msg(format!("{}: {e}", path.display())))
}
