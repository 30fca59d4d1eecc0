# SPDX-License-Identifier: Apache-2.0
# The two set-up commands (make run, make test) and a few conveniences around Meson.

BUILD ?= build
ASAN_BUILD ?= build-asan
FUZZ_BUILD ?= build-fuzz
CONFIG ?= examples/quickstart.yaml

.PHONY: all deps build install run test test-fast bench bench-quick bench-echo bench-hop bench-fairness bench-call bench-boutique boutique clean

all: build

deps:
	@scripts/install-deps

$(BUILD)/build.ninja:
	meson setup $(BUILD) --buildtype=debugoptimized

$(ASAN_BUILD)/build.ninja:
	meson setup $(ASAN_BUILD) --buildtype=debug -Db_sanitize=address,undefined -Db_lundef=false

$(FUZZ_BUILD)/build.ninja:
	CC=clang meson setup $(FUZZ_BUILD) --buildtype=debug -Dfuzz=true -Db_lundef=false

build: deps $(BUILD)/build.ninja
	ninja -C $(BUILD)

# Meson install of what `make build` built (docs/deploy.md lists what goes where):
# `make install`, `make install PREFIX=/usr DESTDIR=/tmp/stage` (PREFIX reconfigures
# $(BUILD); DESTDIR stages the files under another root).
install: $(BUILD)/build.ninja
ifneq ($(PREFIX),)
	meson configure $(BUILD) -Dprefix=$(PREFIX)
endif
	meson install -C $(BUILD) $(if $(DESTDIR),--destdir $(abspath $(DESTDIR)))

run: build
	./$(BUILD)/palladium up $(CONFIG)

# The format check (.clang-format; scripts/check-format --fix rewrites), every suite in
# the normal build, unit + integration under ASan+UBSan, and a short
# libFuzzer run of each fuzz target (clang).
test: build $(ASAN_BUILD)/build.ninja $(FUZZ_BUILD)/build.ninja
	scripts/check-format
	ninja -C $(ASAN_BUILD)
	ninja -C $(FUZZ_BUILD) tests/fuzz/fuzz_engine tests/fuzz/fuzz_meta tests/fuzz/fuzz_runtime \
		tests/fuzz/fuzz_ingress tests/fuzz/fuzz_http1_head
	scripts/run-tests $(BUILD) $(ASAN_BUILD) $(FUZZ_BUILD)

test-fast: build
	scripts/run-tests $(BUILD)

# Palladium against HTTP + kernel TCP + sidecars (nginx, Knative-style), side by side:
# the whole matrix (<= 15 min), or the headline case only (<= 3 min). See docs/benchmarks.md.
bench: build
	bench/knative/run

bench-quick: build
	bench/knative/run --quick

bench-echo: build
	bench/echo/run

bench-hop: build
	bench/hop/run

bench-fairness: build
	bench/fairness/run

# A call between functions, Palladium against HTTP calls (bench/knative's adapter), on one
# node and across two, <= 5 min. See docs/benchmarks.md.
bench-call: build
	bench/call/run

# The Online Boutique under its load generator's mix, Palladium against the same services
# on HTTP + sidecars (bench/knative's adapter), on one node and on two, <= 10 min. See
# docs/benchmarks.md.
bench-boutique: build
	bench/boutique/run

# The Online Boutique (docs/boutique.md) in the foreground: Redis and examples/boutique.yaml;
# Ctrl-C stops both. Then shop at http://127.0.0.1:8080/.
boutique:
	BUILD=$(BUILD) scripts/boutique

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) $(FUZZ_BUILD)
