# movid — the two commands that matter: `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
MOVID  := $(VENV)/bin/movid
STAMP  := $(VENV)/.movid-installed
DEMO_DATA ?= demo_data
DEMO_OUT  ?= demo_out
# CPU build of torch that this machine has on disk; an unpinned torch would pull a multi-GB CUDA build.
TORCH_PIN ?= torch==2.13.0

.PHONY: setup demo test test-all bench lint clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet $(TORCH_PIN)
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: setup
	$(MOVID) sample-data $(DEMO_DATA) --motions 300 --seed 0 --broken
	$(MOVID) build --source humanml3d=$(DEMO_DATA)/humanml3d --source video=$(DEMO_DATA)/videos --out $(DEMO_OUT) --config configs/demo.yaml --overwrite
	$(MOVID) inspect $(DEMO_OUT)

test: setup
	$(PY) -m pytest

test-all: setup
	$(PY) -m pytest -m ''

bench: setup
	$(PY) bench/ingest.py
	$(PY) bench/kinematics.py
	$(PY) bench/frames.py
	$(PY) bench/annotate.py

lint: setup
	$(VENV)/bin/ruff check .

clean:
	rm -rf $(DEMO_DATA) $(DEMO_OUT) .pytest_cache
