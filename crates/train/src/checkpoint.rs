//! Checkpoints of an encrypted training run (diagonal schedule), so that a run killed at any
//! moment continues from its last checkpoint and ends with the same model, bit for bit.
//!
//! The server's whole state after iteration `t` is `(t, V_t, V_{t-1})`: everything else
//! (X rotated, the bootstrapper's matrices, the step constants) is recomputed from the upload,
//! and every server operation is deterministic (exact modular arithmetic, rescaling and key
//! switching have no randomness), so continuing from the state gives exactly the ciphertexts
//! an uninterrupted run would have had.
//!
//! File: magic `VLYCKP01`, u32 length and a JSON header ([`CheckpointHeader`]: what upload
//! and run the state belongs to), then a ciphertext container ([`crate::container`]) of
//! `2 n_o` ciphertexts, V then V_{t-1}. Reading checks the header against the upload and
//! the run before it reads any ciphertext, the ciphertexts against the parameters, and the
//! counts, slots and levels against the geometry.

use crate::bundle::Manifest;
use crate::container::{ciphertexts_from_bytes, write_ciphertexts};
use crate::error::{Result, TrainError};
use crate::layout::Geometry;
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::sync::Arc;
use volley_ckks::{Ciphertext, Params};

/// Magic of a checkpoint file.
pub const CHECKPOINT_MAGIC: &[u8; 8] = b"VLYCKP01";

/// Largest header accepted (it is a few hundred bytes).
const MAX_HEADER: usize = 64 * 1024;

/// What a checkpoint belongs to.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CheckpointHeader {
    /// Key the upload was encrypted under.
    pub key_id: String,
    /// Parameter fingerprint (hex).
    pub fingerprint: String,
    /// The upload's shapes.
    pub geometry: Geometry,
    /// Iterations of the run (the step constants depend on them).
    pub iterations: usize,
    /// Iterations done.
    pub iteration: usize,
    /// Mini-batch runs: the digest of the batches' order ([`crate::batches::Epochs::digest`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order: Option<u64>,
}

/// The trainer's state after [`Self::iteration`] iterations.
#[derive(Clone, Debug)]
pub struct Checkpoint {
    /// Iterations done (at least 1, fewer than the run's).
    pub iteration: usize,
    /// V_t: the n_o diagonals.
    pub v: Vec<Ciphertext>,
    /// V_{t-1}.
    pub v_prev: Vec<Ciphertext>,
    /// Mini-batch runs: the digest of the order of the batches the run follows.
    pub order: Option<u64>,
}

/// A checkpoint being written: references to the trainer's state (no copy of it).
#[derive(Clone, Copy, Debug)]
pub struct CheckpointRef<'a> {
    /// Iterations of the run.
    pub iterations: usize,
    /// Iterations done.
    pub iteration: usize,
    /// V_t.
    pub v: &'a [Ciphertext],
    /// V_{t-1}.
    pub v_prev: &'a [Ciphertext],
    /// Mini-batch runs: the digest of the batches' order.
    pub order: Option<u64>,
}

/// Receives checkpoints as the run makes them (see `server::RunOptions`).
pub type CheckpointSink<'a> = dyn FnMut(CheckpointRef<'_>) -> Result<()> + 'a;

impl CheckpointRef<'_> {
    /// Writes the checkpoint of the run on the upload described by `manifest`.
    pub fn write_to(&self, manifest: &Manifest, w: &mut impl Write) -> std::io::Result<()> {
        let header = CheckpointHeader {
            key_id: manifest.key_id.clone(),
            fingerprint: manifest.fingerprint.clone(),
            geometry: manifest.geometry,
            iterations: self.iterations,
            iteration: self.iteration,
            order: self.order,
        };
        let json = serde_json::to_vec(&header).map_err(std::io::Error::other)?;
        w.write_all(CHECKPOINT_MAGIC)?;
        w.write_all(&(json.len() as u32).to_le_bytes())?;
        w.write_all(&json)?;
        // V then V_{t-1}, as one container (written ciphertext by ciphertext, no copy).
        write_ciphertexts(w, self.v.iter().chain(self.v_prev).collect::<Vec<_>>())
    }
}

impl Checkpoint {
    /// Reads a checkpoint of a run of `iterations` iterations on the upload `manifest` (with
    /// `params`), refusing one of another upload or run, or one whose state does not fit the
    /// geometry.
    pub fn from_bytes(
        bytes: &[u8],
        manifest: &Manifest,
        params: &Arc<Params>,
        iterations: usize,
    ) -> Result<Self> {
        let bad = |msg: String| Err(TrainError::Mismatch(format!("checkpoint: {msg}")));
        if bytes.len() < 12 || &bytes[..8] != CHECKPOINT_MAGIC {
            return bad("not a volley checkpoint (bad magic)".into());
        }
        let len = u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize;
        if len > MAX_HEADER || 12 + len > bytes.len() {
            return bad(format!("header length {len} is out of range"));
        }
        let header: CheckpointHeader = serde_json::from_slice(&bytes[12..12 + len])
            .map_err(|e| TrainError::Mismatch(format!("checkpoint: header: {e}")))?;
        if header.key_id != manifest.key_id
            || header.fingerprint != manifest.fingerprint
            || header.geometry != manifest.geometry
        {
            return bad("made for another upload (key, parameters or shapes differ)".into());
        }
        if header.iterations != iterations {
            return bad(format!(
                "made for a run of {} iterations, this run has {iterations} (the step constants differ)",
                header.iterations
            ));
        }
        if header.iteration == 0 || header.iteration >= iterations {
            return bad(format!(
                "{} iterations done is outside 1..{iterations}",
                header.iteration
            ));
        }
        let n_o = manifest.geometry.diagonals;
        let mut cts = ciphertexts_from_bytes(params, &bytes[12 + len..])
            .map_err(|e| TrainError::Mismatch(format!("checkpoint: {e}")))?;
        if cts.len() != 2 * n_o {
            return bad(format!(
                "{} ciphertexts, the geometry needs 2 x {n_o}",
                cts.len()
            ));
        }
        let v_prev = cts.split_off(n_o);
        let v = cts;
        for (name, group) in [("V", &v), ("V_prev", &v_prev)] {
            let first = &group[0];
            let same = group.iter().all(|ct| {
                ct.level() == first.level()
                    && ct.scale() == first.scale()
                    && ct.slots() == manifest.geometry.slots
                    && ct.degree() == 1
            });
            if !(same && first.scale().is_finite() && first.scale() > 0.0) {
                return bad(format!(
                    "the {name} ciphertexts differ in level, scale, slots or degree"
                ));
            }
        }
        Ok(Self {
            iteration: header.iteration,
            v,
            v_prev,
            order: header.order,
        })
    }

    /// This checkpoint as a reference (to write it again).
    pub fn as_ref(&self, iterations: usize) -> CheckpointRef<'_> {
        CheckpointRef {
            iterations,
            iteration: self.iteration,
            v: &self.v,
            v_prev: &self.v_prev,
            order: self.order,
        }
    }
}
