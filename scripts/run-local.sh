#!/usr/bin/env bash
# The main job, end to end on the local default: builds the Temporal CLI and
# the BigQuery emulator once (cached), then runs ktpipe-local, which starts
# the dev server (UI on :8233), the emulator, the simulator and a worker,
# backfills, pulls, reconciles and prints the standard reports.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-tools.sh
exec go run ./cmd/ktpipe-local "$@"
