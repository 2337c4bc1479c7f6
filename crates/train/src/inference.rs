//! Encrypted inference: the client encrypts feature rows (a [`Query`]), the server scores
//! them with the encrypted model and the upload's public keys ([`score`]: nothing is
//! decrypted there), the client decrypts the scores (`Client::decrypt_scores`).
//!
//! The computation is the forward half of a training iteration in the diagonal layout:
//! `Z = sum_t D_t (.) rot(X_q, -t)` (the model's n_o diagonals, the query rows rotated by
//! one hoisted decomposition per ciphertext), one relinearisation and rescale, then the
//! fold over columns `j = k (mod n_o)`, which leaves row i's score of class k at slot
//! `i d_hat + k`. Depth 1: the query is encrypted at level 1 (the smallest ciphertexts, and
//! the cheapest key switches), the model is dropped to it, and the scores come back at
//! level 0.

use crate::bundle::{EncryptedModel, Manifest, UploadBundle, model_ciphertexts};
use crate::error::{Result, TrainError};
use crate::layout::{Geometry, Schedule};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use volley_ckks::{Ciphertext, Evaluator};

/// Level the query is encrypted at (see the module documentation).
pub const QUERY_LEVEL: usize = 1;

/// What a query is: whose key, which shapes, how many rows.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct QueryManifest {
    /// Key the query (and the model) is encrypted under.
    pub key_id: String,
    /// Parameter fingerprint (hex).
    pub fingerprint: String,
    /// The query's shapes: the model's c, d, d_hat and slots, its own n and row count.
    pub geometry: Geometry,
}

impl QueryManifest {
    /// Checks the query against the upload the model was trained on: same key and
    /// parameters, the diagonal schedule, the same columns, classes and packing, and a
    /// geometry that is the one its row count gives (so nothing is sized by an unchecked
    /// field).
    pub fn validate(&self, upload: &Manifest) -> Result<()> {
        let bad = |msg: String| Err(TrainError::Mismatch(format!("query: {msg}")));
        if self.key_id != upload.key_id || self.fingerprint != upload.fingerprint {
            return bad("encrypted under another key or other parameters than the model".into());
        }
        if upload.schedule != Schedule::Diagonal {
            return bad("encrypted inference needs a model of the diagonal schedule".into());
        }
        let u = upload.geometry;
        let q = self.geometry;
        let want = Geometry::new(Schedule::Diagonal, q.n, u.c, u.d, u.slots)?;
        if q != want || want.d_hat != u.d_hat || want.rows_per_ct != u.rows_per_ct {
            return bad(format!(
                "shapes {q:?} are not those of {} rows for the model's {u:?}",
                q.n
            ));
        }
        Ok(())
    }
}

/// An encrypted query: rows packed like the training rows (bias first, padded to d_hat).
#[derive(Clone, Debug)]
pub struct Query {
    /// Shapes and key.
    pub manifest: QueryManifest,
    /// Row ciphertexts.
    pub x: Vec<Ciphertext>,
}

/// The rotation steps [`score`] uses for the model of `upload` (the other keys of the
/// upload need not be loaded): the row rotations by `-t`, `t < n_o`, and the column fold.
pub fn rotation_steps(upload: &Manifest) -> Vec<i64> {
    let g = upload.geometry;
    let n_o = g.diagonals;
    let mut steps: Vec<i64> = (1..n_o as i64).map(|t| -t).collect();
    steps.extend(Evaluator::inner_sum_steps(n_o as i64, g.d_hat / n_o));
    steps
}

/// Checks a ciphertext group from the other party: count, slots, degree and a level of at
/// least `min_level`.
pub(crate) fn check_group(
    what: &str,
    cts: &[Ciphertext],
    count: usize,
    slots: usize,
    min_level: usize,
) -> Result<()> {
    if cts.len() != count {
        return Err(TrainError::Mismatch(format!(
            "{what}: {} ciphertexts, the shapes need {count}",
            cts.len()
        )));
    }
    if let Some(ct) = cts
        .iter()
        .find(|ct| ct.slots() != slots || ct.degree() != 1 || ct.level() < min_level)
    {
        return Err(TrainError::Mismatch(format!(
            "{what}: a ciphertext of {} slots, degree {} at level {} (need {slots} slots, degree 1, level >= {min_level})",
            ct.slots(),
            ct.degree(),
            ct.level()
        )));
    }
    Ok(())
}

/// The server's side: scores every query row with the encrypted model, with the upload's
/// public keys only. Refuses a model or query of another upload, wrong shapes or counts,
/// and a model with no level left (leveled runs sized exactly for their iterations; the
/// model of a run with bootstrapping always keeps one). `progress(done, total)` after each
/// query ciphertext.
pub fn score(
    bundle: &UploadBundle,
    model: &EncryptedModel,
    query: &Query,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<Vec<Ciphertext>> {
    let mut out = Vec::with_capacity(query.x.len());
    score_stream(
        bundle,
        model,
        &query.manifest,
        query.x.iter().cloned().map(Ok),
        &mut |z| {
            out.push(z);
            Ok(())
        },
        progress,
    )?;
    Ok(out)
}

/// Query ciphertexts scored at once: enough to keep every core busy between the parallel
/// parts of each, few enough that memory does not grow with the query (n_o rotated copies
/// per ciphertext in flight).
const SCORE_CHUNK: usize = 4;

/// [`score`] for a query read one ciphertext at a time (e.g. a
/// [`crate::container::CiphertextReader`]) with its scores handed to `out` in order as they
/// are made: memory is the keys, the model and a few ciphertexts, whatever the row count.
/// The query must hold exactly the ciphertexts its manifest's shapes give.
pub fn score_stream(
    bundle: &UploadBundle,
    model: &EncryptedModel,
    manifest: &QueryManifest,
    query: impl Iterator<Item = Result<Ciphertext>>,
    out: &mut dyn FnMut(Ciphertext) -> Result<()>,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<()> {
    let upload = &bundle.manifest;
    upload.validate(&bundle.params)?;
    if model.manifest != *upload {
        return Err(TrainError::Mismatch(
            "the model was not trained on this upload (its manifest differs)".into(),
        ));
    }
    manifest.validate(upload)?;
    let g = upload.geometry;
    let n_o = g.diagonals;
    check_group(
        "model",
        &model.weights,
        model_ciphertexts(upload.schedule, &g),
        g.slots,
        0,
    )?;
    if let Some(ct) = model.weights.iter().find(|ct| ct.level() < QUERY_LEVEL) {
        return Err(TrainError::Capacity(format!(
            "the model is at level {}: encrypted inference needs level {QUERY_LEVEL} (train with bootstrapping, more than 4 iterations, or generate the keys with --inference)",
            ct.level()
        )));
    }
    let total = manifest.geometry.row_cts;
    let eval = Evaluator::new(bundle.params.clone(), bundle.keys.clone());
    let w: Vec<Ciphertext> = model
        .weights
        .iter()
        .map(|ct| eval.drop_to_level(ct, QUERY_LEVEL))
        .collect::<volley_ckks::Result<_>>()?;
    let steps: Vec<i64> = (0..n_o as i64).map(|t| -t).collect();
    let score_one = |x: &Ciphertext| -> Result<Ciphertext> {
        let x = eval.drop_to_level(x, QUERY_LEVEL)?;
        let rotated = eval.rotate_hoisted(&x, &steps)?;
        let mut acc: Option<Ciphertext> = None;
        for (d, xr) in w.iter().zip(&rotated) {
            let p = eval.mul_no_relin(d, xr)?;
            match acc.as_mut() {
                Some(a) => eval.add_assign(a, &p)?,
                None => acc = Some(p),
            }
        }
        let mut z = acc.ok_or_else(|| TrainError::Data("a model without diagonals".into()))?;
        eval.relinearize_assign(&mut z)?;
        eval.rescale_assign(&mut z)?;
        Ok(eval.inner_sum(&z, n_o as i64, g.d_hat / n_o)?)
    };
    let mut query = query.peekable();
    let mut done = 0;
    while query.peek().is_some() {
        let chunk: Vec<Ciphertext> = query.by_ref().take(SCORE_CHUNK).collect::<Result<_>>()?;
        if done + chunk.len() > total {
            return Err(TrainError::Mismatch(format!(
                "query: more than the {total} ciphertexts its shapes need"
            )));
        }
        check_group("query", &chunk, chunk.len(), g.slots, QUERY_LEVEL)?;
        let scores: Vec<Ciphertext> = chunk
            .par_iter()
            .with_max_len(1)
            .map(score_one)
            .collect::<Result<_>>()?;
        for z in scores {
            out(z)?;
        }
        done += chunk.len();
        progress(done, total);
    }
    if done != total {
        return Err(TrainError::Mismatch(format!(
            "query: {done} ciphertexts, the shapes need {total}"
        )));
    }
    Ok(())
}
