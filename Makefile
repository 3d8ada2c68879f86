# Two commands do everything (see README):  make reproduce   |   make test
VENV    ?= .venv
PYTHON  ?= python3
PY      := $(VENV)/bin/python
KERNEL  := abanet
SCALE   ?= reduced
# Data: local copies live in ./data; the offline mirror is ../shared/data when present.
export ABANET_DATA_MIRROR ?= $(if $(wildcard ../shared/data),$(abspath ../shared/data),)

.PHONY: env reproduce runs test test-browser test-fast kernel clean-outputs results-readme

env: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade-strategy only-if-needed -e '.[test]'
	# MTCNN face detector with bundled weights; its metadata pins an old torch, hence --no-deps.
	$(PY) -m pip install --no-deps facenet-pytorch==2.6.0
	$(PY) -m ipykernel install --sys-prefix --name $(KERNEL) --display-name "Python (abanet)"
	touch $@

# Renders every table/figure from the records in results/runs (trains nothing: a run not yet
# recorded reads "not run" or lowers its row's n), then the results README, claims ledger and
# cost report from those tables: all deterministic, a fresh clone reproduces results/ byte for byte.
reproduce: env
	$(PY) -m abanet_lib reproduce --scale $(SCALE) --no-train
	$(PY) -m abanet_lib results-readme

# Trains the scale's missing runs in priority order (claims first), one single-threaded worker
# per core, each run written to results/runs/ as it finishes; stop it any time, run it again to
# resume. BUDGET = wall-clock seconds for this sitting. Then `make reproduce` renders them.
BUDGET ?= 36000
runs: env
	$(PY) -m abanet_lib.ops.batch_runner run --scale $(SCALE) --workers auto --budget-s $(BUDGET) \
	  --out $(abspath .cache/batch-$(SCALE))

# Tests write their runs, tables and figures under $(TEST_OUT), never into results/.
TEST_OUT ?= .cache/test-run
TEST_ENV := ABANET_SCALE=smoke ABANET_RESULTS=$(abspath $(TEST_OUT))/results ABANET_CACHE=$(abspath $(TEST_OUT))/cache

test: env
	rm -rf $(TEST_OUT)
	$(TEST_ENV) $(PY) -m pytest -q -p no:cacheprovider --durations=15 tests --ignore=tests/test_browser.py \
	  --nbval-lax --nbval-kernel-name $(KERNEL) --nbval-cell-timeout 600 notebooks

# JupyterLab in a real browser (chromium + playwright), Run All on notebooks 01, 06, 02 (~5 min);
# its own target so `make test` stays under 15 minutes on 2 cores. CI runs both.
test-browser: env
	$(TEST_ENV) $(PY) -m pytest -q -p no:cacheprovider -rs tests/test_browser.py

test-fast: env
	$(TEST_ENV) $(PY) -m pytest -q -x tests

results-readme: env
	$(PY) -m abanet_lib results-readme
