//! Criterion micro-benchmarks of the engine's hot paths, named by their parameters
//! (`preset/log_n/level`). End-to-end figures at bench16 come from `volley bench ckks`.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use std::hint::black_box;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
use volley_ckks::client::{KeyGenerator, encrypt_secret};
use volley_ckks::ring::{Modulus, NttBackend, NttOperator, generate_primes};
use volley_ckks::{Encoder, Evaluator, Params, encrypt_public};

fn ntt(c: &mut Criterion) {
    let mut g = c.benchmark_group("ntt");
    for log_n in [15u32, 16] {
        let n = 1usize << log_n;
        for bits in [50u32, 60] {
            let q = generate_primes(bits, 2 * n as u64, 1, &[]).unwrap()[0];
            let m = Modulus::new(q);
            for backend in [NttBackend::Fast, NttBackend::Scalar] {
                let op = NttOperator::new(n, m, backend).unwrap();
                let mut a: Vec<u64> = (0..n as u64).map(|i| i * 7919 % q).collect();
                let id = BenchmarkId::new(
                    format!("forward/{backend:?}"),
                    format!("n=2^{log_n}/q={bits}b"),
                );
                g.bench_function(id, |b| b.iter(|| op.forward(black_box(&mut a))));
            }
        }
    }
    g.finish();
}

fn ops(c: &mut Criterion) {
    let preset = std::env::var("VOLLEY_BENCH_PRESET").unwrap_or_else(|_| "bench15".into());
    let params = Params::preset(&preset).unwrap();
    let level = params.max_level();
    let slots = params.max_slots();
    let tag = format!("{preset}/log_n={}/level={level}", params.log_n());
    let mut kg = KeyGenerator::new(params.clone());
    let sk = kg.gen_secret_key();
    let pk = kg.gen_public_key(&sk);
    let steps: Vec<i64> = (1..=8).collect();
    let keys = kg.gen_evaluation_keys(&sk, true, &steps, false);
    let enc = Encoder::new(params.clone());
    let eval = Evaluator::new(params.clone(), keys);
    let v: Vec<f64> = (0..slots).map(|i| (i % 13) as f64 / 13.0).collect();
    let pt = enc
        .encode(&v, level, params.default_scale(), slots)
        .unwrap();
    let pt_q = enc
        .encode(&v, level, params.ring().q(level).value() as f64, slots)
        .unwrap();
    let a = encrypt_public(&pk, &pt).unwrap();
    let b = encrypt_secret(&sk, &pt).unwrap();
    let mut g = c.benchmark_group("ckks");
    g.sample_size(10);
    g.bench_function(BenchmarkId::new("keygen_rotation", &tag), |bch| {
        bch.iter(|| kg.gen_rotation_key(&sk, 9))
    });
    g.bench_function(BenchmarkId::new("encrypt_public", &tag), |bch| {
        bch.iter(|| encrypt_public(&pk, &pt).unwrap())
    });
    g.bench_function(BenchmarkId::new("encrypt_secret", &tag), |bch| {
        bch.iter(|| encrypt_secret(&sk, &pt).unwrap())
    });
    g.bench_function(BenchmarkId::new("mul_relin_rescale", &tag), |bch| {
        bch.iter(|| eval.mul_relin_rescale(&a, &b).unwrap())
    });
    g.bench_function(BenchmarkId::new("rotate", &tag), |bch| {
        bch.iter(|| eval.rotate(&a, 1).unwrap())
    });
    g.bench_function(BenchmarkId::new("rotate_hoisted_8", &tag), |bch| {
        bch.iter(|| eval.rotate_hoisted(&a, &steps).unwrap())
    });
    g.bench_function(BenchmarkId::new("mul_plain_rescale", &tag), |bch| {
        bch.iter(|| {
            let mut c = eval.mul_plain(&a, &pt_q).unwrap();
            eval.rescale_assign(&mut c).unwrap();
            c
        })
    });
    g.bench_function(BenchmarkId::new("rescale", &tag), |bch| {
        bch.iter(|| eval.rescale(&a).unwrap())
    });
    g.bench_function(BenchmarkId::new("encode", &tag), |bch| {
        bch.iter(|| {
            enc.encode(&v, level, params.default_scale(), slots)
                .unwrap()
        })
    });
    g.finish();
}

criterion_group!(benches, ntt, ops);
criterion_main!(benches);
