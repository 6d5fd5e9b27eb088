# kommo-import: build, test and demo targets. `make help` lists them.
#
# Tests need a PostgreSQL server. With neither TEST_DATABASE_URL nor DATABASE_URL set, `make test`
# (and bench, fuzz) start a throwaway cluster from the machine's PostgreSQL binaries through
# scripts/with-pg.sh and stop it afterwards; otherwise they use the server given (tests only ever
# create and drop their own kt_* databases there).
#
# They also need an S3-compatible server (the media store). Without TEST_S3_ENDPOINT, `make test`
# (and bench) start SeaweedFS through scripts/with-s3.sh: built once from the Go module proxy into
# ~/.cache/kommo-import (minutes, the first time only), started on free ports in about ten seconds,
# stopped afterwards. With TEST_S3_ENDPOINT (and TEST_S3_ACCESS_KEY, TEST_S3_SECRET_KEY,
# TEST_S3_READONLY_ACCESS_KEY, TEST_S3_READONLY_SECRET_KEY) they use that server; tests only ever
# create and drop their own kt-* buckets there.

SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

GO ?= go
# Per test binary. The whole suite is meant to take a few minutes on 2 cores; this only catches hangs.
# The end-to-end package (cmd/kommo-import) alone takes about 4-5 minutes on a quiet 2-core machine,
# more on a loaded one.
TEST_TIMEOUT ?= 12m
# The race detector is on by default: the importer is a worker pool sharing a limiter and a
# checkpoint, exactly where races hide. `make test RACE=` turns it off for a faster run.
RACE ?= -race
# Extra flags for go test, e.g. make test TESTFLAGS='-run TestImport -v'.
TESTFLAGS ?=
# Counted, not timed: a timed -fuzztime can fail spuriously with "context deadline exceeded" (golang/go#75804).
FUZZTIME_SMOKE ?= 3000x
FUZZTIME ?= 5m
BENCHTIME ?= 1s
PKGS ?= ./...

ifeq ($(strip $(TEST_DATABASE_URL)$(DATABASE_URL)),)
WITH_PG := scripts/with-pg.sh
else
WITH_PG :=
endif

ifeq ($(strip $(TEST_S3_ENDPOINT)),)
WITH_S3 := scripts/with-s3.sh
else
WITH_S3 :=
endif

# for_each_fuzz runs $(1) with $$pkg and $$fuzz set, once per Fuzz* target found by go test -list,
# so targets added later are picked up without editing this file. go test -list prints the names of
# a package, then its "ok <pkg>" line.
define for_each_fuzz
	targets=$$($(GO) test -list '^Fuzz' $(PKGS) | awk '/^Fuzz/ { names[n++] = $$1; next } /^ok/ { for (i = 0; i < n; i++) print $$2, names[i]; n = 0 }'); \
	if [[ -z "$$targets" ]]; then echo "no fuzz targets"; exit 0; fi; \
	while read -r pkg fuzz; do \
		echo "== $$fuzz ($$pkg)"; \
		$(1); \
	done <<< "$$targets"
endef

.PHONY: help
help: ## list targets
	@awk 'BEGIN { FS = ":.*## " } /^[a-z][a-z-]*:.*## / { printf "  %-12s %s\n", $$1, $$2 }' $(MAKEFILE_LIST)

.PHONY: test
test: vet ## go vet, then the whole suite (-race; RACE= to skip) and a fuzz smoke run, against PostgreSQL and S3
	$(WITH_PG) $(WITH_S3) $(MAKE) --no-print-directory test-go fuzz-smoke

# test-go and fuzz-smoke expect the servers: `make test` provides them.
.PHONY: test-go
test-go:
	$(GO) test -count=1 -timeout $(TEST_TIMEOUT) $(RACE) $(TESTFLAGS) $(PKGS)

.PHONY: fuzz-smoke
fuzz-smoke: ## run every Fuzz* target briefly (FUZZTIME_SMOKE, default 3000 executions)
	@$(call for_each_fuzz,$(GO) test -run '^$$' -fuzz "^$$fuzz\$$" -fuzztime $(FUZZTIME_SMOKE) -fuzzminimizetime 100x "$$pkg")

.PHONY: fuzz
fuzz: ## run every Fuzz* target for FUZZTIME (default 5m) each; failures land in testdata/fuzz/
	$(WITH_PG) $(MAKE) --no-print-directory fuzz-smoke FUZZTIME_SMOKE=$(FUZZTIME)

# A longer randomized campaign for release checks: many kill -9 points, database
# cuts, API faults and two processes over a few thousand messages, ending with
# the ledger check and a one-line verdict. `make test` runs a short one.
CHAOS_ROUNDS ?= 60
CHAOS_CONVERSATIONS ?= 80
CHAOS_SEED ?= $(shell date +%s)
.PHONY: chaos
chaos: ## long chaos campaign (CHAOS_ROUNDS, CHAOS_CONVERSATIONS, CHAOS_SEED) ending in a verdict line
	$(WITH_PG) env CHAOS_ROUNDS=$(CHAOS_ROUNDS) CHAOS_CONVERSATIONS=$(CHAOS_CONVERSATIONS) CHAOS_SEED=$(CHAOS_SEED) CHAOS_VERDICT=1 \
		$(GO) test -v -count=1 -timeout 60m -run '^TestChaos$$' ./cmd/kommo-import/ | grep -E '^(chaos:|ok|FAIL|--- )|Error|_test.go:'

.PHONY: bench
bench: ## run all benchmarks (against PostgreSQL and S3 where they need it)
	$(WITH_PG) $(WITH_S3) $(GO) test -run '^$$' -bench . -benchmem -benchtime $(BENCHTIME) -count=1 $(PKGS)

# The send path under faults, a killed process among two, and a kill -9 restart, with the real
# binaries (scripts/bench-send.sh; a few minutes; not part of make test). SCENARIOS=faults etc.
# Network failures with the kernel's own TCP behaviour (iptables drops a process's packets on
# 127.0.0.1: a host cut off from the database while staging, an API black-holed mid-request).
# Needs root and iptables; not part of make test.
.PHONY: test-network
test-network: ## iptables-based tests: a staging process cut off from PostgreSQL, a black-holed API (root)
	$(WITH_PG) $(GO) test -count=1 -tags network -timeout 15m -v -run '^TestNetwork' ./cmd/kommo-import/

# make test, five times in a row, with two CPU-bound processes beside it (scripts/test-under-load.sh;
# RUNS, LOAD): the real-time tests must hold on a busy machine.
.PHONY: test-under-load
test-under-load: ## make test 5 times with 2 CPU-bound processes beside it (RUNS, LOAD)
	scripts/test-under-load.sh

# An hour at --rate 7 with two processes and faults against a simulator that enforces 7/s:
# the maximum in any 1-second window as the API saw it (scripts/soak.sh; SOAK_MINUTES; TRACE=1:
# every request traced, and scripts/rate-trace.py says why the narrowest windows were narrow).
.PHONY: soak
soak: ## an hour of two processes at --rate 7 with faults: the max in any 1 s as the API saw it (SOAK_MINUTES)
	scripts/soak.sh

.PHONY: bench-send
bench-send: ## send-path figures: faults, two processes with one killed, kill -9 to full speed
	scripts/bench-send.sh

# The send rate with 30% pictures and a media store (scripts/bench-media-send.sh, README,
# Performance; a few minutes; not part of make test). BASELINE=1 adds a text-only run.
.PHONY: bench-media-send
bench-media-send: ## send rate with 30% media messages and a local S3 store, against kommo-sim
	scripts/bench-media-send.sh

# The version --version prints: the nearest tag, commits since and the commit (v1.2.0-3-gabc1234,
# -dirty with local changes), or the bare commit before the first tag. Without git (an exported
# tarball) it stays empty and the binary falls back to the VCS information the Go toolchain
# embeds, if any. BIN is where build puts the binaries.
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null)
BIN ?= bin
LDFLAGS_VERSION := -X github.com/kommo-import/kommo-import/cmd/kommo-import/cli.Version=$(VERSION)

# The media store's upload throughput into the local SeaweedFS, by concurrency (README, Media).
.PHONY: bench-media
bench-media: ## media upload throughput (MB/s, files/s) into a local S3 store, by concurrency
	$(WITH_S3) $(GO) test -run '^$$' -bench '^BenchmarkPut$$' -benchtime $(BENCHTIME_MEDIA) -count=1 ./media/

BENCHTIME_MEDIA ?= 5x

.PHONY: s3-server
s3-server: ## build the test S3 server (SeaweedFS) into the cache now, not on the first make test
	scripts/s3.sh build

.PHONY: build
build: ## build bin/kommo-import and bin/kommo-sim, stamped with the version from git describe
	$(GO) build -ldflags "$(LDFLAGS_VERSION)" -o $(BIN)/ ./cmd/kommo-import ./cmd/kommo-sim

.PHONY: demo
demo: build ## run the end-to-end demo (scripts/demo.sh)
	scripts/demo.sh

.PHONY: vet
vet: ## go vet
	$(GO) vet $(PKGS)

# Static analysis, pinned: go run fetches each tool at its version through the module proxy on
# first use, so neither a developer nor CI needs anything preinstalled.
STATICCHECK ?= honnef.co/go/tools/cmd/staticcheck@v0.8.2
DEADCODE ?= golang.org/x/tools/cmd/deadcode@v0.51.0
# Packages that exist for tests (helpers): deadcode, run without test files, reports all of them.
DEADCODE_TEST_HELPERS ?= internal/pgtest|internal/s3test|internal/ledgertest|internal/contactgen
# docker-compose.yml must validate without any of these (README: docker compose up -d db).
COMPOSE_ENV_UNSET := -u KOMMO_CHANNEL_SECRET -u KOMMO_SCOPE_ID -u KOMMO_API_URL -u KOMMO_TOKEN -u DATABASE_URL

.PHONY: lint
lint: vet ## gofmt, staticcheck, deadcode (after go vet); promtool and docker-compose checks where installed
	@fail=0; for t in lint-go lint-metrics lint-compose; do $(MAKE) --no-print-directory $$t || fail=1; done; exit $$fail

# Every check runs, then the target fails if any found something.
.PHONY: lint-go
lint-go:
	@fail=0; \
	unformatted=$$(find . -name '*.go' -not -path './.git/*' -not -path '*/testdata/*' -print0 | xargs -0 gofmt -l); \
	if [[ -n "$$unformatted" ]]; then echo "gofmt needed:"; echo "$$unformatted"; fail=1; fi; \
	echo "staticcheck ($(STATICCHECK))"; \
	$(GO) run $(STATICCHECK) $(PKGS) || fail=1; \
	echo "deadcode ($(DEADCODE))"; \
	out=$$($(GO) run $(DEADCODE) $(PKGS)) || exit 1; \
	dead=$$(grep -Ev '^($(DEADCODE_TEST_HELPERS))/' <<< "$$out" || true); \
	if [[ -n "$$dead" ]]; then echo "deadcode: functions only tests reach (delete them, or use them):"; echo "$$dead"; fail=1; fi; \
	exit $$fail

# promtool check metrics over a scrape taken during a real run: an extra where promtool is
# installed; the proof is TestMetricsServedDuringARun, which runs the same lint (promlint).
.PHONY: lint-metrics
lint-metrics:
	@if ! command -v promtool >/dev/null 2>&1; then echo "lint: promtool not installed, skipping promtool check metrics"; exit 0; fi; \
	scrape=$$(mktemp); trap 'rm -f "$$scrape"' EXIT; \
	$(WITH_PG) $(GO) test -count=1 -run '^TestMetricsServedDuringARun$$' ./cmd/kommo-import/cli/ -args -scrape-out="$$scrape"; \
	echo "promtool check metrics ($$(grep -c '^kommo_import_' "$$scrape") kommo_import_ series)"; \
	promtool check metrics < "$$scrape"

# docker-compose (v1, Debian's docker-compose) or the compose plugin validate the file without a
# Docker engine: with the environment unset, and with every profile.
.PHONY: lint-compose
lint-compose:
	@if command -v docker-compose >/dev/null 2>&1; then compose=(docker-compose); \
	elif docker compose version >/dev/null 2>&1; then compose=(docker compose); \
	else echo "lint: neither docker-compose nor docker compose installed, skipping the compose check"; exit 0; fi; \
	for profiles in "" "--profile rehearsal" "--profile import --profile rehearsal"; do \
		echo "$${compose[*]} -f docker-compose.yml $$profiles config -q"; \
		env $(COMPOSE_ENV_UNSET) "$${compose[@]}" -f docker-compose.yml $$profiles config -q; \
	done

.PHONY: clean
clean: ## remove build output and the test cache
	rm -rf bin/
	$(GO) clean -testcache
