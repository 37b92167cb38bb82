#!/bin/sh
# Prints the cargo feature flags for the browser build of sdk-wasm.
#
# The small build is `no_std` (`--no-default-features`): its own allocator and a panic
# handler that traps without formatting (src/wasm_rt.rs). It needs event-model's
# dependency-free `rules` to build without std too, i.e. event-model/src/lib.rs with
#   #![cfg_attr(not(feature = "model"), no_std)]  and  extern crate alloc;
# Until then the build uses std (bigger: dlmalloc and std's panic formatting).
ROOT=$(cd "$(dirname "$0")/.." && pwd)
if grep -q 'no_std' "$ROOT/event-model/src/lib.rs" 2>/dev/null; then
  echo "--no-default-features"
fi
