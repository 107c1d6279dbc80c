#!/usr/bin/env bash
# Checks that the disk has room for the tests before they start. A run
# builds every package's test binary (twice: with and without -race) into
# the Go build cache and writes its services' logs and the tests' files
# under TMPDIR; on a full disk it fails at a link step with a bare "no
# space left on device", as one CI run did. Where the Go build cache or
# TMPDIR has less than KTPIPE_DISK_NEED_GB free (default 6: a run from an
# empty Go build cache left it at 5.7 GB on a 2-core machine, and one
# from a warm cache adds under 0.5 GB), it says so, empties the Go build
# and fuzz caches (rebuilt as needed, from the module cache) and names
# the largest entries of TMPDIR (a build running beside it from the same
# cache rebuilds what it loses). It does not stop the run: the need is an
# estimate, and a run that fits anyway should pass.
set -euo pipefail
need=${KTPIPE_DISK_NEED_GB:-6}
tmp=${TMPDIR:-/tmp}
cache=$(go env GOCACHE)
mkdir -p "$cache" "$tmp"

free_gb() { df -Pk "$1" | awk 'NR == 2 { print int($4 / 1024 / 1024) }'; }

for dir in "$cache" "$tmp"; do
  free=$(free_gb "$dir")
  if [ "$free" -lt "$need" ]; then
    echo "check-disk: $free GB free for $dir, the tests need about $need GB (KTPIPE_DISK_NEED_GB): emptying the Go build and fuzz caches" >&2
    go clean -cache -fuzzcache
    free=$(free_gb "$dir")
    if [ "$free" -lt "$need" ]; then
      echo "check-disk: still $free GB free for $dir; the largest entries of $tmp:" >&2
      du -xsh "$tmp"/* 2>/dev/null | sort -h | tail -5 >&2 || true
      echo "check-disk: going on; the run may fail with \"no space left on device\"" >&2
    fi
  fi
  echo "check-disk: $free GB free for $dir"
done
