#!/usr/bin/env bash
# Remove uprobe events left behind by DTrace (groups dt_<pid>_*) when it was
# killed without SIGINT. Events of a still-running dtrace are kept.
set -euo pipefail
T=/sys/kernel/tracing
mountpoint -q "$T" || mount -t tracefs tracefs "$T"
# Lines look like "p:GROUP/EVENT PATH:OFFSET ...". Append (>>) one "-:" line
# per event: opening the file with truncation would delete ALL uprobe events.
# Read the whole list before writing, so removals do not shift the reader.
evs=$(awk '{ split($1, a, ":"); print a[2] }' "$T/uprobe_events")
for ev in $evs; do
  case $ev in dt_*/*) ;; *) continue ;; esac
  pid=${ev#dt_}; pid=${pid%%_*}
  # (the dtrace process shows as ld-linux-x86-64 when run by scripts/dtrace)
  if [ -n "$pid" ] && [ -z "${pid//[0-9]/}" ] && [ -d "/proc/$pid" ]; then continue; fi
  echo "-:$ev" >>"$T/uprobe_events" 2>/dev/null || echo "clean-uprobes: could not remove $ev (busy?)" >&2
done
