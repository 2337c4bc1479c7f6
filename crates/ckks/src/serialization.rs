//! Versioned binary serialization of parameters, keys, ciphertexts and plaintexts.
//!
//! Every object is one self-describing byte string (all integers little-endian):
//!
//! ```text
//! offset  size  field
//! 0       4     magic "VLCK"
//! 4       2     format version (u16, currently 3)
//! 6       1     object kind (u8, see [`ObjectKind`])
//! 7       32    parameter fingerprint (SHA-256, [`Params::fingerprint`])
//! 39      ...   body (per kind, below); no trailing bytes are allowed
//! ```
//!
//! Bodies (a "poly over B" is the residues of tower 0, then tower 1, ... of basis B, each
//! tower bit-packed with exactly as many bits as its prime has, least significant bit first;
//! N >= 16 makes every tower a whole number of bytes):
//!
//! - **Params** (kind 1): flags u8 (bit 0: insecure), log_n u8, log_scale u8, dnum u8,
//!   secret u8 (0 ternary, 1 Hamming weight followed by h u32), sigma f64, count u8 and
//!   sizes u8 of the Q primes, count u8 and sizes u8 of the P primes. The header's
//!   fingerprint is the one of these parameters and is checked after rebuilding them.
//! - **Ciphertext** (kind 2): level u16, log2(slots) u8, degree u8 (1 or 2), seeded u8
//!   (0 or 1; 1 only with degree 1), scale f64; then c_0 over Q_level and the 32-byte
//!   seed of c_1 if seeded, else c_0..c_degree over Q_level.
//! - **Plaintext** (kind 3): level u16, log2(slots) u8, scale f64, the polynomial over Q_level.
//! - **PublicKey** (kind 4): b over Q_L, then the 32-byte seed of a.
//! - **SwitchingKey** (kind 5), **RelinearizationKey** (kind 6): the highest level l the
//!   key serves u16 (at most L), digit count u8 (the digits of Q_l), the 32-byte seed of the
//!   a_j, then b_0.. over Q_l P.
//! - **GaloisKey** (kind 7): Galois element u64 (odd, < 2N), then a switching-key body.
//! - **EvaluationKeys** (kind 8): has_relin u8 (0/1), the relinearization body if present,
//!   count u32, then `count` Galois-key bodies in strictly increasing element order.
//! - **SecretKey** (kind 9, `client` feature only): N ternary coefficients, 2 bits each
//!   (00 = 0, 01 = 1, 10 = -1; 11 is invalid), four per byte, least significant first.
//!   Written only by the client's explicit [`save_secret_key`].
//!
//! Polynomials are stored in the NTT form the library keeps them in. Uniform polynomials
//! (the `a` of keys and of fresh secret-key ciphertexts) are stored as their 32-byte seed
//! and re-expanded with ChaCha20 on load, which halves those objects.
//!
//! Loading never trusts a byte: magic, version, kind, fingerprint, every length and every
//! residue (< its prime) are checked, lengths are checked against the sizes the receiver's
//! parameters imply before anything is allocated, and every failure is an
//! [`Error::Decode`]. `crates/ckks/FORMAT.md` holds the same description with examples.

use crate::error::{Error, Result};
use crate::params::{Params, ParamsLiteral, SecretDistribution};
use crate::ring::{Basis, Ntt, Poly, RingContext};
use crate::rlwe::ciphertext::{Ciphertext, Plaintext};
use crate::rlwe::encryptor::expand_seeded_a;
use crate::rlwe::keys::{
    EncapsulationKeys, EvaluationKeys, GaloisKey, PublicKey, RelinearizationKey, SwitchingKey,
};
use crate::rlwe::sampler::Prng;
use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::sync::Arc;

/// The four magic bytes every object starts with.
pub const MAGIC: [u8; 4] = *b"VLCK";
/// The format version this build writes and the only one it reads.
pub const FORMAT_VERSION: u16 = 3;
/// Length of the common header: magic, version, kind, fingerprint.
pub const HEADER_LEN: usize = 4 + 2 + 1 + 32;
/// Most primes (Q and P together) a serialized parameter set may have; bounds the work a
/// parameter file can ask for (the largest preset has 27).
pub const MAX_PRIMES: usize = 128;

const SEED_LEN: usize = 32;
const CT_FIXED: usize = 2 + 1 + 1 + 1 + 8;
const PT_FIXED: usize = 2 + 1 + 8;

/// The kind byte of the header.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum ObjectKind {
    /// A parameter set.
    Params = 1,
    /// A ciphertext.
    Ciphertext = 2,
    /// A plaintext.
    Plaintext = 3,
    /// A public key.
    PublicKey = 4,
    /// A bare switching key.
    SwitchingKey = 5,
    /// A relinearization key.
    RelinearizationKey = 6,
    /// A Galois (rotation or conjugation) key.
    GaloisKey = 7,
    /// A bundle of evaluation keys.
    EvaluationKeys = 8,
    /// A secret key (written only by the client's explicit save).
    SecretKey = 9,
    /// Bootstrapping's sparse-secret encapsulation keys.
    EncapsulationKeys = 10,
}

impl ObjectKind {
    fn from_u8(v: u8) -> Option<Self> {
        Some(match v {
            1 => Self::Params,
            2 => Self::Ciphertext,
            3 => Self::Plaintext,
            4 => Self::PublicKey,
            5 => Self::SwitchingKey,
            6 => Self::RelinearizationKey,
            7 => Self::GaloisKey,
            8 => Self::EvaluationKeys,
            9 => Self::SecretKey,
            10 => Self::EncapsulationKeys,
            _ => return None,
        })
    }

    /// Human name, as used in error messages.
    pub fn name(self) -> &'static str {
        match self {
            Self::Params => "parameters",
            Self::Ciphertext => "ciphertext",
            Self::Plaintext => "plaintext",
            Self::PublicKey => "public key",
            Self::SwitchingKey => "switching key",
            Self::RelinearizationKey => "relinearization key",
            Self::GaloisKey => "galois key",
            Self::EvaluationKeys => "evaluation keys",
            Self::SecretKey => "secret key",
            Self::EncapsulationKeys => "encapsulation keys",
        }
    }
}

/// The decoded common header of a serialized object.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// Format version.
    pub version: u16,
    /// What the object is.
    pub kind: ObjectKind,
    /// Fingerprint of the parameters the object was made for.
    pub fingerprint: [u8; 32],
}

/// Reads and checks the common header (magic, version, kind) without decoding the body:
/// lets a tool tell what a file holds and for which parameters.
pub fn read_header(bytes: &[u8]) -> Result<Header> {
    let mut r = Reader::new(bytes, "object header");
    header_fields(&mut r)
}

fn header_fields(r: &mut Reader<'_>) -> Result<Header> {
    let magic = r.take(4)?;
    if magic != MAGIC {
        return Err(r.err(format!(
            "bad magic {magic:02x?} (expected \"VLCK\"): not a volley-ckks object"
        )));
    }
    let version = r.u16()?;
    if version != FORMAT_VERSION {
        return Err(r.err(format!(
            "unsupported format version {version} (this build reads version {FORMAT_VERSION})"
        )));
    }
    let k = r.u8()?;
    let kind = ObjectKind::from_u8(k).ok_or_else(|| r.err(format!("unknown object kind {k}")))?;
    let fingerprint = r.seed()?;
    Ok(Header {
        version,
        kind,
        fingerprint,
    })
}

fn short_hex(fp: &[u8; 32]) -> String {
    fp.iter().take(4).map(|b| format!("{b:02x}")).collect()
}

/// Opens an object of `kind`, checking the header against the receiver's parameters.
fn open<'a>(bytes: &'a [u8], kind: ObjectKind, params: &Params) -> Result<Reader<'a>> {
    let mut r = Reader::new(bytes, kind.name());
    let h = header_fields(&mut r)?;
    if h.kind != kind {
        return Err(r.err(format!(
            "this is a {}, not a {}",
            h.kind.name(),
            kind.name()
        )));
    }
    if h.fingerprint != params.fingerprint() {
        return Err(r.err(format!(
            "made for other parameters (fingerprint {}.. != {}..)",
            short_hex(&h.fingerprint),
            short_hex(&params.fingerprint())
        )));
    }
    Ok(r)
}

fn write_header(out: &mut Vec<u8>, kind: ObjectKind, fingerprint: &[u8; 32]) {
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    out.push(kind as u8);
    out.extend_from_slice(fingerprint);
}

/// A bounds-checked cursor: every read either succeeds or returns a decode error.
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    what: &'static str,
}

impl<'a> Reader<'a> {
    fn new(buf: &'a [u8], what: &'static str) -> Self {
        Self { buf, pos: 0, what }
    }

    fn err(&self, msg: String) -> Error {
        Error::Decode {
            what: self.what,
            msg,
        }
    }

    fn remaining(&self) -> usize {
        self.buf.len().saturating_sub(self.pos)
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let rem = self.remaining();
        if n > rem {
            return Err(self.err(format!(
                "truncated: {n} bytes needed at offset {}, only {rem} left",
                self.pos
            )));
        }
        let s = self
            .buf
            .get(self.pos..self.pos + n)
            .ok_or_else(|| self.err("internal bounds error".into()))?;
        self.pos += n;
        Ok(s)
    }

    fn array<const K: usize>(&mut self) -> Result<[u8; K]> {
        let mut a = [0u8; K];
        a.copy_from_slice(self.take(K)?);
        Ok(a)
    }

    fn u8(&mut self) -> Result<u8> {
        Ok(self.array::<1>()?[0])
    }

    fn u16(&mut self) -> Result<u16> {
        Ok(u16::from_le_bytes(self.array()?))
    }

    fn u32(&mut self) -> Result<u32> {
        Ok(u32::from_le_bytes(self.array()?))
    }

    fn u64(&mut self) -> Result<u64> {
        Ok(u64::from_le_bytes(self.array()?))
    }

    fn f64(&mut self) -> Result<f64> {
        Ok(f64::from_bits(self.u64()?))
    }

    fn seed(&mut self) -> Result<[u8; 32]> {
        self.array()
    }

    fn bool(&mut self, field: &str) -> Result<bool> {
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            v => Err(self.err(format!("{field} flag is {v}, expected 0 or 1"))),
        }
    }

    /// Fails unless every byte was consumed.
    fn finish(self) -> Result<()> {
        match self.remaining() {
            0 => Ok(()),
            rem => Err(self.err(format!(
                "{rem} unexpected trailing bytes at offset {}",
                self.pos
            ))),
        }
    }
}

// ----- bit-packed residues -----

fn tower_bytes(n: usize, bits: u32) -> usize {
    (n * bits as usize).div_ceil(8)
}

/// Bytes of a polynomial over `basis`: each tower packed with its prime's bit length.
/// An upper bound on the serialized size of any ciphertext of `params` (degree 2 at the top
/// level, with every header field): what a stream reader may allocate for one before it has
/// decoded it.
pub fn max_ciphertext_size(params: &Params) -> usize {
    HEADER_LEN + 64 + 3 * poly_bytes(params.ring(), params.basis_q(params.max_level()))
}

fn poly_bytes(ring: &RingContext, basis: Basis) -> usize {
    (0..basis.len())
        .map(|t| tower_bytes(ring.n(), ring.modulus(basis, t).bits()))
        .sum()
}

fn write_poly(out: &mut Vec<u8>, ring: &RingContext, basis: Basis, poly: &Poly<Ntt>) {
    for (t, tower) in poly.data().chunks(ring.n()).enumerate().take(basis.len()) {
        let bits = ring.modulus(basis, t).bits();
        let mut acc: u128 = 0;
        let mut have = 0u32;
        for &v in tower {
            acc |= u128::from(v) << have;
            have += bits;
            // Flush whole 32-bit words first: a u128 holds up to 7 + 61 pending bits.
            while have >= 32 {
                out.extend_from_slice(&(acc as u32).to_le_bytes());
                acc >>= 32;
                have -= 32;
            }
        }
        while have > 0 {
            out.push(acc as u8);
            acc >>= 8;
            have = have.saturating_sub(8);
        }
    }
}

/// Reads a polynomial over `basis`, checking every residue against its prime. The byte
/// slice is taken before allocating, so a lying length can never allocate more than ~8x
/// the input actually present.
fn read_poly(
    r: &mut Reader<'_>,
    ring: &RingContext,
    basis: Basis,
    name: &str,
) -> Result<Poly<Ntt>> {
    let n = ring.n();
    let bytes = r.take(poly_bytes(ring, basis))?;
    let mut data = Vec::with_capacity(n * basis.len());
    let mut off = 0usize;
    for t in 0..basis.len() {
        let m = ring.modulus(basis, t);
        let (q, bits) = (m.value(), m.bits());
        let len = tower_bytes(n, bits);
        let chunk = bytes
            .get(off..off + len)
            .ok_or_else(|| r.err("internal bounds error".into()))?;
        off += len;
        let mask = (1u128 << bits) - 1;
        let mut acc: u128 = 0;
        let mut have = 0u32;
        let mut count = 0usize;
        for &b in chunk {
            acc |= u128::from(b) << have;
            have += 8;
            while have >= bits && count < n {
                let v = (acc & mask) as u64;
                if v >= q {
                    return Err(r.err(format!(
                        "{name}: residue {count} of tower {t} is {v}, not below its prime {q}"
                    )));
                }
                data.push(v);
                acc >>= bits;
                have -= bits;
                count += 1;
            }
        }
        if count != n || acc != 0 {
            return Err(r.err(format!("{name}: tower {t} has nonzero padding bits")));
        }
    }
    Ok(Poly::from_data(n, basis, data))
}

// ----- sizes -----

/// Exact serialized size of a ciphertext: header, metadata and bit-packed residues; c_1 is
/// the 32-byte seed while the ciphertext is a fresh secret-key encryption.
pub fn ciphertext_size(ct: &Ciphertext) -> usize {
    ciphertext_size_for(ct.params(), ct.level(), ct.degree(), ct.seed().is_some())
}

/// Exact serialized size of a ciphertext of `degree` at `level` (seeded: a fresh
/// secret-key encryption, whose c_1 is stored as its seed), without building one.
pub fn ciphertext_size_for(params: &Params, level: usize, degree: usize, seeded: bool) -> usize {
    let per_poly = poly_bytes(params.ring(), params.basis_q(level.min(params.max_level())));
    let body = if seeded {
        per_poly + SEED_LEN
    } else {
        (degree + 1) * per_poly
    };
    HEADER_LEN + CT_FIXED + body
}

/// Exact serialized size of a plaintext.
pub fn plaintext_size(pt: &Plaintext) -> usize {
    let params = pt.params();
    HEADER_LEN + PT_FIXED + poly_bytes(params.ring(), params.basis_q(pt.level()))
}

/// Exact serialized size of a public key (b plus the seed of a).
pub fn public_key_size(params: &Params) -> usize {
    HEADER_LEN + poly_bytes(params.ring(), params.ring().q_basis()) + SEED_LEN
}

/// Bytes of a switching-key body serving ciphertexts up to `level`.
fn switching_body_size(params: &Params, level: usize) -> usize {
    let digits = params.digits(level).count();
    2 + 1 + SEED_LEN + digits * poly_bytes(params.ring(), params.basis_qp(level))
}

/// Exact serialized size of a standalone switching (or relinearization) key: the b_j
/// residues plus one seed for all a_j.
pub fn switching_key_size(k: &SwitchingKey) -> usize {
    HEADER_LEN + switching_body_size(k.params(), k.max_level())
}

/// Exact serialized size of a standalone Galois key (one rotation or conjugation key)
/// serving ciphertexts up to `level`.
pub fn galois_key_size(params: &Params, level: usize) -> usize {
    HEADER_LEN + 8 + switching_body_size(params, level)
}

/// Exact serialized size of an evaluation-key bundle for `params` whose keys all serve
/// ciphertexts up to `level`.
pub fn evaluation_keys_size(
    params: &Params,
    level: usize,
    relin: bool,
    galois_keys: usize,
) -> usize {
    evaluation_keys_size_at(
        params,
        relin.then_some(level),
        std::iter::repeat_n(level, galois_keys),
    )
}

/// Exact serialized size of an evaluation-key bundle whose relinearisation key (if any) and
/// Galois keys serve ciphertexts up to their own levels.
pub fn evaluation_keys_size_at(
    params: &Params,
    relin: Option<usize>,
    galois_levels: impl IntoIterator<Item = usize>,
) -> usize {
    HEADER_LEN
        + 1
        + relin.map_or(0, |l| switching_body_size(params, l))
        + 4
        + galois_levels
            .into_iter()
            .map(|l| 8 + switching_body_size(params, l))
            .sum::<usize>()
}

// ----- the public interface -----

/// Objects with a binary form. Decoding takes the receiver's parameters and refuses
/// objects made for others.
pub trait Serializable: Sized {
    /// The header's kind byte.
    const KIND: ObjectKind;

    /// The serialized bytes.
    fn to_bytes(&self) -> Vec<u8>;

    /// Writes the serialized bytes.
    fn write_to(&self, w: &mut impl Write) -> Result<()> {
        w.write_all(&self.to_bytes())?;
        Ok(())
    }

    /// Decodes and validates an object made for `params`.
    fn from_bytes(params: &Arc<Params>, bytes: &[u8]) -> Result<Self>;

    /// Exact length of [`Serializable::to_bytes`].
    fn serialized_size(&self) -> usize;
}

fn read_level(r: &mut Reader<'_>, params: &Params) -> Result<usize> {
    let level = usize::from(r.u16()?);
    if level > params.max_level() {
        return Err(r.err(format!(
            "level {level} exceeds the parameters' maximum {}",
            params.max_level()
        )));
    }
    Ok(level)
}

fn read_slots(r: &mut Reader<'_>, params: &Params) -> Result<usize> {
    let log_slots = u32::from(r.u8()?);
    if log_slots >= params.log_n() {
        return Err(r.err(format!(
            "log2(slots) = {log_slots} exceeds log2(N/2) = {}",
            params.log_n() - 1
        )));
    }
    Ok(1usize << log_slots)
}

fn read_scale(r: &mut Reader<'_>) -> Result<f64> {
    let scale = r.f64()?;
    if !(scale.is_finite() && scale > 0.0) {
        return Err(r.err(format!("scale {scale} is not positive and finite")));
    }
    Ok(scale)
}

impl Serializable for Ciphertext {
    const KIND: ObjectKind = ObjectKind::Ciphertext;

    fn to_bytes(&self) -> Vec<u8> {
        let params = self.params();
        let ring = params.ring();
        let basis = params.basis_q(self.level());
        let mut out = Vec::with_capacity(ciphertext_size(self));
        write_header(&mut out, Self::KIND, &params.fingerprint());
        out.extend_from_slice(&(self.level() as u16).to_le_bytes());
        out.push(self.slots().trailing_zeros() as u8);
        out.push(self.degree() as u8);
        out.push(u8::from(self.seed().is_some()));
        out.extend_from_slice(&self.scale().to_bits().to_le_bytes());
        match self.seed() {
            Some(seed) => {
                if let Some(c0) = self.polys().first() {
                    write_poly(&mut out, ring, basis, c0);
                }
                out.extend_from_slice(&seed);
            }
            None => self
                .polys()
                .iter()
                .for_each(|p| write_poly(&mut out, ring, basis, p)),
        }
        out
    }

    fn from_bytes(params: &Arc<Params>, bytes: &[u8]) -> Result<Self> {
        let mut r = open(bytes, Self::KIND, params)?;
        let level = read_level(&mut r, params)?;
        let slots = read_slots(&mut r, params)?;
        let degree = r.u8()?;
        if !(1..=2).contains(&degree) {
            return Err(r.err(format!("degree {degree} is not 1 or 2")));
        }
        let seeded = r.bool("seeded")?;
        if seeded && degree != 1 {
            return Err(r.err("a seeded ciphertext must have degree 1".into()));
        }
        let scale = read_scale(&mut r)?;
        let ring = params.ring();
        let basis = params.basis_q(level);
        let ct = if seeded {
            let c0 = read_poly(&mut r, ring, basis, "c0")?;
            let seed = r.seed()?;
            r.finish()?;
            let c1 = expand_seeded_a(params, seed, level);
            Ciphertext::new(params.clone(), vec![c0, c1], level, scale, slots).with_seed(seed)
        } else {
            // Check the whole length before decoding (and allocating) any component.
            let want = (usize::from(degree) + 1) * poly_bytes(ring, basis);
            if r.remaining() != want {
                return Err(r.err(format!(
                    "body has {} bytes, expected {want} for degree {degree} at level {level}",
                    r.remaining()
                )));
            }
            let names = ["c0", "c1", "c2"];
            let polys = names[..=usize::from(degree)]
                .iter()
                .map(|name| read_poly(&mut r, ring, basis, name))
                .collect::<Result<Vec<_>>>()?;
            r.finish()?;
            Ciphertext::new(params.clone(), polys, level, scale, slots)
        };
        Ok(ct)
    }

    fn serialized_size(&self) -> usize {
        ciphertext_size(self)
    }
}

impl Serializable for Plaintext {
    const KIND: ObjectKind = ObjectKind::Plaintext;

    fn to_bytes(&self) -> Vec<u8> {
        let params = self.params();
        let mut out = Vec::with_capacity(plaintext_size(self));
        write_header(&mut out, Self::KIND, &params.fingerprint());
        out.extend_from_slice(&(self.level() as u16).to_le_bytes());
        out.push(self.slots().trailing_zeros() as u8);
        out.extend_from_slice(&self.scale().to_bits().to_le_bytes());
        write_poly(
            &mut out,
            params.ring(),
            params.basis_q(self.level()),
            self.poly(),
        );
        out
    }

    fn from_bytes(params: &Arc<Params>, bytes: &[u8]) -> Result<Self> {
        let mut r = open(bytes, Self::KIND, params)?;
        let level = read_level(&mut r, params)?;
        let slots = read_slots(&mut r, params)?;
        let scale = read_scale(&mut r)?;
        let poly = read_poly(&mut r, params.ring(), params.basis_q(level), "polynomial")?;
        r.finish()?;
        Ok(Plaintext {
            params: params.clone(),
            poly,
            level,
            scale,
            slots,
        })
    }

    fn serialized_size(&self) -> usize {
        plaintext_size(self)
    }
}

impl Serializable for PublicKey {
    const KIND: ObjectKind = ObjectKind::PublicKey;

    fn to_bytes(&self) -> Vec<u8> {
        let params = self.params();
        let ring = params.ring();
        let mut out = Vec::with_capacity(public_key_size(params));
        write_header(&mut out, Self::KIND, &params.fingerprint());
        write_poly(&mut out, ring, ring.q_basis(), &self.b);
        out.extend_from_slice(&self.seed);
        out
    }

    fn from_bytes(params: &Arc<Params>, bytes: &[u8]) -> Result<Self> {
        let mut r = open(bytes, Self::KIND, params)?;
        let ring = params.ring();
        let b = read_poly(&mut r, ring, ring.q_basis(), "b")?;
        let seed = r.seed()?;
        r.finish()?;
        // The same stream the key generator used (rlwe::keygen::gen_public_key).
        let a = Prng::from_seed_stream(seed, 0).uniform_poly(ring, ring.q_basis());
        Ok(PublicKey {
            params: params.clone(),
            b,
            a,
            seed,
        })
    }

    fn serialized_size(&self) -> usize {
        public_key_size(self.params())
    }
}

fn write_switching_body(out: &mut Vec<u8>, k: &SwitchingKey) {
    let ring = k.params.ring();
    let level = k.max_level();
    out.extend_from_slice(&(level as u16).to_le_bytes());
    out.push(k.b.len() as u8);
    out.extend_from_slice(&k.seed);
    for b in &k.b {
        write_poly(out, ring, k.params.basis_qp(level), b);
    }
}

fn read_switching_body(r: &mut Reader<'_>, params: &Arc<Params>) -> Result<SwitchingKey> {
    let ring = params.ring();
    let level = usize::from(r.u16()?);
    if level > params.max_level() {
        return Err(r.err(format!(
            "a key for level {level}, above the parameters' top level {}",
            params.max_level()
        )));
    }
    let basis = params.basis_qp(level);
    let digits = params.digits(level).count();
    let got = usize::from(r.u8()?);
    if got != digits {
        return Err(r.err(format!(
            "{got} key-switching digits, a key for level {level} has {digits}"
        )));
    }
    let seed = r.seed()?;
    let want = digits * poly_bytes(ring, basis);
    if r.remaining() < want {
        return Err(r.err(format!(
            "truncated: {} bytes left for {digits} digits of {want} bytes in total",
            r.remaining()
        )));
    }
    let b = (0..digits)
        .map(|_| read_poly(r, ring, basis, "b_j"))
        .collect::<Result<Vec<_>>>()?;
    // The same streams the key generator used (rlwe::keygen::gen_switching_key_under).
    let a = (0..digits)
        .map(|j| Prng::from_seed_stream(seed, j as u64).uniform_poly(ring, basis))
        .collect();
    Ok(SwitchingKey {
        params: params.clone(),
        b,
        a,
        seed,
    })
}

impl Serializable for SwitchingKey {
    const KIND: ObjectKind = ObjectKind::SwitchingKey;

    fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(switching_key_size(self));
        write_header(&mut out, Self::KIND, &self.params.fingerprint());
        write_switching_body(&mut out, self);
        out
    }

    fn from_bytes(params: &Arc<Params>, bytes: &[u8]) -> Result<Self> {
        let mut r = open(bytes, Self::KIND, params)?;
        let k = read_switching_body(&mut r, params)?;
        r.finish()?;
        Ok(k)
    }

    fn serialized_size(&self) -> usize {
        switching_key_size(self)
    }
}

impl Serializable for RelinearizationKey {
    const KIND: ObjectKind = ObjectKind::RelinearizationKey;

    fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(switching_key_size(&self.0));
        write_header(&mut out, Self::KIND, &self.0.params.fingerprint());
        write_switching_body(&mut out, &self.0);
        out
    }

    fn from_bytes(params: &Arc<Params>, bytes: &[u8]) -> Result<Self> {
        let mut r = open(bytes, Self::KIND, params)?;
        let k = read_switching_body(&mut r, params)?;
        r.finish()?;
        Ok(RelinearizationKey(k))
    }

    fn serialized_size(&self) -> usize {
        switching_key_size(&self.0)
    }
}

fn read_galois_element(r: &mut Reader<'_>, params: &Params) -> Result<u64> {
    let g = r.u64()?;
    let two_n = 2 * params.n() as u64;
    if g % 2 == 0 || g >= two_n {
        return Err(r.err(format!(
            "galois element {g} is not odd and below 2N = {two_n}"
        )));
    }
    Ok(g)
}

impl Serializable for GaloisKey {
    const KIND: ObjectKind = ObjectKind::GaloisKey;

    fn to_bytes(&self) -> Vec<u8> {
        let params = &self.key.params;
        let mut out = Vec::with_capacity(self.serialized_size());
        write_header(&mut out, Self::KIND, &params.fingerprint());
        out.extend_from_slice(&self.galois_element.to_le_bytes());
        write_switching_body(&mut out, &self.key);
        out
    }

    fn from_bytes(params: &Arc<Params>, bytes: &[u8]) -> Result<Self> {
        let mut r = open(bytes, Self::KIND, params)?;
        let galois_element = read_galois_element(&mut r, params)?;
        let key = read_switching_body(&mut r, params)?;
        r.finish()?;
        Ok(GaloisKey {
            galois_element,
            key,
        })
    }

    fn serialized_size(&self) -> usize {
        galois_key_size(&self.key.params, self.key.max_level())
    }
}

impl Serializable for EvaluationKeys {
    const KIND: ObjectKind = ObjectKind::EvaluationKeys;

    /// An empty bundle has no parameters to name; it is written with an all-zero
    /// fingerprint, which no decoder accepts (nor an empty bundle with any fingerprint), so
    /// give bundles at least one key.
    fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.serialized_size());
        // Writing into a Vec cannot fail.
        let _ = self.write_to(&mut out);
        out
    }

    /// One key at a time: a bootstrapping key set is gigabytes, and its bytes are never
    /// all in memory beside the keys (the client's `volley encrypt` peaked 2 GB higher).
    fn write_to(&self, w: &mut impl Write) -> Result<()> {
        let params = self
            .relin
            .as_ref()
            .map(|k| &k.0.params)
            .or_else(|| self.galois.values().next().map(|k| &k.key.params));
        let fingerprint = params.map_or([0u8; 32], |p| p.fingerprint());
        let mut out = Vec::new();
        write_header(&mut out, Self::KIND, &fingerprint);
        out.push(u8::from(self.relin.is_some()));
        if let Some(k) = &self.relin {
            write_switching_body(&mut out, &k.0);
        }
        out.extend_from_slice(&(self.galois.len() as u32).to_le_bytes());
        w.write_all(&out)?;
        for (g, k) in &self.galois {
            out.clear();
            out.extend_from_slice(&g.to_le_bytes());
            write_switching_body(&mut out, &k.key);
            w.write_all(&out)?;
        }
        Ok(())
    }

    /// The stream decoder [`read_evaluation_keys`] over the bytes: one implementation of the
    /// format's checks.
    fn from_bytes(params: &Arc<Params>, bytes: &[u8]) -> Result<Self> {
        read_evaluation_keys(params, &mut &bytes[..])
    }

    fn serialized_size(&self) -> usize {
        let params = self
            .relin
            .as_ref()
            .map(|k| &k.0.params)
            .or_else(|| self.galois.values().next().map(|k| &k.key.params));
        match params {
            Some(p) => {
                let body = |k: &SwitchingKey| switching_body_size(p, k.max_level());
                HEADER_LEN
                    + 1
                    + self.relin.as_ref().map_or(0, |k| body(&k.0))
                    + 4
                    + self
                        .galois
                        .values()
                        .map(|k| 8 + body(&k.key))
                        .sum::<usize>()
            }
            None => HEADER_LEN + 1 + 4,
        }
    }
}

/// Decodes an [`EvaluationKeys`] object from a stream holding one key's bytes at a time (a
/// bootstrapping key set is gigabytes; reading the file whole first would double the peak
/// memory). `EvaluationKeys::from_bytes` is this over a slice. Checks: header, at most N
/// Galois keys, each key's level (before its buffer is allocated, so a forged field cannot
/// size one) and body, strictly increasing elements, at least one key, nothing after the
/// last key.
pub fn read_evaluation_keys(
    params: &Arc<Params>,
    src: &mut impl std::io::Read,
) -> Result<EvaluationKeys> {
    read_evaluation_keys_where(params, src, &|_| true)
}

/// [`read_evaluation_keys`] keeping only the Galois keys whose element `keep` accepts (and
/// the relinearisation key): a server step that needs a few of an upload's keys (encrypted
/// inference needs about 20 of a bootstrapping bundle's 60) holds only those. The others
/// are read past (their level and length checked, their body not decoded: it is never
/// used).
pub fn read_evaluation_keys_where(
    params: &Arc<Params>,
    src: &mut impl std::io::Read,
    keep: &dyn Fn(u64) -> bool,
) -> Result<EvaluationKeys> {
    const WHAT: &str = "evaluation keys";
    let fill = |src: &mut dyn std::io::Read, buf: &mut [u8]| -> Result<()> {
        src.read_exact(buf).map_err(|e| Error::Decode {
            what: WHAT,
            msg: format!("truncated or unreadable: {e}"),
        })
    };
    let mut head = [0u8; HEADER_LEN + 1];
    fill(src, &mut head)?;
    let mut r = open(&head, ObjectKind::EvaluationKeys, params)?;
    let has_relin = r.bool("relinearization key present")?;
    // One buffer for the bodies of the keys not kept (read past, not decoded).
    let mut skipped: Vec<u8> = Vec::new();
    let mut body = |src: &mut dyn std::io::Read, decode: bool| -> Result<Option<SwitchingKey>> {
        let mut pre = [0u8; 3];
        fill(src, &mut pre)?;
        let level = usize::from(u16::from_le_bytes([pre[0], pre[1]]));
        if level > params.max_level() {
            return Err(Error::Decode {
                what: WHAT,
                msg: format!(
                    "a key for level {level}, above the parameters' top level {}",
                    params.max_level()
                ),
            });
        }
        let size = switching_body_size(params, level);
        if !decode {
            skipped.resize(size - 3, 0);
            fill(src, &mut skipped)?;
            return Ok(None);
        }
        let mut buf = vec![0u8; size];
        buf[..3].copy_from_slice(&pre);
        fill(src, &mut buf[3..])?;
        let mut r = Reader::new(&buf, WHAT);
        let k = read_switching_body(&mut r, params)?;
        r.finish()?;
        Ok(Some(k))
    };
    let relin = if has_relin {
        body(src, true)?.map(RelinearizationKey)
    } else {
        None
    };
    let mut count = [0u8; 4];
    fill(src, &mut count)?;
    let count = u32::from_le_bytes(count) as usize;
    if count > params.n() {
        return Err(Error::Decode {
            what: WHAT,
            msg: format!(
                "{count} galois keys, more than the {} distinct elements possible",
                params.n()
            ),
        });
    }
    let mut galois = BTreeMap::new();
    let mut last: Option<u64> = None;
    for _ in 0..count {
        let mut g = [0u8; 8];
        fill(src, &mut g)?;
        let g = read_galois_element(&mut Reader::new(&g, WHAT), params)?;
        if last.is_some_and(|l| g <= l) {
            return Err(Error::Decode {
                what: WHAT,
                msg: format!("galois element {g} is duplicated or out of increasing order"),
            });
        }
        last = Some(g);
        if let Some(key) = body(src, keep(g))? {
            galois.insert(
                g,
                GaloisKey {
                    galois_element: g,
                    key,
                },
            );
        }
    }
    // An empty bundle is written with an all-zero fingerprint (it names no parameters), so
    // one carrying a real fingerprint was not written by `to_bytes`: refusing it keeps the
    // format canonical (found by the evaluation_keys fuzz target).
    if relin.is_none() && count == 0 {
        return Err(Error::Decode {
            what: WHAT,
            msg: "an evaluation key bundle without any key".into(),
        });
    }
    let mut extra = [0u8; 1];
    match src.read(&mut extra) {
        Ok(0) => Ok(EvaluationKeys { relin, galois }),
        Ok(_) => Err(Error::Decode {
            what: WHAT,
            msg: "trailing bytes after the last key".into(),
        }),
        Err(e) => Err(Error::Decode {
            what: WHAT,
            msg: format!("unreadable: {e}"),
        }),
    }
}

impl Serializable for EncapsulationKeys {
    const KIND: ObjectKind = ObjectKind::EncapsulationKeys;

    /// The header names the main parameters; the body is the dense-to-sparse key's switching
    /// body (over `Params::encapsulation_params`, derived from them on load) and then the
    /// sparse-to-dense key's (over the main parameters). Both seeded.
    fn to_bytes(&self) -> Vec<u8> {
        let params = &self.sparse_to_dense.params;
        let mut out = Vec::with_capacity(self.serialized_size());
        write_header(&mut out, Self::KIND, &params.fingerprint());
        write_switching_body(&mut out, &self.dense_to_sparse);
        write_switching_body(&mut out, &self.sparse_to_dense);
        out
    }

    fn from_bytes(params: &Arc<Params>, bytes: &[u8]) -> Result<Self> {
        let mut r = open(bytes, Self::KIND, params)?;
        let small = params.encapsulation_params()?;
        let dense_to_sparse = read_switching_body(&mut r, &small)?;
        let sparse_to_dense = read_switching_body(&mut r, params)?;
        // Both keys serve the top of their chains (the switch back to the dense secret
        // follows ModRaise, at the top): a key stopping lower is not one key generation
        // makes, and would break the format's exact size (found by the encapsulation_keys
        // fuzz target once keys carried levels).
        for (k, p) in [(&dense_to_sparse, &small), (&sparse_to_dense, params)] {
            if k.max_level() != p.max_level() {
                return Err(r.err(format!(
                    "an encapsulation key for level {}, not its chain's top level {}",
                    k.max_level(),
                    p.max_level()
                )));
            }
        }
        r.finish()?;
        Ok(EncapsulationKeys {
            dense_to_sparse,
            sparse_to_dense,
        })
    }

    fn serialized_size(&self) -> usize {
        encapsulation_keys_size(&self.sparse_to_dense.params, &self.dense_to_sparse.params)
    }
}

/// Exact serialized size of the encapsulation keys of `params` (`small` its
/// `encapsulation_params`).
pub fn encapsulation_keys_size(params: &Params, small: &Params) -> usize {
    HEADER_LEN
        + switching_body_size(small, small.max_level())
        + switching_body_size(params, params.max_level())
}

// ----- parameters -----

/// Serializes parameters: their literal in compact binary form, with the insecure flag and
/// the fingerprint so the receiver can check it rebuilt exactly the same chain.
pub fn params_to_bytes(params: &Params) -> Vec<u8> {
    let lit = params.literal();
    let mut out = Vec::with_capacity(HEADER_LEN + 32 + lit.log_q.len() + lit.log_p.len());
    write_header(&mut out, ObjectKind::Params, &params.fingerprint());
    out.push(u8::from(params.is_insecure()));
    // Fields of a successfully built Params are all within these byte ranges.
    out.push(lit.log_n as u8);
    out.push(lit.log_scale as u8);
    out.push(lit.dnum as u8);
    match lit.secret {
        SecretDistribution::Ternary => out.push(0),
        SecretDistribution::HammingWeight(h) => {
            out.push(1);
            out.extend_from_slice(&(h as u32).to_le_bytes());
        }
    }
    out.extend_from_slice(&lit.sigma.to_bits().to_le_bytes());
    for sizes in [&lit.log_q, &lit.log_p] {
        out.push(sizes.len() as u8);
        out.extend(sizes.iter().map(|&b| b as u8));
    }
    out
}

/// Decodes a parameter literal without building the parameters: returns the literal, the
/// insecure flag and the fingerprint the header claims (checked only by
/// [`params_from_bytes`], which rebuilds the chain).
pub fn params_literal_from_bytes(bytes: &[u8]) -> Result<(ParamsLiteral, bool, [u8; 32])> {
    let mut r = Reader::new(bytes, ObjectKind::Params.name());
    let h = header_fields(&mut r)?;
    if h.kind != ObjectKind::Params {
        return Err(r.err(format!("this is a {}, not parameters", h.kind.name())));
    }
    let flags = r.u8()?;
    if flags > 1 {
        return Err(r.err(format!("unknown flag bits {flags:#04x}")));
    }
    let log_n = u32::from(r.u8()?);
    let log_scale = u32::from(r.u8()?);
    let dnum = usize::from(r.u8()?);
    let secret = match r.u8()? {
        0 => SecretDistribution::Ternary,
        1 => SecretDistribution::HammingWeight(r.u32()? as usize),
        v => return Err(r.err(format!("unknown secret distribution {v}"))),
    };
    let sigma = r.f64()?;
    let mut sizes = || -> Result<Vec<u32>> {
        let count = usize::from(r.u8()?);
        Ok(r.take(count)?.iter().map(|&b| u32::from(b)).collect())
    };
    let log_q = sizes()?;
    let log_p = sizes()?;
    if log_q.len() + log_p.len() > MAX_PRIMES {
        return Err(r.err(format!(
            "{} primes, more than the format's limit of {MAX_PRIMES}",
            log_q.len() + log_p.len()
        )));
    }
    r.finish()?;
    Ok((
        ParamsLiteral {
            log_n,
            log_q,
            log_p,
            dnum,
            secret,
            log_scale,
            sigma,
        },
        flags == 1,
        h.fingerprint,
    ))
}

/// Decodes and rebuilds parameters, checking them again (security included) and checking
/// that they hash to the fingerprint in the header. Parameters flagged insecure are
/// refused unless `allow_insecure` is set (tests and experiments only).
pub fn params_from_bytes(bytes: &[u8], allow_insecure: bool) -> Result<Arc<Params>> {
    let what = ObjectKind::Params.name();
    let (lit, insecure, fingerprint) = params_literal_from_bytes(bytes)?;
    if insecure && !allow_insecure {
        return Err(Error::Decode {
            what,
            msg: "the parameters are flagged insecure and insecure parameters were not allowed"
                .into(),
        });
    }
    let built = if insecure {
        Params::new_insecure(lit)
    } else {
        Params::new(lit)
    };
    let params = built.map_err(|e| Error::Decode {
        what,
        msg: e.to_string(),
    })?;
    if params.fingerprint() != fingerprint {
        return Err(Error::Decode {
            what,
            msg: format!(
                "fingerprint mismatch: header says {}.., the rebuilt parameters hash to {}..",
                short_hex(&fingerprint),
                short_hex(&params.fingerprint())
            ),
        });
    }
    Ok(params)
}

// ----- the secret key (client only) -----

/// Writes the secret key: the client's own, explicit save (nothing else ever serialises
/// it). The 2-bit-packed coefficients are built in a buffer that is zeroized afterwards.
#[cfg(feature = "client")]
pub fn save_secret_key(sk: &crate::rlwe::keys::SecretKey, w: &mut impl Write) -> Result<()> {
    let mut out = zeroize::Zeroizing::new(Vec::with_capacity(secret_key_size(sk.params())));
    write_header(&mut out, ObjectKind::SecretKey, &sk.params.fingerprint());
    for chunk in sk.coeffs.chunks(4) {
        let mut byte = 0u8;
        for (i, &c) in chunk.iter().enumerate() {
            let code = match c {
                1 => 0b01,
                -1 => 0b10,
                _ => 0b00,
            };
            byte |= code << (2 * i);
        }
        out.push(byte);
    }
    w.write_all(&out)?;
    Ok(())
}

/// Exact size of a saved secret key.
pub fn secret_key_size(params: &Params) -> usize {
    HEADER_LEN + params.n().div_ceil(4)
}

/// Loads a secret key saved by [`save_secret_key`] for `params`, checking every
/// coefficient (and the Hamming weight of sparse secrets). The decoded coefficients move
/// into the key, which zeroizes them on drop.
#[cfg(feature = "client")]
pub fn load_secret_key(params: &Arc<Params>, bytes: &[u8]) -> Result<crate::rlwe::keys::SecretKey> {
    let mut r = open(bytes, ObjectKind::SecretKey, params)?;
    let n = params.n();
    let packed = r.take(n.div_ceil(4))?;
    r.finish()?;
    let mut coeffs = zeroize::Zeroizing::new(Vec::with_capacity(n));
    for (i, &byte) in packed.iter().enumerate() {
        for j in 0..4 {
            if i * 4 + j >= n {
                break;
            }
            let c = match (byte >> (2 * j)) & 0b11 {
                0b00 => 0,
                0b01 => 1,
                0b10 => -1,
                _ => {
                    return Err(Error::Decode {
                        what: "secret key",
                        msg: format!("coefficient {} has the invalid code 0b11", i * 4 + j),
                    });
                }
            };
            coeffs.push(c);
        }
    }
    if let SecretDistribution::HammingWeight(h) = params.literal().secret {
        let weight = coeffs.iter().filter(|&&c| c != 0).count();
        if weight != h {
            return Err(Error::Decode {
                what: "secret key",
                msg: format!("Hamming weight {weight}, the parameters require {h}"),
            });
        }
    }
    Ok(crate::rlwe::keygen::secret_from_coeffs(
        params,
        std::mem::take(&mut *coeffs),
    ))
}

// ----- files -----

/// Writes `bytes` to `path` atomically: to a temporary file in the same directory, flushed
/// to disk, then renamed over `path`, so readers see the old file or the new one, never a
/// torn one.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    write_atomic_mode(path, bytes, false)
}

/// As [`write_atomic`], but the file is created readable by its owner only (mode 0600 on
/// Unix): for the client's secret key.
pub fn write_atomic_private(path: &Path, bytes: &[u8]) -> Result<()> {
    write_atomic_mode(path, bytes, true)
}

fn write_atomic_mode(path: &Path, bytes: &[u8], private: bool) -> Result<()> {
    let mut f = AtomicFile::create_with(path, private)?;
    f.write_all(bytes)?;
    f.commit()?;
    Ok(())
}

/// A file that appears complete or not at all: written under a temporary name in the
/// target's directory (so the rename never crosses file systems), flushed to disk and
/// renamed on [`AtomicFile::commit`]; dropped before that, the temporary file is removed and
/// the target is untouched. The one atomic writer of the workspace: [`write_atomic`] for
/// whole byte strings, and streaming writers (feature files, downloads) use it directly.
#[derive(Debug)]
pub struct AtomicFile {
    target: std::path::PathBuf,
    temp: std::path::PathBuf,
    dir: std::path::PathBuf,
    writer: Option<std::io::BufWriter<std::fs::File>>,
}

impl AtomicFile {
    /// Starts writing `target` (its directory must exist).
    pub fn create(target: &Path) -> std::io::Result<Self> {
        Self::create_with(target, false)
    }

    /// As [`Self::create`]; `private` creates the file readable by its owner only (mode 0600
    /// on Unix: the client's secret key).
    pub fn create_with(target: &Path, private: bool) -> std::io::Result<Self> {
        use std::sync::atomic::{AtomicU64, Ordering};
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let name = target.file_name().ok_or_else(|| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("{} has no file name", target.display()),
            )
        })?;
        let dir = match target.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => std::path::PathBuf::from("."),
        };
        let temp = dir.join(format!(
            ".{}.tmp.{}.{}",
            name.to_string_lossy(),
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create_new(true);
        #[cfg(unix)]
        if private {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        #[cfg(not(unix))]
        let _ = private;
        let file = opts.open(&temp)?;
        Ok(Self {
            target: target.to_path_buf(),
            temp,
            dir,
            writer: Some(std::io::BufWriter::with_capacity(1 << 16, file)),
        })
    }

    /// The temporary path (for messages and tests).
    pub fn temp_path(&self) -> &Path {
        &self.temp
    }

    /// Appends bytes.
    pub fn write_all(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.writer()?.write_all(bytes)
    }

    /// The underlying writer (seekable), for formatted output and header patches.
    pub fn writer(&mut self) -> std::io::Result<&mut std::io::BufWriter<std::fs::File>> {
        self.writer
            .as_mut()
            .ok_or_else(|| std::io::Error::other("write after commit"))
    }

    /// Flushes, syncs and renames the file into place; returns the target.
    pub fn commit(mut self) -> std::io::Result<std::path::PathBuf> {
        let writer = self
            .writer
            .take()
            .ok_or_else(|| std::io::Error::other("double commit"))?;
        let result = (|| {
            let file = writer.into_inner().map_err(|e| e.into_error())?;
            file.sync_all()?;
            drop(file);
            std::fs::rename(&self.temp, &self.target)?;
            // Persist the rename itself; not every platform can open a directory.
            if let Ok(d) = std::fs::File::open(&self.dir) {
                let _ = d.sync_all();
            }
            Ok(self.target.clone())
        })();
        if result.is_err() {
            let _ = std::fs::remove_file(&self.temp);
        }
        result
    }
}

impl Drop for AtomicFile {
    fn drop(&mut self) {
        if self.writer.take().is_some() {
            // Best effort: the only goal is not to leave a half-written file behind.
            let _ = std::fs::remove_file(&self.temp);
        }
    }
}
