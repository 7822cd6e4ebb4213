# Bootstrap .venv (once, or when pyproject.toml changes), then run the demo, tests or benchmarks.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
export SPARK_LOCAL_IP ?= 127.0.0.1

.PHONY: demo test bench lint clean

$(VENV)/.installed: pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11) and "Python >= 3.11 is needed")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	@# torch: a wheel from pip's find-links first, where there is one (a CPU build on machines
	@# without a GPU); the registry's newest torch would pull GBs of CUDA packages. Elsewhere
	@# this finds nothing, and the next line installs the registry's torch.
	$(BIN)/python -m pip install --quiet --no-index --no-deps torch 2>/dev/null \
		|| echo "no torch in pip's find-links: installing the registry's"
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $@

demo: $(VENV)/.installed
	$(BIN)/scaling demo

# LightGBM's command-line program (its feature-parallel learner), built once from its source
# release into the venv; the tests train with it. ~5 minutes on 2 cores, the first time.
LIGHTGBM_CLI := $(VENV)/.lightgbm-cli

$(LIGHTGBM_CLI): $(VENV)/.installed
	$(BIN)/python -m scaling.collectives.lightgbm_cli
	@touch $@

test: $(VENV)/.installed $(LIGHTGBM_CLI)
	$(BIN)/ruff check . && $(BIN)/ruff format --check .
	$(BIN)/python -m pytest -q

bench: $(VENV)/.installed $(LIGHTGBM_CLI)
	$(BIN)/python benchmarks/kernels.py && $(BIN)/python benchmarks/overhead.py \
		&& $(BIN)/python benchmarks/kmeans.py && $(BIN)/python benchmarks/logreg.py \
		&& $(BIN)/python benchmarks/sgd.py && $(BIN)/python benchmarks/gbdt.py \
		&& $(BIN)/python benchmarks/gbdt_modes.py

lint: $(VENV)/.installed
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

clean:
	rm -rf $(VENV) results
