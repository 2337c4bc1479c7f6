//! The ciphertext container (`.cts` files: upload groups, models, snapshots, and the body of
//! a checkpoint): magic `VLYCTS01`, u32 count, then per ciphertext a u64 length and its
//! serialized bytes (little-endian). Decoding trusts nothing: every length is checked
//! against the bytes present before anything is sized by it, and every ciphertext against
//! the receiver's parameters.

use crate::error::{Result, TrainError};
use std::io::Write;
use std::sync::Arc;
use volley_ckks::{Ciphertext, Params, Serializable};

/// Magic of a container.
pub const CTS_MAGIC: &[u8; 8] = b"VLYCTS01";

/// Writes ciphertexts as a container, one at a time (no whole-file buffer).
pub fn write_ciphertexts<'a>(
    w: &mut impl Write,
    cts: impl IntoIterator<Item = &'a Ciphertext, IntoIter: ExactSizeIterator>,
) -> std::io::Result<()> {
    let cts = cts.into_iter();
    let count = u32::try_from(cts.len())
        .map_err(|_| std::io::Error::other("more than 2^32 ciphertexts in one container"))?;
    w.write_all(CTS_MAGIC)?;
    w.write_all(&count.to_le_bytes())?;
    for ct in cts {
        let b = ct.to_bytes();
        w.write_all(&(b.len() as u64).to_le_bytes())?;
        w.write_all(&b)?;
    }
    Ok(())
}

/// Serializes ciphertexts into a container.
pub fn ciphertexts_to_bytes(cts: &[Ciphertext]) -> Vec<u8> {
    let mut out = Vec::new();
    // Writing into a Vec cannot fail below 2^32 ciphertexts.
    let _ = write_ciphertexts(&mut out, cts);
    out
}

/// Parses a container, validating every ciphertext against `params`.
pub fn ciphertexts_from_bytes(params: &Arc<Params>, bytes: &[u8]) -> Result<Vec<Ciphertext>> {
    let bad = |msg: String| Err(TrainError::Data(msg));
    if bytes.len() < 12 || &bytes[..8] != CTS_MAGIC {
        return bad("not a volley ciphertext container (bad magic)".into());
    }
    let count = u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize;
    let mut pos = 12usize;
    // No allocation sized by the count: each ciphertext is at least its 8-byte length.
    let mut out = Vec::with_capacity(count.min((bytes.len() - pos) / 8));
    for i in 0..count {
        let Some(len_bytes) = bytes.get(pos..pos + 8) else {
            return bad(format!("truncated before ciphertext {i} of {count}"));
        };
        let len = u64::from_le_bytes(len_bytes.try_into().unwrap_or([0; 8]));
        pos += 8;
        let Some(end) = usize::try_from(len)
            .ok()
            .and_then(|l| pos.checked_add(l))
            .filter(|&e| e <= bytes.len())
        else {
            return bad(format!("ciphertext {i} of {count} is truncated"));
        };
        out.push(
            Ciphertext::from_bytes(params, &bytes[pos..end])
                .map_err(|e| TrainError::Data(format!("ciphertext {i}: {e}")))?,
        );
        pos = end;
    }
    if pos != bytes.len() {
        return bad(format!("{} trailing bytes", bytes.len() - pos));
    }
    Ok(out)
}
