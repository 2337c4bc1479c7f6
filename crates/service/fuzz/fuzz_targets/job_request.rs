#![no_main]
//! `POST /v1/jobs`: the body's JSON, then its options planned against an upload's manifest
//! (full-batch and mini-batch): whatever passes is a bounded run.
use libfuzzer_sys::fuzz_target;
use volley_service::api::CreateJob;
use volley_train::batches::BatchSpec;
use volley_train::job::MAX_ITERATIONS;

fuzz_target!(|data: &[u8]| {
    if let Ok(req) = serde_json::from_slice::<CreateJob>(data) {
        let full = volley_train_fuzz::manifest().clone();
        let mut batched = full.clone();
        batched.batches = BatchSpec::new(12, 4, 0.3).ok();
        for m in [&full, &batched] {
            if let Ok(plan) = req.train.plan(m) {
                assert!(plan.iterations >= 1 && plan.iterations <= MAX_ITERATIONS);
                if let Some(e) = &plan.epochs {
                    assert_eq!(e.epochs() * plan.batches, plan.iterations);
                }
            }
        }
    }
});
