#!/usr/bin/env bash
# Fails when the module holds a function nothing runs (deadcode,
# golang.org/x/tools/cmd/deadcode: reachability from the main packages,
# by rapid type analysis):
# - with its tests (-test): no function at all may be unreachable, so a
#   test helper or an export for tests that nothing calls is caught too;
# - without them: only the functions in scripts/deadcode-allow.txt, each
#   with its reason, may be reached by tests alone; an entry a main
#   package reaches now fails too, so the list stays true.
# The analysis holds for this GOOS/GOARCH (linux/amd64 in CI).
set -euo pipefail
cd "$(dirname "$0")/.."
export LC_ALL=C # one sort order for comm
. scripts/lib.sh
module=$(go list -m)
fmt='{{range .Funcs}}{{$.Path}}.{{.Name}} {{.Position}}{{"\n"}}{{end}}'
# <package dir>.<name> <file:line:col>, the module prefix dropped.
dead() { "$DEADCODE_BIN" "$@" -f "$fmt" ./... | sed "s|^$module/||" | sort; }

bad=0
with_tests=$(dead -test)
if [ -n "$with_tests" ]; then
  echo "check-deadcode: unreachable even from the tests; remove it:" >&2
  echo "$with_tests" | sed 's/^/  /' >&2
  bad=1
fi
allowed=$(grep -v -e '^#' -e '^[[:space:]]*$' scripts/deadcode-allow.txt | awk '{print $1}' | sort)
without_tests=$(dead)
found=$(echo "$without_tests" | awk '{print $1}' | grep . | sort -u || true)
# (a function dead even with the tests was named above already)
new=$(comm -23 <(echo "$found") <(echo "$allowed") | grep -v -x -F -f <(echo "$with_tests" | awk '{print $1}' | grep . || echo '-') || true)
if [ -n "$new" ]; then
  echo "check-deadcode: reached by tests alone (no main package calls it); remove it, or list it with a reason in scripts/deadcode-allow.txt:" >&2
  echo "$without_tests" | grep -F -f <(echo "$new" | sed 's/$/ /') | sed 's/^/  /' >&2
  bad=1
fi
stale=$(comm -13 <(echo "$found") <(echo "$allowed") | grep . || true)
if [ -n "$stale" ]; then
  echo "check-deadcode: reachable now; remove from scripts/deadcode-allow.txt:" >&2
  echo "$stale" | sed 's/^/  /' >&2
  bad=1
fi
exit $bad
