#![no_main]
use libfuzzer_sys::fuzz_target;
use volley_train::inference::QueryManifest;

fuzz_target!(|data: &[u8]| {
    if let Ok(q) = serde_json::from_slice::<QueryManifest>(data) {
        if q.validate(volley_train_fuzz::manifest()).is_ok() {
            let g = q.geometry;
            assert_eq!(g.d_hat, volley_train_fuzz::manifest().geometry.d_hat);
            assert!(g.row_cts <= g.n.max(1));
        }
    }
});
