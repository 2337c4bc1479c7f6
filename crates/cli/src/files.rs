//! The CLI's on-disk layout (documented in the README, "File formats").
//!
//! - key directory (client only): `params.bin`, `client.json` (parameter name, key id),
//!   `secret.key` (mode 0600);
//! - upload bundle directory: `manifest.json`, `params.bin`, `keys.bin`, one `<group>.cts`
//!   per ciphertext group;
//! - model directory: `manifest.json`, `params.bin`, `weights.cts`.
//!
//! A `.cts` file is a container of serialized ciphertexts: magic `VLYCTS01`, u32 count, then
//! per ciphertext a u64 length and the bytes (little-endian). Directories are written to a
//! temporary sibling and renamed into place, so a failure never leaves a half-written one.

use crate::util::CliError;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use volley_ckks::{Ciphertext, Params, Serializable};

const CTS_MAGIC: &[u8; 8] = b"VLYCTS01";

/// Reads a whole file with the path in the error.
pub fn read(path: &Path) -> Result<Vec<u8>, CliError> {
    std::fs::read(path).map_err(|e| CliError::io(path, e))
}

/// Serializes ciphertexts into a container.
pub fn cts_to_bytes(cts: &[Ciphertext]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(CTS_MAGIC);
    out.extend_from_slice(&(cts.len() as u32).to_le_bytes());
    for ct in cts {
        let b = ct.to_bytes();
        out.extend_from_slice(&(b.len() as u64).to_le_bytes());
        out.extend_from_slice(&b);
    }
    out
}

/// Parses a container, validating every ciphertext against `params`.
pub fn cts_from_bytes(
    params: &Arc<Params>,
    bytes: &[u8],
    path: &Path,
) -> Result<Vec<Ciphertext>, CliError> {
    let bad = |msg: String| CliError::Msg(format!("{}: {msg}", path.display()));
    if bytes.len() < 12 || &bytes[..8] != CTS_MAGIC {
        return Err(bad("not a volley ciphertext file (bad magic)".into()));
    }
    let count = u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize;
    let mut pos = 12usize;
    let mut out = Vec::new();
    for i in 0..count {
        let len_bytes: [u8; 8] = bytes
            .get(pos..pos + 8)
            .and_then(|s| s.try_into().ok())
            .ok_or_else(|| bad(format!("truncated before ciphertext {i} of {count}")))?;
        let len = u64::from_le_bytes(len_bytes);
        pos += 8;
        let end = usize::try_from(len)
            .ok()
            .and_then(|l| pos.checked_add(l))
            .filter(|&e| e <= bytes.len())
            .ok_or_else(|| bad(format!("ciphertext {i} of {count} is truncated")))?;
        out.push(
            Ciphertext::from_bytes(params, &bytes[pos..end])
                .map_err(|e| bad(format!("ciphertext {i}: {e}")))?,
        );
        pos = end;
    }
    if pos != bytes.len() {
        return Err(bad(format!("{} trailing bytes", bytes.len() - pos)));
    }
    Ok(out)
}

/// Writes a directory atomically: `fill` writes into a fresh temporary sibling, which is
/// then renamed to `dir` (an existing `dir` is replaced only after everything succeeded).
pub fn write_dir_atomic(
    dir: &Path,
    fill: impl FnOnce(&Path) -> Result<(), CliError>,
) -> Result<(), CliError> {
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
    let tmp = parent.join(format!(".{name}.tmp.{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp).map_err(|e| CliError::io(&tmp, e))?;
    if let Err(e) = fill(&tmp) {
        let _ = std::fs::remove_dir_all(&tmp);
        return Err(e);
    }
    if dir.exists() {
        let old = parent.join(format!(".{name}.old.{}", std::process::id()));
        std::fs::rename(dir, &old).map_err(|e| CliError::io(dir, e))?;
        std::fs::rename(&tmp, dir).map_err(|e| CliError::io(dir, e))?;
        let _ = std::fs::remove_dir_all(&old);
    } else {
        std::fs::rename(&tmp, dir).map_err(|e| CliError::io(dir, e))?;
    }
    Ok(())
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
