#!/usr/bin/env bash
# Install the host's Debian packages that set-up needs (scripts/lib/host-packages.list),
# in one apt run, and mount tracefs and debugfs (the tracers need them).
#   scripts/provision-host.sh [WHO...]   only the packages WHO needs (e.g. lint)
# Idempotent: a provisioned machine takes a fraction of a second. As root.
set -euo pipefail
# shellcheck source=lib/common.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
need_root "it installs Debian packages"
apt_need_for "${@:-all}"
if [ $# -eq 0 ]; then
  mountpoint -q /sys/kernel/tracing || mount -t tracefs tracefs /sys/kernel/tracing
  mountpoint -q /sys/kernel/debug || mount -t debugfs debugfs /sys/kernel/debug
fi
