#!/usr/bin/env bash
# The warehouse package's tests in KTPIPE_WAREHOUSE_SHARDS (default 6)
# processes, one after another, each starting its own emulator. The
# emulator (v0.8.1) slows every query by the tables it holds, and each
# test makes a dataset of about twenty: a query took 31 ms beside one
# dataset and 153 ms beside 21, and deleting a dataset or a table to keep
# it small hangs the emulator. One process ran the 39 tests in 1,524 to
# 1,945 s; six shards of six or seven, 247 s (2 shared cores). Tests,
# fuzz targets and examples go to shards round-robin in go test -list's
# order, so a new one is always in one. Each shard has 45 minutes divided
# among the shards, 15 at least (six take under 3). Extra arguments go to
# every shard's go test (a -timeout of the caller's wins); with a -run of
# its own, the package runs once, as asked.
set -euo pipefail
cd "$(dirname "$0")/.."
# Ctrl-C ends the run, not only the shard it stops.
trap 'exit 130' INT
for arg in "$@"; do
  case $arg in
  -run | -run=* | --run | --run=*) exec go test -count=1 -timeout 45m "$@" ./warehouse ;;
  esac
done
shards=${KTPIPE_WAREHOUSE_SHARDS:-6}
if ! [[ $shards =~ ^[1-9][0-9]*$ ]]; then
  echo "test-warehouse: KTPIPE_WAREHOUSE_SHARDS must be a positive whole number, got '$shards'" >&2
  exit 2
fi
if ! list=$(go test -list . ./warehouse); then
  echo "test-warehouse: go test -list ./warehouse failed (above): cannot shard the tests" >&2
  exit 1
fi
mapfile -t tests < <(grep -E '^(Test|Fuzz|Example)' <<< "$list")
if [ ${#tests[@]} -eq 0 ]; then
  echo "test-warehouse: go test -list found no tests in ./warehouse" >&2
  exit 1
fi
timeout=$((45 / shards > 15 ? 45 / shards : 15))m
failed=()
for ((s = 0; s < shards; s++)); do
  names=()
  for ((i = s; i < ${#tests[@]}; i += shards)); do names+=("${tests[i]}"); done
  [ ${#names[@]} -gt 0 ] || continue
  pattern="^($(IFS='|'; echo "${names[*]}"))\$"
  echo "test-warehouse: shard $((s + 1))/$shards: ${names[*]}"
  go test -count=1 -timeout "$timeout" "$@" -run "$pattern" ./warehouse || failed+=("$pattern")
done
if [ ${#failed[@]} -gt 0 ]; then
  for pattern in "${failed[@]}"; do
    echo "test-warehouse: FAILED; rerun with: scripts/test-warehouse.sh $* -run '$pattern'" >&2
  done
  exit 1
fi
echo "test-warehouse: all ${#tests[@]} passed"
