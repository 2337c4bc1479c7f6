//! The network service's commands: `serve` and `token` (operator), `submit`, `status`,
//! `fetch` (data owner). Argument parsing and printing around `volley_service`.

use crate::util::{CliError, Ui};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;
use volley_service::ServiceError;
use volley_service::auth::{Tokens, new_token};
use volley_service::client::Client;
use volley_service::server::{ServeConfig, Tls};
use volley_service::state::Limits;
use volley_train::job::TrainSpec;

impl From<ServiceError> for CliError {
    fn from(e: ServiceError) -> Self {
        CliError::Msg(e.to_string())
    }
}

/// `volley serve`.
#[derive(clap::Args, Debug)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8443")]
    pub listen: SocketAddr,
    /// The data directory (job store, uploads, models); created if missing.
    #[arg(long)]
    pub data_dir: PathBuf,
    /// The tokens file: `TENANT SHA256HEX` lines (`volley token` adds one).
    #[arg(long)]
    pub tokens: PathBuf,
    /// TLS certificate chain (PEM).
    #[arg(long, requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// TLS private key (PEM).
    #[arg(long, requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// TLS with a self-signed certificate for localhost kept in DATA/tls/ (clients pass
    /// `--ca-cert DATA/tls/cert.pem`).
    #[arg(long, conflicts_with = "tls_cert")]
    pub tls_self_signed: bool,
    /// Plain HTTP without TLS: for loopback tests only.
    #[arg(long, conflicts_with_all = ["tls_cert", "tls_self_signed"])]
    pub insecure_http: bool,
    /// Largest upload in bytes (all its files).
    #[arg(long, default_value_t = Limits::default().max_upload)]
    pub max_upload: u64,
    /// Jobs training at once; more wait in the queue.
    #[arg(long, default_value_t = 1)]
    pub max_running: usize,
    /// Jobs waiting in the queue (all tenants); more are refused (429) until it drains.
    #[arg(long, default_value_t = Limits::default().max_queued)]
    pub max_queued: usize,
}

/// Runs the server until SIGINT or SIGTERM.
pub fn serve(args: &ServeArgs, threads: usize) -> Result<(), CliError> {
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => Tls::Files {
            cert: cert.clone(),
            key: key.clone(),
        },
        _ if args.tls_self_signed => Tls::SelfSigned,
        _ if args.insecure_http => {
            if !args.listen.ip().is_loopback() {
                return Err(CliError::Msg(
                    "--insecure-http listens on loopback addresses only".into(),
                ));
            }
            Tls::PlainHttp
        }
        _ => {
            return Err(CliError::Msg(
                "TLS is required: --tls-cert and --tls-key, or --tls-self-signed (--insecure-http for loopback tests)".into(),
            ));
        }
    };
    let config = ServeConfig {
        listen: args.listen,
        data_dir: args.data_dir.clone(),
        tokens: Tokens::load(&args.tokens).map_err(CliError::Msg)?,
        tls,
        limits: Limits {
            max_upload: args.max_upload,
            max_running: args.max_running,
            max_queued: args.max_queued,
            ..Limits::default()
        },
        threads,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| CliError::Msg(format!("cannot start the runtime: {e}")))?;
    runtime.block_on(async {
        let server = volley_service::server::start(config).await?;
        let scheme = if args.insecure_http { "http" } else { "https" };
        eprintln!(
            "volley serve: listening on {scheme}://{}{}{}",
            server.addr,
            server
                .cert
                .as_ref()
                .map(|c| format!(" (self-signed: clients pass --ca-cert {})", c.display()))
                .unwrap_or_default(),
            if server.resumed_jobs > 0 {
                format!("; {} interrupted jobs resume", server.resumed_jobs)
            } else {
                String::new()
            }
        );
        let stop = async {
            let mut term =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending::<()>().await } } => {}
            }
        };
        stop.await;
        eprintln!("volley serve: stopping (running jobs resume at the next start)");
        server.shutdown(Duration::from_secs(10)).await;
        Ok::<_, CliError>(())
    })
}

/// `volley token`.
#[derive(clap::Args, Debug)]
pub struct TokenArgs {
    /// The tokens file to add the new token's hash to (created if missing).
    #[arg(long)]
    pub tokens: PathBuf,
    /// The tenant the token admits.
    #[arg(long)]
    pub tenant: String,
}

/// Makes a token, appends its hash to the tokens file and prints the token (once: the file
/// holds only its hash).
pub fn token(args: &TokenArgs) -> Result<(), CliError> {
    let (token, line) = new_token(&args.tenant).map_err(CliError::Msg)?;
    let mut text = std::fs::read_to_string(&args.tokens).unwrap_or_default();
    if !text.is_empty() && !text.ends_with('\n') {
        text.push('\n');
    }
    text.push_str(&line);
    text.push('\n');
    volley_ckks::write_atomic(&args.tokens, text.as_bytes())
        .map_err(|e| CliError::Msg(format!("{}: {e}", args.tokens.display())))?;
    println!("{token}");
    eprintln!(
        "token for tenant {} added to {} (only its hash is stored; keep the token)",
        args.tenant,
        args.tokens.display()
    );
    Ok(())
}

/// How to reach a server.
#[derive(clap::Args, Debug, Clone)]
pub struct ServerArgs {
    /// The server, `https://host:port`.
    #[arg(long)]
    pub server: String,
    /// The bearer token (`volley token`); default: the VOLLEY_TOKEN environment variable.
    #[arg(long, env = "VOLLEY_TOKEN", hide_env_values = true)]
    pub token: String,
    /// The certificate to trust (PEM), e.g. a self-signed server's DATA/tls/cert.pem.
    #[arg(long)]
    pub ca_cert: Option<PathBuf>,
}

impl ServerArgs {
    /// The client.
    pub fn client(&self) -> Result<Client, CliError> {
        Ok(Client::new(
            &self.server,
            &self.token,
            self.ca_cert.as_deref(),
        )?)
    }
}

/// `volley submit`.
#[derive(clap::Args, Debug)]
pub struct SubmitArgs {
    #[command(flatten)]
    pub server: ServerArgs,
    /// The upload bundle (`volley encrypt`).
    #[arg(long)]
    pub bundle: PathBuf,
    /// Iterations (full-batch uploads; default: what the bundle was made for).
    #[arg(long)]
    pub iters: Option<usize>,
    /// Epochs (mini-batch uploads).
    #[arg(long, conflicts_with = "iters")]
    pub epochs: Option<usize>,
    /// The seed of the batches' order in each epoch.
    #[arg(long, default_value_t = 0)]
    pub shuffle_seed: u64,
    #[command(flatten)]
    pub choices: crate::commands::EpochChoices,
    /// Keep the encrypted model every K iterations as a snapshot.
    #[arg(long, value_name = "K")]
    pub snapshot_every: Option<usize>,
    /// Wait for the job to end (following its events), then print its status.
    #[arg(long)]
    pub wait: bool,
}

/// Uploads (resuming an interrupted upload of the same bundle), starts the job, prints its
/// id.
pub fn submit(args: &SubmitArgs, ui: Ui) -> Result<(), CliError> {
    let client = args.server.client()?;
    let bar = ui.rate_bar(0, "uploading", "B");
    let mut first = true;
    let upload = client.upload_bundle(&args.bundle, &mut |done, total| {
        if first && done > 0 {
            bar.suspend(|| {
                if done == total {
                    eprintln!("this bundle is already on the server ({total} bytes)")
                } else {
                    eprintln!("continuing the upload of this bundle: {done} of {total} bytes are on the server")
                }
            });
        }
        first = false;
        bar.set_length(total);
        bar.set_position(done);
    })?;
    bar.finish_and_clear();
    eprintln!(
        "upload {} verified by the server ({} bytes)",
        upload.id, upload.total_bytes
    );
    let spec = TrainSpec {
        iters: args.iters,
        snapshot_every: args.snapshot_every,
        ..args.choices.spec(args.epochs, args.shuffle_seed)
    };
    let job = client.create_job(&upload.id, &spec)?;
    println!("{}", job.id);
    eprintln!(
        "job {} {} ({} iterations)",
        job.id, job.state, job.iterations
    );
    if args.wait {
        wait(&client, &job.id, ui)?;
    }
    Ok(())
}

/// Waits for a job to end, following its server-sent events (and polling once the stream
/// breaks off, as when the server restarts).
fn wait(client: &Client, id: &str, ui: Ui) -> Result<(), CliError> {
    let bar = ui.bar(0, "queued");
    let mut show = |j: &volley_service::api::JobView| {
        bar.set_length(j.iterations as u64);
        bar.set_position(j.iteration as u64);
        bar.set_message(j.state.clone());
    };
    let j = match client.follow(id, &mut show) {
        Err(ServiceError::Http(_)) => client.wait(
            id,
            Duration::from_millis(500),
            Duration::from_secs(7 * 24 * 3600),
            &mut show,
        )?,
        other => other?,
    };
    bar.finish_and_clear();
    eprintln!(
        "job {id} {} ({} iterations, {:.1} s)",
        j.state, j.iterations, j.seconds
    );
    Ok(())
}

/// `volley status`.
#[derive(clap::Args, Debug)]
pub struct StatusArgs {
    #[command(flatten)]
    pub server: ServerArgs,
    /// One job (default: all of the tenant's jobs).
    #[arg(long)]
    pub job: Option<String>,
    /// With --job: wait for it to end.
    #[arg(long, requires = "job")]
    pub wait: bool,
}

/// Prints jobs as JSON.
pub fn status(args: &StatusArgs, ui: Ui) -> Result<(), CliError> {
    let client = args.server.client()?;
    match &args.job {
        Some(id) => {
            if args.wait {
                wait(&client, id, ui)?;
            }
            let j = client.job(id)?;
            println!("{}", serde_json::to_string_pretty(&j).unwrap_or_default());
        }
        None => {
            let all = client.jobs()?;
            println!("{}", serde_json::to_string_pretty(&all).unwrap_or_default());
        }
    }
    Ok(())
}

/// `volley fetch`.
#[derive(clap::Args, Debug)]
pub struct FetchArgs {
    #[command(flatten)]
    pub server: ServerArgs,
    /// The job.
    #[arg(long)]
    pub job: String,
    /// The model directory to write (then `volley decrypt --model OUT`).
    #[arg(long)]
    pub out: PathBuf,
}

/// Downloads a done job's encrypted model.
pub fn fetch(args: &FetchArgs) -> Result<(), CliError> {
    let client = args.server.client()?;
    let files = client.fetch_model(&args.job, &args.out)?;
    eprintln!(
        "encrypted model of job {} written to {} ({} files, {} bytes)",
        args.job,
        args.out.display(),
        files.len(),
        files.iter().map(|f| f.bytes).sum::<u64>()
    );
    Ok(())
}

/// `volley bench serve`.
#[derive(clap::Args, Debug)]
pub struct BenchServeArgs {
    /// A real upload bundle (`volley encrypt`): its jobs train during the run.
    #[arg(long)]
    pub bundle: PathBuf,
    /// Concurrent clients polling job status.
    #[arg(long, default_value_t = 200)]
    pub clients: usize,
    /// Seconds of polling.
    #[arg(long, default_value_t = 60.0)]
    pub seconds: f64,
    /// Each client's pause between requests, milliseconds.
    #[arg(long, default_value_t = 250)]
    pub poll_ms: u64,
    /// Large uploads streamed during the polling.
    #[arg(long, default_value_t = 2)]
    pub uploads: usize,
    /// Megabytes (10^6 bytes) of each large upload.
    #[arg(long, default_value_t = 150)]
    pub upload_mb: u64,
    /// Jobs queued on the bundle (one trains at a time).
    #[arg(long, default_value_t = 40)]
    pub jobs: usize,
}

/// Prints the load test's report as one JSON object.
pub fn bench_serve(args: &BenchServeArgs, threads: usize, ui: Ui) -> Result<(), CliError> {
    let config = volley_service::loadtest::LoadConfig {
        bundle: args.bundle.clone(),
        clients: args.clients,
        seconds: args.seconds,
        poll_interval: Duration::from_millis(args.poll_ms),
        upload_bytes: args.upload_mb * 1_000_000,
        uploads: args.uploads,
        jobs: args.jobs,
        threads,
    };
    let spinner = ui.spinner("starting");
    let report =
        volley_service::loadtest::run(&config, &mut |m| spinner.set_message(m.to_string()))?;
    spinner.finish_and_clear();
    println!("{}", serde_json::to_string(&report).unwrap_or_default());
    Ok(())
}

/// `volley demo --server URL`: where to train instead of in process.
#[derive(clap::Args, Debug, Clone)]
pub struct RemoteArgs {
    /// Train on this `volley serve` (`https://host:port`) instead of in process.
    #[arg(long = "server")]
    pub server_url: Option<String>,
    /// With --server: the bearer token; default: the VOLLEY_TOKEN environment variable.
    #[arg(long = "token", env = "VOLLEY_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// With --server: the certificate to trust (PEM).
    #[arg(long)]
    pub ca_cert: Option<PathBuf>,
}

impl RemoteArgs {
    /// The server, when one is named.
    pub fn server(&self) -> Result<Option<ServerArgs>, CliError> {
        match (&self.server_url, &self.token) {
            (None, _) => Ok(None),
            (Some(_), None) => Err(CliError::Msg(
                "--server needs --token (or VOLLEY_TOKEN)".into(),
            )),
            (Some(server), Some(token)) => Ok(Some(ServerArgs {
                server: server.clone(),
                token: token.clone(),
                ca_cert: self.ca_cert.clone(),
            })),
        }
    }
}

/// The server's side of the demo over the network: uploads the bundle, runs the job,
/// fetches the encrypted model and hands its snapshots to `sink` as the in-process run
/// would. The server's own measurements stay on the server (the stats are empty).
pub fn train_on_server(
    remote: &ServerArgs,
    bundle: &volley_train::bundle::UploadBundle,
    snapshot_every: Option<usize>,
    pb: &indicatif::ProgressBar,
    sink: &mut volley_train::server::SnapshotSink<'_>,
) -> Result<
    (
        volley_train::bundle::EncryptedModel,
        volley_train::server::TrainStats,
    ),
    CliError,
> {
    use volley_train::dirs::{cts_from_bytes, list_snapshots, load_manifest, read, save_bundle};
    let client = remote.client()?;
    let work = std::env::temp_dir().join(format!("volley-demo-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&work);
    let result = (|| {
        let bundle_dir = work.join("bundle");
        save_bundle(&bundle_dir, bundle)?;
        pb.set_message("uploading");
        let upload = client.upload_bundle(&bundle_dir, &mut |done, total| {
            pb.set_length(total);
            pb.set_position(done);
        })?;
        let spec = TrainSpec {
            iters: Some(bundle.manifest.iterations),
            snapshot_every,
            ..TrainSpec::default()
        };
        let job = client.create_job(&upload.id, &spec)?;
        pb.set_length(job.iterations as u64);
        pb.set_position(0);
        pb.set_message(format!("training on {}", remote.server));
        client.wait(
            &job.id,
            Duration::from_millis(200),
            Duration::from_secs(7 * 24 * 3600),
            &mut |j| pb.set_position(j.iteration as u64),
        )?;
        pb.set_message("fetching the encrypted model");
        let model_dir = work.join("model");
        client.fetch_model(&job.id, &model_dir)?;
        let (manifest, _) = load_manifest(&model_dir)?;
        if manifest != bundle.manifest {
            return Err(CliError::Msg(
                "the server's model is not of this upload (its manifest differs)".into(),
            ));
        }
        for (k, path) in list_snapshots(&model_dir)? {
            sink(k, cts_from_bytes(&bundle.params, &read(&path)?, &path)?)?;
        }
        let path = model_dir.join("weights.cts");
        let weights = cts_from_bytes(&bundle.params, &read(&path)?, &path)?;
        Ok((
            volley_train::bundle::EncryptedModel { manifest, weights },
            volley_train::server::TrainStats::default(),
        ))
    })();
    let _ = std::fs::remove_dir_all(&work);
    result
}
