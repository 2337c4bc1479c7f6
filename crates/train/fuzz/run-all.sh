#!/usr/bin/env bash
# Runs every volley-train fuzz target (what server and client decode from each other) for
# SECONDS seconds each (default 60).
# Usage: crates/train/fuzz/run-all.sh [SECONDS]   (see scripts/fuzz-targets.sh)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
exec "$here/../../../scripts/fuzz-targets.sh" "$here" "${1:-60}" \
    container checkpoint manifest query_manifest
