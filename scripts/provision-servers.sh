#!/usr/bin/env bash
# Provision the database servers the channel tests and bench/db.js drive
# (docs/channels.md): Debian's MariaDB (mariadbd, mariadb-install-db) and
# Redis (redis-server). Only the programs: the tests start their own servers
# on Unix sockets with private data directories, so the packages' own
# services are never started here (a policy-rc.d refuses them while apt runs).
# Idempotent; fast when provisioned.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
say() { echo "provision-servers: $*" >&2; }
die() { say "$*"; exit 1; }
[ "$(id -u)" = 0 ] || die "must run as root"
LOG=/var/lib/dynprobe/provision-servers.log
mkdir -p "$(dirname "$LOG")"
quiet() { "$@" >>"$LOG" 2>&1 </dev/null || { tail -n 25 "$LOG" >&2; die "failed: $*  (log: $LOG)"; }; }

PACKAGES=(mariadb-server redis-server)
missing=()
for p in "${PACKAGES[@]}"; do
  [ "$(dpkg-query -W -f='${db:Status-Abbrev}' "$p" 2>/dev/null)" = "ii " ] || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  : >"$LOG"
  # Debian starts a package's service when it is installed: refuse that
  # (exit 101), unless the machine already has a policy of its own.
  policy=/usr/sbin/policy-rc.d
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy"
    chmod +x "$policy"
    trap 'rm -f "$policy"' EXIT
  fi
  say "installing ${missing[*]}"
  quiet apt-get -o DPkg::Lock::Timeout=600 update -q
  quiet apt-get -o DPkg::Lock::Timeout=600 install -y -q --no-install-recommends "${missing[@]}"
fi
for bin in mariadbd mariadb-install-db redis-server; do
  command -v "$bin" >/dev/null || [ -x "/usr/sbin/$bin" ] || die "$bin is missing after installing ${PACKAGES[*]}"
done
echo "servers: $(/usr/sbin/mariadbd --version 2>/dev/null | sed 's/ *$//'); $(redis-server --version | cut -d' ' -f1-3)"
