# The two commands: `make run` and `make test`. `make bench` prints the benchmarks.
SHELL := /bin/bash
CARGO ?= cargo

.PHONY: run test bench deps deps-run deps-bench sdk build test-rust test-wasm-build test-sdk test-js test-e2e

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

test: deps sdk test-rust test-wasm-build test-sdk test-js test-e2e

# `fault-injection` builds the server's test-only fault hooks (a sink that panics).
test-rust:
	$(CARGO) test --workspace --features tracking-server/fault-injection

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
	cd js && npm run bench
