# The README's two commands: `make demo` and `make test`. Both install what is missing first.
VENV ?= .venv
VTAP := $(VENV)/bin/vtap
PYTEST := $(VENV)/bin/pytest

.PHONY: install demo test unit integration lint down clean

install:
	@./scripts/bootstrap.sh

demo: install
	$(VTAP) demo

test: install
	$(VENV)/bin/ruff check src tests
	$(PYTEST) -q tests

unit: install
	$(PYTEST) -q tests/unit tests/api

integration: install
	$(PYTEST) -q tests/integration

lint: install
	$(VENV)/bin/ruff check src tests
	$(VENV)/bin/ruff format --check src tests

down: install
	$(VTAP) lab down

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache src/*.egg-info
