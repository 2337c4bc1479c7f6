#![no_main]
use libfuzzer_sys::fuzz_target;
use volley_train::checkpoint::Checkpoint;
use volley_train_fuzz::{ITERATIONS, manifest, params};

fuzz_target!(|data: &[u8]| {
    let m = manifest();
    if let Ok(c) = Checkpoint::from_bytes(data, m, params(), ITERATIONS) {
        // What is accepted is a state of this run that writes and reads back the same.
        assert!(c.iteration >= 1 && c.iteration < ITERATIONS);
        assert_eq!(c.v.len(), m.geometry.diagonals);
        let mut again = Vec::new();
        c.as_ref(ITERATIONS).write_to(m, &mut again).unwrap();
        let back = Checkpoint::from_bytes(&again, m, params(), ITERATIONS).unwrap();
        assert_eq!(back.iteration, c.iteration);
    }
});
