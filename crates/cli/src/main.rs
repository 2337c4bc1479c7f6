//! `volley`: privacy-preserving training of a CNN's last layer on CKKS ciphertexts.

mod bench;
mod commands;
mod features;
mod plot;
mod predict;
mod report;
mod rotate;
mod service;
mod util;

use clap::{Parser, Subcommand};

/// mimalloc keeps freed multi-megabyte polynomials for reuse instead of returning them to
/// the OS (the system allocator's page faults cost about a fifth of a rotation).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
use util::CliError;

#[derive(Parser, Debug)]
#[command(
    name = "volley",
    version,
    about = "Privacy-preserving CNN transfer learning on CKKS homomorphic encryption"
)]
struct Cli {
    /// Worker threads (default: all cores).
    #[arg(long, global = true)]
    threads: Option<usize>,
    /// No progress bars.
    #[arg(long, global = true)]
    quiet: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Print the parameter presets (N, slots, levels, log QP, dnum, security bound).
    Params,
    /// Client: create parameters and the secret key in a key directory.
    Keygen(commands::KeygenArgs),
    /// Client: pack and encrypt training data into an upload bundle (with evaluation keys).
    Encrypt(commands::EncryptArgs),
    /// Server: train on an upload bundle, writing the encrypted model (or --plaintext).
    Train(commands::TrainArgs),
    /// Client: decrypt a trained model into weights (CSV and JSON).
    Decrypt(commands::DecryptArgs),
    /// Accuracy of a weights file on feature rows.
    Evaluate(commands::EvaluateArgs),
    /// Client: images -> frozen pretrained CNN -> feature file (transfer learning).
    Features(features::FeaturesArgs),
    /// Client: rotate feature rows to their principal axes (fit, apply, map weights back).
    #[command(subcommand)]
    Rotate(rotate::RotateCommand),
    /// All roles in one process: keygen, encrypt, train, decrypt, evaluate; JSON report.
    Demo(commands::DemoArgs),
    /// Client: the learning curve of a model trained with --snapshot-every (PNG and JSON).
    Report(commands::ReportArgs),
    /// Encrypted inference: `encrypt` rows (client), `score` them with the encrypted model
    /// (server), `decrypt` the scores into labels (client).
    #[command(subcommand)]
    Predict(predict::PredictCommand),
    /// Server: the training server as a network service (HTTPS API, job store, status page).
    Serve(service::ServeArgs),
    /// Operator: make a bearer token for a tenant and add its hash to a tokens file.
    Token(service::TokenArgs),
    /// Client: upload a bundle to a server and start a training job.
    Submit(service::SubmitArgs),
    /// Client: the status of jobs on a server.
    Status(service::StatusArgs),
    /// Client: download a job's encrypted model from a server.
    Fetch(service::FetchArgs),
    /// Benchmarks.
    #[command(subcommand)]
    Bench(BenchCommand),
}

#[derive(Subcommand, Debug)]
enum BenchCommand {
    /// CKKS engine operations at a preset.
    Ckks(bench::BenchCkksArgs),
    /// CKKS bootstrapping at a preset: time, precision, levels, key sizes.
    Bootstrap(bench::BenchBootstrapArgs),
    /// The network service under load on loopback with TLS: status latency, upload speed.
    Serve(service::BenchServeArgs),
}

fn main() {
    let cli = Cli::parse();
    let threads = cli
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    if let Err(e) = volley_ckks::set_threads(threads) {
        eprintln!("error: cannot start {threads} threads: {e}");
        std::process::exit(1);
    }
    let ui = util::Ui::new(cli.quiet);
    let result: Result<(), CliError> = match &cli.command {
        Command::Params => print_params(),
        Command::Keygen(a) => commands::keygen(a),
        Command::Encrypt(a) => commands::encrypt(a, ui),
        Command::Train(a) => commands::train(a, ui),
        Command::Decrypt(a) => commands::decrypt(a),
        Command::Evaluate(a) => commands::evaluate(a),
        Command::Demo(a) => commands::demo(a, threads, ui),
        Command::Report(a) => commands::report(a),
        Command::Predict(c) => predict::run(c, ui),
        Command::Rotate(c) => rotate::run(c),
        Command::Features(a) => {
            let mut a = a.clone();
            a.threads = Some(threads);
            a.quiet = cli.quiet;
            features::run(&a).map_err(|e| CliError::Msg(e.to_string()))
        }
        Command::Serve(a) => service::serve(a, threads),
        Command::Token(a) => service::token(a),
        Command::Submit(a) => service::submit(a, ui),
        Command::Status(a) => service::status(a, ui),
        Command::Fetch(a) => service::fetch(a),
        Command::Bench(BenchCommand::Ckks(args)) => bench::run(args, threads),
        Command::Bench(BenchCommand::Bootstrap(args)) => bench::run_bootstrap(args, threads),
        Command::Bench(BenchCommand::Serve(args)) => service::bench_serve(args, threads, ui),
    };
    if let Err(e) = result {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

fn print_params() -> Result<(), CliError> {
    use volley_ckks::circuits::{BootstrapConfig, Bootstrapper};
    for name in volley_ckks::params::PRESETS {
        let p = volley_ckks::Params::preset(name)?;
        println!("{name:<10} {}", p.summary());
        if volley_ckks::params::BOOTSTRAP_PRESETS.contains(&name) {
            let b = Bootstrapper::plan(&p, &BootstrapConfig::new(p.max_slots()))?;
            println!(
                "{:<10} bootstrapping: depth {} = CoeffsToSlots {} + EvalMod {} + SlotsToCoeffs {}; from level 0 back to level {} ({} levels of 2^{} for the application)",
                "",
                b.depth(),
                b.cts,
                b.eval_mod,
                b.stc,
                b.output,
                b.output,
                p.literal().log_scale
            );
        }
    }
    Ok(())
}
