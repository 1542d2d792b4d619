#!/usr/bin/env bash
# Prints the Debian packages (one a line, sorted) that own the shared libraries the given binaries load, so the
# runtime image installs exactly what the build stage linked: the Debian gRPC/protobuf/absl/... libraries and
# NVIDIA's CUDA runtime packages (cuda-cudart-*, libcublas-*) alike. The NVIDIA driver libraries (libcuda,
# libnvidia-*) are skipped: the NVIDIA container runtime mounts them from the host. Any other library that does
# not resolve, or that no package owns, is an error.
# Usage: runtime-packages.sh [--allow-unowned PREFIX] BINARY_OR_SHARED_OBJECT...
#   --allow-unowned PREFIX: libraries under PREFIX that no package owns are reported on stderr, not an error (for
#   checking a build tree whose CUDA toolkit was installed outside dpkg; the image build never passes it).
set -euo pipefail
allow_unowned=""
if [[ ${1:-} == --allow-unowned ]]; then
  allow_unowned=$2
  shift 2
fi
(($# > 0)) || { echo "usage: $0 [--allow-unowned PREFIX] BINARY..." >&2; exit 2; }

declare -A libs=()  # resolved library path -> the binary that needs it
status=0
for bin in "$@"; do
  [[ -f $bin ]] || { echo "runtime-packages: $bin does not exist" >&2; exit 1; }
  out=$(ldd "$bin") || { echo "runtime-packages: ldd $bin failed" >&2; exit 1; }
  while read -r name arrow path _; do
    [[ $arrow == "=>" ]] || continue
    if [[ $path == "not" ]]; then
      case $name in
        libcuda.so.*|libnvidia-*) ;;
        *) echo "runtime-packages: $bin needs $name, which does not resolve" >&2; status=1 ;;
      esac
      continue
    fi
    libs[$path]=$bin
  done <<<"$out"
done
((status == 0)) || exit 1

# dpkg registers a file under the path its package ships, with or without /usr (merged /usr), possibly behind
# symlinks: ask for every spelling in one dpkg-query call (it is slow per call) and map the answers back.
candidates=()
for lib in "${!libs[@]}"; do
  real=$(readlink -f "$lib")
  candidates+=("$lib" "$real" "/usr$real" "${real#/usr}")
done
declare -A owner=()
while IFS= read -r line; do
  owner[${line#*: }]=${line%%: *}
done < <(dpkg-query -S "${candidates[@]}" 2>/dev/null || true)

pkgs=()
for lib in "${!libs[@]}"; do
  real=$(readlink -f "$lib")
  found=""
  for p in "$lib" "$real" "/usr$real" "${real#/usr}"; do
    if [[ -n ${owner[$p]:-} ]]; then
      found=${owner[$p]}
      break
    fi
  done
  if [[ -z $found && -n $allow_unowned && $(readlink -f "$lib") == "$(readlink -f "$allow_unowned")"/* ]]; then
    echo "runtime-packages: $lib is not owned by a package (allowed under $allow_unowned)" >&2
    continue
  fi
  if [[ -z $found ]]; then
    echo "runtime-packages: no package owns $lib (needed by ${libs[$lib]})" >&2
    status=1
    continue
  fi
  IFS=', ' read -r -a names <<<"$found"
  pkgs+=("${names[@]%%:*}")
done
((status == 0)) || exit 1
printf '%s\n' "${pkgs[@]}" | sort -u
