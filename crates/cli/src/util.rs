//! Shared CLI helpers: the error type, peak memory, atomic writes.

/// Every CLI failure: printed as one line, exit code 1 (2 for usage errors, by clap).
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// From the CKKS engine.
    #[error(transparent)]
    Ckks(#[from] volley_ckks::Error),
    /// File system.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// Anything else, already phrased for the user.
    #[error("{0}")]
    Msg(String),
}

impl CliError {
    /// An I/O error on `path`.
    pub fn io(path: impl AsRef<std::path::Path>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.as_ref().display().to_string(),
            source,
        }
    }
}

pub use volley_ckks::peak_rss_bytes;

impl From<volley_train::TrainError> for CliError {
    fn from(e: volley_train::TrainError) -> Self {
        CliError::Msg(e.to_string())
    }
}

/// Progress bars on stderr, hidden with `--quiet` or when stderr is not a terminal.
#[derive(Clone, Copy)]
pub struct Ui {
    pub show: bool,
}

impl Ui {
    /// Decides visibility once.
    pub fn new(quiet: bool) -> Self {
        use std::io::IsTerminal;
        Self {
            show: !quiet && std::io::stderr().is_terminal(),
        }
    }

    /// A bar of `len` steps.
    pub fn bar(&self, len: u64, msg: &str) -> indicatif::ProgressBar {
        if !self.show {
            return indicatif::ProgressBar::hidden();
        }
        let pb = indicatif::ProgressBar::new(len);
        pb.set_style(
            indicatif::ProgressStyle::with_template(
                "{spinner} {msg:<24} [{bar:30}] {pos}/{len} {elapsed_precise} (eta {eta})",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
            .progress_chars("=> "),
        );
        pb.set_message(msg.to_string());
        pb
    }

    /// A bar of `len` `unit`s showing the rate (units per second).
    pub fn rate_bar(&self, len: u64, msg: &str, unit: &str) -> indicatif::ProgressBar {
        if !self.show {
            return indicatif::ProgressBar::hidden();
        }
        let pb = indicatif::ProgressBar::new(len);
        let template =
            format!("{{msg}} [{{bar:30}}] {{pos}}/{{len}} {unit}, {{rate}} {unit}/s, eta {{eta}}");
        pb.set_style(
            indicatif::ProgressStyle::with_template(&template)
                .map(|s| {
                    s.progress_chars("=> ").with_key(
                        "rate",
                        |state: &indicatif::ProgressState, w: &mut dyn std::fmt::Write| {
                            let _ = write!(w, "{:.1}", state.per_sec());
                        },
                    )
                })
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        pb.set_message(msg.to_string());
        pb
    }

    /// A spinner for a step without a count.
    pub fn spinner(&self, msg: &str) -> indicatif::ProgressBar {
        if !self.show {
            return indicatif::ProgressBar::hidden();
        }
        let pb = indicatif::ProgressBar::new_spinner();
        pb.set_message(msg.to_string());
        pb.enable_steady_tick(std::time::Duration::from_millis(120));
        pb
    }
}
