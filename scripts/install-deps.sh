#!/usr/bin/env bash
# Installs what `make run` / `make test` need and is missing, on Debian as root.
# Idempotent: each step checks before it installs. Usage: install-deps.sh [run|test]
set -euo pipefail
mode="${1:-test}"

have() { command -v "$1" >/dev/null 2>&1; }

apt_install() {
  local missing=()
  for pkg in "$@"; do
    dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  echo "install-deps: apt-get install ${missing[*]}"
  if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; else SUDO=; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
}

if ! have cargo; then
  echo "install-deps: Rust (cargo) is required; install it with rustup first" >&2
  exit 1
fi

if have rustup && ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
  echo "install-deps: rustup target add wasm32-unknown-unknown"
  rustup target add wasm32-unknown-unknown
fi

# make test checks formatting and lints.
if [ "${1:-}" = test ] && have rustup; then
  for component in rustfmt clippy; do
    if ! rustup component list --installed | grep -q "^$component"; then
      echo "install-deps: rustup component add $component"
      rustup component add "$component"
    fi
  done
fi

# Build tools for -sys crates; node builds the npm package (its binaryen is an npm package).
apt_install pkg-config
have node || apt_install nodejs
have npm || apt_install npm

case "$mode" in
  # Browser tests (wasm-bindgen-test, playwright-core) and the JetStream sink tests.
  test) apt_install chromium chromium-driver nats-server ;;
  # The SDK benchmark runs in headless Chromium; wrk drives the /event load test;
  # the JetStream benchmark runs a real nats-server.
  bench) apt_install chromium chromium-driver wrk nats-server ;;
esac

# The wasm-bindgen CLI must match the wasm-bindgen crate in Cargo.lock exactly.
bindgen_version=$(awk '/^name = "wasm-bindgen"$/ {getline; gsub(/version = |"/, ""); print; exit}' Cargo.lock)
if [ -n "$bindgen_version" ]; then
  if ! have wasm-bindgen || [ "$(wasm-bindgen --version | awk '{print $2}')" != "$bindgen_version" ]; then
    echo "install-deps: cargo install wasm-bindgen-cli $bindgen_version"
    # --locked pins wasm-bindgen-cli's own lock file, which can name a crate version the
    # registry no longer serves; fall back to a fresh resolution then.
    cargo install --locked --quiet wasm-bindgen-cli --version "$bindgen_version" \
      || cargo install --quiet wasm-bindgen-cli --version "$bindgen_version"
  fi
fi
if ! have wasm-pack; then
  echo "install-deps: cargo install wasm-pack"
  cargo install --locked --quiet wasm-pack
fi

# npm packages: the SDK package, the MFE example, the end-to-end tests.
for dir in js examples/mfe tests; do
  if [ -f "$dir/package-lock.json" ] && [ ! -d "$dir/node_modules" ]; then
    echo "install-deps: npm ci in $dir/"
    (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error)
  fi
done
