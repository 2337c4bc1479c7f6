//! The binary format: round trips of every object (decrypting afterwards), exact sizes,
//! seeded halving, and refusal of corrupted, truncated or foreign byte strings.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::*;
use std::sync::Arc;
use volley_ckks::client::{
    KeyGenerator, decrypt, encrypt_secret, load_secret_key, save_secret_key,
};
use volley_ckks::serialization::{self, HEADER_LEN, ObjectKind, read_header};
use volley_ckks::*;

fn is_decode_err<T: std::fmt::Debug>(r: Result<T>) -> String {
    match r {
        Err(Error::Decode { msg, .. }) => msg,
        other => panic!("expected a decode error, got {other:?}"),
    }
}

/// A xorshift generator for reproducible corruption positions.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// Every prefix must be refused with a decode error.
fn check_truncations<T: Serializable + std::fmt::Debug>(params: &Arc<Params>, bytes: &[u8]) {
    for len in 0..bytes.len() {
        let msg = is_decode_err(T::from_bytes(params, &bytes[..len]));
        assert!(!msg.is_empty());
    }
    let mut longer = bytes.to_vec();
    longer.push(0);
    is_decode_err(T::from_bytes(params, &longer));
}

/// Single-byte flips never panic; whatever decodes must re-encode to the same bytes (the
/// format is canonical, so an accepted flip changed only a value to another valid one).
fn check_flips<T: Serializable + std::fmt::Debug>(
    params: &Arc<Params>,
    bytes: &[u8],
    rng: &mut Rng,
) -> (usize, usize) {
    let (mut ok, mut refused) = (0, 0);
    for pos in 0..bytes.len() {
        for _ in 0..3 {
            let mut b = bytes.to_vec();
            b[pos] ^= (rng.next() % 255 + 1) as u8;
            match T::from_bytes(params, &b) {
                Ok(v) => {
                    assert_eq!(v.to_bytes(), b, "accepted flip at {pos} is not canonical");
                    assert!(pos >= HEADER_LEN, "a header flip at {pos} was accepted");
                    ok += 1;
                }
                Err(Error::Decode { .. }) => refused += 1,
                Err(e) => panic!("flip at {pos}: unexpected error {e}"),
            }
        }
    }
    (ok, refused)
}

#[test]
fn params_round_trip_and_refusals() {
    for name in ["leveled15", "bench16"] {
        let p = Params::preset(name).unwrap();
        let bytes = params_to_bytes(&p);
        let q = params_from_bytes(&bytes, false).unwrap();
        assert_eq!(q.fingerprint(), p.fingerprint());
        assert_eq!(q.literal(), p.literal());
        assert!(!q.is_insecure());
        assert_eq!(read_header(&bytes).unwrap().kind, ObjectKind::Params);
    }
    let t = ctx(10, 2, 1, &[]);
    let bytes = params_to_bytes(&t.params);
    let msg = is_decode_err(params_from_bytes(&bytes, false));
    assert!(msg.contains("insecure"), "{msg}");
    let q = params_from_bytes(&bytes, true).unwrap();
    assert!(q.is_insecure());
    assert_eq!(q.fingerprint(), t.params.fingerprint());
    // A changed field (sigma) with the old fingerprint.
    let mut b = bytes.clone();
    let sigma_at = HEADER_LEN + 5;
    b[sigma_at..sigma_at + 8].copy_from_slice(&3.5f64.to_bits().to_le_bytes());
    assert!(is_decode_err(params_from_bytes(&b, true)).contains("fingerprint"));
    // A secure flag on insecure parameters: the checks of Params::new refuse them.
    let mut b = bytes.clone();
    b[HEADER_LEN] = 0;
    assert!(is_decode_err(params_from_bytes(&b, true)).contains("log_n = 10 is outside 12..=17"));
    for len in 0..bytes.len() {
        is_decode_err(params_from_bytes(&bytes[..len], true));
    }
    // Absurd prime counts are refused before any prime is generated.
    let mut b = bytes[..HEADER_LEN + 13].to_vec();
    b.push(255);
    b.extend(std::iter::repeat_n(61u8, 255));
    b.push(255);
    b.extend(std::iter::repeat_n(61u8, 255));
    assert!(is_decode_err(params_from_bytes(&b, true)).contains("limit"));
    let mut rng = Rng(99);
    for pos in 0..bytes.len() {
        let mut b = bytes.clone();
        b[pos] ^= (rng.next() % 255 + 1) as u8;
        if let Ok(p) = params_from_bytes(&b, true) {
            panic!("flip at {pos} accepted: {}", p.summary());
        }
    }
}

#[test]
fn fresh_seeded_ciphertext_round_trip_and_size() {
    let t = ctx(10, 2, 1, &[]);
    let v = values(512, 7);
    let ct = t.encrypt_sk(&v, 512);
    assert!(ct.seed().is_some());
    let bytes = ct.to_bytes();
    assert_eq!(bytes.len(), ct.serialized_size());
    assert_eq!(bytes.len(), ct.serialized_size());
    let back = Ciphertext::from_bytes(&t.params, &bytes).unwrap();
    assert_eq!(back.seed(), ct.seed());
    assert_eq!(back.to_bytes(), bytes);
    t.assert_close(&back, &v, 25.0, "seeded round trip");
    // The same ciphertext without its seed (any mutation clears it) is about twice as large.
    let full = t.eval.add_const(&ct, 0.0).unwrap();
    assert!(full.seed().is_none());
    let full_bytes = full.to_bytes();
    assert_eq!(full_bytes.len(), full.serialized_size());
    let ratio = bytes.len() as f64 / full_bytes.len() as f64;
    assert!(ratio <= 0.55, "seeded/full = {ratio}");
    // Bit packing: 55 + 2 x 40 bits per coefficient instead of 3 x 64.
    let words = 2 * 3 * 1024;
    assert!(
        full_bytes.len() < words * 8 * 3 / 4,
        "{} bytes",
        full_bytes.len()
    );
    t.assert_close(
        &Ciphertext::from_bytes(&t.params, &full_bytes).unwrap(),
        &v,
        25.0,
        "full round trip",
    );
}

#[test]
fn evaluated_and_degree_two_ciphertexts_round_trip() {
    let t = ctx(11, 3, 2, &[1, -3]);
    let (a, b) = (values(1024, 1), values(1024, 2));
    let (ca, cb) = (t.encrypt(&a), t.encrypt(&b));
    let prod: Vec<_> = a.iter().zip(&b).map(|(x, y)| x * y).collect();
    let m = t.eval.mul_relin_rescale(&ca, &cb).unwrap();
    let back = Ciphertext::from_bytes(&t.params, &m.to_bytes()).unwrap();
    assert_eq!(
        (back.level(), back.scale(), back.slots(), back.degree()),
        (m.level(), m.scale(), m.slots(), 1)
    );
    t.assert_close(&back, &prod, 20.0, "evaluated");
    let d2 = t.eval.mul_no_relin(&ca, &cb).unwrap();
    assert_eq!(d2.degree(), 2);
    let bytes = d2.to_bytes();
    assert_eq!(bytes.len(), d2.serialized_size());
    let mut back = Ciphertext::from_bytes(&t.params, &bytes).unwrap();
    assert_eq!(back.degree(), 2);
    t.assert_close(&back, &prod, 20.0, "degree 2 decrypts directly");
    t.eval.relinearize_assign(&mut back).unwrap();
    let back = t.eval.rescale(&back).unwrap();
    t.assert_close(&back, &prod, 20.0, "degree 2 relinearised after load");
    let rot: Vec<_> = (0..1024).map(|i| a[(i + 1) % 1024]).collect();
    let r = t
        .eval
        .rotate(
            &Ciphertext::from_bytes(&t.params, &ca.to_bytes()).unwrap(),
            1,
        )
        .unwrap();
    t.assert_close(&r, &rot, 20.0, "rotate after load");
    // A lower level and sparse slots.
    let low = t.eval.drop_to_level(&t.encrypt_sk(&a[..8], 8), 1).unwrap();
    let back = Ciphertext::from_bytes(&t.params, &low.to_bytes()).unwrap();
    assert_eq!((back.level(), back.slots()), (1, 8));
    t.assert_close(&back, &a[..8], 24.0, "level 1, 8 slots");
}

#[test]
fn plaintext_round_trip() {
    let t = ctx(10, 2, 1, &[]);
    let v = values(64, 3);
    let pt = t.enc.encode_complex(&v, 1, 2f64.powi(35), 64).unwrap();
    let bytes = pt.to_bytes();
    assert_eq!(bytes.len(), pt.serialized_size());
    let back = Plaintext::from_bytes(&t.params, &bytes).unwrap();
    assert_eq!(
        (back.level(), back.scale(), back.slots()),
        (1, 2f64.powi(35), 64)
    );
    assert_eq!(back.poly(), pt.poly());
    let got = t.enc.decode_complex(&back).unwrap();
    assert!(precision_stats(&v, &got).min_bits > 25.0);
    is_decode_err(Ciphertext::from_bytes(&t.params, &bytes));
}

#[test]
fn public_key_round_trip_encrypts() {
    let t = ctx(10, 2, 1, &[]);
    let bytes = t.pk.to_bytes();
    assert_eq!(bytes.len(), t.pk.serialized_size());
    let pk = PublicKey::from_bytes(&t.params, &bytes).unwrap();
    assert_eq!(pk.to_bytes(), bytes);
    let v = values(512, 4);
    let pt = t
        .enc
        .encode_complex(&v, 2, t.params.default_scale(), 512)
        .unwrap();
    t.assert_close(
        &encrypt_public(&pk, &pt).unwrap(),
        &v,
        25.0,
        "encrypt with loaded pk",
    );
}

#[test]
fn switching_keys_round_trip_and_are_seeded() {
    let t = ctx(11, 3, 2, &[2]);
    let keys = t.eval.keys();
    let relin = keys.relin.as_ref().unwrap();
    let bytes = relin.to_bytes();
    assert_eq!(bytes.len(), relin.serialized_size());
    let relin2 = RelinearizationKey::from_bytes(&t.params, &bytes).unwrap();
    assert_eq!(relin2.to_bytes(), bytes);
    let swk = relin.key();
    let swk_bytes = swk.to_bytes();
    assert_eq!(swk_bytes.len(), swk.serialized_size());
    assert_eq!(
        SwitchingKey::from_bytes(&t.params, &swk_bytes)
            .unwrap()
            .to_bytes(),
        swk_bytes
    );
    // Seeded: only the b_j are stored, so about half of (b_j, a_j) packed the same way.
    let full = 2 * (swk_bytes.len() - HEADER_LEN - 33);
    let ratio = swk_bytes.len() as f64 / full as f64;
    assert!(ratio <= 0.55, "seeded/full switching key = {ratio}");
    let g = t.params.ring().galois_element_for_rotation(2);
    let gk = keys.galois_key(g).unwrap();
    let gbytes = gk.to_bytes();
    assert_eq!(gbytes.len(), gk.serialized_size());
    let gk2 = GaloisKey::from_bytes(&t.params, &gbytes).unwrap();
    assert_eq!(gk2.galois_element(), g);
    // Loaded keys work: an evaluator built only from them.
    let mut ek = EvaluationKeys {
        relin: Some(relin2),
        ..Default::default()
    };
    ek.galois.insert(g, gk2);
    let eval = Evaluator::new(t.params.clone(), ek);
    let (a, b) = (values(1024, 8), values(1024, 9));
    let (ca, cb) = (t.encrypt(&a), t.encrypt(&b));
    let prod: Vec<_> = a.iter().zip(&b).map(|(x, y)| x * y).collect();
    t.assert_close(
        &eval.mul_relin_rescale(&ca, &cb).unwrap(),
        &prod,
        20.0,
        "loaded relin key",
    );
    let rot: Vec<_> = (0..1024).map(|i| a[(i + 2) % 1024]).collect();
    t.assert_close(
        &eval.rotate(&ca, 2).unwrap(),
        &rot,
        20.0,
        "loaded galois key",
    );
    // Galois element checks.
    let mut b = gbytes.clone();
    b[HEADER_LEN..HEADER_LEN + 8].copy_from_slice(&4u64.to_le_bytes());
    assert!(is_decode_err(GaloisKey::from_bytes(&t.params, &b)).contains("galois element"));
    b[HEADER_LEN..HEADER_LEN + 8].copy_from_slice(&(4 * 2048 + 1u64).to_le_bytes());
    assert!(is_decode_err(GaloisKey::from_bytes(&t.params, &b)).contains("galois element"));
    // Kinds are not interchangeable.
    assert!(is_decode_err(GaloisKey::from_bytes(&t.params, &bytes)).contains("not a galois key"));
    assert!(
        is_decode_err(SwitchingKey::from_bytes(&t.params, &bytes)).contains("not a switching key")
    );
}

#[test]
fn evaluation_keys_round_trip_and_refusals() {
    let t = ctx(10, 2, 2, &[1, 2, -1]);
    let keys = t.eval.keys();
    let bytes = keys.to_bytes();
    assert_eq!(bytes.len(), keys.serialized_size());
    let back = EvaluationKeys::from_bytes(&t.params, &bytes).unwrap();
    assert_eq!(back.galois.len(), keys.galois.len());
    assert!(back.relin.is_some());
    assert_eq!(back.to_bytes(), bytes);
    let eval = Evaluator::new(t.params.clone(), back);
    let a = values(512, 10);
    let ca = t.encrypt(&a);
    let rot: Vec<_> = (0..512).map(|i| a[(i + 511) % 512]).collect();
    t.assert_close(
        &eval.rotate(&ca, -1).unwrap(),
        &rot,
        20.0,
        "rotation with loaded bundle",
    );
    let conj: Vec<_> = a.iter().map(|x| x.conj()).collect();
    t.assert_close(
        &eval.conjugate(&ca).unwrap(),
        &conj,
        20.0,
        "conjugation with loaded bundle",
    );
    // Duplicate element: copy the first Galois element over the second.
    let swk = keys.relin.as_ref().unwrap().serialized_size() - HEADER_LEN;
    let first = HEADER_LEN + 1 + swk + 4;
    let entry = 8 + swk;
    let mut dup = bytes.clone();
    let g0: [u8; 8] = dup[first..first + 8].try_into().unwrap();
    dup[first + entry..first + entry + 8].copy_from_slice(&g0);
    assert!(is_decode_err(EvaluationKeys::from_bytes(&t.params, &dup)).contains("duplicated"));
    // Absurd count.
    let mut absurd = bytes.clone();
    absurd[first - 4..first].copy_from_slice(&u32::MAX.to_le_bytes());
    is_decode_err(EvaluationKeys::from_bytes(&t.params, &absurd));
    let mut absurd = bytes.clone();
    absurd[first - 4..first].copy_from_slice(&100u32.to_le_bytes());
    is_decode_err(EvaluationKeys::from_bytes(&t.params, &absurd));
    // Without relinearisation key.
    let only_galois = EvaluationKeys {
        galois: keys.galois.clone(),
        ..Default::default()
    };
    let b = only_galois.to_bytes();
    assert_eq!(b.len(), only_galois.serialized_size());
    let back = EvaluationKeys::from_bytes(&t.params, &b).unwrap();
    assert!(back.relin.is_none());
    // No key at all, even under the right fingerprint (a fuzzer's find: such a bundle would
    // re-encode with the all-zero fingerprint of an empty bundle).
    let mut empty = bytes[..HEADER_LEN].to_vec();
    empty.push(0);
    empty.extend_from_slice(&0u32.to_le_bytes());
    assert!(
        is_decode_err(EvaluationKeys::from_bytes(&t.params, &empty)).contains("without any key")
    );
    assert!(EvaluationKeys::default().to_bytes()[..HEADER_LEN] != bytes[..HEADER_LEN]);
    // The streaming decoder agrees on every case: the same keys, and every refusal (every
    // truncation, the forged bytes above, trailing bytes).
    let stream = |b: &[u8]| serialization::read_evaluation_keys(&t.params, &mut &b[..]);
    assert_eq!(stream(&bytes).unwrap().to_bytes(), bytes);
    for bad in [&dup, &absurd, &empty] {
        assert!(stream(bad).is_err());
    }
    for cut in (0..bytes.len()).step_by(bytes.len() / 97 + 1) {
        assert!(stream(&bytes[..cut]).is_err(), "truncated at {cut}");
    }
    let mut long = bytes.clone();
    long.push(0);
    assert!(stream(&long).is_err());
    let mut forged_level = bytes.clone();
    forged_level[HEADER_LEN + 1] = 0xff;
    assert!(stream(&forged_level).is_err());
    // Reading only some Galois keys: the others are read past, the relinearisation key is
    // kept, the kept keys work, and truncations, forged levels and trailing bytes are still
    // refused (the skipped keys' levels and lengths are checked).
    let g1 = t.params.ring().galois_element_for_rotation(-1);
    let only =
        |b: &[u8]| serialization::read_evaluation_keys_where(&t.params, &mut &b[..], &|g| g == g1);
    let some = only(&bytes).unwrap();
    assert_eq!(some.galois.keys().copied().collect::<Vec<_>>(), [g1]);
    assert!(some.relin.is_some());
    let eval = Evaluator::new(t.params.clone(), some);
    t.assert_close(&eval.rotate(&ca, -1).unwrap(), &rot, 20.0, "kept key");
    assert!(eval.rotate(&ca, 1).is_err(), "a key read past");
    for cut in (0..bytes.len()).step_by(bytes.len() / 97 + 1) {
        assert!(only(&bytes[..cut]).is_err(), "filtered, truncated at {cut}");
    }
    for bad in [&dup, &absurd, &empty, &long, &forged_level] {
        assert!(only(bad).is_err());
    }
}

#[test]
fn secret_key_save_load() {
    let t = ctx(10, 2, 1, &[]);
    let mut bytes = Vec::new();
    save_secret_key(&t.sk, &mut bytes).unwrap();
    assert_eq!(bytes.len(), serialization::secret_key_size(&t.params));
    assert_eq!(bytes.len(), HEADER_LEN + 1024 / 4);
    let sk = load_secret_key(&t.params, &bytes).unwrap();
    let v = values(512, 11);
    let ct = t.encrypt(&v);
    let got = t.enc.decode_complex(&decrypt(&sk, &ct).unwrap()).unwrap();
    assert!(precision_stats(&v, &got).min_bits > 25.0);
    let mut again = Vec::new();
    save_secret_key(&sk, &mut again).unwrap();
    assert_eq!(again, bytes);
    // The invalid code 0b11.
    let mut b = bytes.clone();
    b[HEADER_LEN + 3] |= 0b11 << 4;
    assert!(is_decode_err(load_secret_key(&t.params, &b)).contains("0b11"));
    for len in 0..bytes.len() {
        is_decode_err(load_secret_key(&t.params, &bytes[..len]));
    }
    let other = ctx(10, 3, 1, &[]);
    assert!(is_decode_err(load_secret_key(&other.params, &bytes)).contains("other parameters"));
    // Sparse secrets: the Hamming weight is checked.
    let params = Params::new_insecure(ParamsLiteral {
        secret: SecretDistribution::HammingWeight(16),
        ..t.params.literal().clone()
    })
    .unwrap();
    let sk = KeyGenerator::new_deterministic_for_tests(params.clone(), [3u8; 32]).gen_secret_key();
    let mut b = Vec::new();
    save_secret_key(&sk, &mut b).unwrap();
    load_secret_key(&params, &b).unwrap();
    let pos = b[HEADER_LEN..].iter().position(|&x| x == 0).unwrap() + HEADER_LEN;
    b[pos] = 0b01;
    assert!(is_decode_err(load_secret_key(&params, &b)).contains("Hamming weight"));
}

#[test]
fn corrupted_ciphertexts_are_refused_never_panic() {
    // N = 16 keeps the exhaustive loops small.
    let t = ctx(4, 1, 1, &[]);
    let v = values(8, 12);
    let seeded = t.encrypt_sk(&v, 8);
    let full = t.encrypt(&v);
    let d2 = t.eval.mul_no_relin(&full, &full).unwrap();
    let mut rng = Rng(0x1234_5678);
    for ct in [&seeded, &full, &d2] {
        let bytes = ct.to_bytes();
        check_truncations::<Ciphertext>(&t.params, &bytes);
        let (ok, refused) = check_flips::<Ciphertext>(&t.params, &bytes, &mut rng);
        assert!(refused > 0 && ok > 0, "ok {ok} refused {refused}");
    }
    let bytes = full.to_bytes();
    // Magic, version, kind.
    let mut b = bytes.clone();
    b[0] = b'X';
    assert!(is_decode_err(Ciphertext::from_bytes(&t.params, &b)).contains("magic"));
    let mut b = bytes.clone();
    b[4] = 1; // version 1 (older Galois keys) is no longer read
    assert!(is_decode_err(Ciphertext::from_bytes(&t.params, &b)).contains("version"));
    let mut b = bytes.clone();
    b[6] = 200;
    assert!(is_decode_err(Ciphertext::from_bytes(&t.params, &b)).contains("kind"));
    // Bytes from another parameter set.
    let other = ctx(4, 2, 1, &[]);
    let foreign = other.encrypt(&v).to_bytes();
    let msg = is_decode_err(Ciphertext::from_bytes(&t.params, &foreign));
    assert!(
        msg.contains("made for other parameters (fingerprint"),
        "{msg}"
    );
    // A residue >= its prime: all ones in the first 55-bit residue of c0.
    let body = HEADER_LEN + 13;
    let mut b = bytes.clone();
    for x in &mut b[body..body + 7] {
        *x = 0xff;
    }
    b[body + 6] |= 0x7f;
    assert!(is_decode_err(Ciphertext::from_bytes(&t.params, &b)).contains("not below its prime"));
    // Absurd level, degree, slots and scale.
    for (off, val, what) in [
        (0usize, 0xffu8, "level"),
        (3, 9, "degree"),
        (2, 40, "slots"),
        (3, 0, "degree"),
    ] {
        let mut b = bytes.clone();
        b[HEADER_LEN + off] = val;
        b[HEADER_LEN + 1] = if off == 0 { 0xff } else { b[HEADER_LEN + 1] };
        assert!(
            is_decode_err(Ciphertext::from_bytes(&t.params, &b)).contains(what),
            "{what}"
        );
    }
    for bad in [f64::NAN, f64::INFINITY, 0.0, -1.0] {
        let mut b = bytes.clone();
        b[HEADER_LEN + 5..HEADER_LEN + 13].copy_from_slice(&bad.to_bits().to_le_bytes());
        assert!(is_decode_err(Ciphertext::from_bytes(&t.params, &b)).contains("scale"));
    }
    // Seeded flag on a degree-2 ciphertext.
    let mut b = d2.to_bytes();
    b[HEADER_LEN + 4] = 1;
    assert!(is_decode_err(Ciphertext::from_bytes(&t.params, &b)).contains("seeded"));
    // Decrypting what survived is still possible (no panic deeper in the library).
    let back = Ciphertext::from_bytes(&t.params, &seeded.to_bytes()).unwrap();
    t.assert_close(&back, &v, 20.0, "N = 16 seeded");
    let _ = decrypt(&t.sk, &back).unwrap();
    let _ = encrypt_secret(
        &t.sk,
        &t.enc.encode_complex(&v, 1, 2f64.powi(30), 8).unwrap(),
    )
    .unwrap();
}

#[test]
fn corrupted_keys_and_plaintexts_never_panic() {
    let t = ctx(4, 1, 1, &[1]);
    let mut rng = Rng(77);
    let pt = t
        .enc
        .encode_complex(&values(8, 1), 1, 2f64.powi(30), 8)
        .unwrap();
    let b = pt.to_bytes();
    check_truncations::<Plaintext>(&t.params, &b);
    check_flips::<Plaintext>(&t.params, &b, &mut rng);
    let b = t.pk.to_bytes();
    check_truncations::<PublicKey>(&t.params, &b);
    check_flips::<PublicKey>(&t.params, &b, &mut rng);
    let keys = t.eval.keys();
    let b = keys.relin.as_ref().unwrap().to_bytes();
    check_truncations::<RelinearizationKey>(&t.params, &b);
    check_flips::<RelinearizationKey>(&t.params, &b, &mut rng);
    let g = keys.galois.values().next().unwrap();
    let b = g.to_bytes();
    check_truncations::<GaloisKey>(&t.params, &b);
    check_flips::<GaloisKey>(&t.params, &b, &mut rng);
    let b = keys.to_bytes();
    check_truncations::<EvaluationKeys>(&t.params, &b);
    check_flips::<EvaluationKeys>(&t.params, &b, &mut rng);
    // Random garbage of every small length.
    for len in 0..200 {
        let mut b: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        is_decode_err(Ciphertext::from_bytes(&t.params, &b));
        if len >= HEADER_LEN {
            b[..4].copy_from_slice(b"VLCK");
            b[4..6].copy_from_slice(&1u16.to_le_bytes());
            b[7..HEADER_LEN].copy_from_slice(&t.params.fingerprint());
            for kind in 1..=9u8 {
                b[6] = kind;
                let _ = Ciphertext::from_bytes(&t.params, &b);
                let _ = EvaluationKeys::from_bytes(&t.params, &b);
                let _ = GaloisKey::from_bytes(&t.params, &b);
                let _ = load_secret_key(&t.params, &b);
                let _ = params_from_bytes(&b, true);
            }
        }
    }
}

#[test]
fn write_atomic_replaces_whole_files() {
    let dir = std::env::temp_dir().join(format!("volley-ser-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("ct.bin");
    write_atomic(&path, b"first").unwrap();
    write_atomic(&path, b"second version").unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), b"second version");
    serialization::write_atomic_private(&dir.join("sk.bin"), b"secret").unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.join("sk.bin"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "mode {mode:o}");
    }
    let names: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names.len(), 2, "temporary files left: {names:?}");
    assert!(write_atomic(&dir.join("missing-dir").join("x"), b"x").is_err());
    // The streaming form: nothing at the target before commit; dropped, nothing left.
    let target = dir.join("streamed.bin");
    let mut f = serialization::AtomicFile::create(&target).unwrap();
    f.write_all(b"hello").unwrap();
    assert!(!target.exists());
    f.commit().unwrap();
    assert_eq!(std::fs::read(&target).unwrap(), b"hello");
    let other = dir.join("dropped.bin");
    let mut f = serialization::AtomicFile::create(&other).unwrap();
    f.write_all(b"partial").unwrap();
    let temp = f.temp_path().to_path_buf();
    assert!(temp.exists());
    drop(f);
    assert!(!temp.exists() && !other.exists());
    std::fs::remove_file(&target).unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Sizes at the bench16 preset (OpenFHE: 21.0 MiB per ciphertext, 81.0 MiB per rotation key).
#[test]
fn bench16_sizes() {
    let params = Params::preset("bench16").unwrap();
    let mib = |b: usize| b as f64 / (1 << 20) as f64;
    let seeded = serialization::ciphertext_size_for(&params, params.max_level(), 1, true);
    let full = serialization::ciphertext_size_for(&params, params.max_level(), 1, false);
    let rot = serialization::galois_key_size(&params, params.max_level());
    let pk = serialization::public_key_size(&params);
    println!(
        "bench16: fresh seeded ciphertext {seeded} B ({:.2} MiB), unseeded {full} B ({:.2} MiB), rotation key {rot} B ({:.2} MiB), public key {pk} B ({:.2} MiB)",
        mib(seeded),
        mib(full),
        mib(rot),
        mib(pk)
    );
    assert!(mib(seeded) < 21.0 / 2.0);
    assert!(mib(rot) < 81.0 / 2.0);
    // The actual objects have exactly these sizes.
    let mut kg = KeyGenerator::new_deterministic_for_tests(params.clone(), [5u8; 32]);
    let sk = kg.gen_secret_key();
    let enc = Encoder::new(params.clone());
    let pt = enc
        .encode(
            &[1.0, 2.0],
            params.max_level(),
            params.default_scale(),
            params.max_slots(),
        )
        .unwrap();
    let ct = encrypt_secret(&sk, &pt).unwrap();
    let bytes = ct.to_bytes();
    assert_eq!(bytes.len(), seeded);
    let back = Ciphertext::from_bytes(&params, &bytes).unwrap();
    let got = enc.decode(&decrypt(&sk, &back).unwrap()).unwrap();
    assert!((got[0] - 1.0).abs() < 1e-6 && (got[1] - 2.0).abs() < 1e-6);
    let gk = kg.gen_rotation_key(&sk, 1);
    let gbytes = gk.to_bytes();
    assert_eq!(gbytes.len(), rot);
    println!(
        "bench16: actual serialized fresh ciphertext {} B, rotation key {} B",
        bytes.len(),
        gbytes.len()
    );
    let t0 = std::time::Instant::now();
    let gk2 = GaloisKey::from_bytes(&params, &gbytes).unwrap();
    println!("bench16: rotation key decode {:?}", t0.elapsed());
    assert_eq!(gk2.galois_element(), gk.galois_element());
}
