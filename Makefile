# Two commands on a fresh machine: `make demo` and `make test`.
# Both create .venv (once) and install the package with every extra,
# JAX and PyTorch (a CPU build) included.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# The CPU build of PyTorch (a plain `torch` from PyPI is a CUDA build of
# several GB). Override it for a GPU: make TORCH_SPEC=torch venv
TORCH_SPEC ?= torch==2.13.0
export TF_CPP_MIN_LOG_LEVEL ?= 2
export PYTHONHASHSEED ?= 0
# Two worker processes, each test file kept on one worker: the tiny test
# models spend most of their time in Python, one core each, so two workers
# take about 0.7x the time of one on these 2 cores (PyTorch: 322 s against
# 468 s). `make test PYTEST_WORKERS=0` runs in one process.
PYTEST_WORKERS ?= 2
PYTEST := $(PY) -m pytest -q -rs $(if $(filter 0,$(PYTEST_WORKERS)),,-n $(PYTEST_WORKERS) --dist loadfile)

.PHONY: demo demo-llm docs test test-tensorflow test-jax test-torch venv bench bench-quick bench-report \
	bench-backends bench-gpu clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet "$(TORCH_SPEC)"
	$(PY) -m pip install --quiet -e ".[experiments,litert,dev,hub,jax,torch,docs]"
	touch $(STAMP)

demo: $(STAMP)
	$(PY) examples/train.py --output_dir=runs/demo --overwrite

# An LLM user's main job: a small Llama 3 trained on the pinned corpus (the
# Python standard library's source), then half its feed-forward neurons and
# query heads pruned progressively while it is distilled, written as a
# KerasHub preset with results.json and a model card (runs/demo-llm).
demo-llm: $(STAMP)
	$(PY) examples/train.py --backend=jax --family=llama3 --output_dir=runs/demo-llm \
		--text=data/pystdlib/train.txt.gz --teacher_steps=400 --llm_steps=200 --verbose=2

# The documentation site, from the docstrings and the README's guides, into
# site/ (offline). Warnings are errors: a broken link or reference fails.
docs: $(STAMP)
	$(PY) -m mkdocs build --strict

# The suite on TensorFlow (every test, the slow ones included), then on JAX
# and on PyTorch (all but the tests marked `slow`). `-rs` prints every
# skipped test with its reason in the summary.
test: test-tensorflow test-jax test-torch

test-tensorflow: $(STAMP)
	KERAS_BACKEND=tensorflow $(PYTEST) tests

# XLA's backend optimizations only cost compile time on these tiny test
# models; level 0 roughly halves the JAX suite's time. Tests only.
test-jax: $(STAMP)
	KERAS_BACKEND=jax XLA_FLAGS="$${XLA_FLAGS:---xla_backend_optimization_level=0}" \
		$(PYTEST) tests

test-torch: $(STAMP)
	KERAS_BACKEND=torch $(PYTEST) tests

# Benchmarks (see BUILD_NOTES.md). The full grid is resumable: finished cells
# are cached under benchmarks/results/grid/ and skipped.
BENCH := $(PY) -m benchmarks

bench-quick: $(STAMP)
	rm -rf benchmarks/results/grid_quick
	$(BENCH).grid --grid=quick
	$(BENCH).mask_update --repeats=2 --out=mask_update_quick.json --noreference
	$(BENCH).report --grid=quick --out=benchmarks/results/BENCHMARKS_quick.md

bench: $(STAMP)
	$(BENCH).grid --grid=full
	$(BENCH).grid --grid=nm
	$(BENCH).grid --grid=channel
	$(MAKE) bench-backends
	$(BENCH).small_files
	$(BENCH).applications
	$(BENCH).tfmot_compare
	$(BENCH).shrink
	$(BENCH).shrink --lenets
	$(BENCH).shrinking_fit
	$(BENCH).report --grid=full

bench-report: $(STAMP)
	$(BENCH).report --grid=full

# The engine's speed on each backend: mask update, training overhead
# (CPU and wall time), later fits. Run alone: timings need an idle machine.
bench-backends: $(STAMP)
	for b in tensorflow jax torch; do \
		$(BENCH).mask_update --backend=$$b && \
		$(BENCH).overhead --backend=$$b && \
		$(BENCH).refit --backend=$$b || exit 1; \
	done
	$(BENCH).report --grid=full

# On a machine with a GPU only (it refuses to run without one).
bench-gpu: $(STAMP)
	$(BENCH).gpu

clean:
	rm -rf $(VENV) runs
