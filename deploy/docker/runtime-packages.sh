#!/usr/bin/env bash
# Prints the Debian packages (one a line, sorted) that own the shared libraries the given binaries load, so the
# runtime image installs exactly what the build stage linked: the Debian gRPC/protobuf/absl/... libraries and
# NVIDIA's CUDA runtime packages (cuda-cudart-*, libcublas-*) alike. The NVIDIA driver libraries (libcuda,
# libnvidia-*) are skipped: the NVIDIA container runtime mounts them from the host. Any other library that does
# not resolve, or that no package owns, is an error.
# Usage: runtime-packages.sh BINARY...
set -euo pipefail
(($# > 0)) || { echo "usage: $0 BINARY..." >&2; exit 2; }

owner() {  # owner LIB_PATH -> package name; merged /usr means a file may be registered with or without /usr.
  local real
  real=$(readlink -f "$1")
  for p in "$real" "/usr$real" "${real#/usr}" "$1"; do
    if pkg=$(dpkg-query -S "$p" 2>/dev/null); then
      echo "${pkg%%:*}"
      return 0
    fi
  done
  return 1
}

pkgs=()
status=0
for bin in "$@"; do
  [[ -x $bin ]] || { echo "runtime-packages: $bin is not an executable" >&2; exit 1; }
  libs=$(ldd "$bin") || { echo "runtime-packages: ldd $bin failed" >&2; exit 1; }
  while read -r name arrow path _; do
    [[ $arrow == "=>" ]] || continue
    if [[ $path == "not" ]]; then
      case $name in
        libcuda.so.*|libnvidia-*) continue ;;
        *) echo "runtime-packages: $bin needs $name, which does not resolve" >&2; status=1; continue ;;
      esac
    fi
    if pkg=$(owner "$path"); then
      pkgs+=("$pkg")
    else
      echo "runtime-packages: no package owns $path (needed by $bin)" >&2
      status=1
    fi
  done <<<"$libs"
done
((status == 0)) || exit 1
printf '%s\n' "${pkgs[@]}" | sort -u
