//! The data owner's side: keys, the encrypted upload, decryption of the trained model.
//! The secret key never leaves this module's types.

use crate::algorithm::Weights;
use crate::batches::BatchSpec;
use crate::bundle::{BUNDLE_VERSION, EncryptedModel, Manifest, UploadBundle, model_ciphertexts};
use crate::data::{Design, FeatureTable};
use crate::error::{Result, TrainError};
use crate::inference::{QUERY_LEVEL, Query, QueryManifest, check_group};
use crate::layout::{Geometry, Schedule};
use crate::setup::{LevelPlan, ParamsChoice, build_params, choose_run_params, rotation_steps};
use rayon::prelude::*;
use std::collections::BTreeMap;
use std::sync::Arc;
use volley_ckks::circuits::Bootstrapper;
use volley_ckks::client::{KeyGenerator, SecretKey, decrypt, encrypt_secret};
use volley_ckks::{
    Ciphertext, EncapsulationKeys, Encoder, EvaluationKeys, Params, ParamsLiteral, Serializable,
};

/// The public keys a server needs: evaluation keys, and with bootstrapping the
/// encapsulation keys.
pub struct ServerKeys {
    /// Relinearisation, rotation (and with bootstrapping conjugation) keys.
    pub evaluation: EvaluationKeys,
    /// Bootstrapping's sparse-secret encapsulation keys.
    pub encapsulation: Option<EncapsulationKeys>,
}

/// The client's key material for one parameter set.
pub struct Client {
    params_name: String,
    literal: ParamsLiteral,
    params: Arc<Params>,
    secret: SecretKey,
    /// True when the server refreshes by bootstrapping (see [`choose_run_params`]).
    bootstrapping: bool,
    /// Random identifier of this key, copied into every bundle and model, so that decrypting
    /// with the wrong key is detected instead of producing garbage.
    key_id: String,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Client({}, key {})", self.params_name, self.key_id)
    }
}

impl Client {
    /// Fresh keys for `iterations` of `schedule` (parameters chosen by [`choose_run_params`]).
    /// With `inference`, the model keeps a level for encrypted inference also without
    /// bootstrapping (see [`choose_run_params`]).
    pub fn generate(schedule: Schedule, iterations: usize, inference: bool) -> Result<Self> {
        let ParamsChoice {
            name,
            literal,
            bootstrapping,
        } = choose_run_params(schedule, iterations, inference)?;
        Self::generate_with(name, literal, bootstrapping)
    }

    /// Fresh keys for explicit parameters.
    pub fn generate_with(
        params_name: String,
        literal: ParamsLiteral,
        bootstrapping: bool,
    ) -> Result<Self> {
        let params = build_params(&literal)?;
        Self::generate_for(params_name, literal, params, bootstrapping)
    }

    /// Fresh keys for already-built parameters (tests build tiny insecure ones explicitly
    /// with `Params::new_insecure`).
    pub fn generate_for(
        params_name: String,
        literal: ParamsLiteral,
        params: Arc<Params>,
        bootstrapping: bool,
    ) -> Result<Self> {
        if params.literal() != &literal {
            return Err(TrainError::Mismatch(
                "parameter literal and parameters differ".into(),
            ));
        }
        let mut kg = KeyGenerator::new(params.clone());
        let secret = kg.gen_secret_key();
        let mut id = [0u8; 16];
        volley_ckks::rlwe::sampler::Prng::from_os().seed()[..16]
            .iter()
            .zip(id.iter_mut())
            .for_each(|(s, d)| *d = *s);
        let key_id = id.iter().map(|b| format!("{b:02x}")).collect();
        Ok(Self {
            params_name,
            literal,
            params,
            secret,
            bootstrapping,
            key_id,
        })
    }

    /// Rebuilds a client from stored parts (the CLI's key directory).
    pub fn from_parts(
        params_name: String,
        literal: ParamsLiteral,
        params: Arc<Params>,
        secret: SecretKey,
        key_id: String,
        bootstrapping: bool,
    ) -> Self {
        Self {
            params_name,
            literal,
            params,
            secret,
            bootstrapping,
            key_id,
        }
    }

    /// True when the server will refresh by bootstrapping.
    pub fn bootstrapping(&self) -> bool {
        self.bootstrapping
    }

    /// The parameters.
    pub fn params(&self) -> &Arc<Params> {
        &self.params
    }
    /// Their name.
    pub fn params_name(&self) -> &str {
        &self.params_name
    }
    /// Their literal.
    pub fn literal(&self) -> &ParamsLiteral {
        &self.literal
    }
    /// The secret key (for the client's own save).
    pub fn secret_key(&self) -> &SecretKey {
        &self.secret
    }
    /// This key's identifier.
    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    /// The public keys the server needs for `schedule` on `geometry`. Without
    /// bootstrapping: relinearisation and the schedule's rotations over the whole chain.
    /// With it: bootstrapping's keys (relinearisation, conjugation and its rotations, over
    /// the whole chain, and the encapsulation keys), and the schedule's rotations only up to
    /// the level a refresh returns at, where the iterations run (about a third of the size).
    pub fn server_keys(&self, schedule: Schedule, geometry: &Geometry) -> Result<ServerKeys> {
        let mut kg = KeyGenerator::new(self.params.clone());
        let steps = rotation_steps(schedule, geometry);
        if !self.bootstrapping {
            return Ok(ServerKeys {
                evaluation: kg.gen_evaluation_keys(&self.secret, true, &steps, false),
                encapsulation: None,
            });
        }
        let config = crate::refresh::bootstrap_config(geometry)?;
        let plan = Bootstrapper::key_plan_for(&self.params, &config)?;
        let btp_steps = plan.steps();
        let out = Bootstrapper::plan(&self.params, &config)?.output;
        // Each bootstrapping key only up to the level it is used at (KeyPlan); the
        // schedule's own keys up to the output level, where the iterations run.
        let mut evaluation = plan.generate(&mut kg, &self.secret);
        let training: Vec<i64> = steps
            .into_iter()
            .filter(|s| !btp_steps.contains(&s.rem_euclid(self.params.max_slots() as i64)))
            .collect();
        evaluation.merge(kg.gen_evaluation_keys_up_to(&self.secret, false, &training, false, out));
        let encapsulation = Some(kg.gen_encapsulation_keys(&self.secret)?);
        Ok(ServerKeys {
            evaluation,
            encapsulation,
        })
    }

    /// Geometry of `design` under `schedule` with these parameters.
    pub fn geometry(&self, schedule: Schedule, design: &Design) -> Result<Geometry> {
        Geometry::new(
            schedule,
            design.n,
            design.c,
            design.d,
            self.params.max_slots(),
        )
    }

    /// Packs and encrypts X (and X diag(b)), Y, b and the initial weights (secret-key
    /// encryption: fresh ciphertexts serialise with a seed in place of c_1).
    pub fn encrypt_upload(
        &self,
        schedule: Schedule,
        design: &Design,
        iterations: usize,
        w0: &Weights,
        keys: ServerKeys,
    ) -> Result<UploadBundle> {
        let g = self.geometry(schedule, design)?;
        let plan = LevelPlan::new(schedule, &self.params, &g, self.bootstrapping, iterations)?;
        let enc = Encoder::new(self.params.clone());
        let mut groups: BTreeMap<String, Vec<Ciphertext>> = BTreeMap::new();
        let rows = |group: &str, f: &dyn Fn(usize) -> Vec<f64>| -> Result<Vec<Ciphertext>> {
            (0..g.row_cts)
                .map(|m| self.encrypt_slots(&enc, f(m), plan.group_level(group)))
                .collect()
        };
        groups.insert("x".into(), rows("x", &|m| g.pack_x(design, m))?);
        groups.insert("y".into(), rows("y", &|m| g.pack_y(design, m))?);
        match schedule {
            Schedule::Diagonal => {
                groups.insert("xb".into(), rows("xb", &|m| g.pack_xb(design, m))?);
                groups.insert("w0".into(), self.encrypt_diagonals(&enc, &g, &plan, w0)?);
            }
            Schedule::Paper => {
                let b_rows = Weights {
                    c: g.c,
                    d_hat: g.d_hat,
                    w: (0..g.c)
                        .flat_map(|_| design.b[..g.d_hat.min(design.b.len())].to_vec())
                        .collect(),
                };
                let level = plan.group_level("b");
                let b = self.encrypt_slots(&enc, g.pack_weight_rows(&b_rows), level)?;
                groups.insert("b".into(), vec![b]);
                let w = self.encrypt_slots(&enc, g.pack_weight_rows(w0), plan.group_level("w0"))?;
                groups.insert("w0".into(), vec![w]);
            }
        }
        Ok(self.bundle(schedule, g, iterations, keys, groups, None))
    }

    /// The mini-batch upload (see [`crate::batches`]) of `table`, the whole training set
    /// (`classes` classes), split by `spec`: batch `i`'s ciphertexts (per row ciphertext: X,
    /// X diag(b_B) with b_B = lambda (n / |B|) b from the whole set, Y) go to `sink(i, cts)`
    /// as each batch is made, so that beyond the table only one batch is in memory. Returns
    /// the bundle of the keys and the initial weights, without batches (the caller knows
    /// where it put them).
    #[allow(clippy::too_many_arguments)]
    pub fn encrypt_batches(
        &self,
        table: &FeatureTable,
        classes: usize,
        spec: BatchSpec,
        iterations: usize,
        w0: &Weights,
        keys: ServerKeys,
        sink: &mut dyn FnMut(usize, Vec<Ciphertext>) -> Result<()>,
    ) -> Result<UploadBundle> {
        spec.validate()?;
        if spec.rows != table.rows() {
            return Err(TrainError::Mismatch(format!(
                "batches of {} rows in all, the table has {}",
                spec.rows,
                table.rows()
            )));
        }
        let schedule = Schedule::Diagonal;
        let g = Geometry::new(
            schedule,
            spec.batch_rows,
            classes,
            table.cols + 1,
            self.params.max_slots(),
        )?;
        let plan = LevelPlan::new(schedule, &self.params, &g, self.bootstrapping, iterations)?;
        let enc = Encoder::new(self.params.clone());
        let b = Design::preconditioner(table, classes, g.d_hat)?;
        let mut bytes = 0u64;
        for i in 0..spec.count() {
            let scaled = b.iter().map(|v| v * spec.scale(i)).collect();
            let part = Design::rows_of(table, classes, g.d_hat, spec.range(i), scaled)?;
            let gb = Geometry::new(schedule, part.n, g.c, g.d, g.slots)?;
            let per_row: Vec<Vec<Ciphertext>> = (0..gb.row_cts)
                .into_par_iter()
                .map(|m| {
                    [
                        (gb.pack_x(&part, m), "x"),
                        (gb.pack_xb(&part, m), "xb"),
                        (gb.pack_y(&part, m), "y"),
                    ]
                    .into_iter()
                    .map(|(v, group)| self.encrypt_slots(&enc, v, plan.group_level(group)))
                    .collect()
                })
                .collect::<Result<_>>()?;
            let cts: Vec<Ciphertext> = per_row.into_iter().flatten().collect();
            bytes += cts.iter().map(|c| c.serialized_size() as u64).sum::<u64>();
            sink(i, cts)?;
        }
        let mut groups = BTreeMap::new();
        groups.insert("w0".into(), self.encrypt_diagonals(&enc, &g, &plan, w0)?);
        Ok(self.bundle(schedule, g, iterations, keys, groups, Some((spec, bytes))))
    }

    /// Encrypts a slot vector at `level` (secret-key encryption).
    fn encrypt_slots(&self, enc: &Encoder, v: Vec<f64>, level: usize) -> Result<Ciphertext> {
        let pt = enc.encode(
            &v,
            level,
            self.params.default_scale(),
            self.params.max_slots(),
        )?;
        Ok(encrypt_secret(&self.secret, &pt)?)
    }

    /// The initial weights as the diagonal schedule's n_o diagonals.
    fn encrypt_diagonals(
        &self,
        enc: &Encoder,
        g: &Geometry,
        plan: &LevelPlan,
        w0: &Weights,
    ) -> Result<Vec<Ciphertext>> {
        (0..g.diagonals)
            .map(|t| self.encrypt_slots(enc, g.pack_diagonal(w0, t), plan.group_level("w0")))
            .collect()
    }

    /// The bundle of `groups` with its manifest (`batches`: a mini-batch upload's split and
    /// the size of its batch files).
    fn bundle(
        &self,
        schedule: Schedule,
        g: Geometry,
        iterations: usize,
        keys: ServerKeys,
        groups: BTreeMap<String, Vec<Ciphertext>>,
        batches: Option<(BatchSpec, u64)>,
    ) -> UploadBundle {
        let mut bytes: BTreeMap<String, u64> = groups
            .iter()
            .map(|(k, v)| {
                (
                    k.clone(),
                    v.iter().map(|c| c.serialized_size() as u64).sum(),
                )
            })
            .collect();
        if let Some((_, batch_bytes)) = batches {
            bytes.insert("batches".into(), batch_bytes);
        }
        bytes.insert("keys".into(), keys.evaluation.serialized_size() as u64);
        if let Some(e) = &keys.encapsulation {
            bytes.insert("encapsulation".into(), e.serialized_size() as u64);
        }
        let manifest = Manifest {
            version: BUNDLE_VERSION,
            params_name: self.params_name.clone(),
            params: self.literal.clone(),
            fingerprint: self.params.fingerprint_hex(),
            key_id: self.key_id.clone(),
            schedule,
            geometry: g,
            iterations,
            bootstrapping: self.bootstrapping,
            ciphertexts: groups.iter().map(|(k, v)| (k.clone(), v.len())).collect(),
            bytes,
            batches: batches.map(|(spec, _)| spec),
        };
        UploadBundle {
            manifest,
            params: self.params.clone(),
            keys: Arc::new(keys.evaluation),
            encapsulation: keys.encapsulation,
            groups,
            batches: None,
        }
    }

    /// Packs and encrypts feature rows for encrypted inference with the model trained on
    /// `uploaded` (this client's upload): bias first, padded like the training rows, at
    /// [`QUERY_LEVEL`]. The table needs the upload's feature count; its labels are not used.
    pub fn encrypt_query(&self, uploaded: &Manifest, table: &FeatureTable) -> Result<Query> {
        let mut x = Vec::new();
        let manifest = self.encrypt_query_each(uploaded, table, &mut |ct| {
            x.push(ct);
            Ok(())
        })?;
        Ok(Query { manifest, x })
    }

    /// [`Self::encrypt_query`] handing each row ciphertext to `sink` in order as it is made
    /// (a few at a time, in parallel), so that a query of any size is written out in bounded
    /// memory. Returns the query's manifest.
    pub fn encrypt_query_each(
        &self,
        uploaded: &Manifest,
        table: &FeatureTable,
        sink: &mut dyn FnMut(Ciphertext) -> Result<()>,
    ) -> Result<QueryManifest> {
        uploaded.validate(&self.params)?;
        self.check_model_key(uploaded)?;
        let u = uploaded.geometry;
        if table.cols + 1 != u.d {
            return Err(TrainError::Data(format!(
                "the rows have {} features, the model {}",
                table.cols,
                u.d - 1
            )));
        }
        let g = Geometry::new(Schedule::Diagonal, table.rows(), u.c, u.d, u.slots)?;
        let manifest = QueryManifest {
            key_id: self.key_id.clone(),
            fingerprint: self.params.fingerprint_hex(),
            geometry: g,
        };
        manifest.validate(uploaded)?;
        let enc = Encoder::new(self.params.clone());
        let scale = self.params.default_scale();
        let ids: Vec<usize> = (0..g.row_cts).collect();
        for chunk in ids.chunks(16) {
            let cts: Vec<Ciphertext> = chunk
                .par_iter()
                .map(|&m| -> Result<Ciphertext> {
                    let v = g.pack_rows(m, |i| {
                        std::iter::once(1.0)
                            .chain(table.row(i).iter().copied())
                            .collect()
                    });
                    Ok(encrypt_secret(
                        &self.secret,
                        &enc.encode(&v, QUERY_LEVEL, scale, g.slots)?,
                    )?)
                })
                .collect::<Result<_>>()?;
            for ct in cts {
                sink(ct)?;
            }
        }
        Ok(manifest)
    }

    /// Decrypts the scores the server returned for `query` (this client's query for its
    /// upload `uploaded`): per row, the c class scores. Trusts nothing: the query manifest
    /// must be this client's and match the upload, and the score ciphertexts their count,
    /// slots and degree.
    pub fn decrypt_scores(
        &self,
        uploaded: &Manifest,
        query: &QueryManifest,
        scores: &[Ciphertext],
    ) -> Result<Vec<Vec<f64>>> {
        self.decrypt_scores_each(uploaded, query, scores.iter().cloned().map(Ok))
    }

    /// [`Self::decrypt_scores`] reading the score ciphertexts one at a time (e.g. from a
    /// [`crate::container::CiphertextReader`]); there must be exactly as many as the query's
    /// shapes give.
    pub fn decrypt_scores_each(
        &self,
        uploaded: &Manifest,
        query: &QueryManifest,
        scores: impl Iterator<Item = Result<Ciphertext>>,
    ) -> Result<Vec<Vec<f64>>> {
        self.check_model_key(uploaded)?;
        query.validate(uploaded)?;
        let g = query.geometry;
        let enc = Encoder::new(self.params.clone());
        let mut out = Vec::with_capacity(g.n);
        let mut m = 0;
        for ct in scores {
            let ct = ct?;
            if m >= g.row_cts {
                return Err(TrainError::Mismatch(format!(
                    "scores: more than the {} ciphertexts the query's shapes need",
                    g.row_cts
                )));
            }
            check_group("scores", std::slice::from_ref(&ct), 1, g.slots, 0)?;
            let v = enc.decode(&decrypt(&self.secret, &ct)?)?;
            for local in 0..g.rows_per_ct {
                if m * g.rows_per_ct + local >= g.n {
                    break;
                }
                out.push(v[local * g.d_hat..local * g.d_hat + g.c].to_vec());
            }
            m += 1;
        }
        if m != g.row_cts {
            return Err(TrainError::Mismatch(format!(
                "scores: {m} ciphertexts, the query's shapes need {}",
                g.row_cts
            )));
        }
        Ok(out)
    }

    /// Refuses a model made under another key or other parameters.
    pub fn check_model_key(&self, m: &Manifest) -> Result<()> {
        if m.fingerprint != self.params.fingerprint_hex() || m.key_id != self.key_id {
            return Err(TrainError::Mismatch(format!(
                "this model was trained for key {} (parameters {}), not this client's key {}",
                m.key_id,
                &m.fingerprint[..16.min(m.fingerprint.len())],
                self.key_id
            )));
        }
        Ok(())
    }

    /// Checks a model's manifest before anything of the model is read: this client's key and
    /// parameters, the manifest's own consistency with them (`Manifest::validate`), and the
    /// shapes of `uploaded`, the manifest of what this client uploaded.
    pub fn check_model_manifest(&self, m: &Manifest, uploaded: &Manifest) -> Result<()> {
        self.check_model_key(m)?;
        m.validate(&self.params)?;
        let u = uploaded;
        if m.schedule != u.schedule
            || m.geometry != u.geometry
            || m.key_id != u.key_id
            || m.fingerprint != u.fingerprint
            || m.bootstrapping != u.bootstrapping
        {
            return Err(TrainError::Mismatch(format!(
                "the model's manifest ({} schedule, {:?}) is not the upload's ({} schedule, {:?})",
                m.schedule.name(),
                m.geometry,
                u.schedule.name(),
                u.geometry
            )));
        }
        Ok(())
    }

    /// Decrypts the trained weights. Trusts nothing the server sent: refuses a model made
    /// under another key, a manifest that does not validate against the parameters, shapes
    /// other than those of `uploaded` (the manifest of what this client uploaded), and a
    /// weight-ciphertext count or slot count other than those shapes imply.
    pub fn decrypt_model(&self, model: &EncryptedModel, uploaded: &Manifest) -> Result<Weights> {
        self.check_model_manifest(&model.manifest, uploaded)?;
        let m = &model.manifest;
        let g = model.manifest.geometry;
        let want = model_ciphertexts(m.schedule, &g);
        if model.weights.len() != want {
            return Err(TrainError::Mismatch(format!(
                "the model has {} weight ciphertexts, its shapes need {want}",
                model.weights.len()
            )));
        }
        if let Some(ct) = model.weights.iter().find(|ct| ct.slots() != g.slots) {
            return Err(TrainError::Mismatch(format!(
                "a weight ciphertext of {} slots, the shapes need {}",
                ct.slots(),
                g.slots
            )));
        }
        let enc = Encoder::new(self.params.clone());
        let decoded: Vec<Vec<f64>> = model
            .weights
            .iter()
            .map(|ct| Ok(enc.decode(&decrypt(&self.secret, ct)?)?))
            .collect::<Result<_>>()?;
        Ok(match model.manifest.schedule {
            Schedule::Diagonal => g.unpack_diagonals(&decoded),
            Schedule::Paper => {
                g.unpack_weight_rows(decoded.first().map(Vec::as_slice).unwrap_or(&[]))
            }
        })
    }
}
