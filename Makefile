# The two commands of the README: `make demo` and `make test`. Both set up a virtual
# environment (.venv) with snncc installed in it if there is none yet (with the cluster
# extra, Ray, so that the tests of `simulate --ray` run).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.snncc-installed

.PHONY: setup demo test test-fast fuzz lint docs golden bench

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev,cluster]'
	@touch $@

setup: $(STAMP)

demo: setup  ## compile the bundled example at T=7 and run it on its test split
	$(VENV)/bin/snncc demo

test: setup  ## the whole suite, as CI runs it
	$(PY) -m pytest -n 2 -q

test-fast: setup  ## everything but the slow tests
	$(PY) -m pytest -n 2 -q -m "not slow"

fuzz: setup  ## the fuzzers at length with new random examples each run (nightly)
	SNNCC_FUZZ_EXAMPLES=$${SNNCC_FUZZ_EXAMPLES:-2000} SNNCC_FUZZ_RANDOM=1 \
		$(PY) -m pytest -q -s -m fuzz tests/test_fuzz.py

lint: setup
	$(VENV)/bin/ruff check snncc tests
	$(VENV)/bin/mypy snncc

docs: setup  ## rewrite the README's supported-ops table from the importer's handlers
	$(PY) -c "from snncc.frontend.support import write_readme; write_readme('README.md')"

golden: setup  ## rewrite the golden snapshots after a reviewed change
	SNNCC_UPDATE_GOLDEN=1 $(PY) -m pytest -q -k golden

bench: setup  ## benchmarks (needs the train extra, installed here): writes BENCHMARKS.md
	@$(PY) -c "import torch, brevitas" 2>/dev/null || $(PY) -m pip install --quiet -e '.[dev,train]'
	$(PY) examples/deit_tiny/generate.py --depth 12 --width 64 --tokens 16
	$(PY) bench/latency.py --deit bench/models/deit_d12_w64_t16_h1_qcdq.onnx
	$(PY) bench/run.py
