#!/usr/bin/env bash
# Android core checks against the real Python side, from the repository root:
#  - parity vectors written by `edge parity-vectors`: the int8 and the fp16 (GPU) model, caffe-mean
#    3-channel specs, large and small images, and DICOM files decoded by pydicom;
#  - the device-report round trip: the Kotlin core runs validation mode over a labelled folder
#    (with a TIFF the phone must record as a failure) and `edge validate --device-report` accepts
#    the report; the same report with one image removed is refused with a clear message;
#  - the Kotlin server client against a real `edge serve` on loopback.
# android_demo/ci/check.sh installs its own tools (apt, npm) when they are missing.
set -euo pipefail
cd "$(dirname "$0")/.."

edge() { python -m edge "$@"; } # the working tree's code, whatever `edge` script is installed

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

# A labelled folder: two samples per class, plus one of them as TIFF (Python reads it, the phone
# records "send to server").
mkdir -p "$work/data/fractured" "$work/data/not_fractured"
for cls in fractured not_fractured; do
  ls edge/assets/samples/$cls/*.jpg | head -n 2 | xargs -I{} cp {} "$work/data/$cls/"
done
first_nf="$(ls "$work/data/not_fractured"/*.jpg | head -n 1)"
python -c "import sys; from PIL import Image; Image.open(sys.argv[1]).save(sys.argv[2])" "$first_nf" "$work/data/not_fractured/as_tiff.tif"
# The shipped assets themselves (not a fresh conversion), so the Kotlin tests check what the app loads.
assets=android_demo/app/src/main/assets
edge parity-vectors --out "$work/vectors" --model "$assets/fracture_int8.tflite" --also-model "$assets/fracture_fp16.tflite" $(for f in "$work"/data/*/*.jpg; do printf -- '--image %s ' "$f"; done)

port="$(python -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
token="ci-$(python -c 'import secrets; print(secrets.token_hex(8))')"
EDGE_API_TOKEN="$token" python -m edge serve --host 127.0.0.1 --port "$port" > "$work/server.log" 2>&1 &
server_pid=$!
ready() { python -c "import urllib.request,sys; urllib.request.urlopen(sys.argv[1], timeout=2)" "http://127.0.0.1:$port/readyz" 2>/dev/null; }
for _ in $(seq 1 120); do
  ready && break
  kill -0 "$server_pid" 2>/dev/null || { cat "$work/server.log"; echo "edge serve exited"; exit 1; }
  sleep 1
done
ready || { cat "$work/server.log"; echo "edge serve not ready"; exit 1; }

sample="$(ls edge/assets/samples/fractured/*.jpg | head -n 1)"
EDGE_VECTORS_DIR="$work/vectors" EDGE_ROUNDTRIP_DATA="$work/data" EDGE_DEVICE_REPORT_OUT="$work/device-report.json" \
  EDGE_SERVER_URL="http://127.0.0.1:$port" EDGE_SERVER_TOKEN="$token" EDGE_SAMPLE_IMAGE="$sample" \
  bash android_demo/ci/check.sh

echo
echo "=== device report round trip: edge validate --device-report ==="
[ -s "$work/device-report.json" ] || { echo "the Kotlin round-trip test wrote no device report"; exit 1; }
set +e
edge validate --device-report "$work/device-report.json" --data "$work/data" --runs 3 --warmup 1 --report "$work/val" > "$work/validate.log" 2>&1
rc=$?
set -e
cat "$work/validate.log"
# 0 = gates passed, 1 = a gate failed (a verdict on 4 images); 2 = the report was not accepted.
[ "$rc" -le 1 ] || { echo "edge validate did not accept the Kotlin device report (exit $rc)"; exit 1; }
python - "$work/val/report.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
skipped = [s["path"] for s in r["data"]["skipped"] if s["problem"].startswith("on the phone")]
assert r["data"]["n"] == 4 and skipped == ["not_fractured/as_tiff.tif"], (r["data"]["n"], r["data"]["skipped"])
assert r["latency_ms"]["source"] == "device" and r["device"]["accelerator"] == "cpu", r["device"]
print(f"accepted: {r['data']['n']} images compared, phone failures {skipped}, agreement {r['agreement']:.2f}")
PY

python - "$work/device-report.json" "$work/short.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
r["images"] = r["images"][1:]
json.dump(r, open(sys.argv[2], "w"))
PY
set +e
edge validate --device-report "$work/short.json" --data "$work/data" --runs 3 --warmup 1 > "$work/short.log" 2>&1
rc=$?
set -e
cat "$work/short.log"
if [ "$rc" -ne 2 ] || ! grep -q "not in the device report" "$work/short.log" || grep -q Traceback "$work/short.log"; then
  echo "a mismatching device report did not give the one-line message (exit $rc)"; exit 1
fi
echo "device report round trip: ok"
