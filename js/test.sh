#!/bin/sh
# The @org/tracking package tests: builds js/dist (build.sh: the no_std wasm build,
# wasm-opt, esbuild), then runs node's test runner over test/*.test.mjs (headless
# Chromium through playwright-core; CHROMIUM overrides /usr/bin/chromium).
set -eu
cd "$(dirname "$0")"
[ -d node_modules ] || npm ci --no-audit --no-fund
./build.sh >/dev/null
node --test --test-concurrency=1 test/*.test.mjs
