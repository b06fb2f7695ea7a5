#!/usr/bin/env bash
# Provision the oldest glibc root reachable here: Debian bullseye (glibc
# 2.31), a minbase root in $DYNPROBE_BULLSEYE_ROOT, plus Node 18 and 20 from
# npm (scripts/provision-node-majors.sh). The tests run those nodes in the
# root, with the checkout and the node binaries bound in at their host paths
# (test/fixtures/runtimes.js). Idempotent; fast when provisioned.
set -euo pipefail
# shellcheck source=lib/common.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
need_root "it makes a root file system"
ROOT=$DYNPROBE_BULLSEYE_ROOT

if [ ! -e "$ROOT/.dynprobe-ready" ]; then
  apt_need_for roots
  lock "$ROOT"
  if [ ! -e "$ROOT/.dynprobe-ready" ]; then
    step "making the bullseye root in $ROOT (mmdebstrap)"
    mmdebstrap_root bullseye "$ROOT" --variant=minbase --dpkgopt=force-unsafe-io
    quiet in_root "$ROOT" ldd --version
    touch "$ROOT/.dynprobe-ready"
  fi
fi
bash "$DP_SCRIPTS/provision-node-majors.sh" 18 20 >/dev/null
glibc=$(first_line in_root "$ROOT" ldd --version)
echo "bullseye: $ROOT (glibc ${glibc##* })"
