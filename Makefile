# Set-up and everyday commands. `make rehearsal` and `make test` work on a fresh Debian/Ubuntu clone.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
SYSTEM_PACKAGES := softhsm2 opensc

.PHONY: all system-deps venv test fuzz chaos lint format rehearsal bench lab bundle clean

all: test

system-deps:
	@missing=""; \
	command -v softhsm2-util >/dev/null 2>&1 || missing="$$missing softhsm2"; \
	command -v pkcs11-tool   >/dev/null 2>&1 || missing="$$missing opensc"; \
	$(PYTHON) -c 'import venv, ensurepip' >/dev/null 2>&1 || missing="$$missing python3-venv"; \
	browser=""; \
	command -v chromium      >/dev/null 2>&1 || browser="$$browser chromium"; \
	command -v zbarimg       >/dev/null 2>&1 || browser="$$browser zbar-tools"; \
	if [ -n "$$browser" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    missing="$$missing$$browser"; \
	  else \
	    echo "Optional:$$browser not installed; the browser and QR tests will be skipped." >&2; \
	  fi; \
	fi; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "Installing system packages:$$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	  else \
	    echo "Missing system packages:$$missing. Install them (sudo apt-get install$$missing), or use environment.yml with conda, then rerun make." >&2; \
	    exit 1; \
	  fi; \
	fi

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test]'
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 >/dev/null
	@touch $(STAMP)

venv: system-deps $(STAMP)

test: venv
	$(BIN)/python -m pytest

# Every reader of outside input, 500 hostile inputs each; the statistics give the counts per reader.
fuzz: venv
	CEREMONY_HYPOTHESIS=fuzz $(BIN)/python -m pytest tests/test_fuzz_readers.py --hypothesis-show-statistics

# 40 rehearsals killed at seeded points over every phase, each resumed and checked; SEED=S reruns.
chaos: venv
	$(BIN)/python -m bench.chaos --points 40 $(if $(SEED),--seed $(SEED))

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: venv
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

# Each rehearsal gets a new folder under rehearsal/, so the command can be run again and again.
rehearsal: venv
	$(BIN)/ceremony rehearse --out rehearsal/$$(date -u +%Y%m%dT%H%M%SZ)

bench: venv
	$(BIN)/python -m bench

# A practice ceremony in JupyterLab for training a custodian, each in a new folder under practice/.
lab: venv
	$(BIN)/ceremony lab --practice practice/$$(date -u +%Y%m%dT%H%M%SZ)

# The offline bundle: dist/byok-ceremony-<version>-offline.tar, for a machine with no network
# (README: "Installing on the offline machine"). DEBS=1 adds the Debian packages for SoftHSM2,
# OpenSC and python3-venv.
bundle: venv
	$(BIN)/python -m offline.build --out dist $(if $(filter 1 yes true,$(DEBS)),--debs)

clean:
	rm -rf $(VENV) rehearsal practice bench/out dist build .pytest_cache .ruff_cache *.egg-info
