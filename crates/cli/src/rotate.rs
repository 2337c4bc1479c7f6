//! `volley rotate`: the client's principal-axis rotation of feature rows
//! (`volley_vision::rotation`): fitted on the training rows, applied to every feature file
//! the model trains on or scores, and undone on the decrypted weights.

use crate::commands::load_features;
use crate::util::CliError;
use std::path::PathBuf;
use volley_train::algorithm::Weights;
use volley_train::dirs::{load_weights, save_weights};
use volley_vision::rotation::Rotation;

/// `volley rotate`.
#[derive(clap::Subcommand, Debug)]
pub enum RotateCommand {
    /// Fit the rotation to a feature file's rows (the training rows).
    Fit {
        /// Feature file (binary or CSV).
        #[arg(long)]
        features: PathBuf,
        /// The rotation file to write (keep it with the keys: it describes the data).
        #[arg(long)]
        out: PathBuf,
    },
    /// Rotate a feature file's rows (training and test rows alike).
    Apply {
        /// Rotation file from `volley rotate fit`.
        #[arg(long)]
        rotation: PathBuf,
        /// Feature file to rotate.
        #[arg(long)]
        features: PathBuf,
        /// Rotated feature file to write (`.csv`: CSV, else binary).
        #[arg(long)]
        out: PathBuf,
    },
    /// Map weights trained on rotated rows (`volley decrypt`'s CSV or JSON) to the original
    /// features: the same scores on unrotated rows.
    Weights {
        /// Rotation file the rows were rotated with.
        #[arg(long)]
        rotation: PathBuf,
        /// Weights of the rotated features.
        #[arg(long)]
        weights: PathBuf,
        /// Weights file to write (CSV, and JSON beside it).
        #[arg(long)]
        out: PathBuf,
    },
}

fn vision(e: volley_vision::VisionError) -> CliError {
    CliError::Msg(e.to_string())
}

/// Runs `volley rotate`.
pub fn run(cmd: &RotateCommand) -> Result<(), CliError> {
    match cmd {
        RotateCommand::Fit { features, out } => {
            let table = load_features(features)?;
            let r = Rotation::fit(&table).map_err(vision)?;
            r.save(out).map_err(vision)?;
            let total: f64 = r.variances().iter().sum();
            let top: f64 = r.variances().iter().take(50).sum();
            eprintln!(
                "rotation of {} features fitted on {} rows ({:.1} % of the variance on the first 50 axes), written to {}",
                r.cols(),
                table.rows(),
                100.0 * top / total.max(f64::MIN_POSITIVE),
                out.display()
            );
        }
        RotateCommand::Apply {
            rotation,
            features,
            out,
        } => {
            let r = Rotation::load(rotation).map_err(vision)?;
            let table = load_features(features)?;
            let rows = r.write_rotated(&table, out).map_err(vision)?;
            eprintln!("{rows} rotated rows written to {}", out.display());
        }
        RotateCommand::Weights {
            rotation,
            weights,
            out,
        } => {
            let r = Rotation::load(rotation).map_err(vision)?;
            let (w, d) = load_weights(weights)?;
            let rows: Vec<Vec<f64>> = (0..w.c).map(|k| w.row(k)[..d].to_vec()).collect();
            let back = r.unrotate_weights(&rows).map_err(vision)?;
            let mut flat = Vec::with_capacity(w.c * d);
            back.iter().for_each(|row| flat.extend_from_slice(row));
            let json = save_weights(
                out,
                &Weights {
                    c: w.c,
                    d_hat: d,
                    w: flat,
                },
                d,
            )?;
            eprintln!(
                "weights of the original features written to {} and {}",
                out.display(),
                json.display()
            );
        }
    }
    Ok(())
}
