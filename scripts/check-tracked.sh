#!/usr/bin/env bash
# Fails when git tracks something that is not source: a compiled
# executable (ELF, Mach-O, PE) anywhere, or any file over 1 MiB outside a
# testdata/ directory. Build outputs belong in .gitignore, not in history.
set -euo pipefail
cd "$(dirname "$0")/.."
limit=$((1024 * 1024))
bad=0
while IFS= read -r -d '' f; do
  [ -f "$f" ] || continue
  magic=$(head -c 4 "$f" | od -An -tx1 | tr -d ' \n')
  case "$magic" in
    7f454c46|cffaedfe|cefaedfe|feedfacf|feedface|4d5a*)
      echo "check-tracked: $f is a compiled executable; remove it from git and ignore it" >&2
      bad=1; continue ;;
  esac
  case "/$f" in */testdata/*) continue ;; esac
  size=$(stat -c %s "$f")
  if [ "$size" -gt "$limit" ]; then
    echo "check-tracked: $f is $size bytes (limit $limit outside testdata/)" >&2
    bad=1
  fi
done < <(git ls-files -z)
exit $bad
