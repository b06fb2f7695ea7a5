#!/usr/bin/env bash
# Provision the database servers the channel tests and bench/db.js drive
# (docs/channels.md): Debian's MariaDB (mariadbd, mariadb-install-db) and
# Redis (redis-server). Only the programs: the tests start their own servers
# on Unix sockets with private data directories, so the packages' own
# services are never started here (a policy-rc.d refuses them while apt
# runs). Not in scripts/lib/host-packages.list for that reason: the one apt
# run of provision-host.sh would start them. Idempotent; fast when
# provisioned. As root.
set -euo pipefail
# shellcheck source=lib/common.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
need_root "it installs Debian packages"
PACKAGES=(mariadb-server redis-server)

missing=()
for p in "${PACKAGES[@]}"; do
  [ "$(dpkg-query -W -f='${db:Status-Abbrev}' "$p" 2>/dev/null)" = "ii " ] || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  # Debian starts a package's service when it is installed: refuse that
  # (exit 101), unless the machine has a policy of its own.
  policy=/usr/sbin/policy-rc.d
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy"
    chmod +x "$policy"
    trap 'rm -f "$policy"' EXIT
  fi
  apt_need "${missing[@]}"
fi
for bin in /usr/sbin/mariadbd /usr/bin/mariadb-install-db /usr/bin/redis-server; do
  [ -x "$bin" ] || die "$bin is missing after installing ${PACKAGES[*]}"
done
echo "servers: $(first_line /usr/sbin/mariadbd --version); $(first_line redis-server --version | cut -d" " -f1-3)"
