# Sourced by the provisioning scripts. in_root CMD...: runs a command
# chrooted in $ROOT with /proc /sys /dev bound, inside a private mount
# namespace, so the binds vanish with it even if the script is killed.
in_root() {
  unshare -m --propagation private bash -c 'set -e; r=$1; shift
    for d in proc sys dev; do mount --rbind "/$d" "$r/$d"; done
    exec chroot "$r" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin \
      HOME=/root LC_ALL=C DEBIAN_FRONTEND=noninteractive "$@"' _ "$ROOT" "$@"
}
