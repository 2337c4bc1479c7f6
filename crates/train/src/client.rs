//! The data owner's side: keys, the encrypted upload, decryption of the trained model.
//! The secret key never leaves this module's types.

use crate::algorithm::Weights;
use crate::bundle::{BUNDLE_VERSION, EncryptedModel, Manifest, UploadBundle};
use crate::data::Design;
use crate::error::{Result, TrainError};
use crate::layout::{Geometry, Schedule};
use crate::setup::{build_params, choose_params, rotation_steps};
use std::collections::BTreeMap;
use std::sync::Arc;
use volley_ckks::client::{KeyGenerator, SecretKey, decrypt, encrypt_secret};
use volley_ckks::{Ciphertext, Encoder, EvaluationKeys, Params, ParamsLiteral, Serializable};

/// The client's key material for one parameter set.
pub struct Client {
    params_name: String,
    literal: ParamsLiteral,
    params: Arc<Params>,
    secret: SecretKey,
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
    /// Fresh keys for `iterations` of `schedule` (parameters chosen by [`choose_params`]).
    pub fn generate(schedule: Schedule, iterations: usize) -> Result<Self> {
        let (name, lit) = choose_params(schedule, iterations)?;
        Self::generate_with(name, lit)
    }

    /// Fresh keys for explicit parameters.
    pub fn generate_with(params_name: String, literal: ParamsLiteral) -> Result<Self> {
        let params = build_params(&literal)?;
        Self::generate_for(params_name, literal, params)
    }

    /// Fresh keys for already-built parameters (tests build tiny insecure ones explicitly
    /// with `Params::new_insecure`).
    pub fn generate_for(
        params_name: String,
        literal: ParamsLiteral,
        params: Arc<Params>,
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
    ) -> Self {
        Self {
            params_name,
            literal,
            params,
            secret,
            key_id,
        }
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

    /// Relinearisation and rotation keys the server needs for `schedule` on `geometry`.
    pub fn evaluation_keys(&self, schedule: Schedule, geometry: &Geometry) -> EvaluationKeys {
        let mut kg = KeyGenerator::new(self.params.clone());
        kg.gen_evaluation_keys(
            &self.secret,
            true,
            &rotation_steps(schedule, geometry),
            false,
        )
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
        keys: EvaluationKeys,
    ) -> Result<UploadBundle> {
        let g = self.geometry(schedule, design)?;
        let enc = Encoder::new(self.params.clone());
        let level = self.params.max_level();
        let scale = self.params.default_scale();
        let encrypt = |v: Vec<f64>| -> Result<Ciphertext> {
            Ok(encrypt_secret(
                &self.secret,
                &enc.encode(&v, level, scale, g.slots)?,
            )?)
        };
        let mut groups: BTreeMap<String, Vec<Ciphertext>> = BTreeMap::new();
        let rows = |f: &dyn Fn(usize) -> Vec<f64>| -> Result<Vec<Ciphertext>> {
            (0..g.row_cts).map(|m| encrypt(f(m))).collect()
        };
        groups.insert("x".into(), rows(&|m| g.pack_x(design, m))?);
        groups.insert("y".into(), rows(&|m| g.pack_y(design, m))?);
        match schedule {
            Schedule::Diagonal => {
                groups.insert("xb".into(), rows(&|m| g.pack_xb(design, m))?);
                groups.insert(
                    "w0".into(),
                    (0..g.diagonals)
                        .map(|t| encrypt(g.pack_diagonal(w0, t)))
                        .collect::<Result<_>>()?,
                );
            }
            Schedule::Paper => {
                let b_rows = Weights {
                    c: g.c,
                    d_hat: g.d_hat,
                    w: (0..g.c)
                        .flat_map(|_| design.b[..g.d_hat.min(design.b.len())].to_vec())
                        .collect(),
                };
                groups.insert("b".into(), vec![encrypt(g.pack_weight_rows(&b_rows))?]);
                groups.insert("w0".into(), vec![encrypt(g.pack_weight_rows(w0))?]);
            }
        }
        let mut bytes: BTreeMap<String, u64> = groups
            .iter()
            .map(|(k, v)| {
                (
                    k.clone(),
                    v.iter().map(|c| c.serialized_size() as u64).sum(),
                )
            })
            .collect();
        bytes.insert("keys".into(), keys.serialized_size() as u64);
        let manifest = Manifest {
            version: BUNDLE_VERSION,
            params_name: self.params_name.clone(),
            params: self.literal.clone(),
            fingerprint: self.params.fingerprint_hex(),
            key_id: self.key_id.clone(),
            schedule,
            geometry: g,
            iterations,
            ciphertexts: groups.iter().map(|(k, v)| (k.clone(), v.len())).collect(),
            bytes,
        };
        Ok(UploadBundle {
            manifest,
            params: self.params.clone(),
            keys,
            groups,
        })
    }

    /// Decrypts the trained weights; refuses a model made under another key.
    pub fn decrypt_model(&self, model: &EncryptedModel) -> Result<Weights> {
        if model.manifest.fingerprint != self.params.fingerprint_hex()
            || model.manifest.key_id != self.key_id
        {
            return Err(TrainError::Mismatch(format!(
                "this model was trained for key {} (parameters {}), not this client's key {}",
                model.manifest.key_id,
                &model.manifest.fingerprint[..16.min(model.manifest.fingerprint.len())],
                self.key_id
            )));
        }
        let g = model.manifest.geometry;
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
