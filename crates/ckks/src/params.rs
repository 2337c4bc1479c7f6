//! Parameters: a plain serialisable literal checked into an immutable [`Params`].
//!
//! The literal names bit sizes; primes are generated deterministically (largest NTT-friendly
//! primes of each size, q = 1 mod 2N), so the same literal always gives the same chain.
//! Every parameter set is checked against the HomomorphicEncryption.org 128-bit table
//! unless built with [`Params::new_insecure`], which tests use visibly for tiny rings.

use crate::error::{Error, Result};
use crate::ring::{Basis, BasisConverter, Modulus, NttBackend, RingContext, generate_primes};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::sync::Arc;

/// Distribution of the secret key's coefficients.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SecretDistribution {
    /// Uniform over {-1, 0, 1}.
    Ternary,
    /// Exactly `h` nonzero coefficients, each +-1 (sparse secrets for bootstrapping).
    HammingWeight(usize),
}

/// A parameter literal: public fields, serialisable (JSON in the CLI), checked by [`Params::new`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ParamsLiteral {
    /// log2 of the ring degree N.
    pub log_n: u32,
    /// Bit sizes of the ciphertext primes q_0 (base), q_1, ..., q_L.
    pub log_q: Vec<u32>,
    /// Bit sizes of the special primes used by hybrid key switching.
    pub log_p: Vec<u32>,
    /// Number of key-switching digits (dnum).
    pub dnum: usize,
    /// Secret distribution.
    pub secret: SecretDistribution,
    /// log2 of the default encoding scale.
    pub log_scale: u32,
    /// Standard deviation of the discrete Gaussian error (3.19 in the standard).
    #[serde(default = "default_sigma")]
    pub sigma: f64,
}

fn default_sigma() -> f64 {
    3.19
}

/// HomomorphicEncryption.org security standard, 128-bit classical security, uniform ternary
/// secrets: the largest log2(QP) for each log2(N) (the table OpenFHE enforces).
pub const HE_STANDARD_128: [(u32, u32); 6] = [
    (12, 109),
    (13, 218),
    (14, 438),
    (15, 881),
    (16, 1747),
    (17, 3523),
];

/// The 128-bit bound on log2(QP) for N = 2^log_n, if N is in the table.
pub fn security_bound(log_n: u32) -> Option<u32> {
    HE_STANDARD_128
        .iter()
        .find(|&&(l, _)| l == log_n)
        .map(|&(_, b)| b)
}

/// Hamming weight of the ephemeral sparse secret that bootstrapping switches to around
/// ModRaise (sparse-secret encapsulation, Bossuat-Troncoso-Pastoriza-Hubaux 2022).
pub const ENCAPSULATION_HAMMING_WEIGHT: usize = 32;

/// Bit size of the single special prime of the dense-to-sparse encapsulation key.
pub const ENCAPSULATION_LOG_P: u32 = 61;

/// The presets whose chain is laid out for bootstrapping (`circuits::bootstrap`).
pub const BOOTSTRAP_PRESETS: [&str; 1] = ["boot16"];

/// Named presets.
pub const PRESETS: [&str; 7] = [
    "leveled15",
    "leveled16",
    "bench15",
    "bench16",
    "train15",
    "paper16",
    "boot16",
];

impl ParamsLiteral {
    /// A named preset. `leveled15`/`leveled16` are general-purpose; `bench15`/`bench16` are
    /// the parameters OpenFHE used for its published figures (so timings compare);
    /// `train15` is the default encrypted-training chain and `paper16` the paper's schedule.
    pub fn preset(name: &str) -> Option<Self> {
        let lit = |log_n, log_q: Vec<u32>, log_p: Vec<u32>, dnum, log_scale| ParamsLiteral {
            log_n,
            log_q,
            log_p,
            dnum,
            secret: SecretDistribution::Ternary,
            log_scale,
            sigma: default_sigma(),
        };
        let chain = |first: u32, bits: u32, count: usize| {
            let mut v = vec![first];
            v.extend(std::iter::repeat_n(bits, count));
            v
        };
        Some(match name {
            // 14 levels of 40 bits; 3 digits of 5 primes; log QP = 860 <= 881.
            "leveled15" => lit(15, chain(60, 40, 14), vec![60; 4], 3, 40),
            // 30 levels of 40 bits; 4 digits of 8 primes; log QP = 1620 <= 1747.
            "leveled16" => lit(16, chain(60, 40, 30), vec![60; 6], 4, 40),
            // OpenFHE's benchmark chain at N = 2^15: 60 + 10 x 50, dnum 3, P sized to fit 881.
            "bench15" => lit(15, chain(60, 50, 10), vec![60; 4], 3, 50),
            // OpenFHE's benchmark chain at N = 2^16: 60 + 20 x 50, P = 6 x 60, dnum 3, log QP 1420.
            "bench16" => lit(16, chain(60, 50, 20), vec![60; 6], 3, 50),
            // Encrypted training, default schedule: 4 levels per iteration (see volley-train).
            "train15" => lit(15, chain(60, 40, 10), vec![60; 3], 4, 40),
            // The paper's schedule needs ~10 levels per iteration at N = 2^16.
            "paper16" => lit(16, chain(60, 40, 22), vec![60; 5], 4, 40),
            // Bootstrapping (circuits::bootstrap, `BootstrapConfig::new`): from the bottom,
            // q_0 = 60 bits, 10 levels of 40 left to the application, SlotsToCoeffs 3 x 45,
            // EvalMod 9 (4 x 60 for the double angles, 5 x 61 for the interpolant),
            // CoeffsToSlots 3 x 60; P = 7 x 61 covers a digit of 7 primes (dnum 4).
            // log QP = 1747 <= 1747. EvalMod's input y sits at the scale of the first 61-bit
            // prime, so CoeffsToSlots' last rounding is half as large next to it (about one
            // bit of precision); the interpolant's powers square that scale and divide by
            // the next primes, which must be as large for the scales not to drift. Ten
            // levels are what encrypted training needs per bootstrap: two iterations of 4,
            // one to pack the state for bootstrapping and one to unpack it (volley-train's
            // `refresh`).
            "boot16" => {
                let mut q = chain(60, 40, 10);
                q.extend([45; 3]);
                q.extend([60; 4]);
                q.extend([61; 5]);
                q.extend([60; 3]);
                lit(16, q, vec![61; 7], 4, 40)
            }
            _ => return None,
        })
    }
}

/// Checked, immutable parameters with the ring and the key-switching precomputations.
/// Shared as `Arc<Params>`; two handles are compatible when their fingerprints match.
#[derive(Debug)]
pub struct Params {
    literal: ParamsLiteral,
    ring: RingContext,
    log_qp: f64,
    fingerprint: [u8; 32],
    /// Towers of each key-switching digit: digit j covers q-indices [j*alpha, (j+1)*alpha).
    alpha: usize,
    /// ModUp converters: [level][digit], from the digit's primes to the rest of Q_level and P.
    mod_up: Vec<Vec<BasisConverter>>,
    /// ModDown converters from P to Q_level, per level.
    mod_down: Vec<BasisConverter>,
    /// ModDown fused with a rescale, per level >= 1: from P and q_level to Q_{level-1}.
    mod_down_rescale: Vec<Option<BasisConverter>>,
    /// [P^{-1}]_{q_i}.
    p_inv_mod_q: Vec<u64>,
    /// [P]_{q_i}.
    p_mod_q: Vec<u64>,
    insecure: bool,
}

impl Params {
    /// Builds and checks parameters, refusing any above the 128-bit security bound.
    pub fn new(literal: ParamsLiteral) -> Result<Arc<Self>> {
        Self::build(literal, false)
    }

    /// Builds parameters without the security check. For tests with tiny rings only:
    /// the name makes every use visible.
    pub fn new_insecure(literal: ParamsLiteral) -> Result<Arc<Self>> {
        Self::build(literal, true)
    }

    /// A named preset (see [`ParamsLiteral::preset`]).
    pub fn preset(name: &str) -> Result<Arc<Self>> {
        let lit = ParamsLiteral::preset(name).ok_or_else(|| {
            Error::InvalidParameters(format!(
                "unknown preset {name:?}; known: {}",
                PRESETS.join(", ")
            ))
        })?;
        Self::new(lit)
    }

    fn build(literal: ParamsLiteral, insecure: bool) -> Result<Arc<Self>> {
        let bad = |m: String| Err(Error::InvalidParameters(m));
        let min_log_n = if insecure { 4 } else { 12 };
        if !(min_log_n..=17).contains(&literal.log_n) {
            return bad(format!(
                "log_n = {} is outside {min_log_n}..=17",
                literal.log_n
            ));
        }
        if literal.log_q.is_empty() {
            return bad("at least one ciphertext prime is needed".into());
        }
        if literal.dnum == 0 || literal.dnum > literal.log_q.len() {
            return bad(format!(
                "dnum = {} must be between 1 and the number of Q primes ({})",
                literal.dnum,
                literal.log_q.len()
            ));
        }
        if literal.log_p.is_empty() && literal.log_q.len() > 1 {
            return bad("key switching needs at least one special prime P".into());
        }
        if let Some(&b) = literal
            .log_q
            .iter()
            .chain(&literal.log_p)
            .find(|&&b| !(20..=61).contains(&b))
        {
            return bad(format!("prime size {b} bits is outside 20..=61"));
        }
        if !(literal.sigma > 0.0 && literal.sigma < 100.0) {
            return bad(format!("sigma = {} is not in (0, 100)", literal.sigma));
        }
        if literal.log_scale == 0 || literal.log_scale > 60 {
            return bad(format!(
                "log_scale = {} must be in 1..=60",
                literal.log_scale
            ));
        }
        let n = 1usize << literal.log_n;
        if let SecretDistribution::HammingWeight(h) = literal.secret {
            if h == 0 || h > n {
                return bad(format!("Hamming weight {h} must be in 1..={n}"));
            }
        }
        let two_n = 2 * n as u64;
        let mut used: Vec<u64> = Vec::new();
        let mut take = |bits: u32| -> Result<u64> {
            let p = generate_primes(bits, two_n, 1, &used)
                .and_then(|v| v.first().copied())
                .ok_or_else(|| {
                    Error::InvalidParameters(format!("not enough {bits}-bit primes = 1 mod 2N"))
                })?;
            used.push(p);
            Ok(p)
        };
        let q: Vec<u64> = literal
            .log_q
            .iter()
            .map(|&b| take(b))
            .collect::<Result<_>>()?;
        let p: Vec<u64> = literal
            .log_p
            .iter()
            .map(|&b| take(b))
            .collect::<Result<_>>()?;
        let log_qp: f64 = q.iter().chain(&p).map(|&v| (v as f64).log2()).sum();
        if !insecure {
            let bound = security_bound(literal.log_n).unwrap_or(0);
            if log_qp > bound as f64 {
                return Err(Error::Insecure {
                    log_n: literal.log_n,
                    log_qp,
                    bound,
                });
            }
        }
        let alpha = q.len().div_ceil(literal.dnum);
        // Hybrid key switching multiplies the key's error by D_j / P (D_j: a digit's modulus);
        // with P smaller than a digit the noise swamps the message, so such chains are refused.
        let log_p: f64 = p.iter().map(|&v| (v as f64).log2()).sum();
        let max_digit = q
            .chunks(alpha)
            .map(|d| d.iter().map(|&v| (v as f64).log2()).sum::<f64>())
            .fold(0.0, f64::max);
        if q.len() > 1 && log_p + 1.0 < max_digit {
            return Err(Error::InvalidParameters(format!(
                "the special primes ({log_p:.0} bits) must be at least as large as a key-switching digit ({max_digit:.0} bits with dnum = {}); add special primes or raise dnum",
                literal.dnum
            )));
        }
        let ring = RingContext::new(n, &q, &p, NttBackend::Fast)?;
        let qm: Vec<Modulus> = (0..q.len()).map(|i| *ring.q(i)).collect();
        let pm: Vec<Modulus> = (0..p.len()).map(|i| *ring.p(i)).collect();
        let mod_up = (0..q.len())
            .map(|level| {
                (0..(level + 1).div_ceil(alpha))
                    .map(|j| {
                        let lo = j * alpha;
                        let hi = ((j + 1) * alpha).min(level + 1);
                        let to: Vec<Modulus> = qm[..level + 1]
                            .iter()
                            .enumerate()
                            .filter(|&(i, _)| i < lo || i >= hi)
                            .map(|(_, m)| *m)
                            .chain(pm.iter().copied())
                            .collect();
                        BasisConverter::new(&qm[lo..hi], &to)
                    })
                    .collect()
            })
            .collect();
        let mod_down = (0..q.len())
            .map(|level| BasisConverter::new(&pm, &qm[..level + 1]))
            .collect();
        let mod_down_rescale = (0..q.len())
            .map(|level| {
                (level > 0 && !pm.is_empty()).then(|| {
                    let from: Vec<Modulus> = pm
                        .iter()
                        .copied()
                        .chain(std::iter::once(qm[level]))
                        .collect();
                    BasisConverter::new(&from, &qm[..level])
                })
            })
            .collect();
        let p_mod_q: Vec<u64> = qm
            .iter()
            .map(|m| p.iter().fold(1u64, |acc, &pv| m.mul(acc, m.reduce(pv))))
            .collect();
        let p_inv_mod_q = qm
            .iter()
            .zip(&p_mod_q)
            .map(|(m, &v)| m.inv(v).unwrap_or(0))
            .collect();
        let fingerprint = fingerprint(&literal, &q, &p);
        Ok(Arc::new(Self {
            literal,
            ring,
            log_qp,
            fingerprint,
            alpha,
            mod_up,
            mod_down,
            mod_down_rescale,
            p_inv_mod_q,
            p_mod_q,
            insecure,
        }))
    }

    /// The literal these parameters were built from.
    pub fn literal(&self) -> &ParamsLiteral {
        &self.literal
    }

    /// The ring with its prime chain.
    pub fn ring(&self) -> &RingContext {
        &self.ring
    }

    /// Ring degree N.
    pub fn n(&self) -> usize {
        self.ring.n()
    }

    /// log2 N.
    pub fn log_n(&self) -> u32 {
        self.literal.log_n
    }

    /// Maximum number of complex slots, N/2.
    pub fn max_slots(&self) -> usize {
        self.n() / 2
    }

    /// Highest level L (number of Q primes minus one).
    pub fn max_level(&self) -> usize {
        self.ring.num_q() - 1
    }

    /// The default scale 2^log_scale.
    pub fn default_scale(&self) -> f64 {
        2f64.powi(self.literal.log_scale as i32)
    }

    /// log2(QP).
    pub fn log_qp(&self) -> f64 {
        self.log_qp
    }

    /// The 128-bit bound for this N (None for rings below 2^12).
    pub fn security_bound(&self) -> Option<u32> {
        security_bound(self.literal.log_n)
    }

    /// True when built with [`Params::new_insecure`].
    pub fn is_insecure(&self) -> bool {
        self.insecure
    }

    /// Number of key-switching digits.
    pub fn dnum(&self) -> usize {
        self.literal.dnum
    }

    /// Primes per digit (alpha).
    pub fn alpha(&self) -> usize {
        self.alpha
    }

    /// Number of special primes.
    pub fn num_p(&self) -> usize {
        self.ring.num_p()
    }

    /// SHA-256 of the canonical description (N, primes, dnum, secret, scale, sigma).
    pub fn fingerprint(&self) -> [u8; 32] {
        self.fingerprint
    }

    /// Short hex form of the fingerprint, for messages and manifests.
    pub fn fingerprint_hex(&self) -> String {
        self.fingerprint
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    /// Q basis at `level`.
    pub fn basis_q(&self, level: usize) -> Basis {
        Basis { q: level + 1, p: 0 }
    }

    /// Q_level together with P.
    pub fn basis_qp(&self, level: usize) -> Basis {
        Basis {
            q: level + 1,
            p: self.num_p(),
        }
    }

    /// Digits active at `level`: ranges of q-indices.
    pub fn digits(&self, level: usize) -> impl Iterator<Item = std::ops::Range<usize>> + '_ {
        (0..(level + 1).div_ceil(self.alpha))
            .map(move |j| j * self.alpha..((j + 1) * self.alpha).min(level + 1))
    }

    pub(crate) fn mod_up(&self, level: usize, digit: usize) -> &BasisConverter {
        &self.mod_up[level][digit]
    }

    pub(crate) fn mod_down(&self, level: usize) -> &BasisConverter {
        &self.mod_down[level]
    }

    pub(crate) fn mod_down_rescale(&self, level: usize) -> Option<&BasisConverter> {
        self.mod_down_rescale.get(level).and_then(Option::as_ref)
    }

    pub(crate) fn p_inv_mod_q(&self) -> &[u64] {
        &self.p_inv_mod_q
    }

    pub(crate) fn p_mod_q(&self) -> &[u64] {
        &self.p_mod_q
    }

    /// The parameters of the dense-to-sparse encapsulation key of bootstrapping: the same
    /// N, the base prime q_0 alone and one special prime of [`ENCAPSULATION_LOG_P`] bits,
    /// secret of Hamming weight [`ENCAPSULATION_HAMMING_WEIGHT`].
    ///
    /// **Why so small a modulus.** That key is an RLWE encryption of the dense secret under
    /// the *sparse* one, and a sparse secret is only safe under a small modulus: at
    /// N = 2^16, log(q_0 p) of about 121 bits is far below the 1747 bits the standard allows
    /// a dense ternary secret, which leaves the margin that hybrid attacks on a weight-32
    /// secret take. Generating the same key over the whole chain was Lattigo v5.0.0-v6.1.0's
    /// flaw (about 106 bits of security instead of 128; Lattigo's SECURITY.md,
    /// `genEncapsulationEvaluationKeysNew`). The sparse-to-dense key, by contrast, encrypts
    /// the sparse secret under the dense one and may span the whole chain. The sparse secret
    /// itself is never used to encrypt data and is dropped (zeroized) after key generation.
    pub fn encapsulation_params(&self) -> Result<Arc<Params>> {
        let lit = ParamsLiteral {
            log_n: self.literal.log_n,
            log_q: vec![self.literal.log_q[0]],
            log_p: vec![ENCAPSULATION_LOG_P],
            dnum: 1,
            secret: SecretDistribution::HammingWeight(ENCAPSULATION_HAMMING_WEIGHT.min(self.n())),
            log_scale: self.literal.log_scale,
            sigma: self.literal.sigma,
        };
        let small = if self.insecure {
            Params::new_insecure(lit)?
        } else {
            Params::new(lit)?
        };
        // Primes are drawn largest-first by size, q_0 first in both chains: the same q_0.
        if small.ring().q(0).value() != self.ring().q(0).value() {
            return Err(Error::InvalidParameters(
                "internal: the encapsulation parameters do not share q_0".into(),
            ));
        }
        Ok(small)
    }

    /// A one-line human summary: N, slots, levels, log QP, dnum and the bound.
    pub fn summary(&self) -> String {
        format!(
            "N = 2^{} ({} slots), L = {} levels, log2(QP) = {:.1} (bound {}), dnum = {} (alpha = {}, {} special primes), scale = 2^{}{}",
            self.log_n(),
            self.max_slots(),
            self.max_level(),
            self.log_qp,
            self.security_bound()
                .map_or("none".to_string(), |b| b.to_string()),
            self.dnum(),
            self.alpha,
            self.num_p(),
            self.literal.log_scale,
            if self.insecure { " [INSECURE]" } else { "" }
        )
    }
}

fn fingerprint(lit: &ParamsLiteral, q: &[u64], p: &[u64]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(b"volley-ckks params v1");
    h.update(lit.log_n.to_le_bytes());
    h.update((q.len() as u64).to_le_bytes());
    for v in q {
        h.update(v.to_le_bytes());
    }
    h.update((p.len() as u64).to_le_bytes());
    for v in p {
        h.update(v.to_le_bytes());
    }
    h.update((lit.dnum as u64).to_le_bytes());
    match lit.secret {
        SecretDistribution::Ternary => h.update([0u8]),
        SecretDistribution::HammingWeight(w) => {
            h.update([1u8]);
            h.update((w as u64).to_le_bytes());
        }
    }
    h.update(lit.log_scale.to_le_bytes());
    h.update(lit.sigma.to_le_bytes());
    h.finalize().into()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    #[test]
    fn presets_are_secure_and_match_issue() {
        for name in PRESETS {
            let p = Params::preset(name).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert!(
                p.log_qp() <= p.security_bound().unwrap_or(0) as f64,
                "{name}"
            );
            assert!(!p.summary().is_empty());
        }
        let b16 = Params::preset("bench16").expect("bench16");
        assert_eq!(b16.n(), 1 << 16);
        assert_eq!(b16.max_level() + 1, 21);
        assert_eq!(b16.num_p(), 6);
        assert_eq!(b16.alpha(), 7);
        assert_eq!(b16.log_qp().floor() as u32, 1419);
    }

    #[test]
    fn refuses_insecure_and_invalid() {
        let mut lit = ParamsLiteral::preset("leveled15").expect("preset");
        lit.log_q.extend([40; 3]);
        lit.dnum = 4;
        match Params::new(lit.clone()) {
            Err(Error::Insecure {
                log_n: 15,
                bound: 881,
                ..
            }) => {}
            other => panic!("expected refusal, got {other:?}"),
        }
        assert!(Params::new_insecure(lit).is_ok());
        let mut bad = ParamsLiteral::preset("leveled15").expect("preset");
        bad.dnum = 0;
        assert!(matches!(Params::new(bad), Err(Error::InvalidParameters(_))));
        let mut thin = ParamsLiteral::preset("leveled15").expect("preset");
        thin.log_p = vec![60; 2];
        assert!(
            Params::new(thin)
                .expect_err("P below a digit")
                .to_string()
                .contains("special primes")
        );
        let mut small = ParamsLiteral::preset("leveled15").expect("preset");
        small.log_n = 10;
        assert!(
            Params::new(small).is_err(),
            "rings below 2^12 are only for insecure tests"
        );
    }

    #[test]
    fn deterministic_primes_and_fingerprint() {
        let a = Params::preset("train15").expect("train15");
        let b = Params::preset("train15").expect("train15");
        assert_eq!(a.ring().q_values(), b.ring().q_values());
        assert_eq!(a.fingerprint(), b.fingerprint());
        assert_ne!(
            a.fingerprint(),
            Params::preset("bench15").expect("bench15").fingerprint()
        );
    }
}
