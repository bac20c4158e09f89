# Tollgate developer entry points. `make help` lists them.
# Two commands set up everything on a fresh Debian machine: `make demo` and `make test`.

SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=

include e2e/tools/tools.mk

.PHONY: help install prometheus check lint typecheck layers crds crd-drift locks test test-fast e2e bench bench-detection demo clean

help: ## list the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

$(STAMP): requirements.lock pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements.lock
	$(BIN)/pip install --quiet --no-deps -e .
	touch $(STAMP)

install: $(STAMP) prometheus ## venv with pinned Python deps, and Debian's prometheus when missing

prometheus: ## install Prometheus and promtool from Debian if they are missing
	@if command -v prometheus >/dev/null && command -v promtool >/dev/null; then \
	  echo "prometheus: $$(prometheus --version 2>&1 | head -1)"; \
	else \
	  SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
	  $$SUDO apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends prometheus; \
	fi

check: lint typecheck layers crd-drift locks ## ruff, hadolint, mypy --strict, import-linter, CRD and lock drift

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/hadolint Dockerfile

locks: $(STAMP) ## every pin hashed; the image's runtime lock (requirements-operator.lock) in step
	$(BIN)/python .ci/operator_lock.py --check

typecheck: $(STAMP)
	$(BIN)/mypy
	$(BIN)/mypy tests bench e2e

layers: $(STAMP)
	$(BIN)/lint-imports

crd-drift: $(STAMP) ## fail when crds/ (or the chart's copy) differ from what the API models generate
	$(BIN)/tollgate crds --check --out crds
	$(BIN)/tollgate crds --check --out charts/tollgate/files/crds
	$(BIN)/python .ci/deploy_manifests.py --check

crds: $(STAMP) ## regenerate crds/ (and the chart's copy) from the API models
	$(BIN)/tollgate crds --out crds
	$(BIN)/tollgate crds --out charts/tollgate/files/crds

.PHONY: deploy
deploy: $(STAMP) ## regenerate deploy/ (kustomize) from the chart's golden renders and crds/
	$(BIN)/python .ci/deploy_manifests.py

test: install tools checkov ## everything installed (the local control plane too), every test run
	$(BIN)/pytest -q $(PYTEST_ARGS)

test-fast: $(STAMP) ## the tests that need no external component
	$(BIN)/pytest -q -m "not integration" $(PYTEST_ARGS)

# the tests that need a real cluster and nothing else of this machine's
E2E_TESTS = e2e tests/cluster/test_crds_on_server.py tests/cluster/test_operator_on_cluster.py \
	tests/runtime/test_live_rollout.py tests/runtime/test_live_replay.py tests/runtime/test_live_prompt.py

e2e: install tools ## the real-cluster suite, on the cluster KUBECONFIG names, else on a local one
	TOLLGATE_KUBECONFIG="$${KUBECONFIG:-}" $(BIN)/pytest -q -rs $(E2E_TESTS) $(PYTEST_ARGS)

bench: $(STAMP) ## benchmarks: print tables, write JSON to bench/results/
	$(BIN)/python -m bench.engine_decide
	$(BIN)/python -m bench.canary_rollback
	$(BIN)/python -m bench.prompt_rollback
	$(BIN)/python -m bench.failover
	$(BIN)/python -m bench.sdk_overhead
	$(BIN)/python -m bench.operator_cpu

bench-detection: $(STAMP) ## detection quality: Tollgate vs Flagger/Argo/naive rules on the same seeded streams
	$(BIN)/python -m bench.replay_detection
	$(BIN)/python -m bench.detection

demo: install tools ## see Tollgate run end to end on a local control plane built from Go modules
	$(BIN)/tollgate demo

clean: ## remove the venv and caches
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis bench/results
