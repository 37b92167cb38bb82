# The two commands: `make run` and `make test`. `make bench` prints the benchmarks.
SHELL := /bin/bash
CARGO ?= cargo

.PHONY: run test bench deps deps-run deps-bench sdk build test-style test-rust test-layout test-wasm-build test-sdk test-js test-e2e

deps:
	@scripts/install-deps.sh test

deps-run:
	@scripts/install-deps.sh run

deps-bench:
	@scripts/install-deps.sh bench

# The browser SDK and the npm package, into js/dist (served by the demo page).
sdk:
	sh js/build.sh

build: deps-run sdk
	$(CARGO) build --release -p tracking-server

# The server on its embedded default (127.0.0.1:8080, ./data/), with the demo page at /
# (off in the binary's default: it shows recent events, to loopback clients only).
run: build
	TRACKING_DEMO=1 ./target/release/tracking-server

test: deps sdk test-style test-rust test-layout test-wasm-build test-sdk test-js test-e2e

# Formatting and lints, the SDK's wasm build included.
test-style:
	$(CARGO) fmt --all --check
	$(CARGO) clippy --workspace --all-targets --features tracking-server/fault-injection -- -D warnings
	$(CARGO) clippy -p sdk-wasm -p event-model --target wasm32-unknown-unknown -- -D warnings

# `fault-injection` builds the server's test-only fault hooks (a sink that panics).
test-rust:
	$(CARGO) test --workspace --features tracking-server/fault-injection

# A Rust service that only emits events pulls in none of the server's machinery.
test-layout:
	@if $(CARGO) tree -p server-emit-example -e normal --prefix none | grep -E '^(async-nats|prometheus|mimalloc|governor|tracking-wal|tracking-server) '; then \
		echo "examples/server-emit depends on the server's machinery (above)"; exit 1; fi

# The browser uses event-model too: it must build for wasm32 with and without its model.
test-wasm-build:
	$(CARGO) build -p event-model --target wasm32-unknown-unknown
	$(CARGO) build -p event-model --target wasm32-unknown-unknown --no-default-features

# wasm-bindgen-test in headless Chromium.
test-sdk:
	sh sdk-wasm/test.sh

# The npm package and the browser end-to-end tests.
test-js:
	cd js && npm test

# Headless Chromium against a real ingest server, with the examples as users use them.
test-e2e:
	$(CARGO) build -p tracking-server
	cd examples/mfe && npm run build
	cd tests && npm test

bench: deps-bench sdk
	$(CARGO) bench -p event-model --bench emit
	$(CARGO) bench -p tracking-server --bench ingest
	$(CARGO) bench -p tracking-server --bench jetstream
	$(CARGO) bench -p tracking-server --bench dedupe
	cd js && npm run bench
