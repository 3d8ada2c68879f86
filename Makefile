# Two commands do everything (see README):  make reproduce   |   make test
VENV    ?= .venv
PYTHON  ?= python3
PY      := $(VENV)/bin/python
KERNEL  := abanet
SCALE   ?= reduced
# Data: local copies live in ./data; the offline mirror is ../shared/data when present.
export ABANET_DATA_MIRROR ?= $(if $(wildcard ../shared/data),$(abspath ../shared/data),)

.PHONY: env reproduce test test-fast kernel clean-outputs results-readme

env: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade-strategy only-if-needed -e '.[test]'
	$(PY) -m ipykernel install --sys-prefix --name $(KERNEL) --display-name "Python (abanet)"
	touch $@

reproduce: env
	$(PY) -m abanet_lib reproduce --scale $(SCALE)

test: env
	ABANET_SCALE=smoke $(PY) -m pytest -q -p no:cacheprovider tests \
	  --nbval-lax --nbval-kernel-name $(KERNEL) --nbval-cell-timeout 600 notebooks

test-fast: env
	ABANET_SCALE=smoke $(PY) -m pytest -q -x tests

results-readme: env
	$(PY) -m abanet_lib results-readme
