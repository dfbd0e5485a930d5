# paytoken: every target bootstraps its own virtualenv from pyproject.toml.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
PG_ENV := .pg/env
# Two cores: run the suite on both (tests sharing one emulated Pico stay on one worker).
PYTEST_ARGS ?= -n 2 --dist loadgroup

EMU    := emu/node_modules/.installed
# Debian's Chromium for the web pages' browser tests (tests/web; never a browser download).
CHROMIUM := /usr/bin/chromium
.PHONY: demo test test-loaded bench lint soak pg clean emu firmware

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

$(CHROMIUM):
	@[ "$$(id -u)" = 0 ] || { echo "make: $(CHROMIUM) missing (tests/web): run as root or apt-get install chromium" >&2; exit 1; }
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null || \
	  { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null; }

# The main job: the whole story on virtual tokens and SQLite.
demo: $(STAMP)
	$(VENV)/bin/paytoken demo

# The tests, PostgreSQL included (.ci/pg installs and starts a local server).
test: $(STAMP) $(EMU) $(CHROMIUM)
	$(VENV)/bin/ruff check firmware boards host_tools tests
	bash .ci/pg start
	. ./$(PG_ENV) && $(PY) -m pytest $(PYTEST_ARGS)

# The whole suite (as `make test`) LOADED_RUNS times in a row while stress-ng keeps both cores
# busy at normal priority (CPU, disk syncs and memory churn, as a shared CI runner): every run
# must pass. stress-ng comes from Debian (apt-get, as root) when missing.
LOADED_RUNS ?= 3
LOAD ?= --cpu 2 --io 1 --vm 1 --vm-bytes 512M
test-loaded: $(STAMP) $(EMU) $(CHROMIUM)
	@command -v stress-ng >/dev/null || { [ "$$(id -u)" = 0 ] || { echo "test-loaded: stress-ng missing; run as root or apt-get install stress-ng" >&2; exit 1; }; \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -q stress-ng >/dev/null || \
	  { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q stress-ng >/dev/null; }; }
	$(VENV)/bin/ruff check firmware boards host_tools tests
	bash .ci/pg start
	@set -e; stress-ng $(LOAD) --timeout 3h --quiet & load=$$!; \
	trap 'kill $$load 2>/dev/null; wait $$load 2>/dev/null || :' EXIT; trap 'exit 130' INT TERM; \
	sleep 1; kill -0 $$load || { echo "test-loaded: stress-ng did not start" >&2; exit 1; }; \
	. ./$(PG_ENV); \
	for i in $$(seq 1 $(LOADED_RUNS)); do \
	  echo "test-loaded: run $$i of $(LOADED_RUNS) beside stress-ng $(LOAD)"; t0=$$(date +%s); \
	  $(PY) -m pytest $(PYTEST_ARGS) || { echo "test-loaded: run $$i FAILED after $$(( $$(date +%s) - t0 )) s" >&2; exit 1; }; \
	  echo "test-loaded: run $$i passed in $$(( $$(date +%s) - t0 )) s"; \
	done

# The frozen release image for an RP2040 board (build/firmware/paytoken-<board>.uf2), from
# the MicroPython sources in $PAYTOKEN_RP2_DIR (default ../shared/micropython-rp2); cached
# by content hash: with nothing changed it is a no-op. Installs the ARM toolchain (Debian).
FIRMWARE_BOARD ?= pico
firmware: $(STAMP)
	$(PY) -m paytoken.rp2image --board $(FIRMWARE_BOARD)

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
