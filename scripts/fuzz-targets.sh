#!/usr/bin/env bash
# Runs cargo-fuzz targets of one fuzz crate for SECONDS seconds each, one after the other.
# Usage: scripts/fuzz-targets.sh FUZZ_DIR SECONDS TARGET...
# (each crate's run-all.sh names its targets: crates/ckks/fuzz, crates/train/fuzz).
# Needs cargo-fuzz (`cargo install cargo-fuzz`). On a stable toolchain RUSTC_BOOTSTRAP=1
# lets rustc accept the nightly-only sanitizer flags cargo-fuzz passes (see
# crates/ckks/fuzz/RESULTS.md). The crate's gen_corpus binary writes valid inputs as the
# starting corpus. Logs go to FUZZ_DIR/logs/<target>.log; a summary line per target is
# printed; exits non-zero on any crash, leak, timeout or out-of-memory (the reproducer is
# in FUZZ_DIR/artifacts/<target>/).
set -euo pipefail
cd "$1"
SECONDS_PER_TARGET="$2"
shift 2
if ! rustc --version | grep -q nightly; then
    export RUSTC_BOOTSTRAP=1
fi
if ! command -v cargo-fuzz >/dev/null 2>&1; then
    echo "fuzz-targets.sh: cargo-fuzz is not installed (cargo install cargo-fuzz)" >&2
    exit 2
fi
mkdir -p logs
cargo run --quiet --release --bin gen_corpus -- corpus >logs/build.log 2>&1 || { cat logs/build.log; exit 1; }
cargo fuzz build >>logs/build.log 2>&1 || { cat logs/build.log; exit 1; }
status=0
for t in "$@"; do
    log="logs/$t.log"
    if cargo fuzz run "$t" "corpus/$t" -- -max_total_time="$SECONDS_PER_TARGET" -timeout=30 \
        -rss_limit_mb=2048 -print_final_stats=1 >"$log" 2>&1; then
        result=ok
    else
        result=CRASH
        status=1
    fi
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
    cov=$(grep -oE 'cov: [0-9]+' "$log" | tail -1)
    echo "$t: $result, ${SECONDS_PER_TARGET}s, runs ${runs:-?}, exec/s ${rate:-?}, ${cov:-cov: ?}"
done
exit $status
