#!/usr/bin/env bash
# Installs the npm tools of the deploy tests (kubernetes-models, @kubernetes-models/prometheus-operator,
# dockerfilelint, js-yaml, @huggingface/gguf; versions pinned in package.json and package-lock.json) into
# tests/deploy/node_modules, which git ignores. Idempotent: does nothing when node_modules was installed from the current lock file. Also
# checks that the other tools the deploy tests use are present (scripts/install-deps.sh installs them).
set -euo pipefail
cd "$(dirname "$0")"

missing=()
for tool in node npm kubectl promtool prometheus protoc; do
  command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
done
/usr/bin/python3 -c 'import grpc, yaml' 2>/dev/null || missing+=("python3-grpcio/python3-yaml")
if ((${#missing[@]})); then
  echo "setup-tools: missing ${missing[*]}: run scripts/install-deps.sh" >&2
  exit 1
fi

want=$(sha256sum package-lock.json | cut -d' ' -f1)
stamp=node_modules/.installed-from-lock
# CTest may start this more than once at a time in different build trees: one install at a time.
exec 9<package-lock.json
flock 9
if [[ -f $stamp && $(cat "$stamp") == "$want" ]]; then
  exit 0
fi
echo "setup-tools: npm ci (tests/deploy/package-lock.json)"
npm ci --no-audit --no-fund --loglevel=error
echo "$want" >"$stamp"
