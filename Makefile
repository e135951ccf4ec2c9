# Short names for the README's commands. Each target sets up what it needs first.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
DATA   := /usr/share/datasets/fashion-mnist

.PHONY: setup data train test bench gpu-prepare exercises

setup: $(VENV)/.installed

# torch==2.13.0 first: it is the CPU build; an open range would fetch a multi-GB CUDA build.
$(VENV)/.installed: setup.py
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e ".[dev]"
	touch $@

# Real Fashion-MNIST from Debian's package, Graphviz for graph pictures, and g++ for the CUDA
# emulator (as root, when missing); elsewhere train.py downloads the data, mg.viz.to_dot still
# gives DOT text, and the emulator asks for g++.
data:
	@missing=""; [ -d $(DATA) ] || missing="dataset-fashion-mnist"; \
	command -v dot >/dev/null || missing="$$missing graphviz"; \
	command -v g++ >/dev/null || missing="$$missing g++"; \
	if [ -n "$$missing" ] && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		apt-get update -q && apt-get install -y -q $$missing; fi

train: setup data
	$(PY) train.py $(ARGS)

test: setup data
	OMP_NUM_THREADS=1 $(PY) -m pytest -q $(ARGS)

# OpenBLAS picks its kernels by CPU; this image pins an older set, so unset it for both frameworks.
bench: setup data
	env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE $(PY) benchmarks/bench_cpu.py

# What benchmarks/gpu_suite.sh needs on the device machine, which reaches no registry:
# the dataset in .data/ and an mpich wheel (mpiexec) for its Python 3.12 in .whl/.
gpu-prepare: setup data
	mkdir -p .data/fashion-mnist .whl
	cp $(DATA)/*.gz .data/fashion-mnist/
	$(PY) -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
		--platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
		-d .whl mpich

# The exercises in exercises/: each untouched stub is reported as skipped ("not attempted").
exercises: setup
	OMP_NUM_THREADS=1 $(PY) -m pytest -q -rs exercises
