#!/usr/bin/env bash
# Install the cross toolchain the prebuilt addons are built with: zig (from
# PyPI's ziglang wheel, in a venv) and cargo-zigbuild (cargo install), both
# pinned, in a cache on the machine. Idempotent; fast when already there.
#
#   scripts/toolchain/zig.sh            installs if needed, prints `export PATH=...`
#   eval "$(scripts/toolchain/zig.sh)"  the same, and puts zig and cargo-zigbuild on PATH
#   . scripts/toolchain/zig.sh          (sourced) installs if needed and exports PATH
#
# Chatter goes to stderr; stdout carries only the export line.
# DYNPROBE_TOOLCHAIN (default /var/lib/dynprobe/toolchain) moves the cache.
__dynprobe_zig_install() (
set -euo pipefail
ZIGLANG_VERSION=0.17.1
CARGO_ZIGBUILD_VERSION=0.24.0
CACHE=${DYNPROBE_TOOLCHAIN:-/var/lib/dynprobe/toolchain}
say() { echo "toolchain/zig: $*" >&2; }
die() { say "$*"; exit 1; }
case $CACHE in /?*) ;; *) die "DYNPROBE_TOOLCHAIN must be an absolute path, not /" ;; esac
mkdir -p "$CACHE" || die "cannot create $CACHE (run as root, or set DYNPROBE_TOOLCHAIN)"
LOG=$CACHE/install.log
# Concurrent runs (parallel builds) wait for each other instead of racing.
exec 9>"$CACHE/.lock"; flock 9
quiet() { "$@" >>"$LOG" 2>&1 </dev/null || { tail -n 25 "$LOG" >&2; die "failed: $*  (log: $LOG)"; }; }

# zig: a venv holding the pinned ziglang wheel; the marker names the version.
venv=$CACHE/ziglang-$ZIGLANG_VERSION
if [ "$(cat "$venv/.dynprobe-ready" 2>/dev/null)" != "$ZIGLANG_VERSION" ]; then
  command -v python3 >/dev/null || die "python3 is missing: it is needed to install zig (pip install ziglang)"
  say "installing ziglang $ZIGLANG_VERSION into $venv"
  rm -rf "$venv"
  quiet python3 -m venv "$venv"
  quiet "$venv/bin/pip" install --no-input -q "ziglang==$ZIGLANG_VERSION"
  # cargo-zigbuild looks for `zig` on PATH (or runs `python3 -m ziglang`): give it a real one.
  mkdir -p "$venv/zigbin"
  zigexe=$(find "$venv/lib" -path '*/ziglang/zig' -type f | head -n 1)
  [ -x "$zigexe" ] || die "the ziglang wheel holds no zig executable (in $venv)"
  ln -sf "$zigexe" "$venv/zigbin/zig"
  "$venv/zigbin/zig" version >/dev/null || die "zig from ziglang $ZIGLANG_VERSION does not run"
  echo "$ZIGLANG_VERSION" >"$venv/.dynprobe-ready"
fi

# cargo-zigbuild: its own CARGO_INSTALL_ROOT per version.
czb=$CACHE/cargo-zigbuild-$CARGO_ZIGBUILD_VERSION
if [ "$(cat "$czb/.dynprobe-ready" 2>/dev/null)" != "$CARGO_ZIGBUILD_VERSION" ]; then
  command -v cargo >/dev/null || die "cargo is missing: it is needed to install cargo-zigbuild and to build the addon"
  say "installing cargo-zigbuild $CARGO_ZIGBUILD_VERSION into $czb (about 1.5 min)"
  rm -rf "$czb"
  quiet env CARGO_INSTALL_ROOT="$czb" cargo install --locked --quiet cargo-zigbuild --version "=$CARGO_ZIGBUILD_VERSION"
  "$czb/bin/cargo-zigbuild" --version >/dev/null || die "cargo-zigbuild $CARGO_ZIGBUILD_VERSION does not run"
  echo "$CARGO_ZIGBUILD_VERSION" >"$czb/.dynprobe-ready"
fi

say "zig $("$venv/zigbin/zig" version) at $venv/zigbin/zig; $("$czb/bin/cargo-zigbuild" --version) at $czb/bin/cargo-zigbuild"
echo "export PATH=\"$venv/zigbin:$czb/bin:\$PATH\""
)
if __dynprobe_zig_export=$(__dynprobe_zig_install); then
  if (return 0 2>/dev/null); then
    eval "$__dynprobe_zig_export"   # sourced: export PATH in the caller
  else
    echo "$__dynprobe_zig_export"
  fi
  unset -f __dynprobe_zig_install; unset __dynprobe_zig_export
else
  __dynprobe_zig_rc=$?; unset -f __dynprobe_zig_install
  return $__dynprobe_zig_rc 2>/dev/null || exit $__dynprobe_zig_rc
fi
