#!/usr/bin/env bash
# Runs every volley-ckks decoder fuzz target for SECONDS seconds each (default 60).
# Usage: crates/ckks/fuzz/run-all.sh [SECONDS]   (see scripts/fuzz-targets.sh)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
exec "$here/../../../scripts/fuzz-targets.sh" "$here" "${1:-60}" \
    ciphertext plaintext public_key switching_key evaluation_keys encapsulation_keys params secret_key
