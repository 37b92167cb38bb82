#!/bin/sh
# The SDK's tests: native unit tests (cargo test), then the browser tests
# (wasm-bindgen-test in headless Chromium) against the fake ingest server of
# js/test/server.mjs, started here on a free loopback port and stopped at the end.
# Needs: wasm-pack, wasm-bindgen-cli (the Cargo.lock version) on PATH, chromium and
# chromedriver (CHROMEDRIVER overrides /usr/bin/chromedriver), node.
set -eu
cd "$(dirname "$0")"
ROOT=$(cd .. && pwd)
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
CHROMEDRIVER="${CHROMEDRIVER:-$(command -v chromedriver || echo /usr/bin/chromedriver)}"

cargo test -p sdk-wasm --quiet --release

LOG=$(mktemp)
node "$ROOT/js/test/server.mjs" 0 >"$LOG" 2>&1 &
SERVER_PID=$!
trap 'kill "$SERVER_PID" 2>/dev/null || true; rm -f "$LOG"' EXIT INT TERM
i=0
until grep -q '^listening ' "$LOG"; do
  i=$((i + 1))
  if [ "$i" -gt 100 ]; then echo "test server did not start:" >&2; cat "$LOG" >&2; exit 1; fi
  sleep 0.1
done
TRACKING_TEST_SERVER=$(sed -n 's/^listening //p' "$LOG")
export TRACKING_TEST_SERVER
echo "fake ingest server: $TRACKING_TEST_SERVER"

# The tests link std (wasm-bindgen-test does), so they build the crate with its default
# `std` feature: the same tracker code, std's allocator and panic handler instead of
# src/wasm_rt.rs. The `no_std` build itself is what js/test.sh exercises end to end.
wasm-pack --log-level warn test --headless --chrome --chromedriver "$CHROMEDRIVER" --mode no-install . "$@"
