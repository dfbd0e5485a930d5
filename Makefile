# paytoken: every target bootstraps its own virtualenv from pyproject.toml.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
PG_ENV := .pg/env
# Two cores: run the suite on both (tests sharing one emulated Pico stay on one worker).
PYTEST_ARGS ?= -n 2 --dist loadgroup

EMU    := emu/node_modules/.installed
.PHONY: demo test bench lint soak pg clean emu

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	# The two stub packages share module names: one folder each (tests/chips type-checks boards).
	$(PY) -m pip install --quiet --upgrade --target $(VENV)/stubs/rp2 'micropython-rp2-stubs>=1.22'
	$(PY) -m pip install --quiet --upgrade --target $(VENV)/stubs/esp32 'micropython-esp32-stubs>=1.22'
	touch $(STAMP)

# rp2040js for the emulated Pico (docs/RP2.md), pinned by emu/package-lock.json.
$(EMU): emu/package.json emu/package-lock.json
	command -v npm >/dev/null || (apt-get update -qq && apt-get install -y -qq --no-install-recommends nodejs npm)
	npm ci --prefix emu --no-audit --no-fund --loglevel=error
	touch $(EMU)

emu: $(EMU)

# The main job: the whole story on virtual tokens and SQLite.
demo: $(STAMP)
	$(VENV)/bin/paytoken demo

# The tests, PostgreSQL included (.ci/pg installs and starts a local server).
test: $(STAMP) $(EMU)
	$(VENV)/bin/ruff check firmware boards host_tools tests
	bash .ci/pg start
	. ./$(PG_ENV) && $(PY) -m pytest $(PYTEST_ARGS)

# Benchmarks: a report in reports/bench.md and reports/bench.json, not tests.
bench: $(STAMP) $(EMU)
	bash .ci/pg start
	. ./$(PG_ENV) && $(PY) tests/bench/run.py --out reports

# The full power-cut and provisioning campaigns (CI runs a sample).
soak: $(STAMP) $(EMU)
	bash .ci/pg start
	. ./$(PG_ENV) && PAYTOKEN_SOAK=1 $(PY) -m pytest -m slow -p no:randomly $(PYTEST_ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check firmware boards host_tools tests
	$(VENV)/bin/ruff format --check host_tools tests || true

pg:
	bash .ci/pg start

clean:
	bash .ci/pg stop || true
	rm -rf $(VENV) reports demo-out .pg emu/node_modules
