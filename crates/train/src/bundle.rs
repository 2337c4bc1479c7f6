//! What crosses the wire: the client's upload (ciphertexts + public evaluation keys, never a
//! secret) and the server's encrypted model, each with a JSON manifest.

use crate::batches::{BatchSource, BatchSpec};
use crate::layout::{Geometry, Schedule};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use volley_ckks::{Ciphertext, EncapsulationKeys, EvaluationKeys, Params, ParamsLiteral};

/// Version of the bundle layout.
pub const BUNDLE_VERSION: u32 = 2;

/// The description of an upload: enough for the server to train and for anyone to check
/// what was sent.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// Bundle format version.
    pub version: u32,
    /// Parameter name (preset or generated).
    pub params_name: String,
    /// The parameter literal.
    pub params: ParamsLiteral,
    /// SHA-256 fingerprint of the parameters (hex).
    pub fingerprint: String,
    /// Identifier of the client key the upload was encrypted under.
    pub key_id: String,
    /// Matrix-product schedule the keys were generated for.
    pub schedule: Schedule,
    /// Shapes.
    pub geometry: Geometry,
    /// Iterations the parameters and keys were made for.
    pub iterations: usize,
    /// True when the server refreshes the weights by bootstrapping (the bundle then carries
    /// encapsulation keys and the bootstrapping rotation keys).
    pub bootstrapping: bool,
    /// Ciphertext counts per group ("x", "xb", "y", "w0", "b").
    pub ciphertexts: std::collections::BTreeMap<String, usize>,
    /// Serialized byte sizes per group, and "keys".
    pub bytes: std::collections::BTreeMap<String, u64>,
    /// With mini-batches ([`crate::batches`]): how the rows are split. The geometry's `n`
    /// is then the rows of one batch, and X, X diag(b) and Y come as one file per batch
    /// instead of the "x", "xb" and "y" groups. Absent in full-batch uploads.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batches: Option<BatchSpec>,
}

impl Manifest {
    /// Checks every field against `params` before anything is sized by it (the server gets
    /// the manifest from the client, the client gets it back from the server): the format
    /// version, the fingerprint and literal of `params`, the geometry against the one n, c
    /// and d give on these parameters (so `slots` is N/2 and every derived shape follows), the
    /// ciphertext counts against the geometry, and at least one iteration.
    pub fn validate(&self, params: &Params) -> crate::Result<()> {
        let bad = |msg: String| Err(crate::TrainError::Mismatch(format!("manifest: {msg}")));
        if self.version != BUNDLE_VERSION {
            return bad(format!(
                "format version {} (this build reads {BUNDLE_VERSION})",
                self.version
            ));
        }
        if self.fingerprint != params.fingerprint_hex() || &self.params != params.literal() {
            return bad("made for other parameters than its params.bin".into());
        }
        if self.iterations == 0 {
            return bad("zero iterations".into());
        }
        let g = &self.geometry;
        let want = Geometry::new(self.schedule, g.n, g.c, g.d, params.max_slots())
            .map_err(|e| crate::TrainError::Mismatch(format!("manifest: geometry: {e}")))?;
        if want != *g {
            return bad(format!(
                "geometry {g:?} is not what n = {}, c = {} and d = {} give on these parameters ({want:?})",
                g.n, g.c, g.d
            ));
        }
        if let Some(spec) = &self.batches {
            spec.validate()
                .map_err(|e| crate::TrainError::Mismatch(format!("manifest: batches: {e}")))?;
            if self.schedule != Schedule::Diagonal || spec.batch_rows != g.n {
                return bad(format!(
                    "batches of {} rows need the diagonal schedule and a geometry of that many rows ({} schedule, {} rows)",
                    spec.batch_rows,
                    self.schedule.name(),
                    g.n
                ));
            }
        }
        let counts = self.expected_counts();
        if self.ciphertexts != counts {
            return bad(format!(
                "ciphertext counts {:?}, the geometry needs {counts:?}",
                self.ciphertexts
            ));
        }
        Ok(())
    }

    /// The ciphertext groups this manifest's shapes need (see [`expected_counts`]; with
    /// mini-batches only the initial weights, the rows are in the batch files).
    pub fn expected_counts(&self) -> std::collections::BTreeMap<String, usize> {
        let mut counts = expected_counts(self.schedule, &self.geometry);
        if self.batches.is_some() {
            counts.retain(|name, _| name == "w0");
        }
        counts
    }

    /// Ciphertexts of batch `i` (mini-batch uploads): X, X diag(b) and Y of each of its row
    /// ciphertexts; 0 for a batch that does not exist.
    pub fn batch_ciphertexts(&self, i: usize) -> usize {
        self.batches.filter(|s| i < s.count()).map_or(0, |s| {
            3 * s.range(i).len().div_ceil(self.geometry.rows_per_ct)
        })
    }

    /// Total ciphertexts.
    pub fn ciphertext_count(&self) -> usize {
        // All batches but the last are full.
        let batches = self.batches.map_or(0, |s| {
            let last = s.count().saturating_sub(1);
            last * self.batch_ciphertexts(0) + self.batch_ciphertexts(last)
        });
        self.ciphertexts.values().sum::<usize>() + batches
    }

    /// Total bytes (ciphertexts and keys).
    pub fn total_bytes(&self) -> u64 {
        self.bytes.values().sum()
    }
}

/// The ciphertext groups of an upload and their sizes for a schedule and geometry.
pub fn expected_counts(
    schedule: Schedule,
    g: &Geometry,
) -> std::collections::BTreeMap<String, usize> {
    let mut m = std::collections::BTreeMap::new();
    m.insert("x".to_string(), g.row_cts);
    m.insert("y".to_string(), g.row_cts);
    match schedule {
        Schedule::Diagonal => {
            m.insert("xb".to_string(), g.row_cts);
            m.insert("w0".to_string(), g.diagonals);
        }
        Schedule::Paper => {
            m.insert("b".to_string(), 1);
            m.insert("w0".to_string(), 1);
        }
    }
    m
}

/// Weight ciphertexts of a model: the diagonals, or one row-packed ciphertext.
pub fn model_ciphertexts(schedule: Schedule, g: &Geometry) -> usize {
    match schedule {
        Schedule::Diagonal => g.diagonals,
        Schedule::Paper => 1,
    }
}

/// The client's upload.
#[derive(Clone, Debug)]
pub struct UploadBundle {
    /// Manifest.
    pub manifest: Manifest,
    /// Parameters (rebuilt from the manifest's literal and checked against its fingerprint).
    pub params: Arc<Params>,
    /// Relinearisation, rotation and conjugation keys (shared with the server's evaluator,
    /// not copied: they are gigabytes with bootstrapping).
    pub keys: Arc<EvaluationKeys>,
    /// Bootstrapping's sparse-secret encapsulation keys, with bootstrapping.
    pub encapsulation: Option<EncapsulationKeys>,
    /// Ciphertext groups: "x" (rows of X), "xb" (X diag(b), diagonal schedule), "y" (labels),
    /// "w0" (initial weights), "b" (preconditioner rows, paper schedule).
    pub groups: std::collections::BTreeMap<String, Vec<Ciphertext>>,
    /// With mini-batches: where the batches are read from, one at a time.
    pub batches: Option<Arc<dyn BatchSource>>,
}

impl UploadBundle {
    /// The ciphertext group `name`, which must hold exactly `count` ciphertexts.
    pub fn group(&self, name: &str, count: usize) -> crate::Result<&[Ciphertext]> {
        let g = self.groups.get(name).map(Vec::as_slice).ok_or_else(|| {
            crate::TrainError::Mismatch(format!("the upload has no {name:?} ciphertexts"))
        })?;
        if g.len() != count {
            return Err(crate::TrainError::Mismatch(format!(
                "the upload's {name:?} group has {} ciphertexts, its manifest's shapes need {count}",
                g.len()
            )));
        }
        Ok(g)
    }
}

/// The encrypted result of training.
#[derive(Clone, Debug)]
pub struct EncryptedModel {
    /// The upload's manifest (shapes, schedule, fingerprint).
    pub manifest: Manifest,
    /// Weight ciphertexts: n_o diagonals (diagonal schedule) or one row-packed ciphertext.
    pub weights: Vec<Ciphertext>,
}
