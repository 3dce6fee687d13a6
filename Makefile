# One entry point for developers and CI. `make test` works from a clean clone:
# it creates the virtualenv, installs the system services the tests start
# (PostgreSQL, Redis, bubblewrap) if they are missing, and runs pytest.

SHELL := /bin/bash
PYTHON ?= $(shell scripts/pick-python.sh)
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
test: venv services lint
	$(BIN)/pytest

lint: venv
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/lint-imports

check: lint

# Starts API + worker + scheduler on embedded defaults and prints the URL.
run: venv
	$(BIN)/linkflow serve

# wrk (Debian) is the load generator of bench/webhook.py; installed when missing, as root.
bench: venv
	@command -v wrk >/dev/null || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null \
		&& DEBIAN_FRONTEND=noninteractive apt-get install -y wrk >/dev/null; } || true
	@shopt -s nullglob; status=0; \
	for script in bench/*.py; do \
		echo "== $$script"; \
		$(BIN)/python "$$script" || status=1; \
	done; \
	exit $$status
