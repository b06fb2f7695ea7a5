#!/usr/bin/env bash
# Runs shellcheck on every shell script of the repository: the tracked *.sh files
# and the tracked files whose first line runs sh or bash (scripts/dtrace,
# .ci/run...). Settings: .shellcheckrc (sourced files are followed).
#   scripts/lint-shell.sh      exits non-zero when shellcheck finds anything
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
command -v shellcheck >/dev/null || {
  echo "lint-shell: shellcheck is not installed (as root: bash scripts/provision-host.sh lint)" >&2
  exit 127
}
files=()
while IFS= read -r -d '' f; do
  [ -f "$f" ] || continue
  case $f in
    *.sh) files+=("$f") ;;
    *) IFS= read -r first <"$f" || true
       [[ $first =~ ^\#!.*[/\ ](ba|da)?sh([[:space:]]|$) ]] && files+=("$f") ;;
  esac
done < <(git ls-files -z)
shellcheck "${files[@]}"
echo "lint-shell: ${#files[@]} shell scripts, shellcheck clean"
