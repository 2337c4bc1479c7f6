#![no_main]
//! `POST /v1/uploads`: the body's JSON, then the declaration's checks. Whatever passes is
//! safe to size a directory by: every name a plain relative path, no duplicates, the total
//! within the limit.
use libfuzzer_sys::fuzz_target;
use volley_service::api::CreateUpload;
use volley_service::state::Limits;
use volley_service::uploads::{check_declaration, check_path, file_paths};

fuzz_target!(|data: &[u8]| {
    let limits = Limits {
        max_files: 64,
        ..Limits::default()
    };
    if let Ok(req) = serde_json::from_slice::<CreateUpload>(data) {
        if let Ok(total) = check_declaration(&req.files, &limits) {
            assert!(total <= limits.max_upload);
            assert!(!req.files.is_empty() && req.files.len() <= limits.max_files);
            let base = std::path::Path::new("/data/uploads/0123");
            for f in &req.files {
                assert!(check_path(&f.path).is_ok());
                let (done, part) = file_paths(base, &f.path);
                // Never outside the upload's directory.
                assert!(done.starts_with(base) && part.starts_with(base));
                // Only plain names: no root, no `.` or `..`, nothing hidden.
                assert!(std::path::Path::new(&f.path).components().all(|c| matches!(
                    c,
                    std::path::Component::Normal(n) if !n.to_string_lossy().starts_with('.')
                )));
            }
        }
    }
});
