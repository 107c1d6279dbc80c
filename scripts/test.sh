#!/usr/bin/env bash
# The tests: builds the Temporal CLI and the BigQuery emulator once (cached
# under ~/.cache/ktpipe), then runs every package's tests. The warehouse and
# integration tests start the real dev server and emulator themselves and
# fail — never skip — when they cannot.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-tools.sh
go vet ./...
go test -count=1 -timeout 25m "$@" ./...
