//! The status page in a real headless browser (Debian's chromium through chromedriver):
//! after entering a token it renders that tenant's jobs, and only those. The screenshot is
//! kept in the test run's temporary directory (`status-page.png`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use fantoccini::{ClientBuilder, Locator};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use volley_service::auth::{Tokens, new_token};
use volley_service::server::{ServeConfig, Tls, start};
use volley_service::state::{AppState, Limits};
use volley_service::store::{Job, Store, job_state, now};

fn job(id: u8, tenant: &str, state: &str, iteration: usize, error: Option<&str>) -> Job {
    Job {
        id: format!("{id:02x}").repeat(16),
        tenant: tenant.into(),
        upload: "ab".repeat(16),
        state: state.into(),
        spec: Default::default(),
        created: now() - f64::from(id),
        started: Some(now() - 60.0),
        finished: Some(now()),
        iteration,
        iterations: 4,
        seconds: 12.5 * f64::from(id),
        attempts: 1,
        error: error.map(String::from),
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs chromium and chromium-driver (installed by .ci/run)"]
async fn status_page_renders_the_tenants_jobs() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    {
        let store = Store::open(&AppState::db_path(&data)).unwrap();
        store
            .insert_job(&job(1, "alice", job_state::DONE, 4, None))
            .unwrap();
        store
            .insert_job(&job(
                2,
                "alice",
                job_state::FAILED,
                2,
                Some("the upload was deleted"),
            ))
            .unwrap();
        store
            .insert_job(&job(3, "alice", job_state::CANCELLED, 1, None))
            .unwrap();
        store
            .insert_job(&job(4, "bob", job_state::DONE, 4, None))
            .unwrap();
    }
    let (alice, a_line) = new_token("alice").unwrap();
    let (_, b_line) = new_token("bob").unwrap();
    let server = start(ServeConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        data_dir: data,
        tokens: Tokens::parse(&format!("{a_line}\n{b_line}\n")).unwrap(),
        tls: Tls::PlainHttp,
        limits: Limits::default(),
        threads: 1,
    })
    .await
    .unwrap();
    let base = format!("http://{}/", server.addr);

    let port = free_port();
    let mut driver = Command::new("/usr/bin/chromedriver")
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromedriver (Debian's chromium-driver)");
    let profile = dir.path().join("profile");
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        serde_json::json!({
            "binary": "/usr/bin/chromium",
            // Headless and closed to the network: without the background-networking flags
            // chromium keeps calling home, which this machine refuses.
            "args": ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                "--no-first-run", "--disable-background-networking", "--disable-component-update",
                "--disable-sync", "--window-size=1100,700",
                format!("--user-data-dir={}", profile.display())],
        }),
    );
    let webdriver = format!("http://127.0.0.1:{port}");
    let start_at = Instant::now();
    let client = loop {
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        match ClientBuilder::new(connector)
            .capabilities(caps.clone())
            .connect(&webdriver)
            .await
        {
            Ok(c) => break c,
            Err(e) if start_at.elapsed() < Duration::from_secs(30) => {
                let _ = e;
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => panic!("no WebDriver session: {e}"),
        }
    };
    let result = async {
        client.goto(&base).await?;
        // A wrong token: the page says so.
        client
            .find(Locator::Css("#token"))
            .await?
            .send_keys("vly_wrong")
            .await?;
        client
            .find(Locator::Css("#login button"))
            .await?
            .click()
            .await?;
        let error = client
            .wait()
            .at_most(Duration::from_secs(20))
            .for_element(Locator::XPath(
                "//div[@id='error'][contains(., 'unknown token')]",
            ))
            .await?;
        assert!(error.text().await?.contains("unknown token"));
        // Alice's token: her three jobs, not Bob's.
        let input = client.find(Locator::Css("#token")).await?;
        input.clear().await?;
        input.send_keys(&alice).await?;
        client
            .find(Locator::Css("#login button"))
            .await?
            .click()
            .await?;
        client
            .wait()
            .at_most(Duration::from_secs(20))
            .for_element(Locator::Css("tr[data-job]"))
            .await?;
        let rows = client.find_all(Locator::Css("tr[data-job]")).await?;
        let mut seen = Vec::new();
        for r in &rows {
            seen.push((
                r.attr("data-job").await?.unwrap_or_default(),
                r.attr("data-state").await?.unwrap_or_default(),
                r.text().await?,
            ));
        }
        let png = client.screenshot().await?;
        Ok::<_, fantoccini::error::CmdError>((seen, png))
    }
    .await;
    let _ = client.close().await;
    let _ = driver.kill();
    let _ = driver.wait();
    let (seen, png) = result.unwrap();
    let shot = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("status-page.png");
    std::fs::write(&shot, &png).unwrap();
    assert!(png.starts_with(b"\x89PNG"), "a PNG screenshot");
    eprintln!("screenshot: {}", shot.display());
    let ids: Vec<&str> = seen.iter().map(|s| s.0.as_str()).collect();
    assert_eq!(
        ids,
        ["01".repeat(16), "02".repeat(16), "03".repeat(16)],
        "{seen:?}"
    );
    let states: Vec<&str> = seen.iter().map(|s| s.1.as_str()).collect();
    assert_eq!(states, ["done", "failed", "cancelled"]);
    assert!(seen[0].2.contains("4 / 4"), "{:?}", seen[0].2);
    assert!(
        seen[1].2.contains("the upload was deleted"),
        "{:?}",
        seen[1].2
    );
    assert!(
        !seen.iter().any(|s| s.0 == "04".repeat(16)),
        "Bob's job is not Alice's"
    );
}
