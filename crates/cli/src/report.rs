//! The demo's JSON report, typed: every field the README and CI name.

use serde::Serialize;
use std::collections::BTreeMap;

/// What `volley demo --report` writes.
#[derive(Clone, Debug, Serialize)]
pub struct DemoReport {
    /// Test accuracy of the decrypted model.
    pub he_test_accuracy: f64,
    /// Test accuracy of the plaintext reference (same algorithm, same iterations).
    pub plain_test_accuracy: f64,
    /// Training accuracy of the decrypted model.
    pub he_train_accuracy: f64,
    /// Training accuracy of the plaintext reference.
    pub plain_train_accuracy: f64,
    /// Fraction of test rows where both models predict the same class.
    pub prediction_agreement: f64,
    /// Largest |W_he - W_plain| over the real columns.
    pub max_abs_weight_error: f64,
    /// Iterations.
    pub iterations: usize,
    /// Training rows.
    pub train_rows: usize,
    /// Test rows.
    pub test_rows: usize,
    /// Classes.
    pub classes: usize,
    /// Schedule name.
    pub schedule: String,
    /// Mean key switches per iteration.
    pub key_switches_per_iteration: u64,
    /// Key switches of each iteration.
    pub key_switches_each_iteration: Vec<u64>,
    /// Key switches of the one-time preparation.
    pub key_switches_precompute: u64,
    /// Key switches of the final weight combination.
    pub key_switches_final: u64,
    /// Ciphertexts in the upload.
    pub ciphertexts_uploaded: usize,
    /// Bytes of the upload (ciphertexts and keys).
    pub upload_bytes: u64,
    /// Bytes per ciphertext group and key file.
    pub upload_bytes_by_group: BTreeMap<String, u64>,
    /// Rotation (and conjugation) keys uploaded.
    pub rotation_keys: usize,
    /// True when the server refreshed its state by bootstrapping.
    pub bootstrapping: bool,
    /// Refreshes (each one bootstrap).
    pub bootstraps: usize,
    /// Slots of each bootstrap (0 without bootstrapping).
    pub bootstrap_slots: usize,
    /// Levels one iteration consumes.
    pub levels_per_iteration: usize,
    /// Client key generation (secret and every server key).
    pub seconds_keygen: f64,
    /// Packing and encryption of the upload.
    pub seconds_encrypt: f64,
    /// The server's whole run (preparation, iterations, refreshes).
    pub seconds_train: f64,
    /// The server's one-time preparation (rotated copies of X).
    pub seconds_train_precompute: f64,
    /// Mean seconds of one iteration (refreshes excluded).
    pub seconds_per_iteration: f64,
    /// Seconds of each iteration.
    pub seconds_each_iteration: Vec<f64>,
    /// Seconds in refreshes.
    pub seconds_bootstrapping: f64,
    /// Of `seconds_bootstrapping`: packing, bootstrapping, unpacking.
    pub seconds_refresh_stages: RefreshSeconds,
    /// Building the bootstrapper once (encoding its matrices).
    pub seconds_bootstrap_setup: f64,
    /// Decryption of the model.
    pub seconds_decrypt: f64,
    /// Features from images, when the demo extracted them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seconds_features: Option<f64>,
    /// The whole command.
    pub seconds_total: f64,
    /// Peak resident memory of the process.
    pub peak_rss_bytes: u64,
    /// Worker threads.
    pub threads: usize,
    /// The parameters.
    pub params: ParamsReport,
    /// Image source, when the demo extracted features.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data: Option<DataReport>,
    /// The learning curve: test accuracy of each decrypted snapshot and of the plaintext
    /// reference after the same iterations.
    pub snapshots: Vec<crate::plot::CurvePoint>,
}

/// Where a refresh's time goes.
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct RefreshSeconds {
    /// Packing the state into one ciphertext.
    pub pack: f64,
    /// The bootstraps.
    pub bootstrap: f64,
    /// Unpacking back into the diagonals.
    pub unpack: f64,
}

/// The parameter set of a run.
#[derive(Clone, Debug, Serialize)]
pub struct ParamsReport {
    /// Name (preset or generated).
    pub preset: String,
    /// log2 N.
    pub log_n: u32,
    /// log2 QP.
    pub log_qp: f64,
    /// Top level L.
    pub levels: usize,
    /// Key-switching digits.
    pub dnum: usize,
    /// The 128-bit bound on log QP for this N (none for N outside the table).
    pub security_bound: Option<u32>,
}

/// Images the demo extracted features from.
#[derive(Clone, Debug, Serialize)]
pub struct DataReport {
    /// Dataset.
    pub dataset: String,
    /// Backbone.
    pub backbone: String,
}

/// What `volley train --report` writes: where the time of an encrypted run went.
#[derive(Clone, Debug, Serialize)]
pub struct TrainReport {
    /// Steps this process ran (iterations; with mini-batches, epochs times batches, less
    /// those before a checkpoint it resumed from).
    pub steps: usize,
    /// Batches per epoch (1 for a full-batch upload).
    pub batches_per_epoch: usize,
    /// Wall-clock seconds of each epoch this process ran (with mini-batches; else of the
    /// whole run), from the end of the previous one: its steps and the refreshes among
    /// them. A resumed run's first entry is the rest of the epoch it resumed in.
    pub seconds_per_epoch: Vec<f64>,
    /// Seconds of each step's arithmetic (without refreshes).
    pub seconds_per_step: Vec<f64>,
    /// Median of `seconds_per_step`.
    pub seconds_per_step_median: f64,
    /// Refreshes by bootstrapping.
    pub bootstraps: usize,
    /// Seconds in refreshes.
    pub seconds_bootstrapping: f64,
    /// Key switches of each step.
    pub key_switches_per_step: Vec<u64>,
    /// The whole command (loading the upload, training, writing the model).
    pub seconds_total: f64,
    /// Peak resident memory of the process.
    pub peak_rss_bytes: u64,
}

impl TrainReport {
    /// The report of a run from its statistics and the wall-clock end of each step this
    /// process ran, with the step's number in the whole run (1-based: epochs are counted
    /// from it, so a resumed run's epochs keep their boundaries).
    pub fn new(
        stats: &volley_train::server::TrainStats,
        step_ends: &[(usize, f64)],
        batches_per_epoch: usize,
        seconds_total: f64,
    ) -> Self {
        let per = batches_per_epoch.max(1);
        let mut seconds_per_epoch = Vec::new();
        let (mut last, mut epoch) = (0.0, None);
        for &(step, end) in step_ends {
            let this = step.saturating_sub(1) / per;
            if epoch == Some(this) {
                if let Some(s) = seconds_per_epoch.last_mut() {
                    *s += end - last;
                }
            } else {
                seconds_per_epoch.push(end - last);
                epoch = Some(this);
            }
            last = end;
        }
        let mut sorted = stats.seconds_per_iteration.clone();
        sorted.sort_by(f64::total_cmp);
        Self {
            steps: stats.seconds_per_iteration.len(),
            batches_per_epoch: per,
            seconds_per_epoch,
            seconds_per_step: stats.seconds_per_iteration.clone(),
            seconds_per_step_median: sorted.get(sorted.len() / 2).copied().unwrap_or(0.0),
            bootstraps: stats.bootstraps,
            seconds_bootstrapping: stats.seconds_bootstrapping,
            key_switches_per_step: stats.key_switches_per_iteration.clone(),
            seconds_total,
            peak_rss_bytes: crate::util::peak_rss_bytes(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Epochs are counted from the steps' numbers in the whole run: a run resumed after step
    /// 3 of 3 x 2 reports the rest of epoch 2 (step 4) and epoch 3 (steps 5 and 6).
    #[test]
    fn epochs_keep_their_boundaries_after_a_resume() {
        let stats = volley_train::server::TrainStats::default();
        let r = TrainReport::new(&stats, &[(4, 1.0), (5, 3.0), (6, 6.0)], 2, 7.0);
        assert_eq!(r.seconds_per_epoch, [1.0, 5.0]);
        let whole = TrainReport::new(&stats, &[(1, 1.0), (2, 2.5), (3, 4.0)], 2, 5.0);
        assert_eq!(whole.seconds_per_epoch, [2.5, 1.5]);
        assert_eq!(
            TrainReport::new(&stats, &[], 2, 0.0).seconds_per_epoch,
            [0.0; 0]
        );
    }
}
