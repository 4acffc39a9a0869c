# Set-up and the two everyday jobs. `make demo` and `make test` do all the set-up on a fresh machine.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# The CPU build of torch; an unpinned torch would pull a CUDA build of several GB.
TORCH_PIN ?= torch==2.13.0
SOURCES := $(shell find bytetx exporter graph_rewrite plugins -type f 2>/dev/null) CMakeLists.txt pyproject.toml

.PHONY: setup demo test sample clean

setup: $(VENV)/.bytetx-installed

$(VENV)/.bytetx-installed: $(SOURCES)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet $(TORCH_PIN)
	$(PY) -m pip install --quiet ".[test,serve]"
	touch $@

demo: setup
	$(VENV)/bin/bytetx-export

test: setup
	scripts/install_test_tools.sh
	$(VENV)/bin/pytest -q

sample: setup
	$(PY) samples/embed_sentences.py

clean:
	rm -rf build bytetx-out
