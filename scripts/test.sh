#!/usr/bin/env bash
# The tests: builds the Temporal CLI, the BigQuery emulator and the linters
# once (cached under ~/.cache/ktpipe), checks that git tracks only source,
# lints, runs the packages without services under the race detector, runs
# every fuzz target briefly on top of its seed corpus, then runs every
# package's tests. The warehouse and integration tests start the real dev
# server and emulator themselves and fail — never skip — when they cannot.
#
# KTPIPE_FUZZTIME (default 10000x, a count) is how much each fuzz target
# runs. A count, not a duration: Go 1.26's fuzz coordinator can fail a
# duration-bounded run with a bare "context deadline exceeded" at its end,
# no crasher written (golang/go#75804, fixed in Go 1.27).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
scripts/check-disk.sh
scripts/install-tools.sh
scripts/check-tracked.sh
go vet ./...
"$STATICCHECK_BIN" ./...
# workflowcheck: workflow code must be deterministic (no time.Now, maps
# ranged into commands, goroutines, ...).
"$WORKFLOWCHECK_BIN" ./workflows/...
# deadcode: no function that nothing runs (scripts/deadcode-allow.txt
# lists, with reasons, the few only tests reach).
scripts/check-deadcode.sh
# The Docker files, checked without a Docker engine: docker-compose.yml by
# Debian's docker-compose (schema, references, interpolation); the
# Dockerfile by BuildKit's build checks and the build context by its
# .dockerignore (tools/dockerlint, its own module so BuildKit stays out of
# ktpipe's go.mod; go run, so it is never stale).
docker-compose --profile cli config -q
(cd tools/dockerlint && go run . -context ../.. ../../Dockerfile)
# The alert rules: valid, and each fires above its threshold, silent below.
promtool check rules ops/prometheus/rules.yml
promtool test rules ops/prometheus/rules_test.yml

# Packages whose tests need no dev server or emulator, under -race.
race_pkgs=$(go list ./... | grep -v -e /integration -e /warehouse -e /devstack -e /cmd/ -e /tools/)
go test -count=1 -race -timeout 10m $race_pkgs

# Each fuzz target for 10,000 inputs (a few seconds), beyond its seed corpus (which the
# plain test run below replays too).
grep -l '^func Fuzz' $(git ls-files '*_test.go') | while read -r f; do
  dir=./$(dirname "$f")
  for target in $(grep -o '^func Fuzz[A-Za-z0-9_]*' "$f" | cut -d' ' -f2); do
    go test -run '^$' -fuzz "^$target\$" -fuzztime "${KTPIPE_FUZZTIME:-10000x}" "$dir"
  done
done

# Every package's tests: the warehouse's in shards (scripts/test-warehouse.sh)
# while the others run, so that, as before, one warehouse process runs
# beside the integration tests. Its log is printed at the end, whatever
# happens; in its own session, so that a stopped run stops it too, its
# emulators with it (a background job ignores Ctrl-C).
wh_log=$(mktemp)
setsid -w scripts/test-warehouse.sh "$@" > "$wh_log" 2>&1 &
wh=$!
trap 'kill -- -"$wh" 2>/dev/null || true; echo "--- the warehouse tests (scripts/test-warehouse.sh) ---"; cat "$wh_log"; rm -f "$wh_log"' EXIT
# Ctrl-C ends the run at once: a go test it stops exits 1, which bash
# would take as handled and wait for the shards.
trap 'exit 130' INT
rc=0
go test -count=1 -timeout 45m "$@" $(go list ./... | grep -vxF "$(go list -m)/warehouse") || rc=1
if ! wait "$wh"; then
  echo "test.sh: the warehouse tests FAILED (their log follows)" >&2
  rc=1
fi
exit $rc
