# HistCode: `make demo` and `make test` are each one command on a fresh machine.
SHELL := /bin/bash
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PORT ?= 5000
EXTERNAL ?=  # empty: the cohort with role: external in params.yaml (cptac_synth in the demo, cptac_brca for real data)
export PYTHONHASHSEED := 0
# dvc stages run `python pipelines/...`: the project's venv must come first on PATH
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)
export MPLBACKEND := Agg
export GIT_PYTHON_REFRESH := quiet
export DVC_NO_ANALYTICS := 1
# DVC's site cache (state/links db) inside the project, absolute so `dvc exp run --temp` finds it too
export DVC_SITE_CACHE_DIR := $(CURDIR)/.dvc/tmp/site-cache

.PHONY: setup demo test lint repro ui clean promote eval-cptac tune bench summary server server-stop

setup: $(STAMP)

# the venv holds ~7 GB (torch's x86_64 wheels bring CUDA libraries) and pip unpacks through TMPDIR: say so up front
# rather than fail half-way with pip's "No space left on device"
INSTALL_GB ?= 9

$(STAMP): pyproject.toml
	@ls -d $(VENV)/lib/python3*/site-packages/torch >/dev/null 2>&1 || for d in . "$${TMPDIR:-/tmp}"; do \
	  free=$$(df -Pk "$$d" | awk 'NR==2 {print int($$4 / 1048576)}'); \
	  if [ "$$free" -lt $(INSTALL_GB) ]; then \
	    echo "make setup: $$free GB free on $$(cd "$$d" && pwd) but the install needs about $(INSTALL_GB) GB (torch with its CUDA libraries): free space there, or set TMPDIR to a larger disk" >&2; \
	    exit 1; fi; done
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# torch/torchvision first, pinned (pip takes them from the local wheel cache where one exists)
	$(BIN)/pip install -q torch==2.14.1 torchvision==0.29.1
	$(BIN)/pip install -q -e '.[dev]'
	# `dvc plots show` offline: .dvc/config's plots.html_template, Vega inline (histcode.plots_page)
	$(BIN)/histcode plots-page
	touch $(STAMP)

demo: setup
	@start=$$(date +%s); \
	$(BIN)/dvc repro && \
	$(BIN)/histcode promote && \
	$(BIN)/histcode summary && \
	echo "demo finished in $$(( $$(date +%s) - start )) s"

repro: setup
	$(BIN)/dvc repro

summary: setup
	$(BIN)/histcode summary

# test processes: one per CPU this process may use, at most 4 (each holds torch, ~1 GB); with one CPU, or
# TEST_WORKERS=0, the tests run in this process.
# Whole modules go to one worker (module fixtures build once), the slow pipeline modules first (tests/conftest.py).
TEST_WORKERS ?= $(shell $(PY) -c "import os; f = getattr(os, 'sched_getaffinity', None); \
  n = min(4, len(f(0)) if f else os.cpu_count() or 1); print(n if n > 1 else 0)")

test: setup
	$(BIN)/pytest -q -p no:cacheprovider --timeout=900 --durations=15 -n $(TEST_WORKERS) --dist loadscope \
	  --no-loadscope-reorder tests

lint: setup
	$(BIN)/ruff check src pipelines tests benchmarks
	PYTHONPATH=src $(BIN)/lint-imports

ui: setup
	$(BIN)/histcode server flush
	@echo "MLflow UI: http://127.0.0.1:$(PORT)/#/experiments?workflowType=machine_learning (runs, models, registry)"
	MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false $(BIN)/mlflow ui --backend-store-uri sqlite:///mlruns/mlflow.db \
	  --default-artifact-root ./mlruns/artifacts --host 127.0.0.1 --port $(PORT) --workers 1

# team tracking server: PostgreSQL cluster + mlflow server on 127.0.0.1, all state in .server/ (git-ignored)
SERVER_PORT ?= 5001
server: setup
	$(BIN)/histcode server start --port $(SERVER_PORT)

server-stop: setup
	$(BIN)/histcode server stop

promote: setup
	$(BIN)/histcode promote

eval-cptac: setup
	$(BIN)/histcode evaluate-external $(if $(strip $(EXTERNAL)),--cohort $(EXTERNAL))

tune: setup
	$(BIN)/histcode tune mil

bench: setup
	$(BIN)/python benchmarks/run_all.py

clean:
	rm -rf data/synthetic data/manifests data/tiles data/stain data/models data/features data/attention \
	  data/attention_genes data/splits data/expression data/predictions data/checkpoints reports mlruns/mlflow.db \
	  mlruns/artifacts .dvc/tmp optuna
