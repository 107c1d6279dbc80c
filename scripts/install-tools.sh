#!/usr/bin/env bash
# Builds the real services the tests and the local stack run against, and
# the linters the test command runs, once each: the Temporal CLI (dev
# server + UI), the BigQuery emulator, staticcheck and workflowcheck. All
# come from the Go module proxy; a cached binary is reused.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"

install_temporal() {
  [ -x "$TEMPORAL_BIN" ] && return
  echo "building temporal CLI $TEMPORAL_CLI_VERSION (once, ~8 min)" >&2
  tmp=$(mktemp -d)
  GOBIN=$tmp GOFLAGS=-buildvcs=false go install "github.com/temporalio/cli/cmd/temporal@$TEMPORAL_CLI_VERSION"
  mv "$tmp/temporal" "$TEMPORAL_BIN"
  rm -rf "$tmp"
}

install_bqemulator() {
  [ -x "$BQEMULATOR_BIN" ] && return
  echo "building bigquery-emulator $BQEMULATOR_VERSION (once, ~6 min)" >&2
  # A module of its own: the emulator pulls in GoogleSQL (~450 MB), which
  # must stay out of ktpipe's go.mod.
  (cd "$here/../tools/bqemulator" &&
    CGO_ENABLED=0 go build -ldflags='-s -w' -o "$BQEMULATOR_BIN.tmp" \
      github.com/goccy/bigquery-emulator/cmd/bigquery-emulator)
  mv "$BQEMULATOR_BIN.tmp" "$BQEMULATOR_BIN"
}

# go_tool BIN MODULE_PATH@VERSION: a Go command pinned by version, cached.
go_tool() {
  [ -x "$1" ] && return
  echo "building $2 (once)" >&2
  tmp=$(mktemp -d)
  GOBIN=$tmp GOFLAGS=-buildvcs=false go install "$2"
  mv "$tmp/$(basename "${2%@*}")" "$1"
  rm -rf "$tmp"
}

install_linters() {
  go_tool "$STATICCHECK_BIN" "honnef.co/go/tools/cmd/staticcheck@$STATICCHECK_VERSION"
  go_tool "$WORKFLOWCHECK_BIN" "go.temporal.io/sdk/contrib/tools/workflowcheck@$WORKFLOWCHECK_VERSION"
}

# One install at a time: two test runs started together must not both
# spend minutes building the same binary.
exec 9>"$KTPIPE_BIN/.install.lock"
flock 9

case "${1:-all}" in
  temporal) install_temporal ;;
  bqemulator) install_bqemulator ;;
  linters) install_linters ;;
  all) install_temporal; install_bqemulator; install_linters ;;
  *) echo "usage: $0 [temporal|bqemulator|linters|all]" >&2; exit 2 ;;
esac
