#!/usr/bin/env bash
# The Dockerfile's runtime stage installs the packages deploy/docker/runtime-packages.sh names for the built
# binaries. This runs that script on this build tree's binaries (a CPU build: the CUDA packages cuda-cudart-* and
# libcublas-* join the list in a CUDA build) and checks that it resolves every library to an installed Debian
# package, covering the libraries the server needs at run time.
# Usage: check_runtime_packages.sh BIN_DIR SOURCE_DIR
set -euo pipefail
bin_dir=$1
src=$2
fail() { echo "FAIL $*"; echo "0 passed, 1 failed"; exit 1; }
for b in llama-chat-server llama-chat; do
  [[ -x $bin_dir/$b ]] || fail "$bin_dir/$b is not built (build the $b target first)"
done
# Shared objects the build puts next to the binaries (dlopen'ed modules) must be in the image too.
modules=()
for so in "$bin_dir"/lib*.so; do
  [[ -e $so ]] || continue
  # The libsentencepiece reference module is for the differential tokenizer test only; the image never has it.
  [[ $(basename "$so") == libllama_sentencepiece.so ]] && continue
  modules+=("$so")
  grep -q "/src/build/bin/$(basename "$so")" "$src/Dockerfile" || fail "the Dockerfile does not copy $(basename "$so")"
  # The runtime-packages.sh call (continued over several lines) must name the module.
  sed -e ':a' -e '/\\$/N; s/\\\n//; ta' "$src/Dockerfile" | grep 'runtime-packages.sh ' |
    grep -q "build/bin/$(basename "$so")[ ].*> /src/runtime-packages.txt\|build/bin/$(basename "$so") > /src/runtime-packages.txt" ||
    fail "the Dockerfile does not derive runtime packages from $(basename "$so")"
done
# A CUDA toolkit unpacked outside dpkg (as on the build machines) owns no package here; the image installs NVIDIA's.
allow=()
[[ -d /usr/local/cuda ]] && allow=(--allow-unowned /usr/local/cuda)
pkgs=$(bash "$src/deploy/docker/runtime-packages.sh" "${allow[@]}" "$bin_dir/llama-chat-server" "$bin_dir/llama-chat" "${modules[@]}") ||
  fail "runtime-packages.sh could not resolve every library"
echo "runtime packages: $(echo $pkgs)"
# The binaries never need libsentencepiece (the tokenizer is our own).
! grep -Eq '^libsentencepiece' <<<"$pkgs" || fail "a binary pulls in libsentencepiece"
for want in 'libgrpc\+\+1' 'libprotobuf[0-9]' 'libabsl' 'libprometheus-cpp-pull' 'libstdc\+\+6'; do
  grep -Eq "^$want" <<<"$pkgs" || fail "no runtime package matching $want"
done
grep -q 'runtime-packages.sh build/bin/llama-chat-server build/bin/llama-chat ' "$src/Dockerfile" ||
  fail "the Dockerfile does not derive its runtime packages from both binaries"
echo "1 passed, 0 failed"
