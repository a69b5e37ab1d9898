# One command runs the product (`make demo`), one runs the tests (`make test`).
# Both create the virtual environment and install syncd into it first.
# `make demo` installs what running syncd needs plus the simulators (the
# `sandbox` extra); `make test` adds the dev tools (`dev`). A production
# install (`pip install syncd`) has neither.
PYTHON  ?= python3
VENV    ?= .venv
BIN     := $(VENV)/bin
CREATED := $(VENV)/.created
RUNTIME := $(VENV)/.installed-runtime
STAMP   := $(VENV)/.installed

.PHONY: demo test lint typecheck unit soak bench crash clean

$(CREATED):
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	touch $(CREATED)

$(RUNTIME): pyproject.toml $(CREATED)
	$(BIN)/pip install --quiet -e '.[sandbox]'
	touch $(RUNTIME)

$(STAMP): pyproject.toml $(CREATED)
	$(BIN)/pip install --quiet -e '.[sandbox,dev]'
	touch $(RUNTIME) $(STAMP)

demo: $(RUNTIME)  ## run the daemon against its built-in sandbox
	$(BIN)/syncd demo $(DEMO_ARGS)

test: $(STAMP)  ## lint, type-check and run the default test suite
	$(BIN)/ruff check syncd tests bench
	$(BIN)/ruff format --check syncd tests bench
	$(BIN)/mypy
	$(BIN)/pytest -q $(PYTEST_ARGS)

unit: $(STAMP)
	$(BIN)/pytest -q tests/unit

soak: $(STAMP)  ## thousands of simulation seeds and long tests (not in CI)
	SYNCD_SIM_SEEDS=$${SYNCD_SIM_SEEDS:-5000} $(BIN)/pytest -q -m slow tests

bench: $(STAMP)  ## benchmarks against the rate-limit ceiling (not in CI)
	$(BIN)/python bench/run $(BENCH_ARGS)

crash: $(STAMP)  ## SIGKILL the daemon during heavy change, then check every channel
	$(BIN)/python bench/crash --trials 50 $(CRASH_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis
