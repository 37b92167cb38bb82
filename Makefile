# The two commands: `make run` and `make test`. `make bench` prints the benchmarks.
SHELL := /bin/bash
CARGO ?= cargo

.PHONY: run test bench deps deps-run build test-rust test-wasm-build

deps:
	@scripts/install-deps.sh test

deps-run:
	@scripts/install-deps.sh run

build: deps-run
	$(CARGO) build --release --workspace

run: build
	@echo "The ingest server lands with the server issue; the event-model crate is built and tested (make test)."

test: deps test-rust test-wasm-build

test-rust:
	$(CARGO) test --workspace

# The browser uses event-model too: it must build for wasm32 with and without its model.
test-wasm-build:
	$(CARGO) build -p event-model --target wasm32-unknown-unknown
	$(CARGO) build -p event-model --target wasm32-unknown-unknown --no-default-features

bench:
	$(CARGO) bench -p event-model --bench emit
