#!/usr/bin/env bash
# The warehouse package's tests in KTPIPE_WAREHOUSE_SHARDS (default 6)
# processes, one after another, each starting its own emulator. The
# emulator (v0.8.1) slows every query by the tables it holds, and each
# test makes a dataset of about twenty: a query took 31 ms beside one
# dataset and 153 ms beside 21, and deleting a dataset or a table to keep
# it small hangs the emulator. One process ran the 39 tests in 1,524 to
# 1,945 s; six shards of six or seven, 247 s (2 shared cores). Tests go to
# shards round-robin by name, so a new test is always in one. Extra
# arguments go to every go test; with a -run of its own, the package runs
# once, as asked.
set -euo pipefail
cd "$(dirname "$0")/.."
for arg in "$@"; do
  case $arg in
  -run | -run=* | --run | --run=*) exec go test -count=1 -timeout 45m "$@" ./warehouse ;;
  esac
done
shards=${KTPIPE_WAREHOUSE_SHARDS:-6}
mapfile -t tests < <(go test -list . ./warehouse | grep '^Test')
if [ ${#tests[@]} -eq 0 ]; then
  echo "test-warehouse: go test -list found no tests in ./warehouse" >&2
  exit 1
fi
rc=0
for ((s = 0; s < shards; s++)); do
  names=()
  for ((i = s; i < ${#tests[@]}; i += shards)); do names+=("${tests[i]}"); done
  [ ${#names[@]} -gt 0 ] || continue
  echo "test-warehouse: shard $((s + 1))/$shards: ${names[*]}"
  go test -count=1 -timeout 45m "$@" -run "^($(IFS='|'; echo "${names[*]}"))\$" ./warehouse || rc=1
done
exit $rc
