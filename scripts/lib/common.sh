# shellcheck shell=bash
# The set-up library: sourced by every provisioning, build and toolchain
# script, so that none of them repeats what is here.
#
#   . "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
#
# Sourcing it sets `-euo pipefail`, closes standard input (set-up never
# asks anything), exports DEBIAN_FRONTEND=noninteractive and the cache paths
# (scripts/lib/paths.sh: DYNPROBE_CACHE and what derives from it), and
# defines:
#
#   say TEXT...          a message on stderr, prefixed with the script's name
#   die TEXT...          say it and exit 1
#   need_root [WHY]      die unless running as root
#   step TEXT...         say TEXT and name it as the current step: a failure
#                        of quiet/retry reports it
#   quiet CMD...         run CMD with its output appended to $DP_LOG; if it
#                        fails, print the step, the command and the last 25
#                        lines it logged, and exit with its status
#   retry CMD...         quiet, for what may fail for a while (the network,
#                        a mirror, a lock): up to $DP_ATTEMPTS tries (3), the
#                        reason printed before each new one; a "lock held"
#                        failure of apt or dpkg waits (up to $DP_LOCK_WAIT s)
#                        and does not count as a try
#   first_line CMD...    CMD's first line of output (the whole output is read:
#                        no `| head -n 1`, whose early exit kills CMD with
#                        SIGPIPE, a failure under pipefail)
#   ready FILE STAMP     true when FILE (a marker) holds exactly STAMP
#   lock PATH            hold an exclusive lock on PATH.lock (flock) until
#                        the script exits; says so when it has to wait
#   fetch URL FILE       download URL to FILE (atomically), retried
#   apt_get ARGS...      the host's apt-get, quiet, retried, waiting for the
#                        dpkg and apt locks (DPkg::Lock::Timeout does not
#                        cover the lists lock that `update` takes), one of
#                        ours at a time (flock)
#   apt_need PKG...      install those of the host packages that are missing
#                        (`apt-get update` first when not done lately)
#   apt_need_for WHO...  apt_need the packages that scripts/lib/host-packages.list
#                        says WHO needs (all of them for `all`)
#   in_root ROOT CMD...  run CMD chrooted in ROOT, /proc /sys /dev bound in a
#                        private mount namespace (gone when CMD ends)
#   unmount_under DIR    detach whatever is mounted under DIR (before rm -rf)
#   host_mirror          the Debian mirror the host's apt uses (DYNPROBE_MIRROR
#                        overrides it)
#   debian_index SUITE ARCH   the path of that suite's Packages index (cached
#                        for a day under $DYNPROBE_CACHE/downloads)
#   debian_field INDEX PACKAGE FIELD   a field of a package in an index
#   mmdebstrap_root SUITE ROOT [OPTIONS...]   make ROOT with mmdebstrap,
#                        retried, a partial ROOT removed first
#
# $DP_NAME is the script's path under scripts/ without .sh (messages, and the
# log, $DYNPROBE_CACHE/logs/$DP_NAME.log, or under /tmp when that cannot be
# written).

# (-E and inherit_errexit: the ERR trap and set -e hold in functions and in
# command substitutions too)
set -Eeuo pipefail
shopt -s inherit_errexit
exec </dev/null
export DEBIAN_FRONTEND=noninteractive LC_ALL=C

DP_LIB=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
DP_SCRIPTS=$(dirname "$DP_LIB")
DP_NAME=$(readlink -f "${BASH_SOURCE[-1]}")
DP_NAME=${DP_NAME#"$DP_SCRIPTS"/}
DP_NAME=${DP_NAME%.sh}
DP_ATTEMPTS=${DP_ATTEMPTS:-3}
DP_LOCK_WAIT=${DP_LOCK_WAIT:-600}
DP_STEP=
# shellcheck source=paths.sh
. "$DP_LIB/paths.sh"

say() { printf '%s: %s\n' "$DP_NAME" "$*" >&2; }
die() {
  say "$*"
  exit 1
}
need_root() { [ "$(id -u)" = 0 ] || die "must run as root${1:+ ($1)}"; }
step() {
  DP_STEP=$*
  say "$*"
}

# The log: one per script, appended to; a new run starts with a header.
if mkdir -p "$DYNPROBE_CACHE/logs" 2>/dev/null && [ -w "$DYNPROBE_CACHE/logs" ]; then
  DP_LOG=$DYNPROBE_CACHE/logs/${DP_NAME//\//-}.log
else
  mkdir -p "${TMPDIR:-/tmp}/dynprobe-logs-$(id -u)"
  DP_LOG=${TMPDIR:-/tmp}/dynprobe-logs-$(id -u)/${DP_NAME//\//-}.log
fi
# Keep it from growing without end.
if [ "$(stat -c %s "$DP_LOG" 2>/dev/null || echo 0)" -gt 20000000 ]; then : >"$DP_LOG"; fi
printf '\n==== %s %s (pid %s)\n' "$(date -u '+%F %T')" "$DP_NAME" "$$" >>"$DP_LOG"

# An unexpected failure (a command outside quiet/retry) names itself too.
# (Not in subshells: a command substitution's failure is the caller's, which
# says so if it matters.)
dp_on_err() {
  [ "$BASH_SUBSHELL" = 0 ] || return 0
  say "failed (exit $1) at ${BASH_SOURCE[1]##*/}:$2: $3${DP_STEP:+ (step: $DP_STEP)}"
}
trap 'dp_on_err $? $LINENO "$BASH_COMMAND"' ERR

dp_quote() {
  local out='' a
  for a in "$@"; do
    case $a in *[!A-Za-z0-9_./=:,@%+-]* | '') a=\'${a//\'/\'\\\'\'}\' ;; esac
    out+="${out:+ }$a"
  done
  printf '%s' "$out"
}

# Runs CMD with its output appended to the log; its status. DP_LOG_FROM is
# where its output starts in the log. CMD runs in the current shell's
# context where set -e does not apply, so pass programs, or functions whose
# status is their last command's.
dp_logged() {
  DP_LOG_FROM=$(stat -c %s "$DP_LOG" 2>/dev/null || echo 0)
  printf -- '---- %s %s$ %s\n' "$(date -u +%T)" "${DP_STEP:+[$DP_STEP] }" "$(dp_quote "$@")" >>"$DP_LOG"
  "$@" >>"$DP_LOG" 2>&1
}

# The last lines that the current command logged.
dp_tail() { tail -c +$((DP_LOG_FROM + 1)) "$DP_LOG" | tail -n "$1"; }

dp_failed() {
  local rc=$1
  shift
  say "FAILED${DP_STEP:+ in step: $DP_STEP}"
  say "command (exit $rc): $(dp_quote "$@")"
  say "its last lines (whole log: $DP_LOG):"
  dp_tail 25 | sed 's/^/  | /' >&2
  exit "$rc"
}

quiet() {
  local rc=0
  dp_logged "$@" || rc=$?
  [ "$rc" = 0 ] || dp_failed "$rc" "$@"
}

# What apt and dpkg print when another process holds their locks.
DP_LOCK_BUSY='Could not get lock|Unable to acquire the dpkg frontend lock|Unable to lock (the )?directory|is another process using it|dpkg status database is locked'

retry() {
  local try=1 rc waited=0 why
  while :; do
    rc=0
    dp_logged "$@" || rc=$?
    [ "$rc" = 0 ] && return 0
    why=$(dp_tail 40 | awk '!/^---- / && NF { l = $0 } END { print substr(l, 1, 200) }')
    if [ "$waited" -lt "$DP_LOCK_WAIT" ] && grep -Eq "$DP_LOCK_BUSY" <<<"$(dp_tail 40)"; then
      [ "$waited" -gt 0 ] || say "waiting for a lock held by another process: $why"
      sleep 5
      waited=$((waited + 5))
      continue
    fi
    [ "$try" -lt "$DP_ATTEMPTS" ] || dp_failed "$rc" "$@"
    say "retrying in $((try * 10)) s (try $((try + 1)) of $DP_ATTEMPTS)${DP_STEP:+, step: $DP_STEP}; exit $rc: ${why:-no output}"
    sleep $((try * 10))
    try=$((try + 1))
  done
}

first_line() {
  local out
  out=$("$@")
  printf '%s\n' "${out%%$'\n'*}"
}

ready() { [ -e "$1" ] && [ "$(cat "$1")" = "$2" ]; }

# known_pinned KEY...: dies unless each key has a version in the caller's
# associative array PINNED (key -> version).
known_pinned() {
  local key
  for key in "$@"; do
    # shellcheck disable=SC2154 # PINNED is the caller's
    [ -n "${PINNED[$key]:-}" ] || die "no pinned version for $key (known: ${!PINNED[*]})"
  done
}

# unready_pinned CACHE KEY...: those of the (known) keys not yet ready as
# CACHE/KEY, one a line.
unready_pinned() {
  local cache=$1 key
  shift
  for key in "$@"; do
    ready "$cache/$key/.dynprobe-ready" "${PINNED[$key]}" || echo "$key"
  done
}

lock() {
  local fd
  mkdir -p "$(dirname "$1")"
  exec {fd}>"$1.lock"
  if ! flock -n "$fd"; then
    say "waiting for another process that holds $1.lock"
    flock -w 3600 "$fd" || die "still locked after an hour: $1.lock"
  fi
}

fetch() {
  local url=$1 file=$2
  mkdir -p "$(dirname "$file")"
  retry curl -fsSL --connect-timeout 30 --speed-limit 20000 --speed-time 60 -o "$file.part.$$" "$url"
  mv -f "$file.part.$$" "$file"
}

# One apt of ours at a time on the machine, whatever the cache (apt's own
# locks are not waited for by all of its commands).
DP_APT_LOCK=/run/lock/dynprobe-apt.lock

apt_get() { retry flock -w 3600 "$DP_APT_LOCK" apt-get -q -o DPkg::Lock::Timeout=60 -o Acquire::Retries=2 "$@"; }

apt_need() {
  local missing=() p stamp=/run/lock/dynprobe-apt.updated
  for p in "$@"; do
    [ "$(dpkg-query -W -f='${db:Status-Abbrev}' "$p" 2>/dev/null)" = "ii " ] || missing+=("$p")
  done
  [ ${#missing[@]} -gt 0 ] || return 0
  step "installing host packages: ${missing[*]}"
  # Lists updated by us lately are tried as they are; if they are too old
  # for what the mirror now has, they are updated then.
  if [ -n "$(find "$stamp" -mmin -360 2>/dev/null)" ] &&
    dp_logged flock -w 3600 "$DP_APT_LOCK" apt-get -q -o DPkg::Lock::Timeout=600 install -y --no-install-recommends "${missing[@]}"; then
    return 0
  fi
  apt_get update
  touch "$stamp"
  apt_get install -y --no-install-recommends "${missing[@]}"
}

apt_need_for() {
  local pkgs
  pkgs=$(awk -v who=" $* " '/^[a-z0-9]/ { for (i = 2; i <= NF; i++) if (who ~ " " $i " " || who ~ / all /) { print $1; break } }' \
    "$DP_LIB/host-packages.list")
  [ -n "$pkgs" ] || die "scripts/lib/host-packages.list names no package for $*"
  # shellcheck disable=SC2086 # one name a line
  apt_need $pkgs
}

in_root() {
  local root=$1
  shift
  # shellcheck disable=SC2016 # expanded by the inner shell
  unshare -m --propagation private bash -c 'set -e; r=$1; shift
    for d in proc sys dev; do mount --rbind "/$d" "$r/$d"; done
    exec chroot "$r" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin \
      HOME=/root LC_ALL=C DEBIAN_FRONTEND=noninteractive "$@"' in_root "$root" "$@"
}

unmount_under() {
  local dir=$1 mounts
  # (deepest first)
  mounts=$(findmnt -rn -o TARGET | awk -v d="$dir/" 'index($0, d) == 1' | sort -r)
  [ -z "$mounts" ] || xargs -r umount -l <<<"$mounts"
  mounts=$(findmnt -rn -o TARGET | awk -v d="$dir/" 'index($0, d) == 1')
  [ -z "$mounts" ] || die "cannot unmount everything under $dir: $mounts"
}

host_mirror() {
  if [ -n "${DYNPROBE_MIRROR:-}" ]; then
    echo "$DYNPROBE_MIRROR"
    return
  fi
  local cn m
  cn=$(. /etc/os-release && echo "${VERSION_CODENAME:-}")
  m=$({
    # deb822 stanzas -> "URIs<TAB>Suites<TAB>Components"
    for f in /etc/apt/sources.list.d/*.sources; do
      [ -f "$f" ] || continue
      awk 'BEGIN { RS = ""; FS = "\n" }
        { delete v; k = ""
          for (i = 1; i <= NF; i++) { l = $i
            if (l ~ /^#/) continue
            if (l ~ /^[ \t]/) { if (k != "") v[k] = v[k] " " l; continue }
            p = index(l, ":"); if (!p) continue
            k = tolower(substr(l, 1, p - 1)); v[k] = substr(l, p + 1) }
          if (tolower(v["enabled"]) ~ /no/ || v["types"] !~ /(^|[ \t])deb([ \t]|$)/) next
          print v["uris"] "\t" v["suites"] "\t" v["components"] }' "$f"
    done
    # one-line format: deb [options] URI SUITE COMPONENT...
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
      [ -f "$f" ] || continue
      awk '$1 == "deb" {
        i = 2; if ($i ~ /^\[/) { while ($i !~ /\]$/ && i < NF) i++; i++ }
        c = ""; for (j = i + 2; j <= NF; j++) c = c " " $j
        print $i "\t" $(i + 1) "\t" c }' "$f"
    done
  } | awk -F'\t' -v cn="$cn" '
    { n = split($1, u, " "); split($2, s, " "); hit = 0
      for (j in s) if (s[j] == cn) hit = 1
      for (j = 1; j <= n; j++) if (u[j] ~ /^(https?|file):\/\//) {
        if (hit && (" " $3 " ") ~ /[ \t]main[ \t]/) { if (!found) print u[j]; found = 1 }
        if (fb == "" && u[j] !~ /security/) fb = u[j] } }
    END { if (!found && fb != "") print fb }')
  [ -n "$m" ] || die "no Debian mirror in the host's apt sources (set DYNPROBE_MIRROR)"
  echo "${m%/}"
}

debian_index() {
  local suite=$1 arch=$2 file fd
  file=$DYNPROBE_CACHE/downloads/Packages-$suite-$arch
  mkdir -p "$(dirname "$file")"
  # Two scripts may want the same index at once: one fetches, the other waits.
  exec {fd}>"$file.lock"
  flock -w 600 "$fd" || die "$file.lock is held for ten minutes"
  if [ -z "$(find "$file" -mmin -1440 2>/dev/null)" ]; then
    fetch "$(host_mirror)/dists/$suite/main/binary-$arch/Packages.xz" "$file.xz.$$"
    xz -dc "$file.xz.$$" >"$file.tmp.$$"
    mv -f "$file.tmp.$$" "$file"
    rm -f "$file.xz.$$"
  fi
  exec {fd}>&-
  echo "$file"
}

debian_field() {
  awk -v RS= -v p="$2" -v f="$3" '
    { found = 0; n = split($0, l, "\n")
      for (i = 1; i <= n; i++) if (l[i] == "Package: " p) found = 1
      if (!found) next
      for (i = 1; i <= n; i++) if (index(l[i], f ": ") == 1) { print substr(l[i], length(f) + 3); exit } }' "$1"
}

# One try of mmdebstrap_root: into an empty ROOT (a failed try is cleared).
dp_mmdebstrap() {
  local root=$1
  shift
  unmount_under "$root" && rm -rf --one-file-system "$root" && mkdir -p "$root" &&
    mmdebstrap "$@"
}

mmdebstrap_root() {
  local suite=$1 root=$2 mirror
  shift 2
  mirror=$(host_mirror)
  # (The mirror's sid Release file may be past its Valid-Until date.)
  retry dp_mmdebstrap "$root" --quiet --aptopt='Acquire::Check-Valid-Until "false"' \
    --aptopt='Acquire::Retries "3"' "$@" "$suite" "$root" "$mirror"
}
