#!/usr/bin/env bash
# Android core checks against the real Python side: parity vectors written by `edge
# parity-vectors`, and the Kotlin server client against a real `edge serve` on loopback.
set -euo pipefail
cd "$(dirname "$0")/.."

work="$(mktemp -d)"
server_pid=""
cleanup() {
  local status=$?
  if [ -n "$server_pid" ]; then
    kill "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true  # a SIGTERM exit (143) is the expected end of the server
  fi
  rm -rf "$work"
  exit "$status"
}
trap cleanup EXIT

edge parity-vectors --out "$work/vectors"

port="$(python -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
token="ci-$(python -c 'import secrets; print(secrets.token_hex(8))')"
EDGE_API_TOKEN="$token" edge serve --host 127.0.0.1 --port "$port" > "$work/server.log" 2>&1 &
server_pid=$!
ready() { python -c "import urllib.request,sys; urllib.request.urlopen(sys.argv[1], timeout=2)" "http://127.0.0.1:$port/readyz" 2>/dev/null; }
for _ in $(seq 1 120); do
  ready && break
  kill -0 "$server_pid" 2>/dev/null || { cat "$work/server.log"; echo "edge serve exited"; exit 1; }
  sleep 1
done
ready || { cat "$work/server.log"; echo "edge serve not ready"; exit 1; }

sample="$(ls edge/assets/samples/fractured/*.jpg | head -n 1)"
EDGE_VECTORS_DIR="$work/vectors" EDGE_SERVER_URL="http://127.0.0.1:$port" EDGE_SERVER_TOKEN="$token" \
  EDGE_SAMPLE_IMAGE="$sample" bash android_demo/ci/check.sh
