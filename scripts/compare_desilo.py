#!/usr/bin/env python3
"""Side-by-side CKKS bootstrapping of volley and DESILO FHE (CPU build) in one run.

Same ring degree, same slot count, same thread count, same inputs.

    pip install desilofhe
    cargo build --release -p volley-cli
    python3 scripts/compare_desilo.py                  # boot16: N = 2^16, 2^15 slots, 1 thread, 3 reps
    python3 scripts/compare_desilo.py --reps 1 --threads 2 --json

Both sides bootstrap a fresh level-0 encryption (under the secret key) of the same complex
vector a + i b, with a and b uniform in [-1, 1] (the xorshift stream volley's own benchmark
uses, reproduced here, so the two libraries see identical numbers); with --real-pair volley
refreshes two real vectors a and b in one bootstrap and DESILO bootstraps them as two real
ciphertexts (the time is that of both). Each side generates its keys, then times `reps`
bootstraps of the same ciphertext: the median is reported, and the precision of the last
output, as volley measures it: mean bits = -log2(mean |error|), min bits = -log2(max |error|),
|error| being the complex modulus of the slot error.

DESILO's side: `Engine(mode="cpu", bootstrap=True, thread_count=T)`. Its bootstrapping engine
is fixed at N = 2^16 with 2^15 slots; the thread count is honoured (one thread really keeps it
on one core). Its full bootstrap key takes ~17.5 GB of memory (peak RSS), so --desilo-key auto
uses it only when that much is available and otherwise falls back to the small bootstrap key
(roll key + small bootstrap key, ~7 GB, about 3x slower); the key used is printed. With
--slots below 2^15, DESILO (which has no sparse bootstrap in this API) bootstraps the values
tiled over its full 2^15 slots, and the output says so. Level after bootstrapping: DESILO's
ciphertext level (its bootstrap engine's top level is `engine.max_level`), volley's level
count; the two chains differ, so compare them as "levels left for the computation".

Prints a table (or one JSON object with --json) with both sides' figures and the ratio
volley / DESILO of the bootstrap medians (below 1: volley is faster). Exit code 2 when
desilofhe is not installed or the volley binary is missing.
"""
import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
# Peak RSS of DESILO's full-key bootstrap at N = 2^16 (measured: 17.5 GB), plus headroom.
FULL_KEY_BYTES_NEEDED = 19_000_000_000


def uniform(n, seed):
    """Values uniform in [-1, 1]: the xorshift64 stream of volley's bootstrap benchmark."""
    mask = (1 << 64) - 1
    x = ((seed * 0x9E3779B97F4A7C15) & mask) | 1
    out = []
    for _ in range(n):
        x ^= (x << 13) & mask
        x ^= x >> 7
        x ^= (x << 17) & mask
        out.append((x >> 11) / float(1 << 53) * 2.0 - 1.0)
    return out


def precision_bits(want, got):
    import numpy as np

    err = np.abs(np.asarray(got) - np.asarray(want))
    bits = lambda e: 64.0 if e == 0 else -math.log2(e)
    return round(bits(float(err.mean())), 2), round(bits(float(err.max())), 2)


def mem_available_bytes():
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def volley_bootstrap(binary, preset, slots, threads, reps, real_pair):
    cmd = [binary, "--threads", str(threads), "--quiet", "bench", "bootstrap",
           "--preset", preset, "--reps", str(reps), "--json"]
    if slots is not None:
        cmd += ["--slots", str(slots)]
    if real_pair:
        cmd.append("--real-pair")
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr)
        raise SystemExit(f"volley failed (exit {proc.returncode}): {' '.join(cmd)}")
    lines = [l for l in proc.stdout.splitlines() if l.strip().startswith("{")]
    if not lines:
        raise SystemExit(f"volley printed no JSON line: {' '.join(cmd)}")
    return json.loads(lines[-1])


def desilo_bootstrap(desilofhe, slots, threads, reps, real_pair, key_kind):
    import numpy as np

    eng = desilofhe.Engine(mode="cpu", bootstrap=True, thread_count=threads)
    full_slots = eng.slot_count
    if slots > full_slots:
        raise SystemExit(f"DESILO's bootstrap engine has {full_slots} slots; {slots} asked")
    avail = mem_available_bytes()
    if key_kind == "auto":
        key_kind = "full" if avail is None or avail >= FULL_KEY_BYTES_NEEDED else "small"
    sk = eng.create_secret_key()
    t = time.perf_counter()
    relin = eng.create_relinearization_key(sk)
    conj = eng.create_conjugation_key(sk)
    if key_kind == "full":
        keys = (relin, conj, eng.create_bootstrap_key(sk))
    else:
        keys = (relin, conj, eng.create_roll_key(sk), eng.create_small_bootstrap_key(sk))
    keygen_ms = (time.perf_counter() - t) * 1e3
    key_bytes = sum(k.nbytes for k in keys)

    # Sparse slot counts: the values tiled over the full slots (no sparse bootstrap here).
    a = np.resize(np.array(uniform(slots, 1)), full_slots)
    b = np.resize(np.array(uniform(slots, 2)), full_slots)
    if real_pair:
        inputs = [a, b]
    else:
        inputs = [a + 1j * b]
    cts = [eng.encrypt(v, sk, 0) for v in inputs]
    levels_before = cts[0].level
    times, outs = [], None
    for _ in range(max(reps, 1)):
        t = time.perf_counter()
        outs = [eng.bootstrap(ct, *keys) for ct in cts]
        times.append((time.perf_counter() - t) * 1e3)
    want = np.concatenate(inputs)
    got = np.concatenate([eng.decrypt(o, sk) for o in outs])
    mean_bits, min_bits = precision_bits(want, got)
    try:
        import resource

        peak_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    except ImportError:
        peak_rss = None
    return {
        "log_n": int(math.log2(2 * full_slots)), "slots": full_slots, "threads": threads,
        "key": key_kind, "mem_available_bytes": avail,
        "median_ms": round(statistics.median(times), 1),
        "times_ms": [round(t, 1) for t in times],
        "precision_bits_mean": mean_bits, "precision_bits_min": min_bits,
        "levels_before": levels_before, "levels_after": outs[0].level,
        "max_level": eng.max_level,
        "key_bytes": key_bytes, "keygen_ms": round(keygen_ms),
        "peak_rss_bytes": peak_rss,
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="boot16", help="volley preset with a bootstrapping chain")
    ap.add_argument("--log-n", type=int, default=16,
                    help="expected log2 of the ring degree (checked against both libraries)")
    ap.add_argument("--slots", type=int, default=None, help="slot count (default N/2 of the preset)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--reps", type=int, default=3, help="bootstraps timed on each side")
    ap.add_argument("--real-pair", action="store_true",
                    help="two real vectors (volley: one bootstrap; DESILO: two)")
    ap.add_argument("--desilo-key", choices=["auto", "full", "small"], default="auto",
                    help="DESILO bootstrap key: full (~17.5 GB peak), small (~7 GB, slower), "
                         "auto: full if enough memory is available")
    ap.add_argument("--volley", default=str(REPO / "target" / "release" / "volley"))
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    args = ap.parse_args()

    try:
        import desilofhe
        from importlib.metadata import version

        desilo_version = version("desilofhe")
    except ImportError:
        sys.stderr.write("desilofhe is not installed: pip install desilofhe  (CPU build)\n")
        return 2
    if not os.access(args.volley, os.X_OK):
        sys.stderr.write(f"volley binary not found at {args.volley}: "
                         "cargo build --release -p volley-cli (or pass --volley PATH)\n")
        return 2

    # Without --slots volley uses N/2 of the preset; its JSON says how many.
    ours = volley_bootstrap(args.volley, args.preset, args.slots, args.threads, args.reps,
                            args.real_pair)
    slots = ours.get("slots") or args.slots or (1 << args.log_n) // 2
    theirs = desilo_bootstrap(desilofhe, slots, args.threads, args.reps, args.real_pair,
                              args.desilo_key)

    notes = []
    if not (ours.get("log_n") == theirs["log_n"] == args.log_n):
        notes.append(f"ring degrees differ: --log-n {args.log_n}, volley 2^{ours.get('log_n')}, "
                     f"DESILO 2^{theirs['log_n']}")
    if theirs["slots"] != slots:
        notes.append(f"DESILO bootstraps its full {theirs['slots']} slots (values tiled); "
                     f"volley bootstraps {slots}")
    if theirs["key"] == "small":
        avail = theirs["mem_available_bytes"]
        why = (f": {avail / 1e9:.1f} GB available, the full key needs "
               f"~{FULL_KEY_BYTES_NEEDED / 1e9:.0f} GB" if args.desilo_key == "auto" and avail
               else "")
        notes.append(f"DESILO used the small bootstrap key (less memory, ~3x slower){why}; "
                     "--desilo-key full forces the full one")
    ratio = ours["median_ms"] / theirs["median_ms"]
    inputs = ("two real vectors a, b" if args.real_pair else "complex a + i b")
    inputs += ", a and b uniform in [-1, 1]"

    if args.json:
        print(json.dumps({
            "op": "bootstrap_real_pair" if args.real_pair else "bootstrap",
            "preset": args.preset, "log_n": ours.get("log_n"), "slots": slots,
            "threads": args.threads, "reps": args.reps, "inputs": inputs,
            "desilofhe_version": desilo_version,
            "volley": ours, "desilo": theirs,
            "ratio_volley_over_desilo": {
                "bootstrap_ms": round(ratio, 3),
                "keygen_ms": round(ours["keygen_ms"] / theirs["keygen_ms"], 3)
                if ours.get("keygen_ms") and theirs["keygen_ms"] else None,
                "key_bytes": round(ours["key_bytes"] / theirs["key_bytes"], 3)
                if ours.get("key_bytes") and theirs["key_bytes"] else None,
            },
            "notes": notes,
        }))
        return 0

    gb = lambda b: f"{b / 1e9:.2f}" if b else "-"
    rows = [
        ("bootstrap median ms", f"{ours['median_ms']:.1f}", f"{theirs['median_ms']:.1f}"),
        ("precision mean bits", f"{ours['precision_bits_mean']:.2f}",
         f"{theirs['precision_bits_mean']:.2f}"),
        ("precision min bits", f"{ours['precision_bits_min']:.2f}",
         f"{theirs['precision_bits_min']:.2f}"),
        ("level before -> after", f"{ours.get('levels_before', 0)} -> {ours.get('levels_after')}",
         f"{theirs['levels_before']} -> {theirs['levels_after']}"),
        ("key generation s", f"{ours.get('keygen_ms', float('nan')) / 1e3:.1f}",
         f"{theirs['keygen_ms'] / 1e3:.1f}"),
        ("key GB", gb(ours.get("key_bytes")), gb(theirs["key_bytes"])),
        ("peak RSS GB", gb(ours.get("peak_rss_bytes")), gb(theirs["peak_rss_bytes"])),
    ]
    print(f"bootstrap, preset {args.preset}, N = 2^{ours.get('log_n')}, {slots} slots, "
          f"{args.threads} thread{'s' if args.threads != 1 else ''}, medians of {args.reps}")
    print(f"inputs: {inputs}; DESILO: desilofhe {desilo_version}, {theirs['key']} bootstrap key")
    print(f"{'':<24} {'volley':>12} {'DESILO':>12}")
    for name, v, d in rows:
        print(f"{name:<24} {v:>12} {d:>12}")
    print(f"volley / DESILO bootstrap time: {ratio:.2f} (below 1: volley is faster)")
    for n in notes:
        print(f"note: {n}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
