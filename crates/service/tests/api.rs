//! The API against bad input, on loopback: every case gets the right 4xx JSON error and the
//! server keeps serving. (Uploads of real bundles, training, crashes: the CLI's tests.)
#![allow(clippy::unwrap_used)]

use std::path::PathBuf;
use std::time::Duration;
use volley_service::auth::{Tokens, new_token};
use volley_service::client::Client;
use volley_service::server::{ServeConfig, Tls, start};
use volley_service::state::Limits;
use volley_service::store::FileDecl;

struct TestServer {
    base: String,
    cert: Option<PathBuf>,
    alice: String,
    bob: String,
    _dir: tempfile::TempDir,
    _runtime: tokio::runtime::Runtime,
}

fn server(tls: bool) -> TestServer {
    server_queueing(tls, 1000)
}

fn server_queueing(tls: bool, max_queued: usize) -> TestServer {
    let dir = tempfile::tempdir().unwrap();
    let (alice, a_line) = new_token("alice").unwrap();
    let (bob, b_line) = new_token("bob").unwrap();
    let tokens = Tokens::parse(&format!("{a_line}\n{b_line}\n")).unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let config = ServeConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        data_dir: dir.path().join("data"),
        tokens,
        tls: if tls { Tls::SelfSigned } else { Tls::PlainHttp },
        limits: Limits {
            max_upload: 10 << 20,
            max_json: 64 << 10,
            idle_timeout: Duration::from_secs(5),
            max_queued,
            ..Limits::default()
        },
        threads: 1,
    };
    let server = runtime.block_on(start(config)).unwrap();
    let scheme = if tls { "https" } else { "http" };
    let base = format!("{scheme}://{}", server.addr);
    let cert = server.cert.clone();
    runtime.spawn(server.wait());
    TestServer {
        base,
        cert,
        alice,
        bob,
        _dir: dir,
        _runtime: runtime,
    }
}

/// A raw request: (status, JSON body).
fn raw(
    s: &TestServer,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<Vec<u8>>,
) -> (u16, serde_json::Value) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let url = format!("{}{path}", s.base);
    let mut req = ureq::http::Request::builder().method(method).uri(&url);
    if let Some(t) = token {
        req = req.header("Authorization", format!("Bearer {t}"));
    }
    let resp = match body {
        Some(b) => agent.run(req.body(b).unwrap()),
        None => agent.run(req.body(()).unwrap()),
    }
    .unwrap();
    let status = resp.status().as_u16();
    let bytes = resp.into_body().read_to_vec().unwrap();
    let json = serde_json::from_slice(&bytes).unwrap_or_else(|_| {
        panic!(
            "{method} {path}: not JSON: {}",
            String::from_utf8_lossy(&bytes)
        )
    });
    (status, json)
}

fn assert_error(r: (u16, serde_json::Value), status: u16, code: &str) {
    assert_eq!(r.0, status, "{}", r.1);
    assert_eq!(r.1["error"], code, "{}", r.1);
    assert!(r.1["message"].as_str().is_some_and(|m| !m.is_empty()));
}

fn healthy(s: &TestServer) {
    let r = raw(s, "GET", "/v1/health", None, None);
    assert_eq!((r.0, &r.1["ok"]), (200, &serde_json::json!(true)));
}

fn declare(s: &TestServer, token: &str, files: serde_json::Value) -> (u16, serde_json::Value) {
    raw(
        s,
        "POST",
        "/v1/uploads",
        Some(token),
        Some(serde_json::to_vec(&serde_json::json!({ "files": files })).unwrap()),
    )
}

#[test]
fn tokens_tenants_and_malformed_requests() {
    let s = server(false);
    // Wrong or missing token.
    assert_error(raw(&s, "GET", "/v1/jobs", None, None), 401, "unauthorized");
    assert_error(
        raw(&s, "GET", "/v1/jobs", Some("vly_nope"), None),
        401,
        "unauthorized",
    );
    healthy(&s);
    // Malformed JSON, unknown fields, a JSON body over the limit.
    assert_error(
        raw(
            &s,
            "POST",
            "/v1/uploads",
            Some(&s.alice),
            Some(b"{\"files\": [".to_vec()),
        ),
        400,
        "bad_request",
    );
    assert_error(
        raw(
            &s,
            "POST",
            "/v1/uploads",
            Some(&s.alice),
            Some(b"{\"files\": [], \"x\": 1}".to_vec()),
        ),
        400,
        "bad_request",
    );
    let big = format!(
        "{{\"files\": [{{\"path\": \"{}\", \"bytes\": 1}}]}}",
        "a".repeat(100 << 10)
    );
    assert_error(
        raw(
            &s,
            "POST",
            "/v1/uploads",
            Some(&s.alice),
            Some(big.into_bytes()),
        ),
        413,
        "too_large",
    );
    // An upload declaring more than the server takes.
    assert_error(
        declare(
            &s,
            &s.alice,
            serde_json::json!([{"path": "keys.bin", "bytes": 11u64 << 20}]),
        ),
        413,
        "too_large",
    );
    // Unknown routes and methods are JSON errors too.
    assert_error(
        raw(&s, "GET", "/v1/nothing", Some(&s.alice), None),
        404,
        "not_found",
    );
    assert_error(
        raw(&s, "DELETE", "/v1/jobs", Some(&s.alice), None),
        405,
        "method_not_allowed",
    );
    // Another tenant's upload is not found; a job on it cannot be made.
    let (st, u) = declare(
        &s,
        &s.alice,
        serde_json::json!([{"path": "keys.bin", "bytes": 10}]),
    );
    assert_eq!(st, 201, "{u}");
    let id = u["id"].as_str().unwrap();
    assert_error(
        raw(&s, "GET", &format!("/v1/uploads/{id}"), Some(&s.bob), None),
        404,
        "not_found",
    );
    assert_error(
        raw(
            &s,
            "PUT",
            &format!("/v1/uploads/{id}/files/keys.bin?offset=0"),
            Some(&s.bob),
            Some(vec![0; 10]),
        ),
        404,
        "not_found",
    );
    assert_error(
        raw(
            &s,
            "POST",
            "/v1/jobs",
            Some(&s.bob),
            Some(format!("{{\"upload\": \"{id}\"}}").into_bytes()),
        ),
        404,
        "not_found",
    );
    // Alice's own upload is not ready: no job yet.
    assert_error(
        raw(
            &s,
            "POST",
            "/v1/jobs",
            Some(&s.alice),
            Some(format!("{{\"upload\": \"{id}\"}}").into_bytes()),
        ),
        409,
        "conflict",
    );
    // Ids that are not ids never reach the store or a path.
    assert_error(
        raw(&s, "GET", "/v1/jobs/..%2F..%2Fetc", Some(&s.alice), None),
        404,
        "not_found",
    );
    assert_error(
        raw(&s, "GET", "/v1/jobs/0123", Some(&s.alice), None),
        404,
        "not_found",
    );
    healthy(&s);
}

#[test]
fn a_full_queue_refuses_new_jobs() {
    let s = server_queueing(false, 0);
    let body = br#"{"upload": "0123456789abcdef0123456789abcdef"}"#.to_vec();
    assert_error(
        raw(&s, "POST", "/v1/jobs", Some(&s.alice), Some(body)),
        429,
        "queue_full",
    );
    healthy(&s);
}

#[test]
fn path_traversal_names_are_refused() {
    let s = server(false);
    for bad in [
        "../x",
        "a/../../b",
        "/etc/passwd",
        "a/b/c",
        ".hidden",
        "x.part",
        "a\\b",
    ] {
        assert_error(
            declare(&s, &s.alice, serde_json::json!([{"path": bad, "bytes": 1}])),
            400,
            "bad_request",
        );
    }
    let (_, u) = declare(
        &s,
        &s.alice,
        serde_json::json!([{"path": "keys.bin", "bytes": 4}]),
    );
    let id = u["id"].as_str().unwrap();
    for bad in ["..%2F..%2Fkeys.bin", "%2E%2E/keys.bin", "sub/..%2F..%2Fx"] {
        let r = raw(
            &s,
            "PUT",
            &format!("/v1/uploads/{id}/files/{bad}?offset=0"),
            Some(&s.alice),
            Some(vec![1; 4]),
        );
        assert!(matches!(r.0, 400 | 404), "{bad}: {r:?}");
        assert!(r.1["error"].is_string());
    }
    // Nothing was written outside the upload (the data directory holds only its own).
    healthy(&s);
}

#[test]
fn truncated_uploads_resume_and_secret_keys_are_refused() {
    let s = server(true);
    let client = Client::new(&s.base, &s.alice, s.cert.as_deref()).unwrap();
    assert_eq!(client.health().unwrap()["ok"], true);
    let files = [
        FileDecl {
            path: "keys.bin".into(),
            bytes: 1000,
        },
        FileDecl {
            path: "batches/batch-000000.cts".into(),
            bytes: 64,
        },
    ];
    let u = client.create_upload(&files).unwrap();
    assert_eq!(u.files.len(), 2);
    let dir = tempfile::tempdir().unwrap();
    // Half a file, as a broken transfer leaves it.
    let half = dir.path().join("half");
    std::fs::write(&half, vec![7u8; 400]).unwrap();
    let v = client.put_file(&u.id, "keys.bin", &half, 0).unwrap();
    assert_eq!((v.received, v.bytes), (400, 1000));
    // Completing now: incomplete, nothing lost.
    match client.complete_upload(&u.id) {
        Err(volley_service::ServiceError::Api {
            status: 409, code, ..
        }) => assert_eq!(code, "incomplete"),
        other => panic!("{other:?}"),
    }
    // Sending from a wrong offset: told where to resume.
    let whole = dir.path().join("whole");
    std::fs::write(&whole, vec![7u8; 1000]).unwrap();
    match client.put_file(&u.id, "keys.bin", &whole, 0) {
        Err(volley_service::ServiceError::Api {
            status: 409,
            code,
            body,
            ..
        }) => {
            assert_eq!(code, "offset_mismatch");
            assert_eq!(body["received"], 400);
        }
        other => panic!("{other:?}"),
    }
    let v = client.put_file(&u.id, "keys.bin", &whole, 400).unwrap();
    assert_eq!((v.received, v.bytes), (1000, 1000));
    assert_eq!(client.upload(&u.id).unwrap().received_bytes, 1000);
    // More bytes than declared: refused, and the bytes before stay.
    let long = dir.path().join("long");
    std::fs::write(&long, vec![1u8; 100]).unwrap();
    match client.put_file(&u.id, "batches/batch-000000.cts", &long, 0) {
        Err(volley_service::ServiceError::Api { status: 413, .. }) => {}
        other => panic!("{other:?}"),
    }
    assert_eq!(client.upload(&u.id).unwrap().received_bytes, 1000);
    // A secret key sent as an upload object: refused, its bytes deleted.
    let mut sk = b"VLCK".to_vec();
    sk.extend_from_slice(&1u16.to_le_bytes());
    sk.push(9);
    sk.extend_from_slice(&[0u8; 32]);
    sk.resize(64, 3);
    let skf = dir.path().join("secret.key");
    std::fs::write(&skf, &sk).unwrap();
    match client.put_file(&u.id, "batches/batch-000000.cts", &skf, 0) {
        Err(volley_service::ServiceError::Api {
            status: 422, code, ..
        }) => assert_eq!(code, "secret_key"),
        other => panic!("{other:?}"),
    }
    let after = client.upload(&u.id).unwrap();
    assert_eq!(
        after.files[1].received, 0,
        "the secret key's bytes are gone"
    );
    // Garbage that is complete is still not a bundle: invalid, with the reason.
    let junk = dir.path().join("junk");
    std::fs::write(&junk, vec![5u8; 64]).unwrap();
    client
        .put_file(&u.id, "batches/batch-000000.cts", &junk, 0)
        .unwrap();
    match client.complete_upload(&u.id) {
        Err(volley_service::ServiceError::Api {
            status: 422,
            code,
            message,
            ..
        }) => {
            assert_eq!(code, "invalid_upload");
            assert!(message.contains("manifest"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    client.delete_upload(&u.id).unwrap();
    assert!(client.upload(&u.id).is_err());
    assert_eq!(client.health().unwrap()["ok"], true);
}

#[test]
fn the_api_description_names_every_route() {
    let s = server(false);
    let (st, doc) = raw(&s, "GET", "/openapi.json", None, None);
    assert_eq!(st, 200);
    let paths = doc["paths"].as_object().unwrap();
    for p in [
        "/v1/uploads",
        "/v1/uploads/{id}",
        "/v1/uploads/{id}/files/{path}",
        "/v1/uploads/{id}/complete",
        "/v1/jobs",
        "/v1/jobs/{id}",
        "/v1/jobs/{id}/events",
        "/v1/jobs/{id}/cancel",
        "/v1/jobs/{id}/model",
        "/v1/jobs/{id}/model/{path}",
    ] {
        assert!(paths.contains_key(p), "{p} missing from the description");
    }
    assert!(doc["components"]["schemas"]["TrainSpec"].is_object());
}
