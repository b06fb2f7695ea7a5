# shellcheck shell=bash
# Sourced (by scripts/lib/common.sh, and by the tracer wrappers, which need
# nothing else): sets and exports DYNPROBE_CACHE and every path derived from
# it, as scripts/lib/paths.list says, keeping those already set in the
# environment. Each must be an absolute path other than /.
dp_paths_list=$(dirname "${BASH_SOURCE[0]}")/paths.list
while read -r dp_var dp_default _; do
  case $dp_var in '' | '#'*) continue ;; esac
  if [ -z "${!dp_var:-}" ]; then
    case $dp_default in /*) ;; *) dp_default=$DYNPROBE_CACHE/$dp_default ;; esac
    printf -v "$dp_var" '%s' "$dp_default"
  fi
  case ${!dp_var} in
    /?*) ;;
    *) echo "${0##*/}: $dp_var must be an absolute path other than /, not '${!dp_var}'" >&2; exit 2 ;;
  esac
  export "${dp_var?}"
done <"$dp_paths_list"
unset dp_paths_list dp_var dp_default
# In the D library dir: the library the DTrace wrappers preload
# (scripts/lib/dtrace-keep-ctf.c; scripts/provision-tracers.sh builds it).
# shellcheck disable=SC2034 # used by the scripts that source this file
DP_DTRACE_PRELOAD=dtrace-keep-ctf.so
