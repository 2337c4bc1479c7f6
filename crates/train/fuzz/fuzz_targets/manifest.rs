#![no_main]
use libfuzzer_sys::fuzz_target;
use volley_train::bundle::{Manifest, model_ciphertexts};

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = serde_json::from_slice::<Manifest>(data) {
        if m.validate(volley_train_fuzz::params()).is_ok() {
            // Validated shapes are small enough to size things by.
            let g = m.geometry;
            assert!(g.slots == volley_train_fuzz::params().max_slots());
            assert!(g.row_cts <= g.n && g.d <= g.d_hat);
            let _ = model_ciphertexts(m.schedule, &g);
            let _ = m.ciphertext_count();
            if let Some(spec) = m.batches {
                // Mini-batches: a bounded number, each no larger than the geometry's rows.
                let count = spec.count();
                assert!(count >= 1 && count <= volley_train::batches::MAX_BATCHES);
                for i in [0, count - 1] {
                    assert!(m.batch_ciphertexts(i) <= 3 * g.row_cts);
                }
                assert_eq!(m.batch_ciphertexts(count), 0);
            }
        }
    }
});
