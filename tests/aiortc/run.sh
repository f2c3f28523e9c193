#!/usr/bin/env bash
# aiortc (an independent WebRTC stack) streams from moongate's embedded Wolf-strict host, inside a
# network namespace of its own (loopback only: nothing leaves this machine).
#
# aiortc's ICE gathers no candidate on 127.0.0.1 (aioice leaves that address out), so on a machine
# whose only address is 127.0.0.1 it cannot pair with anything. The namespace therefore gives its
# loopback a second address, 127.0.0.2, as a local browser's machine would have a LAN address; the
# first part shows the failure without it, the second the stream with it.
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD

if [ "${1:-}" != "--inside" ]; then
  exec unshare -rn bash "$0" --inside
fi

data=$(mktemp -d)
trap 'kill "${gw:-}" 2>/dev/null || true; rm -rf "$data"' EXIT
ip link set lo up
start_gateway() {
  MOONGATE_BIND=127.0.0.1:18098 MOONGATE_DATA_DIR="$data/$1" MOONGATE_CREDENTIALS=aiortc-test \
    MOONGATE_STREAMER="$root/target/debug/streamer" "$root/target/debug/moongate" >"$data/$1.log" 2>&1 &
  gw=$!
  for _ in $(seq 1 100); do
    if /usr/bin/python3 -c 'import urllib.request; urllib.request.urlopen("http://127.0.0.1:18098/healthz", timeout=1)' 2>/dev/null; then
      return 0
    fi
    sleep 0.2
  done
  echo "moongate did not start:"; cat "$data/$1.log"; exit 1
}
stop_gateway() { kill "$gw"; wait "$gw" || true; }

echo "-- only 127.0.0.1 in the namespace: aiortc has no candidate of its own (expected to fail)"
start_gateway a
if FIRST_FRAME_TIMEOUT_S=8 timeout 60 /usr/bin/python3 tests/aiortc/whep_receiver.py http://127.0.0.1:18098 aiortc-test; then
  echo "aiortc streamed without a non-127.0.0.1 address: the documented limitation no longer holds"; exit 1
fi
stop_gateway

echo "-- 127.0.0.2 on loopback: aiortc pairs with moongate's 127.0.0.1 candidate"
ip addr add 127.0.0.2/8 dev lo
start_gateway b
timeout 90 /usr/bin/python3 tests/aiortc/whep_receiver.py http://127.0.0.1:18098 aiortc-test
stop_gateway
if grep -q "ENet disconnect after /cancel" "$data/b.log"; then
  echo "the strict host saw /cancel before the ENet disconnect"; exit 1
fi
echo "aiortc: ok"
