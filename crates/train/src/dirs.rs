//! The directories both sides exchange and keep, and how they are written (documented in
//! the README, "File formats"): one home for the layout, used by the command line and by
//! any other front end (a network service).
//!
//! - key directory (client only): `params.bin`, `client.json` (parameter name, key id,
//!   schedule, iterations, bootstrapping), `secret.key` (mode 0600), and after an upload
//!   `upload.json` (its manifest: models and scores are checked against it);
//! - upload bundle: `manifest.json`, `params.bin`, `keys.bin`, `encapsulation.bin` (with
//!   bootstrapping), one `<group>.cts` per ciphertext group, and with mini-batches
//!   `batches/batch-NNNNNN.cts`, one container per batch (see [`crate::batches`]);
//! - model: `manifest.json`, `params.bin`, `weights.cts`, `snapshots/iter-NNNNNN.cts`;
//!   a resumable run works in `.NAME.partial/` with its `checkpoint.bin`.
//!
//! Directories are written to a temporary sibling and renamed into place, so a failure never
//! leaves a half-written one; single files through `volley_ckks`'s atomic writer.

use crate::algorithm::Weights;
use crate::bundle::{Manifest, UploadBundle};
#[cfg(feature = "client")]
use crate::client::Client;
use crate::container::ciphertexts_from_bytes;
use crate::error::{Result, TrainError};
#[cfg(feature = "client")]
use crate::layout::Schedule;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use volley_ckks::{Ciphertext, EncapsulationKeys, Params, Serializable};

/// Reads a whole file with the path in the error.
pub fn read(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| TrainError::io(path, e))
}

/// Parses a container, validating every ciphertext against `params`.
pub fn cts_from_bytes(params: &Arc<Params>, bytes: &[u8], path: &Path) -> Result<Vec<Ciphertext>> {
    ciphertexts_from_bytes(params, bytes)
        .map_err(|e| TrainError::Data(format!("{}: {e}", path.display())))
}

/// Writes a directory atomically: `fill` writes into a fresh temporary sibling, which is
/// then renamed to `dir` (an existing `dir` is replaced only after everything succeeded).
/// `fill` may fail with the caller's own error type (any that a [`TrainError`] converts to).
pub fn write_dir_atomic<E: From<TrainError>>(
    dir: &Path,
    fill: impl FnOnce(&Path) -> std::result::Result<(), E>,
) -> std::result::Result<(), E> {
    let (parent, name) = parent_and_name(dir)?;
    let tmp = parent.join(format!(".{name}.tmp.{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp).map_err(|e| TrainError::io(&tmp, e))?;
    if let Err(e) = fill(&tmp) {
        let _ = std::fs::remove_dir_all(&tmp);
        return Err(e);
    }
    Ok(replace_dir(dir, &tmp)?)
}

/// The work directory of a resumable run writing `dir`: the hidden sibling `.NAME.partial`.
pub fn partial_dir(dir: &Path) -> Result<PathBuf> {
    let (parent, name) = parent_and_name(dir)?;
    Ok(parent.join(format!(".{name}.partial")))
}

/// [`write_dir_atomic`] through a work directory that outlives the process: `fill` writes
/// into `work` (created if missing, reused as it is otherwise: a resumed run finds its
/// checkpoint there), which is renamed to `dir` when `fill` succeeds and kept when it fails.
pub fn write_dir_resumable<E: From<TrainError>>(
    dir: &Path,
    work: &Path,
    fill: impl FnOnce(&Path) -> std::result::Result<(), E>,
) -> std::result::Result<(), E> {
    std::fs::create_dir_all(work).map_err(|e| TrainError::io(work, e))?;
    fill(work)?;
    Ok(replace_dir(dir, work)?)
}

/// The parent (`.` for a bare name) and the file name of `dir`.
fn parent_and_name(dir: &Path) -> Result<(PathBuf, String)> {
    let parent = dir
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."));
    let name = dir
        .file_name()
        .ok_or_else(|| TrainError::Data(format!("{}: not a directory name", dir.display())))?
        .to_string_lossy()
        .to_string();
    Ok((parent, name))
}

/// Renames the filled `tmp` to `dir`, replacing an existing `dir` only then.
fn replace_dir(dir: &Path, tmp: &Path) -> Result<()> {
    let (parent, name) = parent_and_name(dir)?;
    if dir.exists() {
        let old = parent.join(format!(".{name}.old.{}", std::process::id()));
        std::fs::rename(dir, &old).map_err(|e| TrainError::io(dir, e))?;
        std::fs::rename(tmp, dir).map_err(|e| TrainError::io(dir, e))?;
        let _ = std::fs::remove_dir_all(&old);
    } else {
        std::fs::rename(tmp, dir).map_err(|e| TrainError::io(dir, e))?;
    }
    Ok(())
}

/// Writes one file (inside a directory being filled).
pub fn write(path: &Path, bytes: &[u8]) -> Result<()> {
    std::fs::write(path, bytes).map_err(|e| TrainError::io(path, e))
}

/// Writes a standalone file atomically.
pub fn write_file_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    volley_ckks::write_atomic(path, bytes)
        .map_err(|e| TrainError::Data(format!("{}: {e}", path.display())))
}

/// The manifest of the last upload, in the key directory.
pub const UPLOAD_RECORD: &str = "upload.json";

/// Writes a key directory (atomically): parameters, metadata (parameter name, key id,
/// schedule, iterations, bootstrapping) and the secret key (mode 0600, the only place a
/// secret key is ever serialised).
#[cfg(feature = "client")]
pub fn save_keys(dir: &Path, client: &Client, schedule: Schedule, iterations: usize) -> Result<()> {
    write_dir_atomic(dir, |dir| -> Result<()> {
        write(
            &dir.join("params.bin"),
            &volley_ckks::params_to_bytes(client.params()),
        )?;
        let meta = serde_json::json!({
            "params_name": client.params_name(), "key_id": client.key_id(),
            "schedule": schedule, "iterations": iterations,
            "bootstrapping": client.bootstrapping(),
        });
        write(
            &dir.join("client.json"),
            serde_json::to_string_pretty(&meta)
                .unwrap_or_default()
                .as_bytes(),
        )?;
        let mut sk = Vec::new();
        volley_ckks::client::save_secret_key(client.secret_key(), &mut sk)?;
        volley_ckks::serialization::write_atomic_private(&dir.join("secret.key"), &sk)?;
        Ok(())
    })
}

/// A key directory, loaded: the client and what its keys were made for.
#[cfg(feature = "client")]
pub struct KeyDir {
    /// The client's keys.
    pub client: Client,
    /// Schedule the keys were made for.
    pub schedule: Schedule,
    /// Iterations the parameters were chosen for.
    pub iterations: usize,
}

/// Loads a key directory written by `volley keygen` (parameters, metadata, secret key).
#[cfg(feature = "client")]
pub fn load_keys(dir: &Path) -> Result<KeyDir> {
    let params = volley_ckks::params_from_bytes(&read(&dir.join("params.bin"))?, false)
        .map_err(|e| TrainError::Data(format!("{}: {e}", dir.join("params.bin").display())))?;
    let meta_path = dir.join("client.json");
    let meta: serde_json::Value = serde_json::from_slice(&read(&meta_path)?)
        .map_err(|e| TrainError::Data(format!("{}: {e}", meta_path.display())))?;
    let field = |k: &str| {
        meta.get(k)
            .cloned()
            .ok_or_else(|| TrainError::Data(format!("{}: missing {k:?}", meta_path.display())))
    };
    let name = field("params_name")?
        .as_str()
        .unwrap_or_default()
        .to_string();
    let key_id = field("key_id")?.as_str().unwrap_or_default().to_string();
    let schedule: Schedule = serde_json::from_value(field("schedule")?)
        .map_err(|e| TrainError::Data(format!("{}: {e}", meta_path.display())))?;
    let iterations = field("iterations")?.as_u64().unwrap_or(0) as usize;
    let bootstrapping = field("bootstrapping")?.as_bool().ok_or_else(|| {
        TrainError::Data(format!(
            "{}: \"bootstrapping\" must be true or false",
            meta_path.display()
        ))
    })?;
    let sk = volley_ckks::client::load_secret_key(&params, &read(&dir.join("secret.key"))?)
        .map_err(|e| TrainError::Data(format!("{}: {e}", dir.join("secret.key").display())))?;
    let literal = params.literal().clone();
    Ok(KeyDir {
        client: Client::from_parts(name, literal, params, sk, key_id, bootstrapping),
        schedule,
        iterations,
    })
}

/// Writes `manifest.json` and `params.bin`, the head of a bundle and of a model directory
/// (read back by [`load_manifest`]), into a directory being filled.
fn write_manifest(dir: &Path, manifest: &Manifest, params: &Params) -> Result<()> {
    write(
        &dir.join("manifest.json"),
        serde_json::to_string_pretty(manifest)
            .unwrap_or_default()
            .as_bytes(),
    )?;
    write(
        &dir.join("params.bin"),
        &volley_ckks::params_to_bytes(params),
    )
}

/// Writes the files of an encrypted model (`manifest.json`, `params.bin`, `weights.cts`)
/// into a model directory being filled (its snapshots go beside them as they come).
pub fn write_model_files(
    dir: &Path,
    model: &crate::bundle::EncryptedModel,
    params: &Params,
) -> Result<()> {
    write_manifest(dir, &model.manifest, params)?;
    write_streamed(&dir.join("weights.cts"), |w| {
        crate::container::write_ciphertexts(w, &model.weights)
    })
}

/// Writes an upload bundle directory (atomically).
pub fn save_bundle(dir: &Path, b: &UploadBundle) -> Result<()> {
    write_dir_atomic(dir, |tmp| write_bundle_files(tmp, b))
}

/// Subdirectory of a mini-batch upload holding its batch files.
pub const BATCH_DIR: &str = "batches";

/// File name of batch `i`.
pub fn batch_file(i: usize) -> String {
    format!("batch-{i:06}.cts")
}

/// Writes a mini-batch upload directory (atomically) while it is being encrypted: `make`
/// gets the sink that writes each batch's file as it comes (so no more than one batch is in
/// memory) and returns the bundle of keys and initial weights, written after the batches.
pub fn save_batched_bundle(
    dir: &Path,
    make: impl FnOnce(&mut dyn FnMut(usize, Vec<Ciphertext>) -> Result<()>) -> Result<UploadBundle>,
) -> Result<Manifest> {
    let mut manifest = None;
    write_dir_atomic(dir, |tmp| -> Result<()> {
        let batches = tmp.join(BATCH_DIR);
        std::fs::create_dir_all(&batches).map_err(|e| TrainError::io(&batches, e))?;
        let mut sink = |i: usize, cts: Vec<Ciphertext>| {
            write_streamed(&batches.join(batch_file(i)), |w| {
                crate::container::write_ciphertexts(w, &cts)
            })
        };
        let bundle = make(&mut sink)?;
        write_bundle_files(tmp, &bundle)?;
        manifest = Some(bundle.manifest);
        Ok(())
    })?;
    manifest.ok_or_else(|| TrainError::Data("no bundle was made".into()))
}

/// The batches of a mini-batch upload directory, read one at a time from their files; the
/// server checks each file's count against the manifest before reading a ciphertext, and
/// that nothing follows the last.
#[derive(Debug)]
pub struct DirBatches {
    dir: PathBuf,
    params: Arc<Params>,
    manifest: Manifest,
}

impl DirBatches {
    /// The batches of the upload directory `dir` with this (validated) manifest.
    pub fn new(dir: &Path, params: Arc<Params>, manifest: Manifest) -> Self {
        Self {
            dir: dir.to_path_buf(),
            params,
            manifest,
        }
    }
}

impl crate::batches::BatchSource for DirBatches {
    fn open(&self, batch: usize) -> Result<Box<dyn Iterator<Item = Result<Ciphertext>> + '_>> {
        let path = self.dir.join(BATCH_DIR).join(batch_file(batch));
        let want = self.manifest.batch_ciphertexts(batch);
        if want == 0 {
            return Err(TrainError::Mismatch(format!(
                "the upload has no batch {batch}"
            )));
        }
        let file = std::fs::File::open(&path).map_err(|e| TrainError::io(&path, e))?;
        let reader = crate::container::CiphertextReader::open(
            &self.params,
            std::io::BufReader::with_capacity(1 << 20, file),
        )
        .map_err(|e| TrainError::Data(format!("{}: {e}", path.display())))?;
        if reader.announced() != want {
            return Err(TrainError::Data(format!(
                "{}: {} ciphertexts, the manifest's batch needs {want}",
                path.display(),
                reader.announced()
            )));
        }
        Ok(Box::new(BatchFile {
            reader: Some(reader),
            path,
        }))
    }
}

/// A batch file being read; at its end, checks that nothing follows.
struct BatchFile {
    reader: Option<crate::container::CiphertextReader<std::io::BufReader<std::fs::File>>>,
    path: PathBuf,
}

impl Iterator for BatchFile {
    type Item = Result<Ciphertext>;

    fn next(&mut self) -> Option<Self::Item> {
        let r = self.reader.as_mut()?;
        let err = |e: TrainError, path: &Path| TrainError::Data(format!("{}: {e}", path.display()));
        match r.next() {
            Some(item) => Some(item.map_err(|e| err(e, &self.path))),
            None => {
                let r = self.reader.take()?;
                r.finish().err().map(|e| Err(err(e, &self.path)))
            }
        }
    }
}

/// The files of an upload bundle, into a directory being filled.
fn write_bundle_files(tmp: &Path, b: &UploadBundle) -> Result<()> {
    write_manifest(tmp, &b.manifest, &b.params)?;
    // Streamed: the keys are gigabytes with bootstrapping, and their bytes need not be
    // in memory beside them.
    write_streamed(&tmp.join("keys.bin"), |w| {
        b.keys.write_to(w).map_err(std::io::Error::other)
    })?;
    if let Some(e) = &b.encapsulation {
        write(&tmp.join("encapsulation.bin"), &e.to_bytes())?;
    }
    for (name, cts) in &b.groups {
        write_streamed(&tmp.join(format!("{name}.cts")), |w| {
            crate::container::write_ciphertexts(w, cts)
        })?;
    }
    Ok(())
}

/// Writes one file (inside a directory being filled) through a buffered writer.
pub fn write_streamed(
    path: &Path,
    body: impl FnOnce(&mut std::io::BufWriter<std::fs::File>) -> std::io::Result<()>,
) -> Result<()> {
    let io = |e| TrainError::io(path, e);
    let mut w =
        std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(path).map_err(io)?);
    body(&mut w).map_err(io)?;
    std::io::Write::flush(&mut w).map_err(io)
}

/// A bundle's or model's manifest and parameters, checked against each other.
pub fn load_manifest(dir: &Path) -> Result<(Manifest, Arc<Params>)> {
    let path = dir.join("manifest.json");
    let manifest: Manifest = serde_json::from_slice(&read(&path)?)
        .map_err(|e| TrainError::Data(format!("{}: invalid manifest: {e}", path.display())))?;
    let params = volley_ckks::params_from_bytes(&read(&dir.join("params.bin"))?, false)
        .map_err(|e| TrainError::Data(format!("{}: {e}", dir.join("params.bin").display())))?;
    if params.fingerprint_hex() != manifest.fingerprint {
        return Err(TrainError::Data(format!(
            "{}: made for other parameters (fingerprint {} != manifest's {})",
            dir.display(),
            &params.fingerprint_hex()[..16],
            &manifest.fingerprint[..16.min(manifest.fingerprint.len())]
        )));
    }
    Ok((manifest, params))
}

/// Loads an upload bundle: every shape checked against the parameters before any file is
/// read by it, every key and ciphertext against the parameters.
pub fn load_bundle(dir: &Path) -> Result<UploadBundle> {
    load_bundle_keys(dir, None)
}

/// The rotation steps a server step needs, from the upload's manifest.
pub type StepsOf<'a> = &'a dyn Fn(&Manifest) -> Vec<i64>;

/// [`load_bundle`] keeping only the rotation keys of `steps` (and the relinearisation key),
/// when given: the rest of a bootstrapping bundle's keys is gigabytes.
pub fn load_bundle_keys(dir: &Path, steps: Option<StepsOf<'_>>) -> Result<UploadBundle> {
    let (manifest, params) = load_manifest(dir)?;
    // Every shape and count against the parameters before any file is read by them.
    manifest
        .validate(&params)
        .map_err(|e| TrainError::Data(format!("{}: {e}", dir.display())))?;
    let keys_path = dir.join("keys.bin");
    // Streamed one key at a time: with bootstrapping the file is gigabytes.
    let file = std::fs::File::open(&keys_path).map_err(|e| TrainError::io(&keys_path, e))?;
    let wanted: Option<std::collections::BTreeSet<u64>> = steps.map(|f| {
        f(&manifest)
            .into_iter()
            .map(|s| params.ring().galois_element_for_rotation(s))
            .collect()
    });
    let keep = |g: u64| wanted.as_ref().is_none_or(|w| w.contains(&g));
    let keys = volley_ckks::serialization::read_evaluation_keys_where(
        &params,
        &mut std::io::BufReader::new(file),
        &keep,
    )
    .map_err(|e| TrainError::Data(format!("{}: {e}", keys_path.display())))?;
    let encapsulation = if manifest.bootstrapping {
        let path = dir.join("encapsulation.bin");
        Some(
            EncapsulationKeys::from_bytes(&params, &read(&path)?)
                .map_err(|e| TrainError::Data(format!("{}: {e}", path.display())))?,
        )
    } else {
        None
    };
    let mut groups = BTreeMap::new();
    for (name, &count) in &manifest.ciphertexts {
        if !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(TrainError::Data(format!(
                "{}: invalid group name {name:?}",
                dir.display()
            )));
        }
        let path = dir.join(format!("{name}.cts"));
        let cts = cts_from_bytes(&params, &read(&path)?, &path)?;
        if cts.len() != count {
            return Err(TrainError::Data(format!(
                "{}: {} ciphertexts, the manifest says {count}",
                path.display(),
                cts.len()
            )));
        }
        groups.insert(name.clone(), cts);
    }
    // Mini-batches stay on disk, read one batch at a time while training.
    let batches = manifest
        .batches
        .map(|_| -> Arc<dyn crate::batches::BatchSource> {
            Arc::new(DirBatches {
                dir: dir.to_path_buf(),
                params: params.clone(),
                manifest: manifest.clone(),
            })
        });
    Ok(UploadBundle {
        manifest,
        params,
        keys: Arc::new(keys),
        encapsulation,
        groups,
        batches,
    })
}

/// The files of an upload bundle directory with this manifest, as relative paths with `/`
/// (what a receiver expects, no more: anything else in an upload is refused).
pub fn bundle_files(manifest: &Manifest) -> Vec<String> {
    let mut files: Vec<String> = ["manifest.json", "params.bin", "keys.bin"]
        .into_iter()
        .map(String::from)
        .collect();
    if manifest.bootstrapping {
        files.push("encapsulation.bin".into());
    }
    files.extend(
        manifest
            .ciphertexts
            .keys()
            .map(|name| format!("{name}.cts")),
    );
    if let Some(spec) = &manifest.batches {
        files.extend((0..spec.count()).map(|i| format!("{BATCH_DIR}/{}", batch_file(i))));
    }
    files
}

/// Checks a received upload directory completely, holding no more than one key or one
/// ciphertext at a time: the manifest against the parameters, then every key (decoded and
/// dropped) and every ciphertext of every container and batch file, with the counts the
/// manifest needs and nothing after them. What a server runs before it queues a job on an
/// upload from a party it does not trust; gives the manifest.
pub fn verify_bundle(dir: &Path) -> Result<Manifest> {
    use crate::batches::BatchSource;
    let (manifest, params) = load_manifest(dir)?;
    manifest
        .validate(&params)
        .map_err(|e| TrainError::Data(format!("{}: {e}", dir.display())))?;
    let keys_path = dir.join("keys.bin");
    let file = std::fs::File::open(&keys_path).map_err(|e| TrainError::io(&keys_path, e))?;
    // Each key is decoded (every coefficient range-checked) and dropped.
    volley_ckks::serialization::read_evaluation_keys_where(
        &params,
        &mut std::io::BufReader::with_capacity(1 << 20, file),
        &|_| false,
    )
    .map_err(|e| TrainError::Data(format!("{}: {e}", keys_path.display())))?;
    if manifest.bootstrapping {
        let path = dir.join("encapsulation.bin");
        EncapsulationKeys::from_bytes(&params, &read(&path)?)
            .map_err(|e| TrainError::Data(format!("{}: {e}", path.display())))?;
    }
    for (name, &count) in &manifest.ciphertexts {
        let path = dir.join(format!("{name}.cts"));
        let file = std::fs::File::open(&path).map_err(|e| TrainError::io(&path, e))?;
        let err = |e: TrainError| TrainError::Data(format!("{}: {e}", path.display()));
        let mut reader = crate::container::CiphertextReader::open(
            &params,
            std::io::BufReader::with_capacity(1 << 20, file),
        )
        .map_err(err)?;
        if reader.announced() != count {
            return Err(TrainError::Data(format!(
                "{}: {} ciphertexts, the manifest says {count}",
                path.display(),
                reader.announced()
            )));
        }
        for ct in reader.by_ref() {
            ct.map_err(err)?;
        }
        reader.finish().map_err(err)?;
    }
    if let Some(spec) = &manifest.batches {
        let batches = DirBatches::new(dir, params.clone(), manifest.clone());
        for i in 0..spec.count() {
            for ct in batches.open(i)? {
                ct?;
            }
        }
    }
    Ok(manifest)
}

/// Snapshot subdirectory of a model directory.
pub const SNAPSHOT_DIR: &str = "snapshots";

/// Checkpoint file in the work directory of a resumable run.
pub const CHECKPOINT_FILE: &str = "checkpoint.bin";

/// Writes `path` atomically through a streaming writer (the file appears whole or not at
/// all, also when the process is killed).
pub fn write_atomic_streamed(
    path: &Path,
    body: impl FnOnce(&mut std::io::BufWriter<std::fs::File>) -> std::io::Result<()>,
) -> Result<()> {
    let io = |e: std::io::Error| TrainError::Io {
        path: path.display().to_string(),
        source: e,
    };
    let mut f = volley_ckks::serialization::AtomicFile::create(path).map_err(io)?;
    body(f.writer().map_err(io)?).map_err(io)?;
    f.commit().map(|_| ()).map_err(io)
}

/// File of the snapshot after `k` iterations.
pub fn snapshot_file(k: usize) -> String {
    format!("iter-{k:06}.cts")
}

/// The snapshots of a model directory, by iteration (validated names, sorted). The
/// iteration numbers are checked against the model's manifest by the caller.
pub fn list_snapshots(model: &Path) -> Result<Vec<(usize, PathBuf)>> {
    let dir = model.join(SNAPSHOT_DIR);
    if !dir.exists() {
        return Ok(Vec::new());
    }
    let mut out = Vec::new();
    for entry in std::fs::read_dir(&dir).map_err(|e| TrainError::io(&dir, e))? {
        let entry = entry.map_err(|e| TrainError::io(&dir, e))?;
        let name = entry.file_name().to_string_lossy().to_string();
        let k = name
            .strip_prefix("iter-")
            .and_then(|r| r.strip_suffix(".cts"))
            .filter(|d| d.len() == 6 && d.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|d| d.parse::<usize>().ok())
            .ok_or_else(|| {
                TrainError::Data(format!("{}: unexpected file {name:?}", dir.display()))
            })?;
        out.push((k, entry.path()));
    }
    out.sort();
    Ok(out)
}

/// Records in the key directory what this client uploaded (read back by
/// [`load_upload_record`]: models and scores are checked against it).
pub fn save_upload_record(keys_dir: &Path, manifest: &Manifest) -> Result<()> {
    write_file_atomic(
        &keys_dir.join(UPLOAD_RECORD),
        serde_json::to_string_pretty(manifest)
            .unwrap_or_default()
            .as_bytes(),
    )
}

/// The key directory's record of what this client uploaded (written by `volley encrypt`).
pub fn load_upload_record(keys_dir: &Path) -> Result<Manifest> {
    let record = keys_dir.join(UPLOAD_RECORD);
    if !record.exists() {
        return Err(TrainError::Data(format!(
            "{}: no upload recorded in this key directory (`volley encrypt --keys {}` writes it): nothing to check the model against",
            record.display(),
            keys_dir.display()
        )));
    }
    serde_json::from_slice(&read(&record)?)
        .map_err(|e| TrainError::Data(format!("{}: {e}", record.display())))
}

// ----- weights files (the client's decrypted model) -----

/// The JSON form of weights: `{"format": "volley-weights-v1", "classes", "features",
/// "weights": [[bias, w_1, ...], ...]}`.
fn weights_json(w: &Weights, d: usize) -> serde_json::Value {
    serde_json::json!({
        "format": "volley-weights-v1",
        "classes": w.c,
        "features": d - 1,
        "weights": (0..w.c).map(|k| w.row(k)[..d].to_vec()).collect::<Vec<_>>(),
    })
}

/// Writes `path` (CSV: one row per class, the class index then the bias and feature weights)
/// and the same weights as JSON next to it (`.json`).
pub fn save_weights(path: &Path, w: &Weights, d: usize) -> Result<PathBuf> {
    let mut csv = String::new();
    for k in 0..w.c {
        csv.push_str(&k.to_string());
        for v in &w.row(k)[..d] {
            csv.push(',');
            csv.push_str(&format!("{v:e}"));
        }
        csv.push('\n');
    }
    let json_path = path.with_extension("json");
    if path.extension().is_some_and(|e| e == "json") {
        write_file_atomic(
            path,
            serde_json::to_string_pretty(&weights_json(w, d))
                .unwrap_or_default()
                .as_bytes(),
        )?;
        return Ok(path.to_path_buf());
    }
    write_file_atomic(path, csv.as_bytes())?;
    write_file_atomic(
        &json_path,
        serde_json::to_string_pretty(&weights_json(w, d))
            .unwrap_or_default()
            .as_bytes(),
    )?;
    Ok(json_path)
}

/// Reads weights from the CSV or JSON written by [`save_weights`]. Returns (weights, d).
pub fn load_weights(path: &Path) -> Result<(Weights, usize)> {
    let text = String::from_utf8(read(path)?)
        .map_err(|_| TrainError::Data(format!("{}: not UTF-8 text", path.display())))?;
    let bad = |m: String| TrainError::Data(format!("{}: {m}", path.display()));
    let rows: Vec<Vec<f64>> = if text.trim_start().starts_with('{') {
        let v: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| bad(format!("invalid JSON: {e}")))?;
        let arr = v
            .get("weights")
            .and_then(|w| w.as_array())
            .ok_or_else(|| bad("no \"weights\" array".into()))?;
        arr.iter()
            .map(|r| {
                r.as_array()
                    .and_then(|r| r.iter().map(|x| x.as_f64()).collect::<Option<Vec<f64>>>())
                    .ok_or_else(|| bad("weights must be arrays of numbers".into()))
            })
            .collect::<Result<_>>()?
    } else {
        let mut rows = Vec::new();
        for (i, line) in text
            .lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
        {
            let mut f = line.split(',');
            let k: usize = f
                .next()
                .unwrap_or("")
                .trim()
                .parse()
                .map_err(|_| bad(format!("line {}: class index expected", i + 1)))?;
            if k != rows.len() {
                return Err(bad(format!("line {}: class {k} out of order", i + 1)));
            }
            rows.push(
                f.map(|x| {
                    x.trim()
                        .parse::<f64>()
                        .map_err(|_| bad(format!("line {}: {x:?} is not a number", i + 1)))
                })
                .collect::<Result<Vec<_>>>()?,
            );
        }
        rows
    };
    let d = rows.first().map_or(0, Vec::len);
    if rows.len() < 2
        || d < 2
        || rows
            .iter()
            .any(|r| r.len() != d || r.iter().any(|v| !v.is_finite()))
    {
        return Err(bad(
            "expected at least 2 classes of equal-length finite weight rows (bias first)".into(),
        ));
    }
    Ok((
        Weights {
            c: rows.len(),
            d_hat: d,
            w: rows.concat(),
        },
        d,
    ))
}
