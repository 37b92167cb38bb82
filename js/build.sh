#!/bin/sh
# Builds the npm package @org/tracking into js/dist from the sdk-wasm crate:
#   wasm-pack (release, no wasm-opt) -> js/pkg, wasm-opt -Oz -> dist/tracking_bg.wasm,
#   esbuild -> dist/index.js (ESM entry), dist/tracking.legacy.js (one <script> tag).
# Needs: cargo with the wasm32-unknown-unknown target, wasm-pack, wasm-bindgen (the
# version in Cargo.lock, on PATH: wasm-pack runs with --mode no-install and never
# downloads), node + `npm ci` in js/ (esbuild, and binaryen's wasm-opt: a current
# release, unlike Debian's 108, which mis-writes wasm-bindgen's externref table export).
set -eu
cd "$(dirname "$0")"
JS=$(pwd)
ROOT=$(cd .. && pwd)
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
# A size-first release profile for the browser build only (the server's release
# profile in Cargo.toml is left alone; these only apply to this invocation).
export CARGO_PROFILE_RELEASE_OPT_LEVEL=z
export CARGO_PROFILE_RELEASE_LTO=true
export CARGO_PROFILE_RELEASE_CODEGEN_UNITS=1
export CARGO_PROFILE_RELEASE_PANIC=abort
export CARGO_PROFILE_RELEASE_DEBUG=false

rm -rf "$JS/pkg"
# `no_std` (its own allocator and a panic handler that traps: sdk-wasm/src/wasm_rt.rs).
wasm-pack --log-level warn build "$ROOT/sdk-wasm" --target web --release --mode no-install --no-pack \
  --out-dir "$JS/pkg" --out-name tracking -- --no-default-features

mkdir -p "$JS/dist"
WASM="$JS/dist/tracking_bg.wasm"
cp "$JS/pkg/tracking_bg.wasm" "$WASM"
# panic_immediate_abort for stable Rust: core's panic-message formatting traps at once
# (the panic handler discards messages anyway); see wasm-fix.mjs. Needs the name section,
# which wasm-opt keeps (-g) for the check that nothing formats any more.
node "$JS/wasm-fix.mjs" stub-panics "$WASM"
"$JS/node_modules/.bin/wasm-opt" -Oz --converge --zero-filled-memory -g "$WASM" -o "$WASM"
node "$JS/wasm-fix.mjs" check-formatting "$WASM"
node "$JS/wasm-fix.mjs" strip-custom "$WASM"
# Short import names in the module and the glue that esbuild bundles next.
node "$JS/wasm-fix.mjs" minify-imports "$WASM" "$JS/pkg/tracking.js"

ESBUILD="$JS/node_modules/.bin/esbuild"
COMMON="--bundle --minify --log-level=warning --log-override:empty-import-meta=silent --log-override:duplicate-object-key=silent"
# shellcheck disable=SC2086
"$ESBUILD" "$JS/src/index.js" $COMMON --format=esm --target=es2020 --outfile="$JS/dist/index.js"
# shellcheck disable=SC2086
"$ESBUILD" "$JS/src/legacy.js" $COMMON --format=iife --target=es2019 --outfile="$JS/dist/tracking.legacy.js"
# The frontend-platform service imports the entry above (one SDK instance per page).
# shellcheck disable=SC2086
"$ESBUILD" "$JS/src/frontend-platform.js" $COMMON --format=esm --target=es2020 --external:./index.js --outfile="$JS/dist/frontend-platform.js"
cp "$JS/src/index.d.ts" "$JS/dist/index.d.ts"
cp "$JS/src/frontend-platform.d.ts" "$JS/dist/frontend-platform.d.ts"
echo "built $JS/dist:"
ls -l "$JS/dist"
