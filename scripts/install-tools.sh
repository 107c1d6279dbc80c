#!/usr/bin/env bash
# Builds the real services the tests and the local stack run against, and
# the linters the test command runs, once each: the Temporal CLI (dev
# server + UI), the BigQuery emulator, staticcheck, workflowcheck and
# deadcode, all from the Go module proxy (a cached binary is reused); and
# the Debian packages prometheus, chromium and docker-compose.
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
  go_tool "$DEADCODE_BIN" "golang.org/x/tools/cmd/deadcode@$DEADCODE_VERSION"
}

# install_debs: the Debian packages the tests drive for real: Prometheus
# (promtool and the server the alert test scrapes with), headless Chromium
# (the report test) and docker-compose (validates docker-compose.yml with
# no engine). Installed only when a command is missing.
install_debs() {
  missing=()
  command -v promtool >/dev/null && command -v prometheus >/dev/null || missing+=(prometheus)
  command -v chromium >/dev/null || missing+=(chromium)
  command -v docker-compose >/dev/null || missing+=(docker-compose)
  [ ${#missing[@]} -eq 0 ] && return
  echo "installing Debian packages: ${missing[*]}" >&2
  sudo_=; [ "$(id -u)" -ne 0 ] && sudo_=sudo
  $sudo_ apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_ apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
}

# One install at a time: two test runs started together must not both
# spend minutes building the same binary.
exec 9>"$KTPIPE_BIN/.install.lock"
flock 9

case "${1:-all}" in
  temporal) install_temporal ;;
  bqemulator) install_bqemulator ;;
  linters) install_linters ;;
  debs) install_debs ;;
  all) install_temporal; install_bqemulator; install_linters; install_debs ;;
  *) echo "usage: $0 [temporal|bqemulator|linters|debs|all]" >&2; exit 2 ;;
esac
