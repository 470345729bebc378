#!/usr/bin/env bash
# Installs what the aarch64 build and its emulated tests need (make edge-tools):
#   1. Debian's cross compiler g++-aarch64-linux-gnu (apt-get, as root or with sudo),
#      unless aarch64-linux-gnu-g++ is already on PATH;
#   2. qemu-aarch64 from Debian trixie's qemu-user package (a static binary),
#      unpacked into $EDGE_DIR/qemu without root and with private apt state: the
#      qemu must be 8.1 or newer, which emulates /proc/cpuinfo for aarch64
#      (with bookworm's 7.2 the guest sees the host's, and onnxruntime's CPU
#      detection crashes at start-up). A qemu-aarch64 of 8.1+ on PATH is used instead.
#   3. libonnxruntime.so from PyPI's manylinux aarch64 onnxruntime wheel
#      ($ORT_AARCH64, pip download), unpacked into $EDGE_DIR/ort.
# Prints nothing on success when all three are already there.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
EDGE_DIR=$(realpath -m "${EDGE_DIR:-$ROOT/build/edge}")
ORT_AARCH64=${ORT_AARCH64:-1.32.0}
PYTHON=${PYTHON:-python3}
mkdir -p "$EDGE_DIR"

# 1. The cross compiler.
if ! command -v aarch64-linux-gnu-g++ >/dev/null; then
  sudo=()
  if [[ $(id -u) != 0 ]]; then
    if command -v sudo >/dev/null && sudo -n true 2>/dev/null; then sudo=(sudo -n); else
      echo "edge_tools: needs g++-aarch64-linux-gnu: run 'apt-get install g++-aarch64-linux-gnu' as root" >&2; exit 2
    fi
  fi
  echo "edge_tools: apt-get install g++-aarch64-linux-gnu binutils-aarch64-linux-gnu"
  "${sudo[@]}" apt-get update -q >/dev/null
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -q --no-install-recommends \
    g++-aarch64-linux-gnu binutils-aarch64-linux-gnu >/dev/null
fi

# 2. qemu-aarch64 (8.1 or newer).
qemu_ok() {  # qemu_ok BINARY: version 8.1+?
  local v
  v=$("$1" --version 2>/dev/null | sed -n 's/.*version \([0-9]*\)\.\([0-9]*\).*/\1 \2/p' | head -1)
  [[ -n "$v" ]] && { read -r major minor <<<"$v"; (( major > 8 || (major == 8 && minor >= 1) )); }
}
QEMU=$EDGE_DIR/qemu/usr/bin/qemu-aarch64
if ! [[ -x "$QEMU" ]] && ! { command -v qemu-aarch64 >/dev/null && qemu_ok "$(command -v qemu-aarch64)"; }; then
  apt=$EDGE_DIR/apt
  mkdir -p "$apt/lists/partial" "$apt/cache/archives/partial" "$apt/etc" "$apt/debs"
  mirror=$(apt-get indextargets --format '$(URI)' 2>/dev/null | sed -n 's#^\(https\?://.*\)/dists/.*#\1#p' | head -1)
  echo "deb ${mirror:-http://deb.debian.org/debian} trixie main" > "$apt/etc/sources.list"
  : > "$apt/status"
  opts=(-o "Dir::Etc::sourcelist=$apt/etc/sources.list" -o "Dir::Etc::sourceparts=-" -o "Dir::State::Lists=$apt/lists"
        -o "Dir::Cache=$apt/cache" -o "Dir::State::status=$apt/status" -o "APT::Sandbox::User=$(id -un)"
        -o "Debug::NoLocking=1")
  echo "edge_tools: fetching qemu-user from Debian trixie into $EDGE_DIR/qemu"
  apt-get -q "${opts[@]}" update >/dev/null
  rm -f "$apt"/debs/qemu-user_*.deb
  (cd "$apt/debs" && apt-get -q "${opts[@]}" download qemu-user >/dev/null)
  mkdir -p "$EDGE_DIR/qemu"
  dpkg-deb --fsys-tarfile "$apt"/debs/qemu-user_*.deb | tar -x -C "$EDGE_DIR/qemu" ./usr/bin/qemu-aarch64
  rm -rf "$apt"
  qemu_ok "$QEMU" || { echo "edge_tools: $QEMU is not 8.1 or newer" >&2; exit 2; }
fi

# 3. The aarch64 onnxruntime library.
if ! [[ -f "$EDGE_DIR/ort/libonnxruntime.so.$ORT_AARCH64" ]]; then
  echo "edge_tools: pip download onnxruntime==$ORT_AARCH64 (manylinux aarch64) into $EDGE_DIR/ort"
  rm -rf "$EDGE_DIR/ort" && mkdir -p "$EDGE_DIR/ort/wheel"
  "$PYTHON" -m pip download -q --no-deps --only-binary=:all: --python-version 3.11 \
    --platform manylinux_2_28_aarch64 --platform manylinux_2_27_aarch64 --platform manylinux2014_aarch64 \
    -d "$EDGE_DIR/ort/wheel" "onnxruntime==$ORT_AARCH64"
  "$PYTHON" - "$EDGE_DIR/ort" "$ORT_AARCH64" <<'PY'
import sys, zipfile, glob, os
dest, version = sys.argv[1], sys.argv[2]
(wheel,) = glob.glob(os.path.join(dest, "wheel", "*.whl"))
with zipfile.ZipFile(wheel) as z:
    name = f"onnxruntime/capi/libonnxruntime.so.{version}"
    with z.open(name) as src, open(os.path.join(dest, os.path.basename(name)), "wb") as dst:
        dst.write(src.read())
PY
  rm -rf "$EDGE_DIR/ort/wheel"
fi
