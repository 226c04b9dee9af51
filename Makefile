# facelin's two main commands:
#   make book   execute every chapter and build the HTML book into book/_build/html
#   make test   unit tests and the book's notebooks (nbval)
# Both create the virtual environment (.venv) and build the compiled core when needed.
PYTHON ?= python3
# Idle OpenMP threads sleep instead of spinning: spinning threads starve the other pool
# (torch's and BLAS's) on a small machine and make small solves many times slower.
export OMP_WAIT_POLICY ?= PASSIVE
VENV ?= .venv
PY := $(VENV)/bin/python
DEPS := $(VENV)/.facelin-deps
EDITABLE := $(VENV)/.facelin-editable

.PHONY: venv build test book notebooks bench cuda-check gpu-check clean

# Chapters save their findings here and the scorecard and first page read them
# (facelin.findings; chapters run in book/, whose ./findings this is as well).
test book notebooks: export FACELIN_FINDINGS ?= $(CURDIR)/book/findings

venv: $(DEPS)

$(DEPS): requirements.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements.txt
	touch $@

$(EDITABLE): $(DEPS) setup.py
	FACELIN_NO_EXT=1 $(PY) -m pip install -q --no-build-isolation --no-deps -e .
	touch $@

build: $(EDITABLE)
	$(PY) setup.py -q build_ext --inplace

test: build
	$(PY) -m pytest

# BOOK_EXECUTE=off builds the HTML from the notebooks as committed, without executing
# them again (CI does so after `make test` has executed and checked every chapter).
BOOK_EXECUTE ?= force

book: build
	mkdir -p build
	sed 's/execute_notebooks: force/execute_notebooks: $(BOOK_EXECUTE)/' book/_config.yml \
	  > build/book_config.yml
	$(VENV)/bin/jupyter-book build book --config build/book_config.yml --all \
	  --warningiserror --nitpick --keep-going

# Chapters are written in book/src/*.py (percent format); this regenerates each notebook
# and executes it, so the committed notebooks carry fresh outputs for nbval.
notebooks: build
	for src in book/src/*.py; do \
	  nb=book/$$(basename $$src .py).ipynb; \
	  $(PY) tools/make_notebook.py $$src $$nb || exit 1; \
	done

bench: build
	for f in benchmarks/bench_*.py; do $(PY) $$f || exit 1; done

# Compile the CUDA kernels without a GPU (what CI does): a second environment with a CUDA
# torch, a build in a copy of the tracked sources, an import check, and the CPU tests run
# against that build.
CUDA_VENV ?= .venv-cuda
CUDA_TORCH ?= torch==2.14.1
CUDA_ARCHS ?= 8.0;9.0
CUDA_HOME ?= /usr/local/cuda
CUDA_TREE := build/cuda-tree

cuda-check:
	test -x $(CUDA_VENV)/bin/python || $(PYTHON) -m venv $(CUDA_VENV)
	$(CUDA_VENV)/bin/python -m pip install -q --upgrade pip
	$(CUDA_VENV)/bin/python -m pip install -q $(CUDA_TORCH)
	grep -v '^torch==' requirements.txt > $(CUDA_VENV)/requirements-without-torch.txt
	$(CUDA_VENV)/bin/python -m pip install -q -r $(CUDA_VENV)/requirements-without-torch.txt
	rm -rf $(CUDA_TREE) && mkdir -p $(CUDA_TREE)
	git ls-files -z | xargs -0 cp --parents -t $(CUDA_TREE)
	cd $(CUDA_TREE) && FACELIN_CUDA=1 CUDA_HOME=$(CUDA_HOME) TORCH_CUDA_ARCH_LIST="$(CUDA_ARCHS)" \
	  $(CURDIR)/$(CUDA_VENV)/bin/python setup.py -q build_ext --inplace
	cd $(CUDA_TREE) && $(CURDIR)/$(CUDA_VENV)/bin/python -c \
	  "import facelin, torch; assert facelin.cuda_built(); print('CUDA build of facelin', facelin.__version__, 'against torch', torch.__version__)"
	cd $(CUDA_TREE) && $(CURDIR)/$(CUDA_VENV)/bin/python -m pytest tests -q

# On a machine with an NVIDIA GPU (and a CUDA torch in $(VENV), nvcc in $(CUDA_HOME)): build
# the CUDA kernels in place, run the CPU/CUDA parity tests and opchecks on both devices,
# and print the least-squares benchmark's tables measured on the GPU.
gpu-check: $(EDITABLE)
	FACELIN_CUDA=1 CUDA_HOME=$(CUDA_HOME) $(PY) setup.py -q build_ext --inplace
	$(PY) -c "import torch, facelin; assert torch.cuda.is_available(), 'no CUDA device'; \
	  assert facelin.cuda_built(), 'facelin was built without CUDA'; \
	  print('facelin CUDA build on', torch.cuda.get_device_name(), 'torch', torch.__version__)"
	$(PY) -m pytest -q -rs tests/test_core.py tests/test_linalg.py tests/test_extract.py
	mkdir -p build
	$(PY) benchmarks/bench_linalg.py --device cuda --json build/bench_linalg_cuda.json

clean:
	rm -rf build book/_build facelin/*.so
