# Quick start: `make run` serves the application, `make test` runs the whole test suite.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: setup run worker test lint format messages bench clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || \
		{ echo "Python 3.11 or newer is needed (set PYTHON=...)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

setup: $(STAMP)

run: setup
	$(BIN)/pistalka serve --host $(HOST) --port $(PORT)

worker: setup
	$(BIN)/pistalka worker

test: setup
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: setup
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

# Extract the messages of templates and code and merge them into the Czech catalogue.
messages: setup
	$(BIN)/pybabel extract -F babel.cfg -k N_ -o app/locale/messages.pot --no-location --omit-header .
	$(BIN)/pybabel update -i app/locale/messages.pot -d app/locale -l cs --no-fuzzy-matching -w 100

# Every benchmark with small sizes (a few minutes); needs PostgreSQL (bench/common.py) and
# Chromium. Full sizes and figures: docs/performance.md.
bench: setup
	$(BIN)/python bench/crypto_costs.py
	$(BIN)/python bench/submissions.py --seconds 5
	$(BIN)/python bench/files.py --megabytes 50
	$(BIN)/python bench/case_list.py --cases 2000 --requests 20
	$(BIN)/python bench/login.py --seconds 5
	$(BIN)/python bench/pages.py
	$(BIN)/python bench/purge.py --organisations 100 --per-organisation 20

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
