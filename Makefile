# Two commands on a fresh machine: `make demo` and `make test`.
# Both create .venv (once) and install the package with every extra.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export TF_CPP_MIN_LOG_LEVEL ?= 2
export PYTHONHASHSEED ?= 0

.PHONY: demo test venv bench bench-quick bench-report bench-gpu clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[experiments,litert,dev]"
	touch $(STAMP)

demo: $(STAMP)
	$(PY) examples/train.py --output_dir=runs/demo --overwrite

test: $(STAMP)
	$(PY) -m pytest -q tests

# Benchmarks (see BUILD_NOTES.md). The full grid is resumable: finished cells
# are cached under benchmarks/results/grid/ and skipped.
BENCH := $(PY) -m benchmarks

bench-quick: $(STAMP)
	rm -rf benchmarks/results/grid_quick
	$(BENCH).grid --grid=quick
	$(BENCH).mask_update --repeats=2 --out=mask_update_quick.json
	$(BENCH).report --grid=quick --out=benchmarks/results/BENCHMARKS_quick.md

bench: $(STAMP)
	$(BENCH).grid --grid=full
	$(BENCH).grid --grid=nm
	$(BENCH).grid --grid=channel
	$(BENCH).overhead --pairs=3 --epochs=5
	$(BENCH).mask_update
	$(BENCH).refit
	$(BENCH).small_files
	$(BENCH).applications
	$(BENCH).tfmot_compare
	$(BENCH).shrink
	$(BENCH).shrink --lenets
	$(BENCH).shrinking_fit
	$(BENCH).report --grid=full

bench-report: $(STAMP)
	$(BENCH).report --grid=full

# On a machine with a GPU only (it refuses to run without one).
bench-gpu: $(STAMP)
	$(BENCH).gpu

clean:
	rm -rf $(VENV) runs
