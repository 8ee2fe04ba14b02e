# Coinbooks. `make run` serves GraphQL; `make test` runs the whole suite. Both set up first.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
TEST_WORKERS ?= 2
STAMP  := $(VENV)/.installed-$(shell cksum pyproject.toml | cut -d' ' -f1)

.PHONY: run test lint bench check schema clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e ".[dev]"
	@rm -f $(VENV)/.installed-*
	@touch $(STAMP)

run: $(STAMP)
	$(BIN)/coinbooks serve

test: $(STAMP)
	$(BIN)/pytest -n $(TEST_WORKERS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

bench: $(STAMP)
	$(BIN)/python -m bench

check: $(STAMP)
	$(BIN)/coinbooks check

schema: $(STAMP)
	$(BIN)/coinbooks export-schema

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis
