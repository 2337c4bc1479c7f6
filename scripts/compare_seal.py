#!/usr/bin/env python3
"""Side-by-side timing of volley's CKKS engine and Microsoft SEAL (through TenSEAL's
`tenseal.sealapi` bindings) at the same ring degree and ciphertext prime chain.

    pip install tenseal
    cargo build --release -p volley-cli
    python3 scripts/compare_seal.py --preset bench16 --reps 5

SEAL differs in key switching: it uses one special prime and one digit per ciphertext
prime (dnum = L + 1), where volley's presets use hybrid key switching with dnum = 3. Same N,
same Q chain, same scale; both single-threaded (SEAL's evaluator is single-threaded).
Prints medians in ms and the ratio volley / SEAL (below 1: volley is faster).
"""
import argparse
import json
import statistics
import subprocess
import sys
import time

PRESETS = {
    # name: (log_n, log_q chain, special prime bits for SEAL)
    "bench15": (15, [60] + [50] * 10, 60),
    "bench16": (16, [60] + [50] * 20, 60),
}


def median_ms(fn, reps):
    out = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t) * 1e3)
    return statistics.median(out)


def seal_times(preset, reps):
    import tenseal.sealapi as s

    log_n, log_q, special = PRESETS[preset]
    n = 1 << log_n
    parms = s.EncryptionParameters(s.SCHEME_TYPE.CKKS)
    parms.set_poly_modulus_degree(n)
    parms.set_coeff_modulus(s.CoeffModulus.Create(n, log_q + [special]))
    # SEAL's built-in security table stops at N = 2^15; the chain is within the standard's
    # 128-bit bound for N = 2^16 (1,747 bits), which volley's own check enforces.
    level = s.SEC_LEVEL_TYPE.TC128 if log_n <= 15 else s.SEC_LEVEL_TYPE.NONE
    ctx = s.SEALContext(parms, True, level)
    if not ctx.parameters_set():
        raise SystemExit(f"SEAL refused the parameters: {ctx.parameter_error_message()}")
    keygen = s.KeyGenerator(ctx)
    sk = keygen.secret_key()
    pk = s.PublicKey()
    keygen.create_public_key(pk)
    rlk = s.RelinKeys()
    keygen.create_relin_keys(rlk)
    gk = s.GaloisKeys()
    # The binding takes Galois elements; SEAL rotates with the generator 3: 3^k mod 2N.
    elements = [pow(3, k, 2 * n) for k in range(1, 9)]
    keygen.create_galois_keys(elements, gk)
    encoder = s.CKKSEncoder(ctx)
    encryptor = s.Encryptor(ctx, pk)
    evaluator = s.Evaluator(ctx)
    scale = 2.0 ** log_q[1]
    slots = n // 2
    values = [((i % 97) / 97.0) - 0.5 for i in range(slots)]
    pt = s.Plaintext()
    encoder.encode(values, scale, pt)
    a = s.Ciphertext()
    b = s.Ciphertext()
    encryptor.encrypt(pt, a)
    encryptor.encrypt(pt, b)

    def enc():
        c = s.Ciphertext()
        encryptor.encrypt(pt, c)

    def mul():
        c = s.Ciphertext()
        evaluator.multiply(a, b, c)
        evaluator.relinearize_inplace(c, rlk)
        evaluator.rescale_to_next_inplace(c)

    def rot():
        evaluator.rotate_vector(a, 1, gk, s.Ciphertext())

    def rot8():
        for k in range(1, 9):
            evaluator.rotate_vector(a, k, gk, s.Ciphertext())

    def mulp():
        c = s.Ciphertext()
        evaluator.multiply_plain(a, pt, c)
        evaluator.rescale_to_next_inplace(c)

    def keygen_rot():
        g = s.GaloisKeys()
        keygen.create_galois_keys([pow(3, 9, 2 * n)], g)

    return {
        "encrypt": median_ms(enc, reps),
        "mul_relin_rescale": median_ms(mul, reps),
        "rotate": median_ms(rot, reps),
        "rotate_hoisted_8": median_ms(rot8, reps),
        "mul_plain": median_ms(mulp, reps),
        "keygen_rotation": median_ms(keygen_rot, reps),
    }


def volley_times(preset, reps, binary):
    out = subprocess.run(
        [binary, "--threads", "1", "bench", "ckks", "--preset", preset, "--reps", str(reps), "--json"],
        check=True, capture_output=True, text=True,
    ).stdout
    times = {}
    for line in out.splitlines():
        obj = json.loads(line)
        if "median_ms" in obj:
            times[obj["op"]] = obj["median_ms"]
    return times


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="bench16", choices=sorted(PRESETS))
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--volley", default="target/release/volley")
    args = ap.parse_args()
    seal = seal_times(args.preset, args.reps)
    ours = volley_times(args.preset, args.reps, args.volley)
    print(f"preset {args.preset}, 1 thread, medians of {args.reps}")
    print(f"{'op':<20} {'volley ms':>10} {'SEAL ms':>10} {'volley/SEAL':>12}")
    for op, st in seal.items():
        v = ours.get(op)
        ratio = f"{v / st:12.2f}" if v else " " * 12
        print(f"{op:<20} {v if v is not None else float('nan'):10.1f} {st:10.1f} {ratio}")
    print("(SEAL rotate_hoisted_8 is 8 plain rotations: SEAL has no hoisting)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
