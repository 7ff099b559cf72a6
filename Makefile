# The README's words are the targets: `make demo`, `make test`. Everything installs into .venv.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# The browser test drives Debian's Chromium (Playwright downloads no browser of its own). Installed
# when missing; if it cannot be, the rest goes on and that test fails saying why.
CHROMIUM := /usr/bin/chromium
# The suite on both cores (pytest-xdist), a test file to a process: every file starts and stops its
# own broker, workers and stores, and tests that open a chdb store in-process keep one file's order
# (the detector's and the sale days' pure unit tests go one by one: tests/conftest.py SPLIT_FILES).
# Three processes, not two: the live alert tests spend minutes waiting on the detector's clock with
# little CPU; they are handed out first, in the order tests/conftest.py sets (no reordering by size).
PYTEST_JOBS ?= -n 3 --dist loadfile --no-loadscope-reorder
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: demo test bench unit integration lint install clean

$(STAMP): pyproject.toml
	@echo "== setting up .venv (Python packages from PyPI, about a minute the first time) =="
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	PYTHONWARNINGS=ignore $(BIN)/python -m pip install --quiet --quiet --upgrade pip
	PYTHONWARNINGS=ignore $(BIN)/python -m pip install --quiet --quiet -e '.[dev,bench]'
	touch $(STAMP)
	@echo "== .venv ready =="

$(CHROMIUM):
	$(SUDO) apt-get update && $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y chromium fonts-wqy-zenhei \
		|| echo "chromium could not be installed: tests/integration/test_view_browser.py will fail" >&2

install: $(STAMP) $(CHROMIUM)

demo: $(STAMP)
	@echo "== starting the demo: broker, worker (with the dashboards), simulator =="
	$(BIN)/promo demo

# Issue 4's benchmark: prints the table and the targets; about 40 minutes on 2 cores (naive Faust is slow).
bench: $(STAMP)
	$(BIN)/promo bench --json .promo/bench.json

test: $(STAMP) $(CHROMIUM)
	$(BIN)/ruff check streams tests
	$(BIN)/ruff format --check streams tests
	$(BIN)/mypy streams
	$(BIN)/lint-imports
	$(BIN)/python -m pytest $(PYTEST_JOBS)

unit: $(STAMP)
	$(BIN)/python -m pytest tests/unit

integration: $(STAMP) $(CHROMIUM)
	$(BIN)/python -m pytest $(PYTEST_JOBS) tests/integration

lint: $(STAMP)
	$(BIN)/ruff check streams tests
	$(BIN)/ruff format --check streams tests
	$(BIN)/mypy streams
	$(BIN)/lint-imports

clean:
	rm -rf $(VENV) .promo
