#!/bin/sh
# Builds the probe once per variant (wasm-bindgen CLI on PATH, the Cargo.lock version of
# the SDK) and prints the module's size after wasm-opt -Oz: raw and gzip -9.
#   sh js/bench/deps/measure.sh
set -eu
cd "$(dirname "$0")"
OPT=../../node_modules/.bin/wasm-opt
for variant in baseline web-sys serde gloo; do
  features=""
  [ "$variant" = baseline ] || features="--features $variant"
  # shellcheck disable=SC2086
  cargo build --quiet --release --target wasm32-unknown-unknown $features --target-dir target
  wasm-bindgen --target web --out-dir "target/$variant" target/wasm32-unknown-unknown/release/deps_probe.wasm
  "$OPT" -Oz "target/$variant/deps_probe_bg.wasm" -o "target/$variant/opt.wasm"
  wasm=$(wc -c < "target/$variant/opt.wasm")
  wasm_gz=$(gzip -9c "target/$variant/opt.wasm" | wc -c)
  js_gz=$(gzip -9c "target/$variant/deps_probe.js" | wc -c)
  echo "$variant: wasm $wasm B raw, $wasm_gz B gzip; JS glue $js_gz B gzip; total gzip $((wasm_gz + js_gz)) B"
done
