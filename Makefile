# The commands a person types. `make help` lists them.
SHELL := /usr/bin/env bash
.DEFAULT_GOAL := help

CARGO ?= cargo
# Tests and `run` use the debug profile; `bench` builds release into the same target dir.
ENV := . .local/env &&

.PHONY: help
help: ## list the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

.PHONY: infra
infra: ## start local PostgreSQL (55432) and Redis (56379), if not running
	@scripts/infra.sh up

.PHONY: stop
stop: ## stop the local PostgreSQL and Redis that infra started
	@scripts/infra.sh down

.PHONY: tools
tools: ## install grpcurl, promtool, kustomize and the manifest checkers into .local, and the local models
	@scripts/tools.sh
	@scripts/models.sh

.PHONY: build
build: ## build every crate (debug)
	$(CARGO) build --workspace

.PHONY: run
run: infra tools ## run the suite on this machine, in the foreground, until Ctrl-C
	@scripts/run.sh

.PHONY: migrate
migrate: infra ## apply migrations to the local database
	@$(ENV) $(CARGO) run --quiet --bin agentic -- migrate

# RAYON_NUM_THREADS: the local chat model's math threads. The agent service sets it itself
# at start; services under test run in the test's process and cannot.
.PHONY: test
test: infra tools ## run every test against real PostgreSQL and Redis
	@$(ENV) export RAYON_NUM_THREADS=$${RAYON_NUM_THREADS:-$$(nproc)} && if $(CARGO) nextest --version >/dev/null 2>&1; then \
	  $(CARGO) nextest run --workspace --profile $${NEXTEST_PROFILE:-default}; \
	else \
	  $(CARGO) test --workspace; \
	fi

.PHONY: lint
lint: ## rustfmt check, clippy with warnings as errors, no import cycles between modules
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	python3 scripts/module_cycles.py crates/*/src

.PHONY: fmt
fmt: ## format the code
	$(CARGO) fmt --all

.PHONY: bench
bench: infra tools ## measure throughput and latency over gRPC; writes bench/out/report.md
	@scripts/bench.sh

.PHONY: loadtest
loadtest: infra tools ## the seeds' load profiles and a 10-minute soak against the suite; writes docs/loadtest-report.md
	@scripts/loadtest.sh

.PHONY: bench-llm
bench-llm: infra tools ## only the answering part of bench (local model, overhead); writes bench/out/llm.md
	@scripts/bench_llm.sh

.PHONY: clean
clean: stop ## stop infrastructure and remove build output and local data
	$(CARGO) clean
	rm -rf .local bench/out
