#!/usr/bin/env bash
# Runs every volley-service fuzz target (what the server decodes from a client first) for
# SECONDS seconds each (default 60).
# Usage: crates/service/fuzz/run-all.sh [SECONDS]   (see scripts/fuzz-targets.sh)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
exec "$here/../../../scripts/fuzz-targets.sh" "$here" "${1:-60}" \
    upload_request job_request upload_file tokens_file
