#![no_main]
//! A file name from a request path and an uploaded file's first bytes: the name check and
//! the secret-key recognition never panic, and the recognition agrees with the header.
use libfuzzer_sys::fuzz_target;
use volley_service::uploads::{check_path, is_secret_key};

fuzz_target!(|data: &[u8]| {
    let _ = check_path(&String::from_utf8_lossy(data));
    if is_secret_key(data) {
        assert!(data.starts_with(b"VLCK") && data[6] == 9);
    }
});
