//! Times the stages of a key switch at a preset (default bench16), single-threaded unless
//! RAYON_NUM_THREADS says otherwise: where a rotation's time goes.
//! `cargo run --release -p volley-ckks --example keyswitch_breakdown [preset]`
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Instant;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
use volley_ckks::client::KeyGenerator;
use volley_ckks::rlwe::keyswitch::{decompose, inner_product, mod_down};
use volley_ckks::{Encoder, Evaluator, Params, encrypt_public};

fn main() {
    let preset = std::env::args().nth(1).unwrap_or_else(|| "bench16".into());
    let only = std::env::args().nth(2);
    let params = Params::preset(&preset).unwrap();
    let mut kg = KeyGenerator::new(params.clone());
    let sk = kg.gen_secret_key();
    let pk = kg.gen_public_key(&sk);
    let keys = kg.gen_evaluation_keys(&sk, true, &[1], false);
    let g = params.ring().galois_element_for_rotation(1);
    let key = keys.galois_key(g).unwrap().key().clone();
    let enc = Encoder::new(params.clone());
    let eval = Evaluator::new(params.clone(), keys);
    let level = params.max_level();
    let v: Vec<f64> = (0..params.max_slots()).map(|i| (i % 7) as f64).collect();
    let ct = encrypt_public(
        &pk,
        &enc.encode(&v, level, params.default_scale(), params.max_slots())
            .unwrap(),
    )
    .unwrap();
    let c1 = ct.polys()[1].clone();
    let ring = params.ring();
    let reps = std::env::var("VOLLEY_REPS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(if only.is_some() { 40 } else { 5 });
    let time = |name: &str, f: &mut dyn FnMut()| {
        if only.as_deref().is_some_and(|o| !name.starts_with(o)) {
            return;
        }
        let mut t = Vec::new();
        for _ in 0..reps {
            let s = Instant::now();
            f();
            t.push(s.elapsed().as_secs_f64() * 1e3);
        }
        t.sort_by(f64::total_cmp);
        println!("{name:<28} {:>9.2} ms (min {:.2})", t[reps / 2], t[0]);
    };
    let dec = decompose(&params, level, &c1);
    let [a, _] = inner_product(&params, &dec, &key);
    time("decompose (ModUp)", &mut || {
        drop(decompose(&params, level, &c1))
    });
    time("inner product", &mut || {
        drop(inner_product(&params, &dec, &key))
    });
    time("mod_down (one poly)", &mut || {
        drop(mod_down(&params, a.clone()))
    });
    time("automorphism (one poly)", &mut || {
        drop(c1.automorphism(ring, g))
    });
    time("intt+ntt all towers", &mut || {
        drop(c1.to_coeff(ring).into_ntt(ring))
    });
    time("rescale", &mut || drop(eval.rescale(&ct).unwrap()));
    time("tensor (mul_no_relin)", &mut || {
        drop(eval.mul_no_relin(&ct, &ct).unwrap())
    });
    time("rotate", &mut || drop(eval.rotate(&ct, 1).unwrap()));
    {
        use volley_ckks::ring::{BasisConverter, Modulus};
        let from: Vec<Modulus> = (0..ring.num_p()).map(|i| *ring.p(i)).collect();
        let to: Vec<Modulus> = (0..ring.num_q()).map(|i| *ring.q(i)).collect();
        let conv = BasisConverter::new(&from, &to);
        let n = ring.n();
        let input: Vec<Vec<u64>> = from
            .iter()
            .map(|m| (0..n as u64).map(|i| i * 12345 % m.value()).collect())
            .collect();
        let mut output = vec![vec![0u64; n]; to.len()];
        time(
            &format!("convert {}->{}", from.len(), to.len()),
            &mut || {
                let ins: Vec<&[u64]> = input.iter().map(|v| v.as_slice()).collect();
                let mut outs: Vec<&mut [u64]> =
                    output.iter_mut().map(|v| v.as_mut_slice()).collect();
                conv.convert(&ins, &mut outs);
            },
        );
        time(
            &format!("convert_approx {}->{}", from.len(), to.len()),
            &mut || {
                let ins: Vec<&[u64]> = input.iter().map(|v| v.as_slice()).collect();
                let mut outs: Vec<&mut [u64]> =
                    output.iter_mut().map(|v| v.as_mut_slice()).collect();
                conv.convert_approx(&ins, &mut outs);
            },
        );
    }
    let steps: Vec<i64> = (1..=8).collect();
    let eval8 = {
        let mut kg = KeyGenerator::new(params.clone());
        Evaluator::new(
            params.clone(),
            kg.gen_evaluation_keys(&sk, false, &steps, false),
        )
    };
    time("rotate (8-key evaluator)", &mut || {
        drop(eval8.rotate(&ct, 1).unwrap())
    });
    time("rotate_hoisted_8 (total)", &mut || {
        drop(eval8.rotate_hoisted(&ct, &steps).unwrap())
    });
    let dec8 = eval8.decompose(&ct).unwrap();
    time("one hoisted rotation", &mut || {
        drop(eval8.rotate_hoisted_with(&ct, &dec8, 3).unwrap())
    });
    time("mul_relin_rescale", &mut || {
        drop(eval.mul_relin_rescale(&ct, &ct).unwrap())
    });
    time("mul_relin then rescale", &mut || {
        let mut m = eval.mul_relin(&ct, &ct).unwrap();
        eval.rescale_assign(&mut m).unwrap();
    });
}
