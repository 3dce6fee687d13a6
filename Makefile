# One entry point for developers and CI. `make test` works from a clean clone:
# it creates the virtualenv, installs the system services the tests start
# (PostgreSQL, Redis, bubblewrap) if they are missing, and runs pytest.

SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# Touched after a successful install; pyproject.toml newer than it means reinstall.
STAMP := $(VENV)/.installed

.PHONY: venv services test lint check run bench

venv: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	@touch $(STAMP)

services:
	@scripts/ensure-services.sh

# pytest exits non-zero when a test fails and with 5 when it collected no test:
# either fails the target.
test: venv services
	$(BIN)/pytest

lint: venv
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/lint-imports

check: lint

# TODO(control-plane issue): `linkflow serve` arrives with the control-plane issue;
# until then this target says how to get a migrated database.
run: venv
	@if $(BIN)/linkflow serve --help >/dev/null 2>&1; then \
		exec $(BIN)/linkflow serve; \
	else \
		echo "'linkflow serve' is not built yet (it comes with the control-plane issue)."; \
		echo "Meanwhile, create or upgrade the database with:"; \
		echo "  $(BIN)/linkflow migrate    # once the CLI exists, or:"; \
		echo "  $(BIN)/python -m linkflow.store.migrate upgrade sqlite:///.linkflow/linkflow.db"; \
	fi

bench: venv
	@shopt -s nullglob; status=0; \
	for script in bench/*.py; do \
		echo "== $$script"; \
		$(BIN)/python "$$script" || status=1; \
	done; \
	exit $$status
