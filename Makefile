# paytoken: every target bootstraps its own virtualenv from pyproject.toml.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
PG_ENV := .pg/env
# Two cores: run the suite on both.
PYTEST_ARGS ?= -n 2

.PHONY: demo test bench lint soak pg clean firmware

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	# The two stub packages share module names: one folder each (tests/chips type-checks boards).
	$(PY) -m pip install --quiet --upgrade --target $(VENV)/stubs/rp2 'micropython-rp2-stubs>=1.22'
	$(PY) -m pip install --quiet --upgrade --target $(VENV)/stubs/esp32 'micropython-esp32-stubs>=1.22'
	touch $(STAMP)

# The main job: the whole story on virtual tokens and SQLite.
demo: $(STAMP)
	$(VENV)/bin/paytoken demo

# The tests, PostgreSQL included (.ci/pg installs and starts a local server).
test: $(STAMP)
	$(VENV)/bin/ruff check firmware boards host_tools tests
	bash .ci/pg start
	. ./$(PG_ENV) && $(PY) -m pytest $(PYTEST_ARGS)

# The frozen release image for an RP2040 board (build/firmware/paytoken-<board>.uf2), from
# the MicroPython sources in $PAYTOKEN_RP2_DIR (default ../shared/micropython-rp2); cached
# by content hash: with nothing changed it is a no-op. Installs the ARM toolchain (Debian).
FIRMWARE_BOARD ?= pico
firmware: $(STAMP)
	$(PY) -m paytoken.rp2image --board $(FIRMWARE_BOARD)

# Benchmarks: a report in reports/bench.md and reports/bench.json, not tests.
bench: $(STAMP)
	bash .ci/pg start
	. ./$(PG_ENV) && $(PY) tests/bench/run.py --out reports

# The full power-cut and provisioning campaigns (CI runs a sample).
soak: $(STAMP)
	bash .ci/pg start
	. ./$(PG_ENV) && PAYTOKEN_SOAK=1 $(PY) -m pytest -m slow -p no:randomly $(PYTEST_ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check firmware boards host_tools tests
	$(VENV)/bin/ruff format --check host_tools tests || true

pg:
	bash .ci/pg start

clean:
	bash .ci/pg stop || true
	rm -rf $(VENV) reports demo-out .pg
