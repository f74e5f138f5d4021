# The two commands of the README: `make run` and `make test`. Everything else is a helper.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin

.PHONY: run test install migrate sandbox fuzz mutants clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# Same install step as the Dockerfile (which drops the [test] extra).
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

install: $(VENV)/.installed

run: install
	$(BIN)/python -m app serve $(ARGS)

# Python tests (unit, API, end-to-end) including the mini-program's Node journey test.
# pytest exits 5 when it collects nothing, which fails this target.
test: install
	$(BIN)/python -m pytest $(ARGS)

migrate: install
	$(BIN)/python -m app migrate

sandbox: install
	$(BIN)/python -m sandbox

# Part of `make test`; on their own for a longer or different run (FUZZ_SECONDS=300 FUZZ_SEED=7 make fuzz).
fuzz: install
	$(BIN)/python -m pytest tests/e2e/test_fuzz_api.py tests/e2e/test_fuzz_console.py $(ARGS)

mutants: install
	$(BIN)/python tests/mutants.py $(ARGS)

clean:
	rm -rf $(VENV) var .pytest_cache
