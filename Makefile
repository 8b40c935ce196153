# seqmem: two commands set everything up.
#   make book         build the book into _build/html (executing every chapter)
#   make test         run the whole test suite (the book build included)
#   make lab          JupyterLab on the repository, with nbgrader's extensions
#   make assignments  regenerate the student notebooks in notebooks/ from solutions/
#   make bench        run the benchmarks
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
# nbgrader and jupyter-book call helper programs by name: the venv's bin comes first on PATH.
export PATH := $(CURDIR)/$(BIN):$(PATH)
export PYTHONUNBUFFERED := 1

STAMP := $(VENV)/.installed
ASSIGNMENTS := $(notdir $(wildcard solutions/hw*))

# The execution cache is valid for one version of the library and of the environment: this key
# changes whenever a file in lib/seqmem, requirements.txt or pyproject.toml changes.
BOOK_KEY = $(shell find lib/seqmem -type f -name '*.py' -print0 | sort -z | \
	xargs -0 sha256sum requirements.txt pyproject.toml | sha256sum | cut -c1-16)

.PHONY: book test lab assignments bench book-key clean

$(STAMP): requirements.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.txt
	touch $(STAMP)

book: $(STAMP)
	@key=$(BOOK_KEY); if [ -d _build ] && [ "$$(cat _build/.seqmem-key 2>/dev/null)" != "$$key" ]; then \
		echo "lib/seqmem or the requirements changed: clearing _build to re-execute every chapter"; \
		rm -rf _build; fi
	$(BIN)/jupyter-book build . --warningiserror --keep-going --quiet
	@echo $(BOOK_KEY) > _build/.seqmem-key
	@echo "The book is in _build/html/index.html"

book-key:
	@echo $(BOOK_KEY)

test: $(STAMP)
	$(BIN)/python -m pytest

lab: $(STAMP)
	$(BIN)/jupyter lab --notebook-dir=.

assignments: $(STAMP)
	for a in $(ASSIGNMENTS); do $(BIN)/nbgrader generate_assignment "$$a" --force --no-db || exit 1; done

bench: $(STAMP)
	for b in bench/bench_*.py; do $(BIN)/python "$$b" || exit 1; done

clean:
	rm -rf _build gradebook.db
