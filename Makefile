# `make test` and `make demo` do all set-up on a fresh machine: the Debian packages the tests use
# (scripts/system_packages.sh: installed as root or with passwordless sudo, else it prints the command to run),
# then .venv with the package and its test and train extras.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: test unit demo venv system bench recipe clean

venv: system $(STAMP)

system:
	@scripts/system_packages.sh $(PYTHON)

# torch is pinned to the local CPU build on every pip line; an unpinned torch would pull the CUDA wheels.
# kenlm (built from source, about a minute) is the oracle of the ARPA scorer in tests/unit/test_ctc_decode.py.
$(STAMP): pyproject.toml Makefile | system
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[test,train]' kenlm torch==2.13.0
	touch $(STAMP)

test: system $(STAMP)
	$(PY) -m pytest -q tests

unit: system $(STAMP)
	$(PY) -m pytest -q tests/unit

demo: system $(STAMP)
	$(PY) scripts/demo.py

bench: $(STAMP)
	$(PY) benchmarks/bench_speed.py

# the shipped models (src/wavlm/zoo): about 50 minutes on 2 CPU cores, resumable; --ship replaces them
recipe: system $(STAMP)
	$(PY) recipes/tiny/recipe.py

clean:
	rm -rf $(VENV) build dist src/*.egg-info .pytest_cache
