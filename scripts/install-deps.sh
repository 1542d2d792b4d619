#!/usr/bin/env bash
# Installs the Debian packages the build, the tests and the tools need. Idempotent: packages already present are
# not fetched again, and apt is only consulted when something is missing.
set -euo pipefail

PKGS=(
  build-essential cmake pkg-config git ca-certificates curl time
  libgrpc++-dev libgrpc-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler grpc-proto
  libabsl-dev libsentencepiece-dev prometheus-cpp-dev nlohmann-json3-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  python3 python3-numpy python3-sentencepiece python3-grpcio python3-yaml
  prometheus nodejs npm kubernetes-client
  chromium libpng-dev  # the load generator's plot test: headless Chromium screenshot, decoded with libpng
  # make fuzz / test-asan / test-tsan: clang, its sanitizer and libFuzzer runtimes (libclang_rt.*), and
  # llvm-symbolizer for the reports' stack traces.
  clang libclang-rt-14-dev llvm
)

missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# npm may come from a non-Debian Node install; accept any working npm.
if [[ " ${missing[*]} " == *" npm "* ]] && command -v npm >/dev/null 2>&1; then
  missing=("${missing[@]/npm}")
fi
if [[ " ${missing[*]} " == *" nodejs "* ]] && command -v node >/dev/null 2>&1; then
  missing=("${missing[@]/nodejs}")
fi
# kubectl (for `kubectl kustomize` in the deploy tests) may come from another package (e.g. Google Cloud SDK's).
if [[ " ${missing[*]} " == *" kubernetes-client "* ]] && command -v kubectl >/dev/null 2>&1; then
  missing=("${missing[@]/kubernetes-client}")
fi
read -r -a missing <<<"${missing[*]:-}"
if ((${#missing[@]} == 0)); then
  echo "install-deps: all packages present"
  exit 0
fi
SUDO=""
if [[ $(id -u) -ne 0 ]]; then SUDO="sudo"; fi
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq || { echo "install-deps: apt-get update failed" >&2; exit 1; }
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" ||
  { echo "install-deps: apt-get install failed for: ${missing[*]}" >&2; exit 1; }
